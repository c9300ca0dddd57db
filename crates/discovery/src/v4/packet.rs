//! The discv4 wire format: the six packets of devp2p `discv4.md` and EIP-868, their
//! signed envelope, and the checks a received datagram passes before anything
//! believes it.
//!
//! ```text
//! packet = hash(32) ‖ signature(65) ‖ packet-type(1) ‖ packet-data (RLP list)
//! hash   = keccak256(signature ‖ packet-type ‖ packet-data)
//! signature = secp256k1 recoverable signature of keccak256(packet-type ‖ packet-data)
//! ```
//!
//! [`decode`] checks, cheapest first: the size (≤ [`MAX_PACKET_SIZE`]) before any
//! hashing, the hash before anything else, the RLP structure, the expiration (in
//! [`decode_unexpired`]) and only then recovers the sender's key, the one expensive
//! step. Extra list elements and bytes after the list are ignored (EIP-8).
//!
//! ```
//! use devmux_discovery::v4::packet::{self, EnrRequest, Message};
//! let key = secp256k1::SecretKey::from_slice(&[7u8; 32]).unwrap();
//! let (datagram, hash) = packet::encode(&Message::EnrRequest(EnrRequest { expiration: 2_000_000_000 }), &key);
//! let decoded = packet::decode(&datagram).unwrap();
//! assert_eq!(decoded.hash, hash);
//! assert_eq!(decoded.message, Message::EnrRequest(EnrRequest { expiration: 2_000_000_000 }));
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_rlp::{Decodable, Encodable, Header};
use devmux_identity::NodeId;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message as Digest32, SecretKey, SECP256K1};
use sha3::{Digest, Keccak256};

use crate::{Enr, Error};

/// The largest datagram sent or accepted (`discv4.md`, "Wire Protocol": "The maximum
/// size of any packet is 1280 bytes").
pub const MAX_PACKET_SIZE: usize = 1280;
/// hash(32) ‖ signature(65) ‖ type(1) (`discv4.md`, "Wire Protocol").
pub const HEADER_SIZE: usize = 32 + 65 + 1;
/// Nodes per Neighbors packet: go-ethereum's `v4wire.MaxNeighbors` (12 IPv6 nodes
/// still fit in [`MAX_PACKET_SIZE`]).
pub const MAX_NEIGHBORS_PER_PACKET: usize = 12;
/// The Ping `version` we send (`discv4.md`, Ping: "version = 4"); a mismatch in a
/// received one is ignored (EIP-8).
pub const PROTOCOL_VERSION: u64 = 4;
/// How far ahead our packets' `expiration` lies: go-ethereum's `expiration` (20 s,
/// `p2p/discover/v4_udp.go`).
pub const EXPIRATION: Duration = Duration::from_secs(20);

/// The packet-type byte (`discv4.md`; 5 and 6 from EIP-868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Ping (0x01).
    Ping = 1,
    /// Pong (0x02).
    Pong = 2,
    /// FindNode (0x03).
    FindNode = 3,
    /// Neighbors (0x04).
    Neighbors = 4,
    /// ENRRequest (0x05, EIP-868).
    EnrRequest = 5,
    /// ENRResponse (0x06, EIP-868).
    EnrResponse = 6,
}

impl PacketType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Ping,
            2 => Self::Pong,
            3 => Self::FindNode,
            4 => Self::Neighbors,
            5 => Self::EnrRequest,
            6 => Self::EnrResponse,
            _ => return None,
        })
    }
}

/// Why a datagram was dropped ([`Error::V4Packet`]). The sender is not penalised for
/// any of these: until its signature is recovered the source is unauthenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketProblem {
    /// Shorter than the header plus one byte of data.
    TooSmall(usize),
    /// Over [`MAX_PACKET_SIZE`] bytes.
    TooLarge(usize),
    /// The leading hash is not keccak256 of the rest (not a discv4 packet).
    HashMismatch,
    /// A packet-type byte we do not know.
    UnknownType(u8),
    /// The packet data is not the RLP the packet type needs.
    Rlp(alloy_rlp::Error),
    /// An IP address that is not 4 or 16 bytes (or empty, in a Ping/Pong endpoint).
    BadIp(usize),
    /// A hash field (Pong's ping-hash, ENRResponse's request-hash) not 32 bytes.
    BadHashLength(usize),
    /// A FindNode target or Neighbors node id not 64 bytes.
    BadNodeIdLength(usize),
    /// ENRResponse's record does not decode or verify.
    BadEnr,
    /// The `expiration` lies in the past.
    Expired,
    /// The signature does not recover to a public key.
    BadSignature,
}

impl fmt::Display for PacketProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall(n) => write!(f, "too small ({n} bytes)"),
            Self::TooLarge(n) => write!(f, "too large ({n} bytes)"),
            Self::HashMismatch => f.write_str("hash mismatch"),
            Self::UnknownType(t) => write!(f, "unknown packet type {t}"),
            Self::Rlp(e) => write!(f, "bad RLP: {e}"),
            Self::BadIp(n) => write!(f, "IP address of {n} bytes"),
            Self::BadHashLength(n) => write!(f, "hash of {n} bytes"),
            Self::BadNodeIdLength(n) => write!(f, "node id of {n} bytes"),
            Self::BadEnr => f.write_str("invalid ENR"),
            Self::Expired => f.write_str("expired"),
            Self::BadSignature => f.write_str("bad signature"),
        }
    }
}

impl From<alloy_rlp::Error> for PacketProblem {
    fn from(e: alloy_rlp::Error) -> Self {
        Self::Rlp(e)
    }
}

/// `[ip, udp-port, tcp-port]` of Ping and Pong. The IP may be empty: go-ethereum
/// sends an empty one when it does not know its own address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The IP address, if given.
    pub ip: Option<IpAddr>,
    /// UDP (discovery) port.
    pub udp: u16,
    /// TCP (RLPx) port; 0 when unknown or not running.
    pub tcp: u16,
}

/// Ping (0x01): `[version, from, to, expiration, enr-seq?, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ping {
    /// Protocol version (4; mismatches are ignored).
    pub version: u64,
    /// The sender's endpoint as it believes it to be (its TCP port is what we use).
    pub from: Endpoint,
    /// The recipient's endpoint as the sender sees it.
    pub to: Endpoint,
    /// Absolute UNIX time after which the packet is dropped.
    pub expiration: u64,
    /// The sender's ENR sequence number (EIP-868).
    pub enr_seq: Option<u64>,
}

/// Pong (0x02): `[to, ping-hash, expiration, enr-seq?, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pong {
    /// The Ping's source address as the ponger saw it.
    pub to: Endpoint,
    /// The hash of the Ping answered.
    pub ping_hash: [u8; 32],
    /// Absolute UNIX time after which the packet is dropped.
    pub expiration: u64,
    /// The sender's ENR sequence number (EIP-868).
    pub enr_seq: Option<u64>,
}

/// FindNode (0x03): `[target, expiration, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindNode {
    /// The public key (64 bytes) whose neighbourhood is asked for.
    pub target: NodeId,
    /// Absolute UNIX time after which the packet is dropped.
    pub expiration: u64,
}

/// One node of a Neighbors packet: `[ip, udp-port, tcp-port, node-id]`. The id is
/// not checked to be a curve point here; the service checks it before use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neighbor {
    /// IP address (4 or 16 bytes on the wire).
    pub ip: IpAddr,
    /// UDP port.
    pub udp: u16,
    /// TCP port.
    pub tcp: u16,
    /// The node's public key.
    pub id: NodeId,
}

/// Neighbors (0x04): `[[node…]…, expiration, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbors {
    /// The nodes (at most [`MAX_NEIGHBORS_PER_PACKET`] in what we send; what we
    /// receive is bounded by the packet size).
    pub nodes: Vec<Neighbor>,
    /// Absolute UNIX time after which the packet is dropped.
    pub expiration: u64,
}

/// ENRRequest (0x05, EIP-868): `[expiration, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrRequest {
    /// Absolute UNIX time after which the packet is dropped.
    pub expiration: u64,
}

/// ENRResponse (0x06, EIP-868): `[request-hash, enr, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrResponse {
    /// The hash of the ENRRequest answered.
    pub request_hash: [u8; 32],
    /// The sender's record (its signature verified when decoded).
    pub enr: Enr,
}

/// The packet data, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Message {
    Ping(Ping),
    Pong(Pong),
    FindNode(FindNode),
    Neighbors(Neighbors),
    EnrRequest(EnrRequest),
    EnrResponse(EnrResponse),
}

impl Message {
    /// The packet-type byte.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Ping(_) => PacketType::Ping,
            Self::Pong(_) => PacketType::Pong,
            Self::FindNode(_) => PacketType::FindNode,
            Self::Neighbors(_) => PacketType::Neighbors,
            Self::EnrRequest(_) => PacketType::EnrRequest,
            Self::EnrResponse(_) => PacketType::EnrResponse,
        }
    }

    /// The `expiration` field (ENRResponse has none).
    pub fn expiration(&self) -> Option<u64> {
        match self {
            Self::Ping(p) => Some(p.expiration),
            Self::Pong(p) => Some(p.expiration),
            Self::FindNode(p) => Some(p.expiration),
            Self::Neighbors(p) => Some(p.expiration),
            Self::EnrRequest(p) => Some(p.expiration),
            Self::EnrResponse(_) => None,
        }
    }

    fn encode_data(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(MAX_PACKET_SIZE);
        match self {
            Self::Ping(p) => {
                p.version.encode(&mut payload);
                encode_endpoint(&p.from, &mut payload);
                encode_endpoint(&p.to, &mut payload);
                p.expiration.encode(&mut payload);
                if let Some(seq) = p.enr_seq {
                    seq.encode(&mut payload);
                }
            }
            Self::Pong(p) => {
                encode_endpoint(&p.to, &mut payload);
                p.ping_hash.as_slice().encode(&mut payload);
                p.expiration.encode(&mut payload);
                if let Some(seq) = p.enr_seq {
                    seq.encode(&mut payload);
                }
            }
            Self::FindNode(p) => {
                p.target.0.as_slice().encode(&mut payload);
                p.expiration.encode(&mut payload);
            }
            Self::Neighbors(p) => {
                let mut nodes = Vec::new();
                for n in &p.nodes {
                    let mut node = Vec::new();
                    encode_ip(Some(n.ip), &mut node);
                    n.udp.encode(&mut node);
                    n.tcp.encode(&mut node);
                    n.id.0.as_slice().encode(&mut node);
                    list(&node, &mut nodes);
                }
                list(&nodes, &mut payload);
                p.expiration.encode(&mut payload);
            }
            Self::EnrRequest(p) => p.expiration.encode(&mut payload),
            Self::EnrResponse(p) => {
                p.request_hash.as_slice().encode(&mut payload);
                p.enr.encode(&mut payload);
            }
        }
        list(&payload, out);
    }
}

/// A received packet that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// What it says.
    pub message: Message,
    /// The sender: the public key its signature recovers to.
    pub sender: NodeId,
    /// Its hash (what Pong and ENRResponse quote back).
    pub hash: [u8; 32],
}

/// Seconds since the UNIX epoch, as `expiration` counts them.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `expiration` for a packet sent now.
pub fn expiration_from_now() -> u64 {
    unix_now().saturating_add(EXPIRATION.as_secs())
}

/// Signs and frames `message` with `key`. Returns the datagram and its hash (what a
/// Pong or ENRResponse to it quotes back).
///
/// A Neighbors packet with more than [`MAX_NEIGHBORS_PER_PACKET`] nodes may exceed
/// [`MAX_PACKET_SIZE`]; the service never builds one.
pub fn encode(message: &Message, key: &SecretKey) -> (Vec<u8>, [u8; 32]) {
    let mut datagram = vec![0u8; 32 + 65];
    datagram.push(message.packet_type() as u8);
    message.encode_data(&mut datagram);
    let digest = keccak256(&datagram[HEADER_SIZE - 1..]);
    let signature = SECP256K1.sign_ecdsa_recoverable(&Digest32::from_digest(digest), key);
    let (recovery_id, rs) = signature.serialize_compact();
    datagram[32..96].copy_from_slice(&rs);
    // i32::from gives 0..=3: one byte.
    datagram[96] = i32::from(recovery_id) as u8;
    let hash = keccak256(&datagram[32..]);
    datagram[..32].copy_from_slice(&hash);
    (datagram, hash)
}

/// Checks and decodes a datagram, without looking at its expiration (for test
/// vectors with old time stamps; the service uses [`decode_unexpired`]).
pub fn decode(datagram: &[u8]) -> Result<Packet, Error> {
    decode_checked(datagram, None)
}

/// Checks and decodes a datagram, dropping it if its `expiration` is before `now`
/// (UNIX seconds) — before paying for signature recovery.
pub fn decode_unexpired(datagram: &[u8], now: u64) -> Result<Packet, Error> {
    decode_checked(datagram, Some(now))
}

fn decode_checked(datagram: &[u8], now: Option<u64>) -> Result<Packet, Error> {
    decode_inner(datagram, now).map_err(Error::V4Packet)
}

fn decode_inner(datagram: &[u8], now: Option<u64>) -> Result<Packet, PacketProblem> {
    // Size first: nothing over the limit is even hashed.
    if datagram.len() > MAX_PACKET_SIZE {
        return Err(PacketProblem::TooLarge(datagram.len()));
    }
    if datagram.len() <= HEADER_SIZE {
        return Err(PacketProblem::TooSmall(datagram.len()));
    }
    let hash: [u8; 32] = keccak256(&datagram[32..]);
    if hash != datagram[..32] {
        return Err(PacketProblem::HashMismatch);
    }
    let kind = datagram[HEADER_SIZE - 1];
    let kind = PacketType::from_byte(kind).ok_or(PacketProblem::UnknownType(kind))?;
    let message = decode_data(kind, &datagram[HEADER_SIZE..])?;
    if let (Some(now), Some(expiration)) = (now, message.expiration()) {
        if expiration < now {
            return Err(PacketProblem::Expired);
        }
    }
    // The expensive step last.
    let sender = recover(&datagram[32..97], &keccak256(&datagram[HEADER_SIZE - 1..]))?;
    Ok(Packet {
        message,
        sender,
        hash,
    })
}

fn recover(signature: &[u8], digest: &[u8; 32]) -> Result<NodeId, PacketProblem> {
    let recovery_id =
        RecoveryId::try_from(i32::from(signature[64])).map_err(|_| PacketProblem::BadSignature)?;
    let signature = RecoverableSignature::from_compact(&signature[..64], recovery_id)
        .map_err(|_| PacketProblem::BadSignature)?;
    let key = SECP256K1
        .recover_ecdsa(&Digest32::from_digest(*digest), &signature)
        .map_err(|_| PacketProblem::BadSignature)?;
    let full = key.serialize_uncompressed();
    let mut id = [0u8; 64];
    id.copy_from_slice(&full[1..]);
    Ok(NodeId(id))
}

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// Whether a 64-byte node id is a point on secp256k1 (Neighbors carry unchecked ids).
pub fn is_valid_node_id(id: &NodeId) -> bool {
    let mut full = [0u8; 65];
    full[0] = 4;
    full[1..].copy_from_slice(&id.0);
    secp256k1::PublicKey::from_slice(&full).is_ok()
}

/// The node id of a secret key.
pub fn node_id_of(key: &SecretKey) -> NodeId {
    let full = key.public_key(SECP256K1).serialize_uncompressed();
    let mut id = [0u8; 64];
    id.copy_from_slice(&full[1..]);
    NodeId(id)
}

fn list(payload: &[u8], out: &mut Vec<u8>) {
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(out);
    out.extend_from_slice(payload);
}

fn encode_ip(ip: Option<IpAddr>, out: &mut Vec<u8>) {
    match ip {
        None => out.push(alloy_rlp::EMPTY_STRING_CODE),
        Some(IpAddr::V4(v4)) => v4.octets().as_slice().encode(out),
        Some(IpAddr::V6(v6)) => v6.octets().as_slice().encode(out),
    }
}

fn encode_endpoint(e: &Endpoint, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(24);
    encode_ip(e.ip, &mut body);
    e.udp.encode(&mut body);
    e.tcp.encode(&mut body);
    list(&body, out);
}

/// The items of one RLP list, read in order; what is left after the fields we know
/// is skipped item by item (EIP-8), but must still be well-formed RLP.
struct Items<'a> {
    buf: &'a [u8],
}

impl<'a> Items<'a> {
    /// Opens the list at the start of `buf`; anything after it is ignored (EIP-8).
    fn open(buf: &mut &'a [u8]) -> Result<Self, PacketProblem> {
        let header = Header::decode(buf)?;
        if !header.list {
            return Err(alloy_rlp::Error::UnexpectedString.into());
        }
        if buf.len() < header.payload_length {
            return Err(alloy_rlp::Error::InputTooShort.into());
        }
        let (payload, rest) = buf.split_at(header.payload_length);
        *buf = rest;
        Ok(Self { buf: payload })
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn next<T: Decodable>(&mut self) -> Result<T, PacketProblem> {
        if self.buf.is_empty() {
            return Err(alloy_rlp::Error::InputTooShort.into());
        }
        Ok(T::decode(&mut self.buf)?)
    }

    fn bytes(&mut self) -> Result<&'a [u8], PacketProblem> {
        if self.buf.is_empty() {
            return Err(alloy_rlp::Error::InputTooShort.into());
        }
        Ok(Header::decode_bytes(&mut self.buf, false)?)
    }

    fn list(&mut self) -> Result<Items<'a>, PacketProblem> {
        if self.buf.is_empty() {
            return Err(alloy_rlp::Error::InputTooShort.into());
        }
        Items::open(&mut self.buf)
    }

    /// The raw bytes of the next item (header included).
    fn raw(&mut self) -> Result<&'a [u8], PacketProblem> {
        let start = self.buf;
        let header = Header::decode(&mut self.buf)?;
        if self.buf.len() < header.payload_length {
            return Err(alloy_rlp::Error::InputTooShort.into());
        }
        self.buf = &self.buf[header.payload_length..];
        Ok(&start[..start.len() - self.buf.len()])
    }

    /// Skips the remaining items (EIP-8: ignored, but each must be well-formed).
    fn finish_lenient(mut self) -> Result<(), PacketProblem> {
        while !self.buf.is_empty() {
            self.raw()?;
        }
        Ok(())
    }

    /// Requires that no items remain (inner lists of fixed shape, as go-ethereum
    /// decodes endpoints and nodes).
    fn finish_exact(self) -> Result<(), PacketProblem> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(alloy_rlp::Error::ListLengthMismatch {
                expected: 0,
                got: self.buf.len(),
            }
            .into())
        }
    }
}

fn decode_ip(bytes: &[u8], allow_empty: bool) -> Result<Option<IpAddr>, PacketProblem> {
    match bytes.len() {
        0 if allow_empty => Ok(None),
        4 => {
            let mut b = [0u8; 4];
            b.copy_from_slice(bytes);
            Ok(Some(Ipv4Addr::from(b).into()))
        }
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(bytes);
            Ok(Some(Ipv6Addr::from(b).into()))
        }
        n => Err(PacketProblem::BadIp(n)),
    }
}

fn decode_endpoint(items: &mut Items<'_>) -> Result<Endpoint, PacketProblem> {
    let mut e = items.list()?;
    let ip = decode_ip(e.bytes()?, true)?;
    let udp = e.next::<u16>()?;
    let tcp = e.next::<u16>()?;
    e.finish_exact()?;
    Ok(Endpoint { ip, udp, tcp })
}

fn decode_hash(items: &mut Items<'_>) -> Result<[u8; 32], PacketProblem> {
    let bytes = items.bytes()?;
    bytes
        .try_into()
        .map_err(|_| PacketProblem::BadHashLength(bytes.len()))
}

fn decode_node_id(items: &mut Items<'_>) -> Result<NodeId, PacketProblem> {
    let bytes = items.bytes()?;
    let id: [u8; 64] = bytes
        .try_into()
        .map_err(|_| PacketProblem::BadNodeIdLength(bytes.len()))?;
    Ok(NodeId(id))
}

/// An optional trailing integer (EIP-868's `enr-seq`): absent when the list ends.
fn optional_u64(items: &mut Items<'_>) -> Result<Option<u64>, PacketProblem> {
    if items.is_empty() {
        Ok(None)
    } else {
        items.next::<u64>().map(Some)
    }
}

fn decode_data(kind: PacketType, mut data: &[u8]) -> Result<Message, PacketProblem> {
    let mut items = Items::open(&mut data)?;
    // Bytes after the list (`data`) are ignored (discv4.md: "any extra data after the list").
    let message = match kind {
        PacketType::Ping => Message::Ping(Ping {
            version: items.next()?,
            from: decode_endpoint(&mut items)?,
            to: decode_endpoint(&mut items)?,
            expiration: items.next()?,
            enr_seq: optional_u64(&mut items)?,
        }),
        PacketType::Pong => Message::Pong(Pong {
            to: decode_endpoint(&mut items)?,
            ping_hash: decode_hash(&mut items)?,
            expiration: items.next()?,
            enr_seq: optional_u64(&mut items)?,
        }),
        PacketType::FindNode => Message::FindNode(FindNode {
            target: decode_node_id(&mut items)?,
            expiration: items.next()?,
        }),
        PacketType::Neighbors => {
            let mut list = items.list()?;
            let mut nodes = Vec::new();
            while !list.is_empty() {
                let mut n = list.list()?;
                let ip = decode_ip(n.bytes()?, false)?.ok_or(PacketProblem::BadIp(0))?;
                let udp = n.next::<u16>()?;
                let tcp = n.next::<u16>()?;
                let id = decode_node_id(&mut n)?;
                n.finish_exact()?;
                nodes.push(Neighbor { ip, udp, tcp, id });
            }
            Message::Neighbors(Neighbors {
                nodes,
                expiration: items.next()?,
            })
        }
        PacketType::EnrRequest => Message::EnrRequest(EnrRequest {
            expiration: items.next()?,
        }),
        PacketType::EnrResponse => {
            let request_hash = decode_hash(&mut items)?;
            // The enr crate refuses its input when the *buffer* exceeds 300 bytes:
            // hand it the record alone, not the record and what follows.
            let mut raw = items.raw()?;
            let enr = Enr::decode(&mut raw).map_err(|_| PacketProblem::BadEnr)?;
            if !raw.is_empty() {
                return Err(PacketProblem::BadEnr);
            }
            Message::EnrResponse(EnrResponse { request_hash, enr })
        }
    };
    items.finish_lenient()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// go-ethereum's EIP-8 vectors (`p2p/discover/v4wire/v4wire_test.go`, v1.17.10,
    /// `testPackets`), signed by the key below; all have expiration 1136239445.
    const GETH_KEY: &str = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";
    const PING: &str = "71dbda3a79554728d4f94411e42ee1f8b0d561c10e1e5f5893367948c6a7d70bb87b235fa28a77070271b6c164a2dce8c7e13a5739b53b5e96f2e5acb0e458a02902f5965d55ecbeb2ebb6cabb8b2b232896a36b737666c55265ad0a68412f250001ea04cb847f000001820cfa8215a8d790000000000000000000000000000000018208ae820d058443b9a355";
    const PING_EXTRA: &str = "e9614ccfd9fc3e74360018522d30e1419a143407ffcce748de3e22116b7e8dc92ff74788c0b6663aaa3d67d641936511c8f8d6ad8698b820a7cf9e1be7155e9a241f556658c55428ec0563514365799a4be2be5a685a80971ddcfa80cb422cdd0101ec04cb847f000001820cfa8215a8d790000000000000000000000000000000018208ae820d058443b9a3550102";
    const FINDNODE: &str = "c7c44041b9f7c7e41934417ebac9a8e1a4c6298f74553f2fcfdcae6ed6fe53163eb3d2b52e39fe91831b8a927bf4fc222c3902202027e5e9eb812195f95d20061ef5cd31d502e47ecb61183f74a504fe04c51e73df81f25c4d506b26db4517490103f84eb840ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f8443b9a35582999983999999280dc62cc8255c73471e0a61da0c89acdc0e035e260add7fc0c04ad9ebf3919644c91cb247affc82b69bd2ca235c71eab8e49737c937a2c396";
    const NEIGHBORS: &str = "c679fc8fe0b8b12f06577f2e802d34f6fa257e6137a995f6f4cbfc9ee50ed3710faf6e66f932c4c8d81d64343f429651328758b47d3dbc02c4042f0fff6946a50f4a49037a72bb550f3a7872363a83e1b9ee6469856c24eb4ef80b7535bcf99c0004f9015bf90150f84d846321163782115c82115db8403155e1427f85f10a5c9a7755877748041af1bcd8d474ec065eb33df57a97babf54bfd2103575fa829115d224c523596b401065a97f74010610fce76382c0bf32f84984010203040101b840312c55512422cf9b8a4097e9a6ad79402e87a15ae909a4bfefa22398f03d20951933beea1e4dfa6f968212385e829f04c2d314fc2d4e255e0d3bc08792b069dbf8599020010db83c4d001500000000abcdef12820d05820d05b84038643200b172dcfef857492156971f0e6aa2c538d8b74010f8e140811d53b98c765dd2d96126051913f44582e8c199ad7c6d6819e9a56483f637feaac9448aacf8599020010db885a308d313198a2e037073488203e78203e8b8408dcab8618c3253b558d459da53bd8fa68935a719aff8b811197101a4b2b47dd2d47295286fc00cc081bb542d760717d1bdd6bec2c37cd72eca367d6dd3b9df738443b9a355010203b525a138aa34383fec3d2719a0";
    const VECTOR_EXPIRATION: u64 = 1136239445;

    fn geth_sender() -> NodeId {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(GETH_KEY, &mut secret).unwrap();
        node_id_of(&SecretKey::from_slice(&secret).unwrap())
    }

    fn vector(text: &str) -> Packet {
        let packet = decode(&hex::decode(text).unwrap()).unwrap();
        assert_eq!(packet.sender, geth_sender());
        packet
    }

    fn id(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn endpoints() -> (Endpoint, Endpoint) {
        (
            Endpoint {
                ip: Some(ip("127.0.0.1")),
                udp: 3322,
                tcp: 5544,
            },
            Endpoint {
                ip: Some(ip("::1")),
                udp: 2222,
                tcp: 3333,
            },
        )
    }

    #[test]
    fn geth_eip8_ping() {
        let (from, to) = endpoints();
        let want = Ping {
            version: 4,
            from,
            to,
            expiration: VECTOR_EXPIRATION,
            enr_seq: None,
        };
        assert_eq!(vector(PING).message, Message::Ping(want));
    }

    #[test]
    fn geth_eip8_ping_with_enr_seq_and_extra_field() {
        let (from, to) = endpoints();
        let want = Ping {
            version: 4,
            from,
            to,
            expiration: VECTOR_EXPIRATION,
            enr_seq: Some(1),
        };
        assert_eq!(vector(PING_EXTRA).message, Message::Ping(want));
    }

    #[test]
    fn geth_eip8_findnode_with_extra_fields() {
        let want = FindNode {
            target: id("ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f"),
            expiration: VECTOR_EXPIRATION,
        };
        assert_eq!(vector(FINDNODE).message, Message::FindNode(want));
    }

    #[test]
    fn geth_eip8_neighbors_with_extra_fields() {
        // Node ids as go-ethereum's test gives them (not checked to be curve points).
        let node = |ip_text: &str, udp, tcp, id_text: &str| {
            let mut raw = [0u8; 64];
            hex::decode_to_slice(id_text, &mut raw).unwrap();
            Neighbor {
                ip: ip(ip_text),
                udp,
                tcp,
                id: NodeId(raw),
            }
        };
        let want = Neighbors {
            nodes: vec![
                node("99.33.22.55", 4444, 4445, "3155e1427f85f10a5c9a7755877748041af1bcd8d474ec065eb33df57a97babf54bfd2103575fa829115d224c523596b401065a97f74010610fce76382c0bf32"),
                node("1.2.3.4", 1, 1, "312c55512422cf9b8a4097e9a6ad79402e87a15ae909a4bfefa22398f03d20951933beea1e4dfa6f968212385e829f04c2d314fc2d4e255e0d3bc08792b069db"),
                node("2001:db8:3c4d:15::abcd:ef12", 3333, 3333, "38643200b172dcfef857492156971f0e6aa2c538d8b74010f8e140811d53b98c765dd2d96126051913f44582e8c199ad7c6d6819e9a56483f637feaac9448aac"),
                node("2001:db8:85a3:8d3:1319:8a2e:370:7348", 999, 1000, "8dcab8618c3253b558d459da53bd8fa68935a719aff8b811197101a4b2b47dd2d47295286fc00cc081bb542d760717d1bdd6bec2c37cd72eca367d6dd3b9df73"),
            ],
            expiration: VECTOR_EXPIRATION,
        };
        assert_eq!(vector(NEIGHBORS).message, Message::Neighbors(want));
    }

    #[test]
    fn geth_vectors_are_expired_now() {
        let now = unix_now();
        for v in [PING, PING_EXTRA, FINDNODE, NEIGHBORS] {
            let err = decode_unexpired(&hex::decode(v).unwrap(), now).unwrap_err();
            assert!(
                matches!(err, Error::V4Packet(PacketProblem::Expired)),
                "{err}"
            );
        }
    }

    fn problem(datagram: &[u8]) -> PacketProblem {
        match decode(datagram) {
            Err(Error::V4Packet(p)) => p,
            other => panic!("expected a packet problem, got {other:?}"),
        }
    }

    #[test]
    fn size_hash_and_signature_checks() {
        let key = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let (good, _) = encode(&Message::EnrRequest(EnrRequest { expiration: 5 }), &key);
        assert_eq!(decode(&good).unwrap().sender, node_id_of(&key));
        // Over the limit: rejected before hashing (even a valid-looking packet).
        let mut big = good.clone();
        big.resize(MAX_PACKET_SIZE + 1, 0);
        assert_eq!(problem(&big), PacketProblem::TooLarge(MAX_PACKET_SIZE + 1));
        assert_eq!(
            problem(&good[..HEADER_SIZE]),
            PacketProblem::TooSmall(HEADER_SIZE)
        );
        // A flipped bit anywhere after the hash breaks the hash.
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        assert_eq!(problem(&flipped), PacketProblem::HashMismatch);
        // A corrupted signature with a recomputed hash: the sender changes or recovery fails.
        let mut resigned = good.clone();
        resigned[96] = 9; // recovery id out of range
        let hash = keccak256(&resigned[32..]);
        resigned[..32].copy_from_slice(&hash);
        assert_eq!(problem(&resigned), PacketProblem::BadSignature);
        // Unknown type with a valid hash.
        let mut unknown = good;
        unknown[97] = 9;
        let hash = keccak256(&unknown[32..]);
        unknown[..32].copy_from_slice(&hash);
        assert_eq!(problem(&unknown), PacketProblem::UnknownType(9));
    }

    #[test]
    fn expiration_is_checked_at_decode_time() {
        let key = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let (datagram, _) = encode(&Message::EnrRequest(EnrRequest { expiration: 100 }), &key);
        assert!(decode_unexpired(&datagram, 100).is_ok());
        assert!(matches!(
            decode_unexpired(&datagram, 101),
            Err(Error::V4Packet(PacketProblem::Expired))
        ));
    }

    /// Twelve IPv6 nodes with the largest ports and expiration still fit in 1280 bytes.
    #[test]
    fn a_full_neighbors_packet_fits() {
        let key = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let node = Neighbor {
            ip: ip("2001:db8::ffff:ffff:ffff:ffff"),
            udp: u16::MAX,
            tcp: u16::MAX,
            id: node_id_of(&key),
        };
        let message = Message::Neighbors(Neighbors {
            nodes: vec![node; MAX_NEIGHBORS_PER_PACKET],
            expiration: u64::MAX,
        });
        let (datagram, _) = encode(&message, &key);
        assert!(datagram.len() <= MAX_PACKET_SIZE, "{}", datagram.len());
        assert_eq!(decode(&datagram).unwrap().message, message);
    }

    #[test]
    fn strict_rlp_in_known_fields() {
        let key = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let frame = |data: &[u8], kind: u8| {
            let mut body = vec![kind];
            body.extend_from_slice(data);
            let digest = keccak256(&body);
            let sig = SECP256K1.sign_ecdsa_recoverable(&Digest32::from_digest(digest), &key);
            let (rid, rs) = sig.serialize_compact();
            let mut out = vec![0u8; 32];
            out.extend_from_slice(&rs);
            out.push(i32::from(rid) as u8);
            out.extend_from_slice(&body);
            let hash = keccak256(&out[32..]);
            out[..32].copy_from_slice(&hash);
            out
        };
        // [expiration = 0x0005 with a leading zero]: refused.
        assert!(matches!(
            problem(&frame(&[0xc3, 0x82, 0x00, 0x05], 5)),
            PacketProblem::Rlp(_)
        ));
        // [5] followed by trailing bytes after the list: accepted (EIP-8).
        assert!(decode(&frame(&[0xc1, 0x05, 0xff, 0xff], 5)).is_ok());
        // [5, [1, 2]]: an extra element, itself a list: accepted (EIP-8).
        assert!(decode(&frame(&[0xc4, 0x05, 0xc2, 0x01, 0x02], 5)).is_ok());
        // A list whose length runs past the data: refused.
        assert!(matches!(
            problem(&frame(&[0xc5, 0x05], 5)),
            PacketProblem::Rlp(_)
        ));
        // A string where the list should be: refused.
        assert!(matches!(problem(&frame(&[0x05], 5)), PacketProblem::Rlp(_)));
        // An extra element that is truncated: refused.
        assert!(matches!(
            problem(&frame(&[0xc3, 0x05, 0x82, 0x01], 5)),
            PacketProblem::Rlp(_)
        ));
        // A FindNode target of 63 bytes.
        let mut findnode = vec![0xf8, 0x42, 0xb8, 0x3f];
        findnode.extend_from_slice(&[1u8; 63]);
        findnode.push(0x05);
        assert_eq!(
            problem(&frame(&findnode, 3)),
            PacketProblem::BadNodeIdLength(63)
        );
    }

    #[test]
    fn enr_response_round_trips_and_needs_a_valid_record() {
        let key = SecretKey::from_slice(&[4u8; 32]).unwrap();
        let enr_key = enr::CombinedKey::secp256k1_from_bytes(&mut [4u8; 32]).unwrap();
        let record = {
            let mut b = Enr::builder();
            b.ip4(Ipv4Addr::LOCALHOST).udp4(30303);
            b.build(&enr_key).unwrap()
        };
        let message = Message::EnrResponse(EnrResponse {
            request_hash: [9; 32],
            enr: record.clone(),
        });
        let (datagram, _) = encode(&message, &key);
        assert_eq!(decode(&datagram).unwrap().message, message);
        // A record with a broken signature is refused.
        let mut rlp = alloy_rlp::encode(&record);
        let last = rlp.len() - 1;
        rlp[last] ^= 1;
        let mut data = Vec::new();
        let mut payload = Vec::new();
        [9u8; 32].as_slice().encode(&mut payload);
        payload.extend_from_slice(&rlp);
        list(&payload, &mut data);
        let mut body = vec![6u8];
        body.extend_from_slice(&data);
        let (rid, rs) = SECP256K1
            .sign_ecdsa_recoverable(&Digest32::from_digest(keccak256(&body)), &key)
            .serialize_compact();
        let mut out = vec![0u8; 32];
        out.extend_from_slice(&rs);
        out.push(i32::from(rid) as u8);
        out.extend_from_slice(&body);
        let hash = keccak256(&out[32..]);
        out[..32].copy_from_slice(&hash);
        assert_eq!(problem(&out), PacketProblem::BadEnr);
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::from(Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| IpAddr::from(Ipv6Addr::from(b))),
        ]
    }

    fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
        (proptest::option::of(arb_ip()), any::<u16>(), any::<u16>())
            .prop_map(|(ip, udp, tcp)| Endpoint { ip, udp, tcp })
    }

    fn arb_id() -> impl Strategy<Value = NodeId> {
        any::<[u8; 32]>().prop_flat_map(|a| {
            any::<[u8; 32]>().prop_map(move |b| {
                let mut id = [0u8; 64];
                id[..32].copy_from_slice(&a);
                id[32..].copy_from_slice(&b);
                NodeId(id)
            })
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u64>(),
                arb_endpoint(),
                arb_endpoint(),
                any::<u64>(),
                any::<Option<u64>>()
            )
                .prop_map(|(version, from, to, expiration, enr_seq)| Message::Ping(
                    Ping {
                        version,
                        from,
                        to,
                        expiration,
                        enr_seq
                    }
                )),
            (
                arb_endpoint(),
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<Option<u64>>()
            )
                .prop_map(|(to, ping_hash, expiration, enr_seq)| Message::Pong(Pong {
                    to,
                    ping_hash,
                    expiration,
                    enr_seq
                })),
            (arb_id(), any::<u64>()).prop_map(|(target, expiration)| Message::FindNode(FindNode {
                target,
                expiration
            })),
            (
                proptest::collection::vec(
                    (arb_ip(), any::<u16>(), any::<u16>(), arb_id())
                        .prop_map(|(ip, udp, tcp, id)| Neighbor { ip, udp, tcp, id }),
                    0..=MAX_NEIGHBORS_PER_PACKET
                ),
                any::<u64>()
            )
                .prop_map(|(nodes, expiration)| Message::Neighbors(Neighbors {
                    nodes,
                    expiration
                })),
            any::<u64>().prop_map(|expiration| Message::EnrRequest(EnrRequest { expiration })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encode_decode_round_trips(message in arb_message(), secret in 1u8..=200) {
            let key = SecretKey::from_slice(&[secret; 32]).unwrap();
            let (datagram, hash) = encode(&message, &key);
            prop_assert!(datagram.len() <= MAX_PACKET_SIZE);
            let packet = decode(&datagram).unwrap();
            prop_assert_eq!(packet.message, message);
            prop_assert_eq!(packet.hash, hash);
            prop_assert_eq!(packet.sender, node_id_of(&key));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = decode(&bytes);
            let _ = decode_unexpired(&bytes, 0);
        }

        /// Arbitrary packet data behind a valid hash and type byte: the parsers see it.
        #[test]
        fn parsers_never_panic_on_arbitrary_data(kind in 0u8..8, data in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let mut datagram = vec![0u8; 97];
            datagram.push(kind);
            datagram.extend_from_slice(&data);
            let hash = keccak256(&datagram[32..]);
            datagram[..32].copy_from_slice(&hash);
            let _ = decode(&datagram);
            if let Some(kind) = PacketType::from_byte(kind) {
                let _ = decode_data(kind, &data);
            }
        }

        /// Valid packets with bytes mutated (hash fixed up): never a panic.
        #[test]
        fn mutated_packets_never_panic(message in arb_message(), at in any::<usize>(), byte in any::<u8>()) {
            let key = SecretKey::from_slice(&[5u8; 32]).unwrap();
            let (mut datagram, _) = encode(&message, &key);
            let at = HEADER_SIZE + at % (datagram.len() - HEADER_SIZE);
            datagram[at] = byte;
            let hash = keccak256(&datagram[32..]);
            datagram[..32].copy_from_slice(&hash);
            let _ = decode(&datagram);
        }
    }
}
