//! The relay task: routes eth events (announcements feed the sync, the block importer
//! and the transaction fetcher; every announcement and received transaction is
//! recorded as known to its peer), and relays new pool transactions.
//!
//! Transaction relay (`devp2p/caps/eth.md`): new pool transactions are collected for
//! up to [`crate::SyncConfig::tx_batch_interval`], then each goes whole (`Transactions`) to √
//! of the peers not known to have it, chosen at random, and is announced
//! (`NewPooledTransactionHashes`: types, sizes and hashes from eth/68) to the others.
//! Blob transactions and transactions over
//! [`crate::SyncConfig::max_broadcast_tx_size`] are only announced. A peer is sent a
//! transaction at most once while it is in the peer's bounded known set: whatever it
//! announced or sent us, or we sent it. Sends never wait: a peer whose queue is full
//! gets the transactions at the next batch (up to three tries). A `Transactions`
//! message our session had to drop (its import queue was full) is fetched from its
//! sender instead, since the sender now counts us as having it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use devmux_eth::alloy_primitives::B256;
use devmux_eth::{
    limits, EthEvent, EthMessage, EthPeer, NewBlock, NewPooledTransactionHashes, Transactions,
    TxAnnouncement,
};
use devmux_network::PeerId;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::checks::sqrt_count;
use crate::fetch::FetchRequest;
use crate::shared::Shared;
use crate::status::add;

/// Sends of a transaction to a peer whose queue stays full before it is given up.
const MAX_TRIES: u8 = 3;
/// Largest `Transactions` message we build: go-ethereum's `maxTxPacketSize` is 100 KiB;
/// bigger messages mean fewer of them, and a receiver's import queue is short.
const MAX_TXS_MESSAGE: usize = 1024 * 1024;

/// A pool transaction waiting to be relayed.
struct Pending {
    tx: TxAnnouncement,
    tries: u8,
}

/// Where events go.
pub(crate) struct Router {
    pub(crate) shared: Arc<Shared>,
    pub(crate) imports: mpsc::Sender<(PeerId, Arc<NewBlock>)>,
    pub(crate) fetches: mpsc::Sender<FetchRequest>,
}

pub(crate) async fn relay_loop(
    router: Router,
    mut events: broadcast::Receiver<EthEvent>,
    mut added: broadcast::Receiver<TxAnnouncement>,
) {
    let shared = router.shared.clone();
    let config = &shared.config;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut batch = tokio::time::interval(config.tx_batch_interval.max(Duration::from_millis(1)));
    batch.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(Duration::from_secs(5));
    prune.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            event = events.recv() => match event {
                Ok(event) => router.on_event(event),
                Err(RecvError::Lagged(n)) => {
                    debug!(missed = n, "relay fell behind the eth events");
                    add(&shared.counters.dropped, n);
                }
                Err(RecvError::Closed) => return,
            },
            tx = added.recv() => match tx {
                Ok(tx) if pending.len() < config.max_pending_relay => {
                    pending.push_back(Pending { tx, tries: 0 });
                }
                Ok(_) => add(&shared.counters.dropped, 1),
                Err(RecvError::Lagged(n)) => {
                    debug!(missed = n, "relay fell behind the pool");
                    add(&shared.counters.dropped, n);
                }
                Err(RecvError::Closed) => return,
            },
            _ = batch.tick() => {
                // Events that came with these transactions tell which peers have them.
                loop {
                    match events.try_recv() {
                        Ok(event) => router.on_event(event),
                        Err(TryRecvError::Lagged(n)) => add(&shared.counters.dropped, n),
                        Err(_) => break,
                    }
                }
                flush(&shared, &mut pending);
            }
            _ = prune.tick() => shared.prune(),
        }
    }
}

impl Router {
    fn on_event(&self, event: EthEvent) {
        let shared = &self.shared;
        match event {
            EthEvent::StatusExchanged { peer, .. } => {
                if shared.config.announce_pool_on_connect {
                    announce_pool(shared, peer);
                }
                shared.nudge.notify_one();
            }
            EthEvent::SessionClosed { peer } => shared.forget(&peer),
            EthEvent::NewBlockHashes { peer, hashes } => {
                for h in hashes {
                    shared.mark_block(peer, h.hash);
                }
                shared.nudge.notify_one();
            }
            EthEvent::NewBlock { peer, block } => {
                shared.mark_block(peer, block.block.header.hash_slow());
                if !shared.chain.spec().is_sealed() {
                    // After the merge a pushed block is not ours to import (EIP-3675):
                    // its head comes from the consensus layer or a peer's range, which
                    // sync fetches and validates like any other.
                    add(&shared.counters.dropped, 1);
                    shared.nudge.notify_one();
                    return;
                }
                // A peer past its share of the import, or an import queue full: sync
                // fetches the head instead, so nothing is lost but this peer's push.
                if !shared.claim_import(peer) {
                    add(&shared.counters.dropped, 1);
                    shared.nudge.notify_one();
                } else if self.imports.try_send((peer, block)).is_err() {
                    shared.imported(peer);
                    add(&shared.counters.dropped, 1);
                    shared.nudge.notify_one();
                }
            }
            EthEvent::BlockRangeUpdate { peer, update } => {
                shared.mark_block(peer, update.latest_hash);
                shared.nudge.notify_one();
            }
            EthEvent::TransactionsAnnounced { peer, announcement } => {
                shared.mark_txs(peer, announcement.hashes());
                if self
                    .fetches
                    .try_send(FetchRequest { peer, announcement })
                    .is_err()
                {
                    add(&shared.counters.dropped, 1);
                }
            }
            // Incoming comes before the pool import, Received after it (without the
            // first, a transaction could be relayed back to its sender meanwhile).
            EthEvent::TransactionsIncoming {
                peer,
                hashes,
                queued,
            } => {
                shared.mark_txs(peer, hashes.iter().copied());
                if !queued {
                    // The session dropped them (its import queue was full), and the
                    // peer believes we have them: fetch them from it instead.
                    let announcement = NewPooledTransactionHashes::Hashes(hashes);
                    if self
                        .fetches
                        .try_send(FetchRequest { peer, announcement })
                        .is_err()
                    {
                        add(&shared.counters.dropped, 1);
                    }
                }
            }
            EthEvent::TransactionsReceived { peer, hashes, .. } => shared.mark_txs(peer, hashes),
            _ => {}
        }
    }
}

/// Announces the pool to a peer whose session just started.
fn announce_pool(shared: &Shared, peer: PeerId) {
    let Some(peer) = shared.peers.get(&peer) else {
        return;
    };
    let all = shared.pool.announcements();
    let hashes: Vec<B256> = all.iter().map(|a| a.hash).collect();
    let lacking = shared.lacking_txs(peer.peer_id(), &hashes);
    let txs: Vec<TxAnnouncement> = all
        .into_iter()
        .zip(lacking)
        .filter_map(|(a, lacks)| lacks.then_some(a))
        .collect();
    for chunk in txs.chunks(limits::MAX_TX_ANNOUNCEMENTS) {
        if announce(shared, &peer, chunk).is_err() {
            break;
        }
    }
}

/// Relays the pending transactions. Their origins are known by now: the eth reader
/// reports a `Transactions` message (`TransactionsIncoming`) before the pool sees any of
/// it, and the relay task drains those events just before it flushes.
fn flush(shared: &Shared, pending: &mut VecDeque<Pending>) {
    let mut ready: Vec<Pending> = pending.drain(..).collect();
    // A block may have taken some meanwhile.
    ready.retain(|p| shared.pool.contains(&p.tx.hash));
    if ready.is_empty() {
        return;
    }
    let peers: Vec<EthPeer> = shared
        .peers
        .list()
        .into_iter()
        .filter(|p| !p.is_closed())
        .collect();
    let txs: Vec<TxAnnouncement> = ready.iter().map(|p| p.tx).collect();
    let hashes: Vec<B256> = txs.iter().map(|t| t.hash).collect();
    let lacking: Vec<Vec<bool>> = peers
        .iter()
        .map(|p| shared.lacking_txs(p.peer_id(), &hashes))
        .collect();
    let max_size = shared.config.max_broadcast_tx_size;
    let plans = crate::rng::with_rng(|mut rng| {
        plan_relay(
            &txs,
            &lacking,
            |tx| tx.ty != 3 && tx.size <= max_size,
            &mut rng,
        )
    });
    let mut retry = vec![false; ready.len()];
    for (peer, plan) in peers.iter().zip(plans) {
        let full: Vec<TxAnnouncement> = plan.full.iter().map(|&j| txs[j]).collect();
        if !full.is_empty() && broadcast(shared, peer, &full).is_err() {
            plan.full.iter().for_each(|&j| retry[j] = true);
        }
        let announced: Vec<TxAnnouncement> = plan.announce.iter().map(|&j| txs[j]).collect();
        for (chunk, idx) in announced
            .chunks(limits::MAX_TX_ANNOUNCEMENTS)
            .zip(plan.announce.chunks(limits::MAX_TX_ANNOUNCEMENTS))
        {
            if announce(shared, peer, chunk).is_err() {
                idx.iter().for_each(|&j| retry[j] = true);
            }
        }
    }
    for (mut p, again) in ready.into_iter().zip(retry).rev() {
        if again && p.tries + 1 < MAX_TRIES {
            p.tries += 1;
            pending.push_front(p);
        } else if again {
            add(&shared.counters.dropped, 1);
        }
    }
}

/// A peer queue that was full or a session that ended.
struct NotSent;

/// Sends transactions whole, in messages of at most [`MAX_TXS_MESSAGE`] bytes.
fn broadcast(shared: &Shared, peer: &EthPeer, txs: &[TxAnnouncement]) -> Result<(), NotSent> {
    let mut message = Vec::new();
    let mut hashes = Vec::new();
    let mut bytes = 0usize;
    for chunk in txs.chunks(limits::MAX_POOLED_TXS_SERVE) {
        let wanted: Vec<B256> = chunk.iter().map(|t| t.hash).collect();
        for tx in shared.pool.get_many(&wanted) {
            let size = chunk
                .iter()
                .find(|t| t.hash == *tx.hash())
                .map_or(0, |t| t.size as usize);
            if !message.is_empty()
                && (bytes + size > MAX_TXS_MESSAGE
                    || message.len() >= limits::MAX_ANNOUNCEMENT_ITEMS)
            {
                send_txs(
                    shared,
                    peer,
                    std::mem::take(&mut message),
                    std::mem::take(&mut hashes),
                )?;
                bytes = 0;
            }
            hashes.push(*tx.hash());
            message.push(devmux_chain::to_block_form(Arc::unwrap_or_clone(tx)));
            bytes += size;
        }
    }
    if !message.is_empty() {
        send_txs(shared, peer, message, hashes)?;
    }
    Ok(())
}

fn send_txs(
    shared: &Shared,
    peer: &EthPeer,
    txs: Vec<devmux_eth::TransactionSigned>,
    hashes: Vec<B256>,
) -> Result<(), NotSent> {
    let count = txs.len() as u64;
    match peer.try_send(EthMessage::Transactions(Transactions(txs))) {
        Ok(()) => {
            shared.mark_txs(peer.peer_id(), hashes);
            add(&shared.counters.txs_broadcast, count);
            Ok(())
        }
        Err(e) => {
            debug!(peer = %peer.peer_id(), error = %e, "transactions not sent");
            Err(NotSent)
        }
    }
}

/// Announces transactions (at most [`limits::MAX_TX_ANNOUNCEMENTS`]).
fn announce(shared: &Shared, peer: &EthPeer, txs: &[TxAnnouncement]) -> Result<(), NotSent> {
    let message = NewPooledTransactionHashes::new(peer.version(), txs.to_vec());
    match peer.try_send(EthMessage::NewPooledTransactionHashes(message)) {
        Ok(()) => {
            shared.mark_txs(peer.peer_id(), txs.iter().map(|t| t.hash));
            add(&shared.counters.txs_announced, txs.len() as u64);
            Ok(())
        }
        Err(e) => {
            debug!(peer = %peer.peer_id(), error = %e, "announcement not sent");
            Err(NotSent)
        }
    }
}

/// What one peer gets of a batch: indices of transactions to send whole, and to
/// announce.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerPlan {
    pub(crate) full: Vec<usize>,
    pub(crate) announce: Vec<usize>,
}

/// Decides, for each transaction, which peers get it whole and which an announcement:
/// among the peers that lack it (`lacking[peer][tx]`), √ of them at random get it whole
/// if it may be broadcast, the others an announcement. A peer that has it gets neither.
pub(crate) fn plan_relay(
    txs: &[TxAnnouncement],
    lacking: &[Vec<bool>],
    broadcastable: impl Fn(&TxAnnouncement) -> bool,
    rng: &mut impl Rng,
) -> Vec<PeerPlan> {
    let mut plans: Vec<PeerPlan> = lacking.iter().map(|_| PeerPlan::default()).collect();
    let mut who = Vec::with_capacity(lacking.len());
    for (j, tx) in txs.iter().enumerate() {
        who.clear();
        who.extend((0..lacking.len()).filter(|&i| lacking[i].get(j).copied().unwrap_or(false)));
        who.shuffle(rng);
        let full = if broadcastable(tx) {
            sqrt_count(who.len())
        } else {
            0
        };
        for (k, &i) in who.iter().enumerate() {
            if k < full {
                plans[i].full.push(j);
            } else {
                plans[i].announce.push(j);
            }
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tx(i: u8, ty: u8, size: u64) -> TxAnnouncement {
        TxAnnouncement {
            ty,
            size,
            hash: B256::repeat_byte(i),
        }
    }

    #[test]
    fn each_lacking_peer_gets_each_transaction_once() {
        let txs: Vec<_> = (1..=50).map(|i| tx(i, 2, 120)).collect();
        // 9 peers; peer 0 has every transaction, peer 1 has the even ones.
        let lacking: Vec<Vec<bool>> = (0..9)
            .map(|p| {
                (0..txs.len())
                    .map(|j| match p {
                        0 => false,
                        1 => j % 2 == 1,
                        _ => true,
                    })
                    .collect()
            })
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let plans = plan_relay(&txs, &lacking, |t| t.ty != 3, &mut rng);
        assert_eq!(plans[0], PeerPlan::default());
        for j in 0..txs.len() {
            let full = plans.iter().filter(|p| p.full.contains(&j)).count();
            let announced = plans.iter().filter(|p| p.announce.contains(&j)).count();
            let lackers = lacking.iter().filter(|l| l[j]).count();
            // Each lacking peer exactly once, √ of them whole.
            assert_eq!(full + announced, lackers);
            assert_eq!(full, sqrt_count(lackers));
            for (p, plan) in plans.iter().enumerate() {
                let times = plan
                    .full
                    .iter()
                    .chain(&plan.announce)
                    .filter(|&&x| x == j)
                    .count();
                assert_eq!(times, usize::from(lacking[p][j]));
            }
        }
        // The whole sends are spread over peers, not always the same ones.
        let receivers = plans.iter().filter(|p| !p.full.is_empty()).count();
        assert!(receivers > 3, "{receivers}");
    }

    #[test]
    fn blob_and_large_transactions_are_only_announced() {
        let txs = vec![tx(1, 3, 200), tx(2, 2, 10_000), tx(3, 2, 100)];
        let lacking = vec![vec![true; 3]; 4];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let plans = plan_relay(&txs, &lacking, |t| t.ty != 3 && t.size <= 4096, &mut rng);
        let full: Vec<usize> = plans.iter().flat_map(|p| p.full.clone()).collect();
        assert_eq!(full, vec![2, 2]);
        assert_eq!(
            plans.iter().map(|p| p.announce.len()).sum::<usize>(),
            4 + 4 + 2
        );
    }

    #[test]
    fn no_peers_no_plans() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert!(plan_relay(&[tx(1, 2, 1)], &[], |_| true, &mut rng).is_empty());
    }
}
