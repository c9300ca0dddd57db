//! Prometheus metrics, served at `/metrics` (`--metrics`) in the OpenMetrics text
//! format.
//!
//! Counters come from events: a task per source follows the network's
//! [`NetworkEvent`]s and the eth handler's [`EthEvent`]s from the moment the
//! network starts. Gauges are read from the node's state at each scrape, so they
//! never drift.
//!
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `devmux_connections_total` | counter | `server`, `direction` | `PeerConnected` |
//! | `devmux_disconnects_total` | counter | `reason`, `by` (`local`/`remote`) | `PeerDisconnected` |
//! | `devmux_penalties_total` | counter | `penalty` (`minor`/`major`/`fatal`) | `PeerPenalized` |
//! | `devmux_streams_opened_total` | counter | `protocol`, `direction` | `StreamOpened` |
//! | `devmux_eth_handshakes_total` | counter | `result` (`ok`/`failed`) | `StatusExchanged`, `HandshakeFailed` |
//! | `devmux_events_lagged_total` | counter | `source` | events the counters missed (a lagging subscriber) |
//! | `devmux_peers` | gauge | `server`, `direction` | connected peers |
//! | `devmux_peer_protocols` | gauge | `protocol` | connected peers with that protocol negotiated |
//! | `devmux_peer_ping_rtt_seconds` | gauge | `peer`, `server` | each peer's last answered keepalive ping (at most `max-peers` series) |
//! | `devmux_peer_missed_pings` | gauge | `peer`, `server` | keepalive pings each peer missed in a row (dropped at `max_missed_pings`, 3) |
//! | `devmux_eth_peers` | gauge | – | peers with an eth session |
//! | `devmux_discovery_table_size` | gauge | – | discv5 and discv4 routing-table entries (when discovery runs) |
//! | `devmux_chain_head` | gauge | – | canonical head block number |
//! | `devmux_chain_receipts_pending` | gauge | – | stored blocks waiting for their receipts (imported from a chain file) |
//! | `devmux_txpool_transactions` | gauge | – | transactions in the pool |
//! | `devmux_syncing` | gauge | – | 1 while syncing, else 0 |
//! | `devmux_sync_current_block`, `devmux_sync_highest_block` | gauge | – | sync progress (the head when idle) |
//! | `devmux_sync_blocks_per_second` | gauge | – | blocks imported per second by the running sync |
//! | `devmux_bytes_total` | counter | `direction` (`in`/`out`) | socket bytes, from `Network::stats()` |
//! | `devmux_handshake_seconds` | histogram | – | TCP connect to established session, from `Network::stats()` |
//! | `devmux_protocol_messages_total` | counter | `protocol`, `direction` (`in`/`out`), `code` | messages per registrar protocol and code, from `Network::counters()` |
//! | `devmux_protocol_bytes_total` | counter | `protocol`, `direction` | message bytes (code and payload) per protocol |
//! | `devmux_dials_total` | counter | `server`, `outcome` (`connected`, `timeout`, `io`, `refused`, …) | every `Network::dial` |
//! | `devmux_handshake_failures_total` | counter | `server`, `direction`, `reason` (`timeout`, `noise`, `ecies`, `busy`, …) | failed handshakes |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use devmux_eth::{EthEvent, EthPeers};
use devmux_network::{Direction, DisconnectReason, Network, NetworkEvent, Penalty, ServerKind};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::rpc::NodeView;

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapes served at once.
const MAX_CONNECTIONS: usize = 16;
/// A client must send its request head within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    server: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DisconnectLabels {
    reason: String,
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PenaltyLabels {
    penalty: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    protocol: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    protocol: String,
    direction: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolDirectionLabels {
    protocol: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DialLabels {
    server: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeFailureLabels {
    server: String,
    direction: &'static str,
    reason: &'static str,
}

/// `in` for what we received or was dialled to us, `out` for what we sent or dialled.
fn direction_label(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "in",
        Direction::Outbound => "out",
    }
}

/// Bytes and handshake durations, read from the network's own counters at each
/// scrape.
#[derive(Debug)]
struct WireStats {
    network: Network,
}

impl Collector for WireStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.network.stats();
        let counters = self.network.counters();
        {
            let mut family = encoder.encode_descriptor(
                "protocol_messages",
                "Messages received (in) and sent (out) per registrar protocol and message code",
                None,
                MetricType::Counter,
            )?;
            for m in &counters.messages {
                let labels = MessageLabels {
                    protocol: m.protocol.clone(),
                    direction: direction_label(m.direction),
                    code: format!("{:#04x}", m.code),
                };
                ConstCounter::new(m.messages).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "protocol_bytes",
                "Message bytes (code and payload, before framing and compression) per protocol",
                None,
                MetricType::Counter,
            )?;
            for b in &counters.bytes {
                let labels = ProtocolDirectionLabels {
                    protocol: b.protocol.clone(),
                    direction: direction_label(b.direction),
                };
                ConstCounter::new(b.bytes).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "dials",
                "Dials by outcome: connected, or what failed (timeout, io, refused, ...)",
                None,
                MetricType::Counter,
            )?;
            for d in &counters.dials {
                let labels = DialLabels {
                    server: d.server.to_string(),
                    outcome: d.outcome,
                };
                ConstCounter::new(d.count).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "handshake_failures",
                "Handshakes that failed, by direction and reason (timeout, noise, ecies, busy, ...)",
                None,
                MetricType::Counter,
            )?;
            for f in &counters.handshake_failures {
                let labels = HandshakeFailureLabels {
                    server: f.server.to_string(),
                    direction: direction_label(f.direction),
                    reason: f.reason,
                };
                ConstCounter::new(f.count).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut bytes = encoder.encode_descriptor(
                "bytes",
                "Bytes read (in) and written (out) on peer sockets",
                None,
                MetricType::Counter,
            )?;
            for (direction, value) in [("in", stats.bytes_in), ("out", stats.bytes_out)] {
                let labels = DirectionLabels { direction };
                ConstCounter::new(value).encode(bytes.encode_family(&labels)?)?;
            }
        }
        // The snapshot's buckets are cumulative; the encoder wants each bucket's own
        // count, and adds the +Inf bucket's.
        let mut previous = 0;
        let mut buckets: Vec<(f64, u64)> = stats
            .handshake_buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let own = cumulative.saturating_sub(previous);
                previous = cumulative;
                (bound, own)
            })
            .collect();
        buckets.push((f64::INFINITY, stats.handshakes.saturating_sub(previous)));
        let mut histogram = encoder.encode_descriptor(
            "handshake_seconds",
            "Time from TCP connect to an established session (Noise and Yamux, or ECIES and Hello)",
            None,
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            stats.handshake_seconds,
            stats.handshakes,
            &buckets,
            None,
        )
    }
}

/// Every metric, and the registry that names them.
struct Inner {
    connections: Family<ConnectionLabels, Counter>,
    disconnects: Family<DisconnectLabels, Counter>,
    penalties: Family<PenaltyLabels, Counter>,
    streams: Family<StreamLabels, Counter>,
    eth_handshakes: Family<ResultLabels, Counter>,
    lagged: Family<SourceLabels, Counter>,
    peers: Family<ConnectionLabels, Gauge>,
    peer_protocols: Family<ProtocolLabels, Gauge>,
    /// Per connected peer (at most `max-peers` series).
    peer_ping_rtt: Family<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    peer_missed_pings: Family<PeerLabels, Gauge>,
    eth_peers: Gauge,
    discovery_table: Gauge<i64, AtomicI64>,
    chain_head: Gauge<i64, AtomicI64>,
    receipts_pending: Gauge<i64, AtomicI64>,
    txpool: Gauge,
    syncing: Gauge,
    sync_current: Gauge<i64, AtomicI64>,
    sync_highest: Gauge<i64, AtomicI64>,
    sync_rate: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Registers the metrics; held while a scrape refreshes gauges and encodes, so
    /// two scrapes never interleave.
    registry: Mutex<Registry>,
}

/// Both directions on `server`.
fn connection_labels(server: ServerKind) -> [ConnectionLabels; 2] {
    [Direction::Inbound, Direction::Outbound].map(|direction| ConnectionLabels {
        server: server.to_string(),
        direction: direction.to_string(),
    })
}

/// A block number or count as a gauge value (saturating: gauges are `i64`).
fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Inner {
    /// The metrics; `network`'s wire statistics among them when given.
    fn new(network: Option<&Network>, with_discovery: bool) -> Self {
        let inner = Self {
            connections: Family::default(),
            disconnects: Family::default(),
            penalties: Family::default(),
            streams: Family::default(),
            eth_handshakes: Family::default(),
            lagged: Family::default(),
            peers: Family::default(),
            peer_protocols: Family::default(),
            peer_ping_rtt: Family::default(),
            peer_missed_pings: Family::default(),
            eth_peers: Gauge::default(),
            discovery_table: Gauge::default(),
            chain_head: Gauge::default(),
            receipts_pending: Gauge::default(),
            txpool: Gauge::default(),
            syncing: Gauge::default(),
            sync_current: Gauge::default(),
            sync_highest: Gauge::default(),
            sync_rate: Gauge::default(),
            registry: Mutex::new(Registry::with_prefix("devmux")),
        };
        // Zero series for every label set known in advance, so that a new node shows 0
        // (and `rate()` starts from it) rather than no series at all.
        for penalty in ["minor", "major", "fatal"] {
            let _ = inner.penalties.get_or_create(&PenaltyLabels {
                penalty: penalty.to_string(),
            });
        }
        for source in ["network", "eth"] {
            let _ = inner.lagged.get_or_create(&SourceLabels {
                source: source.to_string(),
            });
        }
        for reason in DisconnectReason::ALL {
            for by in ["local", "remote"] {
                let _ = inner.disconnects.get_or_create(&DisconnectLabels {
                    reason: format!("{reason:?}"),
                    by: by.to_string(),
                });
            }
        }
        {
            let mut r = inner.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register(
                "connections",
                "Peer connections established, by server and direction",
                inner.connections.clone(),
            );
            r.register(
                "disconnects",
                "Peer connections ended, by reason and by which side gave it",
                inner.disconnects.clone(),
            );
            r.register(
                "penalties",
                "Reputation penalties given to peers",
                inner.penalties.clone(),
            );
            r.register(
                "streams_opened",
                "Protocol streams (or RLPx capabilities) opened, by protocol and direction",
                inner.streams.clone(),
            );
            r.register(
                "eth_handshakes",
                "eth Status exchanges, by result",
                inner.eth_handshakes.clone(),
            );
            r.register(
                "events_lagged",
                "Events these counters missed because their subscriber fell behind",
                inner.lagged.clone(),
            );
            r.register(
                "peers",
                "Connected peers, by server and direction",
                inner.peers.clone(),
            );
            r.register(
                "peer_protocols",
                "Connected peers that negotiated the protocol",
                inner.peer_protocols.clone(),
            );
            r.register(
                "peer_ping_rtt_seconds",
                "Round trip of each connected peer's last answered keepalive ping",
                inner.peer_ping_rtt.clone(),
            );
            r.register(
                "peer_missed_pings",
                "Keepalive pings each connected peer missed in a row",
                inner.peer_missed_pings.clone(),
            );
            r.register(
                "eth_peers",
                "Peers with an established eth session",
                inner.eth_peers.clone(),
            );
            if with_discovery {
                r.register(
                    "discovery_table_size",
                    "Nodes in the discv5 and discv4 routing tables",
                    inner.discovery_table.clone(),
                );
            }
            r.register(
                "chain_head",
                "Block number of the canonical head",
                inner.chain_head.clone(),
            );
            r.register(
                "chain_receipts_pending",
                "Stored blocks waiting for their receipts from peers (imported from a chain file)",
                inner.receipts_pending.clone(),
            );
            r.register(
                "txpool_transactions",
                "Transactions in the pool",
                inner.txpool.clone(),
            );
            r.register(
                "syncing",
                "1 while the node syncs, else 0",
                inner.syncing.clone(),
            );
            r.register(
                "sync_current_block",
                "Our head block during sync (the head when idle)",
                inner.sync_current.clone(),
            );
            r.register(
                "sync_highest_block",
                "Highest block peers reported during sync (the head when idle)",
                inner.sync_highest.clone(),
            );
            r.register(
                "sync_blocks_per_second",
                "Blocks imported per second by the running sync (0 when idle)",
                inner.sync_rate.clone(),
            );
            if let Some(network) = network {
                r.register_collector(Box::new(WireStats {
                    network: network.clone(),
                }));
            }
        }
        inner
    }

    fn record_network(&self, event: &NetworkEvent) {
        match event {
            NetworkEvent::PeerConnected {
                direction, server, ..
            } => {
                self.connections
                    .get_or_create(&ConnectionLabels {
                        server: server.to_string(),
                        direction: direction.to_string(),
                    })
                    .inc();
            }
            NetworkEvent::PeerDisconnected {
                reason, by_remote, ..
            } => {
                let reason = match reason {
                    Some(r) => format!("{r:?}"),
                    None => "none".to_string(),
                };
                let by = if *by_remote { "remote" } else { "local" };
                self.disconnects
                    .get_or_create(&DisconnectLabels {
                        reason,
                        by: by.to_string(),
                    })
                    .inc();
            }
            NetworkEvent::StreamOpened {
                protocol,
                direction,
                ..
            } => {
                self.streams
                    .get_or_create(&StreamLabels {
                        protocol: protocol.to_string(),
                        direction: direction.to_string(),
                    })
                    .inc();
            }
            NetworkEvent::PeerPenalized { penalty, .. } => {
                let penalty = match penalty {
                    Penalty::Minor => "minor",
                    Penalty::Major => "major",
                    Penalty::Fatal => "fatal",
                };
                self.penalties
                    .get_or_create(&PenaltyLabels {
                        penalty: penalty.to_string(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    fn record_eth(&self, event: &EthEvent) {
        let result = match event {
            EthEvent::StatusExchanged { .. } => "ok",
            EthEvent::HandshakeFailed { .. } => "failed",
            _ => return,
        };
        self.eth_handshakes
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    fn record_lag(&self, source: &str, missed: u64) {
        self.lagged
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc_by(missed);
    }

    /// Sets the gauges from the node's state and encodes every metric.
    fn render(&self, view: &NodeView) -> String {
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let peers = view.network.peers();
        self.peers.clear();
        self.peer_protocols.clear();
        self.peer_ping_rtt.clear();
        self.peer_missed_pings.clear();
        // Zero series for our server, so a scrape shows 0 rather than nothing.
        for labels in view
            .network
            .servers()
            .into_iter()
            .flat_map(connection_labels)
        {
            let _ = self.peers.get_or_create(&labels);
        }
        for peer in &peers {
            self.peers
                .get_or_create(&ConnectionLabels {
                    server: peer.server.to_string(),
                    direction: peer.direction.to_string(),
                })
                .inc();
            let labels = PeerLabels {
                peer: peer.peer_id.to_string(),
                server: peer.server.to_string(),
            };
            if let Some(rtt) = peer.ping_rtt {
                self.peer_ping_rtt
                    .get_or_create(&labels)
                    .set(rtt.as_secs_f64());
            }
            self.peer_missed_pings
                .get_or_create(&labels)
                .set(i64::from(peer.missed_pings));
            for protocol in &peer.protocols {
                self.peer_protocols
                    .get_or_create(&ProtocolLabels {
                        protocol: protocol.to_string(),
                    })
                    .inc();
            }
        }
        self.eth_peers.set(gauge_value(view.eth.len() as u64));
        if let Some(size) = view.discovery_table_size() {
            self.discovery_table.set(gauge_value(size as u64));
        }
        let head = view.chain.head().number;
        self.chain_head.set(gauge_value(head));
        self.receipts_pending
            .set(gauge_value(view.chain.pending_receipts_count()));
        self.txpool.set(gauge_value(view.pool.len() as u64));
        self.sync_rate.set(view.sync.blocks_per_sec());
        match view.sync.progress() {
            Some(p) => {
                self.syncing.set(1);
                self.sync_current.set(gauge_value(p.current_block));
                self.sync_highest.set(gauge_value(p.highest_block));
            }
            None => {
                self.syncing.set(0);
                self.sync_current.set(gauge_value(head));
                self.sync_highest.set(gauge_value(head));
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// The event-following tasks; dropping this stops them.
struct Tasks {
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The metrics of a starting node: counting events already, not served yet.
pub(crate) struct Metrics {
    inner: Arc<Inner>,
    tasks: Tasks,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Counts a broadcast channel's events until it closes or `cancel` fires.
fn follow<E, F>(
    inner: Arc<Inner>,
    mut events: broadcast::Receiver<E>,
    source: &'static str,
    cancel: CancellationToken,
    record: F,
) -> JoinHandle<()>
where
    E: Clone + Send + 'static,
    F: Fn(&Inner, &E) + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => record(&inner, &event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    inner.record_lag(source, missed)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

impl Metrics {
    /// Starts counting the network's and the eth handler's events from now on.
    pub(crate) fn follow(network: &Network, eth: &EthPeers, with_discovery: bool) -> Self {
        let inner = Arc::new(Inner::new(Some(network), with_discovery));
        // Zero series from the start: a rate over them works before the first event.
        for labels in network.servers().into_iter().flat_map(connection_labels) {
            let _ = inner.connections.get_or_create(&labels);
        }
        for result in ["ok", "failed"] {
            let _ = inner.eth_handshakes.get_or_create(&ResultLabels {
                result: result.to_string(),
            });
        }
        let cancel = CancellationToken::new();
        let handles = vec![
            follow(
                inner.clone(),
                network.events(),
                "network",
                cancel.clone(),
                Inner::record_network,
            ),
            follow(
                inner.clone(),
                eth.subscribe(),
                "eth",
                cancel.clone(),
                Inner::record_eth,
            ),
        ];
        Self {
            inner,
            tasks: Tasks { cancel, handles },
        }
    }

    /// Serves `/metrics` on `listener`.
    pub(crate) fn serve(
        self,
        listener: tokio::net::TcpListener,
        addr: SocketAddr,
        view: NodeView,
    ) -> MetricsServer {
        let Metrics { inner, mut tasks } = self;
        let cancel = tasks.cancel.clone();
        tasks
            .handles
            .push(tokio::spawn(accept_loop(listener, inner, view, cancel)));
        tracing::info!(%addr, "metrics listening at /metrics");
        MetricsServer { addr, tasks }
    }
}

/// A running `/metrics` endpoint.
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    tasks: Tasks,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and counting, and waits for the tasks.
    pub(crate) async fn stop(mut self) {
        self.tasks.cancel.cancel();
        for handle in std::mem::take(&mut self.tasks.handles) {
            let _ = handle.await;
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    inner: Arc<Inner>,
    view: NodeView,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, then try again.
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the limit: drop the connection rather than queue it.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (inner, view, cancel) = (inner.clone(), view.clone(), cancel.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = respond(&inner, &view, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                result = connection => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "metrics connection ended");
                    }
                }
            }
        });
    }
}

/// The classic Prometheus text format (version 0.0.4).
const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as the classic Prometheus text format: a counter family's `HELP`
/// and `TYPE` lines name its `_total` samples, and the `# EOF` and `# UNIT` lines go.
/// Everything else (gauges, histograms, samples, labels) is written the same in both.
fn to_classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn respond(
    inner: &Inner,
    view: &NodeView,
    request: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    // Prometheus asks for OpenMetrics; other clients (promtool, curl, older scrapers)
    // get the classic text format, as the Go client does.
    let openmetrics = request
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match request.uri().path() {
        "/metrics" if openmetrics => reply(StatusCode::OK, CONTENT_TYPE, inner.render(view)),
        "/metrics" => reply(
            StatusCode::OK,
            CLASSIC_CONTENT_TYPE,
            to_classic_text(&inner.render(view)),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "devmux serves Prometheus metrics at /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let om = "# HELP devmux_dials Dials.\n# TYPE devmux_dials counter\n\
                  devmux_dials_total{outcome=\"io\"} 2\n# HELP devmux_peers Peers.\n\
                  # TYPE devmux_peers gauge\ndevmux_peers 1\n# UNIT devmux_x seconds\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP devmux_dials_total Dials.\n# TYPE devmux_dials_total counter\n\
             devmux_dials_total{outcome=\"io\"} 2\n# HELP devmux_peers Peers.\n\
             # TYPE devmux_peers gauge\ndevmux_peers 1\n"
        );
    }
    use devmux_network::DisconnectReason;

    #[test]
    fn events_move_counters() {
        let inner = Inner::new(None, false);
        let peer = devmux_network::NodeKey::generate().peer_id();
        inner.record_network(&NetworkEvent::PeerDisconnected {
            peer,
            reason: Some(DisconnectReason::ClientQuitting),
            by_remote: true,
        });
        inner.record_network(&NetworkEvent::PeerPenalized {
            peer,
            penalty: Penalty::Major,
            reason: "test".into(),
        });
        inner.record_lag("network", 3);
        let registry = inner.registry.lock().unwrap();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"devmux_disconnects_total{reason="ClientQuitting",by="remote"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"devmux_penalties_total{penalty="major"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"devmux_events_lagged_total{source="network"} 3"#),
            "{out}"
        );
        assert!(!out.contains("discovery_table_size"), "{out}");
    }
}
