//! Bounds on the listener side of multistream-select.
//!
//! A multistream-select listener answers each proposal it does not support with
//! `na` and waits for the next one. multistream-select 0.14 sets no limit: before
//! the 10 s handshake deadline a dialer could make us answer 173 000 proposals in
//! lock-step, 860 000 pipelined, on one socket (issue 16 item 4). The crate has no
//! hook for a limit, so [`RejectionLimited`] counts at the I/O boundary: it sits
//! under `listener_select_proto`, parses what the listener *writes* (every
//! multistream-select message is `uvarint(len) ‖ payload`) and fails the write that
//! would carry one rejection too many. Reads pass through untouched, so the bytes a
//! V1Lazy dialer sends behind its protocol line still reach the
//! [`Negotiated`](multistream_select::Negotiated) stream above it.
//!
//! Two caps apply. Each negotiation may reject at most `max_rejected` proposals
//! ([`DEFAULT_MAX_REJECTED_PROPOSALS`]): past it, the write fails with
//! [`Error::TooManyProposals`] inside an [`io::Error`] of kind
//! [`io::ErrorKind::QuotaExceeded`], and the negotiation fails with it. And every
//! rejection is charged to the connection's [`RejectionBudget`]
//! ([`DEFAULT_MAX_REJECTED_PER_CONNECTION`]), shared by all the negotiations of one
//! connection (the handshake's and every stream's): once it is spent, writes fail
//! with [`Error::RejectionBudgetSpent`], and the owner of the connection closes it
//! ([`RejectionBudget::claim_close`] tells it which of the failing negotiations
//! does).
//!
//! What the listener writes, and what each answer costs:
//!
//! | payload | answer | cost |
//! |---|---|---|
//! | `/multistream/1.0.0\n` | the header | free |
//! | `na\n` | a rejection | one |
//! | `/…\n` (one line) | the confirmation: negotiation is over | free, and from then on every byte passes through unparsed (it is the next layer's) |
//! | anything else | the answer to `ls` | one: it settles nothing either, and a dialer looping on `ls` costs us more than one looping on proposals |
//!
//! The classification is multistream-select's own (`Message::decode`): an `ls`
//! answer always holds at least two line feeds, a confirmation exactly one.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite, IoSlice, IoSliceMut};
use tracing::debug;
use unsigned_varint::{decode, encode};

use crate::Error;

/// Proposals one negotiation may have rejected before it fails: honest dialers
/// propose a handful (a few protocol versions), and 64 leaves room for a long list.
pub const DEFAULT_MAX_REJECTED_PROPOSALS: usize = 64;

/// Rejections one connection may cause across all its negotiations (the handshake's
/// two and every stream's) before it is closed: four negotiations' worth at the
/// per-negotiation default.
pub const DEFAULT_MAX_REJECTED_PER_CONNECTION: usize = 256;

const HEADER: &[u8] = b"/multistream/1.0.0\n";
const NA: &[u8] = b"na\n";

/// Rejections left to one connection, shared by its negotiations: a cheap handle,
/// clones count against the same budget.
#[derive(Clone, Debug)]
pub struct RejectionBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    limit: usize,
    used: AtomicUsize,
    /// A rejection was refused for want of budget.
    spent: AtomicBool,
    /// Someone acted on `spent` (see [`RejectionBudget::claim_close`]).
    claimed: AtomicBool,
}

impl RejectionBudget {
    /// A budget of `limit` rejections.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                limit,
                used: AtomicUsize::new(0),
                spent: AtomicBool::new(false),
                claimed: AtomicBool::new(false),
            }),
        }
    }

    /// The rejections the connection may cause in all.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Rejections written so far.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Whether a negotiation needed more than [`RejectionBudget::limit`]
    /// rejections: the connection must be closed.
    pub fn is_spent(&self) -> bool {
        self.inner.spent.load(Ordering::Relaxed)
    }

    /// True exactly once, for the first caller after the budget is spent. Several
    /// negotiations of one connection can fail on the same spent budget at once; the
    /// one that gets `true` closes the connection and reports the peer, so the peer
    /// is reported once.
    pub fn claim_close(&self) -> bool {
        self.is_spent() && !self.inner.claimed.swap(true, Ordering::AcqRel)
    }

    /// Takes one rejection from the budget; false (and spent) if none is left.
    fn try_take(&self) -> bool {
        let taken = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.inner.limit).then_some(used + 1)
            })
            .is_ok();
        if !taken {
            self.inner.spent.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Gives back `n` rejections taken for bytes that were not written after all.
    fn refund(&self, n: usize) {
        if n > 0 {
            self.inner.used.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

impl Default for RejectionBudget {
    /// A budget of [`DEFAULT_MAX_REJECTED_PER_CONNECTION`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REJECTED_PER_CONNECTION)
    }
}

/// Whether `e` is the write error of a [`RejectionLimited`] past one of its caps.
pub fn is_limit_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::QuotaExceeded && e.get_ref().is_some_and(|inner| inner.is::<Error>())
}

/// The typed error inside a [`RejectionLimited`] write error, or `e` unchanged.
pub(crate) fn take_limit_error(e: io::Error) -> Result<Error, io::Error> {
    if !is_limit_error(&e) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(typed)) => Ok(*typed),
        // Unreachable after `is_limit_error`; rebuilt rather than unwrapped.
        Some(Err(other)) => Err(io::Error::new(kind, other)),
        None => Err(kind.into()),
    }
}

/// Which cap a negotiation hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exceeded {
    /// Its own: [`RejectionLimited::new`]'s `max_rejected`.
    Negotiation,
    /// The connection's [`RejectionBudget`].
    Connection,
}

/// An I/O stream for the listener side of one multistream-select negotiation that
/// bounds the proposals it rejects (module docs). Put it under
/// `listener_select_proto`; keep using the `Negotiated` stream that returns, as
/// always. After the listener's confirmation it passes every byte through.
#[derive(Debug)]
pub struct RejectionLimited<S> {
    inner: S,
    max_rejected: usize,
    rejected: usize,
    budget: RejectionBudget,
    /// Where in the listener's messages the bytes written so far end.
    scan: Scan,
    /// Set once a cap is hit: every later write fails the same way.
    exceeded: Option<Exceeded>,
}

impl<S> RejectionLimited<S> {
    /// Wraps `inner`: at most `max_rejected` rejections in this negotiation, each one
    /// charged to `budget` as well.
    pub fn new(inner: S, max_rejected: usize, budget: RejectionBudget) -> Self {
        Self {
            inner,
            max_rejected,
            rejected: 0,
            budget,
            scan: Scan::START,
            exceeded: None,
        }
    }

    /// Answers written so far that settled nothing (`na`, `ls` lists).
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// Whether the listener's confirmation went through: the negotiation is over
    /// and the wrapper passes everything through.
    pub fn is_settled(&self) -> bool {
        matches!(self.scan, Scan::Settled)
    }

    /// The connection's budget this negotiation charges.
    pub fn budget(&self) -> &RejectionBudget {
        &self.budget
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn limit_error(&self, exceeded: Exceeded) -> io::Error {
        let typed = match exceeded {
            Exceeded::Negotiation => Error::TooManyProposals {
                limit: self.max_rejected,
            },
            Exceeded::Connection => Error::RejectionBudgetSpent {
                limit: self.budget.limit(),
            },
        };
        io::Error::new(io::ErrorKind::QuotaExceeded, typed)
    }

    /// How much of `buf` may go out: up to the start of the first answer past a cap
    /// (or to the end of the confirmation). Charges the budget for the rejections in
    /// that part; the caller refunds those that were not written.
    fn plan(&self, buf: &[u8]) -> io::Result<Plan> {
        let mut scan = self.scan;
        let mut plan = Plan {
            limit: buf.len(),
            reserved: 0,
            exceeded: None,
        };
        // A message begun in an earlier write starts "at 0": its head is out already,
        // and nothing of its tail may follow.
        let mut start = 0;
        for (i, &byte) in buf.iter().enumerate() {
            if scan.at_message_start() {
                start = i;
            }
            match scan.step(byte)? {
                Some(Answer::Confirmation) => {
                    plan.limit = i + 1;
                    break;
                }
                Some(answer) if answer.costs() => {
                    let exceeded = if self.rejected + plan.reserved >= self.max_rejected {
                        Some(Exceeded::Negotiation)
                    } else if !self.budget.try_take() {
                        Some(Exceeded::Connection)
                    } else {
                        None
                    };
                    if exceeded.is_some() {
                        plan.limit = start;
                        plan.exceeded = exceeded;
                        break;
                    }
                    plan.reserved += 1;
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    /// Advances over `written` (a prefix of what [`Self::plan`] allowed); returns the
    /// rejections in it.
    fn commit(&mut self, written: &[u8]) -> usize {
        let mut rejected = 0;
        for &byte in written {
            match self.scan.step(byte) {
                Ok(Some(answer)) if answer.costs() => rejected += 1,
                // `plan` saw these bytes parse; the confirmation ends what it allows.
                Ok(_) | Err(_) => {}
            }
        }
        self.rejected += rejected;
        rejected
    }
}

/// What one write may put out.
struct Plan {
    limit: usize,
    /// Rejections taken from the budget for `..limit`.
    reserved: usize,
    /// The cap the answer at `limit` hits.
    exceeded: Option<Exceeded>,
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RejectionLimited<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_settled() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if let Some(exceeded) = this.exceeded {
            return Poll::Ready(Err(this.limit_error(exceeded)));
        }
        let plan = this.plan(buf)?;
        if plan.limit == 0 {
            if let Some(exceeded) = plan.exceeded {
                debug!(
                    rejected = this.rejected,
                    connection_rejected = this.budget.used(),
                    ?exceeded,
                    "too many rejected protocol proposals: negotiation cut off"
                );
                this.exceeded = Some(exceeded);
                return Poll::Ready(Err(this.limit_error(exceeded)));
            }
        }
        match Pin::new(&mut this.inner).poll_write(cx, &buf[..plan.limit]) {
            Poll::Ready(Ok(n)) => {
                let rejected = this.commit(&buf[..n.min(plan.limit)]);
                this.budget.refund(plan.reserved - rejected);
                Poll::Ready(Ok(n))
            }
            other => {
                this.budget.refund(plan.reserved);
                other
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_settled() {
            return Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs);
        }
        // Negotiation messages are small: one slice at a time keeps `plan` simple.
        let buf = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RejectionLimited<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read_vectored(cx, bufs)
    }
}

/// A complete listener message, by what it does to the negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Header,
    Rejection,
    Listing,
    Confirmation,
}

impl Answer {
    /// Whether it counts against the caps: it answers the dialer and settles nothing.
    fn costs(self) -> bool {
        matches!(self, Answer::Rejection | Answer::Listing)
    }
}

/// multistream-select frame lengths are u16 varints (at most 3 bytes).
type LengthBytes = [u8; 3];

/// A position in the stream of listener messages.
#[derive(Clone, Copy, Debug)]
enum Scan {
    /// In a length prefix: `buf[..pos]` so far.
    Length { buf: LengthBytes, pos: usize },
    /// In a payload.
    Payload(Payload),
    /// After the confirmation: the next layer's bytes.
    Settled,
}

/// What matters of a payload, learnt byte by byte (an `ls` answer can be KiBs).
#[derive(Clone, Copy, Debug)]
struct Payload {
    len: usize,
    seen: usize,
    first: u8,
    last: u8,
    line_feeds: usize,
    /// Every byte so far matches `na\n` and the length does.
    na: bool,
    /// Likewise for the header.
    header: bool,
}

impl Payload {
    fn new(len: usize) -> Self {
        Self {
            len,
            seen: 0,
            first: 0,
            last: 0,
            line_feeds: 0,
            na: len == NA.len(),
            header: len == HEADER.len(),
        }
    }

    fn push(&mut self, byte: u8) {
        if self.seen == 0 {
            self.first = byte;
        }
        self.na &= NA.get(self.seen) == Some(&byte);
        self.header &= HEADER.get(self.seen) == Some(&byte);
        self.line_feeds += usize::from(byte == b'\n');
        self.last = byte;
        self.seen += 1;
    }

    /// The answer, once all `len` bytes are in (as `Message::decode` tells them apart).
    fn answer(&self) -> Answer {
        if self.header {
            Answer::Header
        } else if self.na {
            Answer::Rejection
        } else if self.first == b'/' && self.last == b'\n' && self.line_feeds == 1 {
            Answer::Confirmation
        } else {
            Answer::Listing
        }
    }
}

impl Scan {
    const START: Scan = Scan::Length {
        buf: [0; 3],
        pos: 0,
    };

    fn at_message_start(&self) -> bool {
        matches!(self, Scan::Length { pos: 0, .. })
    }

    /// Takes one written byte; returns the answer it completes.
    fn step(&mut self, byte: u8) -> io::Result<Option<Answer>> {
        match self {
            Scan::Length { buf, pos } => {
                buf[*pos] = byte;
                *pos += 1;
                if decode::is_last(byte) {
                    let (len, _) = decode::u16(&buf[..*pos]).map_err(not_multistream)?;
                    if len == 0 {
                        // multistream-select writes no empty message; an empty one
                        // settles nothing.
                        *self = Scan::START;
                        return Ok(Some(Answer::Listing));
                    }
                    *self = Scan::Payload(Payload::new(usize::from(len)));
                } else if *pos == encode::u16_buffer().len() {
                    return Err(not_multistream(decode::Error::Overflow));
                }
                Ok(None)
            }
            Scan::Payload(payload) => {
                payload.push(byte);
                if payload.seen < payload.len {
                    return Ok(None);
                }
                let answer = payload.answer();
                *self = match answer {
                    Answer::Confirmation => Scan::Settled,
                    _ => Scan::START,
                };
                Ok(Some(answer))
            }
            Scan::Settled => Ok(None),
        }
    }
}

/// We wrote something that is not multistream-select: the wrapper is in the wrong
/// place, and the negotiation cannot be bounded, so it fails.
fn not_multistream(e: decode::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a multistream-select length prefix: {e}"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use futures::task::noop_waker_ref;
    use proptest::prelude::*;

    /// A sink that takes at most the next of `takes` bytes per call (cycling), and
    /// says Pending on a zero, to exercise partial writes and refunds.
    struct Chunky {
        out: Vec<u8>,
        takes: Vec<usize>,
        call: usize,
    }

    impl AsyncWrite for Chunky {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let take = self.takes[self.call % self.takes.len()];
            self.call += 1;
            if take == 0 {
                return Poll::Pending;
            }
            let n = take.min(buf.len());
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = encode::u16_buffer();
        let mut out = encode::u16(payload.len() as u16, &mut buf).to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn ls_answer(protocols: &[String]) -> Vec<u8> {
        let mut payload = Vec::new();
        for p in protocols {
            let mut buf = encode::usize_buffer();
            payload.extend_from_slice(encode::usize(p.len() + 1, &mut buf));
            payload.extend_from_slice(p.as_bytes());
            payload.push(b'\n');
        }
        payload.push(b'\n');
        frame(&payload)
    }

    /// Writes each of `writes` in full through `w` (retrying partial writes and
    /// Pending), stopping at the first error.
    fn write_all(w: &mut RejectionLimited<Chunky>, writes: &[&[u8]]) -> Option<io::Error> {
        let mut cx = Context::from_waker(noop_waker_ref());
        for chunk in writes {
            let mut chunk = *chunk;
            let mut pending = 0;
            while !chunk.is_empty() {
                match Pin::new(&mut *w).poll_write(&mut cx, chunk) {
                    Poll::Ready(Ok(n)) => chunk = &chunk[n..],
                    Poll::Ready(Err(e)) => return Some(e),
                    Poll::Pending => {
                        pending += 1;
                        assert!(pending < 1000, "stuck");
                    }
                }
            }
        }
        None
    }

    fn chunky(takes: Vec<usize>) -> Chunky {
        // At least one non-zero take, so writes progress.
        let mut takes = takes;
        takes.push(1 << 20);
        Chunky {
            out: Vec::new(),
            takes,
            call: 0,
        }
    }

    /// Splits `bytes` at `cuts` (positions modulo the length).
    fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        cuts.dedup();
        cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
    }

    #[derive(Clone, Debug)]
    enum Msg {
        Header,
        Na,
        Ls(Vec<String>),
    }

    fn msg() -> impl Strategy<Value = Msg> {
        prop_oneof![
            1 => Just(Msg::Header),
            8 => Just(Msg::Na),
            1 => proptest::collection::vec("/[a-z0-9/.]{0,200}", 0..4).prop_map(Msg::Ls),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// However the listener's messages are cut into writes, and however much of
        /// each write the socket takes: exactly `min(answers, cap)` costly answers go
        /// out whole, the write of the next one fails with the typed error, the budget
        /// is charged for what went out and no more, and after a confirmation every
        /// byte passes through (even bytes that look like `na`).
        #[test]
        fn bound_holds_at_any_split(
            msgs in proptest::collection::vec(msg(), 0..40),
            confirm in proptest::option::of("/[a-z0-9/.]{0,40}"),
            trailing_na in 0usize..80,
            trailing in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
            takes in proptest::collection::vec(0usize..9, 1..8),
            cap in 0usize..12,
            budget_limit in 0usize..40,
        ) {
            let mut bytes = Vec::new();
            let mut costly = Vec::new(); // (start, end) of each costly answer
            for m in &msgs {
                let start = bytes.len();
                match m {
                    Msg::Header => bytes.extend(frame(HEADER)),
                    Msg::Na => bytes.extend(frame(NA)),
                    Msg::Ls(ps) => bytes.extend(ls_answer(ps)),
                }
                if !matches!(m, Msg::Header) {
                    costly.push((start, bytes.len()));
                }
            }
            let negotiation_end = match &confirm {
                Some(p) => {
                    bytes.extend(frame(format!("{p}\n").as_bytes()));
                    bytes.len()
                }
                None => bytes.len(),
            };
            // Bytes of the next layer follow only a confirmation.
            if confirm.is_some() {
                for _ in 0..trailing_na {
                    bytes.extend(frame(NA));
                }
                bytes.extend(&trailing);
            }

            let budget = RejectionBudget::new(budget_limit);
            let mut w = RejectionLimited::new(chunky(takes), cap, budget.clone());
            let err = write_all(&mut w, &split(&bytes, &cuts));
            let allowed = cap.min(budget_limit);
            let out = &w.get_ref().out;
            prop_assert_eq!(&bytes[..out.len()], &out[..], "output is not a prefix of the input");
            if let Some(&(start, end)) = costly.get(allowed) {
                // The answer past the cap: none of it, or at most a head written
                // before its last byte was known.
                let err = err.expect("the write past the cap fails");
                prop_assert!(is_limit_error(&err), "{err}");
                let typed = take_limit_error(err).unwrap();
                if cap <= budget_limit {
                    prop_assert!(matches!(typed, Error::TooManyProposals { limit } if limit == cap), "{typed}");
                } else {
                    prop_assert!(matches!(typed, Error::RejectionBudgetSpent { limit } if limit == budget_limit), "{typed}");
                    prop_assert!(budget.is_spent());
                }
                prop_assert!(out.len() >= start && out.len() < end, "{} not in {start}..{end}", out.len());
                prop_assert_eq!(w.rejected(), allowed);
                prop_assert!(!w.is_settled());
                // Later writes keep failing.
                prop_assert!(write_all(&mut w, &[b"x"]).is_some());
            } else {
                prop_assert!(err.is_none(), "{err:?}");
                prop_assert_eq!(out.len(), bytes.len());
                prop_assert_eq!(w.rejected(), costly.len());
                prop_assert_eq!(w.is_settled(), confirm.is_some());
                prop_assert!(out.len() >= negotiation_end);
            }
            prop_assert_eq!(budget.used(), w.rejected());
        }
    }

    #[test]
    fn one_budget_across_negotiations() {
        let budget = RejectionBudget::new(5);
        let mut a = RejectionLimited::new(chunky(vec![]), 64, budget.clone());
        let mut b = RejectionLimited::new(chunky(vec![]), 64, budget.clone());
        let na = frame(NA);
        for _ in 0..3 {
            assert!(write_all(&mut a, &[&na]).is_none());
        }
        assert!(write_all(&mut b, &[&na, &na]).is_none());
        assert!(!budget.is_spent());
        assert!(!budget.claim_close());
        // The sixth rejection of the connection fails, in whichever negotiation.
        let err = write_all(&mut b, &[&na]).unwrap();
        assert!(matches!(
            take_limit_error(err),
            Ok(Error::RejectionBudgetSpent { limit: 5 })
        ));
        assert!(budget.is_spent());
        assert!(write_all(&mut a, &[&na]).is_some());
        assert_eq!(budget.used(), 5);
        // One of the failing negotiations closes the connection.
        assert!(budget.claim_close());
        assert!(!budget.claim_close());
    }

    #[test]
    fn pending_refunds_the_budget() {
        let budget = RejectionBudget::new(1);
        let mut w = RejectionLimited::new(chunky(vec![0]), 64, budget.clone());
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(Pin::new(&mut w)
            .poll_write(&mut cx, &frame(NA))
            .is_pending());
        assert_eq!(budget.used(), 0);
        // Another negotiation of the connection can have it meanwhile.
        let mut other = RejectionLimited::new(chunky(vec![]), 64, budget.clone());
        assert!(write_all(&mut other, &[&frame(NA)]).is_none());
        assert_eq!(budget.used(), 1);
    }

    #[test]
    fn other_io_errors_are_not_limit_errors() {
        let e = io::Error::new(io::ErrorKind::QuotaExceeded, "disk");
        assert!(!is_limit_error(&e));
        assert!(take_limit_error(e).is_err());
        assert!(!is_limit_error(&io::ErrorKind::BrokenPipe.into()));
    }

    /// A lazy (V1Lazy) dialer sends its header, its protocol and its first data in
    /// one go, before our answer: the data still arrives through the wrapper, in the
    /// `Negotiated` stream, and the wrapper is settled after the confirmation.
    #[tokio::test]
    async fn lazy_dialer_data_survives() {
        use futures::{AsyncReadExt, AsyncWriteExt};
        use multistream_select::{dialer_select_proto, listener_select_proto, Version};
        use tokio_util::compat::TokioAsyncReadCompatExt;

        let (a, b) = tokio::io::duplex(4096);
        let dialer = tokio::spawn(async move {
            let (_, mut io) = dialer_select_proto(a.compat(), ["/lazy/1"], Version::V1Lazy)
                .await
                .unwrap();
            io.write_all(b"early bytes behind the protocol line")
                .await
                .unwrap();
            io.flush().await.unwrap();
            let mut back = [0u8; 4];
            io.read_exact(&mut back).await.unwrap();
            back
        });
        let budget = RejectionBudget::default();
        let io = RejectionLimited::new(b.compat(), 64, budget.clone());
        let (id, mut io) = listener_select_proto(io, ["/other/1", "/lazy/1"])
            .await
            .unwrap();
        assert_eq!(id, "/lazy/1");
        let mut got = vec![0u8; 36];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..], b"early bytes behind the protocol line");
        // Written after the confirmation: passes through unparsed.
        io.write_all(b"\x03na\n").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(&dialer.await.unwrap(), b"\x03na\n");
        assert_eq!(budget.used(), 0);
    }

    /// Through multistream-select itself: a dialer proposing 100 unknown protocols
    /// one after the other gets 64 `na`, then the negotiation fails with the typed
    /// error.
    #[tokio::test]
    async fn listener_select_fails_past_the_cap() {
        use multistream_select::{dialer_select_proto, listener_select_proto, Version};
        use tokio_util::compat::TokioAsyncReadCompatExt;

        let (a, b) = tokio::io::duplex(4096);
        let bogus: Vec<String> = (0..100).map(|i| format!("/bogus/{i}")).collect();
        let dialer = tokio::spawn(dialer_select_proto(a.compat(), bogus, Version::V1));
        let budget = RejectionBudget::default();
        let io = RejectionLimited::new(b.compat(), 64, budget.clone());
        let err = listener_select_proto(io, ["/real/1"]).await.unwrap_err();
        assert!(
            matches!(Error::from(err), Error::TooManyProposals { limit: 64 }),
            "wrong error"
        );
        assert_eq!(budget.used(), 64);
        assert!(dialer.await.unwrap().is_err());
    }
}
