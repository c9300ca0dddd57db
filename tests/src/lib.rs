//! Helpers for devmux's end-to-end tests (the tests themselves are in `it/`).
//!
//! Every node listens on a loopback address of its own (127.X.Y.1), port 0; nothing
//! here touches an address outside 127.0.0.0/8.

use std::time::Duration;

use devmux_network::{
    MessageStream, Network, NetworkConfig, NetworkEvent, NodeKey, PeerCtx, Registrar, ServerKind,
};
use tokio::sync::broadcast;

pub mod geth;
pub mod relay;

/// Installs a test log subscriber once (`RUST_LOG` controls it).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A loopback address no other node of this test process has: `127.X.Y.1`, each in
/// its own /24, so that per-address and per-subnet rules see distinct hosts, as on
/// the internet (every address of 127.0.0.0/8 reaches this machine).
pub fn next_loopback() -> std::net::IpAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (254 * 254);
    std::net::IpAddr::from([127, 1 + (n / 254) as u8, 1 + (n % 254) as u8, 1])
}

/// Config for a test node on its own loopback address ([`next_loopback`]), port 0,
/// with short deadlines.
pub fn test_config(use_p2p_server: bool) -> NetworkConfig {
    let mut config = NetworkConfig::default()
        .with_p2p_server(use_p2p_server)
        .with_listen_addr((next_loopback(), 0).into());
    config.transport.handshake_timeout = Duration::from_secs(2);
    config.negotiation_timeout = Duration::from_secs(2);
    // Keepalive and idle closing are tested on purpose where they matter; elsewhere a
    // loaded CI machine must not drop a quiet test connection.
    config.ping_interval = Duration::from_secs(120);
    config.idle_timeout = Duration::from_secs(300);
    config
}

/// Config for a test node running both servers (a dual node), each on a free port.
pub fn dual_config() -> NetworkConfig {
    let mut config = test_config(false).with_servers(&[ServerKind::Rlpx, ServerKind::P2p]);
    config.p2p_listen_addr = Some((config.listen_addr.ip(), 0).into());
    config
}

/// The RLPx keypair of `key`, for tests that speak RLPx by hand.
pub fn rlpx_secret(key: &NodeKey) -> devmux_rlpx::secp256k1::Keypair {
    use devmux_rlpx::secp256k1::{Keypair, SECP256K1};
    match Keypair::from_seckey_slice(SECP256K1, &key.secret_bytes()) {
        Ok(pair) => pair,
        Err(e) => panic!("a node key is a valid secp256k1 secret: {e}"),
    }
}

/// An RLPx session to `enode` from the loopback address `from`, with a fresh key and
/// `capability`; if `fault`, it then sends a message id nobody shares and reads until
/// the node closes the session. Returns whether Hello was exchanged (within 10 s).
pub async fn rlpx_session_from(
    enode: &str,
    from: std::net::IpAddr,
    capability: devmux_rlpx::Capability,
    fault: bool,
) -> bool {
    let Ok(enode) = enode.parse::<devmux_identity::Enode>() else {
        return false;
    };
    let secret = rlpx_secret(&NodeKey::generate());
    let attempt = async {
        let tcp = devmux_transport::connect_from(Some(from), enode.addr).await?;
        let ecies = devmux_rlpx::EciesStream::connect(tcp, &secret, &enode.id.0).await?;
        let config = devmux_rlpx::SessionConfig::new("test-client").with_capability(capability);
        let session = ecies.exchange_hello(&config).await?;
        if fault {
            let (mut r, mut w) = session.split();
            w.send_raw(0x7f, &[0xc0]).await?;
            // Until the node's Disconnect (BreachOfProtocol) and close.
            while r.recv().await.is_ok() {}
        }
        Ok::<_, devmux_rlpx::Error>(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Ok(()))
    )
}

/// The echo handler: every message back unchanged.
pub async fn echo(_peer: PeerCtx, mut stream: MessageStream) -> Result<(), devmux_network::Error> {
    while let Some(msg) = stream.next().await {
        stream.send(msg?).await?;
    }
    Ok(())
}

/// Starts a node with `registrar`.
pub async fn start(use_p2p_server: bool, registrar: Registrar) -> Network {
    start_with(test_config(use_p2p_server), registrar).await
}

/// Starts a node with `config` and `registrar`.
pub async fn start_with(config: NetworkConfig, registrar: Registrar) -> Network {
    init_tracing();
    match Network::start(config, NodeKey::generate(), registrar).await {
        Ok(network) => network,
        Err(e) => panic!("node failed to start: {e}"),
    }
}

/// Waits (at most `timeout`) for an event that `pick` accepts.
pub async fn wait_for<T>(
    events: &mut broadcast::Receiver<NetworkEvent>,
    timeout: Duration,
    mut pick: impl FnMut(&NetworkEvent) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(t) = pick(&event) {
                        return Some(t);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// multistream-select by hand, for hostile dialers.
pub mod mss {
    /// One multistream-select message: `uvarint(len) ‖ payload`.
    pub fn frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = unsigned_varint::encode::usize_buffer();
        let mut out = unsigned_varint::encode::usize(payload.len(), &mut buf).to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// The `na` messages among the whole frames in `replies`.
    pub fn count_na(mut replies: &[u8]) -> usize {
        let mut na = 0;
        while let Ok((len, rest)) = unsigned_varint::decode::usize(replies) {
            if rest.len() < len {
                break;
            }
            na += usize::from(&rest[..len] == b"na\n");
            replies = &rest[len..];
        }
        na
    }
}

/// Hand-built eth payloads that no encoder would make: what hostile peers send in the
/// tests and in the `amplification_rss` benchmark.
pub mod hostile {
    use devmux_eth::alloy_rlp::{self, Header as RlpHeader};
    use devmux_eth::Header;

    /// A legacy transaction of ten bytes, `[0, 0, 0, "", 0, "", 0, 0, 0]`: the cheapest
    /// item a peer can put in a body.
    pub const TINY_TX: [u8; 10] = [0xc9, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80];

    /// An RLP list whose payload is `parts`, each already encoded.
    pub fn rlp_list(parts: &[&[u8]]) -> Vec<u8> {
        let len = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(len + 9);
        RlpHeader {
            list: true,
            payload_length: len,
        }
        .encode(&mut out);
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// Issue 14's `NewBlock` payload: `header` over a body of `count` [`TINY_TX`]s (900 000
    /// make 9 MB), total difficulty 256.
    pub fn amplifying_new_block(header: &Header, count: usize) -> Vec<u8> {
        let header = alloy_rlp::encode(header);
        let txs = rlp_list(&[&TINY_TX.repeat(count)]);
        let block = rlp_list(&[&header, &txs, &[0xc0]]);
        rlp_list(&[&block, &[0x82, 0x01, 0x00]])
    }
}
