//! [`Discovery`]: discv5, discv4 and DNS node lists feeding one dial-candidate channel
//! through one filter.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devmux_identity::NodeKey;
use discv5::{ConfigBuilder, Discv5, Event, ListenConfig};
use enr::CombinedKey;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

use crate::candidate::{Candidates, DialCandidate, DialFilter, RecentlyOffered, MUX_ENR_KEY};
use crate::config::DiscoveryConfig;
use crate::dns::DnsDiscovery;
use crate::eth_entry::{enr_value, ETH_ENR_KEY};
use crate::v4::{DiscoveredNodes, Discv4, TableHandle};
use crate::{store, Enr, Error};

/// A running discovery: discv5 (unless [`DiscoveryConfig::v5`] is off), discv4 (with
/// [`DiscoveryConfig::v4`]) and DNS node lists (with [`DiscoveryConfig::dns`]), with the
/// node's ENR, periodic lookups, persisted ENRs and one stream of dial candidates that
/// every source feeds through the same filter. See the [crate docs](crate).
pub struct Discovery {
    discv5: Option<Arc<Discv5>>,
    v4: Option<Discv4>,
    dns: Option<DnsDiscovery>,
    enr: Enr,
    shared: Arc<Shared>,
    candidates: Option<Candidates>,
    udp: SocketAddr,
    udp_v6: Option<SocketAddr>,
    persist: Option<Persist>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("udp", &self.udp)
            .field("udp_v6", &self.udp_v6)
            .field("node_id", &self.enr.node_id())
            .field("v5", &self.discv5.is_some())
            .field("v4", &self.v4.as_ref().map(Discv4::udp_addr))
            .field("dns", &self.dns.is_some())
            .field("table_size", &self.table_size())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
struct Persist {
    path: PathBuf,
    max: usize,
}

/// What the tasks and the handle share: the filter and the candidate sender.
struct Shared {
    filter: DialFilter,
    recent: Mutex<RecentlyOffered>,
    tx: mpsc::Sender<DialCandidate>,
}

impl Shared {
    /// Offers `enr` as a dial candidate if it passes the filter and was not offered
    /// recently. Never waits: a full channel drops the candidate (unmarked, so it is
    /// offered again later). Returns whether it was sent.
    fn offer(&self, enr: &Enr) -> bool {
        let candidate = match self.filter.check(enr) {
            Ok(candidate) => candidate,
            Err(reason) => {
                trace!(node = %enr.node_id(), %reason, "not a dial candidate");
                return false;
            }
        };
        let now = Instant::now();
        let id = enr.node_id();
        let Ok(mut recent) = self.recent.lock() else {
            return false;
        };
        let ip = candidate.ip;
        if !recent.should_offer(&id, ip, enr.seq(), now) {
            return false;
        }
        match self.tx.try_send(candidate) {
            Ok(()) => {
                recent.mark(id, ip, enr.seq(), now);
                trace!(node = %id, "offered dial candidate");
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                trace!(node = %id, "candidate channel full; offering later");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Discovery {
    /// Binds the UDP socket(s), builds the ENR, starts discv5, adds the bootnodes and
    /// the ENRs persisted by earlier runs, and spawns the lookup, event and persist
    /// tasks. Must run inside a tokio runtime with time and I/O enabled.
    pub async fn start(config: DiscoveryConfig, key: &NodeKey) -> Result<Self, Error> {
        validate(&config)?;
        let combined = CombinedKey::secp256k1_from_bytes(&mut key.secret_bytes())
            .map_err(|_| Error::InvalidKey)?;
        let cancel = match &config.cancel {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };

        // discv4 first: without discv5 its socket is the one the ENR names.
        let mut v4 = match &config.v4 {
            Some(v4_config) => {
                let v4_config = v4_config.clone().with_cancel(cancel.clone());
                Some(
                    Discv4::start(v4_config, key, |udp| {
                        crate::v4::enr_for(&config, key, udp.port())
                    })
                    .await?,
                )
            }
            None => None,
        };

        let (discv5, events, udp, udp_v6, enr) = if config.v5 {
            let (discv5, events, udp, udp_v6) = start_discv5(&config, combined).await?;
            let enr = discv5.local_enr();
            (Some(discv5), Some(events), udp, udp_v6, enr)
        } else {
            let v4 = v4
                .as_ref()
                .ok_or_else(|| Error::Config("v5 off and no v4: nothing to run".into()))?;
            (None, None, v4.udp_addr(), None, v4.local_enr())
        };
        let local_id = enr.node_id();

        // Bootnodes: malformed text is the caller's error; an unusable record is logged.
        let mut seeds = Vec::new();
        for text in &config.bootnodes {
            seeds.push(parse_enr(text)?);
        }
        let persist = config.persist_path.clone().map(|path| Persist {
            path,
            max: config.persist_max.max(1),
        });
        if let (Some(persist), Some(_)) = (&persist, &discv5) {
            let path = persist.path.clone();
            let stored = tokio::task::spawn_blocking(move || store::load(&path))
                .await
                .map_err(|e| Error::Discv5(format!("ENR file task: {e}")))?
                .map_err(|source| Error::Persist {
                    path: persist.path.clone(),
                    source,
                })?;
            debug!(stored = stored.len(), path = %persist.path.display(), "loaded stored ENRs");
            seeds.extend(stored.into_iter().filter(|e| e.node_id() != local_id));
        }
        if let Some(discv5) = &discv5 {
            for seed in &seeds {
                if let Err(reason) = discv5.add_enr(seed.clone()) {
                    debug!(node = %seed.node_id(), reason, "bootnode or stored ENR not added");
                }
            }
        }

        let (tx, rx) = mpsc::channel(config.candidate_buffer.max(1));
        let shared = Arc::new(Shared {
            filter: DialFilter::new(&config, local_id),
            recent: Mutex::new(RecentlyOffered::new(
                config.reoffer_after,
                config.recent_capacity,
                config.max_candidates_per_ip,
            )),
            tx,
        });

        let mut tasks = Vec::new();
        if let (Some(discv5), Some(events)) = (&discv5, events) {
            tasks.push(tokio::spawn(event_task(
                discv5.clone(),
                shared.clone(),
                events,
                cancel.clone(),
            )));
            tasks.push(tokio::spawn(lookup_task(
                discv5.clone(),
                shared.clone(),
                config.lookup_interval,
                seeds,
                cancel.clone(),
            )));
            if let Some(persist) = &persist {
                tasks.push(tokio::spawn(persist_task(
                    discv5.clone(),
                    persist.clone(),
                    config.persist_interval,
                    cancel.clone(),
                )));
            }
        }
        if let Some(v4) = v4.as_mut() {
            if let Some(found) = v4.take_discovered() {
                tasks.push(tokio::spawn(v4_task(
                    found,
                    v4.table_handle(),
                    shared.clone(),
                    config.lookup_interval,
                    cancel.clone(),
                )));
            }
        }
        let dns = match &config.dns {
            Some(dns_config) if !dns_config.urls.is_empty() => {
                let (dns, found) = DnsDiscovery::start(dns_config.clone(), cancel.child_token())?;
                tasks.push(tokio::spawn(dns_task(
                    found,
                    discv5.clone(),
                    shared.clone(),
                    cancel.clone(),
                )));
                Some(dns)
            }
            _ => None,
        };
        info!(
            v5 = ?discv5.as_ref().map(|_| udp),
            ?udp_v6,
            v4 = ?v4.as_ref().map(Discv4::udp_addr),
            dns_lists = config.dns.as_ref().map_or(0, |d| d.urls.len()),
            enr = %enr.to_base64(),
            "discovery started"
        );
        Ok(Self {
            discv5,
            v4,
            dns,
            enr,
            shared,
            candidates: Some(Candidates::new(rx)),
            udp,
            udp_v6,
            persist,
            cancel,
            tasks,
        })
    }

    /// The node's current ENR (discv5's; discv4's, whose `udp` is the discv4 port, when
    /// discv5 does not run).
    pub fn local_enr(&self) -> Enr {
        match &self.discv5 {
            Some(discv5) => discv5.local_enr(),
            None => self.enr.clone(),
        }
    }

    /// The node's ENR as text (`enr:…`), as printed at start and given as a bootnode.
    pub fn local_enr_string(&self) -> String {
        self.local_enr().to_base64()
    }

    /// The bound UDP address of discv5 (of discv4 when discv5 does not run; the
    /// OS-chosen port when configured with port 0).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The discv4 service, when it runs.
    pub fn v4(&self) -> Option<&Discv4> {
        self.v4.as_ref()
    }

    /// Whether discv5 runs.
    pub fn runs_v5(&self) -> bool {
        self.discv5.is_some()
    }

    /// DNS node discovery, when lists are configured: its per-round reports.
    pub fn dns(&self) -> Option<&DnsDiscovery> {
        self.dns.as_ref()
    }

    /// The bound IPv6 UDP address of a dual-stack node.
    pub fn udp_addr_v6(&self) -> Option<SocketAddr> {
        self.udp_v6
    }

    /// The number of nodes in the routing tables: discv5's and discv4's.
    pub fn table_size(&self) -> usize {
        let v5 = self.discv5.as_ref().map_or(0, |d| {
            d.with_kbuckets(|table| table.read().iter_ref().count())
        });
        v5 + self.v4.as_ref().map_or(0, Discv4::table_size)
    }

    /// Every ENR in the discv5 routing table (all valid records, whatever their stack or
    /// fork), and the discv4 table's records whose ENR it fetched.
    pub fn table_entries(&self) -> Vec<Enr> {
        let mut out = self
            .discv5
            .as_ref()
            .map(|d| d.table_entries_enr())
            .unwrap_or_default();
        if let Some(v4) = &self.v4 {
            out.extend(v4.table_entries().into_iter().filter_map(|r| r.enr));
        }
        out
    }

    /// Whether a node (by discv5 node id: keccak256 of its public key) is in the
    /// discv5 or the discv4 routing table.
    pub fn table_contains(&self, discv5_id: &[u8; 32]) -> bool {
        let in_v5 = self
            .discv5
            .as_ref()
            .is_some_and(|d| d.find_enr(&enr::NodeId::new(discv5_id)).is_some());
        in_v5
            || self.v4.as_ref().is_some_and(|v4| {
                v4.table_entries()
                    .iter()
                    .any(|r| r.id.discv5_id() == *discv5_id)
            })
    }

    /// Adds an ENR given as text (`enr:…`) to the routing table, and offers it as a
    /// dial candidate if it passes the filter.
    pub fn add_enr(&self, text: &str) -> Result<(), Error> {
        self.add_record(parse_enr(text)?)
    }

    /// Adds a parsed ENR to the routing table (e.g. one the peer pool stored), and
    /// offers it as a dial candidate if it passes the filter.
    pub fn add_record(&self, enr: Enr) -> Result<(), Error> {
        if let Some(discv5) = &self.discv5 {
            discv5.add_enr(enr.clone()).map_err(Error::Rejected)?;
        }
        self.shared.offer(&enr);
        Ok(())
    }

    /// Takes the dial-candidate stream. There is one; later calls return `None`.
    pub fn take_candidates(&mut self) -> Option<Candidates> {
        self.candidates.take()
    }

    /// The dial filter, for re-checking records from elsewhere (e.g. the peer pool's).
    pub fn dial_filter(&self) -> &DialFilter {
        &self.shared.filter
    }

    /// Every table entry that passes the dial filter, now, ignoring the
    /// recently-offered set: for a dialer that wants to pull rather than wait.
    pub fn table_candidates(&self) -> Vec<DialCandidate> {
        self.table_entries()
            .iter()
            .filter_map(|enr| self.shared.filter.check(enr).ok())
            .collect()
    }

    /// Runs one lookup for a random id now (discv5's, and discv4's when it runs), offers
    /// what it finds, and returns the records found.
    pub async fn lookup(&self) -> Result<Vec<Enr>, Error> {
        let mut found = match &self.discv5 {
            Some(discv5) => discv5
                .find_node(enr::NodeId::random())
                .await
                .map_err(|e| Error::Discv5(e.to_string()))?,
            None => Vec::new(),
        };
        if let Some(v4) = &self.v4 {
            found.extend(v4.lookup(None).await.into_iter().filter_map(|r| r.enr));
        }
        for enr in &found {
            self.shared.offer(enr);
        }
        Ok(found)
    }

    /// Writes the routing table's ENRs to the ENR file now. Returns how many were
    /// written (0 without a file, or with an empty table, which leaves the file as it is).
    pub async fn persist(&self) -> Result<usize, Error> {
        match (&self.persist, &self.discv5) {
            (Some(persist), Some(discv5)) => persist_table(discv5, persist).await,
            _ => Ok(0),
        }
    }

    /// Stops the tasks, writes the ENR file, and stops discv5. The candidate stream
    /// ends. (Dropping a `Discovery` also stops it, without writing the file.)
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Err(e) = self.persist().await {
            warn!(error = %e, "writing the ENR file at shutdown");
        }
        if let Some(v4) = self.v4.take() {
            v4.shutdown().await;
        }
        if let Some(dns) = self.dns.take() {
            dns.shutdown().await;
        }
        debug!(udp = %self.udp, "discovery stopped");
        // Dropping `self` drops the last `Discv5` handle, whose `Drop` stops the service.
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Binds discv5's socket(s) and starts it with the packet filter and IP limits of
/// [`DiscoveryConfig::v5_limits`].
async fn start_discv5(
    config: &DiscoveryConfig,
    combined: CombinedKey,
) -> Result<
    (
        Arc<Discv5>,
        mpsc::Receiver<Event>,
        SocketAddr,
        Option<SocketAddr>,
    ),
    Error,
> {
    let socket = Arc::new(bind_udp(config.listen)?);
    let udp = socket.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let socket_v6 = match config.listen_v6 {
        Some(addr) => Some(Arc::new(bind_udp(addr)?)),
        None => None,
    };
    let udp_v6 = match &socket_v6 {
        Some(s) => Some(
            s.local_addr()
                .map_err(|source| Error::Bind { addr: udp, source })?,
        ),
        None => None,
    };
    let enr = build_local_enr(config, &combined, udp.port(), udp_v6.map(|a| a.port()))?;
    let (ipv4, ipv6) = match (udp.is_ipv4(), socket_v6) {
        (true, v6) => (Some(socket), v6),
        (false, _) => (None, Some(socket)),
    };
    let mut builder = ConfigBuilder::new(ListenConfig::FromSockets { ipv4, ipv6 });
    builder
        // The ENR's IP is configured, not voted on (WIRE.md §4): never rewrite it,
        // and never withdraw it for want of incoming packets.
        .disable_enr_update()
        .auto_nat_listen_duration(None);
    let limits = &config.v5_limits;
    if limits.packet_filter {
        let per_sec = |n: u32| (u64::from(n.max(1)), Duration::from_secs(1));
        let (total, total_every) = per_sec(limits.requests_per_sec);
        let (ip, ip_every) = per_sec(limits.requests_per_ip_per_sec);
        let (node, node_every) = per_sec(limits.requests_per_node_per_sec);
        let limiter = discv5::RateLimiterBuilder::new()
            .total_n_every(total, total_every)
            .ip_n_every(ip, ip_every)
            .node_n_every(node, node_every)
            .build()
            .map_err(|e| Error::Config(format!("discv5 rate limiter: {e}")))?;
        builder
            .enable_packet_filter()
            .filter_rate_limiter(Some(limiter))
            .filter_max_nodes_per_ip(Some(limits.max_nodes_per_ip.max(1)))
            .filter_max_bans_per_ip(Some(limits.max_bans_per_ip.max(1)));
    }
    if limits.ip_limit {
        builder.ip_limit();
    }
    let mut discv5 =
        Discv5::new(enr, combined, builder.build()).map_err(|e| Error::Discv5(e.to_string()))?;
    discv5
        .start()
        .await
        .map_err(|e| Error::Discv5(e.to_string()))?;
    let events = discv5
        .event_stream()
        .await
        .map_err(|e| Error::Discv5(e.to_string()))?;
    Ok((Arc::new(discv5), events, udp, udp_v6))
}

/// discv4's discovered nodes → candidates: those whose ENR it fetched (EIP-868), since
/// only an ENR says which stacks a node runs and which fork it follows. Every
/// `interval` the table's records are offered again (the recently-offered set keeps
/// that cheap), as discv5's lookup task does with its table: a node reports a table
/// entry once, and a dial that failed then must get another chance.
async fn v4_task(
    mut found: DiscoveredNodes,
    table: TableHandle,
    shared: Arc<Shared>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut reoffer = tokio::time::interval(interval);
    reoffer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = reoffer.tick() => {
                for enr in table.entries().iter().filter_map(|r| r.enr.as_ref()) {
                    shared.offer(enr);
                }
            }
            node = found.recv() => {
                let Some(node) = node else { return };
                match &node.enr {
                    Some(enr) => {
                        shared.offer(enr);
                    }
                    None => trace!(node = %node.addr, "discv4 node without ENR: not a candidate"),
                }
            }
        }
    }
}

/// DNS list records → candidates, and into discv5's table as seeds (as go-ethereum
/// seeds its tables from DNS lists).
async fn dns_task(
    mut found: mpsc::Receiver<Enr>,
    discv5: Option<Arc<Discv5>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    loop {
        let enr = tokio::select! {
            _ = cancel.cancelled() => return,
            enr = found.recv() => enr,
        };
        let Some(enr) = enr else { return };
        if let Some(discv5) = &discv5 {
            let _ = discv5.add_enr(enr.clone());
        }
        shared.offer(&enr);
    }
}

fn validate(config: &DiscoveryConfig) -> Result<(), Error> {
    let bad = |s: &str| Err(Error::Config(s.to_string()));
    if config.listen.is_ipv4() != config.enr_ip.is_ipv4() {
        return bad("enr_ip must be of the same IP family as listen");
    }
    if config.enr_ip.is_unspecified() || config.enr_ip.is_multicast() {
        return bad("enr_ip must be a unicast address that peers can reach");
    }
    match (config.listen_v6, config.enr_ip6) {
        (None, None) => {}
        (Some(v6), Some(ip6)) => {
            if !v6.is_ipv6() || !config.listen.is_ipv4() {
                return bad("listen_v6 must be IPv6 and listen IPv4 for dual stack");
            }
            if ip6.is_unspecified() || ip6.is_multicast() {
                return bad("enr_ip6 must be a unicast address that peers can reach");
            }
        }
        _ => return bad("listen_v6 and enr_ip6 go together"),
    }
    if config.rlpx_tcp_port == Some(0) || config.mux_tcp_port == Some(0) {
        return bad("TCP ports in the ENR must be the bound ports, not 0");
    }
    if !config.v5 && config.v4.is_none() {
        return bad("with discv5 off, discv4 must run (v4 set): there would be no discovery");
    }
    if config.lookup_interval.is_zero() {
        return bad("lookup_interval must not be zero");
    }
    if config.persist_path.is_some() && config.persist_interval.is_zero() {
        return bad("persist_interval must not be zero");
    }
    Ok(())
}

/// Binds a UDP socket; an IPv6 one is v6-only so that IPv4 and IPv6 may share a port.
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, Error> {
    use socket2::{Domain, Protocol, Socket, Type};
    let io = |source| Error::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(io)?;
    }
    socket.set_nonblocking(true).map_err(io)?;
    socket.bind(&addr.into()).map_err(io)?;
    UdpSocket::from_std(socket.into()).map_err(io)
}

/// The ENR a node with `config` advertises, with the UDP ports of `config.listen`
/// (and `listen_v6`), built without starting discovery: for tools that print a
/// node's names. A running [`Discovery`] builds its own with the ports it bound.
pub fn local_enr(config: &DiscoveryConfig, key: &NodeKey) -> Result<Enr, Error> {
    validate(config)?;
    let combined = CombinedKey::secp256k1_from_bytes(&mut key.secret_bytes())
        .map_err(|_| Error::InvalidKey)?;
    // Without discv5 the record is discv4's, whose `udp` is the discv4 port.
    let udp = match (&config.v4, config.v5) {
        (Some(v4), false) => v4.listen.port(),
        _ => config.listen.port(),
    };
    build_local_enr(config, &combined, udp, config.listen_v6.map(|a| a.port()))
}

/// The node's ENR: `ip`/`ip6` and `udp`/`udp6` as configured and bound, `tcp` only with
/// RLPx, `mux` only with the stream stack, `eth` always (WIRE.md §4).
///
/// `seq` is the time in milliseconds: a restarted node's record (new ports, say)
/// always supersedes the one its peers remember, without storing a counter.
pub(crate) fn build_local_enr(
    config: &DiscoveryConfig,
    key: &CombinedKey,
    udp_port: u16,
    udp6_port: Option<u16>,
) -> Result<Enr, Error> {
    let seq = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(1)
        .max(1);
    let mut builder = Enr::builder();
    builder.seq(seq);
    match config.enr_ip {
        IpAddr::V4(ip) => builder.ip4(ip).udp4(udp_port),
        IpAddr::V6(ip) => builder.ip6(ip).udp6(udp_port),
    };
    if let (Some(ip6), Some(port)) = (config.enr_ip6, udp6_port) {
        builder.ip6(ip6).udp6(port);
    }
    if let Some(port) = config.rlpx_tcp_port {
        // `tcp` (go-ethereum reads it for IPv6 addresses too when `tcp6` is absent).
        builder.tcp4(port);
    }
    if let Some(port) = config.mux_tcp_port {
        builder.add_value(MUX_ENR_KEY, &port);
    }
    builder.add_value(ETH_ENR_KEY, &enr_value(config.eth));
    builder
        .build(key)
        .map_err(|e| Error::LocalEnr(e.to_string()))
}

fn parse_enr(text: &str) -> Result<Enr, Error> {
    text.trim()
        .parse::<Enr>()
        .map_err(|problem| Error::InvalidEnr {
            text: text.chars().take(40).collect(),
            problem,
        })
}

/// Turns discv5 events into candidates: records seen in query responses, peers with a
/// new session, and nodes newly inserted into the table.
async fn event_task(
    discv5: Arc<Discv5>,
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<Event>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            Event::Discovered(enr) => {
                shared.offer(&enr);
            }
            Event::SessionEstablished(enr, addr) => {
                trace!(node = %enr.node_id(), %addr, "session established");
                shared.offer(&enr);
            }
            Event::NodeInserted { node_id, .. } => {
                if let Some(enr) = discv5.find_enr(&node_id) {
                    shared.offer(&enr);
                }
            }
            _ => {}
        }
    }
}

/// A lookup for our own id (to fill the buckets near us), then one for a random id
/// every `interval`. Each round also offers the table (the recently-offered set keeps
/// that cheap for the dialer). An empty table is reseeded from the bootnodes and
/// stored records, so a node whose peers were all down at start recovers.
async fn lookup_task(
    discv5: Arc<Discv5>,
    shared: Arc<Shared>,
    interval: Duration,
    seeds: Vec<Enr>,
    cancel: CancellationToken,
) {
    let mut target = discv5.local_enr().node_id();
    loop {
        if discv5.with_kbuckets(|t| t.read().iter_ref().next().is_none()) && !seeds.is_empty() {
            debug!("empty table: re-adding bootnodes and stored ENRs");
            for seed in &seeds {
                let _ = discv5.add_enr(seed.clone());
            }
        }
        let query = discv5.find_node(target);
        let found = tokio::select! {
            _ = cancel.cancelled() => return,
            found = query => found,
        };
        match found {
            Ok(found) => {
                trace!(found = found.len(), "lookup done");
                for enr in &found {
                    shared.offer(enr);
                }
            }
            Err(e) => debug!(error = %e, "lookup failed"),
        }
        ask_neighbours(&discv5, &shared, &cancel).await;
        for enr in discv5.table_entries_enr() {
            shared.offer(&enr);
        }
        target = enr::NodeId::random();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Table entries asked for their neighbours each round.
const NEIGHBOUR_QUERIES: usize = 8;
/// The log-distances asked for: the top eleven cover all but 1/2048 of the id
/// space, so in a small network every node learns every other one in one round
/// rather than when a random lookup happens to land near it.
const NEIGHBOUR_DISTANCES: std::ops::RangeInclusive<u64> = 246..=256;

/// Asks a few table entries for the nodes they know, adds those to the table and
/// offers them. Random lookups alone rarely reach every node of a small network.
async fn ask_neighbours(discv5: &Arc<Discv5>, shared: &Arc<Shared>, cancel: &CancellationToken) {
    let mut entries = discv5.table_entries_enr();
    entries.truncate(NEIGHBOUR_QUERIES);
    let queries = entries.into_iter().map(|enr| {
        let query = discv5.find_node_designated_peer(enr, NEIGHBOUR_DISTANCES.rev().collect());
        tokio::time::timeout(Duration::from_secs(5), query)
    });
    let answers = tokio::select! {
        _ = cancel.cancelled() => return,
        answers = futures::future::join_all(queries) => answers,
    };
    let local = discv5.local_enr().node_id();
    for enr in answers.into_iter().flatten().flatten().flatten() {
        if enr.node_id() != local {
            let _ = discv5.add_enr(enr.clone());
            shared.offer(&enr);
        }
    }
}

async fn persist_task(
    discv5: Arc<Discv5>,
    persist: Persist,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = persist_table(&discv5, &persist).await {
            warn!(error = %e, "writing the ENR file");
        }
    }
}

async fn persist_table(discv5: &Discv5, persist: &Persist) -> Result<usize, Error> {
    let enrs = store::dedupe(discv5.table_entries_enr(), persist.max);
    if enrs.is_empty() {
        // Keep what an earlier run stored rather than forget every peer.
        return Ok(0);
    }
    let count = enrs.len();
    let path = persist.path.clone();
    tokio::task::spawn_blocking(move || store::save(&path, &enrs))
        .await
        .map_err(|e| Error::Discv5(format!("ENR file task: {e}")))?
        .map_err(|source| Error::Persist {
            path: persist.path.clone(),
            source,
        })?;
    trace!(count, path = %persist.path.display(), "wrote ENR file");
    Ok(count)
}
