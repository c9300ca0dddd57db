//! Read and write buffers, shared by all connections of the process: a
//! connection takes one when bytes flow and gives it back when it goes idle, so
//! an idle connection holds no buffer and a busy one never reallocates.

use std::sync::Mutex;

/// One buffer: room for four whole Noise messages with their length prefixes.
pub(super) const SIZE: usize = 4 * (super::MAX_NOISE_MESSAGE + 2);
/// Idle buffers kept for reuse (the rest are freed): at most 2 MiB.
const KEEP: usize = 8;

static FREE: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

pub(super) fn take() -> Box<[u8]> {
    let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    // Zeroed allocations come from calloc: pages count only once written.
    reused.unwrap_or_else(|| vec![0u8; SIZE].into_boxed_slice())
}

pub(super) fn give(buf: &mut Box<[u8]>) {
    let buf = std::mem::take(buf);
    if buf.len() != SIZE {
        return;
    }
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    if free.len() < KEEP {
        free.push(buf);
    }
}
