//! Driving an established RLPx session: capability channels, keepalive and
//! Disconnect, under bounded queues and deadlines.
//!
//! [`Session::new`] splits an [`Established`] session into one [`Channel`] per
//! shared capability that the caller wants (the messages its handler reads) and
//! one queue of [`OutboundMessage`]s every handler writes to; [`Session::run`]
//! then drives it until it ends:
//!
//! - the **reader** (in `run`'s task) routes each capability message to its
//!   channel, at most [`CHANNEL_MESSAGES`] messages and [`CHANNEL_BYTES`] bytes
//!   queued per channel: when a handler falls behind, the socket is no longer
//!   read, so a peer can make us buffer no more than that for a slow handler;
//!   it answers Ping, and sends a Ping every keepalive period, ending the
//!   session with `PingTimeout` when the previous one went unanswered;
//! - the **writer** (a task of its own) sends Ping, Pong and Disconnect before
//!   capability messages, and batches capability messages into one flush;
//! - a Disconnect, ours or the peer's, ends the session within a grace period
//!   ([`DISCONNECT_GRACE`]) even if the peer stops reading.
//!
//! What happens to the peer is the caller's: a [`SessionObserver`] hears the
//! reason a session closes with and every protocol fault, as it happens.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::SharedCapability;
use crate::{DisconnectReason, Error, Established, Incoming, SessionReader, SessionWriter};

/// Messages queued per capability channel before the reader waits for the handler.
pub const CHANNEL_MESSAGES: usize = 64;
/// Bytes queued per capability channel before the reader waits for the handler
/// (and stops reading the socket). One message larger than this still passes, alone.
pub const CHANNEL_BYTES: usize = 16 * 1024 * 1024;
/// Capability messages queued for the writer before handlers wait.
pub const WRITER_QUEUE: usize = 64;
/// How long after a Disconnect we wait for the peer to close.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// A capability message on its way to its handler, holding its share of the
/// channel's byte budget until the handler takes it.
#[derive(Debug)]
pub struct InboundMessage {
    /// The message id within the capability (no offset).
    pub code: u8,
    /// The decompressed payload.
    pub payload: Bytes,
    _budget: OwnedSemaphorePermit,
}

/// A capability message on its way to the writer.
#[derive(Debug)]
pub struct OutboundMessage {
    /// Which shared capability it belongs to (its index in the shared list).
    pub slot: usize,
    /// The message id within the capability.
    pub code: u8,
    /// The payload (compressed by the writer if the session is).
    pub payload: Bytes,
}

/// One shared capability's inbound messages.
#[derive(Debug)]
pub struct Channel {
    /// Its index in the shared list: the `slot` of its [`OutboundMessage`]s.
    pub slot: usize,
    /// The capability.
    pub capability: SharedCapability,
    /// Its messages, in order.
    pub inbound: mpsc::Receiver<InboundMessage>,
}

/// What the writer is asked to do besides capability messages.
#[derive(Debug)]
enum Control {
    Ping,
    Pong,
    Disconnect(DisconnectReason),
}

/// A handle on a running session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    control: mpsc::Sender<Control>,
    /// Cancelled once a Disconnect is queued: the session stops reading and ends
    /// within its grace, even if the writer is stuck behind a peer that does not read.
    closing: CancellationToken,
    closed: CancellationToken,
}

impl SessionHandle {
    /// Sends Disconnect with `reason` (after what handlers queued) and ends the
    /// session within [`DISCONNECT_GRACE`]. If the control queue is full, the
    /// session ends at once instead.
    pub fn disconnect(&self, reason: DisconnectReason) {
        if self.control.try_send(Control::Disconnect(reason)).is_err() {
            self.closed.cancel();
        }
        self.closing.cancel();
    }

    /// Ends the session at once, without a Disconnect.
    pub fn abort(&self) {
        self.closed.cancel();
    }

    /// Whether the session has ended (or is ending without a Disconnect).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

/// Hears what a session does to its peer, as it happens.
pub trait SessionObserver: Send + Sync {
    /// The session closes for `reason`: given by the peer (`by_remote`) or by us.
    fn closing(&self, reason: DisconnectReason, by_remote: bool);
    /// The peer broke the protocol (`error.is_peer_fault()`); the session ends.
    fn fault(&self, error: &Error);
    /// The peer answered our Ping after `rtt`.
    fn pong(&self, rtt: Duration) {
        let _ = rtt;
    }
    /// A keepalive period passed without the Pong of our Ping: `consecutive` missed
    /// in a row so far.
    fn missed_ping(&self, consecutive: u32) {
        let _ = consecutive;
    }
}

/// A session's keepalive: a Ping at every tick of `timer`, and `PingTimeout` once
/// `max_missed_pings` ticks in a row passed without a Pong (one lost Ping is
/// forgiven: at least 1). A server with many sessions makes their timers tick
/// together (the network crate puts them on one grid), so that it is woken once
/// for many Pings.
#[derive(Debug)]
pub struct Keepalive {
    /// Ticks when a Ping is due; its first tick should be one period away, and a
    /// late tick skipped (`MissedTickBehavior::Skip`) rather than made up in a burst.
    pub timer: tokio::time::Interval,
    /// Ticks in a row without a Pong before the session ends with `PingTimeout`.
    pub max_missed_pings: u32,
}

/// An established session split into its channels, not running yet.
pub struct Session<R, W> {
    reader: SessionReader<R>,
    writer: SessionWriter<W>,
    routes: Vec<Option<(mpsc::Sender<InboundMessage>, Arc<Semaphore>)>>,
    control: mpsc::Receiver<Control>,
    outbound: mpsc::Receiver<OutboundMessage>,
    handle: SessionHandle,
    keepalive: Keepalive,
}

impl<R, W> std::fmt::Debug for Session<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl<R, W> Session<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Splits `session` with `split` (e.g. `TcpStream::into_split`); a channel for
    /// every shared capability that `wanted` accepts (messages of the others are
    /// dropped); Pings as `keepalive` says. Returns the session, its channels and
    /// the sender every handler writes through.
    pub fn new<S>(
        session: Established<S>,
        split: impl FnOnce(S) -> (R, W),
        keepalive: Keepalive,
        wanted: impl Fn(&SharedCapability) -> bool,
    ) -> (Self, Vec<Channel>, mpsc::Sender<OutboundMessage>) {
        let shared = session.shared_capabilities().clone();
        let (reader, writer) = session.split_with(split);
        let (outbound_tx, outbound) = mpsc::channel(WRITER_QUEUE);
        let (control_tx, control) = mpsc::channel(8);
        let mut routes = Vec::new();
        let mut channels = Vec::new();
        for (slot, cap) in shared.iter().enumerate() {
            if !wanted(cap) {
                routes.push(None);
                continue;
            }
            let (tx, rx) = mpsc::channel(CHANNEL_MESSAGES);
            routes.push(Some((tx, Arc::new(Semaphore::new(CHANNEL_BYTES)))));
            channels.push(Channel {
                slot,
                capability: cap.clone(),
                inbound: rx,
            });
        }
        let session = Self {
            reader,
            writer,
            routes,
            control,
            outbound,
            handle: SessionHandle {
                control: control_tx,
                closing: CancellationToken::new(),
                closed: CancellationToken::new(),
            },
            keepalive: Keepalive {
                max_missed_pings: keepalive.max_missed_pings.max(1),
                ..keepalive
            },
        };
        (session, channels, outbound_tx)
    }

    /// The handle to close the session from elsewhere.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// Drives the session until it ends: the peer leaves or breaks the protocol,
    /// a handle disconnects it, `handlers_done` completes (nothing left to serve:
    /// `DisconnectRequested`), a Ping goes unanswered (`PingTimeout`), or `shutdown`
    /// is cancelled (`ClientQuitting`). Returns once the socket is closed: at most
    /// about two [`DISCONNECT_GRACE`]s after the decision.
    pub async fn run(
        self,
        handlers_done: impl Future<Output = ()>,
        shutdown: &CancellationToken,
        observer: &dyn SessionObserver,
    ) {
        let Self {
            mut reader,
            writer,
            mut routes,
            control,
            outbound,
            handle,
            keepalive:
                Keepalive {
                    timer: mut keepalive,
                    max_missed_pings,
                },
        } = self;
        let writer_task = tokio::spawn(
            write_loop(writer, control, outbound, handle.closed.clone()).in_current_span(),
        );
        let close = |reason: DisconnectReason| {
            observer.closing(reason, false);
            handle.disconnect(reason);
        };
        // When the Ping awaiting its Pong went out, and how many periods in a row
        // passed without one.
        let mut ping_sent: Option<tokio::time::Instant> = None;
        let mut missed = 0u32;
        // Set once we queued a Disconnect: the writer then ends the session itself.
        let mut closing = false;
        // Whether the reader may still be read while the peer takes in our Disconnect
        // (not after a read error: the reader is done then).
        let mut readable = true;
        tokio::pin!(handlers_done);
        loop {
            tokio::select! {
                _ = handle.closed.cancelled() => break,
                // A Disconnect queued from elsewhere (or by `close` below, which breaks
                // out itself): stop reading and give the writer its grace.
                _ = handle.closing.cancelled() => {
                    closing = true;
                    break;
                }
                _ = &mut handlers_done => {
                    debug!("all handlers ended");
                    close(DisconnectReason::DisconnectRequested);
                    closing = true;
                    break;
                }
                _ = keepalive.tick() => {
                    if ping_sent.is_some() {
                        missed += 1;
                        observer.missed_ping(missed);
                        if missed >= max_missed_pings {
                            warn!(missed, "no pong for {missed} ping intervals");
                            close(DisconnectReason::PingTimeout);
                            closing = true;
                            break;
                        }
                        debug!(missed, "no pong within the ping interval");
                    }
                    ping_sent = Some(tokio::time::Instant::now());
                    if handle.control.try_send(Control::Ping).is_err() {
                        break;
                    }
                }
                _ = shutdown.cancelled() => {
                    close(DisconnectReason::ClientQuitting);
                    closing = true;
                    break;
                }
                incoming = reader.recv() => match incoming {
                    Ok(Incoming::Ping) => {
                        let _ = handle.control.try_send(Control::Pong);
                    }
                    Ok(Incoming::Pong) => {
                        if let Some(sent) = ping_sent.take() {
                            observer.pong(sent.elapsed());
                        }
                        missed = 0;
                    }
                    Ok(Incoming::Disconnect(reason)) => {
                        info!(?reason, "peer disconnected us");
                        if let Some(reason) = reason {
                            observer.closing(reason, true);
                        }
                        break;
                    }
                    Ok(Incoming::Capability { index, id, payload }) => {
                        // A handler that is gone has ended its protocol: drop its messages.
                        let Some(Some((tx, budget))) = routes.get(index) else {
                            continue;
                        };
                        let (tx, budget) = (tx.clone(), budget.clone());
                        // Bounded by CHANNEL_BYTES, which fits in u32.
                        let cost = payload.len().min(CHANNEL_BYTES) as u32;
                        let queue = async move {
                            let Ok(permit) = budget.acquire_many_owned(cost).await else {
                                return false; // Never closed.
                            };
                            let msg = InboundMessage { code: id, payload, _budget: permit };
                            tx.send(msg).await.is_ok()
                        };
                        // A handler that stopped taking messages must not keep the
                        // session from ending.
                        tokio::select! {
                            delivered = queue => {
                                if !delivered {
                                    routes[index] = None;
                                }
                            }
                            _ = handle.closed.cancelled() => break,
                            _ = handle.closing.cancelled() => {
                                closing = true;
                                break;
                            }
                            _ = shutdown.cancelled() => {
                                close(DisconnectReason::ClientQuitting);
                                closing = true;
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "session read failed");
                        if e.is_peer_fault() {
                            observer.fault(&e);
                        }
                        readable = false;
                        if let Some(reason) = e.disconnect_reason() {
                            close(reason);
                            closing = true;
                        }
                        break;
                    }
                },
            }
        }
        // Handlers see their channels end. A queued Disconnect is the writer's to
        // send; otherwise there is nothing left to write.
        drop(routes);
        let mut writer_task = writer_task;
        let mut writer_done = false;
        if closing && readable {
            // Our Disconnect is queued: a peer that reads it closes the socket, and
            // seeing that (or the writer finishing) ends the wait early.
            let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
                tokio::select! {
                    _ = async { while reader.recv().await.is_ok() {} } => {}
                    _ = &mut writer_task => writer_done = true,
                }
            })
            .await;
        }
        if !closing || readable {
            // Nothing (more) to wait for: the writer stops, after its Disconnect if
            // one is queued.
            handle.closed.cancel();
        }
        if !writer_done
            && tokio::time::timeout(DISCONNECT_GRACE, &mut writer_task)
                .await
                .is_err()
        {
            // Stuck writing to a peer that does not read: dropping the handle would
            // leave the task and its socket behind. Two graces at most in all.
            writer_task.abort();
        }
        handle.closed.cancel();
    }
}

/// The writer task: control messages first, capability messages batched.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: SessionWriter<W>,
    mut control: mpsc::Receiver<Control>,
    mut frames: mpsc::Receiver<OutboundMessage>,
    closed: CancellationToken,
) {
    let result: Result<(), Error> = async {
        let mut frames_open = true;
        loop {
            tokio::select! {
                biased;
                _ = closed.cancelled() => return Ok(()),
                cmd = control.recv() => match cmd {
                    Some(Control::Ping) => writer.ping().await?,
                    Some(Control::Pong) => writer.pong().await?,
                    Some(Control::Disconnect(reason)) => {
                        // Whatever handlers queued goes out before the Disconnect.
                        while let Ok(f) = frames.try_recv() {
                            writer.feed_capability(f.slot, f.code, &f.payload).await?;
                        }
                        writer.disconnect(reason).await?;
                        // Give the peer a moment to read it and close first.
                        tokio::select! {
                            _ = closed.cancelled() => {}
                            _ = tokio::time::sleep(DISCONNECT_GRACE) => {}
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                frame = frames.recv(), if frames_open => match frame {
                    Some(f) => {
                        writer.feed_capability(f.slot, f.code, &f.payload).await?;
                        // Batch whatever else is queued into the same flush.
                        while let Ok(f) = frames.try_recv() {
                            writer.feed_capability(f.slot, f.code, &f.payload).await?;
                        }
                        writer.flush().await?;
                    }
                    // Every handler is done writing; keep serving control messages.
                    None => frames_open = false,
                },
            }
        }
    }
    .await;
    if let Err(e) = result {
        debug!(error = %e, "session write failed");
    }
    closed.cancel();
}
