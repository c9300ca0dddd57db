//! Counters both servers keep for metrics: messages and bytes per registrar protocol
//! and message code, dial attempts by outcome, and failed handshakes by reason.
//! [`crate::Network::counters`] reads them.
//!
//! Messages are counted where a [`crate::MessageStream`] hands one over or takes one
//! (per stream: two relaxed atomic adds, no lock); bytes are the message's code and
//! payload, before any framing, encryption or compression, the same on both servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Direction, Error, ServerKind};

/// One protocol's counters: messages per code and bytes, each way.
pub(crate) struct ProtocolCounter {
    messages: [[AtomicU64; 256]; 2],
    bytes: [AtomicU64; 2],
}

impl ProtocolCounter {
    fn new() -> Self {
        Self {
            messages: [
                std::array::from_fn(|_| AtomicU64::new(0)),
                std::array::from_fn(|_| AtomicU64::new(0)),
            ],
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Counts one message of `code` with `payload` bytes, `direction` from our side
    /// (inbound: received).
    pub(crate) fn count(&self, direction: Direction, code: u8, payload: usize) {
        let d = index(direction);
        self.messages[d][code as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes[d].fetch_add(1 + payload as u64, Ordering::Relaxed);
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

/// The counters of one network, shared by its servers.
#[derive(Default)]
pub(crate) struct Counters {
    protocols: Mutex<HashMap<String, Arc<ProtocolCounter>>>,
    dials: Mutex<HashMap<(ServerKind, &'static str), u64>>,
    handshake_failures: Mutex<HashMap<(ServerKind, Direction, &'static str), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Counters {
    /// The counter of `protocol`, made on its first stream.
    pub(crate) fn protocol(&self, protocol: &str) -> Arc<ProtocolCounter> {
        lock(&self.protocols)
            .entry(protocol.to_string())
            .or_insert_with(|| Arc::new(ProtocolCounter::new()))
            .clone()
    }

    /// Counts a dial on `server` that ended in `result`.
    pub(crate) fn dialled<T>(&self, server: ServerKind, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "connected",
            Err(e) => e.kind(),
        };
        *lock(&self.dials).entry((server, outcome)).or_default() += 1;
    }

    /// Counts a handshake on `server` that failed with `error`.
    pub(crate) fn handshake_failed(&self, server: ServerKind, direction: Direction, error: &Error) {
        self.handshake_refused(server, direction, error.kind());
    }

    /// Counts a handshake on `server` that ended for `reason` without an error of
    /// ours (`busy`: every pending-handshake slot was taken).
    pub(crate) fn handshake_refused(
        &self,
        server: ServerKind,
        direction: Direction,
        reason: &'static str,
    ) {
        *lock(&self.handshake_failures)
            .entry((server, direction, reason))
            .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let mut messages = Vec::new();
        let mut bytes = Vec::new();
        for (protocol, c) in lock(&self.protocols).iter() {
            for direction in DIRECTIONS {
                let d = index(direction);
                bytes.push(ProtocolBytes {
                    protocol: protocol.clone(),
                    direction,
                    bytes: c.bytes[d].load(Ordering::Relaxed),
                });
                for (code, n) in c.messages[d].iter().enumerate() {
                    let n = n.load(Ordering::Relaxed);
                    if n > 0 {
                        messages.push(MessageCount {
                            protocol: protocol.clone(),
                            direction,
                            code: code as u8,
                            messages: n,
                        });
                    }
                }
            }
        }
        let dials = lock(&self.dials)
            .iter()
            .map(|(&(server, outcome), &count)| DialCount {
                server,
                outcome,
                count,
            })
            .collect();
        let handshake_failures = lock(&self.handshake_failures)
            .iter()
            .map(
                |(&(server, direction, reason), &count)| HandshakeFailureCount {
                    server,
                    direction,
                    reason,
                    count,
                },
            )
            .collect();
        CountersSnapshot {
            messages,
            bytes,
            dials,
            handshake_failures,
        }
    }
}

/// What [`crate::Network::counters`] returns.
#[derive(Clone, Debug, Default)]
pub struct CountersSnapshot {
    /// Messages per protocol, direction and code (codes never seen are left out).
    pub messages: Vec<MessageCount>,
    /// Message bytes (code and payload) per protocol and direction.
    pub bytes: Vec<ProtocolBytes>,
    /// Dials by server and outcome.
    pub dials: Vec<DialCount>,
    /// Failed handshakes by server, direction and reason.
    pub handshake_failures: Vec<HandshakeFailureCount>,
}

/// Messages of one protocol, direction and code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageCount {
    /// The protocol id.
    pub protocol: String,
    /// Inbound: received; outbound: sent.
    pub direction: Direction,
    /// The message code.
    pub code: u8,
    /// How many.
    pub messages: u64,
}

/// Message bytes of one protocol and direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolBytes {
    /// The protocol id.
    pub protocol: String,
    /// Inbound: received; outbound: sent.
    pub direction: Direction,
    /// Code and payload bytes of its messages.
    pub bytes: u64,
}

/// Dials that ended one way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialCount {
    /// The server that dialled.
    pub server: ServerKind,
    /// `connected`, or the failure's [`Error::kind`].
    pub outcome: &'static str,
    /// How many.
    pub count: u64,
}

/// Handshakes that failed one way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeFailureCount {
    /// The server.
    pub server: ServerKind,
    /// Inbound: the peer dialled us.
    pub direction: Direction,
    /// The failure's [`Error::kind`].
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}
