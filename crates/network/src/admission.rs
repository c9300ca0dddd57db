//! Admission before cost: which accepted sockets may run a handshake at all.
//!
//! Every accepted socket, on either carrier, first passes the address ban check
//! (before any cryptography) and then takes a slot in [`PendingHandshakes`]:
//! budgets per address, per /24 (/64) and overall. A full budget never refuses
//! the newcomer: it closes the pending handshake in the same budget that got least
//! far (no message understood, then no key proven) and, among those, one we have
//! already read from before one we have not got to yet (a loaded node's delay is
//! not the peer's silence), then the one that has gone longest without sending a
//! byte, so a peer that holds sockets open and silent cannot lock out one that
//! talks, even from the same address. A socket that
//! sends nothing within [`AdmissionConfig::first_byte_timeout`] is closed too
//! (no penalty: it may be a port scan); then each handshake step has its own
//! deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use devmux_transport::ReadActivity;
use tokio_util::sync::CancellationToken;

use crate::pool::Origin;

/// Budgets for handshakes under way, on both carriers together.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// Handshakes under way at once, from everyone.
    pub max_pending: usize,
    /// Handshakes under way at once from one IP address.
    pub max_pending_per_ip: usize,
    /// Handshakes under way at once from one /24 (IPv4) or /64 (IPv6).
    pub max_pending_per_subnet: usize,
    /// A socket that sends no byte this long after accept is closed.
    pub first_byte_timeout: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_pending: 64,
            max_pending_per_ip: 8,
            max_pending_per_subnet: 32,
            first_byte_timeout: Duration::from_secs(3),
        }
    }
}

/// Which handshakes share a budget with a newcomer.
#[derive(Clone, Copy)]
enum Budget {
    Address,
    Subnet,
    Everyone,
}

impl Budget {
    fn shared(self, newcomer: Origin, other: Origin) -> bool {
        match self {
            Budget::Address => newcomer == other,
            Budget::Subnet => newcomer.subnet() == other.subnet(),
            Budget::Everyone => true,
        }
    }
}

struct Entry {
    origin: Origin,
    activity: Arc<ReadActivity>,
    evict: CancellationToken,
}

struct State {
    next_id: u64,
    entries: HashMap<u64, Entry>,
}

/// The handshakes under way and their budgets.
pub(crate) struct PendingHandshakes {
    config: AdmissionConfig,
    state: Mutex<State>,
}

/// A handshake's place in the budget; dropping it frees the place.
pub(crate) struct PendingSlot {
    id: u64,
    owner: Arc<PendingHandshakes>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.owner.lock().entries.remove(&self.id);
    }
}

/// What admitting a socket gives its handshake.
pub(crate) struct Admitted {
    /// Its place in the budget, held until the socket is gone or admitted as a peer.
    pub(crate) slot: PendingSlot,
    /// Stamped by every read: how the budget tells a talking socket from a silent one.
    pub(crate) activity: Arc<ReadActivity>,
    /// Cancelled when the budget closes this handshake to make room.
    pub(crate) evicted: CancellationToken,
}

impl PendingHandshakes {
    pub(crate) fn new(config: AdmissionConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::new(State {
                next_id: 0,
                entries: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for a socket from `addr`, first evicting, in each budget that is
    /// full, the handshake silent for longest. Returns how many were evicted too.
    /// Handshakes holding a place now.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub(crate) fn admit(self: &Arc<Self>, addr: SocketAddr) -> (Admitted, usize) {
        let origin = Origin::of(addr);
        let c = &self.config;
        let budgets = [
            (c.max_pending_per_ip, Budget::Address),
            (c.max_pending_per_subnet, Budget::Subnet),
            (c.max_pending, Budget::Everyone),
        ];
        let mut state = self.lock();
        let mut evicted = 0;
        for (cap, budget) in budgets {
            loop {
                let mut in_budget = state
                    .entries
                    .iter()
                    .filter(|(_, e)| budget.shared(origin, e.origin));
                let Some(first) = in_budget.next() else { break };
                // Least far first; then one we have read from before one we have not
                // got to yet (its bytes may be waiting on us); then silent longest,
                // then oldest.
                let rank = |(id, e): (&u64, &Entry)| {
                    let a = &e.activity;
                    (a.stage(), !a.looked(), a.silent_since(), *id)
                };
                let (count, stalest) = in_budget.fold((1, first), |(n, stalest), e| {
                    let first = rank(e) < rank(stalest);
                    (n + 1, if first { e } else { stalest })
                });
                if count < cap.max(1) {
                    break;
                }
                let id = *stalest.0;
                if let Some(e) = state.entries.remove(&id) {
                    e.evict.cancel();
                    evicted += 1;
                }
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let activity = Arc::new(ReadActivity::new());
        let evict = CancellationToken::new();
        state.entries.insert(
            id,
            Entry {
                origin,
                activity: activity.clone(),
                evict: evict.clone(),
            },
        );
        let slot = PendingSlot {
            id,
            owner: self.clone(),
        };
        (
            Admitted {
                slot,
                activity,
                evicted: evict,
            },
            evicted,
        )
    }
}

/// Completes once `activity` has gone `timeout` since accept without a byte; never,
/// once a byte arrived.
pub(crate) async fn first_byte_missed(activity: &ReadActivity, timeout: Duration) {
    tokio::time::sleep(timeout).await;
    if activity.has_read() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ip: usize, subnet: usize, all: usize) -> AdmissionConfig {
        AdmissionConfig {
            max_pending: all,
            max_pending_per_ip: ip,
            max_pending_per_subnet: subnet,
            ..AdmissionConfig::default()
        }
    }

    #[test]
    fn a_full_budget_evicts_the_longest_silent_not_the_newcomer() {
        let pending = PendingHandshakes::new(config(3, 10, 10));
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let (talker, _) = pending.admit(a);
        let (silent1, _) = pending.admit(a);
        let (silent2, _) = pending.admit(a);
        // The first one talks (later than the others were accepted).
        std::thread::sleep(Duration::from_millis(5));
        // A read stamps it (a watched Counted socket does, on every read).
        talker.activity.record_read();
        let (newcomer, evicted) = pending.admit(a);
        assert_eq!(evicted, 1);
        assert!(
            silent1.evicted.is_cancelled(),
            "the longest silent goes first"
        );
        assert!(!silent2.evicted.is_cancelled());
        assert!(!talker.evicted.is_cancelled());
        assert!(!newcomer.evicted.is_cancelled());
        assert_eq!(pending.len(), 3);
        // Another address has its own per-IP budget.
        let (_other, evicted) = pending.admit("10.0.0.2:1".parse().unwrap());
        assert_eq!(evicted, 0);
        drop(newcomer);
        assert_eq!(pending.len(), 3); // silent1's place was freed by the eviction
    }

    #[test]
    fn a_handshake_that_got_further_is_evicted_last() {
        let pending = PendingHandshakes::new(config(2, 10, 10));
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let (proven, _) = pending.admit(a);
        let (chatty, _) = pending.admit(a);
        proven.activity.reached(2);
        // The chatty one sent a byte more recently, but proved nothing.
        std::thread::sleep(Duration::from_millis(2));
        chatty.activity.record_read();
        let (_newcomer, evicted) = pending.admit(a);
        assert_eq!(evicted, 1);
        assert!(chatty.evicted.is_cancelled());
        assert!(!proven.evicted.is_cancelled());
    }

    #[test]
    fn a_socket_we_have_not_read_yet_outlasts_one_that_went_quiet() {
        let pending = PendingHandshakes::new(config(2, 10, 10));
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        // Accepted first, but its handshake task has not run yet (a busy node).
        let (waiting, _) = pending.admit(a);
        let (stalled, _) = pending.admit(a);
        // The stalled one was read: a header, then nothing.
        std::thread::sleep(Duration::from_millis(2));
        stalled.activity.record_poll();
        stalled.activity.record_read();
        let (_newcomer, evicted) = pending.admit(a);
        assert_eq!(evicted, 1);
        assert!(stalled.evicted.is_cancelled());
        assert!(!waiting.evicted.is_cancelled());
        // Once looked at and still silent, it is the longest silent of its stage.
        waiting.activity.record_poll();
        let (_next, evicted) = pending.admit(a);
        assert_eq!(evicted, 1);
        assert!(waiting.evicted.is_cancelled());
    }

    #[test]
    fn subnet_and_overall_budgets_hold_across_addresses() {
        let pending = PendingHandshakes::new(config(8, 2, 3));
        let slots: Vec<_> = (1..=2)
            .map(|i| pending.admit(format!("10.0.0.{i}:1").parse().unwrap()).0)
            .collect();
        // A third from the same /24 evicts one of them; one from elsewhere fits.
        let (_third, evicted) = pending.admit("10.0.0.3:1".parse().unwrap());
        assert_eq!(evicted, 1);
        assert!(slots[0].evicted.is_cancelled());
        let (_elsewhere, evicted) = pending.admit("10.9.0.1:1".parse().unwrap());
        assert_eq!(evicted, 0);
        // The overall budget (3) is full now: the next evicts the longest silent.
        let (_next, evicted) = pending.admit("10.8.0.1:1".parse().unwrap());
        assert_eq!(evicted, 1);
        assert!(slots[1].evicted.is_cancelled());
        assert_eq!(pending.len(), 3);
    }
}
