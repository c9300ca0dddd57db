//! secp256k1 signing and sender recovery for transactions, on k256 (the implementation
//! the rest of the workspace already builds).
//!
//! Signing is RFC 6979 deterministic and produces low-`s` signatures (EIP-2), so every
//! node that builds the devnet chain signs its transactions to the same bytes.

use alloy_primitives::{keccak256, Address, Signature, B256, U256};
use k256::ecdsa::{RecoveryId, SigningKey, VerifyingKey};

use crate::Error;

/// A secp256k1 secret key with its Ethereum address.
#[derive(Clone)]
pub struct SecretKey {
    key: SigningKey,
    address: Address,
}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.debug_struct("SecretKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A key from its 32-byte big-endian scalar.
    pub fn from_bytes(secret: &B256) -> Result<Self, Error> {
        let key = SigningKey::from_slice(secret.as_slice()).map_err(|_| Error::InvalidKey)?;
        let address = address_of(key.verifying_key());
        Ok(Self { key, address })
    }

    /// The Ethereum address: the last 20 bytes of keccak256 of the uncompressed public key.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte prehash (a transaction's signature hash).
    pub fn sign_hash(&self, hash: &B256) -> Signature {
        let (sig, recid) = self.key.sign_prehash_recoverable(hash.as_slice());
        let (r, s) = sig.split_bytes();
        Signature::new(
            U256::from_be_slice(r.as_slice()),
            U256::from_be_slice(s.as_slice()),
            recid.is_y_odd(),
        )
    }
}

/// The address of a public key.
fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_sec1_point(false);
    // Uncompressed SEC1: 0x04 || x || y; the address hashes x || y.
    let hash = keccak256(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..])
}

/// secp256k1's group order n.
const ORDER: U256 = U256::from_be_bytes(alloy_primitives::hex!(
    "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
));

/// The other valid ECDSA signature by the same key over the same hash: `s` replaced by
/// `n - s` and the parity flipped. Of a low-`s` signature, this is the high-`s` twin
/// that EIP-2 (and WIRE.md §7.1, for seals) refuses: the malleation those rules exist
/// to stop, for tests that try it.
pub fn high_s_twin(signature: &Signature) -> Signature {
    Signature::new(signature.r(), ORDER - signature.s(), !signature.v())
}

/// Recovers the signer of `hash`. Refuses high-`s` signatures (EIP-2) and anything that
/// is not a valid signature.
pub fn recover_signer(signature: &Signature, hash: &B256) -> Result<Address, Error> {
    let r = signature.r().to_be_bytes::<32>();
    let s = signature.s().to_be_bytes::<32>();
    let sig = k256::ecdsa::Signature::from_scalars(r, s).map_err(|_| Error::TxSignature)?;
    if sig.normalize_s() != sig {
        return Err(Error::TxSignature);
    }
    let recid = RecoveryId::new(signature.v(), false);
    let key = VerifyingKey::recover_from_prehash(hash.as_slice(), &sig, recid)
        .map_err(|_| Error::TxSignature)?;
    Ok(address_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_eips::eip2718::Decodable2718;
    use alloy_primitives::{address, hex};
    use devmux_eth::TransactionSigned;

    fn recover(raw_hex: &str) -> Address {
        let path = format!("{}/../eth/testdata/{raw_hex}", env!("CARGO_MANIFEST_DIR"));
        let raw = hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
        let tx = TransactionSigned::decode_2718_exact(&raw).unwrap();
        recover_signer(tx.signature(), &tx.signature_hash()).unwrap()
    }

    /// Senders of published mainnet transactions (alloy and reth test suites, etherscan).
    #[test]
    fn recovers_mainnet_senders() {
        assert_eq!(
            recover("mainnet-tx-legacy-280cde7c.hex"),
            address!("a12e1462d0ceD572f396F58B6E2D03894cD7C8a4")
        );
        assert_eq!(
            recover("mainnet-tx-1559-ce4dc6d7.hex"),
            address!("001e2b7dE757bA469a57bF6b23d982458a07eFcE")
        );
        assert_eq!(
            recover("mainnet-tx-1559-86718885.hex"),
            address!("95222290DD7278Aa3Ddd389Cc1E1d165CC4BAfe5")
        );
        // ethereum/tests ttEIP2930/accessListStorage32Bytes.
        assert_eq!(
            recover("ethtests-tx-2930-accessListStorage32Bytes.hex"),
            address!("ebe76799923fd62804659fb00b4f0f1a94c0eb1e")
        );
    }

    #[test]
    fn sign_then_recover_is_deterministic_and_low_s() {
        let key = SecretKey::from_bytes(&B256::repeat_byte(0x11)).unwrap();
        let hash = keccak256(b"devmux");
        let a = key.sign_hash(&hash);
        assert_eq!(a, key.sign_hash(&hash), "RFC 6979 signing is deterministic");
        assert_eq!(recover_signer(&a, &hash).unwrap(), key.address());
        // s must be in the lower half of the curve order.
        let half_n = U256::from_be_bytes(hex!(
            "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
        ));
        assert!(a.s() <= half_n);
        // The same signature with s flipped to n - s is refused.
        let high = high_s_twin(&a);
        assert!(a.s() + high.s() == ORDER && high.v() != a.v());
        assert!(recover_signer(&high, &hash).is_err());
    }

    #[test]
    fn bad_keys_and_signatures_are_errors() {
        assert!(SecretKey::from_bytes(&B256::ZERO).is_err());
        assert!(SecretKey::from_bytes(&B256::repeat_byte(0xff)).is_err());
        let zero = Signature::new(U256::ZERO, U256::ZERO, false);
        assert!(recover_signer(&zero, &B256::ZERO).is_err());
    }
}
