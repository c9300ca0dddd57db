//! The supervisor's table of connected peers, across both carriers: one
//! connection per peer, the simultaneous-dial tie-break and disconnect reasons;
//! admission and reputation policy come from the [`PeerPool`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use devmux_identity::PeerId;
use tokio::sync::broadcast;
use tracing::warn;

use crate::pool::{Census, Origin, PeerPool};
use crate::{Direction, DisconnectReason, NetworkEvent, PeerInfo, Penalty, ProtocolId, ServerKind};

/// How a connection's keepalive fares: the last ping's round trip and the pings
/// missed in a row, written by its carrier, read by `admin_peers` and metrics.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// The last round trip in microseconds; 0: none yet.
    rtt_micros: std::sync::atomic::AtomicU64,
    missed: std::sync::atomic::AtomicU32,
}

impl Liveness {
    /// A ping came back after `rtt`.
    pub(crate) fn answered(&self, rtt: std::time::Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.rtt_micros.store(micros, Ordering::Relaxed);
        self.missed.store(0, Ordering::Relaxed);
    }

    /// A ping went unanswered; returns how many in a row.
    pub(crate) fn missed(&self) -> u32 {
        self.missed.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sets the count of pings missed in a row.
    pub(crate) fn set_missed(&self, consecutive: u32) {
        self.missed.store(consecutive, Ordering::Relaxed);
    }

    fn rtt(&self) -> Option<std::time::Duration> {
        match self.rtt_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(std::time::Duration::from_micros(micros)),
        }
    }
}

/// One connected peer. `H` is the handle to its connection.
pub(crate) struct PeerEntry<H> {
    pub(crate) conn_id: u64,
    pub(crate) carrier: ServerKind,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) direction: Direction,
    pub(crate) protocols: Vec<ProtocolId>,
    /// The reason given for the disconnect, and whether the peer gave it.
    pub(crate) reason: Option<(DisconnectReason, bool)>,
    pub(crate) handle: H,
}

/// A connection to register with [`PeerTable::admit`].
pub(crate) struct NewConnection<H> {
    pub(crate) peer: PeerId,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) direction: Direction,
    pub(crate) carrier: ServerKind,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) handle: H,
    /// From [`PeerTable::next_id`].
    pub(crate) conn_id: u64,
}

/// What registering a new connection decided.
pub(crate) enum Admission<H> {
    /// The peer was not connected: the connection is its first.
    New,
    /// The new connection replaces this one (simultaneous dial, we lost the old one).
    Replaces(H),
    /// The peer already has a connection that stays; refuse the new one.
    Duplicate,
    /// The pool refuses the peer (limits, ban): tell it why.
    Refused(DisconnectReason),
}

pub(crate) struct PeerTable<H> {
    local: PeerId,
    pool: Arc<PeerPool>,
    peers: Mutex<HashMap<PeerId, PeerEntry<H>>>,
    next_conn_id: AtomicU64,
}

impl<H: Clone> PeerTable<H> {
    pub(crate) fn new(local: PeerId, pool: Arc<PeerPool>) -> Self {
        Self {
            local,
            pool,
            peers: Mutex::new(HashMap::new()),
            next_conn_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<PeerId, PeerEntry<H>>> {
        // A panic while holding the lock would be a bug here; keep serving.
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When both sides dial at once, the connection dialed by the smaller PeerId
    /// wins on both ends; a second connection in the same direction loses.
    fn new_connection_wins(&self, existing: Direction, new: Direction, peer: &PeerId) -> bool {
        if existing == new {
            return false;
        }
        let local_is_smaller = self.local.to_bytes() < peer.to_bytes();
        // Outbound connections were dialed by us.
        (new == Direction::Outbound) == local_is_smaller
    }

    /// Decides on a connection to `peer` from `addr` against the connected set.
    fn decide(
        &self,
        peers: &HashMap<PeerId, PeerEntry<H>>,
        peer: &PeerId,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<Option<H>, Admission<H>> {
        let existing = peers.get(peer);
        if let Some(e) = existing {
            // A stale connection (closing already, or its keepalive missed a ping) gives
            // way to the new one: a peer that reconnects while its old connection is
            // still closing is not cut off.
            let stale = e.reason.is_some() || e.liveness.missed.load(Ordering::Relaxed) > 0;
            if !stale && !self.new_connection_wins(e.direction, direction, peer) {
                return Err(Admission::Duplicate);
            }
        }
        // A replacement is judged without the connection it replaces: a swap from
        // outbound to inbound must still fit the inbound share. If it does not, this
        // end keeps its own connection; the dialers' backoff settles the rest.
        let census = Census::of(
            Origin::of(addr),
            peers
                .iter()
                .filter(|(id, _)| *id != peer)
                .map(|(_, e)| (e.direction, e.remote_addr)),
        );
        match (self.pool.admit(peer, direction, &census), existing) {
            (Ok(()), Some(e)) => Ok(Some(e.handle.clone())),
            (Ok(()), None) => Ok(None),
            (Err(_), Some(_)) => Err(Admission::Duplicate),
            (Err(reason), None) => Err(Admission::Refused(reason)),
        }
    }

    /// Whether a connection to `peer` would be accepted now (checked before the
    /// costly part of a handshake; `admit` decides for real).
    pub(crate) fn would_admit(
        &self,
        peer: &PeerId,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<(), DisconnectReason> {
        match self.decide(&self.lock(), peer, addr, direction) {
            Ok(_) => Ok(()),
            Err(Admission::Refused(reason)) => Err(reason),
            Err(_) => Err(DisconnectReason::AlreadyConnected),
        }
    }

    /// A fresh connection id, for [`PeerTable::admit`].
    pub(crate) fn next_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connection; returns what happened.
    pub(crate) fn admit(&self, new: NewConnection<H>) -> Admission<H> {
        let NewConnection {
            peer,
            remote_addr,
            direction,
            carrier,
            liveness,
            handle,
            conn_id,
        } = new;
        let mut peers = self.lock();
        let admission = match self.decide(&peers, &peer, remote_addr, direction) {
            Ok(None) => Admission::New,
            Ok(Some(old)) => Admission::Replaces(old),
            Err(refused) => return refused,
        };
        peers.insert(
            peer,
            PeerEntry {
                conn_id,
                carrier,
                liveness,
                remote_addr,
                direction,
                protocols: Vec::new(),
                reason: None,
                handle,
            },
        );
        admission
    }

    /// Removes the peer if `conn_id` is still its connection; returns the reason
    /// recorded for the disconnect.
    pub(crate) fn remove(
        &self,
        peer: &PeerId,
        conn_id: u64,
    ) -> Option<Option<(DisconnectReason, bool)>> {
        let mut peers = self.lock();
        match peers.get(peer) {
            Some(e) if e.conn_id == conn_id => peers.remove(peer).map(|e| e.reason),
            _ => None,
        }
    }

    /// The handle of `peer`'s connection if it is still connection `conn_id`.
    pub(crate) fn handle_of(&self, peer: &PeerId, conn_id: u64) -> Option<H> {
        self.lock()
            .get(peer)
            .filter(|e| e.conn_id == conn_id)
            .map(|e| e.handle.clone())
    }

    pub(crate) fn handle(&self, peer: &PeerId) -> Option<H> {
        self.lock().get(peer).map(|e| e.handle.clone())
    }

    /// Every connection's handle.
    pub(crate) fn handles(&self) -> Vec<H> {
        self.lock().values().map(|e| e.handle.clone()).collect()
    }

    /// Records the first reason given for the end of `peer`'s connection `conn_id`
    /// (nothing if that is no longer its connection).
    pub(crate) fn set_reason(
        &self,
        peer: &PeerId,
        conn_id: u64,
        reason: DisconnectReason,
        by_remote: bool,
    ) {
        if let Some(e) = self.lock().get_mut(peer).filter(|e| e.conn_id == conn_id) {
            e.reason.get_or_insert((reason, by_remote));
        }
    }

    /// The remote address of `peer`'s connection.
    pub(crate) fn addr_of(&self, peer: &PeerId) -> Option<SocketAddr> {
        self.lock().get(peer).map(|e| e.remote_addr)
    }

    /// The carrier of `peer`'s connection.
    pub(crate) fn carrier(&self, peer: &PeerId) -> Option<ServerKind> {
        self.lock().get(peer).map(|e| e.carrier)
    }

    pub(crate) fn add_protocol(&self, peer: &PeerId, id: &ProtocolId) {
        if let Some(e) = self.lock().get_mut(peer) {
            if !e.protocols.contains(id) {
                e.protocols.push(id.clone());
            }
        }
    }

    /// Lowers a connected peer's reputation and reports it (log and
    /// [`NetworkEvent::PeerPenalized`]). True if it fell below the floor and is
    /// banned now: the server then disconnects it. Unknown peers are ignored.
    pub(crate) fn penalize(
        &self,
        peer: &PeerId,
        penalty: Penalty,
        why: String,
        events: &broadcast::Sender<NetworkEvent>,
    ) -> bool {
        if !self.contains(peer) {
            return false;
        }
        let below_floor = self.pool.penalize(*peer, penalty.cost()).1;
        warn!(%peer, ?penalty, %why, "peer penalised");
        let _ = events.send(NetworkEvent::PeerPenalized {
            peer: *peer,
            penalty,
            reason: why,
        });
        below_floor
    }
}

impl<H: Clone> PeerTable<H> {
    /// The connected peers.
    pub(crate) fn infos(&self) -> Vec<PeerInfo> {
        self.lock()
            .iter()
            .map(|(id, e)| PeerInfo {
                peer_id: *id,
                remote_addr: e.remote_addr,
                direction: e.direction,
                server: e.carrier,
                ping_rtt: e.liveness.rtt(),
                missed_pings: e.liveness.missed.load(Ordering::Relaxed),
                protocols: e.protocols.clone(),
                reputation: self.pool.reputation(id),
            })
            .collect()
    }

    /// Whether `peer` is connected.
    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.lock().contains_key(peer)
    }

    /// Connected peers in `direction`, over either carrier.
    pub(crate) fn count(&self, direction: Direction) -> usize {
        self.lock()
            .values()
            .filter(|e| e.direction == direction)
            .count()
    }

    /// The admission and reputation policy.
    pub(crate) fn pool(&self) -> &Arc<PeerPool> {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PeerPoolConfig;
    use devmux_identity::NodeKey;

    fn conn<H>(
        peer: PeerId,
        remote_addr: SocketAddr,
        direction: Direction,
        carrier: ServerKind,
        handle: H,
        conn_id: u64,
    ) -> NewConnection<H> {
        NewConnection {
            peer,
            remote_addr,
            direction,
            carrier,
            liveness: Arc::default(),
            handle,
            conn_id,
        }
    }

    fn table<H: Clone>(local: PeerId, max_peers: usize) -> PeerTable<H> {
        let pool = PeerPool::open(PeerPoolConfig {
            max_peers,
            ..Default::default()
        })
        .unwrap();
        PeerTable::new(local, Arc::new(pool))
    }

    #[test]
    fn tie_break_is_the_same_on_both_ends() {
        let (a, b) = (NodeKey::generate().peer_id(), NodeKey::generate().peer_id());
        let ta: PeerTable<()> = table(a, 10);
        let tb: PeerTable<()> = table(b, 10);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // a's dial to b is outbound at a and inbound at b; b's dial is the reverse.
        // Each end first registers its own outbound connection, then sees the other.
        // The carriers differ: the rule is the same across them.
        ta.admit(conn(b, addr, Direction::Outbound, ServerKind::P2p, (), 0));
        tb.admit(conn(a, addr, Direction::Outbound, ServerKind::Rlpx, (), 0));
        let a_switches = matches!(
            ta.admit(conn(b, addr, Direction::Inbound, ServerKind::Rlpx, (), 0)),
            Admission::Replaces(_)
        );
        let b_switches = matches!(
            tb.admit(conn(a, addr, Direction::Inbound, ServerKind::P2p, (), 0)),
            Admission::Replaces(_)
        );
        // Exactly one end switches to its inbound connection: both keep the same one.
        assert_ne!(a_switches, b_switches);
    }

    #[test]
    fn limits_and_reasons() {
        let t: PeerTable<u8> = table(NodeKey::generate().peer_id(), 1);
        let (p, q) = (NodeKey::generate().peer_id(), NodeKey::generate().peer_id());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let id = 7;
        let adm = t.admit(conn(p, addr, Direction::Outbound, ServerKind::Rlpx, 1, id));
        assert!(matches!(adm, Admission::New));
        assert_eq!(
            t.would_admit(&q, addr, Direction::Inbound),
            Err(DisconnectReason::TooManyPeers)
        );
        assert!(matches!(
            t.admit(conn(q, addr, Direction::Inbound, ServerKind::P2p, 2, 8)),
            Admission::Refused(DisconnectReason::TooManyPeers)
        ));
        assert_eq!(
            t.would_admit(&p, addr, Direction::Outbound),
            Err(DisconnectReason::AlreadyConnected)
        );
        // Only the peer's current connection takes a reason; the first one stays.
        t.set_reason(&p, id + 1, DisconnectReason::TooManyPeers, false);
        t.set_reason(&p, id, DisconnectReason::UselessPeer, true);
        t.set_reason(&p, id, DisconnectReason::ClientQuitting, false);
        let (events, mut seen) = broadcast::channel(4);
        assert!(!t.penalize(&p, Penalty::Major, "slow".into(), &events));
        assert!(matches!(
            seen.try_recv(),
            Ok(NetworkEvent::PeerPenalized { peer, penalty: Penalty::Major, reason })
                if peer == p && reason == "slow"
        ));
        assert!(t.penalize(&p, Penalty::Fatal, "forged".into(), &events));
        // Not connected: nothing happens, nothing is reported.
        assert!(!t.penalize(&q, Penalty::Fatal, "absent".into(), &events));
        assert!(seen.try_recv().is_ok());
        assert!(seen.try_recv().is_err());
        assert_eq!(t.remove(&p, id + 1), None);
        assert_eq!(
            t.remove(&p, id),
            Some(Some((DisconnectReason::UselessPeer, true)))
        );
        // Banned now: refused even with room.
        assert_eq!(
            t.would_admit(&p, addr, Direction::Inbound),
            Err(DisconnectReason::UselessPeer)
        );
    }
}
