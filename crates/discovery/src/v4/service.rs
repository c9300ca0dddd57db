//! [`Discv4`]: the socket, the receive / lookup / revalidation tasks, and the bounded
//! table of outstanding requests their replies are matched against.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use devmux_identity::{Enode, NodeId, NodeKey};
use futures::stream::{FuturesUnordered, StreamExt};
use secp256k1::SecretKey;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace};

use super::packet::{
    self, expiration_from_now, keccak256, unix_now, Endpoint, EnrRequest, EnrResponse, FindNode,
    Message, Neighbor, Neighbors, Packet, Ping, Pong, MAX_NEIGHBORS_PER_PACKET, MAX_PACKET_SIZE,
};
use super::table::{xor, Bonds, Inserted, NodeRecord, RateLimiter, Table, BUCKET_SIZE};
use super::{DiscoveredNode, DiscoveredNodes, V4Config, ALPHA};
use crate::service::bind_udp;
use crate::{AddrScope, Enr, Error};

/// FindNodes one lookup sends at most: with α = 3 and k = 16 a lookup in an honest
/// network converges in far fewer; the cap stops a peer that keeps inventing closer
/// nodes from keeping a lookup alive.
const MAX_LOOKUP_QUERIES: usize = 48;
/// Nodes counted per FindNode: the answer is complete at k = 16 (go-ethereum's
/// `findnode`, `nreceived >= bucketSize`); later Neighbors for it are unsolicited.
const NODES_PER_FINDNODE: usize = BUCKET_SIZE;
/// Neighbors packets buffered per outstanding FindNode (16 nodes take two).
const NEIGHBORS_BUFFER: usize = 4;

/// Reads a running [`Discv4`]'s table ([`Discv4::table_handle`]).
#[derive(Clone)]
pub struct TableHandle(Arc<Inner>);

impl fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableHandle")
            .field("udp", &self.0.udp)
            .finish_non_exhaustive()
    }
}

impl TableHandle {
    /// Every table entry now.
    pub fn entries(&self) -> Vec<NodeRecord> {
        self.0.state().table.entries()
    }
}

/// A running discv4 service. See the [module docs](super).
pub struct Discv4 {
    inner: Arc<Inner>,
    discovered: Option<DiscoveredNodes>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Discv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discv4")
            .field("udp", &self.inner.udp)
            .field("node_id", &self.inner.id)
            .field("table_size", &self.table_size())
            .finish_non_exhaustive()
    }
}

struct Inner {
    socket: UdpSocket,
    udp: SocketAddr,
    key: SecretKey,
    id: NodeId,
    enr: Enr,
    config: V4Config,
    bootnodes: Vec<NodeRecord>,
    state: Mutex<State>,
    discovered: mpsc::Sender<DiscoveredNode>,
    background: Arc<Semaphore>,
    cancel: CancellationToken,
}

struct State {
    table: Table,
    bonds: Bonds,
    pending: Pending,
    limiter: RateLimiter,
}

/// What a reply must look like to be accepted, and where it goes.
enum Expect {
    Pong {
        hash: [u8; 32],
        tcp: u16,
        tx: Option<oneshot::Sender<Pong>>,
    },
    Neighbors {
        remaining: usize,
        tx: mpsc::Sender<Vec<Neighbor>>,
    },
    Enr {
        hash: [u8; 32],
        tx: Option<oneshot::Sender<Enr>>,
    },
}

struct Waiter {
    from: NodeId,
    ip: IpAddr,
    expect: Expect,
}

/// Outstanding requests, bounded: a request that finds it full is not sent.
struct Pending {
    next: u64,
    waiters: HashMap<u64, Waiter>,
    max: usize,
}

impl Pending {
    fn insert(&mut self, waiter: Waiter) -> Result<u64, Error> {
        if self.waiters.len() >= self.max {
            return Err(Error::V4Busy);
        }
        self.next += 1;
        self.waiters.insert(self.next, waiter);
        Ok(self.next)
    }

    /// The first waiter from (`from`, `ip`) that `accepts`.
    fn find(&self, from: &NodeId, ip: IpAddr, accepts: impl Fn(&Expect) -> bool) -> Option<u64> {
        self.waiters
            .iter()
            .find(|(_, w)| w.from == *from && w.ip == ip && accepts(&w.expect))
            .map(|(k, _)| *k)
    }

    /// Takes the Pong waiter for `hash`: its TCP hint and sender.
    fn take_pong(
        &mut self,
        from: &NodeId,
        ip: IpAddr,
        hash: &[u8; 32],
    ) -> Option<(u16, Option<oneshot::Sender<Pong>>)> {
        let key = self.find(
            from,
            ip,
            |e| matches!(e, Expect::Pong { hash: h, .. } if h == hash),
        )?;
        match self.waiters.remove(&key)?.expect {
            Expect::Pong { tcp, tx, .. } => Some((tcp, tx)),
            _ => None,
        }
    }

    fn take_enr(
        &mut self,
        from: &NodeId,
        ip: IpAddr,
        hash: &[u8; 32],
    ) -> Option<oneshot::Sender<Enr>> {
        let key = self.find(
            from,
            ip,
            |e| matches!(e, Expect::Enr { hash: h, .. } if h == hash),
        )?;
        match self.waiters.remove(&key)?.expect {
            Expect::Enr { tx, .. } => tx,
            _ => None,
        }
    }

    /// Hands Neighbors to the FindNode waiting on (`from`, `ip`), counting at most
    /// [`NODES_PER_FINDNODE`] nodes; the rest of the packet, and packets after the
    /// count is reached, are dropped. Returns whether anything waited for it.
    fn deliver_neighbors(&mut self, from: &NodeId, ip: IpAddr, mut nodes: Vec<Neighbor>) -> bool {
        let Some(key) = self.find(from, ip, |e| matches!(e, Expect::Neighbors { .. })) else {
            return false;
        };
        let Some(waiter) = self.waiters.get_mut(&key) else {
            return false;
        };
        let Expect::Neighbors { remaining, tx } = &mut waiter.expect else {
            return false;
        };
        nodes.truncate(*remaining);
        *remaining -= nodes.len();
        // A full buffer means the requester is behind: dropping is what UDP would do.
        let _ = tx.try_send(nodes);
        if *remaining == 0 {
            // Complete: dropping the sender ends the requester's wait.
            self.waiters.remove(&key);
        }
        true
    }
}

/// Removes a waiter when the request ends, however it ends (reply, timeout, cancel).
struct PendingGuard<'a> {
    inner: &'a Inner,
    key: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.state().pending.waiters.remove(&self.key);
    }
}

impl Discv4 {
    /// Binds the UDP socket, asks `enr` for the record to serve given the bound
    /// address (it must be signed by `key` and advertise the bound UDP port: build it
    /// with [`enr_for`](super::enr_for)), and spawns the receive, lookup and
    /// revalidation tasks. Must run inside a tokio runtime with time and I/O enabled.
    pub async fn start(
        config: V4Config,
        key: &NodeKey,
        enr: impl FnOnce(SocketAddr) -> Result<Enr, Error>,
    ) -> Result<Self, Error> {
        validate(&config)?;
        let secret = SecretKey::from_slice(&key.secret_bytes()).map_err(|_| Error::InvalidKey)?;
        let id = key.node_id();
        let bootnodes = config
            .bootnodes
            .iter()
            .map(|text| parse_enode(text))
            .collect::<Result<Vec<_>, _>>()?;

        let socket = bind_udp(config.listen)?;
        let udp = socket.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let enr = enr(udp)?;
        if crate::secp256k1_node_id(&enr) != Some(id) {
            return Err(Error::V4Enr("signed by another key".into()));
        }
        let advertised = if udp.is_ipv4() {
            enr.udp4()
        } else {
            enr.udp6()
        };
        if advertised != Some(udp.port()) {
            return Err(Error::V4Enr(format!(
                "advertises UDP {advertised:?}, the discv4 socket is {udp}"
            )));
        }

        let (tx, rx) = mpsc::channel(config.discovered_buffer.max(1));
        let cancel = match &config.cancel {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        let state = State {
            table: Table::new(&id, config.subnet_limits, config.max_replacements),
            bonds: Bonds::new(config.max_bonds, config.bond_lifetime),
            pending: Pending {
                next: 0,
                waiters: HashMap::new(),
                max: config.max_pending.max(1),
            },
            limiter: RateLimiter::new(
                config.packets_per_ip_per_sec,
                config.packet_burst_per_ip,
                config.max_tracked_ips,
            ),
        };
        let inner = Arc::new(Inner {
            socket,
            udp,
            key: secret,
            id,
            enr,
            background: Arc::new(Semaphore::new(config.max_background.max(1))),
            config,
            bootnodes,
            state: Mutex::new(state),
            discovered: tx,
            cancel,
        });
        let tasks = vec![
            tokio::spawn(receive_task(inner.clone())),
            tokio::spawn(lookup_task(inner.clone())),
            tokio::spawn(revalidate_task(inner.clone())),
        ];
        info!(%udp, enode = %local_enode(&inner), "discv4 started");
        Ok(Self {
            inner,
            discovered: Some(DiscoveredNodes { rx }),
            tasks,
        })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.inner.udp
    }

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.inner.id
    }

    /// The ENR served to ENRRequests.
    pub fn local_enr(&self) -> Enr {
        self.inner.enr.clone()
    }

    /// Our `enode://` URL (TCP port from the ENR, `discport` the discv4 port), as given
    /// to other nodes as a bootnode.
    pub fn local_enode(&self) -> Enode {
        local_enode(&self.inner)
    }

    /// The number of table entries.
    pub fn table_size(&self) -> usize {
        self.inner.state().table.len()
    }

    /// Every table entry.
    pub fn table_entries(&self) -> Vec<NodeRecord> {
        self.inner.state().table.entries()
    }

    /// A handle that reads the table, for a task of the caller's that outlives borrows
    /// of the service (it holds nothing but the table's state alive).
    pub fn table_handle(&self) -> TableHandle {
        TableHandle(self.inner.clone())
    }

    /// Whether `id` is a table entry.
    pub fn table_contains(&self, id: &NodeId) -> bool {
        self.inner.state().table.contains(id)
    }

    /// Requests awaiting replies now (bounded by [`V4Config::max_pending`]).
    pub fn pending_requests(&self) -> usize {
        self.inner.state().pending.waiters.len()
    }

    /// Takes the discovered-node stream. There is one; later calls return `None`.
    pub fn take_discovered(&mut self) -> Option<DiscoveredNodes> {
        self.discovered.take()
    }

    /// Pings a node; on its Pong it enters the table. Returns its ENR `seq`, if it
    /// sent one (EIP-868).
    pub async fn ping(&self, enode: &Enode) -> Result<Option<u64>, Error> {
        let pong = self.inner.ping(&record_of(enode)).await?;
        Ok(pong.enr_seq)
    }

    /// Asks a node for its ENR (EIP-868), bonding with it first.
    pub async fn request_enr(&self, enode: &Enode) -> Result<Enr, Error> {
        let node = record_of(enode);
        self.inner.ensure_bond(&node).await?;
        self.inner.request_enr(&node).await
    }

    /// Runs one lookup (for `target`, or a random id) and returns the closest nodes
    /// found.
    pub async fn lookup(&self, target: Option<NodeId>) -> Vec<NodeRecord> {
        self.inner
            .clone()
            .lookup(target.unwrap_or_else(random_id))
            .await
    }

    /// Stops the tasks and waits for them. The discovered-node stream ends.
    pub async fn shutdown(mut self) {
        self.inner.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        debug!(udp = %self.inner.udp, "discv4 stopped");
    }
}

impl Drop for Discv4 {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

fn validate(config: &V4Config) -> Result<(), Error> {
    let bad = |s: &str| Err(Error::Config(s.to_string()));
    if config.lookup_interval.is_zero()
        || config.revalidate_interval.is_zero()
        || config.reply_timeout.is_zero()
    {
        return bad("discv4 intervals and the reply timeout must not be zero");
    }
    if config.packets_per_ip_per_sec == 0 {
        return bad("discv4 packets_per_ip_per_sec must not be zero");
    }
    Ok(())
}

fn parse_enode(text: &str) -> Result<NodeRecord, Error> {
    let enode: Enode = text
        .parse()
        .map_err(|e: devmux_identity::Error| Error::InvalidEnode {
            text: text.chars().take(40).collect(),
            problem: e.to_string(),
        })?;
    Ok(record_of(&enode))
}

fn record_of(enode: &Enode) -> NodeRecord {
    let udp = enode.discport.unwrap_or(enode.addr.port());
    NodeRecord::new(
        enode.id,
        SocketAddr::new(canonical_ip(enode.addr.ip()), udp),
        enode.addr.port(),
    )
}

fn local_enode(inner: &Inner) -> Enode {
    let ip = if inner.udp.ip().is_unspecified() {
        inner
            .enr
            .ip4()
            .map(IpAddr::from)
            .or(inner.enr.ip6().map(IpAddr::from))
            .unwrap_or(inner.udp.ip())
    } else {
        inner.udp.ip()
    };
    let tcp = inner
        .enr
        .tcp4()
        .or(inner.enr.tcp6())
        .unwrap_or(inner.udp.port());
    Enode {
        id: inner.id,
        addr: SocketAddr::new(ip, tcp),
        discport: Some(inner.udp.port()),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn random_id() -> NodeId {
    let mut id = [0u8; 64];
    id[..32].copy_from_slice(&rand::random::<[u8; 32]>());
    id[32..].copy_from_slice(&rand::random::<[u8; 32]>());
    NodeId(id)
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; if one ever did, the state is
        // still consistent map by map.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn our_endpoint(&self) -> Endpoint {
        let enode = local_enode(self);
        Endpoint {
            ip: Some(enode.addr.ip()),
            udp: self.udp.port(),
            tcp: self.enr.tcp4().or(self.enr.tcp6()).unwrap_or(0),
        }
    }

    async fn send(&self, message: &Message, to: SocketAddr) -> [u8; 32] {
        let (datagram, hash) = packet::encode(message, &self.key);
        if let Err(e) = self.socket.send_to(&datagram, to).await {
            trace!(%to, error = %e, "discv4 send failed");
        }
        hash
    }

    fn register(
        &self,
        from: NodeId,
        ip: IpAddr,
        expect: Expect,
    ) -> Result<PendingGuard<'_>, Error> {
        let key = self.state().pending.insert(Waiter { from, ip, expect })?;
        Ok(PendingGuard { inner: self, key })
    }

    /// Pings `node` and waits for its Pong (the receive task inserts it in the table).
    async fn ping(&self, node: &NodeRecord) -> Result<Pong, Error> {
        let ping = Message::Ping(Ping {
            version: packet::PROTOCOL_VERSION,
            from: self.our_endpoint(),
            to: Endpoint {
                ip: Some(node.addr.ip()),
                udp: node.addr.port(),
                tcp: 0,
            },
            expiration: expiration_from_now(),
            enr_seq: Some(self.enr.seq()),
        });
        // The hash is known before sending: register first so a fast Pong is not lost.
        let (datagram, hash) = packet::encode(&ping, &self.key);
        let (tx, rx) = oneshot::channel();
        let _guard = self.register(
            node.id,
            node.addr.ip(),
            Expect::Pong {
                hash,
                tcp: node.tcp,
                tx: Some(tx),
            },
        )?;
        if let Err(e) = self.socket.send_to(&datagram, node.addr).await {
            trace!(to = %node.addr, error = %e, "discv4 send failed");
        }
        match tokio::time::timeout(self.config.reply_timeout, rx).await {
            Ok(Ok(pong)) => Ok(pong),
            _ => Err(Error::V4Timeout(node.addr)),
        }
    }

    /// Makes sure `node` holds an endpoint proof for us before we query it (go-ethereum's
    /// `ensureBond`): unless it pinged us recently, ping it, and give it a reply
    /// timeout to ping back (which we answer, proving our endpoint to it).
    async fn ensure_bond(&self, node: &NodeRecord) -> Result<(), Error> {
        let ip = node.addr.ip();
        if self.state().bonds.pinged_us(node.id, ip, Instant::now()) {
            return Ok(());
        }
        self.ping(node).await?;
        let deadline = Instant::now() + self.config.reply_timeout;
        while Instant::now() < deadline {
            if self.state().bonds.pinged_us(node.id, ip, Instant::now()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // It may hold a proof from earlier and not ping back: query it anyway.
        Ok(())
    }

    /// FindNode to `node`; collects Neighbors until 16 nodes came or the reply timeout.
    async fn findnode(&self, node: &NodeRecord, target: NodeId) -> Result<Vec<Neighbor>, Error> {
        self.ensure_bond(node).await?;
        let (tx, mut rx) = mpsc::channel(NEIGHBORS_BUFFER);
        let _guard = self.register(
            node.id,
            node.addr.ip(),
            Expect::Neighbors {
                remaining: NODES_PER_FINDNODE,
                tx,
            },
        )?;
        let message = Message::FindNode(FindNode {
            target,
            expiration: expiration_from_now(),
        });
        self.send(&message, node.addr).await;
        let deadline = tokio::time::Instant::now() + self.config.reply_timeout;
        let mut nodes = Vec::new();
        let mut answered = false;
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => {
                        answered = true;
                        nodes.extend(batch);
                    }
                    // All 16 came: the waiter was removed.
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if answered {
            Ok(nodes)
        } else {
            Err(Error::V4Timeout(node.addr))
        }
    }

    async fn request_enr(&self, node: &NodeRecord) -> Result<Enr, Error> {
        let message = Message::EnrRequest(EnrRequest {
            expiration: expiration_from_now(),
        });
        let (datagram, hash) = packet::encode(&message, &self.key);
        let (tx, rx) = oneshot::channel();
        let _guard = self.register(node.id, node.addr.ip(), Expect::Enr { hash, tx: Some(tx) })?;
        if let Err(e) = self.socket.send_to(&datagram, node.addr).await {
            trace!(to = %node.addr, error = %e, "discv4 send failed");
        }
        let enr = match tokio::time::timeout(self.config.reply_timeout, rx).await {
            Ok(Ok(enr)) => enr,
            _ => return Err(Error::V4Timeout(node.addr)),
        };
        // The record must be the responder's own (go-ethereum's `RequestENR` check).
        if crate::secp256k1_node_id(&enr) != Some(node.id) {
            return Err(Error::V4Timeout(node.addr));
        }
        Ok(enr)
    }

    /// Checks a node named in a Neighbors packet from `from` (go-ethereum's
    /// `nodeFromRPC`): a reachable family, no port ≤ 1024, no address more local than
    /// the sender's (a public node cannot point us at loopback or LAN hosts), a valid
    /// public key, not us.
    fn check_neighbor(&self, from: &NodeRecord, n: &Neighbor) -> Option<NodeRecord> {
        let ip = canonical_ip(n.ip);
        if ip.is_unspecified() || ip.is_multicast() || ip.is_ipv4() != self.udp.is_ipv4() {
            return None;
        }
        if let IpAddr::V4(v4) = ip {
            if v4.is_broadcast() {
                return None;
            }
        }
        if n.udp <= 1024 || n.id == self.id {
            return None;
        }
        if !AddrScope::of(from.addr.ip()).may_dial(AddrScope::of(ip)) {
            return None;
        }
        if !packet::is_valid_node_id(&n.id) {
            return None;
        }
        Some(NodeRecord::new(n.id, SocketAddr::new(ip, n.udp), n.tcp))
    }

    /// A recursive lookup (`discv4.md`, "Recursive Lookup"): α FindNodes at a time to
    /// the closest nodes not yet asked, until the k closest have all been asked. Then
    /// the results not in the table are pinged, so those alive enter it.
    async fn lookup(self: Arc<Self>, target: NodeId) -> Vec<NodeRecord> {
        let target_hash = keccak256(&target.0);
        let distance = |n: &NodeRecord| xor(&keccak256(&n.id.0), &target_hash);
        let mut closest = self.state().table.closest(&target_hash, BUCKET_SIZE);
        if closest.is_empty() {
            closest = self.bootnodes.clone();
        }
        let mut seen: HashSet<NodeId> = closest.iter().map(|n| n.id).collect();
        seen.insert(self.id);
        let mut asked: HashSet<NodeId> = HashSet::new();
        let mut queries = FuturesUnordered::new();
        let mut sent = 0;
        loop {
            while queries.len() < ALPHA && sent < MAX_LOOKUP_QUERIES {
                let Some(next) = closest.iter().find(|n| !asked.contains(&n.id)).cloned() else {
                    break;
                };
                asked.insert(next.id);
                sent += 1;
                let inner = self.clone();
                queries.push(async move {
                    let result = inner.findnode(&next, target).await;
                    (next, result)
                });
            }
            let next = tokio::select! {
                _ = self.cancel.cancelled() => return closest,
                next = queries.next() => next,
            };
            let Some((from, result)) = next else {
                break;
            };
            match result {
                Ok(nodes) => {
                    for n in &nodes {
                        if let Some(record) = self.check_neighbor(&from, n) {
                            if seen.insert(record.id) {
                                closest.push(record);
                            }
                        }
                    }
                }
                Err(e) => {
                    trace!(node = ?from.id, error = %e, "findnode failed");
                    closest.retain(|n| n.id != from.id);
                }
            }
            closest.sort_by_key(|n| distance(n));
            closest.truncate(BUCKET_SIZE);
        }
        // Verify what we heard of but did not bond with: the live ones enter the table.
        let unverified: Vec<NodeRecord> = {
            let state = self.state();
            closest
                .iter()
                .filter(|n| !state.table.contains(&n.id))
                .cloned()
                .collect()
        };
        let pings = unverified.iter().map(|n| self.ping(n));
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = futures::future::join_all(pings) => {}
        }
        trace!(found = closest.len(), queries = sent, "lookup done");
        closest
    }

    /// Reports a node new to the table, with its ENR if it advertised one and answers
    /// our ENRRequest (in the background, bounded; without the ENR when no slot is free).
    fn report_new(self: &Arc<Self>, node: NodeRecord, enr_seq: Option<u64>) {
        if self.config.request_enr && enr_seq.is_some() {
            if let Ok(permit) = self.background.clone().try_acquire_owned() {
                let inner = self.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut node = node;
                    let enr = async {
                        inner.ensure_bond(&node).await?;
                        inner.request_enr(&node).await
                    };
                    tokio::select! {
                        _ = inner.cancel.cancelled() => return,
                        enr = enr => if let Ok(enr) = enr {
                            inner.state().table.set_enr(&node.id, enr.clone());
                            node.enr = Some(enr);
                        },
                    }
                    inner.report(node);
                });
                return;
            }
        }
        self.report(node);
    }

    fn report(&self, node: NodeRecord) {
        // Never wait on the consumer: a full channel drops the report.
        if self.discovered.try_send(node).is_err() {
            trace!("discovered-node channel full or closed");
        }
    }

    fn insert_live(self: &Arc<Self>, node: NodeRecord, enr_seq: Option<u64>) {
        let outcome = self.state().table.insert_live(node.clone(), Instant::now());
        trace!(node = ?node.id, addr = %node.addr, ?outcome, "verified node");
        if matches!(outcome, Inserted::Added | Inserted::Replacement) {
            self.report_new(node, enr_seq);
        }
    }

    fn spawn_ping(self: &Arc<Self>, node: NodeRecord) {
        let Ok(permit) = self.background.clone().try_acquire_owned() else {
            trace!("no background slot for a ping-back");
            return;
        };
        let inner = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = inner.cancel.cancelled() => {}
                _ = inner.ping(&node) => {}
            }
        });
    }

    async fn handle(self: &Arc<Self>, packet: Packet, src: SocketAddr) {
        let now = Instant::now();
        let sender = packet.sender;
        let ip = src.ip();
        match packet.message {
            Message::Ping(ping) => {
                let pong = Message::Pong(Pong {
                    to: Endpoint {
                        ip: Some(ip),
                        udp: src.port(),
                        tcp: ping.from.tcp,
                    },
                    ping_hash: packet.hash,
                    expiration: expiration_from_now(),
                    enr_seq: Some(self.enr.seq()),
                });
                self.send(&pong, src).await;
                let node = NodeRecord::new(sender, src, ping.from.tcp);
                let bonded = {
                    let mut state = self.state();
                    state.bonds.ping_received(sender, ip, now);
                    state.bonds.is_bonded(sender, ip, now)
                };
                if bonded {
                    self.insert_live(node, ping.enr_seq);
                } else {
                    // `discv4.md`, Ping: without a recent proof, ping back; its Pong
                    // inserts the node.
                    self.spawn_ping(node);
                }
            }
            Message::Pong(pong) => {
                let matched = self.state().pending.take_pong(&sender, ip, &pong.ping_hash);
                let Some((tcp, tx)) = matched else {
                    trace!(%src, "unsolicited pong");
                    return;
                };
                self.state().bonds.pong_received(sender, ip, now);
                self.insert_live(NodeRecord::new(sender, src, tcp), pong.enr_seq);
                if let Some(tx) = tx {
                    let _ = tx.send(pong);
                }
            }
            Message::FindNode(findnode) => {
                let closest = {
                    let mut state = self.state();
                    if !state.bonds.is_bonded(sender, ip, now) {
                        // No endpoint proof: answering would let a spoofed source
                        // aim our (larger) Neighbors at a victim.
                        trace!(%src, "findnode from an unbonded node");
                        return;
                    }
                    state
                        .table
                        .closest(&keccak256(&findnode.target.0), BUCKET_SIZE)
                };
                let scope = AddrScope::of(ip);
                let nodes: Vec<Neighbor> = closest
                    .iter()
                    .filter(|n| n.id != sender && scope.may_dial(AddrScope::of(n.addr.ip())))
                    .map(|n| Neighbor {
                        ip: n.addr.ip(),
                        udp: n.addr.port(),
                        tcp: n.tcp,
                        id: n.id,
                    })
                    .collect();
                let expiration = expiration_from_now();
                if nodes.is_empty() {
                    let empty = Message::Neighbors(Neighbors {
                        nodes: Vec::new(),
                        expiration,
                    });
                    self.send(&empty, src).await;
                }
                for chunk in nodes.chunks(MAX_NEIGHBORS_PER_PACKET) {
                    let message = Message::Neighbors(Neighbors {
                        nodes: chunk.to_vec(),
                        expiration,
                    });
                    self.send(&message, src).await;
                }
            }
            Message::Neighbors(neighbors) => {
                if !self
                    .state()
                    .pending
                    .deliver_neighbors(&sender, ip, neighbors.nodes)
                {
                    trace!(%src, "unsolicited neighbors");
                }
            }
            Message::EnrRequest(_) => {
                if !self.state().bonds.is_bonded(sender, ip, now) {
                    trace!(%src, "ENR request from an unbonded node");
                    return;
                }
                let response = Message::EnrResponse(EnrResponse {
                    request_hash: packet.hash,
                    enr: self.enr.clone(),
                });
                self.send(&response, src).await;
            }
            Message::EnrResponse(response) => {
                let tx = self
                    .state()
                    .pending
                    .take_enr(&sender, ip, &response.request_hash);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(response.enr);
                    }
                    None => trace!(%src, "unsolicited ENR response"),
                }
            }
        }
    }
}

/// Reads datagrams: per-source budget first, then [`packet::decode_unexpired`], then
/// the handler. One datagram at a time, so a flood queues in the kernel's socket
/// buffer (and is dropped there) rather than in our memory.
async fn receive_task(inner: Arc<Inner>) {
    // One byte over the limit, so an oversized datagram shows as such.
    let mut buf = vec![0u8; MAX_PACKET_SIZE + 1];
    loop {
        let received = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            received = inner.socket.recv_from(&mut buf) => received,
        };
        let (len, src) = match received {
            Ok(r) => r,
            Err(e) => {
                trace!(error = %e, "discv4 receive error");
                continue;
            }
        };
        let src = SocketAddr::new(canonical_ip(src.ip()), src.port());
        if !inner.state().limiter.allow(src.ip(), Instant::now()) {
            trace!(%src, "over the per-IP packet budget");
            continue;
        }
        let packet = match packet::decode_unexpired(&buf[..len], unix_now()) {
            Ok(p) => p,
            Err(e) => {
                trace!(%src, error = %e, "dropped datagram");
                continue;
            }
        };
        if packet.sender == inner.id {
            continue;
        }
        inner.handle(packet, src).await;
    }
}

/// Bootnodes whenever the table is empty, a lookup for our own id, then one for a
/// random id every `lookup_interval`.
async fn lookup_task(inner: Arc<Inner>) {
    let mut target = inner.id;
    loop {
        let empty = inner.state().table.is_empty();
        if empty && !inner.bootnodes.is_empty() {
            let pings = inner.bootnodes.iter().map(|b| inner.ping(b));
            tokio::select! {
                _ = inner.cancel.cancelled() => return,
                _ = futures::future::join_all(pings) => {}
            }
        }
        inner.clone().lookup(target).await;
        target = random_id();
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(inner.config.lookup_interval) => {}
        }
    }
}

/// Every `revalidate_interval`, pings the entry checked longest ago; one that does
/// not answer loses two thirds of its passed checks, and at none is removed, the
/// newest replacement of its bucket taking its place.
async fn revalidate_task(inner: Arc<Inner>) {
    let interval = inner.config.revalidate_interval;
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(before) = Instant::now().checked_sub(interval) else {
            continue;
        };
        let Some(stale) = inner.state().table.stalest(before) else {
            continue;
        };
        let result = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            result = inner.ping(&stale) => result,
        };
        if let Err(Error::V4Timeout(_)) = result {
            if inner.state().table.failed_check(&stale.id, Instant::now()) {
                debug!(node = ?stale.id, addr = %stale.addr, "dead table entry removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neighbor(i: u8) -> Neighbor {
        Neighbor {
            ip: IpAddr::from([127, 0, 0, i]),
            udp: 30303,
            tcp: 30303,
            id: NodeId([i; 64]),
        }
    }

    /// Neighbors count only against an outstanding FindNode from the same id and IP,
    /// at most 16 nodes per FindNode; the rest are unsolicited and dropped.
    #[test]
    fn neighbors_are_matched_and_counted() {
        let mut pending = Pending {
            next: 0,
            waiters: HashMap::new(),
            max: 2,
        };
        let peer = NodeId([7; 64]);
        let ip = IpAddr::from([127, 0, 0, 7]);
        let twelve: Vec<Neighbor> = (0..12).map(neighbor).collect();
        assert!(!pending.deliver_neighbors(&peer, ip, twelve.clone()));
        let (tx, mut rx) = mpsc::channel(NEIGHBORS_BUFFER);
        pending
            .insert(Waiter {
                from: peer,
                ip,
                expect: Expect::Neighbors {
                    remaining: NODES_PER_FINDNODE,
                    tx,
                },
            })
            .unwrap();
        // Another IP or id: not the answer.
        assert!(!pending.deliver_neighbors(&peer, IpAddr::from([127, 0, 0, 8]), twelve.clone()));
        assert!(!pending.deliver_neighbors(&NodeId([8; 64]), ip, twelve.clone()));
        assert!(pending.deliver_neighbors(&peer, ip, twelve.clone()));
        assert!(pending.deliver_neighbors(&peer, ip, twelve.clone()));
        // 16 counted: the waiter is gone, and a thousand more packets are unsolicited.
        for _ in 0..1000 {
            assert!(!pending.deliver_neighbors(&peer, ip, twelve.clone()));
        }
        assert_eq!(rx.try_recv().unwrap().len(), 12);
        assert_eq!(rx.try_recv().unwrap().len(), 4);
        assert!(rx.try_recv().is_err());
        // Bounded: a full map refuses new requests.
        let pong = |hash| Waiter {
            from: peer,
            ip,
            expect: Expect::Pong {
                hash,
                tcp: 0,
                tx: None,
            },
        };
        pending.insert(pong([1; 32])).unwrap();
        pending.insert(pong([2; 32])).unwrap();
        assert!(matches!(pending.insert(pong([3; 32])), Err(Error::V4Busy)));
        // A Pong matches by hash only.
        assert!(pending.take_pong(&peer, ip, &[9; 32]).is_none());
        assert!(pending.take_pong(&peer, ip, &[2; 32]).is_some());
        assert!(pending.take_pong(&peer, ip, &[2; 32]).is_none());
    }
}
