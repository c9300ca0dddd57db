//! The fuzz targets' bodies: plain functions over bytes a peer (or an operator) could
//! hand us, each calling one family of the project's parsers and checking what must
//! hold when they accept something. The fuzz crate wraps each in `fuzz_target!`; the
//! workspace test `fuzz_corpus` (tests/it/fuzz_corpus.rs) runs them, uninstrumented, on
//! every file of `fuzz/corpus/<target>/`. Keep them free of anything but the crates'
//! public APIs (and their `fuzzing` entry points).

use devmux_eth::alloy_eips::eip2718::Decodable2718;
use devmux_eth::alloy_rlp::{self, Decodable};
use devmux_eth::{DecodeLimits, EthMessage, EthVersion};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its corpus directory name and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("registrar_frame", registrar_frame),
    ("noise_payload", noise_payload),
    ("identify_goodbye", identify_goodbye),
    ("rlpx_handshake", rlpx_handshake),
    ("rlpx_p2p", rlpx_p2p),
    ("eth_message", eth_message),
    ("eth_status_forkid", eth_status_forkid),
    ("text_inputs", text_inputs),
    ("discovery_packets", discovery_packets),
    ("noise_frames", noise_frames),
    ("rlpx_frames", rlpx_frames),
    ("enr", enr),
];

/// Registrar framing (WIRE.md §1): whatever decodes re-encodes to the bytes it took.
pub fn registrar_frame(data: &[u8]) {
    let mut buf = bytes::BytesMut::from(data);
    loop {
        let before = buf.clone();
        match devmux_network::decode_frame(&mut buf, 1 << 20) {
            Ok(Some(msg)) => {
                let taken = before.len() - buf.len();
                let mut again = bytes::BytesMut::new();
                devmux_network::encode_frame(&msg, &mut again);
                // A frame may encode its length with more varint bytes than needed
                // only if the decoder accepted it; canonical ones round-trip exactly.
                if again.len() == taken {
                    assert_eq!(&again[..], &before[..taken]);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
}

/// The Noise handshake payload (protobuf key and signature).
pub fn noise_payload(data: &[u8]) {
    devmux_transport::fuzzing::noise_payload(data);
}

/// identify (selector byte even) and goodbye (odd).
pub fn identify_goodbye(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        devmux_network::fuzzing::identify(rest);
    } else {
        devmux_network::fuzzing::goodbye(rest);
    }
}

/// ECIES auth and ack bodies after decryption, in both encodings.
pub fn rlpx_handshake(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let eip8 = selector & 1 == 1;
    if selector & 2 == 0 {
        devmux_rlpx::fuzzing::auth_body(rest, eip8);
    } else {
        devmux_rlpx::fuzzing::ack_body(rest, eip8);
    }
}

/// The p2p capability: Hello (which must re-encode to what decodes the same),
/// Disconnect, and Snappy's length check before any allocation.
pub fn rlpx_p2p(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Ok(hello) = devmux_rlpx::Hello::decode(rest) {
                let mut out = Vec::new();
                hello.encode(&mut out);
                let again = devmux_rlpx::Hello::decode(&out).expect("our Hello decodes");
                assert_eq!(again, hello);
            }
        }
        1 => {
            let _ = devmux_rlpx::p2p::decode_disconnect(rest);
        }
        _ => {
            if let Ok(len) = devmux_rlpx::snappy::checked_decompress_len(rest, 16 << 20) {
                assert!(len <= 16 << 20);
            }
        }
    }
}

/// eth messages: byte 0 picks the version, byte 1 the code; what decodes under the
/// devnet's limits re-encodes and decodes to the same message.
pub fn eth_message(data: &[u8]) {
    let [v, code, payload @ ..] = data else {
        return;
    };
    let version = EthVersion::ALL[*v as usize % EthVersion::ALL.len()];
    let Ok(msg) = EthMessage::decode_bounded(version, *code, payload, &DecodeLimits::devnet())
    else {
        return;
    };
    let (code2, payload2) = msg.encode_for(version).expect("a decoded message encodes");
    assert_eq!(code2, *code);
    let again = EthMessage::decode(version, code2, &payload2).expect("our encoding decodes");
    assert_eq!(again, msg);
}

/// Status for every version, a bare fork id, and the ENR `eth` entry.
pub fn eth_status_forkid(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            for version in EthVersion::ALL {
                let _ = EthMessage::decode(version, 0, rest);
            }
        }
        1 => {
            if let Ok(id) = alloy_rlp::decode_exact::<devmux_eth::ForkId>(rest) {
                assert_eq!(alloy_rlp::encode(id), rest, "a fork id has one encoding");
            }
        }
        _ => {
            if let Ok(id) = devmux_discovery::decode_enr_value(rest) {
                let again = devmux_discovery::encode_enr_value(id);
                assert_eq!(devmux_discovery::decode_enr_value(&again).ok(), Some(id));
            }
        }
    }
}

/// What operators and RPC clients hand us: enode URLs, multiaddrs, the TOML config
/// (as text), and `eth_sendRawTransaction`'s EIP-2718 bytes.
pub fn text_inputs(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(enode) = text.parse::<devmux_identity::Enode>() {
            let again: devmux_identity::Enode = enode.to_string().parse().expect("reparses");
            assert_eq!(again.id, enode.id);
        }
        if let Ok(addr) = text.parse::<devmux_identity::Multiaddr>() {
            let _ = devmux_identity::parse_peer_multiaddr(&addr);
        }
        let _ = devmux_node::NodeConfig::from_toml_str(text, "fuzz");
        // A genesis file (`--genesis`): parsed, its genesis hash and fork id computed.
        if let Ok(spec) = devmux_chain::ChainSpec::from_genesis_json(text, "fuzz") {
            let _ = spec.genesis_hash();
            let _ = spec.fork_id(devmux_eth::Head::default());
        }
    }
    let mut slice = data;
    let _ = devmux_eth::PooledTransaction::decode_2718(&mut slice);
    let _ = <devmux_eth::Header as Decodable>::decode(&mut &data[..]);
}

/// Discovery input we parse ourselves: discv4 datagrams (selector 0: as received;
/// selector 1: with the hash made to match, so the fuzzer gets past it to the RLP) and
/// DNS node list entries (selector 2, EIP-1459 text: what parses renders and parses
/// back to the same).
pub fn discovery_packets(data: &[u8]) {
    use devmux_discovery::dns::{Entry, Link, Root};
    use devmux_discovery::v4::packet;
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let _ = packet::decode(rest);
        }
        1 => {
            let mut datagram = vec![0; 32];
            datagram.extend_from_slice(rest);
            let hash = packet::keccak256(&datagram[32..]);
            datagram[..32].copy_from_slice(&hash);
            if let Ok(packet) = packet::decode(&datagram) {
                assert_eq!(packet.hash, hash);
                assert!(packet::is_valid_node_id(&packet.sender));
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(entry) = Entry::parse(text) {
                let again = Entry::parse(&entry.to_string()).expect("a rendered entry parses");
                assert_eq!(again.to_string(), entry.to_string());
            }
            if let Ok(root) = Root::parse(text) {
                assert_eq!(Root::parse(&root.to_string()).expect("reparses"), root);
            }
            if let Ok(link) = Link::parse(text) {
                assert_eq!(Link::parse(&link.to_string()).expect("reparses"), link);
            }
        }
    }
}

/// Noise transport messages after the handshake, sealed with known keys so the
/// fuzzer gets past the tag; garbage and tampered messages mixed in. The reader hands
/// out exactly what was sealed before the first bad message, then fails.
pub fn noise_frames(data: &[u8]) {
    devmux_transport::fuzzing::noise_frames(data);
}

/// RLPx frames after their MACs: true and lying headers, message ids, the capability
/// table, Snappy and the limits, read by a session's reading side.
pub fn rlpx_frames(data: &[u8]) {
    devmux_rlpx::fuzzing::session_frames(data);
}

/// ENRs: a record's RLP, its `enr:` text, and records signed from the fuzzer's
/// entries, read by the dial filter and the record listing.
pub fn enr(data: &[u8]) {
    devmux_discovery::fuzzing::enr(data);
}
