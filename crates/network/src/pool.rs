//! Peer policy shared by both servers: limits, reputation, bans and trust.
//!
//! The servers' peer tables ([`crate::peers`]) ask the pool whether to admit a
//! connection; the dialer asks it whether to dial. Bans outlive the process in a
//! small redb file of their own.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devmux_identity::PeerId;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tracing::{debug, warn};
// tokio's clock: std's in production, the simulated one in a simulation.
use tokio::time::Instant;

use crate::{Direction, DisconnectReason, Error};

/// Reputation below which a peer is disconnected and banned.
pub const REPUTATION_FLOOR: i32 = -100;
/// Reputations remembered for peers that left, so reconnecting does not wipe them.
const REMEMBERED_REPUTATIONS: usize = 4096;
/// Bans remembered at most; the oldest expiry goes first.
const MAX_BANS: usize = 65536;

const BANS: TableDefinition<'_, &[u8], u64> = TableDefinition::new("bans");
/// Address bans: the IP's octets (4 or 16) to the ban's expiry in Unix seconds.
const ADDRESS_BANS: TableDefinition<'_, &[u8], u64> = TableDefinition::new("address_bans");
/// Addresses whose recent faults are remembered; the least recently faulting go first.
const FAULTY_ADDRESSES: u32 = 4096;

/// Peer limits and policy. Defaults suit a public node; tests shrink them.
#[derive(Clone, Debug)]
pub struct PeerPoolConfig {
    /// Most peers at once, both directions.
    pub max_peers: usize,
    /// Most inbound peers; the rest of `max_peers` is kept for our own dials.
    /// Defaults to two thirds of `max_peers`.
    pub max_inbound: Option<usize>,
    /// Outbound peers the dialer keeps (from discovery). Defaults to a third of
    /// `max_peers`, at least one.
    pub outbound_target: Option<usize>,
    /// Established connections from one IP address (loopback too: 127.0.0.1 and
    /// 127.0.0.2 are different hosts, so local networks give each node its own).
    pub max_per_ip: usize,
    /// Established connections from one /24 (IPv4) or /64 (IPv6).
    pub max_per_subnet: usize,
    /// Dials running at once.
    pub max_concurrent_dials: usize,
    /// How long a peer that fell below [`REPUTATION_FLOOR`] stays banned.
    pub ban_duration: Duration,
    /// Reputation a peer regains per minute, up to 0.
    pub reputation_recovery_per_minute: i32,
    /// Distinct keys from one address that may fault (a major penalty, a broken
    /// handshake) within [`PeerPoolConfig::address_fault_window`]; one more bans the
    /// address for `ban_duration`, checked at accept before any cryptography.
    pub address_fault_limit: usize,
    /// The window of [`PeerPoolConfig::address_fault_limit`].
    pub address_fault_window: Duration,
    /// Peers that bypass every limit and ban (static peers are added too).
    pub trusted: Vec<PeerId>,
    /// Where bans are stored across restarts (a redb file); `None` keeps them in
    /// memory only.
    pub store: Option<PathBuf>,
}

impl Default for PeerPoolConfig {
    fn default() -> Self {
        Self {
            max_peers: 50,
            max_inbound: None,
            outbound_target: None,
            max_per_ip: 4,
            max_per_subnet: 16,
            max_concurrent_dials: 8,
            ban_duration: Duration::from_secs(15 * 60),
            reputation_recovery_per_minute: 30,
            address_fault_limit: 10,
            address_fault_window: Duration::from_secs(60),
            trusted: Vec::new(),
            store: None,
        }
    }
}

impl PeerPoolConfig {
    /// The inbound limit in force.
    pub fn inbound_limit(&self) -> usize {
        self.max_inbound
            .unwrap_or_else(|| (self.max_peers * 2).div_ceil(3))
            .min(self.max_peers)
    }

    /// The outbound target in force.
    pub fn outbound_target(&self) -> usize {
        self.outbound_target
            .unwrap_or_else(|| (self.max_peers / 3).max(1))
            .min(self.max_peers)
    }
}

/// Where a connection comes from, for per-IP and per-subnet counting: its IP
/// address, loopback included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin(pub(crate) IpAddr);

impl Origin {
    pub(crate) fn of(addr: SocketAddr) -> Self {
        Origin(addr.ip())
    }

    /// Its /24 (IPv4) or /64 (IPv6).
    pub(crate) fn subnet(self) -> Self {
        match self.0 {
            IpAddr::V4(ip) => {
                let [a, b, c, _] = ip.octets();
                Origin(IpAddr::from([a, b, c, 0]))
            }
            IpAddr::V6(ip) => {
                let mut octets = ip.octets();
                octets[8..].fill(0);
                Origin(IpAddr::from(octets))
            }
        }
    }
}

/// What the pool knows about the connected set when it decides.
pub(crate) struct Census {
    pub(crate) total: usize,
    pub(crate) inbound: usize,
    pub(crate) same_ip: usize,
    pub(crate) same_subnet: usize,
}

impl Census {
    pub(crate) fn of<'a>(
        origin: Origin,
        peers: impl Iterator<Item = (Direction, SocketAddr)> + 'a,
    ) -> Self {
        let mut census = Census {
            total: 0,
            inbound: 0,
            same_ip: 0,
            same_subnet: 0,
        };
        for (direction, addr) in peers {
            let other = Origin::of(addr);
            census.total += 1;
            census.inbound += usize::from(direction == Direction::Inbound);
            census.same_ip += usize::from(other == origin);
            census.same_subnet += usize::from(other.subnet() == origin.subnet());
        }
        census
    }
}

struct State {
    trusted: HashSet<PeerId>,
    /// Ban expiry, as Unix seconds (they must survive restarts).
    bans: HashMap<PeerId, u64>,
    /// Address ban expiry, as Unix seconds.
    address_bans: HashMap<IpAddr, u64>,
    /// Recent faults per address: when, and by which key (`None`: before any key was
    /// known, each counted as its own).
    address_faults: schnellru::LruMap<IpAddr, Vec<(Instant, Option<PeerId>)>>,
    /// Reputation and when it was last set, for peers connected or recently seen.
    reputation: HashMap<PeerId, (i32, Instant)>,
}

/// The policy object. Cheap to share.
pub(crate) struct PeerPool {
    config: PeerPoolConfig,
    state: Mutex<State>,
    db: Option<Arc<redb::Database>>,
}

/// The time left of `key`'s ban in `bans` (expiries in Unix seconds), forgetting it
/// once expired.
fn remaining<K: std::hash::Hash + Eq>(bans: &mut HashMap<K, u64>, key: &K) -> Option<Duration> {
    let expiry = *bans.get(key)?;
    let now = unix_now();
    if expiry <= now {
        bans.remove(key);
        return None;
    }
    Some(Duration::from_secs(expiry - now))
}

/// Bans `key` in `bans` for `duration` (at least a second); at [`MAX_BANS`] the ban
/// that expires first makes room. Returns the expiry.
fn insert_ban<K: std::hash::Hash + Eq + Copy>(
    bans: &mut HashMap<K, u64>,
    key: K,
    duration: Duration,
) -> u64 {
    let expiry = unix_now().saturating_add(duration.as_secs().max(1));
    if bans.len() >= MAX_BANS {
        if let Some(oldest) = bans.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
            bans.remove(&oldest);
        }
    }
    bans.insert(key, expiry);
    expiry
}

/// The address whose octets are `bytes` (4 or 16 of them).
fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The unexpired bans in a peer store file ([`PeerPoolConfig::store`]): what a node
/// started on it would enforce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredBans {
    /// Peers banned by key.
    pub keys: usize,
    /// Addresses banned.
    pub addresses: usize,
}

/// Reads the bans stored at `path` as a starting node loads them (so a check after a
/// crash sees exactly what the next start would), while no node holds the file.
pub fn stored_bans(path: &Path) -> Result<StoredBans, Error> {
    let pool = PeerPool::open(PeerPoolConfig {
        store: Some(path.to_path_buf()),
        ..PeerPoolConfig::default()
    })?;
    let state = pool.lock();
    Ok(StoredBans {
        keys: state.bans.len(),
        addresses: state.address_bans.len(),
    })
}

impl PeerPool {
    /// Opens the pool, loading unexpired bans from the store.
    pub(crate) fn open(config: PeerPoolConfig) -> Result<Self, Error> {
        let mut bans = HashMap::new();
        let mut address_bans = HashMap::new();
        let db = match &config.store {
            None => None,
            Some(path) => {
                let db = redb::Database::create(path).map_err(|e| Error::Store(e.into()))?;
                let now = unix_now();
                let read = db.begin_read().map_err(|e| Error::Store(e.into()))?;
                match read.open_table(BANS) {
                    Ok(table) => {
                        for row in table.iter().map_err(|e| Error::Store(e.into()))? {
                            let (k, v) = row.map_err(|e| Error::Store(e.into()))?;
                            if let (Ok(peer), expiry) = (PeerId::from_bytes(k.value()), v.value()) {
                                if expiry > now {
                                    bans.insert(peer, expiry);
                                }
                            }
                        }
                    }
                    Err(redb::TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(Error::Store(e.into())),
                }
                match read.open_table(ADDRESS_BANS) {
                    Ok(table) => {
                        for row in table.iter().map_err(|e| Error::Store(e.into()))? {
                            let (k, v) = row.map_err(|e| Error::Store(e.into()))?;
                            if let (Some(ip), expiry) = (ip_of(k.value()), v.value()) {
                                if expiry > now {
                                    address_bans.insert(ip, expiry);
                                }
                            }
                        }
                    }
                    Err(redb::TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(Error::Store(e.into())),
                }
                Some(Arc::new(db))
            }
        };
        let trusted = config.trusted.iter().copied().collect();
        Ok(Self {
            config,
            state: Mutex::new(State {
                trusted,
                bans,
                address_bans,
                address_faults: schnellru::LruMap::new(schnellru::ByLength::new(FAULTY_ADDRESSES)),
                reputation: HashMap::new(),
            }),
            db,
        })
    }

    pub(crate) fn config(&self) -> &PeerPoolConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn trust(&self, peer: PeerId) {
        self.lock().trusted.insert(peer);
    }

    pub(crate) fn is_trusted(&self, peer: &PeerId) -> bool {
        self.lock().trusted.contains(peer)
    }

    /// Whether `peer`'s key is banned (and not trusted).
    pub(crate) fn refuses_key(&self, peer: &PeerId) -> bool {
        !self.is_trusted(peer) && self.banned(peer).is_some()
    }

    /// Remaining ban time, if banned.
    pub(crate) fn banned(&self, peer: &PeerId) -> Option<Duration> {
        remaining(&mut self.lock().bans, peer)
    }

    /// Bans `peer` for `duration` and stores the ban.
    pub(crate) fn ban(&self, peer: PeerId, duration: Duration) {
        let expiry = insert_ban(&mut self.lock().bans, peer, duration);
        warn!(%peer, ?duration, "peer banned");
        self.store(BANS, peer.to_bytes(), expiry);
    }

    /// Stores a ban (`key` → `expiry`) in `table`, dropping expired ones, off the
    /// reactor.
    fn store(
        &self,
        table: TableDefinition<'static, &'static [u8], u64>,
        key: Vec<u8>,
        expiry: u64,
    ) {
        let Some(db) = self.db.clone() else {
            return;
        };
        // redb blocks: write off the reactor.
        let write = move || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(table)?;
                table.insert(key.as_slice(), expiry)?;
                let now = unix_now();
                table.retain(|_, e| e > now)?;
            }
            tx.commit()?;
            Ok(())
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || {
                    if let Err(e) = write() {
                        warn!(error = %e, "ban not stored");
                    }
                });
            }
            Err(_) => {
                if let Err(e) = write() {
                    warn!(error = %e, "ban not stored");
                }
            }
        }
    }

    /// Remaining ban time of an address, if banned.
    pub(crate) fn address_banned(&self, ip: &IpAddr) -> Option<Duration> {
        remaining(&mut self.lock().address_bans, ip)
    }

    /// Bans every connection from `ip` for `duration` and stores the ban.
    pub(crate) fn ban_address(&self, ip: IpAddr, duration: Duration) {
        let expiry = insert_ban(&mut self.lock().address_bans, ip, duration);
        warn!(%ip, ?duration, "address banned");
        let octets = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        self.store(ADDRESS_BANS, octets, expiry);
    }

    /// Records a fault from `ip` (by `key`, if known); returns true if the address is
    /// banned now: more than `address_fault_limit` distinct keys faulted within the
    /// window. A trusted key's faults do not count.
    pub(crate) fn address_fault(&self, ip: IpAddr, key: Option<PeerId>) -> bool {
        let over = {
            let mut state = self.lock();
            if key.is_some_and(|k| state.trusted.contains(&k)) {
                return false;
            }
            let window = self.config.address_fault_window;
            let Some(faults) = state.address_faults.get_or_insert(ip, Vec::new) else {
                return false;
            };
            faults.retain(|(at, _)| at.elapsed() < window);
            if key.is_none() || !faults.iter().any(|(_, k)| *k == key) {
                faults.push((Instant::now(), key));
            }
            let over = faults.len() > self.config.address_fault_limit;
            if over {
                faults.clear();
            }
            over
        };
        if over {
            self.ban_address(ip, self.config.ban_duration);
        }
        over
    }

    /// Whether to admit a connection from `peer` given the connected set.
    pub(crate) fn admit(
        &self,
        peer: &PeerId,
        direction: Direction,
        census: &Census,
    ) -> Result<(), DisconnectReason> {
        if self.is_trusted(peer) {
            return Ok(());
        }
        if let Some(left) = self.banned(peer) {
            debug!(%peer, ?left, "refusing banned peer");
            return Err(DisconnectReason::UselessPeer);
        }
        let c = &self.config;
        if census.total >= c.max_peers
            || (direction == Direction::Inbound && census.inbound >= c.inbound_limit())
            || census.same_ip >= c.max_per_ip
            || census.same_subnet >= c.max_per_subnet
        {
            return Err(DisconnectReason::TooManyPeers);
        }
        Ok(())
    }

    /// The reputation a (re)connecting peer starts with.
    pub(crate) fn reputation(&self, peer: &PeerId) -> i32 {
        let state = self.lock();
        state
            .reputation
            .get(peer)
            .map_or(0, |(rep, at)| self.recovered(*rep, *at))
    }

    fn recovered(&self, rep: i32, since: Instant) -> i32 {
        let minutes = since.elapsed().as_secs_f64() / 60.0;
        let regained = (minutes * f64::from(self.config.reputation_recovery_per_minute)) as i64;
        (i64::from(rep) + regained).min(0) as i32
    }

    /// Applies a penalty; returns the new reputation and whether the peer must go
    /// (it fell below the floor and is now banned). Trusted peers are never banned.
    pub(crate) fn penalize(&self, peer: PeerId, cost: i32) -> (i32, bool) {
        let (rep, below) = {
            let mut state = self.lock();
            let current = state
                .reputation
                .get(&peer)
                .map_or(0, |(rep, at)| self.recovered(*rep, *at));
            let rep = current.saturating_sub(cost);
            if state.reputation.len() >= REMEMBERED_REPUTATIONS
                && !state.reputation.contains_key(&peer)
            {
                // Forget the best-behaved peer first: its record matters least.
                if let Some(best) = state
                    .reputation
                    .iter()
                    .max_by_key(|(_, (r, _))| *r)
                    .map(|(p, _)| *p)
                {
                    state.reputation.remove(&best);
                }
            }
            state.reputation.insert(peer, (rep, Instant::now()));
            (
                rep,
                rep < REPUTATION_FLOOR && !state.trusted.contains(&peer),
            )
        };
        if below {
            self.ban(peer, self.config.ban_duration);
        }
        (rep, below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devmux_identity::NodeKey;

    fn census(total: usize, inbound: usize, same_ip: usize, same_subnet: usize) -> Census {
        Census {
            total,
            inbound,
            same_ip,
            same_subnet,
        }
    }

    #[test]
    fn limits_split_and_subnets() {
        let pool = PeerPool::open(PeerPoolConfig {
            max_peers: 6,
            max_per_ip: 2,
            max_per_subnet: 3,
            ..Default::default()
        })
        .unwrap();
        let p = NodeKey::generate().peer_id();
        assert_eq!(pool.config().inbound_limit(), 4);
        assert_eq!(pool.config().outbound_target(), 2);
        assert!(pool
            .admit(&p, Direction::Inbound, &census(3, 3, 0, 0))
            .is_ok());
        assert_eq!(
            pool.admit(&p, Direction::Inbound, &census(4, 4, 0, 0)),
            Err(DisconnectReason::TooManyPeers)
        );
        assert!(pool
            .admit(&p, Direction::Outbound, &census(5, 4, 0, 0))
            .is_ok());
        assert!(pool
            .admit(&p, Direction::Outbound, &census(6, 4, 0, 0))
            .is_err());
        assert!(pool
            .admit(&p, Direction::Inbound, &census(1, 0, 2, 2))
            .is_err());
        assert!(pool
            .admit(&p, Direction::Inbound, &census(1, 0, 0, 3))
            .is_err());
        pool.trust(p);
        assert!(pool
            .admit(&p, Direction::Inbound, &census(6, 6, 9, 9))
            .is_ok());

        let a: SocketAddr = "10.1.2.3:1".parse().unwrap();
        let b: SocketAddr = "10.1.2.99:2".parse().unwrap();
        let c: SocketAddr = "10.1.3.1:2".parse().unwrap();
        let peers = [
            (Direction::Inbound, a),
            (Direction::Outbound, b),
            (Direction::Inbound, c),
        ];
        let census = Census::of(Origin::of("10.1.2.3:9".parse().unwrap()), peers.into_iter());
        assert_eq!(
            (
                census.total,
                census.inbound,
                census.same_ip,
                census.same_subnet
            ),
            (3, 2, 1, 2)
        );
        // Loopback counts per address, like any other: ports do not make hosts.
        let l = [
            (Direction::Inbound, "127.0.0.1:5".parse().unwrap()),
            (Direction::Inbound, "127.0.1.1:5".parse().unwrap()),
        ];
        let census = Census::of(Origin::of("127.0.0.1:6".parse().unwrap()), l.into_iter());
        assert_eq!((census.same_ip, census.same_subnet), (1, 1));
        let v6 = Origin::of("[2001:db8::1]:1".parse().unwrap()).subnet();
        assert_eq!(
            v6,
            Origin::of("[2001:db8::ffff]:2".parse().unwrap()).subnet()
        );
    }

    #[test]
    fn penalties_recover_ban_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("peers.redb");
        let config = PeerPoolConfig {
            store: Some(store.clone()),
            reputation_recovery_per_minute: 60_000,
            ..Default::default()
        };
        let p = NodeKey::generate().peer_id();
        {
            let pool = PeerPool::open(config.clone()).unwrap();
            assert_eq!(pool.penalize(p, 40), (-40, false));
            // Fast recovery: a moment later it is back towards 0.
            std::thread::sleep(Duration::from_millis(50));
            assert!(pool.reputation(&p) > -40);
            let (_, banned) = pool.penalize(p, 1000);
            assert!(banned);
            assert!(pool.banned(&p).is_some());
            assert_eq!(
                pool.admit(&p, Direction::Inbound, &census(0, 0, 0, 0)),
                Err(DisconnectReason::UselessPeer)
            );
        }
        // A new pool on the same file still refuses the peer.
        let pool = PeerPool::open(config.clone()).unwrap();
        assert!(pool.banned(&p).is_some());
        // A short ban expires.
        let q = NodeKey::generate().peer_id();
        pool.ban(q, Duration::from_secs(1));
        assert!(pool.banned(&q).is_some());
        std::thread::sleep(Duration::from_millis(2100));
        assert!(pool.banned(&q).is_none());
    }

    #[test]
    fn stored_bans_counts_what_a_restart_would_enforce() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("peers.redb");
        let config = PeerPoolConfig {
            store: Some(store.clone()),
            ..Default::default()
        };
        {
            let pool = PeerPool::open(config).unwrap();
            pool.ban(NodeKey::generate().peer_id(), Duration::from_secs(600));
            pool.ban(NodeKey::generate().peer_id(), Duration::from_secs(1));
            pool.ban_address("10.77.1.5".parse().unwrap(), Duration::from_secs(600));
        }
        assert_eq!(
            stored_bans(&store).unwrap(),
            StoredBans {
                keys: 2,
                addresses: 1
            }
        );
        std::thread::sleep(Duration::from_millis(2100));
        // The short ban expired: a node starting now would not enforce it.
        assert_eq!(
            stored_bans(&store).unwrap(),
            StoredBans {
                keys: 1,
                addresses: 1
            }
        );
    }
}
