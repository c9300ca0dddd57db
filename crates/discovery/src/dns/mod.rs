//! DNS node lists (EIP-1459): signed trees of ENRs published as DNS TXT records, a
//! bootstrap source that works where UDP discovery is blocked and that the list's
//! operator can update without a software release.
//!
//! # What is here
//! - **Entry codec** ([`entry`]): the root `enrtree-root:v1 e=… l=… seq=… sig=…`
//!   ([`Root`]), branches, links `enrtree://<key>@<domain>` ([`Link`], also the URL a node
//!   is configured with) and `enr:` leaves ([`Entry`]). An entry's name is
//!   [`entry_hash`] of its text.
//! - **Signer** ([`SignedTree`]): builds a tree from ENRs and links, signs its root and
//!   renders the `(name, TXT value)` records to publish, as go-ethereum's
//!   `devp2p dns sign` does.
//! - **Walker** ([`DnsDiscovery`]): one task that resolves every configured URL each
//!   [`refresh`](DnsConfig::refresh): the root (its signature must be the URL's key,
//!   its `seq` must not go down), then the ENR and link subtrees by TXT lookups of
//!   `<hash>.<domain>`, every answer checked against the hash it was asked for. Linked
//!   trees are walked with their own keys. ENRs go out on a bounded channel, to the
//!   node's dial candidate filter. [`resolve_tree`] walks one tree once.
//! - **Resolver** ([`TxtResolver`]): hickory's ([`HickoryResolver`]), with the system
//!   configuration or one nameserver ([`DnsConfig::resolver`]).
//!
//! # Bounds
//! Everything a DNS server sends is untrusted: bad entries are skipped (logged at debug
//! and counted in the round's [`TreeReport`]), never fatal. A walk is bounded in entries,
//! branch depth, linked trees, link hops, TXT size, time per lookup and per walk, and
//! lookups in flight ([`DnsLimits`]). A tree that does not change its `seq` costs one
//! lookup per round; a changed tree reuses the entries it shares with the last one
//! (they are content-addressed).
//!
//! # Example
//! ```no_run
//! use devmux_discovery::dns::{DnsConfig, DnsDiscovery};
//! use std::time::Duration;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), devmux_discovery::Error> {
//! let config = DnsConfig::default()
//!     .with_urls(["enrtree://AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE@all.mainnet.ethdisco.net"])
//!     .with_refresh(Duration::from_secs(30 * 60));
//! let cancel = CancellationToken::new();
//! let (dns, mut enrs) = DnsDiscovery::start(config, cancel.clone())?;
//! while let Some(enr) = enrs.recv().await {
//!     println!("candidate {}", enr.node_id());
//! }
//! dns.shutdown().await;
//! # Ok(()) }
//! ```

pub mod entry;
mod resolver;
#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
mod tree;
mod walk;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use entry::{entry_hash, Entry, Link, Root};
pub use resolver::{HickoryResolver, TxtFuture, TxtResolver, MAX_TXT_RECORDS};
pub use tree::{SignedTree, MAX_CHILDREN};
pub use walk::MAX_REPORTED_SKIPS;

use crate::Enr;

/// What went wrong with a DNS list. The walker never stops on one: a bad entry is
/// skipped, a bad root skips the tree for this round (the tree held from earlier rounds
/// stays). Only [`DnsDiscovery::start`] returns them, for our own configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// Text that is not a well-formed entry of its kind (`root`, `branch`, `link`,
    /// `enr`): the entry is skipped (a configured URL that is malformed: start fails).
    #[error("malformed {kind} entry: {problem}")]
    Malformed {
        /// The entry kind.
        kind: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// Text that starts with no known entry prefix: that TXT record is ignored.
    #[error("not a tree entry")]
    UnknownEntry,
    /// An entry fetched from `name` is malformed: it is skipped.
    #[error("{name}: {source}")]
    Entry {
        /// The name looked up.
        name: String,
        /// What is wrong.
        source: Box<DnsError>,
    },
    /// A root whose signature is not the URL's key: the tree is refused this round.
    #[error("{name}: the root is not signed by the URL's key")]
    BadSignature {
        /// The tree's domain.
        name: String,
    },
    /// No `enrtree-root:v1` record at the tree's domain: the tree is skipped this round.
    #[error("{name}: no tree root")]
    NoRoot {
        /// The tree's domain.
        name: String,
    },
    /// No entry record at a hash's name: the entry is skipped.
    #[error("{name}: no tree entry")]
    NoEntry {
        /// The name looked up.
        name: String,
    },
    /// Content that does not hash to the name it was fetched under: skipped (the server
    /// or a resolver on the way altered it).
    #[error("{name}: the content does not match its hash")]
    HashMismatch {
        /// The name looked up.
        name: String,
    },
    /// An entry of a kind its subtree may not hold (a link among ENRs, an ENR among
    /// links): skipped.
    #[error("{name}: a {kind} entry in the wrong subtree")]
    WrongSubtree {
        /// The name looked up.
        name: String,
        /// The entry's kind.
        kind: &'static str,
    },
    /// A hash (or linked tree) met again in the same walk, through a loop or a shared
    /// subtree: not fetched again.
    #[error("{name}: already visited in this walk")]
    Repeated {
        /// The name (or link) met again.
        name: String,
    },
    /// A TXT record over [`DnsLimits::max_txt_bytes`]: skipped.
    #[error("{name}: a TXT record of {len} bytes is over the limit")]
    TooLarge {
        /// The name looked up.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The lookup failed (no such name, server failure): skipped, tried again next round.
    #[error("looking up {name}: {problem}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        problem: String,
    },
    /// No answer within the lookup's deadline: skipped, tried again next round.
    #[error("looking up {name}: no answer in time")]
    Timeout {
        /// The name looked up.
        name: String,
    },
    /// The resolver could not be set up (system configuration unreadable): start fails.
    #[error("DNS resolver: {0}")]
    Resolver(String),
    /// The configuration is inconsistent: start fails.
    #[error("invalid DNS discovery config: {0}")]
    Config(String),
}

impl DnsError {
    /// Whether trying again later may succeed (lookup failures, not bad data).
    pub fn is_transient(&self) -> bool {
        matches!(self, DnsError::Lookup { .. } | DnsError::Timeout { .. })
    }
}

/// Bounds of one walk. Each is what a well-formed list needs with a wide margin; beyond
/// it the walk stops where it is and keeps what it has (reported in
/// [`TreeReport::limits_hit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsLimits {
    /// Entries (branches and leaves) of one tree. Default 10 000: the largest public
    /// lists (go-ethereum's `all.<network>.ethdisco.net`) hold a few thousand ENRs, about
    /// 1/12 more in branches; a node needs only bootstrap candidates from them.
    pub max_entries: usize,
    /// Branch nesting below a subtree's top. Default 16: go-ethereum's layout of 13
    /// children per branch needs 4 levels for 10 000 leaves.
    pub max_depth: usize,
    /// Linked trees walked per configured URL and round. Default 16.
    pub max_links: usize,
    /// Link hops from a configured URL. Default 4.
    pub max_link_depth: usize,
    /// Length of one TXT record (character-strings joined). Default 1024: EIP-1459 asks
    /// every record to fit a 512-byte UDP answer; an ENR leaf is at most 404 characters.
    pub max_txt_bytes: usize,
    /// Deadline of one lookup. Default 5 s (go-ethereum's).
    pub lookup_timeout: Duration,
    /// Deadline of a configured URL's walk, its linked trees included. Default 3 min:
    /// 10 000 entries at 8 in flight and 50 ms per uncached lookup take about a minute.
    pub walk_timeout: Duration,
    /// Lookups in flight at once. Default 8: a steady, modest load on the resolver.
    pub max_in_flight: usize,
}

impl Default for DnsLimits {
    fn default() -> Self {
        DnsLimits {
            max_entries: 10_000,
            max_depth: 16,
            max_links: 16,
            max_link_depth: 4,
            max_txt_bytes: 1024,
            lookup_timeout: Duration::from_secs(5),
            walk_timeout: Duration::from_secs(180),
            max_in_flight: 8,
        }
    }
}

impl DnsLimits {
    /// Sets [`max_entries`](Self::max_entries).
    pub fn with_max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }
    /// Sets [`max_depth`](Self::max_depth).
    pub fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }
    /// Sets [`max_links`](Self::max_links).
    pub fn with_max_links(mut self, n: usize) -> Self {
        self.max_links = n;
        self
    }
    /// Sets [`max_link_depth`](Self::max_link_depth).
    pub fn with_max_link_depth(mut self, n: usize) -> Self {
        self.max_link_depth = n;
        self
    }
    /// Sets [`max_txt_bytes`](Self::max_txt_bytes).
    pub fn with_max_txt_bytes(mut self, n: usize) -> Self {
        self.max_txt_bytes = n;
        self
    }
    /// Sets [`lookup_timeout`](Self::lookup_timeout).
    pub fn with_lookup_timeout(mut self, d: Duration) -> Self {
        self.lookup_timeout = d;
        self
    }
    /// Sets [`walk_timeout`](Self::walk_timeout).
    pub fn with_walk_timeout(mut self, d: Duration) -> Self {
        self.walk_timeout = d;
        self
    }
    /// Sets [`max_in_flight`](Self::max_in_flight).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }
}

/// Configuration of [`DnsDiscovery`]. Start from [`Default`] and adjust with `with_*`.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Tree URLs, `enrtree://<key>@<domain>`.
    pub urls: Vec<String>,
    /// A nameserver to ask (e.g. a `--dns-resolver ADDR:PORT` flag), UDP with TCP for
    /// long answers. `None`: the system configuration.
    pub resolver: Option<SocketAddr>,
    /// Time between rounds; each round re-reads every root. Default 30 min
    /// (go-ethereum's `RecheckInterval`): lists change slowly, and a node has discv5 for
    /// the rest.
    pub refresh: Duration,
    /// Bounds of each walk.
    pub limits: DnsLimits,
    /// Capacity of the ENR channel. Default 1024.
    pub channel_capacity: usize,
    /// How long one ENR may wait for room in the channel. ENRs that do not fit are
    /// offered again next round. Default 10 s.
    pub send_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            urls: Vec::new(),
            resolver: None,
            refresh: Duration::from_secs(30 * 60),
            limits: DnsLimits::default(),
            channel_capacity: 1024,
            send_timeout: Duration::from_secs(10),
        }
    }
}

impl DnsConfig {
    /// Sets [`urls`](Self::urls).
    pub fn with_urls<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.urls = urls.into_iter().map(Into::into).collect();
        self
    }
    /// Sets [`resolver`](Self::resolver).
    pub fn with_resolver(mut self, resolver: Option<SocketAddr>) -> Self {
        self.resolver = resolver;
        self
    }
    /// Sets [`refresh`](Self::refresh).
    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }
    /// Sets [`limits`](Self::limits).
    pub fn with_limits(mut self, limits: DnsLimits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets [`channel_capacity`](Self::channel_capacity).
    pub fn with_channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n;
        self
    }
    /// Sets [`send_timeout`](Self::send_timeout).
    pub fn with_send_timeout(mut self, d: Duration) -> Self {
        self.send_timeout = d;
        self
    }

    fn validate(&self) -> Result<Vec<Link>, DnsError> {
        let bad = |what: &str| Err(DnsError::Config(what.to_owned()));
        if self.refresh.is_zero() {
            return bad("refresh must be above zero");
        }
        if self.channel_capacity == 0 {
            return bad("channel_capacity must be above zero");
        }
        let l = &self.limits;
        if l.max_entries == 0 || l.max_in_flight == 0 || l.max_txt_bytes == 0 {
            return bad("max_entries, max_in_flight and max_txt_bytes must be above zero");
        }
        if l.lookup_timeout.is_zero() || l.walk_timeout.is_zero() {
            return bad("timeouts must be above zero");
        }
        self.urls.iter().map(|u| Link::parse(u)).collect()
    }
}

/// How a round went for one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeOutcome {
    /// The tree was walked (new, changed `seq`, or unfinished last round).
    Walked,
    /// Same `seq` as the tree held: nothing fetched beyond the root.
    Unchanged,
    /// A root with a lower `seq` than the tree held: ignored, the held tree stays.
    Stale {
        /// The `seq` held.
        cached: u64,
    },
    /// No usable root (missing, malformed, wrong signature, lookup failed): the tree is
    /// skipped this round; a tree held from earlier rounds stays.
    Refused(DnsError),
}

/// What one round did with one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeReport {
    /// The tree's URL.
    pub url: String,
    /// Link hops from the configured URL (0: configured).
    pub depth: usize,
    /// How it went.
    pub outcome: TreeOutcome,
    /// The root's `seq`, when a root verified.
    pub seq: Option<u64>,
    /// ENRs in the tree held after this round.
    pub enrs: usize,
    /// Links in the tree held after this round.
    pub links: usize,
    /// TXT lookups made for this tree this round, its root included.
    pub lookups: usize,
    /// ENRs handed to the channel this round.
    pub delivered: usize,
    /// The first [`MAX_REPORTED_SKIPS`] entries skipped.
    pub skipped: Vec<DnsError>,
    /// All entries skipped.
    pub skipped_total: usize,
    /// Limits the walk ran into (`"max entries"`, `"max depth"`, `"walk deadline"`,
    /// `"max linked trees"`, `"max link depth"`).
    pub limits_hit: Vec<&'static str>,
}

/// What one round did: one report per tree walked, configured trees and linked ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Rounds done so far, this one included (0: none yet).
    pub round: u64,
    /// One per tree.
    pub trees: Vec<TreeReport>,
}

/// A tree walked once by [`resolve_tree`].
#[derive(Clone, Debug)]
pub struct ResolvedTree {
    /// Its verified root (`None` when refused: see the report).
    pub root: Option<Root>,
    /// Its ENRs.
    pub enrs: Vec<Enr>,
    /// Its links (not followed).
    pub links: Vec<Link>,
    /// What the walk did.
    pub report: TreeReport,
}

/// Walks the tree at `url` once (links listed, not followed), within `limits`.
pub async fn resolve_tree(
    resolver: &dyn TxtResolver,
    url: &Link,
    limits: &DnsLimits,
) -> ResolvedTree {
    let deadline = Instant::now() + limits.walk_timeout;
    let (report, state) = walk::walk_tree(resolver, limits, url, 0, None, deadline).await;
    match state {
        Some(state) => ResolvedTree {
            root: Some(state.root),
            enrs: state.enrs.into_iter().map(|(_, enr)| enr).collect(),
            links: state.links,
            report,
        },
        None => ResolvedTree {
            root: None,
            enrs: Vec::new(),
            links: Vec::new(),
            report,
        },
    }
}

/// The DNS discovery task. Dropping this handle leaves the task running until its
/// cancellation token fires or the ENR receiver is dropped; [`shutdown`](Self::shutdown)
/// stops it and waits.
#[derive(Debug)]
pub struct DnsDiscovery {
    task: JoinHandle<()>,
    cancel: CancellationToken,
    reports: watch::Receiver<RoundReport>,
}

impl DnsDiscovery {
    /// Starts the task with hickory's resolver ([`DnsConfig::resolver`] or the system
    /// configuration). Stops when `cancel` fires, on [`shutdown`](Self::shutdown) or when
    /// the receiver is dropped. Must be called within a tokio runtime.
    pub fn start(
        config: DnsConfig,
        cancel: CancellationToken,
    ) -> Result<(Self, mpsc::Receiver<Enr>), crate::Error> {
        let resolver = HickoryResolver::new(config.resolver, config.limits.lookup_timeout)?;
        Self::start_with_resolver(config, Arc::new(resolver), cancel)
    }

    /// Starts the task with another resolver.
    pub fn start_with_resolver(
        config: DnsConfig,
        resolver: Arc<dyn TxtResolver>,
        cancel: CancellationToken,
    ) -> Result<(Self, mpsc::Receiver<Enr>), crate::Error> {
        let urls = config.validate()?;
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let (report_tx, reports) = watch::channel(RoundReport::default());
        let cancel = cancel.child_token();
        let service = Service {
            config,
            urls,
            resolver,
            tx,
            reports: report_tx,
            cancel: cancel.clone(),
            trees: HashMap::new(),
        };
        let task = tokio::spawn(service.run());
        Ok((
            DnsDiscovery {
                task,
                cancel,
                reports,
            },
            rx,
        ))
    }

    /// The latest round's report, updated after every round.
    pub fn reports(&self) -> watch::Receiver<RoundReport> {
        self.reports.clone()
    }

    /// Stops the task and waits for it.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            debug!(error = %e, "DNS discovery task ended abnormally");
        }
    }
}

/// Why a round stopped early.
enum Stop {
    Cancelled,
    ReceiverGone,
}

struct Service {
    config: DnsConfig,
    urls: Vec<Link>,
    resolver: Arc<dyn TxtResolver>,
    tx: mpsc::Sender<Enr>,
    reports: watch::Sender<RoundReport>,
    cancel: CancellationToken,
    /// Trees held, by URL text: the configured ones and those linked in the last round.
    trees: HashMap<String, walk::TreeState>,
}

impl Service {
    async fn run(mut self) {
        let mut round = 0;
        loop {
            round += 1;
            let trees = match self.round().await {
                Ok(trees) => trees,
                Err(Stop::Cancelled) | Err(Stop::ReceiverGone) => return,
            };
            self.reports.send_replace(RoundReport { round, trees });
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.tx.closed() => return,
                _ = tokio::time::sleep(self.config.refresh) => {}
            }
        }
    }

    /// One round: every configured URL and the trees it links to.
    async fn round(&mut self) -> Result<Vec<TreeReport>, Stop> {
        let mut reports = Vec::new();
        // Trees walked this round, across URLs: each once, however many lists link it.
        let mut visited: HashSet<String> = HashSet::new();
        for url in self.urls.clone() {
            let deadline = Instant::now() + self.config.limits.walk_timeout;
            let mut queue = VecDeque::from([(url, 0usize)]);
            let mut followed = 0;
            while let Some((link, depth)) = queue.pop_front() {
                let key = link.to_string();
                if !visited.insert(key.clone()) {
                    continue;
                }
                let walk = walk::walk_tree(
                    self.resolver.as_ref(),
                    &self.config.limits,
                    &link,
                    depth,
                    self.trees.get(&key),
                    deadline,
                );
                let (mut report, state) = tokio::select! {
                    _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                    r = walk => r,
                };
                if let Some(state) = state {
                    self.trees.insert(key.clone(), state);
                }
                if let Some(state) = self.trees.get_mut(&key) {
                    report.delivered =
                        deliver(state, &self.tx, self.config.send_timeout, &self.cancel).await?;
                    for linked in &state.links {
                        let text = linked.to_string();
                        if visited.contains(&text) || queue.iter().any(|(l, _)| *l == *linked) {
                            report.skip(DnsError::Repeated { name: text });
                        } else if depth >= self.config.limits.max_link_depth {
                            report.limit("max link depth");
                        } else if followed >= self.config.limits.max_links {
                            report.limit("max linked trees");
                        } else {
                            followed += 1;
                            queue.push_back((linked.clone(), depth + 1));
                        }
                    }
                }
                reports.push(report);
            }
        }
        // Trees no list links to any more are dropped (bounded by URLs × max_links).
        self.trees.retain(|k, _| visited.contains(k));
        Ok(reports)
    }
}

/// Hands the tree's undelivered ENRs to the channel; those that find no room within
/// `send_timeout` wait for the next round. Returns how many went out.
async fn deliver(
    state: &mut walk::TreeState,
    tx: &mpsc::Sender<Enr>,
    send_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<usize, Stop> {
    let mut sent = 0;
    for (hash, enr) in &state.enrs {
        if state.delivered.contains(hash) {
            continue;
        }
        let send = tokio::time::timeout(send_timeout, tx.send(enr.clone()));
        tokio::select! {
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
            r = send => match r {
                Ok(Ok(())) => {
                    state.delivered.insert(hash.clone());
                    sent += 1;
                }
                Ok(Err(_)) => return Err(Stop::ReceiverGone),
                // The consumer is slow: the rest waits for the next round.
                Err(_) => break,
            },
        }
    }
    Ok(sent)
}
