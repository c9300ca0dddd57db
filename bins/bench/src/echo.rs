//! Round trips, interleaved: every stack's echo channel is opened first, then
//! one round trip goes to each stack in turn, so every stack sees the same
//! moments of a shared, noisy machine.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use devmux_network::{Message, MessageStream};
use futures::future::BoxFuture;
use futures::io::{AsyncRead, AsyncWrite};

use crate::pattern;
use crate::raw;

/// One echo channel: a round trip of `size` pattern bytes (message `i`).
pub(crate) trait Echo: Send {
    fn once(&mut self, i: u64, size: usize) -> BoxFuture<'_, anyhow::Result<Duration>>;
}

/// A byte stream speaking raw.rs's echo.
pub(crate) struct RawEcho<S> {
    s: S,
    back: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> RawEcho<S> {
    pub(crate) async fn start(mut s: S) -> anyhow::Result<Self> {
        raw::echo_start(&mut s).await?;
        Ok(Self {
            s,
            back: vec![0u8; pattern::CHUNK],
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Echo for RawEcho<S> {
    fn once(&mut self, i: u64, size: usize) -> BoxFuture<'_, anyhow::Result<Duration>> {
        Box::pin(async move { raw::echo_once(&mut self.s, 7, i, size, &mut self.back).await })
    }
}

/// A `MessageStream` whose peer echoes messages of `code`.
pub(crate) struct MessageEcho<M> {
    pub(crate) stream: M,
    pub(crate) code: u8,
}

impl<M: std::ops::DerefMut<Target = MessageStream> + Send> Echo for MessageEcho<M> {
    fn once(&mut self, i: u64, size: usize) -> BoxFuture<'_, anyhow::Result<Duration>> {
        Box::pin(async move {
            let payload = Bytes::from_static(pattern::slice(5, i * size as u64, size));
            let t = Instant::now();
            self.stream
                .send(Message::new(self.code, payload.clone()))
                .await?;
            let back = self.stream.next().await.context("echo stream ended")??;
            let dt = t.elapsed();
            ensure!(
                back.code == self.code && back.payload == payload,
                "echo came back different"
            );
            Ok(dt)
        })
    }
}

/// Runs `warmup + n` rounds; each round does one round trip on every channel,
/// starting at a different one each round. Returns the samples per channel.
pub(crate) async fn interleaved(
    channels: &mut [Box<dyn Echo>],
    warmup: usize,
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    if channels.is_empty() {
        bail!("no echo channel");
    }
    let k = channels.len();
    let mut out = vec![Vec::with_capacity(n); k];
    for round in 0..(warmup + n) {
        for j in 0..k {
            let c = (round + j) % k;
            let dt = channels[c].once(round as u64, size).await?;
            if round >= warmup {
                out[c].push(dt);
            }
        }
    }
    Ok(out)
}
