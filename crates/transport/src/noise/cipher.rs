//! The transport ciphers after the handshake.

use std::io;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::Error;

/// The transport ciphers after the handshake: ChaCha20-Poly1305 keyed from the
/// Noise `Split()`, nonces counted per direction as Noise does (32 zero bits,
/// then the 64-bit counter little-endian; empty associated data). Working with
/// ring directly lets messages be sealed and opened in place in the stream's
/// buffers: no staging copy on either side.
///
/// The keys are kept as their 32 bytes and made into ring keys per message: a
/// ring `LessSafeKey` is sized for its largest algorithm (an AES key schedule,
/// about 540 bytes), so two of them were a KiB on every connection, where making
/// a ChaCha20 key is a copy of 32 bytes.
pub(super) struct Ciphers {
    send: [u8; 32],
    send_nonce: u64,
    recv: [u8; 32],
    recv_nonce: u64,
}

impl Ciphers {
    pub(super) fn new(send: &[u8; 32], recv: &[u8; 32]) -> Result<Self, Error> {
        // Rejected here, once, if ever: every later `key` of the same bytes succeeds.
        key(send)
            .and(key(recv))
            .map_err(|_| Error::Noise("transport key rejected".into()))?;
        Ok(Self {
            send: *send,
            send_nonce: 0,
            recv: *recv,
            recv_nonce: 0,
        })
    }

    /// Encrypts `plaintext` in place as the next message we send; returns its tag,
    /// which follows the ciphertext on the wire.
    pub(super) fn seal_in_place(&mut self, plaintext: &mut [u8]) -> io::Result<aead::Tag> {
        let nonce = Self::nonce(&mut self.send_nonce)?;
        key(&self.send)
            .and_then(|k| k.seal_in_place_separate_tag(nonce, Aad::empty(), plaintext))
            .map_err(|_| io::Error::other("noise encryption failed"))
    }

    /// Decrypts `message` (ciphertext then tag) in place as the next message we
    /// receive; returns the plaintext's length (it starts at `message[0]`).
    pub(super) fn open_in_place(&mut self, message: &mut [u8]) -> io::Result<usize> {
        let nonce = Self::nonce(&mut self.recv_nonce)?;
        key(&self.recv)
            .and_then(|k| {
                k.open_in_place(nonce, Aad::empty(), message)
                    .map(|plain| plain.len())
            })
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "noise decryption failed"))
    }

    fn nonce(n: &mut u64) -> io::Result<Nonce> {
        // Noise reserves 2^64-1; a session never gets near it, but never reuse a nonce.
        if *n == u64::MAX {
            return Err(io::Error::other("noise nonce exhausted"));
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_le_bytes());
        *n += 1;
        Ok(Nonce::assume_unique_for_key(bytes))
    }
}

fn key(bytes: &[u8; 32]) -> Result<LessSafeKey, ring::error::Unspecified> {
    UnboundKey::new(&aead::CHACHA20_POLY1305, bytes).map(LessSafeKey::new)
}

/// Runs the split of a finished handshake: (initiator→responder, responder→initiator) keys.
pub(super) fn split(hs: &mut snow::HandshakeState) -> Result<Ciphers, Error> {
    if !hs.is_handshake_finished() {
        return Err(Error::Noise("handshake not finished".into()));
    }
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    if hs.is_initiator() {
        Ciphers::new(&i2r, &r2i)
    } else {
        Ciphers::new(&r2i, &i2r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{MAX_PLAINTEXT, NOISE_PARAMS, TAG_LEN};
    use proptest::prelude::*;

    /// Runs an XX handshake between two snow states in memory (snow's own resolver,
    /// not ours), and returns, for each side, our ciphers from its `Split()` and
    /// snow's transport state from the same handshake.
    fn both_ways() -> [(Ciphers, snow::TransportState); 2] {
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
        let keys = |_| {
            snow::Builder::new(params.clone())
                .generate_keypair()
                .unwrap()
        };
        let (ki, kr) = (keys(0), keys(1));
        let mut i = snow::Builder::new(params.clone())
            .local_private_key(&ki.private)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(params.clone())
            .local_private_key(&kr.private)
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut msg, mut out) = (vec![0u8; 1024], vec![0u8; 1024]);
        // -> e; <- e, ee, s, es; -> s, se
        for initiator_writes in [true, false, true] {
            let (from, to) = if initiator_writes {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let n = from.write_message(b"payload", &mut msg).unwrap();
            to.read_message(&msg[..n], &mut out).unwrap();
        }
        let ours_i = split(&mut i).unwrap();
        let ours_r = split(&mut r).unwrap();
        [
            (ours_i, i.into_transport_mode().unwrap()),
            (ours_r, r.into_transport_mode().unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Our ring ciphers and snow's transport state agree byte for byte, message
        /// after message (nonces advancing alike), in both directions: what we seal,
        /// snow opens and seals identically; what snow seals, we open.
        #[test]
        fn our_transport_ciphers_match_snows(
            messages in proptest::collection::vec(
                (any::<bool>(), 0usize..=MAX_PLAINTEXT, any::<u8>()),
                1..12,
            )
        ) {
            let [(mut ours_i, mut snow_i), (mut ours_r, mut snow_r)] = both_ways();
            let mut wire = vec![0u8; MAX_PLAINTEXT + TAG_LEN];
            for (from_initiator, len, fill) in messages {
                let plain: Vec<u8> = (0..len).map(|j| fill ^ (j as u8)).collect();
                let (ours_tx, snow_tx, ours_rx, snow_rx) = if from_initiator {
                    (&mut ours_i, &mut snow_i, &mut ours_r, &mut snow_r)
                } else {
                    (&mut ours_r, &mut snow_r, &mut ours_i, &mut snow_i)
                };
                // Sender: ours and snow's produce the same message.
                let mut sealed = plain.clone();
                let tag = ours_tx.seal_in_place(&mut sealed).unwrap();
                sealed.extend_from_slice(tag.as_ref());
                let n = snow_tx.write_message(&plain, &mut wire).unwrap();
                prop_assert_eq!(&sealed[..], &wire[..n]);
                // Receiver: ours opens it, and so does snow (from a copy).
                let mut opened = sealed.clone();
                let m = ours_rx.open_in_place(&mut opened).unwrap();
                prop_assert_eq!(&opened[..m], &plain[..]);
                let mut snow_plain = vec![0u8; MAX_PLAINTEXT];
                let k = snow_rx.read_message(&sealed, &mut snow_plain).unwrap();
                prop_assert_eq!(&snow_plain[..k], &plain[..]);
            }
        }
    }

    #[test]
    fn a_tampered_or_replayed_message_does_not_open() {
        let [(mut ours_i, _), (mut ours_r, _)] = both_ways();
        let mut msg = b"hello".to_vec();
        let tag = ours_i.seal_in_place(&mut msg).unwrap();
        msg.extend_from_slice(tag.as_ref());
        let mut flipped = msg.clone();
        flipped[0] ^= 1;
        assert!(ours_r.open_in_place(&mut flipped).is_err());
        // The failed open used nonce 0; the genuine message (nonce 0) no longer opens.
        let mut again = msg.clone();
        assert!(ours_r.open_in_place(&mut again).is_err());
    }
}
