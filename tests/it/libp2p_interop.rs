//! Interop with rust-libp2p (tcp + noise + yamux, ping, identify, libp2p-stream),
//! in both directions. PeerIds must agree on both sides.

use std::time::Duration;

use devmux_network::{Message, NetworkEvent, NodeKey, Registrar};
use devmux_tests::{echo, start, start_with, wait_for};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, StreamProtocol, Swarm};
use tokio::sync::mpsc;

const ECHO: StreamProtocol = StreamProtocol::new("/demo/echo/1.0.0");
const SECS: Duration = Duration::from_secs(15);

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    identify: identify::Behaviour,
    stream: libp2p_stream::Behaviour,
}

fn swarm(key: &NodeKey) -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|key| Behaviour {
            ping: ping::Behaviour::new(
                ping::Config::new().with_interval(Duration::from_millis(300)),
            ),
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
            stream: libp2p_stream::Behaviour::new(),
        })
        .expect("behaviour")
        // rust-libp2p closes connections without open streams after 10 s by default.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// What the swarm saw, forwarded from its driver task.
#[derive(Debug)]
enum Seen {
    Listening(Multiaddr),
    Connected(libp2p::PeerId),
    Pinged(libp2p::PeerId),
    Identified(libp2p::PeerId, Box<identify::Info>),
}

fn drive(mut swarm: Swarm<Behaviour>) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let seen =
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => Seen::Listening(address),
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => Seen::Connected(peer_id),
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                        peer,
                        result: Ok(_),
                        ..
                    })) => Seen::Pinged(peer),
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(
                        identify::Event::Received { peer_id, info, .. },
                    )) => Seen::Identified(peer_id, Box::new(info)),
                    _ => continue,
                };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    rx
}

async fn expect<T>(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    mut pick: impl FnMut(Seen) -> Option<T>,
) -> T {
    tokio::time::timeout(SECS, async {
        loop {
            let seen = rx.recv().await.expect("swarm task alive");
            if let Some(t) = pick(seen) {
                return t;
            }
        }
    })
    .await
    .expect("swarm event in time")
}

/// Starts `sw` listening on 127.0.0.1 and driving; returns what it sees and the
/// address it listens on.
async fn listening(mut sw: Swarm<Behaviour>) -> (mpsc::UnboundedReceiver<Seen>, Multiaddr) {
    sw.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let mut seen = drive(sw);
    let listen = expect(&mut seen, |s| match s {
        Seen::Listening(a) => Some(a),
        _ => None,
    })
    .await;
    (seen, listen)
}

/// Sends framed messages on a raw libp2p stream and checks the echo.
async fn framed_echo_round_trip(stream: &mut libp2p::Stream) {
    for (code, payload) in [(0u8, b"hello".to_vec()), (0x11, vec![7u8; 100_000])] {
        let mut out = bytes::BytesMut::new();
        devmux_network::encode_frame(&Message::new(code, payload.clone()), &mut out);
        stream.write_all(&out).await.unwrap();
        stream.flush().await.unwrap();
        let mut back = vec![0u8; out.len()];
        stream.read_exact(&mut back).await.unwrap();
        let mut buf = bytes::BytesMut::from(&back[..]);
        let msg = devmux_network::decode_frame(&mut buf, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!((msg.code, &msg.payload[..]), (code, &payload[..]));
    }
}

/// A node of the stream stack alone, or a dual node (whose multiaddr is its
/// `local_addr`): rust-libp2p sees no difference.
async fn stream_node(dual: bool, registrar: Registrar) -> devmux_network::Network {
    if dual {
        start_with(devmux_tests::dual_config(), registrar).await
    } else {
        start(true, registrar).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_dials_devmux() {
    rust_libp2p_dials(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_dials_a_dual_devmux_node() {
    rust_libp2p_dials(true).await;
}

async fn rust_libp2p_dials(dual: bool) {
    let mut registrar = Registrar::new();
    registrar.request("/demo/echo/1.0.0", echo).unwrap();
    let node = stream_node(dual, registrar).await;
    let mut node_events = node.events();

    let key = NodeKey::generate();
    let mut sw = swarm(&key);
    let mut control = sw.behaviour().stream.new_control();
    let addr: Multiaddr = node.local_addr().parse().unwrap();
    sw.dial(addr).unwrap();
    let mut seen = drive(sw);

    let devmux_id = node.local_peer_id();
    let connected = expect(&mut seen, |s| match s {
        Seen::Connected(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(connected, devmux_id, "libp2p sees devmux's PeerId");
    let ours = wait_for(&mut node_events, SECS, |e| match e {
        NetworkEvent::PeerConnected { peer, .. } => Some(*peer),
        _ => None,
    })
    .await;
    assert_eq!(ours, Some(key.peer_id()), "devmux sees libp2p's PeerId");

    // Ping and identify results arrive in either order.
    let mut pinged = None;
    let mut identified = None;
    while pinged.is_none() || identified.is_none() {
        match expect(&mut seen, Some).await {
            Seen::Pinged(p) => pinged = Some(p),
            Seen::Identified(p, info) => identified = Some((p, info)),
            _ => {}
        }
    }
    assert_eq!(pinged, Some(devmux_id));
    let info = identified.unwrap();
    assert_eq!(info.0, devmux_id);
    assert_eq!(info.1.public_key.to_peer_id(), devmux_id);
    assert!(info.1.protocols.contains(&ECHO));
    assert!(info.1.agent_version.starts_with("devmux/"));

    let mut stream = control
        .open_stream(devmux_id, ECHO)
        .await
        .expect("echo stream");
    framed_echo_round_trip(&mut stream).await;
    assert_eq!(node.peers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devmux_dials_rust_libp2p() {
    dials_rust_libp2p(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_devmux_node_dials_rust_libp2p() {
    dials_rust_libp2p(true).await;
}

async fn dials_rust_libp2p(dual: bool) {
    let key = NodeKey::generate();
    let sw = swarm(&key);
    let mut incoming = sw.behaviour().stream.new_control().accept(ECHO).unwrap();
    let (mut seen, listen) = listening(sw).await;
    // libp2p's side of echo: bytes back as they come, which echoes frames too.
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            let _ = stream.flush().await;
                        }
                    }
                }
            });
        }
    });

    let node = stream_node(dual, Registrar::new()).await;
    let addr = format!("{listen}/p2p/{}", key.peer_id());
    let peer = node.dial(&addr).await.expect("devmux dials libp2p");
    assert_eq!(peer, key.peer_id());
    let connected = expect(&mut seen, |s| match s {
        Seen::Connected(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(connected, node.local_peer_id());

    let rtt = node.ping(&peer).await.expect("ping libp2p");
    assert!(rtt < Duration::from_secs(2));
    let info = node.identify(&peer).await.expect("identify libp2p");
    assert_eq!(info.public_key.to_peer_id(), key.peer_id());
    assert!(info.protocols.iter().any(|p| p == "/ipfs/ping/1.0.0"));
    assert!(
        info.agent_version.contains("rust-libp2p"),
        "{}",
        info.agent_version
    );

    let (mut stream, id) = node.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    assert_eq!(id.as_str(), "/demo/echo/1.0.0");
    for payload in [b"hi".to_vec(), vec![3u8; 200_000]] {
        stream.send(Message::new(5, payload.clone())).await.unwrap();
        let back = stream.next().await.unwrap().unwrap();
        assert_eq!((back.code, &back.payload[..]), (5, &payload[..]));
    }
    // libp2p pings us too, over the same connection.
    let pinged = expect(&mut seen, |s| match s {
        Seen::Pinged(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(pinged, node.local_peer_id());
}

/// `devmux probe p2p` reads a rust-libp2p node: identify (its agent, protocols and
/// listen address) and a ping's round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_p2p_reads_rust_libp2p() {
    let key = NodeKey::generate();
    let sw = swarm(&key);
    let (_seen, listen) = listening(sw).await;
    let addr = format!("{listen}/p2p/{}", key.peer_id());
    let probed = devmux_node::probe::p2p(&addr, Duration::from_secs(5))
        .await
        .expect("probe rust-libp2p");
    assert_eq!(probed.peer_id, key.peer_id().to_string());
    assert!(probed.agent_version.contains("rust-libp2p"), "{probed:?}");
    assert_eq!(probed.protocol_version, "/ipfs/0.1.0");
    assert!(
        probed.protocols.iter().any(|p| p == "/ipfs/ping/1.0.0"),
        "{probed:?}"
    );
    assert!(
        probed.listen_addrs.contains(&listen.to_string()),
        "{probed:?}"
    );
    assert!(probed.rtt_ms > 0.0);
}
