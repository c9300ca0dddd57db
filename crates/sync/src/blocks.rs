//! Block relay: announcing a new head to peers, and importing the blocks peers push.
//!
//! - eth/66–68 peers that do not know the block: a full `NewBlock` to √ of them (chosen
//!   at random), `NewBlockHashes` to the rest;
//! - eth/69 peers (which have neither message) that do not know the block: a
//!   `BlockRangeUpdate` with the new head.
//!
//! A block is announced only once it is inserted and is our head (there is no
//! proof-of-work to check first, so we relay what we have validated), never to the
//! peer it came from, and each peer remembers (bounded) which blocks it knows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use devmux_chain::{validate, BlockWithReceipts};
use devmux_eth::alloy_primitives::{B256, U256};
use devmux_eth::{
    Block, BlockHashNumber, BlockRangeUpdate, ChainReader, EthMessage, EthPeer, NewBlock,
    NewBlockHashes, ReceiptsQuery,
};
use devmux_network::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::budget::CheckFailed;
use crate::checks::{needs_receipts, sqrt_count};
use crate::download::block_refusal;
use crate::shared::Shared;
use crate::status::add;
use crate::Error;

/// Announces `block` (hash `hash`, total difficulty `td`), our new head, to every peer
/// that does not know it; `from` is the peer it came from, if any.
pub(crate) fn announce_block(
    shared: &Shared,
    block: &BlockWithReceipts,
    hash: B256,
    td: U256,
    from: Option<PeerId>,
) {
    if let Some(from) = from {
        shared.mark_block(from, hash);
    }
    let number = block.header.number;
    let range = BlockRangeUpdate {
        earliest: shared.chain.chain_status().earliest,
        latest: number,
        latest_hash: hash,
    };
    // After the merge blocks are not announced (EIP-3675; go-ethereum v1.17 drops a peer
    // that sends NewBlock or NewBlockHashes): a proof-of-stake chain tells its peers
    // only its new range.
    let post_merge = !shared.chain.spec().is_sealed();
    let mut legacy: Vec<EthPeer> = Vec::new();
    for peer in shared.peers.list() {
        let id = peer.peer_id();
        if peer.is_closed() || shared.knows_block(id, &hash) {
            continue;
        }
        let version = peer.version();
        if version.has_block_range() {
            if send(shared, &peer, EthMessage::BlockRangeUpdate(range), hash) {
                add(&shared.counters.range_updates_sent, 1);
            }
        } else if version.has_block_announcements() && !post_merge {
            legacy.push(peer);
        }
    }
    crate::rng::shuffle_peers(&mut legacy);
    let full = sqrt_count(legacy.len());
    for (i, peer) in legacy.iter().enumerate() {
        if i < full {
            let message = EthMessage::NewBlock(Box::new(NewBlock {
                block: Block::new(block.header.clone(), block.body.clone()),
                td,
            }));
            if send(shared, peer, message, hash) {
                add(&shared.counters.new_blocks_sent, 1);
            }
        } else {
            let message =
                EthMessage::NewBlockHashes(NewBlockHashes(vec![BlockHashNumber { hash, number }]));
            if send(shared, peer, message, hash) {
                add(&shared.counters.block_hashes_sent, 1);
            }
        }
    }
}

/// Sends without waiting (a slow peer must not hold up the others) and records that the
/// peer knows the block; false if the peer's queue was full or its session gone.
fn send(shared: &Shared, peer: &EthPeer, message: EthMessage, hash: B256) -> bool {
    match peer.try_send(message) {
        Ok(()) => {
            shared.mark_block(peer.peer_id(), hash);
            true
        }
        Err(e) => {
            debug!(peer = %peer.peer_id(), error = %e, "block announcement not sent");
            add(&shared.counters.dropped, 1);
            false
        }
    }
}

/// Announces our current head block.
pub(crate) async fn announce_head(shared: &Shared) {
    let head = shared.chain.head();
    match shared.chain.block(head.hash).await {
        Ok(Some(block)) => announce_block(shared, &block, head.hash, head.total_difficulty, None),
        Ok(None) => warn!(hash = %head.hash, "head block missing from the store"),
        Err(e) => warn!(error = %e, "cannot read the head block to announce it"),
    }
}

/// Imports the blocks peers push with `NewBlock` (eth/66–68): a block on a parent we
/// have is checked against its header, completed with its receipts from the same peer,
/// inserted and relayed; one whose parent we lack wakes the sync instead.
///
/// Peers are imported from concurrently (at most [`SyncConfig::block_import_queue`] at
/// once), each peer's blocks one after the other in the order they came: a peer that
/// is slow to send the receipts of its block holds up its own next block only. Each
/// peer has at most [`SyncConfig::block_imports_per_peer`] blocks here
/// ([`Shared::claim_import`], taken by the relay before queueing).
///
/// [`SyncConfig::block_import_queue`]: crate::SyncConfig::block_import_queue
/// [`SyncConfig::block_imports_per_peer`]: crate::SyncConfig::block_imports_per_peer
pub(crate) async fn import_loop(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<(PeerId, Arc<NewBlock>)>,
) {
    let max_running = shared.config.block_import_queue.max(1);
    // Blocks waiting behind their peer's running import, oldest first.
    let mut waiting: HashMap<PeerId, VecDeque<Arc<NewBlock>>> = HashMap::new();
    let mut running: JoinSet<PeerId> = JoinSet::new();
    let mut busy: HashSet<PeerId> = HashSet::new();
    let spawn = |running: &mut JoinSet<PeerId>, from: PeerId, block: Arc<NewBlock>| {
        let shared = shared.clone();
        running.spawn(
            async move {
                import_one(&shared, from, &block).await;
                shared.imported(from);
                from
            }
            .instrument(tracing::debug_span!("import", peer = %from)),
        );
    };
    loop {
        let has_room = running.len() < max_running;
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            received = queue.recv(), if has_room => {
                let Some((from, block)) = received else { return };
                if busy.insert(from) {
                    spawn(&mut running, from, block);
                } else {
                    waiting.entry(from).or_default().push_back(block);
                }
            }
            Some(joined) = running.join_next() => {
                let Ok(from) = joined else { continue };
                match waiting.get_mut(&from).and_then(VecDeque::pop_front) {
                    Some(next) => spawn(&mut running, from, next),
                    None => {
                        waiting.remove(&from);
                        busy.remove(&from);
                    }
                }
            }
        }
    }
}

/// Imports one pushed block and punishes its sender for what it did wrong.
async fn import_one(shared: &Shared, from: PeerId, new_block: &NewBlock) {
    match import(shared, from, new_block).await {
        Ok(()) | Err(Error::ShuttingDown) => {}
        Err(e) => match shared.peers.get(&from) {
            Some(peer) if e.peer() == Some(from) => shared.punish(&peer, &e),
            _ => debug!(peer = %from, error = %e, "NewBlock not imported"),
        },
    }
}

async fn import(shared: &Shared, from: PeerId, new_block: &NewBlock) -> Result<(), Error> {
    let header = &new_block.block.header;
    let hash = header.hash_slow();
    if shared.chain.header_by_hash(hash).await?.is_some() {
        return Ok(());
    }
    let Some(peer) = shared.peers.get(&from) else {
        // Sync fetches what is missing, from whichever peer is ahead.
        shared.nudge.notify_one();
        return Ok(());
    };
    // The header alone first: a block that breaks a header rule costs us no body check,
    // no receipts request and no store write, and is never relayed.
    match shared.chain.check_header(header.clone()).await {
        Ok(true) => {}
        // The parent is unknown: sync fetches it, from whichever peer is ahead.
        Ok(false) => {
            shared.nudge.notify_one();
            return Ok(());
        }
        Err(devmux_chain::Error::ReorgTooDeep { depth, .. }) => {
            info!(peer = %from, number = header.number, depth, "NewBlock refused: it branches off deeper than the reorg bound");
            return Ok(());
        }
        Err(e) => return Err(block_refusal(from, e)),
    }
    // Roots are CPU work a peer's data makes us do: budgeted, off the reactor. The body
    // first, so that a body that does not match costs no receipts request.
    let (checked, body) = (header.clone(), new_block.block.body.clone());
    let chain = shared.chain.clone();
    let body = shared
        .root_checks
        .run(from, move |_| {
            validate::validate_transactions(chain.spec(), &checked, hash, &body)
                .map_err(|e| CheckFailed::Invalid(e.to_string()))?;
            Ok(body)
        })
        .await?;
    let receipts = if needs_receipts(header) {
        let query = ReceiptsQuery::new(hash, header, &body);
        let mut lists = shared
            .request(&peer, peer.get_block_receipts(vec![query]))
            .await?;
        if lists.is_empty() {
            return Err(Error::Lacking {
                peer: from,
                what: format!("the receipts of the block {hash} it sent"),
            });
        }
        lists.swap_remove(0)
    } else {
        Vec::new()
    };
    let (checked, transactions) = (header.clone(), body.transactions.len());
    let chain = shared.chain.clone();
    let receipts = shared
        .root_checks
        .run(from, move |_| {
            validate::validate_receipts(chain.spec(), &checked, hash, transactions, &receipts)
                .map_err(|e| CheckFailed::Invalid(e.to_string()))?;
            Ok(receipts)
        })
        .await?;
    let block = BlockWithReceipts {
        header: header.clone(),
        body,
        receipts,
    };
    let outcome = match shared.chain.insert_blocks(vec![block.clone()]).await {
        Ok(outcome) => outcome,
        Err(e) => return Err(block_refusal(from, e)),
    };
    add(&shared.counters.blocks_imported, outcome.inserted as u64);
    shared.pool.remove_block(&block.body);
    if outcome.head.hash == hash {
        announce_block(
            shared,
            &block,
            hash,
            outcome.head.total_difficulty,
            Some(from),
        );
    }
    Ok(())
}
