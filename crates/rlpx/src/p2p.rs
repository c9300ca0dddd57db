//! The `p2p` capability (devp2p `rlpx.md`, "P2P Capability"): Hello,
//! Disconnect, Ping and Pong.
//!
//! On the wire a message is `rlp(msg-id) ‖ payload`; payloads after Hello are
//! Snappy-compressed when both sides speak `p2p` v5 or later.

use alloy_rlp::{Decodable, Encodable, Header};
use bytes::BufMut;

use crate::{capability::HelloCapability, snappy, DisconnectReason, Error, NodeId};

/// `p2p` protocol version we speak (rlpx.md: version 5 adds Snappy).
pub const P2P_VERSION: u64 = 5;

/// The first `p2p` version with Snappy compression (rlpx.md).
pub const SNAPPY_MIN_VERSION: u64 = 5;

/// Message id of Hello.
pub const HELLO_ID: u64 = 0x00;
/// Message id of Disconnect.
pub const DISCONNECT_ID: u64 = 0x01;
/// Message id of Ping.
pub const PING_ID: u64 = 0x02;
/// Message id of Pong.
pub const PONG_ID: u64 = 0x03;

/// Ping's and Pong's payload: the empty RLP list (rlpx.md: `0x02 []`, `0x03 []`).
pub const EMPTY_LIST_PAYLOAD: [u8; 1] = [0xc0];

/// The Hello message (rlpx.md: `0x00 [protocolVersion: P, clientId: B,
/// capabilities, listenPort: P, nodeKey: B_64, ...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// `p2p` version; ours is [`P2P_VERSION`]. Any version is accepted (EIP-8).
    pub protocol_version: u64,
    /// Free-form client name, e.g. `devmux/0.1.0`.
    pub client_id: String,
    /// Capabilities offered.
    pub capabilities: Vec<HelloCapability>,
    /// The TCP port the node listens on (0: none / unknown); informational.
    pub listen_port: u16,
    /// The node id: the 64-byte uncompressed secp256k1 public key.
    pub id: NodeId,
}

impl Hello {
    fn caps_payload_length(&self) -> usize {
        self.capabilities.iter().map(cap_length).sum()
    }

    fn payload_length(&self) -> usize {
        let caps = self.caps_payload_length();
        self.protocol_version.length()
            + self.client_id.as_bytes().length()
            + Header {
                list: true,
                payload_length: caps,
            }
            .length()
            + caps
            + self.listen_port.length()
            + self.id.as_slice().length()
    }

    /// Appends the RLP encoding (the message payload, without the id).
    pub fn encode(&self, out: &mut dyn BufMut) {
        Header {
            list: true,
            payload_length: self.payload_length(),
        }
        .encode(out);
        self.protocol_version.encode(out);
        self.client_id.as_bytes().encode(out);
        Header {
            list: true,
            payload_length: self.caps_payload_length(),
        }
        .encode(out);
        for cap in &self.capabilities {
            Header {
                list: true,
                payload_length: cap.name.as_bytes().length() + cap.version.length(),
            }
            .encode(out);
            cap.name.as_bytes().encode(out);
            cap.version.encode(out);
        }
        self.listen_port.encode(out);
        self.id.as_slice().encode(out);
    }

    /// The length of [`Hello::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let payload_length = self.payload_length();
        Header {
            list: true,
            payload_length,
        }
        .length()
            + payload_length
    }

    /// Decodes a Hello payload, liberally (EIP-8): extra list elements and
    /// trailing bytes are ignored, as are capabilities whose version does not
    /// fit in `u32`; a non-UTF-8 client id or capability name is decoded lossily.
    /// The `id` must be exactly 64 bytes.
    pub fn decode(payload: &[u8]) -> Result<Self, Error> {
        let mut buf = payload;
        let header = Header::decode(&mut buf)?;
        if !header.list {
            return Err(Error::InvalidMessage("hello is not a list"));
        }
        let mut body = buf
            .get(..header.payload_length)
            .ok_or(alloy_rlp::Error::InputTooShort)?;

        let protocol_version = u64::decode(&mut body)?;
        let client_id =
            String::from_utf8_lossy(Header::decode_bytes(&mut body, false)?).into_owned();

        let mut caps = Header::decode_bytes(&mut body, true)?;
        let mut capabilities = Vec::new();
        while !caps.is_empty() {
            let mut cap = Header::decode_bytes(&mut caps, true)?;
            let name = String::from_utf8_lossy(Header::decode_bytes(&mut cap, false)?).into_owned();
            let version = u64::decode(&mut cap)?;
            // Extra elements inside a capability entry are ignored too.
            if let Ok(version) = u32::try_from(version) {
                capabilities.push(HelloCapability { name, version });
            }
        }

        // Port values that do not fit a u16 are nonsense; it is informational.
        let listen_port = u16::try_from(u64::decode(&mut body)?).unwrap_or(0);
        let id = Header::decode_bytes(&mut body, false)?;
        let id: NodeId = id
            .try_into()
            .map_err(|_| Error::InvalidMessage("hello id is not 64 bytes"))?;
        Ok(Self {
            protocol_version,
            client_id,
            capabilities,
            listen_port,
            id,
        })
    }
}

fn cap_length(cap: &HelloCapability) -> usize {
    let payload_length = cap.name.as_bytes().length() + cap.version.length();
    Header {
        list: true,
        payload_length,
    }
    .length()
        + payload_length
}

/// The uncompressed Disconnect payload `[reason]`.
pub fn encode_disconnect(reason: DisconnectReason) -> [u8; 2] {
    // rlp([code]): 0xc1 then rlp(code), which is the byte itself for 1..=0x7f
    // and 0x80 (empty string) for 0.
    let code = reason.code();
    [0xc1, if code == 0 { 0x80 } else { code }]
}

/// Decodes a Disconnect payload, accepting every form seen in the wild
/// (WIRE.md §6): `[reason]` or a bare RLP integer, Snappy-compressed or not.
/// Integers are read leniently (leading zeros, a raw `0x00`). Returns `None`
/// for an unknown code or an unreadable payload; never panics.
pub fn decode_disconnect(payload: &[u8]) -> Option<DisconnectReason> {
    let code = match parse_reason(payload) {
        Some(code) => code,
        None => {
            // A Disconnect is a handful of bytes: refuse big claims outright.
            snappy::checked_decompress_len(payload, 64).ok()?;
            let decompressed = snap::raw::Decoder::new().decompress_vec(payload).ok()?;
            parse_reason(&decompressed)?
        }
    };
    DisconnectReason::try_from(code).ok()
}

/// `[int]` or `int`, consuming exactly `payload`.
fn parse_reason(payload: &[u8]) -> Option<u8> {
    let (&first, _) = payload.split_first()?;
    if first >= 0xc0 {
        let mut buf = payload;
        let header = Header::decode(&mut buf).ok()?;
        if !header.list || buf.len() != header.payload_length {
            return None;
        }
        // Lenient: the first item is the reason; more items are ignored.
        let mut item = buf;
        return parse_int(&mut item);
    }
    let mut buf = payload;
    let code = parse_int(&mut buf)?;
    buf.is_empty().then_some(code)
}

/// A small RLP integer, accepting non-canonical forms; `None` if it is not a
/// string or does not fit in a byte.
fn parse_int(buf: &mut &[u8]) -> Option<u8> {
    let (&first, rest) = buf.split_first()?;
    if first < 0x80 {
        *buf = rest;
        return Some(first);
    }
    if first > 0xb7 {
        return None;
    }
    let len = usize::from(first - 0x80);
    let (bytes, rest) = rest.split_at_checked(len)?;
    *buf = rest;
    let significant = bytes
        .iter()
        .position(|b| *b != 0)
        .map_or(&[][..], |i| &bytes[i..]);
    match significant {
        [] => Some(0),
        [b] => Some(*b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// EIP-8 "devp2p Base Protocol" test vector: a Hello "advertising version 22
    /// and containing a few additional list elements" (the bytes carry version
    /// 0x37, client id `kneth/v0.91/plan9`, capabilities eth/61 and mork/22,
    /// port 9999, then extra elements `["foo", "bar"], 3, 4`).
    #[test]
    fn eip8_hello_vector() {
        let input = unhex(
            "f87137916b6e6574682f76302e39312f706c616e39cdc5836574683dc6846d6f726b1682270fb840
             fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569
             bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877c883666f6f836261720304",
        );
        let hello = Hello::decode(&input).unwrap();
        assert_eq!(hello.protocol_version, 0x37);
        assert_eq!(hello.client_id, "kneth/v0.91/plan9");
        assert_eq!(
            hello.capabilities,
            vec![
                HelloCapability {
                    name: "eth".into(),
                    version: 61
                },
                HelloCapability {
                    name: "mork".into(),
                    version: 22
                },
            ]
        );
        assert_eq!(hello.listen_port, 9999);
        assert_eq!(
            hello.id.to_vec(),
            unhex(
                "fda1cff674c90c9a197539fe3dfb53086ace64f83ed7c6eabec741f7f381cc803e52ab2cd55d5569
                 bce4347107a310dfd5f88a010cd2ffd1005ca406f1842877"
            )
        );
    }

    #[test]
    fn disconnect_forms() {
        for reason in DisconnectReason::ALL {
            let code = reason.code();
            let list = encode_disconnect(reason);
            assert_eq!(decode_disconnect(&list), Some(reason));
            // Bare integer, canonical.
            let bare: Vec<u8> = if code == 0 { vec![0x80] } else { vec![code] };
            assert_eq!(decode_disconnect(&bare), Some(reason));
            // Compressed forms.
            for plain in [list.to_vec(), bare.clone()] {
                let compressed = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
                assert_eq!(
                    decode_disconnect(&compressed),
                    Some(reason),
                    "{compressed:02x?}"
                );
            }
        }
        // Non-canonical but seen: raw 0x00, a string with a leading zero.
        assert_eq!(
            decode_disconnect(&[0x00]),
            Some(DisconnectReason::DisconnectRequested)
        );
        assert_eq!(
            decode_disconnect(&[0xc2, 0x81, 0x04]),
            Some(DisconnectReason::TooManyPeers)
        );
        assert_eq!(
            decode_disconnect(&[0xc3, 0x82, 0x00, 0x04]),
            Some(DisconnectReason::TooManyPeers)
        );
        // Unknown codes and junk: None.
        assert_eq!(decode_disconnect(&[0xc1, 0x0c]), None);
        assert_eq!(decode_disconnect(&[0x7f]), None);
        assert_eq!(decode_disconnect(&[]), None);
        assert_eq!(decode_disconnect(&[0xc0]), None);
        assert_eq!(decode_disconnect(&[0xc1, 0x04, 0x00]), None);
        // A compressed blob claiming to be huge is not decompressed.
        assert_eq!(
            decode_disconnect(&[0x80, 0x80, 0x80, 0x80, 0x04, 0x00]),
            None
        );
    }

    #[test]
    fn empty_list_payloads() {
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&EMPTY_LIST_PAYLOAD)
            .unwrap();
        assert_eq!(compressed, vec![0x01, 0x00, 0xc0]);
    }

    fn arb_hello() -> impl Strategy<Value = Hello> {
        (
            any::<u64>(),
            ".{0,40}",
            prop::collection::vec(("[a-z0-9]{0,8}", any::<u32>()), 0..6),
            any::<u16>(),
            prop::array::uniform32(any::<u8>()),
            prop::array::uniform32(any::<u8>()),
        )
            .prop_map(|(protocol_version, client_id, caps, listen_port, a, b)| {
                let mut id = [0u8; 64];
                id[..32].copy_from_slice(&a);
                id[32..].copy_from_slice(&b);
                Hello {
                    protocol_version,
                    client_id,
                    capabilities: caps
                        .into_iter()
                        .map(|(name, version)| HelloCapability { name, version })
                        .collect(),
                    listen_port,
                    id,
                }
            })
    }

    proptest! {
        #[test]
        fn prop_hello_round_trip(hello in arb_hello(), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
            let mut out = Vec::new();
            hello.encode(&mut out);
            prop_assert_eq!(out.len(), hello.encoded_len());
            prop_assert_eq!(Hello::decode(&out).unwrap(), hello.clone());
            // Trailing bytes after the list are ignored.
            out.extend_from_slice(&trailing);
            prop_assert_eq!(Hello::decode(&out).unwrap(), hello);
        }

        #[test]
        fn prop_hello_random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Hello::decode(&data);
        }

        #[test]
        fn prop_disconnect_round_trip(index in 0usize..13, bare in any::<bool>(), compress in any::<bool>()) {
            let reason = DisconnectReason::ALL[index];
            // `[reason]` or a bare integer (WIRE.md §6), compressed or not.
            let mut payload = if bare {
                let mut out = Vec::new();
                reason.code().encode(&mut out);
                out
            } else {
                encode_disconnect(reason).to_vec()
            };
            if compress {
                payload = snap::raw::Encoder::new().compress_vec(&payload).unwrap();
            }
            prop_assert_eq!(decode_disconnect(&payload), Some(reason));
        }

        #[test]
        fn prop_disconnect_random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_disconnect(&data);
        }
    }
}
