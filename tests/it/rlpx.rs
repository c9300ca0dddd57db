//! The RLPx server end to end, and the scenarios both servers must pass alike.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use devmux_network::{
    DisconnectReason, Message, MessageStream, Network, NetworkEvent, NodeKey, PeerCtx, Registrar,
    SessionProtocol,
};
use devmux_rlpx::{Capability, EciesStream, Incoming, SessionConfig};
use devmux_tests::{eventually, start, start_with, test_config, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const SECS: Duration = Duration::from_secs(10);

async fn echo_session(
    _peer: PeerCtx,
    mut stream: MessageStream,
) -> Result<(), devmux_network::Error> {
    while let Some(msg) = stream.next().await {
        stream.send(msg?).await?;
    }
    Ok(())
}

async fn upper_session(
    _peer: PeerCtx,
    mut stream: MessageStream,
) -> Result<(), devmux_network::Error> {
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        let upper: Vec<u8> = msg.payload.iter().map(|b| b.to_ascii_uppercase()).collect();
        stream.send(Message::new(msg.code, upper)).await?;
    }
    Ok(())
}

fn serving_registrar() -> Registrar {
    let mut r = Registrar::new();
    r.session(
        [SessionProtocol::new("/echo/1/1.0.0", 4).unwrap()],
        echo_session,
    )
    .unwrap();
    r.session(
        [
            SessionProtocol::new("/upper/2/1.0.0", 4).unwrap(),
            SessionProtocol::new("/upper/1/1.0.0", 4).unwrap(),
        ],
        upper_session,
    )
    .unwrap();
    r
}

/// A client whose session handlers drive traffic and report (protocol, messages
/// verified) on `done`.
fn driving_registrar(done: mpsc::UnboundedSender<(String, usize)>) -> Registrar {
    let drive = move |upper: bool, done: mpsc::UnboundedSender<(String, usize)>| {
        move |peer: PeerCtx, stream: MessageStream| {
            let done = done.clone();
            async move {
                let (mut reader, mut writer) = stream.split();
                const N: usize = 300;
                let send = tokio::spawn(async move {
                    for i in 0..N {
                        let payload = format!("msg-{i}-{}", "ab".repeat(i % 97));
                        writer.send(Message::new((i % 4) as u8, payload)).await?;
                    }
                    Ok::<_, devmux_network::Error>(writer)
                });
                for i in 0..N {
                    let msg = reader
                        .next()
                        .await
                        .ok_or(devmux_network::Error::StreamClosed)??;
                    let mut want = format!("msg-{i}-{}", "ab".repeat(i % 97));
                    if upper {
                        want = want.to_ascii_uppercase();
                    }
                    assert_eq!(msg.code, (i % 4) as u8);
                    assert_eq!(msg.payload, Bytes::from(want));
                }
                let _writer = send.await.expect("sender")?;
                let _ = done.send((peer.protocol.to_string(), N));
                // Stay in the session until the other side ends it.
                while let Some(m) = reader.next().await {
                    m?;
                }
                Ok::<_, devmux_network::Error>(())
            }
        }
    };
    let mut r = Registrar::new();
    r.session(
        [SessionProtocol::new("/echo/1/1.0.0", 4).unwrap()],
        drive(false, done.clone()),
    )
    .unwrap();
    // Only version 1 here: the session settles on it.
    r.session(
        [SessionProtocol::new("/upper/1/1.0.0", 4).unwrap()],
        drive(true, done),
    )
    .unwrap();
    r
}

/// The same scenario over either server: two capabilities with concurrent
/// traffic, the lower shared version chosen, events and peers on both ends.
async fn several_sessions_with_concurrent_traffic(use_p2p_server: bool) {
    let server = start(use_p2p_server, serving_registrar()).await;
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let client = start(use_p2p_server, driving_registrar(done_tx)).await;
    let mut server_events = server.events();
    let peer = client.dial(&server.local_addr()).await.unwrap();
    assert_eq!(peer, server.local_peer_id());

    let mut finished = Vec::new();
    while finished.len() < 2 {
        let next = tokio::time::timeout(SECS, done.recv())
            .await
            .expect("sessions finish in time");
        finished.push(next.unwrap());
    }
    finished.sort();
    assert_eq!(
        finished,
        vec![
            ("/echo/1/1.0.0".to_string(), 300),
            ("/upper/1/1.0.0".to_string(), 300)
        ]
    );
    // The traffic shows in the wire statistics: 2 × 300 messages each way, and
    // one handshake on each end.
    let (s, c) = (server.stats(), client.stats());
    assert!(s.handshakes >= 1 && c.handshakes >= 1, "{s:?} {c:?}");
    assert!(
        s.bytes_in > 2 * 300 * 8 && s.bytes_out > 2 * 300 * 8,
        "{s:?}"
    );
    assert!(
        c.bytes_out >= s.bytes_in.saturating_sub(64 * 1024),
        "{s:?} {c:?}"
    );
    assert_eq!(s.handshake_buckets.last().map(|b| b.1), Some(s.handshakes));
    let connected = wait_for(&mut server_events, SECS, |e| match e {
        NetworkEvent::PeerConnected {
            peer, server: kind, ..
        } => Some((*peer, *kind)),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(connected.0, client.local_peer_id());
    assert_eq!(connected.1, server.server_kind());
    let infos = server.peers();
    assert_eq!(infos.len(), 1);
    let mut protocols: Vec<String> = infos[0].protocols.iter().map(|p| p.to_string()).collect();
    protocols.sort();
    assert_eq!(protocols, vec!["/echo/1/1.0.0", "/upper/1/1.0.0"]);

    // Shutdown tells the peer why.
    let mut client_events = client.events();
    server.shutdown().await;
    let reason = wait_for(&mut client_events, SECS, |e| match e {
        NetworkEvent::PeerDisconnected {
            reason, by_remote, ..
        } => Some((*reason, *by_remote)),
        _ => None,
    })
    .await;
    assert_eq!(reason, Some((Some(DisconnectReason::ClientQuitting), true)));
    assert!(eventually(SECS, || client.peers().is_empty()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sessions_with_concurrent_traffic_on_rlpx() {
    several_sessions_with_concurrent_traffic(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sessions_with_concurrent_traffic_on_the_stream_stack() {
    several_sessions_with_concurrent_traffic(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enode_url_and_dialing_rules() {
    let server = start(false, serving_registrar()).await;
    let enode: devmux_identity::Enode = server.local_addr().parse().unwrap();
    assert_eq!(enode.addr, server.listen_addr());
    assert_eq!(enode.id.to_peer_id().unwrap(), server.local_peer_id());
    let client = start(false, serving_registrar()).await;
    // Dialing twice keeps one session.
    client.dial(&server.local_addr()).await.unwrap();
    client.dial(&server.local_addr()).await.unwrap();
    assert_eq!(client.peers().len(), 1);
    // Request protocols do not exist on RLPx.
    assert!(matches!(
        client
            .open(&server.local_peer_id(), &["/demo/echo/1.0.0"])
            .await,
        Err(devmux_network::Error::Unsupported(_))
    ));
    // A wrong node id in the URL fails the ECIES handshake.
    let wrong = format!(
        "enode://{}@{}",
        NodeKey::generate().node_id(),
        server.listen_addr()
    );
    assert!(client.dial(&wrong).await.is_err());
    assert!(client.dial("enode://nothex@127.0.0.1:1").await.is_err());
}

/// A raw RLPx client built on devmux-rlpx, for putting precise bytes on the wire.
struct RawClient {
    reader: devmux_rlpx::SessionReader<tokio::net::tcp::OwnedReadHalf>,
    writer: devmux_rlpx::SessionWriter<tokio::net::tcp::OwnedWriteHalf>,
}

async fn raw_connect(
    server: &Network,
    capability: Capability,
) -> Result<RawClient, devmux_rlpx::Error> {
    let tcp = TcpStream::connect(server.listen_addr()).await?;
    raw_session(tcp, server, capability).await
}

async fn raw_session(
    tcp: TcpStream,
    server: &Network,
    capability: Capability,
) -> Result<RawClient, devmux_rlpx::Error> {
    raw_session_as(tcp, server, capability, &NodeKey::generate()).await
}

async fn raw_session_as(
    tcp: TcpStream,
    server: &Network,
    capability: Capability,
    key: &NodeKey,
) -> Result<RawClient, devmux_rlpx::Error> {
    let enode: devmux_identity::Enode = server.local_addr().parse().unwrap();
    let ecies = EciesStream::connect(tcp, &devmux_tests::rlpx_secret(key), &enode.id.0).await?;
    let session = ecies
        .exchange_hello(&SessionConfig::new("raw-test-client").with_capability(capability))
        .await?;
    let (reader, writer) = session.split_with(TcpStream::into_split);
    Ok(RawClient { reader, writer })
}

/// The next Disconnect the raw client receives (answering pings on the way), or
/// `None` if the socket just closed.
async fn next_disconnect(client: &mut RawClient) -> Option<Option<DisconnectReason>> {
    tokio::time::timeout(SECS, async {
        loop {
            match client.reader.recv().await {
                Ok(Incoming::Disconnect(reason)) => return Some(reason),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("server ended the session in time")
}

/// A second, well-behaved peer whose echo session must keep working throughout.
async fn good_peer(server: &Network) -> (Network, mpsc::UnboundedReceiver<(String, usize)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let good = start(false, driving_registrar(tx)).await;
    good.dial(&server.local_addr()).await.unwrap();
    (good, rx)
}

async fn assert_good_peer_ok(
    server: &Network,
    good: &Network,
    done: &mut mpsc::UnboundedReceiver<(String, usize)>,
) {
    let first = tokio::time::timeout(SECS, done.recv())
        .await
        .expect("good peer served")
        .unwrap();
    assert_eq!(first.1, 300);
    assert!(server
        .peers()
        .iter()
        .any(|p| p.peer_id == good.local_peer_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_cut_off_with_the_right_reason() {
    let mut config = test_config(false);
    config.rlpx_ping_interval = Duration::from_millis(300);
    let server = start_with(config, serving_registrar()).await;
    let (good, mut done) = good_peer(&server).await;

    // Garbage instead of auth: the socket closes.
    let mut sock = TcpStream::connect(server.listen_addr()).await.unwrap();
    let junk: Vec<u8> = (0..600u32).map(|i| (i * 31 % 251) as u8).collect();
    let _ = sock.write_all(&junk).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(SECS, sock.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // No shared capability: UselessPeer, and no session.
    let err = raw_connect(&server, Capability::new("nope", 1, 1))
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.disconnect_reason(),
        Some(DisconnectReason::UselessPeer),
        "{err}"
    );

    // A Snappy header claiming 1 GiB: BreachOfProtocol, nothing allocated.
    let mut raw = raw_connect(&server, Capability::new("echo", 1, 4))
        .await
        .unwrap();
    raw.writer
        .send_raw(0x10, &[0x80, 0x80, 0x80, 0x80, 0x04, 0x00, 0x01])
        .await
        .unwrap();
    assert_eq!(
        next_disconnect(&mut raw).await,
        Some(Some(DisconnectReason::BreachOfProtocol))
    );

    // A peer that never answers Ping: PingTimeout, after three intervals in a row.
    let mut raw = raw_connect(&server, Capability::new("echo", 1, 4))
        .await
        .unwrap();
    let silent_since = std::time::Instant::now();
    let reason = tokio::time::timeout(SECS, async {
        loop {
            // Read, never pong.
            match raw.reader.recv().await {
                Ok(Incoming::Disconnect(reason)) => return Some(reason),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("timed out in time");
    assert_eq!(reason, Some(Some(DisconnectReason::PingTimeout)));
    let silent_for = silent_since.elapsed();
    assert!(
        silent_for >= Duration::from_millis(850),
        "dropped after {silent_for:?}: one lost ping must be forgiven"
    );

    assert_good_peer_ok(&server, &good, &mut done).await;
}

/// Keepalive forgives lost pings: a peer that ignores every other Ping stays, with
/// its round trip and missed count on record; the good peer's round trip is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_forgives_a_lost_ping_and_records_round_trips() {
    let mut config = test_config(false);
    config.rlpx_ping_interval = Duration::from_millis(200);
    let server = start_with(config, serving_registrar()).await;
    let mut raw = raw_connect(&server, Capability::new("echo", 1, 4))
        .await
        .unwrap();
    let mut events = server.events();
    let mut pings = 0u32;
    let mut answered = 0u32;
    let flaky = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match raw.reader.recv().await {
                Ok(Incoming::Ping) => {
                    pings += 1;
                    if pings.is_multiple_of(2) {
                        raw.writer.pong().await.unwrap();
                        answered += 1;
                    }
                }
                Ok(Incoming::Disconnect(reason)) => return Some(reason),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await;
    assert!(
        flaky.is_err(),
        "a peer missing one ping in two was dropped: {flaky:?}"
    );
    assert!(
        pings >= 6 && answered >= 3,
        "{pings} pings, {answered} answered"
    );
    let info = server.peers().into_iter().next().expect("still connected");
    assert!(info.ping_rtt.is_some(), "{info:?}");
    assert!(info.missed_pings <= 1, "{info:?}");
    let left = wait_for(&mut events, Duration::from_millis(100), |e| match e {
        NetworkEvent::PeerDisconnected { .. } => Some(()),
        _ => None,
    })
    .await;
    assert!(left.is_none());
    server.shutdown().await;
}

/// A TCP relay between a client and the server that can corrupt or cut the
/// client's next chunk.
struct Relay {
    addr: std::net::SocketAddr,
    /// 1: flip a bit in the next chunk; 2: forward half of it, then close.
    mode: Arc<AtomicU8>,
    armed: Arc<AtomicBool>,
}

async fn relay_to(target: std::net::SocketAddr) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mode = Arc::new(AtomicU8::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    let (m, a) = (mode.clone(), armed.clone());
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if a.swap(false, Ordering::SeqCst) {
                match m.load(Ordering::SeqCst) {
                    1 => buf[n - 1] ^= 0x01,
                    _ => {
                        let _ = sw.write_all(&buf[..n / 2]).await;
                        let _ = sw.shutdown().await;
                        return;
                    }
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    Relay { addr, mode, armed }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flipped_and_truncated_frames_end_the_session() {
    let server = start(false, serving_registrar()).await;
    let (good, mut done) = good_peer(&server).await;

    for mode in [1u8, 2] {
        let relay = relay_to(server.listen_addr()).await;
        let mut events = server.events();
        let tcp = TcpStream::connect(relay.addr).await.unwrap();
        let mut raw = raw_session(tcp, &server, Capability::new("echo", 1, 4))
            .await
            .unwrap();
        // One good message first: the session works through the relay.
        raw.writer
            .send_capability(0, 1, &[0x82, b'h', b'i'])
            .await
            .unwrap();
        let echoed = tokio::time::timeout(SECS, async {
            loop {
                if let Ok(Incoming::Capability { payload, .. }) = raw.reader.recv().await {
                    return payload;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(&echoed[..], &[0x82, b'h', b'i']);
        relay.mode.store(mode, Ordering::SeqCst);
        relay.armed.store(true, Ordering::SeqCst);
        raw.writer
            .send_capability(0, 1, &[0x83, b'b', b'a', b'd'])
            .await
            .unwrap();
        let outcome = next_disconnect(&mut raw).await;
        if mode == 1 {
            // A bad MAC: the server says why (its egress is intact) or just closes.
            assert!(
                matches!(
                    outcome,
                    Some(Some(DisconnectReason::BreachOfProtocol)) | None
                ),
                "{outcome:?}"
            );
        }
        let gone = wait_for(&mut events, SECS, |e| match e {
            NetworkEvent::PeerDisconnected { peer, .. } if *peer != good.local_peer_id() => {
                Some(())
            }
            _ => None,
        })
        .await;
        assert!(gone.is_some(), "server kept a session after mode {mode}");
    }
    assert_good_peer_ok(&server, &good, &mut done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_limit_and_duplicate_sessions_are_refused_with_reasons() {
    let mut config = test_config(false);
    config.pool.max_peers = 1;
    let server = start_with(config, serving_registrar()).await;
    let first_key = NodeKey::generate();
    let first = Network::start(test_config(false), first_key.clone(), serving_registrar())
        .await
        .unwrap();
    first.dial(&server.local_addr()).await.unwrap();
    assert!(eventually(SECS, || server.peers().len() == 1).await);

    // Over the limit: TooManyPeers.
    let second = start(false, serving_registrar()).await;
    let err = second.dial(&server.local_addr()).await.unwrap_err();
    assert!(
        matches!(
            err,
            devmux_network::Error::Rlpx(devmux_rlpx::Error::Disconnected(Some(
                DisconnectReason::TooManyPeers
            )))
        ),
        "{err}"
    );

    // The connected node id again on a second socket: AlreadyConnected.
    let tcp = TcpStream::connect(server.listen_addr()).await.unwrap();
    let err = raw_session_as(tcp, &server, Capability::new("echo", 1, 4), &first_key)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            devmux_rlpx::Error::Disconnected(Some(DisconnectReason::AlreadyConnected))
        ),
        "{err}"
    );
    assert_eq!(server.peers().len(), 1);
    assert_eq!(server.peers()[0].peer_id, first_key.peer_id());
}

/// Incompressible bytes (xorshift), so Snappy leaves the wire size as it is.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A peer that floods a handler which is not reading can make the node buffer at
/// most the handler queue's byte budget (16 MiB) plus socket buffers, not 64 large
/// messages; once the handler reads, every message arrives intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_bounds_what_a_flooding_peer_can_queue_in_bytes() {
    const SIZE: usize = 4 * 1024 * 1024;
    const TOTAL: usize = 30;
    let release = Arc::new(tokio::sync::Notify::new());
    let (got_tx, mut got_rx) = mpsc::unbounded_channel::<Message>();
    let mut registrar = Registrar::new();
    let gate = release.clone();
    registrar
        .session(
            [SessionProtocol::new("/stall/1/1.0.0", 4).unwrap()],
            move |_peer: PeerCtx, mut stream: MessageStream| {
                let (gate, got) = (gate.clone(), got_tx.clone());
                async move {
                    gate.notified().await;
                    while let Some(msg) = stream.next().await {
                        let _ = got.send(msg?);
                    }
                    Ok::<_, devmux_network::Error>(())
                }
            },
        )
        .unwrap();
    // The raw client never reads, so it never answers the server's pings: keep them out
    // of the test's way, or a run slower than two ping intervals ends in PingTimeout.
    let mut config = devmux_tests::test_config(false);
    config.rlpx_ping_interval = Duration::from_secs(600);
    let server = devmux_tests::start_with(config, registrar).await;
    let client = raw_connect(&server, Capability::new("stall", 1, 4))
        .await
        .unwrap();

    // The peer sends as fast as the server takes the bytes.
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let mut writer = client.writer;
    let flood = tokio::spawn(async move {
        for i in 0..TOTAL {
            writer
                .send_capability(0, 1, &noise(SIZE, i as u64 + 1))
                .await
                .unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
        }
        writer
    });
    // Stalled: no progress for 3 s.
    let started = std::time::Instant::now();
    let mut last = usize::MAX;
    let stalled = loop {
        let now = sent.load(Ordering::SeqCst);
        if now == last || now == TOTAL {
            break now;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    // How fast this machine moved those messages (the last 3 s were the stall): the
    // rest must go through at a rate like it, not within a fixed time, since RLPx's
    // cipher and MAC in a debug build on a loaded machine set the pace.
    let moving = started.elapsed().saturating_sub(Duration::from_secs(3));
    let per_message = moving / u32::try_from(stalled.max(1)).unwrap_or(1);
    let remaining = u32::try_from(TOTAL - stalled).unwrap_or(u32::MAX);
    let deadline = SECS * 3 + per_message * remaining * 4;
    eprintln!("server pushed back after {stalled} messages of 4 MiB ({per_message:?} each)");
    // 16 MiB queued, one message being read and one waiting for room, plus what the
    // two sockets buffer (here up to 32 + 4 MiB): about 15 messages of 4 MiB. A queue
    // bounded only by its 64 messages would take all 30.
    assert!(
        (4..=24).contains(&stalled),
        "{stalled} messages of 4 MiB went out before the server pushed back"
    );

    // The handler starts reading: the rest goes through and nothing was lost.
    release.notify_one();
    let _writer = tokio::time::timeout(deadline, flood)
        .await
        .expect("the server reads again once the handler does")
        .unwrap();
    for i in 0..TOTAL {
        let msg = tokio::time::timeout(SECS, got_rx.recv())
            .await
            .expect("message delivered")
            .unwrap();
        assert_eq!(msg.code, 1);
        assert!(
            msg.payload[..] == noise(SIZE, i as u64 + 1)[..],
            "message {i} changed on the way"
        );
    }
    let _ = client.reader;
}
