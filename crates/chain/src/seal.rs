//! Block seals of the devnet (WIRE.md §7.1): who may extend the chain.
//!
//! Every block after genesis carries, as its whole extra data, a 65-byte secp256k1
//! signature `r ‖ s ‖ v` over its [`signing_hash`] by one of the network's signers
//! ([`crate::HeaderRules::signers`]). Without it any peer could announce a longer or
//! heavier chain and rewrite a node's history. Seals are RFC 6979 deterministic and
//! low-`s`, so every implementation seals a header to the same bytes and nobody can mint
//! a second hash for an honest block by flipping `s`.
//!
//! ```
//! use devmux_chain::{devnet, seal};
//!
//! # fn main() -> Result<(), devmux_chain::Error> {
//! let key = devnet::dev_key(0)?;
//! let mut header = devnet::genesis_header();
//! header.number = 1;
//! seal::seal(&mut header, &key);
//! assert_eq!(header.extra_data.len(), seal::SEAL_LEN);
//! assert_eq!(seal::sealer(&header), Ok(key.address()));
//! # Ok(())
//! # }
//! ```

use alloy_primitives::{Address, Bytes, Signature, B256, U256};
use devmux_eth::Header;

use crate::signing::{recover_signer, SecretKey};

/// Length of a seal: `r` (32) ‖ `s` (32) ‖ `v` (1).
pub const SEAL_LEN: usize = 65;

/// The hash a seal signs: keccak256 of the RLP header with its extra data emptied (every
/// other field, the base fee included, as in the block).
pub fn signing_hash(header: &Header) -> B256 {
    let mut unsealed = header.clone();
    unsealed.extra_data = Bytes::new();
    unsealed.hash_slow()
}

/// Seals `header` with `key`: its extra data becomes the 65-byte seal.
pub fn seal(header: &mut Header, key: &SecretKey) {
    let signature = key.sign_hash(&signing_hash(header));
    let mut extra = [0u8; SEAL_LEN];
    extra[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
    extra[32..64].copy_from_slice(&signature.s().to_be_bytes::<32>());
    extra[64] = u8::from(signature.v());
    header.extra_data = Bytes::copy_from_slice(&extra);
}

/// Why a seal is refused: [`sealer`]'s error, said in a few words.
pub type SealFault = &'static str;

/// The address that sealed `header`: one secp256k1 recovery, after the cheap checks of
/// the seal's form. Refused: extra data that is not exactly 65 bytes, `v` other than 0
/// or 1, a high `s` (EIP-2), or a signature that recovers to no key.
pub fn sealer(header: &Header) -> Result<Address, SealFault> {
    let extra = header.extra_data.as_ref();
    if extra.len() != SEAL_LEN {
        return Err("extra data is not a 65-byte seal");
    }
    let parity = match extra[64] {
        0 => false,
        1 => true,
        _ => return Err("seal v is neither 0 nor 1"),
    };
    let signature = Signature::new(
        U256::from_be_slice(&extra[..32]),
        U256::from_be_slice(&extra[32..64]),
        parity,
    );
    if signature.normalize_s().is_some() {
        return Err("seal s is in the upper half of the curve order");
    }
    recover_signer(&signature, &signing_hash(header))
        .map_err(|_| "seal does not recover to a public key")
}

/// `header` with its seal replaced by the seal's high-`s` twin
/// ([`crate::signing::high_s_twin`]): the same signer, another block hash, and refused
/// by [`sealer`]. For tests that try to mint a second hash for an honest block.
pub fn high_s_twin(header: &Header) -> Header {
    let mut twin = header.clone();
    if let [r @ .., v] = header.extra_data.as_ref() {
        if r.len() == 64 {
            let signature = Signature::new(
                U256::from_be_slice(&r[..32]),
                U256::from_be_slice(&r[32..]),
                *v == 1,
            );
            let high = crate::signing::high_s_twin(&signature);
            let mut extra = [0u8; SEAL_LEN];
            extra[..32].copy_from_slice(&high.r().to_be_bytes::<32>());
            extra[32..64].copy_from_slice(&high.s().to_be_bytes::<32>());
            extra[64] = u8::from(high.v());
            twin.extra_data = Bytes::copy_from_slice(&extra);
        }
    }
    twin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet;

    fn sealed_block_1() -> Header {
        devnet::Devnet::new()
            .unwrap()
            .blocks(1)
            .next()
            .unwrap()
            .header
    }

    #[test]
    fn devnet_blocks_are_sealed_by_dev_key_0() {
        let header = sealed_block_1();
        assert_eq!(header.extra_data.len(), SEAL_LEN);
        assert_eq!(sealer(&header), Ok(devnet::dev_key(0).unwrap().address()));
        // The signing hash ignores the seal itself, and nothing else.
        let mut other = header.clone();
        other.extra_data = Bytes::from_static(b"anything");
        assert_eq!(signing_hash(&other), signing_hash(&header));
        other.timestamp += 1;
        assert_ne!(signing_hash(&other), signing_hash(&header));
        // A seal over different contents recovers to someone else.
        other.extra_data = header.extra_data.clone();
        assert_ne!(sealer(&other), sealer(&header));
    }

    /// libsecp256k1 (a second implementation, also RFC 6979 and low-`s`) seals the same
    /// header to the same 65 bytes, and recovers the same signer: the seal format is
    /// pinned by the spec, not by this code.
    #[test]
    fn libsecp256k1_seals_identically() {
        use secp256k1::{Message, SecretKey as CSecret, SECP256K1};
        for header in devnet::Devnet::new().unwrap().blocks(8).map(|b| b.header) {
            let hash = signing_hash(&header);
            let secret = CSecret::from_byte_array(&devnet::dev_secret(0).0).unwrap();
            let message = Message::from_digest(hash.0);
            let (recid, compact) = SECP256K1
                .sign_ecdsa_recoverable(&message, &secret)
                .serialize_compact();
            let mut expected = compact.to_vec();
            expected.push(i32::from(recid) as u8);
            assert_eq!(header.extra_data.as_ref(), expected.as_slice());

            let public = secret.public_key(SECP256K1).serialize_uncompressed();
            let address = Address::from_slice(&alloy_primitives::keccak256(&public[1..])[12..]);
            assert_eq!(sealer(&header), Ok(address));
        }
    }

    #[test]
    fn malformed_seals_are_refused() {
        let header = sealed_block_1();
        let with_extra = |extra: Vec<u8>| {
            let mut h = header.clone();
            h.extra_data = extra.into();
            sealer(&h)
        };
        assert!(with_extra(Vec::new()).is_err());
        assert!(with_extra(header.extra_data[..64].to_vec()).is_err());
        let mut long = header.extra_data.to_vec();
        long.push(0);
        assert!(with_extra(long).is_err());
        let mut bad_v = header.extra_data.to_vec();
        bad_v[64] = 27;
        assert_eq!(with_extra(bad_v), Err("seal v is neither 0 nor 1"));
        assert!(with_extra(vec![0; SEAL_LEN]).is_err());

        // The same signature with s replaced by n - s (and v flipped) is the other valid
        // ECDSA signature of the same key; it must be refused, or anyone could re-seal an
        // honest block to a second hash.
        let high_s = high_s_twin(&header).extra_data.to_vec();
        assert_ne!(high_s, header.extra_data.to_vec());
        assert_eq!(
            with_extra(high_s),
            Err("seal s is in the upper half of the curve order")
        );
    }
}
