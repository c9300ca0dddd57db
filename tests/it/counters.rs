//! What `Network::counters` counts, on both servers: messages and bytes per protocol
//! and code each way, dials by outcome, and failed handshakes by reason.

use std::time::Duration;

use devmux_network::{Direction, Message, MessageStream, PeerCtx, Registrar, SessionProtocol};
use devmux_tests::{eventually, start};
use tokio::io::AsyncWriteExt;

const SECS: Duration = Duration::from_secs(30);
const CHAT: &str = "/chat/1/1.0.0";

/// The dialer's end sends three messages of code 1 and one of code 2; the listener's
/// end answers each with code 3.
fn chat() -> Registrar {
    let mut r = Registrar::new();
    r.session(
        [SessionProtocol::new(CHAT, 4).unwrap()],
        |peer: PeerCtx, mut stream: MessageStream| async move {
            if peer.direction == Direction::Outbound {
                for (code, len) in [(1, 10), (1, 20), (1, 30), (2, 1000)] {
                    stream.send(Message::new(code, vec![0u8; len])).await?;
                }
            }
            while let Some(m) = stream.next().await {
                if m?.code != 3 {
                    stream.send(Message::new(3, vec![7u8; 5])).await?;
                }
            }
            Ok::<_, devmux_network::Error>(())
        },
    )
    .unwrap();
    r
}

async fn counts(use_p2p_server: bool) {
    let listener = start(use_p2p_server, chat()).await;
    let dialer = start(use_p2p_server, chat()).await;
    dialer.dial(&listener.local_addr()).await.unwrap();
    let sent = |net: &devmux_network::Network, direction: Direction, code: u8| {
        net.counters()
            .messages
            .iter()
            .find(|m| m.protocol == CHAT && m.direction == direction && m.code == code)
            .map_or(0, |m| m.messages)
    };
    assert!(
        eventually(SECS, || sent(&dialer, Direction::Inbound, 3) == 4).await,
        "{}: {:?}",
        dialer.server_kind(),
        dialer.counters()
    );
    assert_eq!(sent(&dialer, Direction::Outbound, 1), 3);
    assert_eq!(sent(&dialer, Direction::Outbound, 2), 1);
    assert_eq!(sent(&listener, Direction::Inbound, 1), 3);
    assert_eq!(sent(&listener, Direction::Outbound, 3), 4);
    let bytes = |net: &devmux_network::Network, direction: Direction| {
        net.counters()
            .bytes
            .iter()
            .find(|b| b.protocol == CHAT && b.direction == direction)
            .map_or(0, |b| b.bytes)
    };
    // Code and payload: 11 + 21 + 31 + 1001 out, 4 × 6 back.
    assert_eq!(bytes(&dialer, Direction::Outbound), 1064);
    assert_eq!(bytes(&dialer, Direction::Inbound), 24);
    assert_eq!(bytes(&listener, Direction::Inbound), 1064);

    // Dials: one connected; one to a node that has gone (nothing listens there).
    let gone = start(use_p2p_server, Registrar::new()).await;
    let nowhere = gone.local_addr();
    gone.shutdown().await;
    assert!(dialer.dial(&nowhere).await.is_err());
    let dials = dialer.counters().dials;
    let outcome = |o: &str| {
        dials
            .iter()
            .filter(|d| d.outcome == o)
            .map(|d| d.count)
            .sum::<u64>()
    };
    assert_eq!(outcome("connected"), 1, "{dials:?}");
    assert_eq!(outcome("io"), 1, "{dials:?}");

    // A failed inbound handshake: bytes that are no handshake.
    let mut junk = tokio::net::TcpStream::connect(listener.listen_addr())
        .await
        .unwrap();
    junk.write_all(&[0xffu8; 400]).await.unwrap();
    assert!(
        eventually(SECS, || listener
            .counters()
            .handshake_failures
            .iter()
            .any(|f| f.direction == Direction::Inbound && f.count >= 1))
        .await,
        "{}: {:?}",
        listener.server_kind(),
        listener.counters().handshake_failures
    );
    eprintln!(
        "{}: {:?}",
        listener.server_kind(),
        listener.counters().handshake_failures
    );
    dialer.shutdown().await;
    listener.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_on_rlpx() {
    counts(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_on_the_stream_stack() {
    counts(true).await;
}
