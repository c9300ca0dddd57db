//! The transaction fetcher: asks announcing peers for the transactions we lack
//! (`GetPooledTransactions`) and hands them to the pool.
//!
//! Bounded everywhere: announcements wait in a short queue (the relay drops them when
//! it is full), at most [`crate::SyncConfig::max_tx_fetches`] requests are in flight and
//! at most [`crate::SyncConfig::max_tx_fetch_hashes`] hashes are being fetched; nothing
//! is fetched while the pool is full, or of a type or size the pool refuses. A hash
//! being fetched is not asked of a second peer; up to [`MAX_ALTERNATES`] other peers
//! that announced it are remembered, and asked in turn if the first does not deliver.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use devmux_eth::alloy_eips::eip2718::Encodable2718;
use devmux_eth::alloy_eips::Typed2718;
use devmux_eth::alloy_primitives::B256;
use devmux_eth::{limits, EthPeer, NewPooledTransactionHashes, TxPool};
use devmux_network::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::debug;

use crate::shared::Shared;
use crate::status::add;
use crate::Error;

/// Other announcers remembered per hash being fetched.
pub(crate) const MAX_ALTERNATES: usize = 4;

/// An announcement for the fetcher.
#[derive(Debug)]
pub(crate) struct FetchRequest {
    pub(crate) peer: PeerId,
    pub(crate) announcement: NewPooledTransactionHashes,
}

/// A transaction wanted, with its announced type and size (eth/68+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wanted {
    hash: B256,
    meta: Option<(u8, u64)>,
}

struct InFlight {
    since: Instant,
    alternates: Vec<(PeerId, Option<(u8, u64)>)>,
}

struct Done {
    peer: EthPeer,
    wanted: Vec<Wanted>,
    delivered: HashSet<B256>,
    fault: Option<Error>,
}

struct Fetcher {
    shared: Arc<Shared>,
    in_flight: HashMap<B256, InFlight>,
    tasks: JoinSet<Done>,
}

pub(crate) async fn fetch_loop(shared: Arc<Shared>, mut queue: mpsc::Receiver<FetchRequest>) {
    let max = shared.config.max_tx_fetches.max(1);
    let mut fetcher = Fetcher {
        shared: shared.clone(),
        in_flight: HashMap::new(),
        tasks: JoinSet::new(),
    };
    let mut expire = tokio::time::interval(Duration::from_secs(5));
    expire.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            request = queue.recv(), if fetcher.tasks.len() < max => match request {
                Some(request) => fetcher.start(request),
                None => return,
            },
            Some(done) = fetcher.tasks.join_next(), if !fetcher.tasks.is_empty() => match done {
                Ok(done) => fetcher.finish(done),
                Err(e) => debug!(error = %e, "transaction fetch task failed"),
            },
            _ = expire.tick() => fetcher.expire(),
        }
    }
}

impl Fetcher {
    fn start(&mut self, request: FetchRequest) {
        let wanted: Vec<Wanted> = match request.announcement {
            NewPooledTransactionHashes::Hashes(hashes) => hashes
                .into_iter()
                .map(|hash| Wanted { hash, meta: None })
                .collect(),
            NewPooledTransactionHashes::Typed(txs) => txs
                .into_iter()
                .map(|t| Wanted {
                    hash: t.hash,
                    meta: Some((t.ty, t.size)),
                })
                .collect(),
        };
        let shared = &self.shared;
        let pool = shared.pool.config();
        if shared.pool.len() >= pool.max_count {
            // The pool would refuse them.
            add(&shared.counters.dropped, wanted.len() as u64);
            return;
        }
        let Some(peer) = shared.peers.get(&request.peer) else {
            return;
        };
        let mut fetch = Vec::new();
        for w in wanted {
            if let Some((ty, size)) = w.meta {
                if !pool.types.contains(&ty) || size > pool.max_tx_size as u64 {
                    continue;
                }
            }
            if shared.pool.contains(&w.hash) {
                continue;
            }
            if let Some(entry) = self.in_flight.get_mut(&w.hash) {
                if entry.alternates.len() < MAX_ALTERNATES
                    && !entry.alternates.iter().any(|(p, _)| *p == request.peer)
                {
                    entry.alternates.push((request.peer, w.meta));
                }
                continue;
            }
            if self.in_flight.len() >= shared.config.max_tx_fetch_hashes {
                add(&shared.counters.dropped, 1);
                continue;
            }
            self.in_flight.insert(
                w.hash,
                InFlight {
                    since: Instant::now(),
                    alternates: Vec::new(),
                },
            );
            fetch.push(w);
        }
        self.spawn(&peer, fetch);
    }

    fn spawn(&mut self, peer: &EthPeer, wanted: Vec<Wanted>) {
        for chunk in wanted.chunks(limits::MAX_POOLED_TXS_SERVE) {
            self.tasks
                .spawn(fetch(self.shared.clone(), peer.clone(), chunk.to_vec()));
        }
    }

    fn finish(&mut self, done: Done) {
        let shared = self.shared.clone();
        if let Some(fault) = &done.fault {
            shared.punish(&done.peer, fault);
        }
        let asked = done.peer.peer_id();
        let mut retry: HashMap<PeerId, Vec<Wanted>> = HashMap::new();
        for w in done.wanted {
            let Some(entry) = self.in_flight.remove(&w.hash) else {
                continue;
            };
            if done.delivered.contains(&w.hash) || shared.pool.contains(&w.hash) {
                continue;
            }
            let mut alternates = entry.alternates.into_iter().filter(|(p, _)| *p != asked);
            if let Some((next, meta)) = alternates.next() {
                self.in_flight.insert(
                    w.hash,
                    InFlight {
                        since: Instant::now(),
                        alternates: alternates.collect(),
                    },
                );
                retry
                    .entry(next)
                    .or_default()
                    .push(Wanted { hash: w.hash, meta });
            }
        }
        for (peer, wanted) in retry {
            match shared.peers.get(&peer) {
                Some(peer) => self.spawn(&peer, wanted),
                None => {
                    for w in wanted {
                        self.in_flight.remove(&w.hash);
                    }
                }
            }
        }
    }

    /// Forgets fetches that never finished (their task failed), so that the hashes can
    /// be fetched again.
    fn expire(&mut self) {
        let limit = self.shared.config.request_timeout * 6;
        self.in_flight.retain(|_, f| f.since.elapsed() < limit);
    }
}

/// Fetches `wanted` from `peer`, checks them against their announcement, and adds them
/// to the pool (which discards invalid ones quietly).
async fn fetch(shared: Arc<Shared>, peer: EthPeer, wanted: Vec<Wanted>) -> Done {
    let hashes: Vec<B256> = wanted.iter().map(|w| w.hash).collect();
    let mut done = Done {
        peer: peer.clone(),
        wanted,
        delivered: HashSet::new(),
        fault: None,
    };
    let txs = match shared
        .request(&peer, peer.get_pooled_transactions(hashes))
        .await
    {
        Ok(txs) => txs,
        Err(e) => {
            done.fault = Some(e);
            return done;
        }
    };
    let meta: HashMap<B256, Option<(u8, u64)>> =
        done.wanted.iter().map(|w| (w.hash, w.meta)).collect();
    let mut good = Vec::with_capacity(txs.len());
    for tx in txs {
        let hash = *tx.hash();
        if let Some(Some((ty, size))) = meta.get(&hash) {
            let (got_ty, got_size) = (tx.ty(), tx.encode_2718_len() as u64);
            if got_ty != *ty || got_size != *size {
                done.fault = Some(Error::InvalidTransactions {
                    peer: peer.peer_id(),
                    why: format!(
                        "{hash}: announced type {ty} size {size}, is type {got_ty} size {got_size}"
                    ),
                });
                continue;
            }
        }
        done.delivered.insert(hash);
        good.push(tx);
    }
    add(&shared.counters.txs_fetched, good.len() as u64);
    if !good.is_empty() {
        // Invalid transactions are dropped by the pool without a word (devp2p/caps/eth.md).
        let _ = shared.or_cancel(TxPool::insert(&shared.pool, good)).await;
    }
    done
}
