//! The ENR `eth` entry: `[[fork_hash, fork_next]]` (EIP-2124 fork id, EIP-2364 ENR entry).
//!
//! This crate does not know the chain: it carries the node's own fork id as data and
//! asks a caller-supplied closure whether a remote one is compatible (the node wires the
//! eth crate's fork filter into it).

use alloy_rlp::{Decodable, Encodable, Header, RlpDecodable, RlpEncodable};

use crate::Error;

/// The ENR key of the Ethereum fork id entry (EIP-2364).
pub const ETH_ENR_KEY: &str = "eth";

/// An EIP-2124 fork id as carried in the ENR `eth` entry: RLP `[fork_hash: B_4, fork_next: P]`.
///
/// The ENR value wraps it in one more list (`[[fork_hash, fork_next]]`, EIP-2364); use
/// [`ForkIdEntry::encode_enr_value`] and [`ForkIdEntry::decode_enr_value`] for that form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, RlpEncodable, RlpDecodable)]
pub struct ForkIdEntry {
    /// `FORK_HASH`: CRC32 of the genesis hash and every passed fork, big-endian.
    pub hash: [u8; 4],
    /// `FORK_NEXT`: the next fork's block number or timestamp, 0 if none is known.
    pub next: u64,
}

impl ForkIdEntry {
    /// A fork id from its hash and next fork.
    pub const fn new(hash: [u8; 4], next: u64) -> Self {
        Self { hash, next }
    }

    /// The ENR value: RLP `[[fork_hash, fork_next]]`.
    pub fn encode_enr_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(EnrValue(*self).length());
        EnrValue(*self).encode(&mut out);
        out
    }

    /// Decodes an ENR value `[[fork_hash, fork_next], ...]`.
    ///
    /// Items after the fork id inside the outer list are ignored, as go-ethereum does
    /// (its `enrEntry` keeps them as an RLP tail for future extensions); bytes after the
    /// outer list are an error.
    pub fn decode_enr_value(mut value: &[u8]) -> Result<Self, Error> {
        let buf = &mut value;
        let mut payload = Header::decode_bytes(buf, true).map_err(Error::InvalidEthEntry)?;
        if !buf.is_empty() {
            return Err(Error::InvalidEthEntry(alloy_rlp::Error::UnexpectedLength));
        }
        ForkIdEntry::decode(&mut payload).map_err(Error::InvalidEthEntry)
    }

    /// The `eth` entry of `enr`: `None` if it has none, `Some(Err(_))` if it is malformed.
    pub fn from_enr(enr: &crate::Enr) -> Option<Result<Self, Error>> {
        enr.get_raw_rlp(ETH_ENR_KEY).map(Self::decode_enr_value)
    }
}

/// `[[fork_hash, fork_next]]`, the form `enr::Builder::add_value` wants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnrValue(pub(crate) ForkIdEntry);

impl Encodable for EnrValue {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        Header {
            list: true,
            payload_length: self.0.length(),
        }
        .encode(out);
        self.0.encode(out);
    }

    fn length(&self) -> usize {
        let inner = self.0.length();
        inner + alloy_rlp::length_of_length(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encoding() {
        // Mainnet-like values: [[0xfc64ec04, 1150000]]
        let entry = ForkIdEntry::new([0xfc, 0x64, 0xec, 0x04], 1_150_000);
        let bytes = entry.encode_enr_value();
        assert_eq!(hex::encode(&bytes), "cac984fc64ec0483118c30");
        assert_eq!(ForkIdEntry::decode_enr_value(&bytes).unwrap(), entry);
        // next = 0 is the empty string.
        let zero = ForkIdEntry::new([1, 2, 3, 4], 0);
        assert_eq!(hex::encode(zero.encode_enr_value()), "c7c6840102030480");
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
            assert!(ForkIdEntry::decode_enr_value(&bytes).is_err(), "{bad}");
        }
        // An extra item after the fork id in the outer list is a tail: ignored.
        let tail = hex::decode("c8c684010203048001").unwrap();
        assert_eq!(
            ForkIdEntry::decode_enr_value(&tail).unwrap(),
            ForkIdEntry::new([1, 2, 3, 4], 0)
        );
    }

    proptest! {
        #[test]
        fn round_trip(hash in any::<[u8; 4]>(), next in any::<u64>()) {
            let entry = ForkIdEntry::new(hash, next);
            let bytes = entry.encode_enr_value();
            prop_assert_eq!(bytes.len(), EnrValue(entry).length());
            prop_assert_eq!(ForkIdEntry::decode_enr_value(&bytes).unwrap(), entry);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(entry) = ForkIdEntry::decode_enr_value(&bytes) {
                // Whatever decodes re-encodes to a prefix-compatible canonical form.
                let again = entry.encode_enr_value();
                prop_assert_eq!(ForkIdEntry::decode_enr_value(&again).unwrap(), entry);
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
            let mut bytes = ForkIdEntry::new(hash, next).encode_enr_value();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = ForkIdEntry::decode_enr_value(&bytes);
            let keep = cut.index(bytes.len() + 1);
            let _ = ForkIdEntry::decode_enr_value(&bytes[..keep]);
        }
    }
}
