//! Hostile dialers against the bounded listener negotiations of an inbound upgrade
//! (issue 16 item 4), on real sockets (127.0.0.1, port 0).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use devmux_identity::NodeKey;
use devmux_tests::mss::{count_na, frame};
use devmux_transport::{Config, Error, Listener, Upgrader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bogus proposals per burst: far more than any cap.
const BURST: usize = 5000;
/// Well under the handshake deadline (10 s by default).
const PROMPTLY: Duration = Duration::from_secs(3);

/// The hostile side of a burst: its socket was `closed` in time (since `started`), and
/// Everything the listener sends until it closes the socket; whether it closed
/// within [`PROMPTLY`].
async fn replies_until_closed(rd: &mut (impl tokio::io::AsyncRead + Unpin)) -> (bool, Vec<u8>) {
    let mut replies = Vec::new();
    let closed = tokio::time::timeout(PROMPTLY, async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => replies.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (closed.is_ok(), replies)
}

/// it got at most 64 `na` among its `replies`.
fn cut_off_promptly(what: &str, closed: bool, started: Instant, replies: &[u8]) {
    let took = started.elapsed();
    assert!(
        closed,
        "{what}: the connection was still open after {took:?}"
    );
    let na = count_na(replies);
    eprintln!("{what}: {na} na for {BURST} proposals, closed after {took:?}");
    // The listener wrote exactly 64 (it failed with `TooManyProposals { limit: 64 }`,
    // checked by the caller); fewer may arrive, as closing a socket with unread input
    // resets it and drops what our kernel had not sent yet.
    assert!(na <= 64, "{what}: {na} na");
}

/// The multistream header and `BURST` unknown protocols, in one pipelined burst.
fn bogus_burst() -> Vec<u8> {
    let mut out = frame(b"/multistream/1.0.0\n");
    for i in 0..BURST {
        out.extend(frame(format!("/bogus/{i}/1.0.0\n").as_bytes()));
    }
    out
}

async fn listener() -> (Listener, SocketAddr) {
    // The default caps and the default 10 s deadline: the close must come from the
    // cap, not the deadline.
    let server = Upgrader::new(NodeKey::generate(), Config::default()).unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), server)
        .await
        .unwrap();
    let addr = listener.local_addr();
    (listener, addr)
}

/// The next two upgrade results: the hostile one must have failed with the typed
/// error, the honest one must have succeeded.
async fn expect_one_cut_off_one_upgraded(listener: &mut Listener) {
    let (mut cut_off, mut upgraded) = (0, 0);
    for _ in 0..2 {
        match tokio::time::timeout(PROMPTLY, listener.accept())
            .await
            .expect("upgrade results in time")
            .expect("listener running")
        {
            Ok(_) => upgraded += 1,
            Err(Error::TooManyProposals { limit: 64 }) => cut_off += 1,
            Err(e) => panic!("unexpected upgrade error: {e}"),
        }
    }
    assert_eq!((cut_off, upgraded), (1, 1));
}

/// Security negotiation: a raw TCP client sends `/multistream/1.0.0` and 5000
/// bogus proposals at once. It gets at most 64 `na` before its socket is closed,
/// within seconds of a 10 s deadline, while an honest dialer connecting at the same
/// time upgrades.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_bogus_security_proposals_get_at_most_64_na() {
    let (mut listener, addr) = listener().await;
    let started = Instant::now();
    let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let burst = bogus_burst();
    // Written from its own task: the listener stops reading once it gives up, and the
    // write then fails (or stalls until the close) while we read.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&burst).await;
        wr
    });
    let honest = tokio::spawn(async move {
        let client = Upgrader::new(NodeKey::generate(), Config::default()).unwrap();
        client.dial(addr, None).await
    });

    let (closed, replies) = replies_until_closed(&mut rd).await;
    cut_off_promptly("security negotiation", closed, started, &replies);

    // Kept open until the listener reported it: dropped at once, our side could close
    // before the listener's lazy confirmation is written.
    let conn = honest.await.unwrap().expect("the honest dialer upgrades");
    expect_one_cut_off_one_upgraded(&mut listener).await;
    drop((writer, conn));
}

/// Muxer negotiation, inside Noise: the dialer completes the Noise handshake and
/// then proposes 5000 bogus muxers at once. Same bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_bogus_muxer_proposals_get_at_most_64_na() {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};

    let (mut listener, addr) = listener().await;
    let client = Upgrader::new(NodeKey::generate(), Config::default()).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (secure, _) = client.secure_outbound(tcp, None).await.unwrap();
    let started = Instant::now();
    let (rd, mut wr) = secure.split();
    let mut rd = tokio_util::compat::FuturesAsyncReadCompatExt::compat(rd);
    let burst = bogus_burst();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&burst).await;
        let _ = wr.flush().await;
        wr
    });
    let honest = tokio::spawn(async move { client.dial(addr, None).await });

    let (closed, replies) = replies_until_closed(&mut rd).await;
    cut_off_promptly("muxer negotiation", closed, started, &replies);

    let conn = honest.await.unwrap().expect("the honest dialer upgrades");
    expect_one_cut_off_one_upgraded(&mut listener).await;
    drop((writer, conn));
}

/// Lock-step: a dialer that waits for each answer is cut off at the cap too, and a
/// lower configured cap is what applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_step_proposals_stop_at_the_configured_cap() {
    use multistream_select::{dialer_select_proto, Version};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    let config = Config::default().with_rejection_limits(5, 256);
    let server = Upgrader::new(NodeKey::generate(), config).unwrap();
    let mut listener = Listener::bind("127.0.0.1:0".parse().unwrap(), server)
        .await
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    // V1: one proposal at a time, each after the previous `na`.
    let bogus: Vec<String> = (0..20).map(|i| format!("/bogus/{i}")).collect();
    let dialed = dialer_select_proto(tcp.compat(), bogus, Version::V1).await;
    assert!(dialed.is_err());
    match tokio::time::timeout(PROMPTLY, listener.accept()).await {
        Ok(Some(Err(Error::TooManyProposals { limit: 5 }))) => {}
        other => panic!("expected TooManyProposals {{ limit: 5 }}, got {other:?}"),
    }
}
