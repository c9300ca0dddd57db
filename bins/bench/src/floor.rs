//! The work a secure stream cannot skip, timed alone on one core: the
//! per-byte cryptography that the wire formats fix. With the kernel's share
//! (raw TCP's CPU per GiB in the same run) these give the ceiling of each
//! throughput target on this machine: no implementation of the same wire
//! format, however lean, can beat it.
//!
//! - libp2p Noise fixes ChaCha20-Poly1305; devmux and rust-libp2p both run
//!   ring's (rust-libp2p through snow's ring resolver). Every byte is sealed by
//!   the sender and opened by the receiver.
//! - RLPx fixes a keccak256 MAC state that absorbs every frame's ciphertext, on
//!   both ends; it is one running state per direction, so one end's MAC cannot
//!   be spread over cores.

use std::hint::black_box;

use anyhow::ensure;
use keccak_asm::{Digest, Keccak256};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

use crate::pattern;
use crate::stats::cpu_time;
use crate::GIB;

/// Plaintext of one full Noise message (65535 bytes with its 16-byte tag).
const NOISE_PLAINTEXT: usize = 65535 - 16;
/// Bytes per MAC update: one 64 KiB RLPx message.
const MAC_CHUNK: usize = 64 * 1024;

/// Process CPU seconds per GiB to seal and then open `bytes` in full Noise
/// messages with ring's ChaCha20-Poly1305. Fails if a message does not open
/// back to what was sealed.
pub(crate) fn chacha_seal_open(bytes: u64) -> anyhow::Result<f64> {
    let key = LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32])
            .map_err(|_| anyhow::anyhow!("ring refused the key"))?,
    );
    let plain = pattern::slice(11, 0, NOISE_PLAINTEXT);
    let mut buf = plain.to_vec();
    buf.resize(NOISE_PLAINTEXT + 16, 0);
    let messages = bytes.div_ceil(NOISE_PLAINTEXT as u64);
    let nonce = |n: u64| {
        let mut b = [0u8; NONCE_LEN];
        b[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(b)
    };
    let cpu0 = cpu_time();
    for n in 0..messages {
        let tag = key
            .seal_in_place_separate_tag(nonce(n), Aad::empty(), &mut buf[..NOISE_PLAINTEXT])
            .map_err(|_| anyhow::anyhow!("seal failed"))?;
        buf[NOISE_PLAINTEXT..].copy_from_slice(tag.as_ref());
        let opened = key
            .open_in_place(nonce(n), Aad::empty(), &mut buf)
            .map_err(|_| anyhow::anyhow!("open failed"))?;
        black_box(opened);
    }
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    ensure!(buf[..NOISE_PLAINTEXT] == *plain, "opened bytes differ");
    Ok(cpu / (messages as f64 * NOISE_PLAINTEXT as f64 / GIB))
}

/// Process CPU seconds per GiB for one keccak256 state (the implementation
/// crates/rlpx's MAC uses) to absorb `bytes`, 64 KiB at a time.
pub(crate) fn keccak_absorb(bytes: u64) -> f64 {
    let chunk = pattern::slice(13, 0, MAC_CHUNK);
    let updates = bytes.div_ceil(MAC_CHUNK as u64);
    let cpu0 = cpu_time();
    let mut mac = Keccak256::new();
    for _ in 0..updates {
        mac.update(black_box(chunk));
    }
    black_box(mac.finalize());
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    cpu / (updates as f64 * MAC_CHUNK as f64 / GIB)
}

/// The highest devmux / rust-libp2p throughput ratio any Noise stack could
/// reach here: when both ends keep every core busy (they do: see the CPU rows),
/// throughput goes as the inverse of CPU per GiB, and a stack with no cost of
/// its own would still pay the kernel's (raw TCP's) and the cipher's.
pub(crate) fn noise_ceiling(libp2p_cpu: f64, tcp_cpu: f64, chacha: f64) -> f64 {
    libp2p_cpu / (tcp_cpu + chacha)
}

/// The highest RLPx session throughput, in MiB/s, on `cores` cores: the two
/// ends' MACs and the kernel share the cores, and each end's MAC runs on at most
/// one core at a time.
pub(crate) fn rlpx_ceiling_mib_s(cores: f64, keccak: f64, tcp_cpu: f64) -> f64 {
    let all_cores = cores / (2.0 * keccak + tcp_cpu);
    let one_mac = 1.0 / keccak;
    all_cores.min(one_mac) * 1024.0
}

/// The least CPU per GiB any RLPx session can cost, both ends together: each
/// end's MAC absorbs every byte, and the kernel moves it. On a machine busy with
/// other work, where wall-clock throughput says little, a session's CPU per GiB
/// against this floor says how close it is to the ceiling.
pub(crate) fn rlpx_cpu_floor(keccak: f64, tcp_cpu: f64) -> f64 {
    2.0 * keccak + tcp_cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trips_and_measures() {
        let cpu = chacha_seal_open(4 << 20).expect("seal/open");
        assert!(cpu.is_finite() && cpu >= 0.0);
    }

    #[test]
    fn ceilings_follow_their_inputs() {
        // 2.0 s per GiB for libp2p against 0.5 kernel + 0.5 cipher: at most 2x.
        assert!((noise_ceiling(2.0, 0.5, 0.5) - 2.0).abs() < 1e-9);
        // 2 cores, 2 s per GiB of MAC on each end, 0.5 s of kernel: 2/4.5 GiB/s.
        let v = rlpx_ceiling_mib_s(2.0, 2.0, 0.5);
        assert!((v - 2.0 / 4.5 * 1024.0).abs() < 1e-6);
        // Many cores: one end's MAC (one core) is the limit.
        let v = rlpx_ceiling_mib_s(64.0, 2.0, 0.5);
        assert!((v - 512.0).abs() < 1e-6);
        assert!((rlpx_cpu_floor(2.0, 0.5) - 4.5).abs() < 1e-9);
    }
}
