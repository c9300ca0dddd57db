//! One sync round: the chain of one peer, from our common ancestor to its head.
//!
//! A round is a pipeline of three stages joined by bounded channels
//! ([`crate::SyncConfig::pipeline_depth`] batches each):
//!
//! 1. **headers**, from the round's peer only: batches of up to 1024, each checked to
//!    link to the one before ([`link_headers`]);
//! 2. **bodies**, from every peer that may have them: each header batch is cut into
//!    jobs of [`crate::SyncConfig::bodies_per_request`] blocks, and each job fetches
//!    bodies, then the receipts of the blocks that have any, from one peer, checking
//!    them against their headers. Jobs run in parallel over peers; a job whose peer
//!    lacks the blocks goes to another peer, a job whose peer stalls, leaves or lies
//!    goes back to the queue and the peer is punished ([`Shared::punish`]);
//! 3. **insert**: each batch is one atomic insert into the chain, whose own validation
//!    runs once more; the blocks' transactions leave the pool.
//!
//! A stage that fails stops the round: the stages before it see their output channel
//! close, the stages after it finish what is already queued. What is inserted stays.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use devmux_chain::{validate, BlockWithReceipts};
use devmux_eth::alloy_primitives::B256;
use devmux_eth::alloy_rlp::Encodable;
use devmux_eth::{BlockBody, BlockHashOrNumber, EthPeer, GetBlockHeaders, Receipt, ReceiptsQuery};
use devmux_network::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use devmux_chain::MAX_REORG_DEPTH;

use crate::budget::{Cancelled, CheckFailed};
use crate::checks::{link_headers, needs_receipts, Hashed, LinkError};
use crate::shared::Shared;
use crate::status::add;
use crate::Error;

/// The sync in progress, for its status: where it started and when.
pub(crate) struct Progress {
    starting: u64,
    started: Instant,
}

impl Progress {
    pub(crate) fn new(starting: u64) -> Self {
        Self {
            starting,
            started: Instant::now(),
        }
    }

    /// Publishes our head and `target`.
    pub(crate) fn report(&self, shared: &Shared, target: u64) {
        let head = shared.chain.head().number;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            head.saturating_sub(self.starting) as f64 / secs
        } else {
            0.0
        };
        shared.status.send_modify(|s| {
            s.syncing = true;
            s.starting = self.starting;
            s.current = head;
            s.target = target.max(head);
            s.blocks_per_sec = rate;
        });
    }
}

/// Syncs to the head `head_hash` of `peer`; returns the blocks inserted. An error names
/// the fault of `peer` (or a local one); faults of other peers that served bodies were
/// punished along the way.
pub(crate) async fn run_round(
    shared: &Arc<Shared>,
    peer: &EthPeer,
    head_hash: B256,
    progress: &Progress,
) -> Result<usize, Error> {
    add(&shared.counters.rounds, 1);
    let id = peer.peer_id();
    // The head by hash: the peer proves it has what it claims, and tells its number.
    let target = fetch_header(shared, peer, head_hash.into())
        .await?
        .ok_or_else(|| Error::Lacking {
            peer: id,
            what: format!("its head {head_hash}"),
        })?;
    if shared.chain.header_by_hash(target.hash).await?.is_some() {
        return Ok(0);
    }
    let target_number = target.header.number;
    let checkpoint = shared.chain.checkpoint();
    if let Some(pin) = checkpoint.filter(|p| p.number == target_number && p.hash != target.hash) {
        return Err(other_chain(id, pin.number, target.hash));
    }
    progress.report(shared, target_number);

    // A relayed block usually extends a block we have: then that is the ancestor.
    let ancestor = match shared
        .chain
        .header_by_hash(target.header.parent_hash)
        .await?
    {
        Some(parent) => Hashed {
            hash: target.header.parent_hash,
            header: parent,
        },
        None => {
            let ours = shared.chain.head().number;
            find_ancestor(shared, peer, ours.min(target_number.saturating_sub(1))).await?
        }
    };
    // Check before cost: a branch that leaves our chain too far below the head could
    // only win through a reorg we refuse, so fetch none of it.
    let head = shared.chain.head().number;
    let depth = head.saturating_sub(ancestor.header.number);
    if depth > MAX_REORG_DEPTH {
        return Err(Error::ReorgTooDeep {
            peer: id,
            depth,
            ancestor: ancestor.header.number,
        });
    }
    // Nor a branch that would drop the finalized block: it never becomes canonical.
    if let Some(finalized) = shared
        .chain
        .finalized()
        .filter(|f| ancestor.header.number < f.number)
    {
        return Err(Error::Chain(devmux_chain::Error::ReorgBelowFinalized {
            finalized: finalized.number,
            ancestor: ancestor.header.number,
        }));
    }
    tracing::debug!(
        peer = %id,
        from = ancestor.header.number,
        to = target_number,
        "sync round"
    );

    let depth = shared.config.pipeline_depth.max(1);
    let (headers_tx, headers_rx) = mpsc::channel(depth);
    let (blocks_tx, blocks_rx) = mpsc::channel(depth);
    let (headers, bodies, inserted) = tokio::join!(
        header_stage(shared, peer, ancestor, target, headers_tx),
        body_stage(shared, headers_rx, blocks_tx),
        insert_stage(shared, id, blocks_rx, progress, target_number),
    );
    let inserted = inserted?;
    bodies?;
    headers?;
    Ok(inserted)
}

/// One header, by hash or number, from `peer`.
async fn fetch_header(
    shared: &Shared,
    peer: &EthPeer,
    start: BlockHashOrNumber,
) -> Result<Option<Hashed>, Error> {
    let request = GetBlockHeaders {
        start,
        limit: 1,
        skip: 0,
        reverse: false,
    };
    let headers = shared
        .request(peer, peer.get_block_headers(request))
        .await?;
    add(&shared.counters.headers_downloaded, headers.len() as u64);
    let bytes: usize = headers.iter().map(Encodable::length).sum();
    add(&shared.counters.bytes_downloaded, bytes as u64);
    Ok(headers.into_iter().next().map(Hashed::new))
}

/// The highest block at or below `from` that `peer`'s chain and ours share: `from`
/// itself when the peer's chain extends ours (one request), else a binary search over
/// numbers (a block we have implies we have its ancestors).
async fn find_ancestor(shared: &Shared, peer: &EthPeer, from: u64) -> Result<Hashed, Error> {
    let genesis = Hashed {
        header: shared.chain.spec().genesis.clone(),
        hash: shared.chain.genesis_hash(),
    };
    let probe = |number: u64| async move {
        let header = fetch_header(shared, peer, number.into())
            .await?
            .ok_or_else(|| Error::Lacking {
                peer: peer.peer_id(),
                what: format!("block {number} below its head"),
            })?;
        let known = shared.chain.header_by_hash(header.hash).await?.is_some();
        Ok::<_, Error>((header, known))
    };
    if from == 0 {
        return Ok(genesis);
    }
    let (header, known) = probe(from).await?;
    if known {
        return Ok(header);
    }
    // Invariant: `lo` is shared (genesis is: Status checked it), `hi` is not.
    let (mut lo, mut hi) = (genesis, from);
    while hi - lo.header.number > 1 {
        let mid = lo.header.number + (hi - lo.header.number) / 2;
        let (header, known) = probe(mid).await?;
        if known {
            lo = header;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Downloads the headers after `ancestor` up to `target` from `peer`, in linked
/// batches.
async fn header_stage(
    shared: &Shared,
    peer: &EthPeer,
    ancestor: Hashed,
    target: Hashed,
    out: mpsc::Sender<Arc<Vec<Hashed>>>,
) -> Result<(), Error> {
    let id = peer.peer_id();
    let batch = shared.config.header_batch();
    let last = target.header.number;
    let mut parent = ancestor;
    let mut target = Some(target);
    while parent.header.number < last {
        let next = parent.header.number + 1;
        let (headers, fetched) = match target.take_if(|t| t.header.number == next) {
            // The head itself is all that is left: we have it already.
            Some(head) => (vec![head.header], false),
            None => {
                let request = GetBlockHeaders {
                    start: next.into(),
                    limit: batch.min(last - next + 1),
                    skip: 0,
                    reverse: false,
                };
                let headers = shared
                    .request(peer, peer.get_block_headers(request))
                    .await?;
                (headers, true)
            }
        };
        if headers.is_empty() {
            return Err(Error::Lacking {
                peer: id,
                what: format!("headers from {next}"),
            });
        }
        let bytes: usize = headers.iter().map(Encodable::length).sum();
        let linked = match link_headers(shared.chain.spec(), &parent, headers) {
            Ok(linked) => linked,
            Err(LinkError::Detached) => return Err(Error::Reorged { peer: id }),
            Err(LinkError::Invalid(why)) => return Err(Error::InvalidHeaders { peer: id, why }),
            Err(LinkError::Rule(e)) => return Err(block_refusal(id, e)),
        };
        // A peer whose chain has another block at the checkpoint's height is on another
        // chain: none of it is fetched.
        if let Some(pin) = shared.chain.checkpoint() {
            if let Some(h) = linked
                .iter()
                .find(|h| h.header.number == pin.number && h.hash != pin.hash)
            {
                return Err(other_chain(id, pin.number, h.hash));
            }
        }
        if fetched {
            add(&shared.counters.headers_downloaded, linked.len() as u64);
            add(&shared.counters.bytes_downloaded, bytes as u64);
        }
        let Some(tip) = linked.last() else {
            break;
        };
        parent = tip.clone();
        if shared.or_cancel(out.send(Arc::new(linked))).await?.is_err() {
            // A later stage stopped the round.
            break;
        }
    }
    Ok(())
}

/// Turns header batches into blocks.
async fn body_stage(
    shared: &Arc<Shared>,
    mut input: mpsc::Receiver<Arc<Vec<Hashed>>>,
    out: mpsc::Sender<Vec<BlockWithReceipts>>,
) -> Result<(), Error> {
    while let Some(headers) = shared.or_cancel(input.recv()).await? {
        let blocks = download_bodies(shared, headers, None).await?;
        if shared.or_cancel(out.send(blocks)).await?.is_err() {
            break;
        }
    }
    Ok(())
}

/// A body job's answer: the bodies and receipts of a prefix of its blocks.
type JobResult = Result<Vec<(BlockBody, Vec<Receipt>)>, Error>;

/// Fetches the bodies and receipts of `headers` from every peer that may have them, and
/// from `source` (the peer that served the headers) whatever head it last announced.
pub(crate) async fn download_bodies(
    shared: &Arc<Shared>,
    headers: Arc<Vec<Hashed>>,
    source: Option<PeerId>,
) -> Result<Vec<BlockWithReceipts>, Error> {
    let n = headers.len();
    let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (first.header.number, last.header.number);
    let per_job = shared.config.body_batch();
    let per_peer = shared.config.max_requests_per_peer.max(1);

    let mut pending: VecDeque<Range<usize>> = (0..n)
        .step_by(per_job)
        .map(|s| s..(s + per_job).min(n))
        .collect();
    let mut got: Vec<Option<(BlockBody, Vec<Receipt>)>> = (0..n).map(|_| None).collect();
    // Job start → peers that answered it with nothing.
    let mut lacking: HashMap<usize, HashSet<PeerId>> = HashMap::new();
    let mut busy: HashMap<PeerId, usize> = HashMap::new();
    let mut tasks: JoinSet<(EthPeer, Range<usize>, JobResult)> = JoinSet::new();
    let mut starved_since: Option<Instant> = None;

    while !pending.is_empty() || !tasks.is_empty() {
        if !pending.is_empty() {
            let peers = body_peers(shared, first, source);
            for peer in &peers {
                let id = peer.peer_id();
                while busy.get(&id).copied().unwrap_or(0) < per_peer {
                    let Some(pos) = pending
                        .iter()
                        .position(|job| !lacking.get(&job.start).is_some_and(|l| l.contains(&id)))
                    else {
                        break;
                    };
                    let Some(job) = pending.remove(pos) else {
                        break;
                    };
                    *busy.entry(id).or_default() += 1;
                    let (s, p, h) = (shared.clone(), peer.clone(), headers.clone());
                    tasks.spawn(async move {
                        let result = fetch_job(&s, &p, &h, job.clone()).await;
                        (p, job, result)
                    });
                }
            }
            if tasks.is_empty() {
                // No peer takes the work left: every candidate lacks it, or there is
                // no candidate (wait a little for one).
                if !peers.is_empty() {
                    return Err(Error::NoPeerServes { first, last });
                }
                let since = *starved_since.get_or_insert_with(Instant::now);
                if since.elapsed() > shared.config.request_timeout {
                    return Err(Error::NoPeerServes { first, last });
                }
                shared
                    .or_cancel(tokio::time::sleep(Duration::from_millis(100)))
                    .await?;
                continue;
            }
            starved_since = None;
        }
        let Some(joined) = shared.or_cancel(tasks.join_next()).await? else {
            continue;
        };
        let (peer, job, result) = joined.map_err(|e| Error::Task(e.to_string()))?;
        let id = peer.peer_id();
        if let Some(b) = busy.get_mut(&id) {
            *b = b.saturating_sub(1);
        }
        match result {
            Ok(items) if items.is_empty() => {
                lacking.entry(job.start).or_default().insert(id);
                pending.push_front(job);
            }
            Ok(items) => {
                let done = job.start + items.len();
                for (slot, item) in got[job.start..done].iter_mut().zip(items) {
                    *slot = Some(item);
                }
                if done < job.end {
                    pending.push_front(done..job.end);
                }
            }
            Err(Error::ShuttingDown) => return Err(Error::ShuttingDown),
            Err(e) => {
                shared.punish(&peer, &e);
                pending.push_front(job);
            }
        }
    }

    let mut blocks = Vec::with_capacity(n);
    for (sealed, item) in headers.iter().zip(got) {
        // Every job ended with all its blocks in `got`.
        let Some((body, receipts)) = item else {
            return Err(Error::NoPeerServes { first, last });
        };
        blocks.push(BlockWithReceipts {
            header: sealed.header.clone(),
            body,
            receipts,
        });
    }
    Ok(blocks)
}

/// Peers that may serve bodies from block `first` on, in random order (to spread the
/// load): not benched, and not known to lack them (an eth/69 peer's range says), or
/// `source`, which served their headers (its range may be older than its chain: a
/// go-ethereum peer sends a `BlockRangeUpdate` every few blocks, not every block).
pub(crate) fn body_peers(shared: &Shared, first: u64, source: Option<PeerId>) -> Vec<EthPeer> {
    let mut peers: Vec<EthPeer> = shared
        .peers
        .list()
        .into_iter()
        .filter(|p| !p.is_closed() && !shared.is_benched(&p.peer_id()))
        .filter(|p| {
            let head = p.head();
            Some(p.peer_id()) == source
                || (head.earliest.is_none_or(|e| e <= first)
                    && head.number.is_none_or(|n| n >= first))
        })
        .collect();
    crate::rng::shuffle_peers(&mut peers);
    peers
}

/// Fetches the bodies of `headers[job]` from `peer`, then the receipts of those that
/// have any, and checks both against the headers. Returns a prefix of the job (empty:
/// the peer has none of it).
async fn fetch_job(
    shared: &Shared,
    peer: &EthPeer,
    headers: &Arc<Vec<Hashed>>,
    job: Range<usize>,
) -> JobResult {
    let wanted = &headers[job.clone()];
    let hashes: Vec<B256> = wanted.iter().map(|s| s.hash).collect();
    let bodies = shared.request(peer, peer.get_block_bodies(hashes)).await?;
    if bodies.is_empty() {
        return Ok(Vec::new());
    }
    // With each block's header and body, so that the peer's receipts are held to them
    // as they come (on eth/70 a block may come in parts, which no root can check yet).
    let need: Vec<ReceiptsQuery> = wanted
        .iter()
        .zip(&bodies)
        .filter(|(s, _)| needs_receipts(&s.header))
        .map(|(s, body)| ReceiptsQuery::new(s.hash, &s.header, body))
        .collect();
    let receipts = if need.is_empty() {
        Vec::new()
    } else {
        shared.request(peer, peer.get_block_receipts(need)).await?
    };
    let bytes = bodies.iter().map(Encodable::length).sum::<usize>()
        + receipts.iter().map(Encodable::length).sum::<usize>();
    add(&shared.counters.bytes_downloaded, bytes as u64);

    // Hashing roots is CPU work a peer's data makes us do: budgeted, off the reactor.
    let headers = headers.clone();
    let start = job.start;
    let chain = shared.chain.clone();
    let items = shared
        .root_checks
        .run(peer.peer_id(), move |cancelled| {
            assemble(
                chain.spec(),
                &headers[start..start + bodies.len()],
                bodies,
                receipts,
                cancelled,
            )
        })
        .await?;
    add(&shared.counters.bodies_downloaded, items.len() as u64);
    Ok(items)
}

/// Pairs bodies and receipts with their headers and checks them
/// ([`validate::validate_transactions`], [`validate::validate_receipts`]); stops before
/// the first block whose receipts did not come (the peer may answer a prefix), or at
/// the next block once `cancelled`.
fn assemble(
    spec: &devmux_chain::ChainSpec,
    headers: &[Hashed],
    bodies: Vec<BlockBody>,
    receipts: Vec<Vec<Receipt>>,
    cancelled: &Cancelled,
) -> Result<Vec<(BlockBody, Vec<Receipt>)>, CheckFailed> {
    let invalid = |e: devmux_chain::Error| CheckFailed::Invalid(e.to_string());
    let mut receipts = receipts.into_iter();
    let mut out = Vec::with_capacity(bodies.len());
    for (hashed, body) in headers.iter().zip(bodies) {
        if cancelled.is_set() {
            return Err(CheckFailed::Cancelled);
        }
        let (header, hash) = (&hashed.header, hashed.hash);
        validate::validate_transactions(spec, header, hash, &body).map_err(invalid)?;
        let block_receipts = if needs_receipts(header) {
            match receipts.next() {
                Some(r) => r,
                None => break,
            }
        } else {
            Vec::new()
        };
        validate::validate_receipts(spec, header, hash, body.transactions.len(), &block_receipts)
            .map_err(invalid)?;
        out.push((body, block_receipts));
    }
    Ok(out)
}

/// Inserts downloaded batches; returns how many blocks were new.
async fn insert_stage(
    shared: &Shared,
    header_peer: PeerId,
    mut input: mpsc::Receiver<Vec<BlockWithReceipts>>,
    progress: &Progress,
    target: u64,
) -> Result<usize, Error> {
    let mut inserted = 0;
    while let Some(blocks) = shared.or_cancel(input.recv()).await? {
        inserted += insert_synced(shared, header_peer, blocks).await?;
        progress.report(shared, target);
    }
    Ok(inserted)
}

/// Inserts one validated batch whose headers `header_peer` served, drops its
/// transactions from the pool and counts it; returns how many blocks were new. Bodies
/// and receipts matched their headers, so a refusal is the headers' fault.
pub(crate) async fn insert_synced(
    shared: &Shared,
    header_peer: PeerId,
    blocks: Vec<BlockWithReceipts>,
) -> Result<usize, Error> {
    let txs: Vec<B256> = blocks
        .iter()
        .flat_map(|b| b.body.transactions.iter().map(|t| *t.tx_hash()))
        .collect();
    let outcome = shared
        .chain
        .insert_blocks(blocks)
        .await
        .map_err(|e| block_refusal(header_peer, e))?;
    add(&shared.counters.blocks_imported, outcome.inserted as u64);
    shared.pool.remove(&txs);
    Ok(outcome.inserted)
}

/// What the chain's refusal of blocks `peer` sent costs that peer: a bad seal is a
/// forgery ([`Error::BadSeal`]), anything else wrong with the blocks a lie
/// ([`Error::InvalidHeaders`]), a block that is not the checkpoint another chain
/// ([`Error::OtherChain`]); a refusal that is not about the blocks is ours
/// ([`Error::Chain`]).
pub(crate) fn block_refusal(peer: PeerId, e: devmux_chain::Error) -> Error {
    match e {
        devmux_chain::Error::CheckpointMismatch { number, got, .. } => {
            other_chain(peer, number, got)
        }
        devmux_chain::Error::BadSeal { .. } => Error::BadSeal {
            peer,
            why: e.to_string(),
        },
        e if is_block_fault(&e) => Error::InvalidHeaders {
            peer,
            why: e.to_string(),
        },
        e => Error::Chain(e),
    }
}

/// `peer` serves block `hash` at the checkpoint's height `number`, which is not the
/// checkpoint ([`Error::OtherChain`]).
pub(crate) fn other_chain(peer: PeerId, number: u64, hash: B256) -> Error {
    tracing::debug!(%peer, number, %hash, "a peer's block at the checkpoint's height is not the checkpoint");
    Error::OtherChain { peer, number }
}

/// Whether the chain refused a block for what it contains (rather than failing).
pub(crate) fn is_block_fault(e: &devmux_chain::Error) -> bool {
    use devmux_chain::Error as E;
    matches!(
        e,
        E::UnknownParent { .. }
            | E::InvalidHeader { .. }
            | E::BadSeal { .. }
            | E::WrongNumber { .. }
            | E::TimestampNotIncreasing { .. }
            | E::RootMismatch { .. }
            | E::InvalidBody { .. }
            | E::BadGasUsed { .. }
            | E::ReceiptCount { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use devmux_chain::devnet::Devnet;

    #[test]
    fn assemble_pairs_receipts_and_stops_at_the_first_missing() {
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(7).collect();
        let headers: Vec<Hashed> = blocks
            .iter()
            .map(|b| Hashed::new(b.header.clone()))
            .collect();
        let bodies: Vec<BlockBody> = blocks.iter().map(|b| b.body.clone()).collect();
        // Blocks 1, 2, 3, 5, 6, 7 have transactions; block 4 has none.
        let all: Vec<Vec<Receipt>> = blocks
            .iter()
            .filter(|b| needs_receipts(&b.header))
            .map(|b| b.receipts.clone())
            .collect();
        assert_eq!(all.len(), 6);
        let go = Cancelled::default();
        let spec = devmux_chain::ChainSpec::devnet();
        let out = assemble(&spec, &headers, bodies.clone(), all.clone(), &go).unwrap();
        assert_eq!(out.len(), 7);
        assert!(out[3].1.is_empty());
        assert_eq!(out[4].1, blocks[4].receipts);

        // Receipts of blocks 1–3 only: block 4 needs none, block 5's are missing, so the
        // answer is blocks 1–4.
        let out = assemble(&spec, &headers, bodies.clone(), all[..3].to_vec(), &go).unwrap();
        assert_eq!(out.len(), 4);

        // A body that is not its header's.
        let mut swapped = bodies.clone();
        swapped.swap(0, 1);
        assert!(matches!(
            assemble(&spec, &headers, swapped, all.clone(), &go),
            Err(CheckFailed::Invalid(why)) if why.contains("transactions_root")
        ));
        // Receipts shifted by one block.
        assert!(matches!(
            assemble(&spec, &headers, bodies.clone(), all[1..].to_vec(), &go),
            Err(CheckFailed::Invalid(_))
        ));
        // Past its deadline, the check stops before the next block.
        let stop = Cancelled::default();
        stop.set();
        assert!(matches!(
            assemble(&spec, &headers, bodies, all, &stop),
            Err(CheckFailed::Cancelled)
        ));
    }
}
