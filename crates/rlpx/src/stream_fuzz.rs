//! The body of the `rlpx_frames` fuzz target: a session's reading side — frame
//! headers and bodies after their MACs, message ids, the capability table, Snappy and
//! the size limits — fed frames sealed with known secrets, so the fuzzer gets past the
//! MACs it could never forge.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use keccak_asm::{Digest, Keccak256};

use super::{FramedRead, FramedWrite, Incoming, SessionReader};
use crate::capability::{Capability, HelloCapability, SharedCapabilities};
use crate::frame::{FrameEncoder, Secrets, FRAME_HEADER_LEN, FRAME_MAC_LEN, MAX_FRAME_SIZE};
use crate::p2p::{PING_ID, PONG_ID};
use crate::snappy::Snappy;
use crate::Error;

/// Our two capabilities: eth/68 (ids 0x10–0x20) and snap/1 (0x21–0x28).
fn shared() -> SharedCapabilities {
    let local = [
        Capability::new("eth", 68, 17),
        Capability::new("snap", 1, 8),
    ];
    let remote: Vec<HelloCapability> = local.iter().map(HelloCapability::from).collect();
    SharedCapabilities::negotiate(&local, &remote)
}

/// Secrets of both ends of one session.
fn secrets() -> (Secrets, Secrets) {
    let (mut one, mut two) = (Keccak256::new(), Keccak256::new());
    one.update(b"fuzz one");
    two.update(b"fuzz two");
    let (aes, mac) = ([0x5a; 32], [0xa5; 32]);
    (
        Secrets::new([1; 64], aes, mac, one.clone(), two.clone()),
        Secrets::new([2; 64], aes, mac, two, one),
    )
}

/// What reading one generated message must give.
#[derive(Debug)]
enum Expect {
    Message(Incoming),
    Failure,
}

/// Byte 0: bit 0 Snappy on, bit 1 a 1 KiB message limit (else 16 MiB), bit 2 a 1 KiB
/// frame limit (else the protocol's). Then records `kind ‖ lo ‖ hi ‖ len bytes`
/// (len = `lo | hi << 8`, cut to what is left):
/// - 0: a frame whose body is the bytes (message id and all), its header true;
/// - 1: a frame whose 16-byte header plaintext is the first 16 bytes (size and header
///   data as the fuzzer likes: the size may lie), its body the rest;
/// - 2: the bytes raw on the wire;
/// - 3: a message our writer builds, compressed when Snappy is on: kind bit 2 clear,
///   Ping (bit 3 clear) or Pong; bit 2 set, a message of eth (bit 3 clear) or snap
///   with the id `kind >> 4` (modulo the capability's count) and the bytes as payload.
///
/// What must hold: reading never panics, and while every record so far was of kind 3,
/// each read gives exactly that message, or fails when it breaks a limit.
pub(crate) fn session_frames(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    let compressed = mode & 1 == 1;
    let max_message_size = if mode & 2 == 0 { 16 << 20 } else { 1 << 10 };
    let max_frame_size = if mode & 4 == 0 {
        MAX_FRAME_SIZE
    } else {
        1 << 10
    };
    let shared = shared();
    let (ours, theirs) = secrets();
    let (encoder, _) = theirs.into_codec(MAX_FRAME_SIZE);
    let mut write = FramedWrite {
        encoder,
        buf: BytesMut::new(),
        snappy: compressed.then(Snappy::new),
    };

    // Expectations hold while every record so far is a message of ours within the
    // limits; past anything else (or a message the reader must refuse) reading goes
    // on, unchecked but for the limits.
    let mut rest: &[u8] = rest;
    let mut expected = Vec::new();
    let mut checked = true;
    while let &[kind, lo, hi, ref tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        match kind % 4 {
            0 => {
                checked = false;
                let _ = write.encoder.encode(bytes, &mut write.buf);
            }
            1 => {
                checked = false;
                let mut header = [0u8; 16];
                let cut = bytes.len().min(16);
                header[..cut].copy_from_slice(&bytes[..cut]);
                let start = FrameEncoder::begin(&mut write.buf);
                write.buf.extend_from_slice(&bytes[cut..]);
                write
                    .encoder
                    .seal_with_header(header, &mut write.buf, start);
            }
            2 => {
                checked &= bytes.is_empty();
                write.buf.extend_from_slice(bytes);
            }
            _ => {
                let (msg_id, payload, message) = match (kind >> 2 & 1, kind >> 3 & 1) {
                    (0, 0) => (PING_ID, &[0xc0][..], Incoming::Ping),
                    (0, _) => (PONG_ID, &[0xc0][..], Incoming::Pong),
                    (_, index) => {
                        let index = usize::from(index);
                        let cap = &shared.as_slice()[index];
                        let id = (kind >> 4) % cap.message_count;
                        let payload = Bytes::copy_from_slice(bytes);
                        let msg_id = cap.offset + u64::from(id);
                        (msg_id, bytes, Incoming::Capability { index, id, payload })
                    }
                };
                let before = write.buf.len();
                if write.encode(msg_id, payload, true).is_err() {
                    checked = false;
                    continue;
                }
                if !checked {
                    continue;
                }
                // The header states the body's unpadded size: within 15 of the padded.
                let padded = write.buf.len() - before - FRAME_HEADER_LEN - FRAME_MAC_LEN;
                let frame_fits = padded <= max_frame_size;
                let frame_too_large = padded - 15 > max_frame_size;
                let message_too_large = matches!(message, Incoming::Capability { .. })
                    && payload.len() > max_message_size;
                if frame_fits && !message_too_large {
                    expected.push(Expect::Message(message));
                } else if frame_too_large || (frame_fits && message_too_large) {
                    expected.push(Expect::Failure);
                    checked = false;
                } else {
                    checked = false; // Too close to the frame limit to say.
                }
            }
        }
    }

    let (_, decoder) = ours.into_codec(max_frame_size);
    let mut reader = SessionReader {
        io: Cursor::new(write.buf.to_vec()),
        remote_id: [2; 64],
        read: Box::new(FramedRead {
            decoder,
            buf: BytesMut::new(),
            large: false,
        }),
        snappy: compressed.then(|| Box::new(Snappy::new())),
        shared: Arc::new(shared),
        max_message_size,
    };
    let mut expected = expected.into_iter();
    loop {
        let read = std::pin::pin!(reader.recv());
        let Poll::Ready(got) = read.poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("an in-memory socket never waits");
        };
        match (expected.next(), got) {
            (Some(Expect::Message(want)), Ok(got)) => assert_eq!(got, want),
            (Some(Expect::Failure), Err(_)) => return,
            (Some(want), got) => panic!("wanted {want:?}, read {got:?}"),
            (None, Err(e)) => {
                assert!(
                    !checked || matches!(e, Error::ConnectionClosed),
                    "our messages read, then {e:?} instead of the end"
                );
                return;
            }
            (None, Ok(got)) => {
                assert!(!checked, "read {got:?} past the last message sent");
                if let Incoming::Capability { payload, .. } = got {
                    assert!(
                        payload.len() <= max_message_size,
                        "a message over the limit"
                    );
                }
            }
        }
    }
}
