//! Entry points for the fuzz targets in `fuzz/` and their corpus replay. Not part of
//! the API.

use alloy_rlp::Decodable;

use crate::{DialFilter, DiscoveryConfig, Enr, ForkHash, ForkId};

/// A secret key the signed records of [`enr`] are built with.
const SIGNER: [u8; 32] = [0x42; 32];

/// ENRs as peers hand them to us (discv4's ENRResponse, discv5's NODES, DNS lists,
/// `--bootnodes`). Byte 0 picks the form: 0, a record's RLP (the `enr` crate checks
/// the signature, which the fuzzer rarely passes); 1, its `enr:` text; 2, entries
/// `klen ‖ key ‖ vlen ‖ value (raw RLP)` that this signs into a record, so the fuzzer
/// reaches what we read out of records: the dial filter (stacks, ports, address
/// scope, the `eth` entry and its fork), the `mux` port and the record's listing.
pub fn enr(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Ok(enr) = Enr::decode(&mut &rest[..]) {
                read(&enr);
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(view) = crate::probe::decode_enr(text) {
                let again = crate::probe::decode_enr(&view.text).expect("a record we print parses");
                assert_eq!(again.text, view.text);
            }
        }
        _ => {
            let Ok(key) = enr::CombinedKey::secp256k1_from_bytes(&mut SIGNER.clone()) else {
                return;
            };
            let mut builder = Enr::builder();
            let mut rest = rest;
            while let &[klen, ref tail @ ..] = rest {
                let (key, tail) = tail.split_at((usize::from(klen) % 8).min(tail.len()));
                let Some((&vlen, tail)) = tail.split_first() else {
                    break;
                };
                let (value, tail) = tail.split_at(usize::from(vlen).min(tail.len()));
                rest = tail;
                builder.add_value_rlp(key, alloy_rlp::Bytes::copy_from_slice(value));
            }
            // Entries that do not make a record (a bad value for a key the `enr`
            // crate checks, too large) are its refusals, not ours.
            if let Ok(enr) = builder.build(&key) {
                read(&enr);
            }
        }
    }
}

/// What we read out of a record, under the filter of a node running both stacks.
fn read(enr: &Enr) {
    let fork = ForkId {
        hash: ForkHash([0xde, 0xad, 0xbe, 0xef]),
        next: 0,
    };
    let config = DiscoveryConfig {
        rlpx_tcp_port: Some(30303),
        mux_tcp_port: Some(31303),
        eth: fork,
        ..DiscoveryConfig::default()
    };
    let local = enr::NodeId::new(&[9; 32]);
    for dial_local_targets in [false, true] {
        let config = DiscoveryConfig {
            dial_local_targets,
            ..config.clone()
        };
        if let Ok(candidate) = DialFilter::new(&config, local).check(enr) {
            // Same fork hash: a `next` we do not know is the remote's announcement.
            assert_eq!(
                candidate.fork.hash, fork.hash,
                "a candidate of another fork"
            );
            assert_eq!(Some(candidate.node_id), crate::secp256k1_node_id(enr));
            let addr = candidate
                .addr_for(candidate.stack)
                .expect("the chosen stack's address");
            assert_eq!(addr, candidate.tcp_addr());
            let _ = (
                candidate.enode(),
                candidate.multiaddr(),
                candidate.dial_url(),
            );
        }
    }
    let _ = crate::fork_id_of(enr);
    let _ = crate::mux_port(enr);
    let _ = crate::probe::view(enr);
}
