//! The stream stack end to end: two or more devmux nodes on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use devmux_network::{
    DisconnectReason, Message, MessageStream, NetworkEvent, PeerCtx, Penalty, Registrar,
};
use devmux_tests::{echo, eventually, start, start_with, test_config, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECS: Duration = Duration::from_secs(10);

/// Uppercases every payload: a second protocol whose answers differ from echo's.
async fn upper(_peer: PeerCtx, mut stream: MessageStream) -> Result<(), devmux_network::Error> {
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        let payload: Vec<u8> = msg.payload.iter().map(|b| b.to_ascii_uppercase()).collect();
        stream.send(Message::new(msg.code + 1, payload)).await?;
    }
    Ok(())
}

fn server_registrar() -> Registrar {
    let mut r = Registrar::new();
    r.request("/demo/echo/1.0.0", echo).unwrap();
    r.request("/demo/upper/1.0.0", upper).unwrap();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_several_protocols_many_concurrent_streams() {
    let server = start(true, server_registrar()).await;
    let client = start(true, Registrar::new()).await;
    let mut events = server.events();
    let peer = client.dial(&server.local_addr()).await.unwrap();
    assert_eq!(peer, server.local_peer_id());
    let connected = wait_for(&mut events, SECS, |e| match e {
        NetworkEvent::PeerConnected { peer, .. } => Some(*peer),
        _ => None,
    })
    .await;
    assert_eq!(connected, Some(client.local_peer_id()));

    // Two protocols, answers that differ per protocol.
    let (mut s, id) = client.open(&peer, &["/demo/upper/1.0.0"]).await.unwrap();
    assert_eq!(id.as_str(), "/demo/upper/1.0.0");
    s.send(Message::new(3, &b"abc"[..])).await.unwrap();
    let got = s.next().await.unwrap().unwrap();
    assert_eq!((got.code, &got.payload[..]), (4, &b"ABC"[..]));

    // Many concurrent streams, each with several messages of its own.
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut s, _) = client.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
            for j in 0..20u32 {
                let payload = Bytes::from(format!("{i}-{j}-{}", "x".repeat((i * j) as usize)));
                s.send(Message::new((j % 256) as u8, payload.clone()))
                    .await
                    .unwrap();
                let back = s.next().await.unwrap().unwrap();
                assert_eq!(back.payload, payload);
            }
            s.close().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A large message crosses intact.
    let (mut s, _) = client.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    s.send(Message::new(9, big.clone())).await.unwrap();
    assert_eq!(s.next().await.unwrap().unwrap().payload, big);

    assert_eq!(client.peers().len(), 1);
    assert_eq!(server.peers().len(), 1);
    let protocols = &server.peers()[0].protocols;
    assert!(protocols.iter().any(|p| p.as_str() == "/demo/echo/1.0.0"));
    assert!(protocols.iter().any(|p| p.as_str() == "/demo/upper/1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_protocol_is_refused_and_the_connection_survives() {
    let server = start(true, server_registrar()).await;
    let client = start(true, Registrar::new()).await;
    let peer = client.dial(&server.local_addr()).await.unwrap();
    let err = client.open(&peer, &["/nope/1.0.0"]).await.unwrap_err();
    assert!(
        matches!(err, devmux_network::Error::Negotiation(_)),
        "{err}"
    );
    // The first supported id wins.
    let (_, id) = client
        .open(
            &peer,
            &["/nope/2.0.0", "/demo/upper/1.0.0", "/demo/echo/1.0.0"],
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), "/demo/upper/1.0.0");
    let (mut s, _) = client.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    s.send(Message::new(1, &b"still here"[..])).await.unwrap();
    assert_eq!(&s.next().await.unwrap().unwrap().payload[..], b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dial_leaves_one_connection() {
    for _ in 0..5 {
        let a = start(true, server_registrar()).await;
        let b = start(true, server_registrar()).await;
        let (addr_a, addr_b) = (a.local_addr(), b.local_addr());
        let (ra, rb) = tokio::join!(a.dial(&addr_b), b.dial(&addr_a));
        let (pa, pb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(pa, b.local_peer_id());
        assert_eq!(pb, a.local_peer_id());
        // Both ends settle on the same single connection.
        let settled = eventually(SECS, || {
            let (x, y) = (a.peers(), b.peers());
            // One connection, seen as outbound from one end and inbound from the other.
            x.len() == 1 && y.len() == 1 && x[0].direction != y[0].direction
        })
        .await;
        assert!(settled, "a: {:?}\nb: {:?}", a.peers(), b.peers());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (x, y) = (a.peers(), b.peers());
        assert_eq!((x.len(), y.len()), (1, 1));
        assert_ne!(x[0].direction, y[0].direction);
        let (mut s, _) = a.open(&pa, &["/demo/echo/1.0.0"]).await.unwrap();
        s.send(Message::new(0, &b"one"[..])).await.unwrap();
        assert_eq!(&s.next().await.unwrap().unwrap().payload[..], b"one");
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_naming_the_wrong_peer_id_fails_clearly() {
    let server = start(true, server_registrar()).await;
    let client = start(true, Registrar::new()).await;
    let other = devmux_network::NodeKey::generate().peer_id();
    let addr = format!(
        "/ip4/{}/tcp/{}/p2p/{other}",
        server.listen_addr().ip(),
        server.listen_addr().port()
    );
    let err = client.dial(&addr).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&other.to_string()) && text.contains(&server.local_peer_id().to_string()),
        "{text}"
    );
    assert!(client.peers().is_empty());
    // The right id works.
    assert_eq!(
        client.dial(&server.local_addr()).await.unwrap(),
        server.local_peer_id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_mid_handshake_is_dropped_at_the_deadline() {
    let mut config = test_config(true);
    config.transport.handshake_timeout = Duration::from_millis(500);
    let server = start_with(config, server_registrar()).await;
    // A peer that says the multistream header and then nothing.
    let mut sock = tokio::net::TcpStream::connect(server.listen_addr())
        .await
        .unwrap();
    sock.write_all(b"\x13/multistream/1.0.0\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // the listener's own header
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept a silent peer beyond its deadline"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    // And still serves others.
    let client = start(true, Registrar::new()).await;
    client.dial(&server.local_addr()).await.unwrap();
}

/// Sends `bytes` on a raw TCP connection and expects the server to close it.
async fn expect_closed_after(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = sock.write_all(bytes).await;
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "connection not closed after garbage {bytes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_each_stage_closes_only_that_connection() {
    let server = start(true, server_registrar()).await;
    let good = start(true, Registrar::new()).await;
    let peer = good.dial(&server.local_addr()).await.unwrap();
    let addr = server.listen_addr();

    // 1. Not multistream-select at all.
    expect_closed_after(addr, &[0xffu8; 64]).await;
    expect_closed_after(addr, b"GET / HTTP/1.1\r\n\r\n").await;
    // 2. multistream-select fine, then garbage where Noise should be.
    let mut noise_garbage = b"\x13/multistream/1.0.0\n\x07/noise\n".to_vec();
    noise_garbage.extend_from_slice(&[0x00, 0x20]);
    noise_garbage.extend_from_slice(&[0x42; 0x20]);
    expect_closed_after(addr, &noise_garbage).await;

    // 3. Noise fine, then garbage where multistream-select / yamux should be.
    let raw = devmux_transport::Upgrader::new(
        devmux_network::NodeKey::generate(),
        devmux_transport::Config::default(),
    )
    .unwrap();
    for junk in [&b"\xff\xff\xff\xffjunk-not-multistream"[..], &b"\x13/multistream/1.0.0\n\x0d/yamux/1.0.0\n\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09"[..]] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut secure, key) = raw.secure_outbound(tcp, None).await.unwrap();
        assert_eq!(key.to_peer_id(), server.local_peer_id());
        use futures::{AsyncReadExt as _, AsyncWriteExt as _};
        secure.write_all(junk).await.unwrap();
        secure.flush().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match secure.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "server kept a connection that sent {junk:?}");
    }

    // Our own writer refuses oversize messages before they reach the wire.
    let (mut s, _) = good.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    let err = s
        .send(Message::new(0, vec![0u8; 10 * 1024 * 1024]))
        .await
        .unwrap_err();
    assert!(matches!(err, devmux_network::Error::MessageTooLarge { .. }));
    let (mut s, _) = good.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    s.send(Message::new(1, &b"ok"[..])).await.unwrap();
    assert_eq!(&s.next().await.unwrap().unwrap().payload[..], b"ok");

    // The node kept serving the good peer through all of it, and let go of every
    // garbage connection (those that got as far as yamux close a moment after their
    // socket does).
    assert!(server.is_connected(&good.local_peer_id()));
    assert!(
        eventually(SECS, || server.peers().len() == 1).await,
        "{:?}",
        server.peers()
    );
    assert!(good.ping(&peer).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The handler only sees the error: the network penalises the framing fault itself, once.
async fn oversize_frame_from_a_peer_resets_the_stream_and_penalises() {
    let seen = Arc::new(AtomicUsize::new(0));
    let errors = seen.clone();
    let mut registrar = Registrar::new();
    registrar
        .request(
            "/demo/strict/1.0.0",
            move |_peer: PeerCtx, mut stream: MessageStream| {
                let errors = errors.clone();
                async move {
                    while let Some(msg) = stream.next().await {
                        match msg {
                            Ok(m) => stream.send(m).await?,
                            Err(e) => {
                                assert!(e.is_framing_fault(), "{e}");
                                errors.fetch_add(1, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    }
                    Ok(())
                }
            },
        )
        .unwrap();
    let server = start(true, registrar).await;
    let mut events = server.events();
    let client_key = devmux_network::NodeKey::generate();
    let upgrader =
        devmux_transport::Upgrader::new(client_key.clone(), devmux_transport::Config::default())
            .unwrap();
    let conn = upgrader
        .dial(server.listen_addr(), Some(server.local_peer_id()))
        .await
        .unwrap();
    // Negotiate the protocol by hand, then claim an 11 MiB message.
    let stream = conn.control.open_stream().await.unwrap();
    let (_, mut io) = multistream_select::dialer_select_proto(
        stream,
        ["/demo/strict/1.0.0"],
        multistream_select::Version::V1,
    )
    .await
    .unwrap();
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = unsigned_varint::encode::u64_buffer();
    io.write_all(unsigned_varint::encode::u64(11 * 1024 * 1024, &mut buf))
        .await
        .unwrap();
    // The server may reset the stream before these bytes land: that is the point.
    let _ = io.write_all(&[0u8; 100]).await;
    let _ = io.flush().await;
    let penalised = wait_for(&mut events, SECS, |e| match e {
        NetworkEvent::PeerPenalized {
            peer,
            reason,
            penalty,
        } => Some((*peer, reason.clone(), *penalty)),
        _ => None,
    })
    .await
    .expect("peer penalised");
    assert_eq!(penalised.0, client_key.peer_id());
    assert_eq!(penalised.2, Penalty::Major);
    assert!(
        penalised.1.contains("/demo/strict/1.0.0") && penalised.1.contains("exceeds"),
        "{}",
        penalised.1
    );
    // The handler got the error right after the penalty.
    assert!(eventually(SECS, || seen.load(Ordering::SeqCst) == 1).await);
    // The stream is gone: reading ends.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(SECS, io.read_to_end(&mut rest))
        .await
        .expect("stream closed");
    // The connection is not: a new stream works.
    let stream = conn.control.open_stream().await.unwrap();
    let (_, mut io) = multistream_select::dialer_select_proto(
        stream,
        ["/demo/strict/1.0.0"],
        multistream_select::Version::V1,
    )
    .await
    .unwrap();
    io.write_all(&[3, 7, b'h', b'i']).await.unwrap();
    io.flush().await.unwrap();
    let mut back = [0u8; 4];
    io.read_exact(&mut back).await.unwrap();
    assert_eq!(back, [3, 7, b'h', b'i']);
    // One fault, one penalty.
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, NetworkEvent::PeerPenalized { .. }),
            "penalised twice: {e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_identify_and_goodbye_between_devmux_nodes() {
    let a = start(true, server_registrar()).await;
    let b = start(true, Registrar::new()).await;
    let peer = b.dial(&a.local_addr()).await.unwrap();
    let rtt = b.ping(&peer).await.unwrap();
    assert!(rtt < Duration::from_secs(2));
    let id = b.identify(&peer).await.unwrap();
    assert_eq!(id.public_key.to_peer_id(), a.local_peer_id());
    assert!(id.protocols.iter().any(|p| p == "/demo/echo/1.0.0"));
    assert!(id.protocols.iter().any(|p| p == "/ipfs/ping/1.0.0"));
    assert_eq!(id.listen_addrs.len(), 1);

    let mut a_events = a.events();
    b.disconnect(&peer, DisconnectReason::TooManyPeers).await;
    let got = wait_for(&mut a_events, SECS, |e| match e {
        NetworkEvent::PeerDisconnected {
            reason, by_remote, ..
        } => Some((*reason, *by_remote)),
        _ => None,
    })
    .await;
    assert_eq!(got, Some((Some(DisconnectReason::TooManyPeers), true)));
    assert!(eventually(SECS, || a.peers().is_empty() && b.peers().is_empty()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_protocol_runs_on_both_ends_and_shutdown_says_client_quitting() {
    use devmux_network::SessionProtocol;
    let opened = Arc::new(AtomicUsize::new(0));
    let make = |opened: Arc<AtomicUsize>| {
        let mut r = Registrar::new();
        r.session(
            [
                SessionProtocol::new("/ses/2/1.0.0", 4).unwrap(),
                SessionProtocol::new("/ses/1/1.0.0", 4).unwrap(),
            ],
            move |peer: PeerCtx, mut stream: MessageStream| {
                let opened = opened.clone();
                async move {
                    opened.fetch_add(1, Ordering::SeqCst);
                    // Both sides greet first, like eth's Status.
                    stream
                        .send(Message::new(0, peer.protocol.to_string().into_bytes()))
                        .await?;
                    let hello = stream
                        .next()
                        .await
                        .ok_or(devmux_network::Error::StreamClosed)??;
                    assert_eq!(hello.payload, peer.protocol.to_string().into_bytes());
                    while let Some(m) = stream.next().await {
                        m?;
                    }
                    Ok::<_, devmux_network::Error>(())
                }
            },
        )
        .unwrap();
        r
    };
    let a = start(true, make(opened.clone())).await;
    // b speaks only version 1: the session settles on it.
    let mut rb = Registrar::new();
    let opened_b = opened.clone();
    rb.session(
        [SessionProtocol::new("/ses/1/1.0.0", 4).unwrap()],
        move |peer: PeerCtx, mut stream: MessageStream| {
            let opened = opened_b.clone();
            async move {
                opened.fetch_add(1, Ordering::SeqCst);
                stream
                    .send(Message::new(0, peer.protocol.to_string().into_bytes()))
                    .await?;
                while let Some(m) = stream.next().await {
                    m?;
                }
                Ok::<_, devmux_network::Error>(())
            }
        },
    )
    .unwrap();
    let b = start(true, rb).await;
    let mut events = a.events();
    a.dial(&b.local_addr()).await.unwrap();
    let proto = wait_for(&mut events, SECS, |e| match e {
        NetworkEvent::StreamOpened { protocol, .. } => Some(protocol.to_string()),
        _ => None,
    })
    .await;
    assert_eq!(proto.as_deref(), Some("/ses/1/1.0.0"));
    assert!(eventually(SECS, || opened.load(Ordering::SeqCst) == 2).await);

    let mut b_events = b.events();
    a.shutdown().await;
    let got = wait_for(&mut b_events, SECS, |e| match e {
        NetworkEvent::PeerDisconnected { reason, .. } => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(got, Some(Some(DisconnectReason::ClientQuitting)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_works_where_available() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!(
            "skipping ipv6_loopback_works_where_available: ::1 is not available on this machine"
        );
        return;
    }
    let mut config = test_config(true);
    config.listen_addr = "[::1]:0".parse().unwrap();
    let server = start_with(config, server_registrar()).await;
    assert!(
        server.local_addr().starts_with("/ip6/::1/tcp/"),
        "{}",
        server.local_addr()
    );
    let mut config = test_config(true);
    config.listen_addr = "[::1]:0".parse().unwrap();
    let client = start_with(config, Registrar::new()).await;
    let peer = client.dial(&server.local_addr()).await.unwrap();
    let (mut s, _) = client.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    s.send(Message::new(2, &b"v6"[..])).await.unwrap();
    assert_eq!(&s.next().await.unwrap().unwrap().payload[..], b"v6");
    assert!(client.peers()[0].remote_addr.is_ipv6());
}

/// Opens a stream on `control` and proposes `n` unknown protocols on it at once (the
/// header first, by hand); returns the `na`s received once all `n` came back or the
/// listener gave up. `None` if no stream opens (the connection is gone).
async fn propose_unknown(
    control: &devmux_transport::Control,
    n: usize,
    tag: usize,
) -> Option<usize> {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = control.open_stream().await.ok()?;
    let mut burst = devmux_tests::mss::frame(b"/multistream/1.0.0\n");
    for i in 0..n {
        burst.extend(devmux_tests::mss::frame(
            format!("/unknown/{tag}/{i}/1.0.0\n").as_bytes(),
        ));
    }
    // The listener may give up (and reset the stream) before it has read them all.
    let _ = stream.write_all(&burst).await;
    let _ = stream.flush().await;
    let mut replies = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(SECS, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    replies.extend_from_slice(&buf[..k]);
                    if devmux_tests::mss::count_na(&replies) == n {
                        break;
                    }
                }
            }
        }
    })
    .await;
    Some(devmux_tests::mss::count_na(&replies))
}

/// A raw libp2p connection to `server` (our own transport, no devmux node behind it).
async fn raw_connection(
    server: &devmux_network::Network,
) -> (devmux_transport::Connection, devmux_network::PeerId) {
    let key = devmux_network::NodeKey::generate();
    let upgrader =
        devmux_transport::Upgrader::new(key.clone(), devmux_transport::Config::default()).unwrap();
    let conn = upgrader
        .dial(server.listen_addr(), Some(server.local_peer_id()))
        .await
        .unwrap();
    let peer = key.peer_id();
    assert!(eventually(SECS, || server.is_connected(&peer)).await);
    (conn, peer)
}

/// The stream stack bounds the `na`s of one connection across its streams
/// (issue 16 item 4): 40 unknown protocols per stream stay under the per-stream cap
/// (64), so only the connection's budget (256) stops a peer that keeps opening
/// streams. Once it is spent the node closes the connection and penalises the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_proposals_across_streams_spend_the_budget_and_close_the_connection() {
    let server = start(true, server_registrar()).await;
    let mut events = server.events();
    let (conn, peer) = raw_connection(&server).await;
    // Streams opened, and those that got any answer.
    let (mut na, mut streams, mut answered) = (0, 0, 0);
    while streams < 20 && !conn.control.is_closed() {
        let Some(n) = propose_unknown(&conn.control, 40, streams).await else {
            break;
        };
        na += n;
        streams += 1;
        answered += usize::from(n > 0);
    }
    eprintln!("{na} na over {answered} answered streams ({streams} opened) before the close");
    let penalised = wait_for(&mut events, SECS, |e| match e {
        NetworkEvent::PeerPenalized {
            peer: p,
            penalty,
            reason,
        } if *p == peer => Some((*penalty, reason.clone())),
        _ => None,
    })
    .await
    .expect("the peer is penalised");
    assert_eq!(penalised.0, Penalty::Major);
    assert!(
        penalised.1.contains("too many rejected protocol proposals"),
        "{}",
        penalised.1
    );
    tokio::time::timeout(SECS, conn.control.closed())
        .await
        .expect("the node closed the connection");
    assert!(na <= 256, "{na} na on one connection");
    // 6 streams of 40 fit in the budget; the 7th spends it (one more may open
    // before the close lands, and gets nothing).
    assert!(answered <= 7, "{answered} streams answered");
    assert!(eventually(SECS, || !server.is_connected(&peer)).await);
    // The node still serves others.
    let other = start(true, Registrar::new()).await;
    let p = other.dial(&server.local_addr()).await.unwrap();
    let (mut s, _) = other.open(&p, &["/demo/echo/1.0.0"]).await.unwrap();
    s.send(Message::new(1, &b"fine"[..])).await.unwrap();
    assert_eq!(&s.next().await.unwrap().unwrap().payload[..], b"fine");
}

/// Sixteen streams at once, each proposing 100 unknown protocols: each stream stops
/// at 64, the connection at 256 in all, and the peer is penalised once however many
/// streams fail on the spent budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_share_one_budget_and_one_penalty() {
    let server = start(true, server_registrar()).await;
    let mut events = server.events();
    let (conn, peer) = raw_connection(&server).await;
    let control = conn.control.clone();
    let tasks: Vec<_> = (0..16)
        .map(|tag| {
            let control = control.clone();
            tokio::spawn(async move { propose_unknown(&control, 100, tag).await.unwrap_or(0) })
        })
        .collect();
    let mut per_stream = Vec::new();
    for t in tasks {
        per_stream.push(t.await.unwrap());
    }
    let na: usize = per_stream.iter().sum();
    eprintln!("{na} na over 16 concurrent streams: {per_stream:?}");
    assert!(per_stream.iter().all(|&n| n <= 64), "{per_stream:?}");
    assert!(na <= 256, "{na} na on one connection");
    let penalised = wait_for(&mut events, SECS, |e| {
        matches!(e, NetworkEvent::PeerPenalized { peer: p, .. } if *p == peer).then_some(())
    })
    .await;
    assert!(penalised.is_some(), "the peer is penalised");
    tokio::time::timeout(SECS, conn.control.closed())
        .await
        .expect("the node closed the connection");
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, NetworkEvent::PeerPenalized { .. }),
            "penalised twice: {e:?}"
        );
    }
}
