//! The `MessageStream` contract, the same on both servers (issue 15): a cancel-safe
//! `next()`, the protocol's message count in both directions, framing faults that cost
//! the peer without the handler doing anything, a `close()` that ends the peer's
//! stream, and what RLPx cannot carry refused when the network starts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devmux_network::{Direction, Message, MessageStream, PeerCtx, Registrar, SessionProtocol};
use devmux_tests::start;
use tokio::sync::mpsc;

const SECS: Duration = Duration::from_secs(60);
/// Messages the sender sends; their sizes cycle through [`SIZES`].
const MESSAGES: usize = 48;
/// From empty to 1.2 MB: the large ones take many reads, so the timer often wins
/// while one is half-read.
const SIZES: [usize; 6] = [0, 1, 100, 70_000, 300_000, 1_200_000];
const BLOB: &str = "/blob/1/1.0.0";
const CODES: u8 = 4;

/// Message `i`: a code and a payload that no other message has, so that a lost,
/// reordered or corrupted byte shows.
fn blob(i: usize) -> Message {
    let payload: Vec<u8> = (0..SIZES[i % SIZES.len()])
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
        .collect();
    Message::new((i % CODES as usize) as u8, payload)
}

/// What the receiving side saw: messages received intact, and how often the timer won
/// the race against `next()` (each a `next()` future dropped mid-wait).
#[derive(Debug, Default)]
struct Seen {
    intact: usize,
    timer_won: usize,
    error: Option<String>,
}

/// The listener's end sends [`MESSAGES`] blobs; the dialer's end reads them in a
/// `select!` against a 100 µs timer, so that most reads are cancelled part-way.
fn registrar(report: mpsc::Sender<Seen>) -> Registrar {
    let mut r = Registrar::new();
    r.session(
        [SessionProtocol::new(BLOB, CODES).unwrap()],
        move |peer: PeerCtx, mut stream: MessageStream| {
            let report = report.clone();
            async move {
                if peer.direction == Direction::Inbound {
                    for i in 0..MESSAGES {
                        stream.send(blob(i)).await?;
                    }
                    // Keep the session until the reader is done.
                    while let Some(m) = stream.next().await {
                        m?;
                    }
                    return Ok(());
                }
                let mut seen = Seen::default();
                while seen.intact < MESSAGES {
                    tokio::select! {
                        next = stream.next() => match next {
                            Some(Ok(m)) if m == blob(seen.intact) => seen.intact += 1,
                            Some(Ok(m)) => {
                                seen.error = Some(format!(
                                    "message {} arrived as code {} with {} bytes",
                                    seen.intact, m.code, m.payload.len()
                                ));
                                break;
                            }
                            Some(Err(e)) => {
                                seen.error = Some(format!("message {}: {e}", seen.intact));
                                break;
                            }
                            None => {
                                seen.error = Some(format!("closed after {}", seen.intact));
                                break;
                            }
                        },
                        _ = tokio::time::sleep(Duration::from_micros(100)) => seen.timer_won += 1,
                    }
                }
                let _ = report.send(seen).await;
                Ok::<_, devmux_network::Error>(())
            }
        },
    )
    .unwrap();
    r
}

/// Two busy tasks on the runtime beside the transfer: the load that makes the timer win
/// at awkward moments.
fn load() -> (Arc<Mutex<bool>>, Vec<tokio::task::JoinHandle<()>>) {
    let stop = Arc::new(Mutex::new(false));
    let tasks = (0..2)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !*stop.lock().unwrap() {
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_micros(500) {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    (stop, tasks)
}

async fn next_is_cancel_safe(use_p2p_server: bool) {
    let (tx, mut rx) = mpsc::channel(4);
    let sender = start(use_p2p_server, registrar(tx.clone())).await;
    let receiver = start(use_p2p_server, registrar(tx)).await;
    let (stop, hogs) = load();
    receiver.dial(&sender.local_addr()).await.unwrap();
    let seen = tokio::time::timeout(SECS, rx.recv())
        .await
        .expect("the reader finished")
        .expect("a report");
    *stop.lock().unwrap() = true;
    for h in hogs {
        h.await.unwrap();
    }
    eprintln!("{}: {seen:?}", receiver.server_kind());
    assert_eq!(seen.error, None, "{}", receiver.server_kind());
    assert_eq!(seen.intact, MESSAGES);
    assert!(
        seen.timer_won > 0,
        "the timer never won: the test did not cancel any next()"
    );
    sender.shutdown().await;
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_is_cancel_safe_on_rlpx() {
    next_is_cancel_safe(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_is_cancel_safe_on_the_stream_stack() {
    next_is_cancel_safe(true).await;
}

/// A session protocol of `codes` message codes whose dialer side sends `send` (if any),
/// and which reports what sending a code outside the range gave.
fn counted(codes: u8, send: Option<u8>, report: mpsc::Sender<String>) -> Registrar {
    let mut r = Registrar::new();
    r.session(
        [SessionProtocol::new(BLOB, codes).unwrap()],
        move |peer: PeerCtx, mut stream: MessageStream| {
            let report = report.clone();
            async move {
                if peer.direction == Direction::Outbound {
                    // Our own count holds on the way out, on either server.
                    let refused = stream.send(Message::new(codes, vec![1])).await;
                    let _ = report.send(format!("{refused:?}")).await;
                    if let Some(code) = send {
                        stream.send(Message::new(code, vec![2])).await?;
                    }
                }
                while let Some(m) = stream.next().await {
                    m?;
                }
                Ok::<_, devmux_network::Error>(())
            }
        },
    )
    .unwrap();
    r
}

/// The message count holds both ways on both servers: a handler cannot send a code
/// outside its protocol's count (an error, nothing sent), and a peer that does (here
/// a node whose registration declares 16 codes where ours declares 4) is penalised by
/// the network, a major penalty, without the handler doing anything.
async fn codes_outside_the_count_are_refused_both_ways(use_p2p_server: bool) {
    let (tx, mut rx) = mpsc::channel(4);
    let strict = start(use_p2p_server, counted(CODES, None, tx.clone())).await;
    let loose = start(use_p2p_server, counted(16, Some(9), tx)).await;
    let mut events = strict.events();
    loose.dial(&strict.local_addr()).await.unwrap();
    let refused = tokio::time::timeout(SECS, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(refused.contains("CodeOutOfRange"), "{refused}");
    let (penalty, reason) = devmux_tests::wait_for(&mut events, SECS, |e| match e {
        devmux_network::NetworkEvent::PeerPenalized {
            peer,
            penalty,
            reason,
        } if *peer == loose.local_peer_id() => Some((*penalty, reason.clone())),
        _ => None,
    })
    .await
    .expect("the peer that sent code 9 was penalised");
    eprintln!("{}: {penalty:?} {reason}", strict.server_kind());
    assert_eq!(penalty, devmux_network::Penalty::Major);
    strict.shutdown().await;
    loose.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_outside_the_count_are_refused_both_ways_on_rlpx() {
    codes_outside_the_count_are_refused_both_ways(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_outside_the_count_are_refused_both_ways_on_the_stream_stack() {
    codes_outside_the_count_are_refused_both_ways(true).await;
}

/// What the reading side of [`closing`] saw: the messages before the end, whether the
/// end came, and what sending after our own close gave the closing side.
#[derive(Debug, Default)]
struct Ended {
    before_end: Vec<u8>,
    ended: bool,
    send_after_close: String,
}

/// The listener's end sends codes 0, 1, 2 and closes; the dialer's end reads until the
/// end of the stream.
fn closing(report: mpsc::Sender<Ended>) -> Registrar {
    let mut r = Registrar::new();
    r.session(
        [SessionProtocol::new(BLOB, CODES).unwrap()],
        move |peer: PeerCtx, mut stream: MessageStream| {
            let report = report.clone();
            async move {
                let mut ended = Ended::default();
                if peer.direction == Direction::Inbound {
                    for code in 0..3 {
                        stream.send(Message::new(code, vec![code; 1000])).await?;
                    }
                    stream.close().await?;
                    ended.send_after_close =
                        format!("{:?}", stream.send(Message::new(0, vec![])).await);
                    let _ = report.send(ended).await;
                    // Keep reading, as a handler may after closing its side.
                    while let Some(m) = stream.next().await {
                        m?;
                    }
                    return Ok(());
                }
                loop {
                    match tokio::time::timeout(SECS, stream.next()).await {
                        Ok(Some(Ok(m))) => ended.before_end.push(m.code),
                        Ok(None) => {
                            ended.ended = true;
                            break;
                        }
                        Ok(Some(Err(_))) | Err(_) => break,
                    }
                }
                let _ = report.send(ended).await;
                Ok::<_, devmux_network::Error>(())
            }
        },
    )
    .unwrap();
    r
}

/// `close()` means the same on both servers: the peer reads every message sent before
/// it, then the end of the stream; a send after it is `StreamClosed`. (On RLPx, where
/// a capability cannot end alone, the end is the connection's, `DisconnectRequested`,
/// since the session is its only capability.)
async fn close_ends_the_peers_stream(use_p2p_server: bool) {
    let (tx, mut rx) = mpsc::channel(4);
    let closer = start(use_p2p_server, closing(tx.clone())).await;
    let reader = start(use_p2p_server, closing(tx)).await;
    reader.dial(&closer.local_addr()).await.unwrap();
    let mut reports = Vec::new();
    for _ in 0..2 {
        reports.push(
            tokio::time::timeout(SECS, rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let (closing_side, reading_side): (Vec<_>, Vec<_>) = reports
        .into_iter()
        .partition(|e| !e.send_after_close.is_empty());
    let kind = closer.server_kind();
    assert_eq!(closing_side.len(), 1, "{kind}");
    assert!(
        closing_side[0].send_after_close.contains("StreamClosed"),
        "{kind}: {}",
        closing_side[0].send_after_close
    );
    let read = &reading_side[0];
    assert_eq!(read.before_end, vec![0, 1, 2], "{kind}");
    assert!(read.ended, "{kind}: the reader never saw the end");
    closer.shutdown().await;
    reader.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_peers_stream_on_rlpx() {
    close_ends_the_peers_stream(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_peers_stream_on_the_stream_stack() {
    close_ends_the_peers_stream(true).await;
}

/// What RLPx cannot carry is refused when the network starts, naming the protocol,
/// instead of vanishing from Hello; the stream stack serves the same registrars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlpx_refuses_at_start_what_it_cannot_serve() {
    let not_a_capability = || {
        let mut r = Registrar::new();
        r.session(
            [SessionProtocol::new("/my-proto/1.0.0", 2).unwrap()],
            devmux_tests::echo,
        )
        .unwrap();
        r
    };
    let request = || {
        let mut r = Registrar::new();
        r.request("/demo/echo/1.0.0", devmux_tests::echo).unwrap();
        r
    };
    for (registrar, id, why) in [
        (
            not_a_capability(),
            "/my-proto/1.0.0",
            "/<name>/<version>/1.0.0",
        ),
        (request(), "/demo/echo/1.0.0", "stream stack"),
    ] {
        let config = devmux_tests::test_config(false);
        let started =
            devmux_network::Network::start(config, devmux_network::NodeKey::generate(), registrar)
                .await;
        let Err(err) = started else {
            panic!("{id} was not refused on RLPx");
        };
        let text = err.to_string();
        assert!(
            matches!(err, devmux_network::Error::Unservable { .. }),
            "{text}"
        );
        assert!(text.contains(id) && text.contains(why), "{text}");
    }
    for registrar in [not_a_capability(), request()] {
        start(true, registrar).await.shutdown().await;
    }
}
