//! The ENR `eth` entry: `[[fork_hash, fork_next]]` (EIP-2124 fork id, EIP-2364 ENR entry),
//! on `alloy-eip2124`'s [`ForkId`] and `EnrForkIdEntry`, the same types the eth crate
//! uses for Status.
//!
//! This crate does not know the chain: it carries the node's own fork id as data and
//! asks a caller-supplied closure whether a remote one is compatible (the node wires the
//! eth crate's fork filter into it).

use alloy_eip2124::EnrForkIdEntry;
pub use alloy_eip2124::{ForkHash, ForkId};

use crate::Error;

/// The ENR key of the Ethereum fork id entry (EIP-2364).
pub const ETH_ENR_KEY: &str = "eth";

/// The ENR value of `fork`: RLP `[[fork_hash, fork_next]]`.
pub fn encode_enr_value(fork: ForkId) -> Vec<u8> {
    alloy_rlp::encode(EnrForkIdEntry::from(fork))
}

/// Decodes an ENR value `[[fork_hash, fork_next], ...]`.
///
/// Items after the fork id inside the outer list are ignored (EIP-8 forward
/// compatibility, as go-ethereum keeps them as an RLP tail for future extensions); an
/// inner list with more than the two items, and bytes after the outer list, are errors.
pub fn decode_enr_value(value: &[u8]) -> Result<ForkId, Error> {
    alloy_rlp::decode_exact::<EnrForkIdEntry>(value)
        .map(ForkId::from)
        .map_err(Error::InvalidEthEntry)
}

/// The `eth` entry of `enr`: `None` if it has none, `Some(Err(_))` if it is malformed.
pub fn fork_id_of(enr: &crate::Enr) -> Option<Result<ForkId, Error>> {
    enr.get_raw_rlp(ETH_ENR_KEY).map(decode_enr_value)
}

/// The value `enr::Builder::add_value` takes for `fork`.
pub(crate) fn enr_value(fork: ForkId) -> EnrForkIdEntry {
    EnrForkIdEntry::from(fork)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fork(hash: [u8; 4], next: u64) -> ForkId {
        ForkId {
            hash: ForkHash(hash),
            next,
        }
    }

    #[test]
    fn known_encoding() {
        // Mainnet-like values: [[0xfc64ec04, 1150000]]
        let entry = fork([0xfc, 0x64, 0xec, 0x04], 1_150_000);
        let bytes = encode_enr_value(entry);
        assert_eq!(hex::encode(&bytes), "cac984fc64ec0483118c30");
        assert_eq!(decode_enr_value(&bytes).unwrap(), entry);
        // next = 0 is the empty string.
        let zero = fork([1, 2, 3, 4], 0);
        assert_eq!(hex::encode(encode_enr_value(zero)), "c7c6840102030480");
    }

    #[test]
    fn rejects_malformed_and_accepts_tail() {
        for bad in [
            "",                   // empty
            "c6840102030480",     // not wrapped in the outer list
            "c0",                 // empty outer list
            "c7c684010203048000", // trailing byte after the outer list
            "c5c483010203",       // 3-byte hash, no next
            "c8c784010203048080", // inner list with an extra item
            "c8c785010203040580", // 5-byte hash
            "c7c6840102030481",   // truncated
            "84fc64ec04",         // a string
        ] {
            let bytes = hex::decode(bad).unwrap();
            assert!(decode_enr_value(&bytes).is_err(), "{bad}");
        }
        // An extra item after the fork id in the outer list is a tail: ignored.
        let tail = hex::decode("c8c684010203048001").unwrap();
        assert_eq!(decode_enr_value(&tail).unwrap(), fork([1, 2, 3, 4], 0));
    }

    proptest! {
        #[test]
        fn round_trip(hash in any::<[u8; 4]>(), next in any::<u64>()) {
            let entry = fork(hash, next);
            let bytes = encode_enr_value(entry);
            prop_assert_eq!(bytes.len(), alloy_rlp::Encodable::length(&enr_value(entry)));
            prop_assert_eq!(decode_enr_value(&bytes).unwrap(), entry);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(entry) = decode_enr_value(&bytes) {
                // Whatever decodes re-encodes to a prefix-compatible canonical form.
                let again = encode_enr_value(entry);
                prop_assert_eq!(decode_enr_value(&again).unwrap(), entry);
            }
        }

        #[test]
        fn mutated_encodings_never_panic(
            hash in any::<[u8; 4]>(),
            next in any::<u64>(),
            at in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<proptest::sample::Index>(),
        ) {
            // Near-valid input reaches deeper into the decoder than random bytes do.
            let mut bytes = encode_enr_value(fork(hash, next));
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_enr_value(&bytes);
            let keep = cut.index(bytes.len() + 1);
            let _ = decode_enr_value(&bytes[..keep]);
        }
    }
}
