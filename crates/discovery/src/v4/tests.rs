//! Service tests over real UDP sockets on 127.0.0.0/8 (port 0): every 127.0.N.1 is
//! routable on Linux, so nodes sit in distinct /24s as on the Internet.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devmux_identity::{NodeId, NodeKey};
use secp256k1::SecretKey;
use tokio::net::UdpSocket;

use super::packet::{self, Message, Neighbor, Neighbors, Pong};
use super::*;
use crate::tests::eventually;
use crate::DiscoveryConfig;

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, n, 1])
}

fn key(seed: u8) -> NodeKey {
    NodeKey::from_secret_bytes(&[seed; 32]).unwrap()
}

/// Fast lookups and revalidation for tests.
fn config(n: u8) -> V4Config {
    V4Config::default()
        .with_listen(SocketAddr::new(loopback(n), 0))
        .with_lookup_interval(Duration::from_millis(200))
        .with_revalidate_interval(Duration::from_secs(1))
}

async fn start(config: V4Config, key: &NodeKey) -> Discv4 {
    let discv5 = DiscoveryConfig::default()
        .with_listen(SocketAddr::new(config.listen.ip(), 0))
        .with_rlpx_tcp_port(Some(30303));
    Discv4::start(config, key, |udp| enr_for(&discv5, key, udp.port()))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_served_enr_must_be_ours_and_carry_the_discv4_port() {
    let k = key(1);
    let other = key(2);
    let discv5 = DiscoveryConfig::default().with_listen("127.0.0.1:0".parse().unwrap());
    let wrong_key = Discv4::start(config(1), &k, |udp| enr_for(&discv5, &other, udp.port())).await;
    assert!(matches!(wrong_key, Err(Error::V4Enr(_))), "{wrong_key:?}");
    let wrong_port = Discv4::start(config(1), &k, |_| enr_for(&discv5, &k, 9)).await;
    assert!(matches!(wrong_port, Err(Error::V4Enr(_))), "{wrong_port:?}");
    let bad_bootnode = Discv4::start(config(1).with_bootnodes(["enode://nope"]), &k, |udp| {
        enr_for(&discv5, &k, udp.port())
    })
    .await;
    assert!(matches!(bad_bootnode, Err(Error::InvalidEnode { .. })));

    let node = start(config(1), &k).await;
    let enr = node.local_enr();
    assert_eq!(enr.udp4(), Some(node.udp_addr().port()));
    assert_eq!(enr.tcp4(), Some(30303));
    let enode = node.local_enode();
    assert_eq!(enode.id, k.node_id());
    assert_eq!(enode.discport, Some(node.udp_addr().port()));
    node.shutdown().await;
}

/// Ping, ENR request and lookup between two services; an unbonded FindNode is not
/// answered.
#[tokio::test]
async fn ping_enr_request_and_bond_rules() {
    let a = start(config(11), &key(11)).await;
    let b = start(config(12), &key(12)).await;
    let seq = a.ping(&b.local_enode()).await.unwrap();
    assert_eq!(seq, Some(b.local_enr().seq()));
    assert!(
        eventually(Duration::from_secs(5), || a.table_contains(&b.node_id())
            && b.table_contains(&a.node_id()))
        .await
    );
    let enr = a.request_enr(&b.local_enode()).await.unwrap();
    assert_eq!(enr, b.local_enr());

    // A stranger's FindNode (no Ping, so no endpoint proof) gets no answer.
    let stranger = SecretKey::from_slice(&[99u8; 32]).unwrap();
    let socket = UdpSocket::bind((loopback(13), 0)).await.unwrap();
    let findnode = Message::FindNode(packet::FindNode {
        target: NodeId([1; 64]),
        expiration: packet::expiration_from_now(),
    });
    let (datagram, _) = packet::encode(&findnode, &stranger);
    socket.send_to(&datagram, a.udp_addr()).await.unwrap();
    let mut buf = [0u8; 1500];
    let answer = tokio::time::timeout(Duration::from_millis(700), socket.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "an unbonded FindNode was answered");
    a.shutdown().await;
    b.shutdown().await;
}

/// Ten services on 127.0.1.1 … 127.0.10.1, one of them the bootnode of the others:
/// every node finds the other nine, and reports them with their ENRs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_find_each_other() {
    let started = Instant::now();
    let boot = start(config(1), &key(1)).await;
    let bootnode = boot.local_enode().to_string();
    let mut nodes = vec![boot];
    for n in 2..=10u8 {
        nodes.push(start(config(n).with_bootnodes([bootnode.clone()]), &key(n)).await);
    }
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.node_id()).collect();
    let all_found = eventually(Duration::from_secs(30), || {
        nodes.iter().all(|node| {
            ids.iter()
                .filter(|id| **id != node.node_id())
                .all(|id| node.table_contains(id))
        })
    })
    .await;
    let elapsed = started.elapsed();
    let sizes: Vec<usize> = nodes.iter().map(|n| n.table_size()).collect();
    assert!(all_found, "table sizes after 30 s: {sizes:?}");
    println!("10 discv4 nodes found each other in {elapsed:?}");

    // Reports: every node reported the other nine; with ENRs whose `udp` is the
    // reporting peer's discv4 port.
    for (i, node) in nodes.iter_mut().enumerate() {
        let mut found = node.take_discovered().unwrap();
        let mut with_enr = HashSet::new();
        let mut reported = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while reported.len() < 9 && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(200), found.recv()).await {
                Ok(Some(d)) => {
                    reported.insert(d.id);
                    if let Some(enr) = &d.enr {
                        assert_eq!(enr.udp4(), Some(d.addr.port()));
                        assert_eq!(crate::secp256k1_node_id(enr), Some(d.id));
                        with_enr.insert(d.id);
                    }
                }
                _ => continue,
            }
        }
        assert_eq!(reported.len(), 9, "node {i} reported {}", reported.len());
        assert!(!with_enr.is_empty(), "node {i} got no ENR");
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// Sybil identities on one /24, one of which answers every FindNode with Neighbors
/// repeated thousands of times (real sybils and fake nodes), plus unsolicited
/// Neighbors floods. The victim's table keeps at most 10 entries from that /24, no
/// fake node enters it, the pending map stays bounded, and the honest nodes are found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_neighbors_flood_and_sybils_stay_bounded() {
    const SYBILS: usize = 40;
    const FLOOD: usize = 2000;
    // The rogue sends at most PACE packets a millisecond (a bandwidth-limited sender):
    // faster, it would overflow the victim's kernel socket buffer, dropping honest
    // replies before any code of ours sees them, which no protocol rule can prevent.
    const PACE: usize = 20;
    let rogue_ip = loopback(200);
    // Sybils: identities on one host, each answering Pings on its own port.
    let mut sybils = Vec::new();
    for i in 0..SYBILS {
        let secret = SecretKey::from_slice(&[100 + i as u8; 32]).unwrap();
        let socket = Arc::new(UdpSocket::bind((rogue_ip, 0)).await.unwrap());
        sybils.push((secret, socket));
    }
    let sybil_nodes: Vec<Neighbor> = sybils
        .iter()
        .map(|(secret, socket)| Neighbor {
            ip: rogue_ip,
            udp: socket.local_addr().unwrap().port(),
            tcp: 30303,
            id: packet::node_id_of(secret),
        })
        .collect();
    // Fake nodes: valid keys at addresses where nothing listens.
    let fakes: Vec<Neighbor> = (0..64u8)
        .map(|i| Neighbor {
            ip: IpAddr::from([127, 0, 201, i + 1]),
            udp: 40000 + u16::from(i),
            tcp: 30303,
            // Seeds 150…213: distinct from the honest (1…9) and sybil (100…139) keys.
            id: packet::node_id_of(&SecretKey::from_slice(&[150 + i; 32]).unwrap()),
        })
        .collect();
    let mut flood_nodes = sybil_nodes.clone();
    flood_nodes.extend(fakes.iter().copied());
    let sent = Arc::new(AtomicUsize::new(0));

    // The honest network: a bootnode and five nodes.
    let boot = start(config(1), &key(1)).await;
    let bootnode = boot.local_enode().to_string();
    let mut honest = vec![boot];
    for n in 2..=6u8 {
        honest.push(start(config(n).with_bootnodes([bootnode.clone()]), &key(n)).await);
    }
    // The victim knows the honest bootnode and the rogue. Its per-IP budget is raised
    // from 20/s to 2 000/s so that thousands of the flood's packets reach the reply
    // matching rather than stop at the budget; unbounded, the flood would cost the
    // victim all its CPU on a loaded machine (each packet is a hash and a recovery),
    // which is what the per-IP budget exists to stop.
    let rogue_enode = devmux_identity::Enode {
        id: sybil_nodes[0].id,
        addr: SocketAddr::new(rogue_ip, sybil_nodes[0].udp),
        discport: None,
    };
    let victim_config = config(9)
        .with_bootnodes([bootnode.clone(), rogue_enode.to_string()])
        .with_packet_rate(2_000, 2_000)
        .with_max_pending(64);
    let victim = start(victim_config, &key(9)).await;
    let victim_addr = victim.udp_addr();

    let mut rogue_tasks = Vec::new();
    for (i, (secret, socket)) in sybils.iter().enumerate() {
        let (secret, socket) = (*secret, socket.clone());
        let flood_nodes = flood_nodes.clone();
        let sent = sent.clone();
        rogue_tasks.push(tokio::spawn(async move {
            if i == 0 {
                // Unsolicited Neighbors, from its own task so that Pings are still
                // answered meanwhile.
                let (socket, flood_nodes, sent) =
                    (socket.clone(), flood_nodes.clone(), sent.clone());
                tokio::spawn(async move {
                    for k in 0..FLOOD {
                        let at = (k * 12) % flood_nodes.len();
                        let end = (at + 12).min(flood_nodes.len());
                        let _ = socket
                            .send_to(
                                &neighbors_packet(&secret, &flood_nodes[at..end]),
                                victim_addr,
                            )
                            .await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        if k % PACE == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                });
            }
            let mut buf = [0u8; 1500];
            loop {
                let Ok((len, src)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(p) = packet::decode(&buf[..len]) else {
                    continue;
                };
                match p.message {
                    Message::Ping(_) => {
                        let pong = Message::Pong(Pong {
                            to: packet::Endpoint {
                                ip: Some(src.ip()),
                                udp: src.port(),
                                tcp: 0,
                            },
                            ping_hash: p.hash,
                            expiration: packet::expiration_from_now(),
                            enr_seq: None,
                        });
                        let _ = socket.send_to(&packet::encode(&pong, &secret).0, src).await;
                    }
                    Message::FindNode(_) => {
                        for k in 0..FLOOD {
                            let at = (k * 12) % flood_nodes.len();
                            let end = (at + 12).min(flood_nodes.len());
                            let _ = socket
                                .send_to(&neighbors_packet(&secret, &flood_nodes[at..end]), src)
                                .await;
                            sent.fetch_add(1, Ordering::Relaxed);
                            if k % PACE == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }));
    }

    // Its bootnode Ping may be lost in its own flood (a full socket buffer drops
    // datagrams): make sure the rogue is in the table, so lookups do ask it.
    let mut bonded = false;
    for _ in 0..20 {
        if victim.ping(&rogue_enode).await.is_ok() {
            bonded = true;
            break;
        }
    }
    assert!(bonded, "the rogue never answered a Ping");

    let started = Instant::now();
    let honest_ids: Vec<NodeId> = honest.iter().map(|n| n.node_id()).collect();
    let found = eventually(Duration::from_secs(30), || {
        honest_ids.iter().all(|id| victim.table_contains(id))
    })
    .await;
    assert!(
        found,
        "honest nodes not found; table {}",
        victim.table_size()
    );
    let found_after = started.elapsed();
    // Let the rogue keep going a while longer, then check the bounds.
    let mut max_pending = 0;
    for _ in 0..40 {
        max_pending = max_pending.max(victim.pending_requests());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entries = victim.table_entries();
    let from_rogue = entries.iter().filter(|e| e.addr.ip() == rogue_ip).count();
    let fake_ids: HashSet<NodeId> = fakes.iter().map(|f| f.id).collect();
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "rogue sent {sent} Neighbors packets; honest found in {found_after:?}; victim table {} \
         ({from_rogue} from the rogue /24), max pending {max_pending}",
        entries.len()
    );
    assert!(sent >= 2 * FLOOD, "the rogue was not asked: {sent}");
    let still_there = honest_ids
        .iter()
        .filter(|id| victim.table_contains(id))
        .count();
    assert_eq!(
        still_there,
        honest_ids.len(),
        "honest nodes lost under the flood"
    );
    assert!(
        from_rogue <= SubnetLimits::default().per_table,
        "{from_rogue}"
    );
    assert!(entries.iter().all(|e| !fake_ids.contains(&e.id)));
    assert!(entries.len() <= honest.len() + SubnetLimits::default().per_table);
    assert!(max_pending <= 64);
    for task in rogue_tasks {
        task.abort();
    }
    victim.shutdown().await;
    for node in honest {
        node.shutdown().await;
    }
}

fn neighbors_packet(secret: &SecretKey, chunk: &[Neighbor]) -> Vec<u8> {
    let message = Message::Neighbors(Neighbors {
        nodes: chunk.to_vec(),
        expiration: packet::expiration_from_now(),
    });
    packet::encode(&message, secret).0
}

/// go-ethereum's `devp2p discv4 ping` and `resolve` against our service. Skips (one
/// line) when the tool is missing: `DEVMUX_DEVP2P`, else
/// `/root/.cache/devmux-go/bin/devp2p`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geth_devp2p_ping_and_resolve() {
    let tool = std::env::var("DEVMUX_DEVP2P")
        .unwrap_or_else(|_| "/root/.cache/devmux-go/bin/devp2p".to_string());
    if !std::path::Path::new(&tool).exists() {
        println!("skipping geth interop: no devp2p tool at {tool}");
        return;
    }
    let mut node = start(config(0), &key(42)).await;
    let mut reports = node.take_discovered().unwrap();
    let enode = node.local_enode().to_string();
    let run = |args: Vec<String>| {
        let tool = tool.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(tool)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let ping = run(vec!["discv4".into(), "ping".into(), enode.clone()])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&ping.stdout).to_string();
    let stderr = String::from_utf8_lossy(&ping.stderr).to_string();
    assert!(
        ping.status.success(),
        "devp2p discv4 ping failed: {stdout} {stderr}"
    );
    assert!(stdout.contains("node responded to ping"), "{stdout}");
    println!("devp2p discv4 ping: {}", stdout.trim());

    let resolve = run(vec!["discv4".into(), "resolve".into(), enode.clone()])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&resolve.stdout).trim().to_string();
    assert!(
        resolve.status.success(),
        "devp2p discv4 resolve failed: {stdout}"
    );
    // Resolved: it prints the ENR it got by ENRRequest (an unresolved node prints
    // the enode URL it was given).
    let enr: crate::Enr = stdout
        .parse()
        .unwrap_or_else(|e| panic!("resolve did not return an ENR ({e}): {stdout}"));
    assert_eq!(enr, node.local_enr());
    println!("devp2p discv4 resolve: {stdout}");
    // go-ethereum answered our ping-back on the way: it was reported as a proven node
    // (and has probably left the table since, the tool having exited).
    assert!(
        reports.try_recv().is_some(),
        "the devp2p tool was never verified"
    );
    node.shutdown().await;
}
