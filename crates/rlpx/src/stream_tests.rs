//! Loopback tests on real 127.0.0.1 sockets (port 0).

use std::future::Future;

use bytes::Bytes;
use rand::thread_rng;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    time::timeout,
};

use super::*;
use secp256k1::{Keypair, SECP256K1};

use crate::{ecies::random_secret_key, handshake::tests as vectors, node_id_of_secret};

const STEP: Duration = Duration::from_secs(10);

async fn within<T>(f: impl Future<Output = T>) -> T {
    timeout(STEP, Box::pin(f))
        .await
        .expect("test step timed out")
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

fn key() -> Keypair {
    Keypair::from_secret_key(SECP256K1, &random_secret_key(&mut thread_rng()))
}

fn id(key: &Keypair) -> NodeId {
    node_id(&key.public_key())
}

fn eth_snap() -> SessionConfig {
    SessionConfig::new("devmux-test/a")
        .with_capability(Capability::new("eth", 67, 17))
        .with_capability(Capability::new("eth", 68, 17))
        .with_capability(Capability::new("snap", 1, 8))
}

/// Initiator and responder stages on a fresh socket pair.
async fn ecies_pair(a: &Keypair, b: &Keypair) -> (EciesStream<TcpStream>, EciesStream<TcpStream>) {
    let (client, server) = tcp_pair().await;
    let b_id = id(b);
    let (ea, eb) = within(async {
        tokio::join!(
            EciesStream::connect(client, a, &b_id),
            EciesStream::accept(server, b)
        )
    })
    .await;
    (ea.unwrap(), eb.unwrap())
}

async fn session_pair(
    config_a: &SessionConfig,
    config_b: &SessionConfig,
) -> (
    Result<Established<TcpStream>, Error>,
    Result<Established<TcpStream>, Error>,
) {
    let (a, b) = (key(), key());
    let (ea, eb) = ecies_pair(&a, &b).await;
    within(async { tokio::join!(ea.exchange_hello(config_a), eb.exchange_hello(config_b)) }).await
}

async fn established_pair() -> (Established<TcpStream>, Established<TcpStream>) {
    let config_b = SessionConfig::new("devmux-test/b")
        .with_capability(Capability::new("eth", 68, 17))
        .with_capability(Capability::new("les", 4, 23))
        .with_capability(Capability::new("snap", 1, 8));
    let (a, b) = session_pair(&eth_snap(), &config_b).await;
    (a.unwrap(), b.unwrap())
}

/// Sends a raw frame (id + payload exactly as given) from `session`'s writer.
async fn send_raw(
    writer: &mut SessionWriter<impl AsyncWrite + Unpin>,
    msg_id: u64,
    payload: &[u8],
) {
    writer.write.encode(msg_id, payload, false).unwrap();
    writer.flush().await.unwrap();
}

#[tokio::test]
async fn full_session_round_trip() {
    let (a, b) = established_pair().await;
    assert_eq!(a.remote_id(), &a.remote_hello().id);
    assert_eq!(b.remote_id(), &b.remote_hello().id);
    assert_ne!(a.remote_id(), b.remote_id());
    assert_eq!(a.remote_hello().client_id, "devmux-test/b");
    assert_eq!(b.remote_hello().protocol_version, P2P_VERSION);
    assert!(a.is_compressed() && b.is_compressed());
    let expected = vec![("eth", 68, 0x10, 17), ("snap", 1, 0x21, 8)];
    for side in [&a, &b] {
        let got: Vec<_> = side
            .shared_capabilities()
            .iter()
            .map(|c| (c.name.as_str(), c.version, c.offset, c.message_count))
            .collect();
        assert_eq!(got, expected);
    }

    let (mut ra, mut wa) = a.split_with(TcpStream::into_split);
    let (mut rb, mut wb) = b.split();

    // Ping / pong.
    within(wa.ping()).await.unwrap();
    assert_eq!(within(rb.recv()).await.unwrap(), Incoming::Ping);
    within(wb.pong()).await.unwrap();
    assert_eq!(within(ra.recv()).await.unwrap(), Incoming::Pong);

    // Capability messages both ways, ids stripped of their offsets.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    let reader = tokio::spawn(async move {
        let first = rb.recv().await.unwrap();
        let mut burst = Vec::new();
        for _ in 0..500 {
            burst.push(rb.recv().await.unwrap());
        }
        (rb, first, burst)
    });
    within(wa.send_capability(0, 16, &big)).await.unwrap();
    for i in 0..500u32 {
        within(wa.feed_capability(1, (i % 8) as u8, &i.to_be_bytes()))
            .await
            .unwrap();
    }
    within(wa.flush()).await.unwrap();
    let (mut rb, first, burst) = within(reader).await.unwrap();
    assert_eq!(
        first,
        Incoming::Capability {
            index: 0,
            id: 16,
            payload: Bytes::from(big)
        }
    );
    for (i, msg) in burst.into_iter().enumerate() {
        let i = i as u32;
        let want = Bytes::copy_from_slice(&i.to_be_bytes());
        assert_eq!(
            msg,
            Incoming::Capability {
                index: 1,
                id: (i % 8) as u8,
                payload: want
            }
        );
    }
    within(wb.send_capability(1, 7, b"\xc2\x01\x02"))
        .await
        .unwrap();
    assert_eq!(
        within(ra.recv()).await.unwrap(),
        Incoming::Capability {
            index: 1,
            id: 7,
            payload: Bytes::from_static(b"\xc2\x01\x02")
        }
    );

    // Sending outside the shared space is refused locally.
    assert!(matches!(
        wa.send_capability(1, 8, b"").await,
        Err(Error::InvalidCapability { index: 1, id: 8 })
    ));
    assert!(matches!(
        wa.send_capability(2, 0, b"").await,
        Err(Error::InvalidCapability { .. })
    ));

    // Disconnect reason propagation, then a clean close.
    within(wa.disconnect(DisconnectReason::TooManyPeers))
        .await
        .unwrap();
    assert_eq!(
        within(rb.recv()).await.unwrap(),
        Incoming::Disconnect(Some(DisconnectReason::TooManyPeers))
    );
    assert!(matches!(
        within(rb.recv()).await,
        Err(Error::ConnectionClosed)
    ));
}

#[tokio::test]
async fn every_disconnect_reason_propagates() {
    for reason in DisconnectReason::ALL {
        let (a, b) = established_pair().await;
        within(a.disconnect(reason)).await.unwrap();
        let (mut rb, _wb) = b.split();
        assert_eq!(
            within(rb.recv()).await.unwrap(),
            Incoming::Disconnect(Some(reason))
        );
    }
}

#[tokio::test]
async fn lenient_disconnect_forms_after_hello() {
    // Bare integer, uncompressed (WIRE.md §6), then an unknown code.
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    send_raw(&mut wa, DISCONNECT_ID, &[0x04]).await;
    assert_eq!(
        within(rb.recv()).await.unwrap(),
        Incoming::Disconnect(Some(DisconnectReason::TooManyPeers))
    );
    send_raw(&mut wa, DISCONNECT_ID, &[0xc1, 0x33]).await;
    assert_eq!(within(rb.recv()).await.unwrap(), Incoming::Disconnect(None));
}

#[tokio::test]
async fn reserved_p2p_ids_are_skipped() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    send_raw(&mut wa, 0x05, b"whatever").await;
    within(wa.ping()).await.unwrap();
    assert_eq!(within(rb.recv()).await.unwrap(), Incoming::Ping);
}

#[tokio::test]
async fn garbage_auth_is_refused() {
    let server_key = key();
    for garbage in [
        // EIP-8 prefix of 336 bytes, then junk: decrypts to nothing.
        [&[0x01u8, 0x50][..], &[0x5a; 336][..]].concat(),
        // A prefix far over the cap: refused from the two bytes.
        vec![0xff, 0xff, 0x00],
        // Pre-EIP-8 sized junk starting with 0x04, prefix then says 0x04ff: junk.
        vec![0x04; 1300],
    ] {
        let (mut client, server) = tcp_pair().await;
        client.write_all(&garbage).await.unwrap();
        let result = within(EciesStream::accept(server, &server_key)).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::EciesDecrypt | Error::HandshakeTooLarge { .. }),
            "unexpected {err:?}"
        );
        assert_eq!(err.disconnect_reason(), None);
        assert!(err.is_peer_fault());
    }
    // A peer that connects and leaves.
    let (client, server) = tcp_pair().await;
    drop(client);
    assert!(matches!(
        within(EciesStream::accept(server, &server_key)).await,
        Err(Error::ConnectionClosed)
    ));
    // A peer that stops half-way through its auth.
    let (mut client, server) = tcp_pair().await;
    client.write_all(&[0x01, 0x50, 0x00]).await.unwrap();
    client.shutdown().await.unwrap();
    assert!(matches!(
        within(EciesStream::accept(server, &server_key)).await,
        Err(Error::Io(_))
    ));
}

#[tokio::test]
async fn garbage_ack_is_refused() {
    let (client, mut server) = tcp_pair().await;
    let remote = id(&key());
    let responder = async move {
        let mut auth = [0u8; 400];
        let _ = tokio::io::AsyncReadExt::read(&mut server, &mut auth).await;
        server.write_all(&[0x01, 0x80]).await.unwrap();
        server.write_all(&[0x77; 0x180]).await.unwrap();
        server
    };
    let local = key();
    let (result, _server) =
        within(async { tokio::join!(EciesStream::connect(client, &local, &remote), responder) })
            .await;
    assert!(matches!(result, Err(Error::EciesDecrypt)));
}

#[tokio::test]
async fn dialing_the_wrong_key_fails_both_sides() {
    let (client, server) = tcp_pair().await;
    let (a, b, c) = (key(), key(), key());
    let wrong = id(&c);
    let (ra, rb) = within(async {
        tokio::join!(
            async {
                let stream = EciesStream::connect(client, &a, &wrong).await?;
                drop(stream);
                Ok::<_, Error>(())
            },
            // On failure the responder drops (closes) its socket.
            async { EciesStream::accept(server, &b).await.map(drop) }
        )
    })
    .await;
    assert!(matches!(rb, Err(Error::EciesDecrypt)));
    assert!(ra.is_err());
}

#[tokio::test]
async fn invalid_dial_target() {
    let (client, _server) = tcp_pair().await;
    assert!(matches!(
        EciesStream::connect(client, &key(), &[0x11; 64]).await,
        Err(Error::InvalidNodeId)
    ));
}

/// EIP-8's pre-EIP-8 Auth₁, sent by a legacy initiator over a socket: the
/// responder accepts it, answers with an EIP-8 ack, and the session works.
#[tokio::test]
async fn pre_eip8_auth_over_socket() {
    let key_a = vectors::key(vectors::STATIC_A);
    let key_b = vectors::key(vectors::STATIC_B);
    let nonce_a: [u8; 32] = vectors::unhex(vectors::NONCE_A).try_into().unwrap();
    let mut initiator = Initiator::with_parts(
        &mut thread_rng(),
        &key_a,
        node_id_of_secret(&key_a),
        &node_id_of_secret(&key_b),
        vectors::key(vectors::EPHEMERAL_A),
        nonce_a,
    )
    .unwrap();
    initiator.set_auth_packet(Bytes::from(vectors::unhex(vectors::AUTH_1)));

    let (mut client, server) = tcp_pair().await;
    let legacy = async {
        client.write_all(initiator.auth_packet()).await.unwrap();
        let mut buf = BytesMut::new();
        let secrets = loop {
            if let Some(s) = initiator.read_ack(&mut buf).unwrap() {
                break s;
            }
            read_handshake_bytes(&mut client, &mut buf).await.unwrap();
        };
        EciesStream::new(client, node_id_of_secret(&key_a), secrets, buf)
    };
    let keypair_b = Keypair::from_secret_key(SECP256K1, &key_b);
    let (ea, eb) =
        within(async { tokio::join!(legacy, EciesStream::accept(server, &keypair_b)) }).await;
    let eb = eb.unwrap();
    assert_eq!(eb.remote_id(), &node_id_of_secret(&key_a));
    let cfg = eth_snap();
    let (a, b) =
        within(async { tokio::join!(ea.exchange_hello(&cfg), eb.exchange_hello(&cfg)) }).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    within(wa.send_capability(0, 3, b"pre-eip8 works"))
        .await
        .unwrap();
    assert_eq!(
        within(rb.recv()).await.unwrap(),
        Incoming::Capability {
            index: 0,
            id: 3,
            payload: Bytes::from_static(b"pre-eip8 works")
        }
    );
}

#[tokio::test]
async fn truncated_frame_is_an_error() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split_with(TcpStream::into_split);
    let (mut rb, _wb) = b.split();
    wa.write.encode(0x10, &[7u8; 1000], true).unwrap();
    let frame = wa.write.buf.split();
    wa.io.write_all(&frame[..frame.len() / 2]).await.unwrap();
    wa.io.shutdown().await.unwrap();
    let err = within(rb.recv()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
}

#[tokio::test]
async fn bit_flipped_frame_is_bad_mac() {
    for index in [3usize, 20, 40] {
        let (a, b) = established_pair().await;
        let (_ra, mut wa) = a.split_with(TcpStream::into_split);
        let (mut rb, _wb) = b.split();
        wa.write.encode(0x10, b"some eth message", true).unwrap();
        let mut frame = wa.write.buf.split();
        frame[index] ^= 0x04;
        wa.io.write_all(&frame).await.unwrap();
        let err = within(rb.recv()).await.unwrap_err();
        assert!(matches!(err, Error::BadMac), "{err:?}");
        assert_eq!(
            err.disconnect_reason(),
            Some(DisconnectReason::BreachOfProtocol)
        );
        // The decoder stays failed.
        assert!(matches!(within(rb.recv()).await, Err(Error::Poisoned)));
    }
}

#[tokio::test]
async fn hello_with_foreign_id_is_refused() {
    let (a, b, c) = (key(), key(), key());
    let (mut ea, eb) = ecies_pair(&a, &b).await;
    // A proved key `a` in ECIES but claims `c` in its Hello.
    let forged = async {
        let hello = eth_snap().hello(id(&c));
        let mut payload = Vec::new();
        hello.encode(&mut payload);
        ea.write
            .send(&mut ea.io, HELLO_ID, &payload, false)
            .await
            .unwrap();
        let theirs = ea.read_hello().await.unwrap();
        assert_eq!(theirs.id, id(&b));
        // Next: B's Disconnect.
        ea.read_hello().await
    };
    let cfg = eth_snap();
    let (forged, result) = within(async { tokio::join!(forged, eb.exchange_hello(&cfg)) }).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::HelloIdMismatch), "{err:?}");
    assert_eq!(
        err.disconnect_reason(),
        Some(DisconnectReason::UnexpectedIdentity)
    );
    assert!(matches!(
        forged,
        Err(Error::Disconnected(Some(
            DisconnectReason::UnexpectedIdentity
        )))
    ));
}

#[tokio::test]
async fn no_shared_capability_is_useless_peer() {
    let only_eth = SessionConfig::new("a").with_capability(Capability::new("eth", 68, 17));
    let only_snap = SessionConfig::new("b").with_capability(Capability::new("snap", 1, 8));
    let (a, b) = session_pair(&only_eth, &only_snap).await;
    for result in [a, b] {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoSharedCapabilities
                    | Error::Disconnected(Some(DisconnectReason::UselessPeer))
            ),
            "{err:?}"
        );
    }
    // Same name, no common version.
    let eth67 = SessionConfig::new("b").with_capability(Capability::new("eth", 67, 17));
    let (a, _b) = session_pair(&only_eth, &eth67).await;
    assert!(a.is_err());
}

#[tokio::test]
async fn disconnect_before_hello() {
    let (a, b) = (key(), key());
    let (ea, eb) = ecies_pair(&a, &b).await;
    let cfg = eth_snap();
    let (result, sent) = within(async {
        tokio::join!(
            ea.exchange_hello(&cfg),
            eb.disconnect(DisconnectReason::AlreadyConnected)
        )
    })
    .await;
    sent.unwrap();
    assert!(matches!(
        result,
        Err(Error::Disconnected(Some(
            DisconnectReason::AlreadyConnected
        )))
    ));
}

#[tokio::test]
async fn connecting_to_self_is_refused() {
    let a = key();
    let (ea, eb) = ecies_pair(&a, &a).await;
    let cfg = eth_snap();
    let (x, y) =
        within(async { tokio::join!(ea.exchange_hello(&cfg), eb.exchange_hello(&cfg)) }).await;
    assert!(matches!(x, Err(Error::ConnectedToSelf)));
    assert!(matches!(y, Err(Error::ConnectedToSelf)));
}

#[tokio::test]
async fn message_before_hello_is_breach() {
    let (a, b) = (key(), key());
    let (mut ea, eb) = ecies_pair(&a, &b).await;
    ea.write
        .send(&mut ea.io, PING_ID, &EMPTY_LIST_PAYLOAD, false)
        .await
        .unwrap();
    let err = within(eb.exchange_hello(&eth_snap())).await.unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedMessage { id: PING_ID }),
        "{err:?}"
    );
    // The peer hears why.
    let _ours = within(ea.read_hello()).await.unwrap();
    assert!(matches!(
        within(ea.read_hello()).await,
        Err(Error::Disconnected(Some(
            DisconnectReason::BreachOfProtocol
        )))
    ));
}

#[tokio::test]
async fn snappy_bomb_is_refused_before_allocating() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    // An eth message whose Snappy header claims 1 GiB.
    send_raw(&mut wa, 0x10, &[0x80, 0x80, 0x80, 0x80, 0x04, 0x00, 0x01]).await;
    let err = within(rb.recv()).await.unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { size, .. } if size == 1 << 30),
        "{err:?}"
    );
    assert_eq!(
        err.disconnect_reason(),
        Some(DisconnectReason::BreachOfProtocol)
    );
}

#[tokio::test]
async fn out_of_range_ids_and_second_hello() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    send_raw(&mut wa, 0x10 + 17 + 8, b"").await;
    assert!(matches!(
        within(rb.recv()).await,
        Err(Error::UnknownMessageId(0x29))
    ));

    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    send_raw(&mut wa, HELLO_ID, b"").await;
    assert!(matches!(
        within(rb.recv()).await,
        Err(Error::UnexpectedMessage { id: 0 })
    ));
}

#[tokio::test]
async fn payload_limits() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (_rb, _wb) = b.split();
    let too_big = vec![0u8; MAX_FRAME_SIZE + 1];
    assert!(matches!(
        wa.send_capability(0, 0, &too_big).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    // The writer is still usable afterwards.
    within(wa.ping()).await.unwrap();

    // A reader with a small message cap refuses a bigger (compressible) message.
    let small = eth_snap().with_max_message_size(1000);
    let (a, b) = session_pair(&small, &eth_snap()).await;
    let (mut ra, _wa) = a.unwrap().split();
    let (_rb, mut wb) = b.unwrap().split();
    within(wb.send_capability(0, 1, &[0u8; 1001]))
        .await
        .unwrap();
    assert!(matches!(
        within(ra.recv()).await,
        Err(Error::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    ));

    // A reader with a small frame cap refuses a bigger frame from its header.
    let small = eth_snap().with_max_frame_size(64);
    let (a, b) = session_pair(&small, &eth_snap()).await;
    let (mut ra, _wa) = a.unwrap().split();
    let (_rb, mut wb) = b.unwrap().split();
    let incompressible: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    within(wb.send_capability(0, 1, &incompressible))
        .await
        .unwrap();
    assert!(matches!(
        within(ra.recv()).await,
        Err(Error::FrameTooLarge { max: 64, .. })
    ));
}

/// A `p2p` v4 peer: no compression in either direction.
#[tokio::test]
async fn p2p_v4_peer_is_uncompressed() {
    let (a, b) = (key(), key());
    let (mut ea, eb) = ecies_pair(&a, &b).await;
    let old = async {
        let mut hello = eth_snap().hello(id(&a));
        hello.protocol_version = 4;
        let mut payload = Vec::new();
        hello.encode(&mut payload);
        ea.write
            .send(&mut ea.io, HELLO_ID, &payload, false)
            .await
            .unwrap();
        ea.read_hello().await.unwrap();
        ea
    };
    let cfg = eth_snap();
    let (mut ea, b) = within(async { tokio::join!(old, eb.exchange_hello(&cfg)) }).await;
    let b = b.unwrap();
    assert!(!b.is_compressed());
    let (mut rb, mut wb) = b.split();
    within(wb.send_capability(0, 2, b"plain")).await.unwrap();
    let frame = within(ea.read.next_frame(&mut ea.io)).await.unwrap();
    assert_eq!(&frame[..], b"\x12plain");
    // And its uncompressed messages are read as such.
    ea.write
        .send(&mut ea.io, 0x11, b"raw", false)
        .await
        .unwrap();
    assert_eq!(
        within(rb.recv()).await.unwrap(),
        Incoming::Capability {
            index: 0,
            id: 1,
            payload: Bytes::from_static(b"raw")
        }
    );
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split_with(TcpStream::into_split);
    let (mut rb, _wb) = b.split();
    wa.write.encode(0x10, &[1u8; 5000], true).unwrap();
    let frame = wa.write.buf.split();
    // Half a frame, then a recv that times out, then the rest.
    wa.io.write_all(&frame[..frame.len() / 2]).await.unwrap();
    assert!(timeout(Duration::from_millis(100), rb.recv())
        .await
        .is_err());
    wa.io.write_all(&frame[frame.len() / 2..]).await.unwrap();
    assert_eq!(
        within(rb.recv()).await.unwrap(),
        Incoming::Capability {
            index: 0,
            id: 0,
            payload: Bytes::from(vec![1u8; 5000])
        }
    );
}

#[tokio::test]
async fn large_frames_release_buffers() {
    let (a, b) = established_pair().await;
    let (_ra, mut wa) = a.split();
    let (mut rb, _wb) = b.split();
    let big: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    within(wa.send_capability(0, 0, &big)).await.unwrap();
    assert!(wa.write.buf.capacity() <= LARGE_BUFFER);
    let msg = within(rb.recv()).await.unwrap();
    assert!(matches!(msg, Incoming::Capability { ref payload, .. } if payload.len() == big.len()));
    within(wa.ping()).await.unwrap();
    assert_eq!(within(rb.recv()).await.unwrap(), Incoming::Ping);
    assert!(
        rb.read.buf.capacity() <= LARGE_BUFFER,
        "{}",
        rb.read.buf.capacity()
    );
}

#[test]
fn futures_stay_small() {
    // Handshake futures get moved into tasks: keep the big cipher state boxed.
    assert!(std::mem::size_of::<EciesStream<TcpStream>>() < 256);
    assert!(std::mem::size_of::<Established<TcpStream>>() < 512);
}

/// Rough loopback throughput (`cargo test -p devmux-rlpx --release -- --ignored
/// --nocapture throughput`); not a benchmark, a smoke check for regressions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    for (size, count) in [
        (1024usize, 200_000usize),
        (64 * 1024, 4_000),
        (1 << 20, 300),
    ] {
        let (a, b) = established_pair().await;
        let (_ra, mut wa) = a.split_with(TcpStream::into_split);
        let (mut rb, _wb) = b.split_with(TcpStream::into_split);
        // Incompressible payloads: the worst case for Snappy.
        let payload: Vec<u8> = (0..size as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let start = std::time::Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..count {
                wa.feed_capability(0, 1, &payload).await.unwrap();
            }
            wa.flush().await.unwrap();
            wa
        });
        for _ in 0..count {
            rb.recv().await.unwrap();
        }
        let _wa = sender.await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{size:>8} B x {count:>6}: {:>8.1} MB/s, {:>9.0} msg/s",
            (size * count) as f64 / secs / 1e6,
            count as f64 / secs
        );
    }
}
