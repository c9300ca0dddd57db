//! ECIES as RLPx uses it (devp2p `rlpx.md`, "ECIES Encryption").
//!
//! `ecies.encrypt(K_B, m, s2)`: pick a random key `r`, `R = r·G`;
//! `S = Px` where `(Px, Py) = r·K_B`; `kE ‖ kM = KDF(S, 32)` (NIST SP 800-56
//! concatenation KDF with SHA-256, empty `s1`); `iv` random;
//! `c = AES-128-CTR(kE, iv, m)`; `d = HMAC-SHA256(sha256(kM), iv ‖ c ‖ s2)`;
//! the output is `R ‖ iv ‖ c ‖ d` (R uncompressed, 65 bytes).
//! For EIP-8 packets `s2` is the 2-byte size prefix; pre-EIP-8 packets use none.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use secp256k1::{ecdh, PublicKey, SecretKey, SECP256K1};
use sha2::{Digest, Sha256};

use crate::Error;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha256 = Hmac<Sha256>;

/// Length of the uncompressed ephemeral public key `R` (rlpx.md).
const PUBKEY_LEN: usize = 65;
/// AES block / IV length.
const IV_LEN: usize = 16;
/// HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;

/// Bytes ECIES adds to a plaintext: `R` (65) + `iv` (16) + `d` (32) = 113 (rlpx.md).
pub(crate) const ECIES_OVERHEAD: usize = PUBKEY_LEN + IV_LEN + TAG_LEN;

/// The x coordinate of `sk·pk` (rlpx.md: ECDH "agreed upon secret").
pub(crate) fn ecdh_x(pk: &PublicKey, sk: &SecretKey) -> [u8; 32] {
    let xy = ecdh::shared_secret_point(pk, sk);
    let mut x = [0u8; 32];
    x.copy_from_slice(&xy[..32]);
    x
}

/// `kE` (AES-128 key) and `sha256(kM)` (HMAC key) from the shared secret.
fn derive_keys(shared_x: &[u8; 32]) -> ([u8; 16], [u8; 32]) {
    // NIST SP 800-56 concatenation KDF: K(1) = SHA-256(counter=1 (u32 BE) ‖ Z ‖ s1),
    // s1 empty. 32 bytes of key material is exactly one block.
    let mut kdf = Sha256::new();
    kdf.update(1u32.to_be_bytes());
    kdf.update(shared_x);
    let key_material: [u8; 32] = kdf.finalize().into();
    let (ke, km) = key_material.split_at(16);
    let mut ke_out = [0u8; 16];
    ke_out.copy_from_slice(ke);
    (ke_out, Sha256::digest(km).into())
}

fn hmac(key: &[u8; 32], iv: &[u8], ciphertext: &[u8], shared_mac_data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(shared_mac_data);
    mac
}

/// A random valid secret key.
pub(crate) fn random_secret_key<R: RngCore + CryptoRng>(rng: &mut R) -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        // Fails with probability ~2^-128 (zero or ≥ the group order).
        if let Ok(key) = SecretKey::from_byte_array(&bytes) {
            return key;
        }
    }
}

/// The random key `r` of one `ecies.encrypt`, with `R = r·G` already computed:
/// made ahead of time, it keeps a scalar multiplication off the handshake's path.
pub(crate) struct EphemeralKey {
    secret: SecretKey,
    public: [u8; PUBKEY_LEN],
}

impl EphemeralKey {
    pub(crate) fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let secret = random_secret_key(rng);
        Self {
            secret,
            public: PublicKey::from_secret_key(SECP256K1, &secret).serialize_uncompressed(),
        }
    }
}

/// Appends `ecies.encrypt(remote, plaintext, shared_mac_data)` with the random key
/// `ephemeral` (use each once) to `out`, encrypting in place in `out`.
pub(crate) fn encrypt<R: RngCore + CryptoRng>(
    rng: &mut R,
    ephemeral: &EphemeralKey,
    remote: &PublicKey,
    plaintext: &[u8],
    shared_mac_data: &[u8],
    out: &mut Vec<u8>,
) {
    let (ke, km) = derive_keys(&ecdh_x(remote, &ephemeral.secret));
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);

    out.reserve(plaintext.len() + ECIES_OVERHEAD);
    out.extend_from_slice(&ephemeral.public);
    out.extend_from_slice(&iv);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let ciphertext = &mut out[start..];
    Aes128Ctr::new(&ke.into(), &iv.into()).apply_keystream(ciphertext);
    let tag = hmac(&km, &iv, ciphertext, shared_mac_data)
        .finalize()
        .into_bytes();
    out.extend_from_slice(&tag);
}

/// `ecies.decrypt`: the plaintext of `data` (`R ‖ iv ‖ c ‖ d`), after checking
/// the HMAC over `iv ‖ c ‖ shared_mac_data` in constant time.
pub(crate) fn decrypt(
    secret: &SecretKey,
    data: &[u8],
    shared_mac_data: &[u8],
) -> Result<Vec<u8>, Error> {
    let (r, rest) = data
        .split_at_checked(PUBKEY_LEN)
        .ok_or(Error::EciesDecrypt)?;
    let (iv, rest) = rest.split_at_checked(IV_LEN).ok_or(Error::EciesDecrypt)?;
    let tag_at = rest.len().checked_sub(TAG_LEN).ok_or(Error::EciesDecrypt)?;
    let (ciphertext, tag) = rest.split_at(tag_at);

    // Only the uncompressed form (0x04), as go-ethereum reads it: libsecp256k1
    // would also take the hybrid forms 0x06/0x07, and R is outside the MAC, so a
    // flipped prefix bit would otherwise still decrypt.
    if r.first() != Some(&0x04) {
        return Err(Error::EciesDecrypt);
    }
    let r = PublicKey::from_slice(r).map_err(|_| Error::EciesDecrypt)?;
    let (ke, km) = derive_keys(&ecdh_x(&r, secret));
    hmac(&km, iv, ciphertext, shared_mac_data)
        .verify_slice(tag)
        .map_err(|_| Error::EciesDecrypt)?;

    let mut plaintext = ciphertext.to_vec();
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Error::EciesDecrypt)?;
    Aes128Ctr::new(&ke.into(), &iv.into()).apply_keystream(&mut plaintext);
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::thread_rng;

    #[test]
    fn round_trip_and_tamper() {
        let mut rng = thread_rng();
        let sk = random_secret_key(&mut rng);
        let pk = PublicKey::from_secret_key(SECP256K1, &sk);
        let mut packet = Vec::new();
        let r = EphemeralKey::generate(&mut rng);
        encrypt(&mut rng, &r, &pk, b"hello ecies", b"\x01\x02", &mut packet);
        assert_eq!(packet.len(), 11 + ECIES_OVERHEAD);
        assert_eq!(decrypt(&sk, &packet, b"\x01\x02").unwrap(), b"hello ecies");
        // Wrong shared MAC data, wrong key, flipped bits, truncation: all refused.
        assert!(decrypt(&sk, &packet, b"").is_err());
        let other = random_secret_key(&mut rng);
        assert!(decrypt(&other, &packet, b"\x01\x02").is_err());
        for i in 0..packet.len() {
            let mut bad = packet.clone();
            bad[i] ^= 0x01;
            assert!(decrypt(&sk, &bad, b"\x01\x02").is_err(), "flip at {i}");
        }
        for len in 0..packet.len() {
            assert!(decrypt(&sk, &packet[..len], b"\x01\x02").is_err());
        }
    }

    #[test]
    fn hybrid_ephemeral_key_is_refused() {
        let mut rng = thread_rng();
        let sk = random_secret_key(&mut rng);
        let pk = PublicKey::from_secret_key(SECP256K1, &sk);
        let mut packet = Vec::new();
        let r = EphemeralKey::generate(&mut rng);
        encrypt(&mut rng, &r, &pk, b"hello ecies", b"", &mut packet);
        // 0x06 / 0x07 name the same point when they match y's parity: still refused.
        for prefix in [0x06u8, 0x07] {
            let mut bad = packet.clone();
            bad[0] = prefix;
            assert!(decrypt(&sk, &bad, b"").is_err(), "prefix {prefix:#x}");
        }
    }
}
