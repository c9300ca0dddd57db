//! End to end over real sockets: hickory's DNS server on loopback serves signed trees (and
//! hostile ones), and the walker resolves them through hickory's resolver pointed at it
//! ([`DnsConfig::resolver`]). Only names under `example.org`, served by the test server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::TXT;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use k256::ecdsa::SigningKey;
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::tests::{test_enr, tree_key, TEST_ENRS};
use super::tree::{build, insert};
use super::*;
use crate::Enr;

/// Names the server never answers (the client must time out, not hang).
const SILENT: &str = "silent.example.org";

#[derive(Default)]
struct Zone {
    /// Lower-case name without the final dot → TXT value.
    records: Mutex<HashMap<String, String>>,
    /// Queries per tree domain (the name's last three labels).
    queries: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

impl Zone {
    fn set(&self, records: impl IntoIterator<Item = (String, String)>) {
        let mut map = self.records.lock().unwrap();
        for (name, value) in records {
            map.insert(name.to_ascii_lowercase(), value);
        }
    }

    fn queries(&self, domain: &str) -> usize {
        self.queries
            .lock()
            .unwrap()
            .get(domain)
            .copied()
            .unwrap_or(0)
    }
}

struct Handler(Arc<Zone>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let fail = |metadata: Metadata| {
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let Ok(info) = request.request_info() else {
            return fail(metadata);
        };
        let qname: Name = info.query.original().name().clone();
        let key = qname.to_string().to_ascii_lowercase();
        let key = key.trim_end_matches('.').to_owned();
        self.0.total.fetch_add(1, Ordering::Relaxed);
        let labels: Vec<&str> = key.split('.').collect();
        let domain = labels[labels.len().saturating_sub(3)..].join(".");
        *self
            .0
            .queries
            .lock()
            .unwrap()
            .entry(domain.clone())
            .or_default() += 1;
        if domain == SILENT {
            return fail(metadata);
        }
        let value = self.0.records.lock().unwrap().get(&key).cloned();

        let mut edns = Edns::new();
        let max_payload = match &request.edns {
            Some(req) => {
                edns.set_max_payload(req.max_payload().max(512));
                req.max_payload().max(512) as usize
            }
            None => 512,
        };
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if request.edns.is_some() {
            builder.edns(&edns);
        }
        let record = value.as_ref().map(|value| {
            // A character-string holds at most 255 bytes: longer values span several.
            let chunks = value
                .as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            Record::from_rdata(qname.clone(), 0, RData::TXT(TXT::new(chunks)))
        });
        let too_big_for_udp = value.as_ref().is_some_and(|v| {
            request.protocol() == hickory_server::net::xfer::Protocol::Udp
                && v.len() + 2 * key.len() + 64 > max_payload
        });
        let mut answers: Vec<&Record> = Vec::new();
        match (&record, info.query.query_type()) {
            // Truncated: the client asks again over TCP.
            (Some(_), RecordType::TXT) if too_big_for_udp => metadata.truncation = true,
            (Some(record), RecordType::TXT) => answers.push(record),
            _ => metadata.response_code = ResponseCode::NXDomain,
        }
        let none: Vec<&Record> = Vec::new();
        let response = builder.build(metadata, answers, none.clone(), none.clone(), none);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => fail(Metadata::response_from_request(&request.metadata)),
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    zone: Arc<Zone>,
    server: Server<Handler>,
}

impl TestServer {
    /// UDP and TCP on one loopback port.
    async fn start() -> Self {
        let zone = Arc::new(Zone::default());
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            let Ok(tcp) = TcpListener::bind(addr).await else {
                continue;
            };
            let mut server = Server::new(Handler(zone.clone()));
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 64);
            return TestServer { addr, zone, server };
        }
        panic!("no loopback port free for both UDP and TCP");
    }

    async fn stop(mut self) {
        let _ = self.server.shutdown_gracefully().await;
    }
}

fn sorted(enrs: impl IntoIterator<Item = Enr>) -> Vec<String> {
    let mut v: Vec<String> = enrs.into_iter().map(|e| e.to_base64()).collect();
    v.sort();
    v
}

async fn recv_n(rx: &mut tokio::sync::mpsc::Receiver<Enr>, n: usize) -> Vec<Enr> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(enr)) => got.push(enr),
            other => panic!("after {} ENRs: {other:?}", got.len()),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_served_trees_follows_the_link_and_picks_up_a_new_seq() {
    let server = TestServer::start().await;
    let (ka, kb) = (tree_key(11), tree_key(12));
    let more = SignedTree::sign(1, &TEST_ENRS[40..48], &[], &kb);
    let more_link = more.link("more.example.org");
    let nodes = SignedTree::sign(1, &TEST_ENRS[..40], std::slice::from_ref(&more_link), &ka);
    // 40 ENRs under 13-child branches: several levels.
    assert!(
        nodes
            .entries()
            .filter(|(_, t)| t.starts_with("enrtree-branch:"))
            .count()
            >= 4
    );
    server.zone.set(nodes.to_txt("nodes.example.org"));
    server.zone.set(more.to_txt("more.example.org"));

    let config = DnsConfig::default()
        .with_urls([nodes.link("nodes.example.org").to_string()])
        .with_resolver(Some(server.addr))
        .with_refresh(Duration::from_millis(300));
    let cancel = CancellationToken::new();
    let (dns, mut rx) = DnsDiscovery::start(config, cancel.clone()).unwrap();
    let got = recv_n(&mut rx, 48).await;
    assert_eq!(sorted(got), sorted(TEST_ENRS[..48].to_vec()));

    let mut reports = dns.reports();
    let first = reports.wait_for(|r| r.round >= 1).await.unwrap().clone();
    assert_eq!(first.trees.len(), 2, "{first:#?}");
    assert_eq!(first.trees[1].url, more_link.to_string());
    assert_eq!(first.trees[1].depth, 1);
    for tree in &first.trees {
        assert_eq!(tree.outcome, TreeOutcome::Walked);
        assert_eq!(tree.skipped, vec![]);
        assert!(tree.limits_hit.is_empty());
    }

    // Unchanged roots: one lookup per tree per round.
    let queries = server.zone.queries("nodes.example.org");
    let next = reports
        .wait_for(|r| r.round > first.round)
        .await
        .unwrap()
        .clone();
    assert!(next
        .trees
        .iter()
        .all(|t| t.outcome == TreeOutcome::Unchanged && t.lookups == 1));
    assert!(server.zone.queries("nodes.example.org") <= queries + 2);

    // seq 2: ten records updated, five new, five gone. Only the changed ones come again.
    let mut updated: Vec<Enr> = TEST_ENRS[5..40].to_vec();
    for (i, enr) in updated.iter_mut().enumerate().take(10) {
        *enr = test_enr(5 + i as u32, 2);
    }
    updated.extend(TEST_ENRS[50..55].iter().cloned());
    let changed: Vec<Enr> = updated
        .iter()
        .filter(|e| !TEST_ENRS.contains(e) || e.seq() == 2 || TEST_ENRS[50..55].contains(e))
        .cloned()
        .collect();
    assert_eq!(changed.len(), 15);
    let v2 = SignedTree::sign(2, &updated, std::slice::from_ref(&more_link), &ka);
    server.zone.set(v2.to_txt("nodes.example.org"));
    let got = recv_n(&mut rx, 15).await;
    assert_eq!(sorted(got), sorted(changed));
    let round = reports
        .wait_for(|r| r.trees.first().and_then(|t| t.seq) == Some(2))
        .await
        .unwrap()
        .clone();
    assert_eq!(round.trees[0].outcome, TreeOutcome::Walked);
    assert_eq!(round.trees[0].enrs, 40);
    assert_eq!(round.trees[0].delivered, 15);
    // The entries shared with seq 1 were not fetched again.
    assert!(
        round.trees[0].lookups < 1 + v2.entries().count(),
        "{round:#?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(rx.try_recv().is_err(), "nothing else is new");

    dns.shutdown().await;
    server.stop().await;
}

/// Records of a tree whose ENR subtree holds `leaves` (any text) and whose link subtree
/// holds `links`, signed by `key`, at `domain`.
fn raw_tree(
    domain: &str,
    seq: u64,
    leaves: Vec<String>,
    links: Vec<String>,
    key: &SigningKey,
) -> Vec<(String, String)> {
    let mut entries = BTreeMap::new();
    let e = build(leaves, &mut entries);
    let l = build(links, &mut entries);
    let (e, l) = (insert(&mut entries, e), insert(&mut entries, l));
    let root = Root::sign(e, l, seq, key);
    let mut records = vec![(domain.to_owned(), root.to_string())];
    records.extend(
        entries
            .into_iter()
            .map(|(h, t)| (format!("{h}.{domain}"), t)),
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_are_skipped_within_bounds() {
    let server = TestServer::start().await;
    let key = tree_key(21);
    let link = |domain: &str| Link::new(*key.verifying_key(), domain);
    let mut urls = Vec::new();

    // A branch that names itself (content that cannot hash to its own name), and a link
    // subtree linking the tree to itself.
    let self_name = "AAAAAAAAAAAAAAAAAAAAAAAAAA";
    let root = Root::sign(
        self_name.into(),
        entry_hash(&link("loop.example.org").to_string()),
        1,
        &key,
    );
    server.zone.set([
        ("loop.example.org".to_string(), root.to_string()),
        (
            format!("{self_name}.loop.example.org"),
            format!("enrtree-branch:{self_name}"),
        ),
        (
            format!(
                "{}.loop.example.org",
                entry_hash(&link("loop.example.org").to_string())
            ),
            link("loop.example.org").to_string(),
        ),
    ]);
    urls.push(link("loop.example.org"));

    // A real loop of content: a branch listing the same child twice and a DAG.
    let leaf = TEST_ENRS[0].to_base64();
    let twice = format!("enrtree-branch:{},{}", entry_hash(&leaf), entry_hash(&leaf));
    let root = Root::sign(entry_hash(&twice), entry_hash("enrtree-branch:"), 1, &key);
    server.zone.set([
        ("dag.example.org".to_string(), root.to_string()),
        (
            format!("{}.dag.example.org", entry_hash(&twice)),
            twice.clone(),
        ),
        (
            format!("{}.dag.example.org", entry_hash(&leaf)),
            leaf.clone(),
        ),
        (
            format!("{}.dag.example.org", entry_hash("enrtree-branch:")),
            "enrtree-branch:".into(),
        ),
    ]);
    urls.push(link("dag.example.org"));

    // 100 000 leaves (distinct texts: signing 100k records would take minutes in a
    // debug build; the walker stops at max_entries before parsing matters).
    let leaves: Vec<String> = (0..100_000u32)
        .map(|i| {
            format!(
                "enr:{}",
                data_encoding::BASE64URL_NOPAD.encode(&i.to_be_bytes())
            )
        })
        .collect();
    server
        .zone
        .set(raw_tree("big.example.org", 1, leaves, vec![], &key));
    urls.push(link("big.example.org"));

    // A valid tree with one leaf swapped for another record.
    let mut records = SignedTree::sign(1, &TEST_ENRS[..5], &[], &key).to_txt("swap.example.org");
    let swapped = records
        .iter()
        .position(|(_, v)| v.starts_with("enr:"))
        .unwrap();
    records[swapped].1 = TEST_ENRS[60].to_base64();
    server.zone.set(records);
    urls.push(link("swap.example.org"));

    // A root signed by another key than the URL's.
    server.zone.set(
        SignedTree::sign(1, &TEST_ENRS[10..15], &[], &tree_key(22)).to_txt("forged.example.org"),
    );
    urls.push(link("forged.example.org"));

    // A leaf of 3000 bytes (served over TCP after a truncated UDP answer).
    let huge = format!("enr:{}", "A".repeat(3000));
    server
        .zone
        .set(raw_tree("huge.example.org", 1, vec![huge], vec![], &key));
    urls.push(link("huge.example.org"));

    // A server that never answers.
    urls.push(link(SILENT));

    let limits = DnsLimits::default()
        .with_max_entries(500)
        .with_lookup_timeout(Duration::from_millis(700))
        .with_walk_timeout(Duration::from_secs(20));
    let config = DnsConfig::default()
        .with_urls(urls.iter().map(|u| u.to_string()))
        .with_resolver(Some(server.addr))
        .with_limits(limits)
        .with_refresh(Duration::from_secs(3600));
    let started = Instant::now();
    let (dns, mut rx) = DnsDiscovery::start(config, CancellationToken::new()).unwrap();
    let round = tokio::time::timeout(
        Duration::from_secs(60),
        dns.reports().wait_for(|r| r.round >= 1),
    )
    .await
    .expect("a round ends within its deadlines")
    .unwrap()
    .clone();
    let elapsed = started.elapsed();
    let report = |domain: &str| {
        round
            .trees
            .iter()
            .find(|t| t.url.ends_with(&format!("@{domain}")))
            .unwrap_or_else(|| panic!("no report for {domain}: {round:#?}"))
            .clone()
    };

    let looped = report("loop.example.org");
    assert!(
        looped
            .skipped
            .iter()
            .any(|e| matches!(e, DnsError::HashMismatch { .. })),
        "{looped:#?}"
    );
    assert!(
        looped
            .skipped
            .iter()
            .any(|e| matches!(e, DnsError::Repeated { .. })),
        "{looped:#?}"
    );
    assert_eq!(looped.enrs, 0);
    assert!(server.zone.queries("loop.example.org") <= 3);

    let dag = report("dag.example.org");
    assert_eq!(dag.enrs, 1);
    assert!(dag
        .skipped
        .iter()
        .any(|e| matches!(e, DnsError::Repeated { .. })));
    assert_eq!(
        server.zone.queries("dag.example.org"),
        4,
        "root, branch, leaf, empty links"
    );

    let big = report("big.example.org");
    assert!(big.limits_hit.contains(&"max entries"), "{big:#?}");
    assert!(big.lookups <= 1 + 500, "{}", big.lookups);
    assert!(server.zone.queries("big.example.org") <= 1 + 500);
    // Depth first, the walk reached leaves; every one is junk (skipped, never fatal).
    assert_eq!(big.enrs, 0);
    assert!(big.skipped_total > 100, "{}", big.skipped_total);

    let swap = report("swap.example.org");
    assert_eq!(swap.enrs, 4);
    assert!(matches!(swap.skipped[..], [DnsError::HashMismatch { .. }]));

    let forged = report("forged.example.org");
    assert!(matches!(
        forged.outcome,
        TreeOutcome::Refused(DnsError::BadSignature { .. })
    ));
    assert_eq!(forged.lookups, 1);

    let huge = report("huge.example.org");
    assert!(
        matches!(huge.skipped[..], [DnsError::TooLarge { len, .. }] if len > 3000),
        "{huge:#?}"
    );

    let silent = report(SILENT);
    assert!(
        matches!(silent.outcome, TreeOutcome::Refused(ref e) if e.is_transient()),
        "{silent:#?}"
    );

    // 500 lookups, a timeout and the rest: far within the walk deadlines.
    assert!(elapsed < Duration::from_secs(40), "{elapsed:?}");

    // Only the good records came out: the DAG's leaf and the swapped tree's four.
    let mut got = HashSet::new();
    while let Ok(enr) = rx.try_recv() {
        got.insert(enr.to_base64());
    }
    let mut want: HashSet<String> = TEST_ENRS[..5].iter().map(|e| e.to_base64()).collect();
    want.retain(|t| records_contains(&server, "swap.example.org", t) || *t == leaf);
    assert_eq!(got, want);
    assert!(!got.contains(&TEST_ENRS[60].to_base64()));
    assert!(TEST_ENRS[10..15]
        .iter()
        .all(|e| !got.contains(&e.to_base64())));

    dns.shutdown().await;
    server.stop().await;
}

fn records_contains(server: &TestServer, domain: &str, value: &str) -> bool {
    let suffix = format!(".{domain}");
    server
        .zone
        .records
        .lock()
        .unwrap()
        .iter()
        .any(|(k, v)| k.ends_with(&suffix) && v == value)
}

/// A DNS list reaches the dialer: a [`crate::Discovery`] with a list and no bootnodes
/// offers the tree's nodes that run our stack and follow our fork as dial candidates
/// (through the same filter as discv5's), seeds its discv5 table with them, and never
/// offers the tree's node of another fork or of the other stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_list_gives_discovery_its_dial_candidates() {
    use devmux_identity::NodeKey;
    use std::net::Ipv4Addr;

    use crate::{DiscoveryConfig, ForkHash, ForkId};
    let server = TestServer::start().await;
    let ours = ForkId {
        hash: ForkHash([1, 2, 3, 4]),
        next: 0,
    };
    let theirs = ForkId {
        hash: ForkHash([9, 9, 9, 9]),
        next: 0,
    };
    let record = |i: u8, fork: ForkId, rlpx: bool| {
        let key = NodeKey::from_secret_bytes(&[i; 32]).unwrap();
        let config = DiscoveryConfig::default()
            .with_listen(SocketAddr::new(Ipv4Addr::new(127, 0, i, 1).into(), 30303))
            .with_rlpx_tcp_port(rlpx.then_some(30303))
            .with_mux_tcp_port((!rlpx).then_some(30304))
            .with_eth(fork);
        crate::local_enr(&config, &key).unwrap()
    };
    let good: Vec<Enr> = (1..=6).map(|i| record(i, ours, true)).collect();
    let mut all = good.clone();
    all.push(record(20, theirs, true));
    all.push(record(21, ours, false));
    let tree = SignedTree::sign(1, &all, &[], &tree_key(31));
    server.zone.set(tree.to_txt("peers.example.org"));

    let config = DiscoveryConfig::default()
        .with_listen("127.0.0.1:0".parse().unwrap())
        .with_rlpx_tcp_port(Some(30303))
        .with_eth(ours)
        .with_dns(Some(DnsConfig {
            urls: vec![tree.link("peers.example.org").to_string()],
            resolver: Some(server.addr),
            ..DnsConfig::default()
        }));
    let key = NodeKey::from_secret_bytes(&[99; 32]).unwrap();
    let mut discovery = crate::Discovery::start(config, &key).await.unwrap();
    let mut candidates = discovery.take_candidates().unwrap();
    let mut got = HashSet::new();
    while got.len() < good.len() {
        let candidate = tokio::time::timeout(Duration::from_secs(20), candidates.recv())
            .await
            .unwrap_or_else(|_| panic!("after {} candidates", got.len()))
            .unwrap();
        got.insert(candidate.enr.to_base64());
    }
    assert_eq!(got, good.iter().map(Enr::to_base64).collect::<HashSet<_>>());
    // The other fork's node and the stream-only node are never offered.
    let more = tokio::time::timeout(Duration::from_secs(2), candidates.recv()).await;
    assert!(more.is_err(), "an unfit record was offered: {more:?}");
    assert!(good
        .iter()
        .all(|enr| discovery.table_contains(&enr.node_id().raw())));
    discovery.shutdown().await;
    server.stop().await;
}
