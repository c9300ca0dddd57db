//! The data every benchmark sends: a deterministic xorshift stream, checked on
//! receipt byte for byte, so that a figure over corrupted, reordered or
//! truncated data fails the run instead of being printed.
//!
//! The pattern is generated once (about 1 MiB, period prime so that no 64 KiB
//! chunk lines up with another), and each stream reads it from its own
//! starting point (`seed`). Senders hand out slices of it without copying;
//! receivers compare with `memcmp` speed.

use std::sync::OnceLock;

/// The largest slice handed out at once: one 64 KiB write.
pub(crate) const CHUNK: usize = 64 * 1024;
/// The pattern's period in bytes: a prime, so no power-of-two chunking lines up.
const PERIOD: usize = 1_048_573;

static PATTERN: OnceLock<Box<[u8]>> = OnceLock::new();

fn pattern() -> &'static [u8] {
    PATTERN.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(PERIOD + CHUNK + 8);
        while v.len() < PERIOD {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(PERIOD);
        // Repeat the head so any start in the period has CHUNK bytes after it.
        let head = v[..CHUNK].to_vec();
        v.extend_from_slice(&head);
        v.into_boxed_slice()
    })
}

fn start(seed: u64, offset: u64) -> usize {
    (seed.wrapping_mul(104_729).wrapping_add(offset) % PERIOD as u64) as usize
}

/// The `len` bytes (at most [`CHUNK`]) of stream `seed` at `offset`.
pub(crate) fn slice(seed: u64, offset: u64, len: usize) -> &'static [u8] {
    let len = len.min(CHUNK);
    let s = start(seed, offset);
    &pattern()[s..s + len]
}

/// Checks received bytes against stream `seed`, in order.
#[derive(Debug)]
pub(crate) struct Verifier {
    seed: u64,
    pos: u64,
    ok: bool,
}

impl Verifier {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            pos: 0,
            ok: true,
        }
    }

    /// Checks the next bytes; returns whether everything so far matched.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let n = data.len().min(CHUNK);
            if data[..n] != *slice(self.seed, self.pos, n) {
                self.ok = false;
            }
            self.pos += n as u64;
            data = &data[n..];
        }
        self.ok
    }

    /// Bytes checked so far.
    pub(crate) fn received(&self) -> u64 {
        self.pos
    }

    /// Whether every byte matched.
    pub(crate) fn ok(&self) -> bool {
        self.ok
    }
}

/// The 17-byte header that starts a sink transfer: `op ‖ seed ‖ length`.
pub(crate) fn sink_header(op: u8, seed: u64, bytes: u64) -> [u8; 17] {
    let mut h = [0u8; 17];
    h[0] = op;
    h[1..9].copy_from_slice(&seed.to_be_bytes());
    h[9..17].copy_from_slice(&bytes.to_be_bytes());
    h
}

/// The 9-byte acknowledgement a sink sends: `ok ‖ bytes received`.
pub(crate) fn ack(v: &Verifier) -> [u8; 9] {
    let mut a = [0u8; 9];
    a[0] = u8::from(v.ok());
    a[1..].copy_from_slice(&v.received().to_be_bytes());
    a
}

/// Checks an acknowledgement against what was sent.
pub(crate) fn check_ack(a: &[u8], sent: u64) -> anyhow::Result<()> {
    anyhow::ensure!(a.len() == 9, "acknowledgement of {} bytes", a.len());
    let mut n = [0u8; 8];
    n.copy_from_slice(&a[1..]);
    let got = u64::from_be_bytes(n);
    anyhow::ensure!(a[0] == 1, "receiver saw corrupted data");
    anyhow::ensure!(got == sent, "receiver got {got} bytes of {sent}");
    Ok(())
}

/// Reads a u64 from 8 big-endian bytes.
pub(crate) fn be_u64(b: &[u8]) -> u64 {
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[..8]);
    u64::from_be_bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_accepts_the_stream_and_rejects_a_flip() {
        let mut v = Verifier::new(3);
        let mut off = 0u64;
        for len in [1usize, 100, CHUNK, 7, CHUNK] {
            assert!(v.feed(slice(3, off, len)));
            off += len as u64;
        }
        let mut bad = slice(3, off, 10).to_vec();
        bad[4] ^= 1;
        assert!(!v.feed(&bad));
    }
}
