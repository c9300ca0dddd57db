//! [`NoiseStream`]: an encrypted byte stream after the handshake, sealing and opening
//! Noise messages in place in pooled buffers.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};

use super::buffer as pool;
use super::cipher::Ciphers;
use super::{MAX_NOISE_MESSAGE, MAX_PLAINTEXT, TAG_LEN};

/// An encrypted byte stream over `T` after a completed Noise handshake.
///
/// Writes are copied once, into the message being built in the write buffer,
/// and sealed in place when it holds 65519 bytes or on flush; reads fill the
/// read buffer with as many messages as the socket has, and each is opened in
/// place and copied once to the reader. Both buffers come from a small
/// process-wide pool and go back to it when empty and the socket has nothing
/// more: an idle connection holds no Noise buffer.
pub struct NoiseStream<T> {
    io: T,
    ciphers: Box<Ciphers>,
    /// Read buffer: bytes `rbuf[r_start..r_end]` came from `io` and are not
    /// consumed yet; `rbuf[p_start..p_end]` (inside the message at `r_start`)
    /// is its decrypted plaintext not yet handed out.
    rbuf: Box<[u8]>,
    r_start: usize,
    r_end: usize,
    p_start: usize,
    p_end: usize,
    /// Write buffer: `wbuf[w_pos..]` up to `w_open` (or `w_len`) is sealed and not
    /// yet written to `io`; a message being filled starts at `w_open` (its
    /// length prefix, then its plaintext up to `w_len`).
    wbuf: Box<[u8]>,
    w_pos: usize,
    w_len: usize,
    w_open: Option<usize>,
}

impl<T> NoiseStream<T> {
    pub(super) fn new(io: T, ciphers: Ciphers) -> Self {
        Self {
            io,
            ciphers: Box::new(ciphers),
            rbuf: Box::default(),
            r_start: 0,
            r_end: 0,
            p_start: 0,
            p_end: 0,
            wbuf: Box::default(),
            w_pos: 0,
            w_len: 0,
            w_open: None,
        }
    }

    /// The socket underneath (the fuzz body reads back what the writer sealed).
    pub(super) fn io_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Seals the message being filled, in place.
    fn seal(&mut self) -> io::Result<()> {
        let Some(start) = self.w_open.take() else {
            return Ok(());
        };
        let body = start + 2..self.w_len;
        if body.is_empty() {
            self.w_len = start;
            return Ok(());
        }
        let tag = self.ciphers.seal_in_place(&mut self.wbuf[body.clone()])?;
        // The open message reserved room for a whole Noise message, tag included.
        self.wbuf[self.w_len..self.w_len + TAG_LEN].copy_from_slice(tag.as_ref());
        self.w_len += TAG_LEN;
        let len = (body.len() + TAG_LEN) as u16; // ≤ MAX_NOISE_MESSAGE by construction
        self.wbuf[start..start + 2].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

impl<T: AsyncWrite + Unpin> NoiseStream<T> {
    /// Writes sealed messages to the socket until none is left (the message
    /// being filled stays). Then rewinds the buffer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sealed_end = self.w_open.unwrap_or(self.w_len);
        while self.w_pos < sealed_end {
            let n =
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.w_pos..sealed_end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.w_pos += n;
        }
        // Everything sealed is out: move a message being filled to the front.
        if let Some(open) = self.w_open {
            if open > 0 {
                self.wbuf.copy_within(open..self.w_len, 0);
                self.w_len -= open;
                self.w_open = Some(0);
            }
        } else {
            self.w_len = 0;
        }
        self.w_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for NoiseStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            // Hand out decrypted bytes first.
            if this.p_start < this.p_end {
                let n = (this.p_end - this.p_start).min(buf.len());
                buf[..n].copy_from_slice(&this.rbuf[this.p_start..this.p_start + n]);
                this.p_start += n;
                if this.p_start == this.p_end {
                    // The message is consumed: its tag follows the plaintext.
                    this.r_start = this.p_end + TAG_LEN;
                }
                return Poll::Ready(Ok(n));
            }
            // A whole message buffered? Open it in place.
            let avail = this.r_end - this.r_start;
            let need = if avail >= 2 {
                let len = u16::from_be_bytes([this.rbuf[this.r_start], this.rbuf[this.r_start + 1]])
                    as usize;
                if len < TAG_LEN {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "noise message shorter than its tag",
                    )));
                }
                if avail >= 2 + len {
                    let body = this.r_start + 2..this.r_start + 2 + len;
                    let plain = this.ciphers.open_in_place(&mut this.rbuf[body.clone()])?;
                    this.p_start = body.start;
                    this.p_end = body.start + plain;
                    if plain == 0 {
                        this.r_start = body.end; // An empty message carries nothing.
                    }
                    continue;
                }
                2 + len
            } else {
                2
            };
            // Need more ciphertext.
            if this.r_start == this.r_end {
                this.r_start = 0;
                this.r_end = 0;
            }
            if this.rbuf.is_empty() {
                this.rbuf = pool::take();
            } else if this.r_start + need > this.rbuf.len() {
                // The next message would run past the end: move its start to the front.
                this.rbuf.copy_within(this.r_start..this.r_end, 0);
                this.r_end -= this.r_start;
                this.r_start = 0;
            }
            match Pin::new(&mut this.io).poll_read(cx, &mut this.rbuf[this.r_end..]) {
                Poll::Pending => {
                    if this.r_start == this.r_end {
                        // Idle: nothing buffered, nothing on the socket.
                        pool::give(&mut this.rbuf);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    if this.r_start == this.r_end {
                        pool::give(&mut this.rbuf);
                        return Poll::Ready(Ok(0));
                    }
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Poll::Ready(Ok(n)) => this.r_end += n,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for NoiseStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if let Some(open) = this.w_open {
                let filled = this.w_len - (open + 2);
                let n = (MAX_PLAINTEXT - filled).min(buf.len());
                this.wbuf[this.w_len..this.w_len + n].copy_from_slice(&buf[..n]);
                this.w_len += n;
                if filled + n == MAX_PLAINTEXT {
                    this.seal()?;
                    // Start the socket write now; what doesn't fit waits for the next call.
                    if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
                return Poll::Ready(Ok(n));
            }
            if this.wbuf.is_empty() {
                this.wbuf = pool::take();
            }
            // Open a message where a whole one fits: write out sealed bytes first,
            // and if the socket takes only some, move the rest to the front.
            if this.wbuf.len() - this.w_len < 2 + MAX_NOISE_MESSAGE
                && this.poll_drain(cx)?.is_pending()
            {
                if this.w_pos == 0 {
                    return Poll::Pending; // Full of sealed bytes the socket won't take yet.
                }
                this.wbuf.copy_within(this.w_pos..this.w_len, 0);
                this.w_len -= this.w_pos;
                this.w_pos = 0;
                if this.wbuf.len() - this.w_len < 2 + MAX_NOISE_MESSAGE {
                    return Poll::Pending;
                }
            }
            this.w_open = Some(this.w_len);
            this.w_len += 2;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.seal()?;
        ready!(this.poll_drain(cx))?;
        if this.w_len == 0 && !this.wbuf.is_empty() {
            pool::give(&mut this.wbuf);
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

impl<T> Drop for NoiseStream<T> {
    fn drop(&mut self) {
        pool::give(&mut self.rbuf);
        pool::give(&mut self.wbuf);
    }
}

#[cfg(test)]
mod tests {
    use super::super::handshake::tests::pair;
    use super::super::{handshake_initiator, handshake_responder};
    use super::*;
    use futures::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn handshake_and_transfer_over_duplex() {
        let (ia, ka) = pair();
        let (ib, kb) = pair();
        let (a, b) = tokio::io::duplex(1 << 20);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = (a.compat(), b.compat());
        let expected = kb.peer_id();
        let (ra, rb) = tokio::join!(
            handshake_initiator(a, &ia, Some(expected)),
            handshake_responder(b, &ib)
        );
        let (mut sa, pka) = ra.unwrap();
        let (mut sb, pkb) = rb.unwrap();
        assert_eq!(pka.to_peer_id(), kb.peer_id());
        assert_eq!(pkb.to_peer_id(), ka.peer_id());

        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let send = async {
            sa.write_all(&data).await.unwrap();
            sa.flush().await.unwrap();
            sa.close().await.unwrap();
        };
        let recv = async {
            let mut got = Vec::new();
            sb.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(send, recv);
        assert_eq!(got, data);
    }

    /// Odd write and read sizes over a tiny pipe (partial socket reads and
    /// writes everywhere), both directions at once, with flushes in between;
    /// afterwards neither side holds a buffer.
    #[tokio::test]
    async fn odd_sizes_over_a_small_pipe_and_buffers_released() {
        let (ia, _) = pair();
        let (ib, _) = pair();
        let (a, b) = tokio::io::duplex(777);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (ra, rb) = tokio::join!(
            handshake_initiator(a.compat(), &ia, None),
            handshake_responder(b.compat(), &ib)
        );
        let (mut sa, _) = ra.unwrap();
        let (mut sb, _) = rb.unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let sizes = [1usize, 12, 65_519, 65_520, 3, 200_000, 17, 131_038, 5_000];

        async fn send<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8], sizes: &[usize]) {
            let mut off = 0;
            let mut i = 0;
            while off < data.len() {
                let n = sizes[i % sizes.len()].min(data.len() - off);
                w.write_all(&data[off..off + n]).await.unwrap();
                if i % 3 == 0 {
                    w.flush().await.unwrap();
                }
                off += n;
                i += 1;
            }
            w.flush().await.unwrap();
        }
        async fn recv<R: AsyncRead + Unpin>(r: &mut R, len: usize, sizes: &[usize]) -> Vec<u8> {
            let mut got = Vec::with_capacity(len);
            let mut buf = vec![0u8; 300_000];
            let mut i = 1;
            while got.len() < len {
                let want = sizes[i % sizes.len()].min(buf.len());
                let n = r.read(&mut buf[..want]).await.unwrap();
                assert!(n > 0, "early end");
                got.extend_from_slice(&buf[..n]);
                i += 1;
            }
            got
        }
        let (mut ar, mut aw) = sa.split();
        let (mut br, mut bw) = sb.split();
        let ((), (), got_b, got_a) = tokio::join!(
            send(&mut aw, &data, &sizes),
            send(&mut bw, &data, &sizes[3..]),
            recv(&mut br, data.len(), &sizes),
            recv(&mut ar, data.len(), &sizes[2..]),
        );
        assert!(got_b == data, "a → b corrupted");
        assert!(got_a == data, "b → a corrupted");
        sa = ar.reunite(aw).unwrap();
        sb = br.reunite(bw).unwrap();
        // Idle now: a read that finds nothing gives its buffer back.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut one = [0u8; 1];
        for s in [&mut sa, &mut sb] {
            assert!(Pin::new(&mut *s).poll_read(&mut cx, &mut one).is_pending());
            assert!(
                s.rbuf.is_empty() && s.wbuf.is_empty(),
                "idle stream holds a buffer"
            );
        }
    }
}
