//! The CPU a peer's blocks can make us spend: root checks (hashing a body's
//! transactions and a block's receipts into their tries) run on the blocking pool,
//! never on the reactor, under three bounds:
//!
//! - node-wide, at most [`SyncConfig::root_check_slots`] checks at once, so that bodies
//!   cannot occupy every blocking thread (the store and the pool need them too);
//! - per peer, one check at a time, so that one peer's bodies wait behind each other and
//!   not in front of everyone else's;
//! - per check, a deadline ([`SyncConfig::request_timeout`], from the moment the check is
//!   asked for, waiting for a slot included). When it passes, the check stops at the next
//!   block and the caller gets [`Error::Overloaded`]: our slowness is never the peer's
//!   fault, so nothing is penalised and the work goes back to be fetched again.
//!
//! [`SyncConfig::root_check_slots`]: crate::SyncConfig::root_check_slots
//! [`SyncConfig::request_timeout`]: crate::SyncConfig::request_timeout

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devmux_network::PeerId;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::shared::lock;
use crate::Error;

/// Set once the check's deadline has passed: work that loops over blocks stops at the
/// next one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cancelled(Arc<AtomicBool>);

impl Cancelled {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a root check found, when it did not simply pass.
#[derive(Debug)]
pub(crate) enum CheckFailed {
    /// The data does not match its header: the peer's fault.
    Invalid(String),
    /// The check saw [`Cancelled`] and stopped.
    Cancelled,
}

/// The budget of [the module docs](self).
pub(crate) struct RootChecks {
    slots: Arc<Semaphore>,
    per_peer: Mutex<HashMap<PeerId, Arc<Semaphore>>>,
    deadline: Duration,
}

impl RootChecks {
    pub(crate) fn new(slots: usize, deadline: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            per_peer: Mutex::new(HashMap::new()),
            deadline,
        }
    }

    /// Runs `check` on the blocking pool for data `peer` sent, within the budget.
    /// [`CheckFailed::Invalid`] becomes [`Error::InvalidBodies`] (the peer's fault); a
    /// passed deadline [`Error::Overloaded`] (ours).
    pub(crate) async fn run<T, F>(&self, peer: PeerId, check: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Cancelled) -> Result<T, CheckFailed> + Send + 'static,
    {
        let deadline = Instant::now() + self.deadline;
        let overloaded = || Error::Overloaded {
            what: "root checks",
            waited: self.deadline,
        };
        let peer_slot = self.peer_slot(peer);
        let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline, peer_slot.acquire_owned()).await
        else {
            return Err(overloaded());
        };
        let Ok(Ok(slot)) =
            tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await
        else {
            return Err(overloaded());
        };
        let cancelled = Cancelled::default();
        let flag = cancelled.clone();
        let task = devmux_chain::blocking::off_reactor(move || {
            // The slot is held until the work stops, whether or not anyone still waits.
            let _slot = slot;
            check(&flag)
        });
        let outcome = match tokio::time::timeout_at(deadline, task).await {
            Ok(joined) => joined.map_err(Error::Task)?,
            Err(_) => {
                cancelled.set();
                return Err(overloaded());
            }
        };
        match outcome {
            Ok(value) => Ok(value),
            Err(CheckFailed::Invalid(why)) => Err(Error::InvalidBodies { peer, why }),
            Err(CheckFailed::Cancelled) => Err(overloaded()),
        }
    }

    fn peer_slot(&self, peer: PeerId) -> Arc<Semaphore> {
        lock(&self.per_peer)
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone()
    }

    /// Forgets the peers for which `keep` is false and that have no check running or
    /// waiting.
    pub(crate) fn retain(&self, keep: impl Fn(&PeerId) -> bool) {
        lock(&self.per_peer).retain(|peer, slot| keep(peer) || Arc::strong_count(slot) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn peer() -> PeerId {
        devmux_network::NodeKey::generate().peer_id()
    }

    /// Blocks its thread until `release` is set, then returns; counts how many ran at
    /// once.
    fn busy(
        running: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        release: Arc<AtomicBool>,
    ) -> impl FnOnce(&Cancelled) -> Result<(), CheckFailed> + Send + 'static {
        move |cancelled| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            while !release.load(Ordering::SeqCst) && !cancelled.is_set() {
                std::thread::sleep(Duration::from_millis(1));
            }
            running.fetch_sub(1, Ordering::SeqCst);
            if cancelled.is_set() {
                Err(CheckFailed::Cancelled)
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_check_per_peer_and_the_node_wide_slots_at_most() {
        let checks = Arc::new(RootChecks::new(3, Duration::from_secs(30)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let (a, b) = (peer(), peer());
        // Peer a asks for 4 checks, peer b for 4: a runs one at a time, so does b.
        let mut tasks = Vec::new();
        for p in [a, a, a, a, b, b, b, b] {
            let work = busy(running.clone(), peak.clone(), release.clone());
            let checks = checks.clone();
            tasks.push(tokio::spawn(async move { checks.run(p, work).await }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(running.load(Ordering::SeqCst), 2, "one per peer");
        release.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);

        // Four peers, three node-wide slots: three at once.
        let (running, peak, release) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let work = busy(running.clone(), peak.clone(), release.clone());
            let checks = checks.clone();
            let p = peer();
            tasks.push(tokio::spawn(async move { checks.run(p, work).await }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(running.load(Ordering::SeqCst), 3, "the node-wide slots");
        release.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_past_its_deadline_stops_and_blames_nobody() {
        let checks = RootChecks::new(1, Duration::from_millis(300));
        let running = Arc::new(AtomicUsize::new(0));
        let never = Arc::new(AtomicBool::new(false));
        let p = peer();
        let started = Instant::now();
        let err = checks
            .run(p, busy(running.clone(), Arc::default(), never.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Overloaded { .. }), "{err}");
        assert_eq!(err.peer(), None, "our overload is not the peer's fault");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The work saw the flag and stopped, giving its slot back: the next check runs.
        let ok = checks.run(p, |_: &Cancelled| Ok(7)).await.unwrap();
        assert_eq!(ok, 7);
        assert_eq!(running.load(Ordering::SeqCst), 0);

        // Data that does not match is the peer's fault.
        let err = checks
            .run(p, |_: &Cancelled| {
                Err::<(), _>(CheckFailed::Invalid("root".into()))
            })
            .await
            .unwrap_err();
        assert_eq!(err.peer(), Some(p));
    }

    #[tokio::test]
    async fn idle_peers_are_forgotten() {
        let checks = RootChecks::new(1, Duration::from_secs(1));
        let p = peer();
        checks.run(p, |_: &Cancelled| Ok(())).await.unwrap();
        assert_eq!(lock(&checks.per_peer).len(), 1);
        checks.retain(|_| false);
        assert!(lock(&checks.per_peer).is_empty());
    }
}
