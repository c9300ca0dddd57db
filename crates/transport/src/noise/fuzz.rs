//! The body of the `noise_frames` fuzz target: [`NoiseStream`]'s framing and in-place
//! opening of transport messages, past the MAC. The fuzzer cannot forge a Poly1305 tag,
//! so the input describes messages and this seals them with known keys; garbage and
//! tampered messages are mixed in as the input says.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::io::{AsyncRead, AsyncWrite};

use super::cipher::Ciphers;
use super::{NoiseStream, MAX_PLAINTEXT, TAG_LEN};

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];

/// A socket that hands out at most `chunk` bytes per read: the reader's buffer
/// compaction and partial-message paths run on every shape of arrival.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(n))
    }
}

/// Reads `stream` to its end or first error in reads of at most `read_size` bytes.
fn read_all<T: AsyncRead + Unpin>(
    stream: &mut NoiseStream<T>,
    read_size: usize,
) -> (Vec<u8>, io::Result<()>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut buf = vec![0u8; read_size];
    loop {
        match Pin::new(&mut *stream).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(0)) => return (out, Ok(())),
            Poll::Ready(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Poll::Ready(Err(e)) => return (out, Err(e)),
            Poll::Pending => unreachable!("an in-memory socket never waits"),
        }
    }
}

/// Byte 0 sizes the socket's reads, byte 1 the reader's; then records of
/// `kind ‖ len (u16 LE) ‖ len bytes`: kind 0–1 a message sealing those bytes as its
/// plaintext, 2 the bytes raw on the wire, 3 a sealed message with one byte flipped.
/// What must hold: the reader hands out exactly the plaintexts before the first bad
/// record, then fails (or ends cleanly if there is none); and our writer, fed the
/// good plaintexts in the input's write sizes, produces what the reader reads back.
pub(crate) fn transport_frames(data: &[u8]) {
    let [chunk, read_size, rest @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = rest;
    let chunk = 1 + usize::from(*chunk) * 263;
    let read_size = 1 + usize::from(*read_size) * 257;
    let Ok(mut sender) = Ciphers::new(&KEY_A, &KEY_B) else {
        return;
    };
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut messages = Vec::new();
    let mut bad = false;
    while let &[kind, lo, hi, ref tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([lo, hi]))
            .min(tail.len())
            .min(MAX_PLAINTEXT);
        let (body, after) = tail.split_at(len);
        rest = after;
        match kind % 4 {
            2 => {
                bad |= !body.is_empty();
                wire.extend_from_slice(body);
            }
            kind => {
                let start = wire.len();
                wire.extend_from_slice(&((len + TAG_LEN) as u16).to_be_bytes());
                wire.extend_from_slice(body);
                let Ok(tag) = sender.seal_in_place(&mut wire[start + 2..]) else {
                    return;
                };
                wire.extend_from_slice(tag.as_ref());
                if kind == 3 {
                    let at = start + 2 + usize::from(lo) % (len + TAG_LEN);
                    wire[at] ^= 1 << (hi % 8);
                    bad = true;
                } else if !bad {
                    expected.extend_from_slice(body);
                    messages.push(body);
                }
            }
        }
    }

    let Ok(receiver) = Ciphers::new(&KEY_B, &KEY_A) else {
        return;
    };
    let mut reader = NoiseStream::new(Trickle { data: &wire, chunk }, receiver);
    let (got, result) = read_all(&mut reader, read_size);
    assert_eq!(got, expected, "plaintext differs from what was sealed");
    assert_eq!(
        result.is_err(),
        bad,
        "a bad record must fail the stream: {result:?}"
    );

    // Our writer: the good plaintexts, written in pieces of the socket's chunk size.
    let (Ok(write_keys), Ok(read_keys)) =
        (Ciphers::new(&KEY_A, &KEY_B), Ciphers::new(&KEY_B, &KEY_A))
    else {
        return;
    };
    let mut writer = NoiseStream::new(Vec::new(), write_keys);
    let mut cx = Context::from_waker(Waker::noop());
    for message in &messages {
        for piece in message.chunks(chunk) {
            let mut piece: &[u8] = piece;
            while !piece.is_empty() {
                match Pin::new(&mut writer).poll_write(&mut cx, piece) {
                    Poll::Ready(Ok(n)) => piece = &piece[n..],
                    other => panic!("writing to memory: {other:?}"),
                }
            }
        }
        if message.len() % 3 == 0 {
            assert!(Pin::new(&mut writer).poll_flush(&mut cx).is_ready());
        }
    }
    assert!(matches!(
        Pin::new(&mut writer).poll_flush(&mut cx),
        Poll::Ready(Ok(()))
    ));
    let sealed = std::mem::take(writer.io_mut());
    let mut reader = NoiseStream::new(
        Trickle {
            data: &sealed,
            chunk,
        },
        read_keys,
    );
    let (got, result) = read_all(&mut reader, read_size);
    assert!(result.is_ok(), "our own messages must open: {result:?}");
    assert_eq!(got, expected, "our writer's messages read back differently");
}
