//! `--check`: the scenario's steps, each a condition on the running network, run in
//! order against one deadline, one PASS/FAIL line each.
//!
//! A step is a name, a sentence saying what it asserts, an optional action run once
//! when the step begins (send a transaction, say), and a probe polled until it
//! passes or the step's time runs out. Each step is a constant, listed in [`STEPS`]
//! (one server everywhere) and [`MIXED_STEPS`] (`--mixed`, where a list may restate
//! what a step asserts):
//!
//! ```text
//! const SYNCED: Step = Step { name: "synced", asserts: "nodes 2 and 3 hold node 1's head",
//!        timeout: Duration::from_secs(20), action: None, probe: synced };
//! Step { asserts: "node 1 synced node 2's chain, node 3 node 1's", ..SYNCED },
//! ```
//!
//! Probes name no node by number where the layout decides: pairs are those that
//! share a server ([`shared_server`]), the chain is the producer's
//! ([`Testnet::producer`]).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use devmux_eth::alloy_primitives::B256;
use devmux_node::Node;

use crate::net::{shared_server, Mode, Testnet};

/// A probe's answer: `Ok(detail)` when the step holds, `Err(what is missing)` when
/// it does not hold yet.
pub(crate) type Probe = fn(&Testnet) -> Result<String, String>;

/// An action a step runs once before probing; an error fails the step.
pub(crate) type Action =
    for<'a> fn(&'a Testnet) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One step of the scenario.
pub(crate) struct Step {
    /// One word, for the PASS/FAIL line.
    pub(crate) name: &'static str,
    /// What the step asserts.
    pub(crate) asserts: &'static str,
    /// How long the step may take (within the overall deadline).
    pub(crate) timeout: Duration,
    /// Run once before the probe.
    pub(crate) action: Option<Action>,
    /// Polled until it passes.
    pub(crate) probe: Probe,
}

const DISCOVERED: Step = Step {
    name: "discovered",
    asserts: "every node's discovery table (discv5 or discv4) holds the other two nodes",
    timeout: Duration::from_secs(20),
    action: None,
    probe: discovered,
};

const CONNECTED: Step = Step {
    name: "connected",
    asserts: "every node is connected to the other two",
    timeout: Duration::from_secs(20),
    action: None,
    probe: connected,
};

const NEGOTIATED: Step = Step {
    name: "negotiated",
    asserts: "every connection negotiated an eth version (stream or RLPx capability)",
    timeout: Duration::from_secs(15),
    action: None,
    probe: negotiated,
};

const STATUS: Step = Step {
    name: "status",
    asserts: "every node exchanged eth Status with the other two, on node 1's genesis",
    timeout: Duration::from_secs(15),
    action: None,
    probe: status,
};

const SYNCED: Step = Step {
    name: "synced",
    asserts: "nodes 2 and 3 synced node 1's devnet chain to its head",
    timeout: Duration::from_secs(20),
    action: None,
    probe: synced,
};

const FOLLOWING: Step = Step {
    name: "following",
    asserts: "a block node 1 produced after the devnet chain is held by all three",
    timeout: Duration::from_secs(15),
    action: None,
    probe: following,
};

const TX_RELAYED: Step = Step {
    name: "tx-relayed",
    asserts: "a transaction sent to node 3 with eth_sendRawTransaction reached the pools of nodes 1 and 2",
    timeout: Duration::from_secs(15),
    action: Some(send_transaction),
    probe: tx_relayed,
};

const TX_MINED: Step = Step {
    name: "tx-mined",
    asserts: "the transaction landed in a block that all three nodes hold",
    timeout: Duration::from_secs(15),
    action: None,
    probe: tx_mined,
};

/// The steps, in order: one server on every node.
pub(crate) const STEPS: &[Step] = &[
    DISCOVERED, CONNECTED, NEGOTIATED, STATUS, SYNCED, FOLLOWING, TX_RELAYED, TX_MINED,
];

/// The steps of `--mixed`: the same probes (each holds a pair of nodes to what
/// their servers allow: pairs that share no server are not expected to connect),
/// said for that layout, and `apart` last, so that it covers the whole run.
pub(crate) const MIXED_STEPS: &[Step] = &[
    DISCOVERED,
    Step {
        asserts: "node 1 is connected to node 2 over RLPx and to node 3 over the stream stack",
        ..CONNECTED
    },
    Step {
        asserts: "nodes 1–2 and 1–3 negotiated an eth version (RLPx capability, stream)",
        ..NEGOTIATED
    },
    Step {
        asserts: "nodes 1–2 and 1–3 exchanged eth Status, on one genesis",
        ..STATUS
    },
    Step {
        asserts: "node 1 synced node 2's devnet chain over RLPx, node 3 from node 1 over the stream stack",
        ..SYNCED
    },
    Step {
        asserts: "every node's head is a block node 2 produced after the devnet chain (node 3 got it through node 1)",
        ..FOLLOWING
    },
    Step {
        asserts: "a transaction sent to node 3 with eth_sendRawTransaction reached node 1's pool and, through it, node 2's",
        ..TX_RELAYED
    },
    Step {
        asserts: "node 2 mined the transaction in a block that nodes 1 and 3 hold",
        ..TX_MINED
    },
    Step {
        name: "apart",
        asserts: "nodes 2 and 3, which share no server, never connected to each other",
        timeout: Duration::from_secs(15),
        action: None,
        probe: apart,
    },
];

/// The steps for `mode`.
pub(crate) fn steps(mode: Mode) -> &'static [Step] {
    match mode {
        Mode::Mixed => MIXED_STEPS,
        Mode::Stream | Mode::Rlpx => STEPS,
    }
}

/// How long `apart` watches, since the last node started, before it passes: a few
/// discovery lookups, each a chance for the dialer to try the wrong peer.
const APART_FOR: Duration = Duration::from_secs(3 * crate::net::LOOKUP_SECS);

/// How often a probe is polled.
const POLL: Duration = Duration::from_millis(200);

/// Runs `steps` in order within `deadline`, printing one line each; returns whether
/// all passed. A failed step does not stop the rest: each gets its own chance.
pub(crate) async fn run(net: &Testnet, steps: &[Step], deadline: Instant) -> bool {
    let mut passed = 0;
    for step in steps {
        let started = Instant::now();
        let until = (started + step.timeout).min(deadline);
        let outcome = run_step(net, step, until).await;
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(detail) => {
                passed += 1;
                println!("PASS {:<11} {took:>5.1}s  {detail}", step.name);
            }
            Err(missing) => {
                println!(
                    "FAIL {:<11} {took:>5.1}s  {} — {missing}",
                    step.name, step.asserts
                );
            }
        }
    }
    println!(
        "check: {passed}/{} steps passed on the {}",
        steps.len(),
        net.layout.server_name()
    );
    passed == steps.len()
}

async fn run_step(net: &Testnet, step: &Step, until: Instant) -> Result<String, String> {
    if let Some(action) = step.action {
        let remaining = until.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, action(net))
            .await
            .map_err(|_| "its action did not finish in time".to_string())??;
    }
    loop {
        let missing = match (step.probe)(net) {
            Ok(detail) => return Ok(detail),
            Err(missing) => missing,
        };
        if Instant::now() + POLL > until {
            return Err(missing);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// For every node, the other nodes it shares a server with for which
/// `holds(node, other)` is false; `Ok` with `summary` per node when there are none.
/// Nodes that share no server are not expected to connect: `apart` checks them.
fn each_pair(
    net: &Testnet,
    holds: impl Fn(&Node, &Node) -> bool,
    summary: impl Fn(&Node) -> String,
    lacks: &str,
) -> Result<String, String> {
    let mut missing = Vec::new();
    let mut detail = Vec::new();
    for a in &net.nodes {
        let absent: Vec<&str> = net
            .nodes
            .iter()
            .filter(|b| {
                b.name != a.name
                    && shared_server(a.node.config(), b.node.config()).is_some()
                    && !holds(&a.node, &b.node)
            })
            .map(|b| b.name.as_str())
            .collect();
        if !absent.is_empty() {
            missing.push(format!("{} {lacks} {}", a.name, absent.join(",")));
        }
        detail.push(format!("{}: {}", a.name, summary(&a.node)));
    }
    if missing.is_empty() {
        Ok(detail.join(" | "))
    } else {
        Err(missing.join("; "))
    }
}

fn discovered(net: &Testnet) -> Result<String, String> {
    each_pair(
        net,
        |a, b| {
            a.discovery()
                .is_some_and(|d| d.table_contains(&b.key().node_id().discv5_id()))
        },
        |a| format!("{} in table", a.discovery().map_or(0, |d| d.table_size())),
        "has not discovered",
    )
}

fn connected(net: &Testnet) -> Result<String, String> {
    each_pair(
        net,
        // `each_pair` asks only of pairs that share a server: over that one.
        |a, b| {
            a.network().carrier_of(&b.network().local_peer_id())
                == shared_server(a.config(), b.config())
        },
        |a| {
            let network = a.network();
            let mut carriers: Vec<String> = network
                .peers()
                .iter()
                .map(|p| format!("{} {}", net.name_of(&p.peer_id), p.server))
                .collect();
            carriers.sort();
            format!(
                "{} in, {} out ({})",
                network.inbound_count(),
                network.outbound_count(),
                carriers.join(", ")
            )
        },
        "is not connected over their shared server to",
    )
}

fn negotiated(net: &Testnet) -> Result<String, String> {
    let eth_protocol = |a: &Node, b: &Node| {
        let b_id = b.network().local_peer_id();
        a.network()
            .peers()
            .into_iter()
            .find(|p| p.peer_id == b_id)
            .and_then(|p| {
                p.protocols
                    .into_iter()
                    .find(|id| id.as_str().starts_with("/eth/"))
            })
    };
    each_pair(
        net,
        |a, b| eth_protocol(a, b).is_some(),
        |a| {
            let mut ids: Vec<String> = a
                .network()
                .peers()
                .iter()
                .flat_map(|p| p.protocols.iter().map(ToString::to_string))
                .filter(|id| id.starts_with("/eth/"))
                .collect();
            ids.sort();
            ids.dedup();
            ids.join(",")
        },
        "has no eth protocol with",
    )
}

fn status(net: &Testnet) -> Result<String, String> {
    let genesis = net
        .nodes
        .first()
        .map(|n| n.node.chain().genesis_hash())
        .ok_or("no nodes")?;
    each_pair(
        net,
        |a, b| {
            a.eth()
                .get(&b.network().local_peer_id())
                .is_some_and(|peer| peer.status().genesis() == genesis)
        },
        |a| {
            let versions: Vec<String> = a
                .eth()
                .list()
                .iter()
                .map(|p| p.version().to_string())
                .collect();
            format!("{} ({})", a.eth().len(), versions.join(","))
        },
        "has no eth session with",
    )
}

fn heads(net: &Testnet) -> Vec<(String, u64, B256)> {
    net.nodes
        .iter()
        .map(|n| {
            let head = n.node.chain().head();
            (n.name.clone(), head.number, head.hash)
        })
        .collect()
}

fn show(heads: &[(String, u64, B256)]) -> String {
    heads
        .iter()
        .map(|(name, number, _)| format!("{name}: head {number}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn synced(net: &Testnet) -> Result<String, String> {
    let heads = heads(net);
    let target = net.layout.dev_blocks;
    let producer = net.producer().ok_or("the producer is not running")?;
    let top = producer.node.chain().head().number;
    // The producer keeps producing: within one block of it counts as caught up.
    if heads.iter().all(|h| h.1 >= target && h.1 + 1 >= top) {
        Ok(show(&heads))
    } else {
        Err(show(&heads))
    }
}

fn following(net: &Testnet) -> Result<String, String> {
    let heads = heads(net);
    let lowest = heads.iter().map(|h| h.1).min().unwrap_or(0);
    if lowest <= net.layout.dev_blocks {
        return Err(format!(
            "no produced block on every node yet: {}",
            show(&heads)
        ));
    }
    // Every node's head is the producer's block at that height, so all hold the
    // same block at `lowest`, one the producer built after the devnet chain.
    let producer = net.producer().ok_or("the producer is not running")?;
    let off: Vec<String> = heads
        .iter()
        .filter(|(_, number, hash)| {
            producer
                .node
                .chain()
                .canonical_hash_blocking(*number)
                .ok()
                .flatten()
                != Some(*hash)
        })
        .map(|(name, number, _)| format!("{name}'s head {number}"))
        .collect();
    if off.is_empty() {
        Ok(format!(
            "block {lowest} on all, every head on {}'s chain: {}",
            producer.name,
            show(&heads)
        ))
    } else {
        Err(format!(
            "{} not on {}'s chain",
            off.join(", "),
            producer.name
        ))
    }
}

/// Watches nodes 1 and 2's pools, then sends a devnet transfer to node 3's admin RPC.
fn send_transaction(
    net: &Testnet,
) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
    Box::pin(async move {
        use devmux_eth::alloy_eips::eip2718::Encodable2718;
        use devmux_eth::alloy_primitives::{Address, U256};
        let devnet = devmux_chain::devnet::Devnet::new().map_err(|e| e.to_string())?;
        // A nonce far above the devnet chain's own: the pool does not track state.
        let nonce = 1_000_000 + u64::from(std::process::id());
        let tx = devnet.transfer(15, nonce, Address::repeat_byte(0x42), U256::from(1));
        let hash = *tx.tx_hash();
        for n in net.nodes.iter().take(2) {
            let mut added = n.node.pool().subscribe();
            let (name, watch) = (n.name.clone(), net.tx.clone());
            tokio::spawn(async move {
                while let Ok(a) = added.recv().await {
                    if a.hash == hash {
                        if let Ok(mut w) = watch.lock() {
                            w.seen_in_pool.push(name);
                        }
                        return;
                    }
                }
            });
        }
        if let Ok(mut w) = net.tx.lock() {
            w.hash = Some(hash);
        }
        let node3 = net.nodes.get(2).ok_or("node 3 is not running")?;
        let rpc = node3.node.rpc_addr().ok_or("node 3 serves no admin RPC")?;
        let raw: String = tx
            .encoded_2718()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{raw}"]}}"#
        );
        let answer = http_post(rpc, &body).await?;
        if answer.contains(&format!("{hash}")) {
            Ok(())
        } else {
            Err(format!("eth_sendRawTransaction answered: {answer}"))
        }
    })
}

/// One JSON-RPC call over HTTP/1.1 on loopback; returns the response body.
async fn http_post(addr: std::net::SocketAddr, body: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    sock.take(1 << 20)
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string())
}

fn tx_relayed(net: &Testnet) -> Result<String, String> {
    let watch = net.tx.lock().map_err(|_| "watch poisoned")?;
    let hash = watch.hash.ok_or("no transaction sent")?;
    let missing: Vec<&str> = ["node1", "node2"]
        .into_iter()
        .filter(|name| !watch.seen_in_pool.iter().any(|s| s == name))
        .collect();
    if missing.is_empty() {
        Ok(format!(
            "{hash} in the pools of {}",
            watch.seen_in_pool.join(", ")
        ))
    } else {
        Err(format!(
            "{hash} not yet in the pool of {}",
            missing.join(", ")
        ))
    }
}

/// The number and hash of the canonical block (among the last 32) that holds `hash`.
fn block_with(node: &Node, hash: B256) -> Option<(u64, B256)> {
    let chain = node.chain();
    let head = chain.head().number;
    (head.saturating_sub(32)..=head).rev().find_map(|number| {
        let block = chain.canonical_hash_blocking(number).ok().flatten()?;
        chain
            .body_blocking(block)
            .ok()
            .flatten()
            .is_some_and(|body| body.transactions.iter().any(|tx| *tx.tx_hash() == hash))
            .then_some((number, block))
    })
}

fn tx_mined(net: &Testnet) -> Result<String, String> {
    let hash = net
        .tx
        .lock()
        .map_err(|_| "watch poisoned")?
        .hash
        .ok_or("no transaction sent")?;
    let producer = net.producer().ok_or("the producer is not running")?;
    let found: Vec<(String, Option<(u64, B256)>)> = net
        .nodes
        .iter()
        .map(|n| (n.name.clone(), block_with(&n.node, hash)))
        .collect();
    let text = found
        .iter()
        .map(|(name, block)| match block {
            Some((b, _)) => format!("{name}: block {b}"),
            None => format!("{name}: not in a block"),
        })
        .collect::<Vec<_>>()
        .join(" | ");
    // One block everywhere: the one the producer mined.
    let mined = found
        .iter()
        .find(|(name, _)| *name == producer.name)
        .and_then(|(_, block)| *block);
    if mined.is_some() && found.iter().all(|(_, b)| *b == mined) {
        Ok(text)
    } else {
        Err(text)
    }
}

fn apart(net: &Testnet) -> Result<String, String> {
    let since = net.all_started.ok_or("not every node started")?;
    // Pairs of nodes that share no server.
    let mut pairs = Vec::new();
    for (i, a) in net.nodes.iter().enumerate() {
        for b in &net.nodes[i + 1..] {
            if shared_server(a.node.config(), b.node.config()).is_none() {
                pairs.push((a, b));
            }
        }
    }
    let contacts = net.contacts.lock().map_err(|_| "contacts poisoned")?;
    let mut met = Vec::new();
    for (a, b) in &pairs {
        let contact = contacts.seen.iter().find(|c| {
            (c.node == a.name && net.name_of(&c.peer) == b.name)
                || (c.node == b.name && net.name_of(&c.peer) == a.name)
        });
        if let Some(c) = contact {
            met.push(format!(
                "{} connected to {} over {} {:.1}s after all started",
                c.node,
                net.name_of(&c.peer),
                c.server,
                c.at.saturating_duration_since(since).as_secs_f64()
            ));
        } else if a
            .node
            .network()
            .is_connected(&b.node.network().local_peer_id())
            || b.node
                .network()
                .is_connected(&a.node.network().local_peer_id())
        {
            met.push(format!("{} and {} are connected", a.name, b.name));
        }
    }
    if !met.is_empty() {
        return Err(met.join("; "));
    }
    if contacts.lost > 0 {
        return Err(format!(
            "{} network events were lost, so a connection may have gone unseen",
            contacts.lost
        ));
    }
    let watched = since.elapsed();
    let names: Vec<String> = pairs
        .iter()
        .map(|(a, b)| {
            let knows = |x: &Node, y: &Node| {
                x.discovery()
                    .is_some_and(|d| d.table_contains(&y.key().node_id().discv5_id()))
            };
            let known = knows(&a.node, &b.node) && knows(&b.node, &a.node);
            format!(
                "{}–{}{}",
                a.name,
                b.name,
                if known {
                    " (in each other's discovery table)"
                } else {
                    ""
                }
            )
        })
        .collect();
    if watched < APART_FOR {
        return Err(format!(
            "watched {:.1}s of {}s: {} not connected so far",
            watched.as_secs_f64(),
            APART_FOR.as_secs(),
            names.join(", ")
        ));
    }
    Ok(format!(
        "{} never connected in {:.1}s since all started",
        names.join(", "),
        watched.as_secs_f64()
    ))
}
