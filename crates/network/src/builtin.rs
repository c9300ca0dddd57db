//! Protocols built into the P2P server: libp2p ping and identify in their libp2p
//! formats, and devmux goodbye (WIRE.md §1).

use std::time::Duration;

use bytes::BytesMut;
use devmux_identity::{Multiaddr, PeerId, PublicKey};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message as _;
// tokio's clock: std's in production, the simulated one in a simulation.
use tokio::time::Instant;

use crate::message::{decode_frame, encode_frame, Message};
use crate::{DisconnectReason, Error};

/// libp2p ping (`ping/ping.md`): 32 random bytes, echoed back.
pub const PING_PROTOCOL: &str = "/ipfs/ping/1.0.0";
/// libp2p identify (`identify/README.md`).
pub const IDENTIFY_PROTOCOL: &str = "/ipfs/id/1.0.0";
/// devmux goodbye: one message with a disconnect reason before closing.
pub const GOODBYE_PROTOCOL: &str = "/devmux/goodbye/1.0.0";
/// Ids the registrar may not take.
pub(crate) const BUILTIN_IDS: [&str; 3] = [PING_PROTOCOL, IDENTIFY_PROTOCOL, GOODBYE_PROTOCOL];

/// Size of a ping payload.
const PING_SIZE: usize = 32;
/// The largest identify message read (rust-libp2p caps it at 4096 bytes too).
const MAX_IDENTIFY_SIZE: usize = 4096;
/// Goodbye message code (WIRE.md §1).
const GOODBYE_CODE: u8 = 0x01;
/// The goodbye message holds one small RLP list.
const MAX_GOODBYE_SIZE: usize = 64;
/// identify `protocolVersion` we announce.
pub(crate) const PROTOCOL_VERSION: &str = "/devmux/1.0.0";

/// Answers pings on one stream until the peer closes it.
pub(crate) async fn serve_ping<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> Result<(), Error> {
    let mut buf = [0u8; PING_SIZE];
    loop {
        match io.read_exact(&mut buf).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        io.write_all(&buf).await?;
        io.flush().await?;
    }
}

/// Sends one ping on `io` and measures the round trip; the stream stays open for the
/// next (libp2p ping repeats on one stream).
pub(crate) async fn ping<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> Result<Duration, Error> {
    let payload: [u8; PING_SIZE] = rand::random();
    let start = Instant::now();
    io.write_all(&payload).await?;
    io.flush().await?;
    let mut echo = [0u8; PING_SIZE];
    io.read_exact(&mut echo).await?;
    let rtt = start.elapsed();
    if echo != payload {
        return Err(Error::PingMismatch);
    }
    Ok(rtt)
}

/// identify's protobuf message (`identify/pb/structs.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct IdentifyProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    listen_addrs: Vec<Vec<u8>>,
    #[prost(string, repeated, tag = "3")]
    protocols: Vec<String>,
    #[prost(bytes = "vec", optional, tag = "4")]
    observed_addr: Option<Vec<u8>>,
    #[prost(string, optional, tag = "5")]
    protocol_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    agent_version: Option<String>,
}

/// What a peer says about itself through identify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifyInfo {
    /// Its public key (checked against the connection's PeerId).
    pub public_key: PublicKey,
    /// Its protocol family and version, e.g. `/devmux/1.0.0` or `/ipfs/0.1.0`.
    pub protocol_version: String,
    /// Its implementation, e.g. `devmux/0.1.0` or `rust-libp2p/…`.
    pub agent_version: String,
    /// Addresses it listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Our address as the peer sees it.
    pub observed_addr: Option<Multiaddr>,
    /// The protocol ids it supports.
    pub protocols: Vec<String>,
}

/// Sends our identify message and closes the stream.
pub(crate) async fn serve_identify<S: AsyncWrite + Unpin>(
    mut io: S,
    info: &IdentifyInfo,
) -> Result<(), Error> {
    let msg = IdentifyProto {
        public_key: Some(info.public_key.encode_protobuf()),
        listen_addrs: info.listen_addrs.iter().map(|a| a.to_vec()).collect(),
        protocols: info.protocols.clone(),
        observed_addr: info.observed_addr.as_ref().map(|a| a.to_vec()),
        protocol_version: Some(info.protocol_version.clone()),
        agent_version: Some(info.agent_version.clone()),
    };
    let body = msg.encode_to_vec();
    let mut len = unsigned_varint::encode::usize_buffer();
    let mut out = unsigned_varint::encode::usize(body.len(), &mut len).to_vec();
    out.extend_from_slice(&body);
    io.write_all(&out).await?;
    io.close().await?;
    Ok(())
}

/// Reads a peer's identify message and checks its key against `peer`.
pub(crate) async fn read_identify<S: AsyncRead + Unpin>(
    mut io: S,
    peer: &PeerId,
) -> Result<IdentifyInfo, Error> {
    let mut buf = Vec::new();
    (&mut io)
        .take(MAX_IDENTIFY_SIZE as u64 + 10)
        .read_to_end(&mut buf)
        .await?;
    let (len, rest) = unsigned_varint::decode::usize(&buf)
        .map_err(|e| Error::MalformedFrame(format!("identify length: {e}")))?;
    if len > MAX_IDENTIFY_SIZE || rest.len() < len {
        return Err(Error::MalformedFrame(
            "identify message truncated or too large".into(),
        ));
    }
    let msg = IdentifyProto::decode(&rest[..len])
        .map_err(|e| Error::MalformedFrame(format!("identify: {e}")))?;
    let public_key = msg
        .public_key
        .ok_or_else(|| Error::MalformedFrame("identify without publicKey".into()))
        .and_then(|k| {
            PublicKey::try_decode_protobuf(&k)
                .map_err(|e| Error::MalformedFrame(format!("identify publicKey: {e}")))
        })?;
    if public_key.to_peer_id() != *peer {
        return Err(Error::MalformedFrame(
            "identify publicKey does not match the peer".into(),
        ));
    }
    Ok(IdentifyInfo {
        public_key,
        protocol_version: msg.protocol_version.unwrap_or_default(),
        agent_version: msg.agent_version.unwrap_or_default(),
        listen_addrs: msg
            .listen_addrs
            .into_iter()
            .filter_map(|a| Multiaddr::try_from(a).ok())
            .collect(),
        observed_addr: msg.observed_addr.and_then(|a| Multiaddr::try_from(a).ok()),
        protocols: msg.protocols,
    })
}

/// Sends a goodbye with `reason`, half-closes, and waits up to `linger` for the
/// peer to close its side.
pub(crate) async fn send_goodbye<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    reason: DisconnectReason,
    linger: Duration,
) -> Result<(), Error> {
    let mut out = BytesMut::new();
    let payload = devmux_rlpx::p2p::encode_disconnect(reason).to_vec();
    encode_frame(&Message::new(GOODBYE_CODE, payload), &mut out);
    io.write_all(&out).await?;
    io.close().await?;
    let mut sink = [0u8; MAX_GOODBYE_SIZE];
    let _ = tokio::time::timeout(linger, async {
        while let Ok(n) = io.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

/// Reads a goodbye message and returns its reason.
pub(crate) async fn read_goodbye<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
) -> Result<DisconnectReason, Error> {
    let mut raw = Vec::new();
    (&mut io)
        .take(MAX_GOODBYE_SIZE as u64)
        .read_to_end(&mut raw)
        .await?;
    let mut buf = BytesMut::from(&raw[..]);
    let msg = decode_frame(&mut buf, MAX_GOODBYE_SIZE)?
        .ok_or_else(|| Error::MalformedFrame("goodbye truncated".into()))?;
    if msg.code != GOODBYE_CODE {
        return Err(Error::MalformedFrame(format!(
            "goodbye code {:#x}",
            msg.code
        )));
    }
    let _ = io.close().await;
    // Goodbye carries the RLPx Disconnect payload: one decoder for both.
    devmux_rlpx::p2p::decode_disconnect(&msg.payload)
        .ok_or_else(|| Error::MalformedFrame("goodbye reason".into()))
}
