//! The discv4 routing table (`discv4.md`, "Node Table"): 256 k-buckets by the log
//! distance of keccak256(node id), each with a bounded replacement list, and
//! per-subnet limits so one network cannot fill it. Plus [`Bonds`], the bounded
//! endpoint-proof state.
//!
//! Only nodes that answered one of our Pings are inserted ([`Table::insert_live`]):
//! what a Neighbors packet names is a claim, and it enters the table once it pongs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use devmux_identity::NodeId;
use schnellru::{ByLength, LruMap};

use super::packet::keccak256;
use crate::Enr;

/// Entries per bucket (`discv4.md`, "Node Table": `k = 16`).
pub const BUCKET_SIZE: usize = 16;
/// Buckets: one per log distance 1..=256 (`discv4.md`, "Node Table").
pub const BUCKETS: usize = 256;

/// A node the table knows, as reported and served in Neighbors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node's public key.
    pub id: NodeId,
    /// Its discovery (UDP) address.
    pub addr: SocketAddr,
    /// Its RLPx TCP port (0: unknown).
    pub tcp: u16,
    /// Its ENR, when an ENRRequest got one (EIP-868).
    pub enr: Option<Enr>,
}

impl NodeRecord {
    /// A record without ENR.
    pub fn new(id: NodeId, addr: SocketAddr, tcp: u16) -> Self {
        Self {
            id,
            addr,
            tcp,
            enr: None,
        }
    }
}

/// The log distance of two keccak256 ids: 0 when equal, else 1..=256.
pub fn log_distance(a: &[u8; 32], b: &[u8; 32]) -> usize {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return 256 - i * 8 - d.leading_zeros() as usize;
        }
    }
    0
}

/// The per-subnet key of an address: /24 for IPv4 (go-ethereum's `tableSubnet`),
/// /56 for IPv6 (a common end-site allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Subnet {
    V4([u8; 3]),
    V6([u8; 7]),
}

fn subnet(ip: IpAddr) -> Subnet {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Subnet::V4([o[0], o[1], o[2]])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => subnet(v4.into()),
            None => {
                let mut k = [0u8; 7];
                k.copy_from_slice(&v6.octets()[..7]);
                Subnet::V6(k)
            }
        },
    }
}

/// How many table entries may share a subnet (go-ethereum's `netutil.DistinctNetSet`
/// use in `p2p/discover/table.go`: `bucketIPLimit = 2`, `tableIPLimit = 10`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubnetLimits {
    /// Per bucket (entries and replacements).
    pub per_bucket: usize,
    /// In the whole table (entries and replacements).
    pub per_table: usize,
}

impl Default for SubnetLimits {
    fn default() -> Self {
        Self {
            per_bucket: 2,
            per_table: 10,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    node: NodeRecord,
    hash: [u8; 32],
    last_checked: Instant,
    /// Liveness checks passed, cut to a third on each failure (go-ethereum's
    /// `livenessChecks`, `table_reval.go`): a long-lived node survives a lost packet
    /// or two, a new one does not.
    live_checks: u32,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Least recently seen first.
    entries: Vec<Entry>,
    /// Most recent last.
    replacements: Vec<Entry>,
    subnets: HashMap<Subnet, usize>,
}

/// What [`Table::insert_live`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new entry.
    Added,
    /// An existing entry, now marked live (moved to the bucket's tail).
    Updated,
    /// The bucket was full: kept as a replacement.
    Replacement,
    /// Refused: its subnet is at its limit, or it is us.
    Refused,
}

/// The Kademlia table. All operations are bounded by [`BUCKETS`] × ([`BUCKET_SIZE`]
/// + replacements).
#[derive(Debug)]
pub struct Table {
    local: [u8; 32],
    buckets: Vec<Bucket>,
    subnets: HashMap<Subnet, usize>,
    limits: SubnetLimits,
    max_replacements: usize,
}

impl Table {
    /// An empty table around `local` (our node id).
    pub fn new(local: &NodeId, limits: SubnetLimits, max_replacements: usize) -> Self {
        Self {
            local: keccak256(&local.0),
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
            subnets: HashMap::new(),
            limits,
            max_replacements,
        }
    }

    fn bucket_of(&self, hash: &[u8; 32]) -> Option<usize> {
        log_distance(&self.local, hash).checked_sub(1)
    }

    fn subnet_room(&self, bucket: usize, key: Subnet) -> bool {
        self.buckets[bucket].subnets.get(&key).copied().unwrap_or(0) < self.limits.per_bucket
            && self.subnets.get(&key).copied().unwrap_or(0) < self.limits.per_table
    }

    fn count(&mut self, bucket: usize, key: Subnet, up: bool) {
        for map in [&mut self.buckets[bucket].subnets, &mut self.subnets] {
            let n = map.entry(key).or_insert(0);
            if up {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }

    /// Inserts or refreshes a node that just answered our Ping. A node whose address
    /// changed is re-checked against the subnet limits.
    pub fn insert_live(&mut self, node: NodeRecord, now: Instant) -> Inserted {
        let hash = keccak256(&node.id.0);
        let Some(b) = self.bucket_of(&hash) else {
            return Inserted::Refused;
        };
        let key = subnet(node.addr.ip());
        if let Some(i) = self.buckets[b]
            .entries
            .iter()
            .position(|e| e.node.id == node.id)
        {
            let mut entry = self.buckets[b].entries.remove(i);
            let old = subnet(entry.node.addr.ip());
            if old != key {
                self.count(b, old, false);
                if !self.subnet_room(b, key) {
                    self.promote(b);
                    return Inserted::Refused;
                }
                self.count(b, key, true);
            }
            let enr = entry.node.enr.take();
            entry.node = NodeRecord {
                enr: node.enr.or(enr),
                ..node
            };
            entry.last_checked = now;
            entry.live_checks = entry.live_checks.saturating_add(1);
            self.buckets[b].entries.push(entry);
            return Inserted::Updated;
        }
        // A replacement that answers again: refresh it (or promote it if there is room).
        if let Some(i) = self.buckets[b]
            .replacements
            .iter()
            .position(|e| e.node.id == node.id)
        {
            let entry = self.buckets[b].replacements.remove(i);
            self.count(b, subnet(entry.node.addr.ip()), false);
        }
        if !self.subnet_room(b, key) {
            return Inserted::Refused;
        }
        let entry = Entry {
            node,
            hash,
            last_checked: now,
            live_checks: 1,
        };
        self.count(b, key, true);
        let bucket = &mut self.buckets[b];
        if bucket.entries.len() < BUCKET_SIZE {
            bucket.entries.push(entry);
            return Inserted::Added;
        }
        bucket.replacements.push(entry);
        if bucket.replacements.len() > self.max_replacements {
            let dropped = bucket.replacements.remove(0);
            self.count(b, subnet(dropped.node.addr.ip()), false);
        }
        Inserted::Replacement
    }

    /// Moves the newest replacement of bucket `b` into its entries, if there is room.
    fn promote(&mut self, b: usize) -> Option<NodeRecord> {
        let bucket = &mut self.buckets[b];
        if bucket.entries.len() >= BUCKET_SIZE {
            return None;
        }
        let entry = bucket.replacements.pop()?;
        let node = entry.node.clone();
        bucket.entries.push(entry);
        Some(node)
    }

    /// Removes a node that failed its liveness check; returns the replacement that
    /// took its place, if any.
    pub fn remove(&mut self, id: &NodeId) -> Option<NodeRecord> {
        let hash = keccak256(&id.0);
        let b = self.bucket_of(&hash)?;
        let i = self.buckets[b]
            .entries
            .iter()
            .position(|e| e.node.id == *id)?;
        let entry = self.buckets[b].entries.remove(i);
        self.count(b, subnet(entry.node.addr.ip()), false);
        self.promote(b)
    }

    /// An entry did not answer its liveness ping: its passed checks are cut to a third,
    /// and at zero it is removed (see [`Table::remove`]). Returns whether it was.
    pub fn failed_check(&mut self, id: &NodeId, now: Instant) -> bool {
        let hash = keccak256(&id.0);
        let Some(b) = self.bucket_of(&hash) else {
            return false;
        };
        let Some(entry) = self.buckets[b]
            .entries
            .iter_mut()
            .find(|e| e.node.id == *id)
        else {
            return false;
        };
        entry.live_checks /= 3;
        entry.last_checked = now;
        if entry.live_checks == 0 {
            self.remove(id);
            return true;
        }
        false
    }

    /// Sets the ENR of an entry.
    pub fn set_enr(&mut self, id: &NodeId, enr: Enr) {
        let hash = keccak256(&id.0);
        if let Some(b) = self.bucket_of(&hash) {
            if let Some(e) = self.buckets[b]
                .entries
                .iter_mut()
                .find(|e| e.node.id == *id)
            {
                e.node.enr = Some(enr);
            }
        }
    }

    /// The entry whose liveness was checked longest ago, if checked before `before`.
    pub fn stalest(&self, before: Instant) -> Option<NodeRecord> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter())
            .filter(|e| e.last_checked < before)
            .min_by_key(|e| e.last_checked)
            .map(|e| e.node.clone())
    }

    /// Up to `n` entries closest to `target` (a keccak256 id), closest first.
    pub fn closest(&self, target: &[u8; 32], n: usize) -> Vec<NodeRecord> {
        let mut all: Vec<&Entry> = self.buckets.iter().flat_map(|b| b.entries.iter()).collect();
        all.sort_by_key(|e| xor(&e.hash, target));
        all.into_iter().take(n).map(|e| e.node.clone()).collect()
    }

    /// Whether `id` is an entry (not a replacement).
    pub fn contains(&self, id: &NodeId) -> bool {
        self.get(id).is_some()
    }

    /// The entry for `id`.
    pub fn get(&self, id: &NodeId) -> Option<&NodeRecord> {
        let b = self.bucket_of(&keccak256(&id.0))?;
        self.buckets[b]
            .entries
            .iter()
            .find(|e| e.node.id == *id)
            .map(|e| &e.node)
    }

    /// Entries (not replacements).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.entries.is_empty())
    }

    /// Replacements kept.
    pub fn replacements(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<NodeRecord> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| e.node.clone()))
            .collect()
    }
}

/// XOR of two ids, compared as a big-endian number.
pub fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = a[i] ^ b[i];
    }
    out
}

#[derive(Clone, Copy, Debug, Default)]
struct Bond {
    ping_received: Option<Instant>,
    pong_received: Option<Instant>,
}

/// Endpoint-proof state per (node id, IP), as go-ethereum's node database keeps it
/// (`LastPingReceived`, `LastPongReceived`). Bounded: least recently touched go first.
pub struct Bonds {
    map: LruMap<(NodeId, IpAddr), Bond, ByLength>,
    lifetime: Duration,
}

impl std::fmt::Debug for Bonds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bonds")
            .field("len", &self.map.len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Bonds {
    /// At most `capacity` entries; a proof is good for `lifetime`.
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        Self {
            map: LruMap::new(ByLength::new(capacity.max(1) as u32)),
            lifetime,
        }
    }

    fn entry(&mut self, id: NodeId, ip: IpAddr) -> Option<&mut Bond> {
        self.map.get_or_insert((id, ip), Bond::default)
    }

    /// They pinged us.
    pub fn ping_received(&mut self, id: NodeId, ip: IpAddr, now: Instant) {
        if let Some(b) = self.entry(id, ip) {
            b.ping_received = Some(now);
        }
    }

    /// They answered our Ping: their endpoint is proven.
    pub fn pong_received(&mut self, id: NodeId, ip: IpAddr, now: Instant) {
        if let Some(b) = self.entry(id, ip) {
            b.pong_received = Some(now);
        }
    }

    fn fresh(&self, at: Option<Instant>, now: Instant) -> bool {
        at.is_some_and(|at| now.saturating_duration_since(at) < self.lifetime)
    }

    /// Whether they proved their endpoint recently (we may answer their FindNode).
    pub fn is_bonded(&mut self, id: NodeId, ip: IpAddr, now: Instant) -> bool {
        let at = self.map.peek(&(id, ip)).and_then(|b| b.pong_received);
        self.fresh(at, now)
    }

    /// Whether they pinged us recently (so they likely hold our endpoint proof).
    pub fn pinged_us(&mut self, id: NodeId, ip: IpAddr, now: Instant) -> bool {
        let at = self.map.peek(&(id, ip)).and_then(|b| b.ping_received);
        self.fresh(at, now)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no entries are held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Per-source-IP token buckets (`rate` packets a second, bursts of `burst`), in a
/// bounded LRU: a flood of spoofed sources evicts idle entries rather than grow it.
pub struct RateLimiter {
    map: LruMap<IpAddr, (f64, Instant), ByLength>,
    rate: f64,
    burst: f64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `rate` a second with bursts of `burst`, for up to `capacity` source IPs.
    pub fn new(rate: u32, burst: u32, capacity: usize) -> Self {
        Self {
            map: LruMap::new(ByLength::new(capacity.max(1) as u32)),
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
        }
    }

    /// Takes one token for `ip`; false: drop the packet.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        let Some((tokens, at)) = self.map.get_or_insert(ip, || (burst, now)) else {
            return false;
        };
        let refill = now.saturating_duration_since(*at).as_secs_f64() * rate;
        *tokens = (*tokens + refill).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u32, ip: [u8; 4]) -> NodeRecord {
        let mut id = [0u8; 64];
        id[..4].copy_from_slice(&i.to_be_bytes());
        NodeRecord::new(NodeId(id), SocketAddr::from((ip, 30303)), 30303)
    }

    #[test]
    fn log_distances() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(log_distance(&a, &b), 0);
        b[31] = 1;
        assert_eq!(log_distance(&a, &b), 1);
        b[0] = 0x80;
        assert_eq!(log_distance(&a, &b), 256);
        b[0] = 0x01;
        assert_eq!(log_distance(&a, &b), 249);
    }

    #[test]
    fn subnet_limits_per_bucket_and_table() {
        let local = NodeId([0xee; 64]);
        let mut table = Table::new(&local, SubnetLimits::default(), 10);
        let now = Instant::now();
        let mut added = 0;
        for i in 0..1000 {
            if table.insert_live(node(i, [10, 0, 0, (i % 250) as u8]), now) != Inserted::Refused {
                added += 1;
            }
        }
        // Entries and replacements together: at most 10 from one /24.
        assert_eq!(added, 10);
        assert!(table.len() + table.replacements() <= 10);
        // Another /24 still gets in.
        assert_eq!(
            table.insert_live(node(5000, [10, 0, 1, 1]), now),
            Inserted::Added
        );
    }

    #[test]
    fn full_bucket_keeps_bounded_replacements_and_promotes_on_removal() {
        let local = NodeId([0; 64]);
        let lenient = SubnetLimits {
            per_bucket: usize::MAX,
            per_table: usize::MAX,
        };
        let mut table = Table::new(&local, lenient, 3);
        let now = Instant::now();
        let local_hash = keccak256(&local.0);
        // Find ids that land in the farthest bucket (distance 256): about half of all.
        let far: Vec<NodeRecord> = (0..200)
            .map(|i| node(i, [1, 2, 3, 4]))
            .filter(|n| log_distance(&local_hash, &keccak256(&n.id.0)) == 256)
            .take(BUCKET_SIZE + 10)
            .collect();
        for (i, n) in far.iter().enumerate() {
            let want = if i < BUCKET_SIZE {
                Inserted::Added
            } else {
                Inserted::Replacement
            };
            assert_eq!(table.insert_live(n.clone(), now), want);
        }
        assert_eq!(table.len(), BUCKET_SIZE);
        assert_eq!(table.replacements(), 3);
        // Removing an entry promotes the newest replacement.
        let promoted = table.remove(&far[0].id).unwrap();
        assert_eq!(promoted.id, far[BUCKET_SIZE + 9].id);
        assert_eq!(table.len(), BUCKET_SIZE);
        // A node that passed several checks survives a failed one; a new one does not.
        for _ in 0..5 {
            table.insert_live(far[2].clone(), now);
        }
        assert!(!table.failed_check(&far[2].id, now));
        assert!(table.contains(&far[2].id));
        assert!(table.failed_check(&far[3].id, now));
        assert!(!table.contains(&far[3].id));
        // Re-inserting refreshes rather than duplicates.
        assert_eq!(table.insert_live(far[1].clone(), now), Inserted::Updated);
        assert_eq!(table.len(), BUCKET_SIZE);
        assert!(
            table.insert_live(NodeRecord::new(local, far[1].addr, 0), now) == Inserted::Refused
        );
    }

    #[test]
    fn stalest_and_closest() {
        let local = NodeId([0xee; 64]);
        let mut table = Table::new(&local, SubnetLimits::default(), 10);
        let t0 = Instant::now();
        for i in 0..8u32 {
            table.insert_live(
                node(i, [10, 0, i as u8, 1]),
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        assert_eq!(
            table.stalest(t0 + Duration::from_secs(100)).unwrap().id,
            node(0, [0; 4]).id
        );
        assert!(table.stalest(t0).is_none());
        let target = keccak256(&node(3, [0; 4]).id.0);
        assert_eq!(table.closest(&target, 1)[0].id, node(3, [0; 4]).id);
        assert_eq!(table.closest(&target, 100).len(), 8);
    }

    #[test]
    fn bonds_expire_and_stay_bounded() {
        let t0 = Instant::now();
        let mut bonds = Bonds::new(4, Duration::from_secs(10));
        let ip = IpAddr::from([127, 0, 0, 1]);
        let id = NodeId([1; 64]);
        assert!(!bonds.is_bonded(id, ip, t0));
        bonds.pong_received(id, ip, t0);
        assert!(bonds.is_bonded(id, ip, t0 + Duration::from_secs(9)));
        assert!(!bonds.is_bonded(id, ip, t0 + Duration::from_secs(10)));
        assert!(!bonds.is_bonded(id, IpAddr::from([127, 0, 0, 2]), t0));
        for i in 0..100u8 {
            bonds.ping_received(NodeId([i; 64]), ip, t0);
        }
        assert_eq!(bonds.len(), 4);
    }

    #[test]
    fn rate_limiter_refills() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(10, 5, 2);
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!((0..20).filter(|_| limiter.allow(ip, t0)).count(), 5);
        assert!(limiter.allow(ip, t0 + Duration::from_millis(100)));
        assert!(!limiter.allow(ip, t0 + Duration::from_millis(100)));
        // Other sources have their own budget.
        assert!(limiter.allow(IpAddr::from([127, 0, 0, 2]), t0));
    }
}
