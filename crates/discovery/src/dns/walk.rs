//! The walk of one tree: its root, then the ENR and link subtrees, entry by entry, within
//! [`DnsLimits`].

use std::collections::{HashMap, HashSet, VecDeque};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use tracing::debug;

use super::entry::{matches_hash, Entry, Link, Root, ROOT_PREFIX};
use super::resolver::TxtResolver;
use super::{DnsError, DnsLimits, TreeOutcome, TreeReport};
use crate::Enr;

/// At most this many skipped entries are kept in a [`TreeReport`] (all are counted).
pub const MAX_REPORTED_SKIPS: usize = 16;

/// What the walker keeps of a tree between rounds.
#[derive(Debug)]
pub(crate) struct TreeState {
    pub(crate) root: Root,
    /// Every entry was fetched or refused for good (no lookup failed, no deadline hit):
    /// an unchanged `seq` then needs no walk.
    pub(crate) complete: bool,
    /// Entries by hash: content-addressed, so a later walk reuses them without lookups.
    entries: HashMap<String, Entry>,
    /// The ENR leaves, with their hashes.
    pub(crate) enrs: Vec<(String, Enr)>,
    /// The link leaves.
    pub(crate) links: Vec<Link>,
    /// Hashes of leaves handed to the consumer.
    pub(crate) delivered: HashSet<String>,
}

impl TreeReport {
    pub(crate) fn new(url: &Link, depth: usize) -> Self {
        TreeReport {
            url: url.to_string(),
            depth,
            outcome: TreeOutcome::Walked,
            seq: None,
            enrs: 0,
            links: 0,
            lookups: 0,
            delivered: 0,
            skipped: Vec::new(),
            skipped_total: 0,
            limits_hit: Vec::new(),
        }
    }

    pub(crate) fn skip(&mut self, error: DnsError) {
        debug!(tree = %self.url, %error, "DNS discovery: entry skipped");
        self.skipped_total += 1;
        if self.skipped.len() < MAX_REPORTED_SKIPS {
            self.skipped.push(error);
        }
    }

    pub(crate) fn limit(&mut self, limit: &'static str) {
        if !self.limits_hit.contains(&limit) {
            debug!(tree = %self.url, limit, "DNS discovery: limit reached");
            self.limits_hit.push(limit);
        }
    }
}

/// One lookup with the per-lookup deadline, cut short by the walk's.
async fn lookup(
    resolver: &dyn TxtResolver,
    name: String,
    limits: &DnsLimits,
    deadline: Instant,
) -> Result<Vec<String>, DnsError> {
    let until = deadline.min(Instant::now() + limits.lookup_timeout);
    match tokio::time::timeout_at(until, resolver.lookup_txt(&name)).await {
        Ok(result) => result,
        Err(_) => Err(DnsError::Timeout { name }),
    }
}

/// The entry stored at `<hash>.<domain>`: the first TXT record of a known entry type,
/// which must hash to `hash` (EIP-1459, client protocol step 3).
async fn fetch_entry(
    resolver: &dyn TxtResolver,
    domain: &str,
    hash: String,
    limits: &DnsLimits,
    deadline: Instant,
) -> Result<Entry, DnsError> {
    let name = format!("{hash}.{domain}.");
    let records = lookup(resolver, name.clone(), limits, deadline).await?;
    for text in records {
        if text.len() > limits.max_txt_bytes {
            return Err(DnsError::TooLarge {
                name,
                len: text.len(),
            });
        }
        let parsed = match Entry::parse(&text) {
            // Other TXT records may share the name (e.g. a provider's verification token).
            Err(DnsError::UnknownEntry) => continue,
            parsed => parsed,
        };
        if !matches_hash(&hash, &text) {
            return Err(DnsError::HashMismatch { name });
        }
        return parsed.map_err(|e| DnsError::Entry {
            name,
            source: Box::new(e),
        });
    }
    Err(DnsError::NoEntry { name })
}

/// The root of the tree `url` points at, verified with the URL's key.
pub(crate) async fn fetch_root(
    resolver: &dyn TxtResolver,
    url: &Link,
    limits: &DnsLimits,
    deadline: Instant,
) -> Result<Root, DnsError> {
    let name = format!("{}.", url.domain);
    let records = lookup(resolver, name.clone(), limits, deadline).await?;
    let text = records
        .into_iter()
        .find(|t| t.starts_with(ROOT_PREFIX))
        .ok_or(DnsError::NoRoot { name: name.clone() })?;
    if text.len() > limits.max_txt_bytes {
        return Err(DnsError::TooLarge {
            name,
            len: text.len(),
        });
    }
    let root = Root::parse(&text).map_err(|e| DnsError::Entry {
        name: name.clone(),
        source: Box::new(e),
    })?;
    if !root.verify(&url.key) {
        return Err(DnsError::BadSignature { name });
    }
    Ok(root)
}

/// The leaf type a subtree may hold (EIP-1459: links only below `l=`, ENRs only below
/// `e=`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaves {
    Enr,
    Link,
}

/// Walks the tree at `url`. `prev` is what the last round kept of it. Returns the report
/// and, when the tree was walked, its new state (otherwise `prev` stays).
pub(crate) async fn walk_tree(
    resolver: &dyn TxtResolver,
    limits: &DnsLimits,
    url: &Link,
    depth: usize,
    prev: Option<&TreeState>,
    deadline: Instant,
) -> (TreeReport, Option<TreeState>) {
    let mut report = TreeReport::new(url, depth);
    report.lookups += 1;
    let root = match fetch_root(resolver, url, limits, deadline).await {
        Ok(root) => root,
        Err(error) => {
            debug!(tree = %url, %error, "DNS discovery: tree root refused");
            if let Some(prev) = prev {
                report.fill_from(prev);
            }
            report.outcome = TreeOutcome::Refused(error);
            return (report, None);
        }
    };
    report.seq = Some(root.seq);
    if let Some(prev) = prev {
        // EIP-1459 client step 2: the sequence number must not go down (a replayed old
        // root); an equal one means the tree we hold is current.
        if root.seq < prev.root.seq {
            report.fill_from(prev);
            report.outcome = TreeOutcome::Stale {
                cached: prev.root.seq,
            };
            return (report, None);
        }
        if root.seq == prev.root.seq && prev.complete {
            report.fill_from(prev);
            report.outcome = TreeOutcome::Unchanged;
            return (report, None);
        }
    }

    let mut walk = Walk {
        resolver,
        limits,
        domain: &url.domain,
        deadline,
        prev: prev.map(|p| &p.entries),
        entries: HashMap::new(),
        seen: HashSet::new(),
        queued: 0,
        complete: true,
        enrs: Vec::new(),
        links: Vec::new(),
        report,
    };
    walk.subtree(root.link_root.clone(), Leaves::Link).await;
    walk.subtree(root.enr_root.clone(), Leaves::Enr).await;

    let Walk {
        entries,
        complete,
        enrs,
        links,
        mut report,
        ..
    } = walk;
    let delivered = prev
        .map(|p| {
            enrs.iter()
                .filter(|(h, _)| p.delivered.contains(h))
                .map(|(h, _)| h.clone())
                .collect()
        })
        .unwrap_or_default();
    report.enrs = enrs.len();
    report.links = links.len();
    let state = TreeState {
        root,
        complete,
        entries,
        enrs,
        links,
        delivered,
    };
    (report, Some(state))
}

impl TreeReport {
    fn fill_from(&mut self, state: &TreeState) {
        self.enrs = state.enrs.len();
        self.links = state.links.len();
    }
}

struct Walk<'a> {
    resolver: &'a dyn TxtResolver,
    limits: &'a DnsLimits,
    domain: &'a str,
    deadline: Instant,
    prev: Option<&'a HashMap<String, Entry>>,
    entries: HashMap<String, Entry>,
    /// Every hash queued in the current subtree: an entry is fetched once even if several
    /// branches name it, and a loop ends.
    seen: HashSet<String>,
    /// Entries queued in both subtrees, against `max_entries`.
    queued: usize,
    complete: bool,
    enrs: Vec<(String, Enr)>,
    links: Vec<Link>,
    report: TreeReport,
}

impl Walk<'_> {
    /// Walks the subtree under `top`, at most `max_in_flight` lookups at a time.
    async fn subtree(&mut self, top: String, leaves: Leaves) {
        // A hash seen in the other subtree is no loop: both subtrees of a tree without
        // links and without ENRs are the same empty branch.
        self.seen.clear();
        let mut queue = VecDeque::new();
        self.enqueue(top, 0, &mut queue);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.limits.max_in_flight.max(1) {
                // Depth first: a walk cut short by `max_entries` still holds leaves (breadth
                // first would spend the budget on branches of a large tree).
                let Some((hash, depth)) = queue.pop_back() else {
                    break;
                };
                if let Some(entry) = self.prev.and_then(|p| p.get(&hash)) {
                    let entry = entry.clone();
                    self.accept(hash, depth, entry, leaves, &mut queue);
                    continue;
                }
                if Instant::now() >= self.deadline {
                    self.report.limit("walk deadline");
                    self.complete = false;
                    queue.clear();
                    break;
                }
                self.report.lookups += 1;
                let (resolver, limits, domain, deadline) =
                    (self.resolver, self.limits, self.domain, self.deadline);
                in_flight.push(async move {
                    let result =
                        fetch_entry(resolver, domain, hash.clone(), limits, deadline).await;
                    (hash, depth, result)
                });
            }
            let Some((hash, depth, result)) = in_flight.next().await else {
                break;
            };
            match result {
                Ok(entry) => self.accept(hash, depth, entry, leaves, &mut queue),
                Err(error) => {
                    if error.is_transient() {
                        // Worth another try next round; entries fetched so far are kept.
                        self.complete = false;
                    }
                    self.report.skip(error);
                }
            }
        }
    }

    fn enqueue(&mut self, hash: String, depth: usize, queue: &mut VecDeque<(String, usize)>) {
        if self.seen.contains(&hash) {
            self.report.skip(DnsError::Repeated {
                name: format!("{hash}.{}", self.domain),
            });
            return;
        }
        if depth > self.limits.max_depth {
            self.report.limit("max depth");
            return;
        }
        if self.queued >= self.limits.max_entries {
            self.report.limit("max entries");
            return;
        }
        self.queued += 1;
        self.seen.insert(hash.clone());
        queue.push_back((hash, depth));
    }

    fn accept(
        &mut self,
        hash: String,
        depth: usize,
        entry: Entry,
        leaves: Leaves,
        queue: &mut VecDeque<(String, usize)>,
    ) {
        match (&entry, leaves) {
            (Entry::Branch(children), _) => {
                for child in children {
                    self.enqueue(child.clone(), depth + 1, queue);
                }
            }
            (Entry::Enr(enr), Leaves::Enr) => self.enrs.push((hash.clone(), (**enr).clone())),
            (Entry::Link(link), Leaves::Link) => self.links.push(link.clone()),
            (_, _) => {
                self.report.skip(DnsError::WrongSubtree {
                    name: format!("{hash}.{}", self.domain),
                    kind: entry.kind(),
                });
                return;
            }
        }
        self.entries.insert(hash, entry);
    }
}
