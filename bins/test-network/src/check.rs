//! `--check`: the scenario's steps, each a condition on the running network, run in
//! order against one deadline, one PASS/FAIL line each.
//!
//! A step is a name, a sentence saying what it asserts, an optional action run once
//! when the step begins (send a transaction, say), and a probe polled until it
//! passes or the step's time runs out. Sync and relay steps append to [`STEPS`]:
//!
//! ```text
//! Step { name: "synced", asserts: "nodes 2 and 3 hold node 1's head",
//!        timeout: Duration::from_secs(20), action: None, probe: synced },
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use devmux_node::Node;

use crate::net::Testnet;

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

/// The steps, in order.
pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "discovered",
        asserts: "every node's discv5 table holds the other two nodes",
        timeout: Duration::from_secs(20),
        action: None,
        probe: discovered,
    },
    Step {
        name: "connected",
        asserts: "every node is connected to the other two",
        timeout: Duration::from_secs(20),
        action: None,
        probe: connected,
    },
    Step {
        name: "negotiated",
        asserts: "every connection negotiated an eth version (stream or RLPx capability)",
        timeout: Duration::from_secs(15),
        action: None,
        probe: negotiated,
    },
    Step {
        name: "status",
        asserts: "every node exchanged eth Status with the other two, on node 1's genesis",
        timeout: Duration::from_secs(15),
        action: None,
        probe: status,
    },
];

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

/// For every node, the other nodes for which `holds(node, other)` is false; `Ok`
/// with `summary` per node when there are none.
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
            .filter(|b| b.name != a.name && !holds(&a.node, &b.node))
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
        |a, b| a.network().is_connected(&b.network().local_peer_id()),
        |a| {
            let network = a.network();
            format!(
                "{} in, {} out",
                network.inbound_count(),
                network.outbound_count()
            )
        },
        "is not connected to",
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
