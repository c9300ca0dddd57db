//! Starting sync and relay ([`Syncer::spawn`]), the handle to them ([`SyncHandle`]), and
//! the sync task: find the best peer ahead of us, run a round against it, repeat.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devmux_chain::{Chain, Pool};
use devmux_eth::alloy_primitives::B256;
use devmux_eth::{EthPeer, EthPeers, PeerHead};
use devmux_network::PeerId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn, Instrument};

use crate::download::{run_round, Progress};
use crate::relay::Router;
use crate::shared::{lock, Shared};
use crate::{backfill, blocks, fetch, relay, Error, SyncConfig, SyncStats, SyncStatus};

/// How long [`SyncHandle::shutdown`] waits for each task before aborting it.
const TASK_GRACE: Duration = Duration::from_secs(2);

/// Starts sync, block relay and transaction relay: see the crate docs for what they do.
#[derive(Debug)]
pub struct Syncer;

impl Syncer {
    /// Starts the tasks over `chain`, `pool` and the eth sessions of `peers` (the
    /// registry [`devmux_eth::EthHandler::new`] returned). Call it inside a tokio
    /// runtime; the tasks run until [`SyncHandle::shutdown`].
    pub fn spawn(chain: Chain, pool: Pool, peers: EthPeers, config: SyncConfig) -> SyncHandle {
        let shared = Arc::new(Shared::new(chain, pool, peers, config));
        // Subscribe before anything runs, so that nothing after this call is missed.
        let events = shared.peers.subscribe();
        let added = shared.pool.subscribe();
        let (imports, import_queue) = mpsc::channel(shared.config.block_import_queue.max(1));
        let (fetches, fetch_queue) = mpsc::channel(shared.config.tx_fetch_queue.max(1));
        let router = Router {
            shared: shared.clone(),
            imports,
            fetches,
        };
        let tasks = vec![
            tokio::spawn(sync_loop(shared.clone()).instrument(tracing::debug_span!("sync"))),
            tokio::spawn(
                relay::relay_loop(router, events, added).instrument(tracing::debug_span!("relay")),
            ),
            tokio::spawn(
                blocks::import_loop(shared.clone(), import_queue)
                    .instrument(tracing::debug_span!("block-import")),
            ),
            tokio::spawn(
                fetch::fetch_loop(shared.clone(), fetch_queue)
                    .instrument(tracing::debug_span!("tx-fetch")),
            ),
            tokio::spawn(
                backfill::backfill_loop(shared.clone())
                    .instrument(tracing::debug_span!("receipts-backfill")),
            ),
        ];
        SyncHandle {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }
}

/// The running sync and relay: status, counters, shutdown. Cheap to clone.
#[derive(Clone)]
pub struct SyncHandle {
    pub(crate) shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// Sync progress now (for `eth_syncing`: [`SyncStatus::eth_syncing`]).
    pub fn status(&self) -> SyncStatus {
        *self.shared.status.borrow()
    }

    /// Sync progress as it changes.
    pub fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// The peer whose chain the current sync round downloads (headers come from it;
    /// bodies from every peer that has them), if a round runs.
    pub fn syncing_from(&self) -> Option<PeerId> {
        *lock(&self.shared.round_peer)
    }

    /// Counters since the start.
    pub fn stats(&self) -> SyncStats {
        self.shared.counters.snapshot()
    }

    /// Downloads block `hash` and every ancestor of it we lack from peers, validated and
    /// inserted as a sync round's blocks are; returns the blocks inserted (0 if it was
    /// stored already). For a block no peer announces as its head (a consensus layer's
    /// forkchoice update names it): headers by hash backwards from it, from one peer at
    /// a time (those that announced it first), until a block we have, at most
    /// [`crate::MAX_ANCESTRY`] of them; then bodies and receipts from every peer that has
    /// them. A peer that lies is punished as in a sync round; one that lacks the block
    /// is not. Does not name the head: fork choice does, or the consensus layer
    /// ([`devmux_chain::Chain::set_forkchoice`]).
    ///
    /// Fails with [`Error::Unavailable`] when no peer served it (ask again later),
    /// [`Error::AncestryTooLong`], or a chain error.
    pub async fn fetch_block(&self, hash: B256) -> Result<usize, Error> {
        let shared = self.shared.clone();
        shared
            .or_cancel(crate::ancestry::fetch_block(&shared, hash))
            .await?
    }

    /// Tells peers our head, as when sync or a producer moved it (a `BlockRangeUpdate`
    /// after the merge): for a head a consensus layer named.
    pub async fn announce_head(&self) {
        blocks::announce_head(&self.shared).await;
    }

    /// Asks sync to look for a peer ahead of us now rather than at its next poll.
    pub fn nudge(&self) {
        self.shared.nudge.notify_one();
    }

    /// Whether [`SyncHandle::shutdown`] was called.
    pub fn is_stopped(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Stops every task (a producer made from this handle too), waiting a bounded time
    /// for each. A batch being inserted finishes or is not stored at all (inserts are
    /// atomic).
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(TASK_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The sync task: whenever a peer may be ahead (an announcement, a new session, or the
/// poll), syncs to the best peer ahead of us until none is.
async fn sync_loop(shared: Arc<Shared>) {
    let mut poll =
        tokio::time::interval(shared.config.poll_interval.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = shared.nudge.notified() => {}
            _ = poll.tick() => {}
        }
        let mut progress: Option<Progress> = None;
        while let Some((peer, head)) = best_peer(&shared).await {
            let progress = progress.get_or_insert_with(|| {
                let start = shared.chain.head().number;
                info!(peer = %peer.peer_id(), from = start, "syncing");
                Progress::new(start)
            });
            let before = shared.chain.head();
            *lock(&shared.round_peer) = Some(peer.peer_id());
            let result = run_round(&shared, &peer, head, progress).await;
            *lock(&shared.round_peer) = None;
            let after = shared.chain.head();
            match result {
                Ok(inserted) => {
                    debug!(peer = %peer.peer_id(), inserted, head = after.number, "sync round done");
                }
                Err(Error::ShuttingDown) => return,
                Err(e @ Error::ReorgTooDeep { .. }) => {
                    info!("sync refused: {e}");
                    shared.bench(peer.peer_id(), shared.config.bad_peer_cooldown);
                }
                Err(Error::Chain(devmux_chain::Error::ReorgTooDeep { depth, .. })) => {
                    info!(peer = %peer.peer_id(), depth, "sync refused: the reorg is deeper than the bound");
                    shared.bench(peer.peer_id(), shared.config.bad_peer_cooldown);
                }
                Err(Error::Chain(e @ devmux_chain::Error::ReorgBelowFinalized { .. })) => {
                    info!(peer = %peer.peer_id(), "sync refused: {e}");
                    shared.bench(peer.peer_id(), shared.config.bad_peer_cooldown);
                }
                Err(Error::Chain(e)) => {
                    warn!(error = %e, "sync stopped: the chain store failed");
                    shared.bench(peer.peer_id(), shared.config.retry_cooldown);
                }
                Err(e) if e.peer() == Some(peer.peer_id()) => shared.punish(&peer, &e),
                Err(e) => {
                    debug!(peer = %peer.peer_id(), "sync round failed: {e}");
                    shared.bench(peer.peer_id(), shared.config.retry_cooldown);
                }
            }
            if after.hash != before.hash {
                shared.mark_block(peer.peer_id(), head);
                blocks::announce_head(&shared).await;
            } else {
                // No progress against this peer: let it be for a moment rather than spin.
                shared.bench(peer.peer_id(), shared.config.retry_cooldown);
            }
        }
        if progress.is_some() {
            info!(head = shared.chain.head().number, "in sync");
        }
        let head = shared.chain.head().number;
        shared.status.send_if_modified(|s| {
            let idle = SyncStatus {
                syncing: false,
                starting: s.starting,
                current: head,
                target: head,
                blocks_per_sec: 0.0,
            };
            let changed = *s != idle;
            *s = idle;
            changed
        });
    }
}

/// The best peer ahead of us and its head: the highest announced head (then total
/// difficulty) among peers not benched whose head we do not have.
async fn best_peer(shared: &Shared) -> Option<(EthPeer, B256)> {
    let ours = shared.chain.head();
    let mut ahead: Vec<(EthPeer, PeerHead)> = shared
        .peers
        .list()
        .into_iter()
        .filter(|p| !p.is_closed() && !shared.is_benched(&p.peer_id()))
        .map(|p| {
            let head = p.head();
            (p, head)
        })
        .filter(|(_, h)| {
            h.hash != ours.hash
                && (h
                    .total_difficulty
                    .is_some_and(|td| td > ours.total_difficulty)
                    || h.number.is_some_and(|n| n > ours.number))
        })
        .collect();
    // Among peers with the same head, a random one (the list's order is a hash map's;
    // drawn from the seeded generator in a simulation).
    crate::rng::shuffle_with(&mut ahead, |(p, _)| p.peer_id());
    ahead.sort_by(|(_, a), (_, b)| {
        (b.number, b.total_difficulty).cmp(&(a.number, a.total_difficulty))
    });
    for (peer, head) in ahead {
        match shared.chain.header_by_hash(head.hash).await {
            Ok(Some(_)) => continue,
            Ok(None) => return Some((peer, head.hash)),
            Err(e) => {
                warn!(error = %e, "cannot read the chain store");
                return None;
            }
        }
    }
    None
}
