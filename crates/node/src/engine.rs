//! The Engine API subset devmux serves (`--authrpc ADDR --jwtsecret FILE`): enough for a
//! consensus client, or a test acting as one, to name the head of a proof-of-stake chain.
//!
//! | method | params | result |
//! |---|---|---|
//! | `engine_exchangeCapabilities` | the client's methods | the methods below |
//! | `engine_forkchoiceUpdatedV1` … `V3` | `ForkchoiceStateV1`, payload attributes or `null` | `{payloadStatus, payloadId: null}` |
//! | `engine_forkchoiceUpdatedV4` | the same, and the custody columns (ignored) | the same |
//!
//! A forkchoice update whose head is stored makes it the canonical head, however deep the
//! reorg, records the safe and finalized blocks, and answers
//! `{payloadStatus: {status: "VALID", latestValidHash: head, validationError: null},
//! payloadId: null}` ([`devmux_chain::Chain::set_forkchoice`]). From the first update on
//! (one answered `SYNCING` too) the chain follows the consensus client: blocks from peers
//! are stored, and the head moves only when it says; until then, and after a restart
//! until its next update, the longest valid chain within 64 blocks of reorganisation is
//! the head, as without one. An update whose head is not stored answers `SYNCING` and has sync fetch that
//! block and its ancestors from peers ([`devmux_sync::SyncHandle::fetch_block`]); once
//! they are stored, the update is applied, unless a newer one came first. A zero head
//! hash, or safe and finalized blocks that are not the head or ancestors of it, are
//! `-38002` (invalid forkchoice state), and so is a head that would reorganise the
//! finalized block or the `--checkpoint` away.
//!
//! "VALID" means what devmux can check: every stored block passed the header, body and
//! receipt checks of [`devmux_chain::validate`]; devmux does not execute transactions.
//! Nor does it build payloads: an update with payload attributes is applied, then
//! answered `-38003` (invalid payload attributes, as the spec says when no build process
//! is started), so that a consensus client asking devmux to build a block is told at once
//! why none comes, instead of getting a `payloadId: null` it would have to guess at.
//!
//! Every request carries a JWT (HS256 over the 32-byte secret in `--jwtsecret`, claim
//! `iat` within 60 s of our clock: the Engine API's authentication spec); one without a
//! valid token is answered HTTP 401 before any JSON is read. The token is the guard, so
//! the Engine API may listen on a non-loopback address without another flag (unlike the
//! admin RPC); keep the secret file private.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devmux_chain::{Chain, Forkchoice};
use devmux_eth::alloy_primitives::B256;
use devmux_sync::SyncHandle;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use hyper::StatusCode;
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, RpcModule, Server, ServerHandle};
use jsonrpsee::types::error::ErrorObjectOwned;
use jsonrpsee::types::Params;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::rpc::{register_error, server_error};
use crate::Error;

/// The methods `engine_exchangeCapabilities` answers with (the spec leaves
/// `engine_exchangeCapabilities` itself out).
pub const CAPABILITIES: [&str; 4] = [
    "engine_forkchoiceUpdatedV1",
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_forkchoiceUpdatedV4",
];

/// The Engine API's error for an inconsistent forkchoice state.
pub const INVALID_FORKCHOICE_STATE: i32 = -38002;
/// The Engine API's error for payload attributes no build process was started for.
pub const INVALID_PAYLOAD_ATTRIBUTES: i32 = -38003;

/// How far a token's `iat` may be from our clock, in seconds (the authentication spec's
/// ±60 s).
pub const MAX_IAT_SKEW_SECS: u64 = 60;

/// The Engine API's timeout for a forkchoice update (8 s): answered `-32000` after it.
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// Concurrent HTTP connections served (a consensus client opens one or two).
const MAX_CONNECTIONS: u32 = 16;
/// Largest request body: forkchoice updates are small.
const MAX_REQUEST_BYTES: u32 = 1024 * 1024;
/// Most calls in one batch.
const MAX_BATCH_CALLS: u32 = 16;
/// How long stopping waits for requests in flight.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Before asking peers again for a head none of them served.
const RETRY_UNAVAILABLE: Duration = Duration::from_secs(1);
/// Before asking again for a head too far past our chain (a slot).
const RETRY_TOO_FAR: Duration = Duration::from_secs(12);

/// Reads an Engine API JWT secret file: 64 hex digits (32 bytes), optionally
/// `0x`-prefixed, surrounding whitespace ignored.
pub fn parse_jwt_secret(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let mut secret = [0u8; 32];
    if digits.len() != 64 || hex::decode_to_slice(digits, &mut secret).is_err() {
        return Err(
            "must hold a 32-byte secret as 64 hex digits, 0x prefix optional (`openssl rand -hex 32` writes one)"
                .into(),
        );
    }
    Ok(secret)
}

/// A running Engine API server and the task that fetches heads it was told of.
#[derive(Debug)]
pub(crate) struct EngineServer {
    handle: ServerHandle,
    addr: SocketAddr,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl EngineServer {
    /// Serves the Engine API on `listener` (bound at `addr` by [`crate::rpc::bind`]),
    /// checking every request's JWT against `secret`.
    pub(crate) fn start(
        listener: tokio::net::TcpListener,
        addr: SocketAddr,
        secret: [u8; 32],
        chain: Chain,
        sync: SyncHandle,
    ) -> Result<Self, Error> {
        let listen_error = |error| Error::Listen {
            what: "Engine API (--authrpc)",
            addr,
            error,
        };
        let listener = listener.into_std().map_err(listen_error)?;
        let config =
            crate::rpc::http_server_config(MAX_CONNECTIONS, MAX_REQUEST_BYTES, MAX_BATCH_CALLS);
        let server = Server::builder()
            .set_config(config)
            .set_http_middleware(tower::ServiceBuilder::new().layer(JwtLayer::new(&secret)))
            .build_from_tcp(listener)
            .map_err(listen_error)?;
        let engine = Arc::new(Engine {
            chain,
            sync,
            updates: tokio::sync::Mutex::new(()),
            pending: Mutex::new(None),
            wake: Notify::new(),
        });
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(fetch_loop(engine.clone(), cancel.clone()));
        tasks.close();
        let handle = server.start(module(engine)?);
        if addr.ip().is_loopback() {
            info!(%addr, "Engine API listening");
        } else {
            info!(%addr, "Engine API listening on a non-loopback address: every request needs a JWT made with --jwtsecret");
        }
        Ok(Self {
            handle,
            addr,
            cancel,
            tasks,
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits (bounded) for requests in flight, and stops fetching.
    pub(crate) async fn stop(self) {
        let _ = self.handle.stop();
        self.cancel.cancel();
        let stopped = async {
            self.handle.stopped().await;
            self.tasks.wait().await;
        };
        if tokio::time::timeout(STOP_TIMEOUT, stopped).await.is_err() {
            warn!("Engine API requests still running at stop");
        }
    }
}

/// What the Engine API methods share.
struct Engine {
    chain: Chain,
    sync: SyncHandle,
    /// One forkchoice update at a time, in the order they came (go-ethereum's
    /// `forkchoiceLock`).
    updates: tokio::sync::Mutex<()>,
    /// The latest update whose head is not stored: [`fetch_loop`] fetches it and
    /// applies it once stored, unless an update applied since replaced it.
    pending: Mutex<Option<Forkchoice>>,
    /// Wakes [`fetch_loop`]: the pending update changed.
    wake: Notify,
}

impl Engine {
    fn pending(&self) -> Option<Forkchoice> {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the pending update; true if it changed (then [`fetch_loop`] is woken).
    fn set_pending(&self, update: Option<Forkchoice>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *pending != update;
        *pending = update;
        drop(pending);
        if changed && update.is_some() {
            self.wake.notify_one();
        }
        changed
    }

    /// Applies `update` (whose head is stored now) if it is still the pending one.
    async fn adopt(&self, update: Forkchoice) {
        let _order = self.updates.lock().await;
        if self.pending() != Some(update) {
            return;
        }
        let applied = match self.chain.set_forkchoice(update).await {
            Err(devmux_chain::Error::InvalidForkchoice(why)) => {
                // The head is the consensus client's word; its safe or finalized block
                // is not on the head's chain as we have it: take the head alone.
                warn!(head = %update.head, "forkchoice: {why}; setting the head alone");
                let head_only = Forkchoice {
                    safe: None,
                    finalized: None,
                    ..update
                };
                self.chain.set_forkchoice(head_only).await
            }
            other => other,
        };
        match applied {
            Ok(change) => {
                self.set_pending(None);
                info!(
                    number = change.head.number,
                    hash = %change.head.hash,
                    reorg_depth = change.reorg_depth,
                    "head set by the consensus client, once fetched"
                );
                if change.head_changed() {
                    self.sync.announce_head().await;
                }
            }
            Err(
                e @ (devmux_chain::Error::ReorgBelowFinalized { .. }
                | devmux_chain::Error::CheckpointMismatch { .. }),
            ) => {
                self.set_pending(None);
                warn!(head = %update.head, "forkchoice head refused: {e}");
            }
            // Kept pending: tried again at the next wake-up.
            Err(e) => warn!(head = %update.head, "forkchoice head not set: {e}"),
        }
    }
}

/// Fetches the pending update's head from peers, and applies the update once it is
/// stored; retries while it stays pending.
async fn fetch_loop(engine: Arc<Engine>, cancel: CancellationToken) {
    loop {
        let Some(update) = engine.pending() else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = engine.wake.notified() => continue,
            }
        };
        let fetched = tokio::select! {
            _ = cancel.cancelled() => return,
            fetched = engine.sync.fetch_block(update.head) => fetched,
        };
        let retry = match fetched {
            Ok(inserted) => {
                debug!(head = %update.head, inserted, "forkchoice head fetched");
                engine.adopt(update).await;
                continue;
            }
            Err(devmux_sync::Error::ShuttingDown) => return,
            Err(e @ devmux_sync::Error::AncestryTooLong { .. }) => {
                info!("forkchoice head not fetched yet: {e}");
                RETRY_TOO_FAR
            }
            Err(e) => {
                debug!("forkchoice head not fetched yet: {e}");
                RETRY_UNAVAILABLE
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = engine.wake.notified() => {}
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

/// `ForkchoiceStateV1`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForkchoiceState {
    head_block_hash: String,
    safe_block_hash: String,
    finalized_block_hash: String,
}

impl ForkchoiceState {
    /// The update it names (zero safe and finalized hashes: none); a zero head is an
    /// invalid forkchoice state.
    fn forkchoice(&self) -> Result<Forkchoice, ErrorObjectOwned> {
        let hash = |field: &str, text: &str| -> Result<Option<B256>, ErrorObjectOwned> {
            let hash = parse_hash(text).ok_or_else(|| {
                ErrorObjectOwned::owned(
                    jsonrpsee::types::error::INVALID_PARAMS_CODE,
                    format!("{field} {text:?} is not a 32-byte hash (0x and 64 hex digits)"),
                    None::<()>,
                )
            })?;
            Ok((hash != B256::ZERO).then_some(hash))
        };
        let head = hash("headBlockHash", &self.head_block_hash)?
            .ok_or_else(|| invalid_forkchoice("headBlockHash is the zero hash"))?;
        Ok(Forkchoice {
            head,
            safe: hash("safeBlockHash", &self.safe_block_hash)?,
            finalized: hash("finalizedBlockHash", &self.finalized_block_hash)?,
        })
    }
}

fn parse_hash(text: &str) -> Option<B256> {
    let digits = text.strip_prefix("0x")?;
    let mut hash = [0u8; 32];
    (digits.len() == 64 && hex::decode_to_slice(digits, &mut hash).is_ok())
        .then_some(B256::from(hash))
}

fn invalid_forkchoice(why: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        INVALID_FORKCHOICE_STATE,
        "Invalid forkchoice state",
        Some(json!({ "err": why.into() })),
    )
}

/// `PayloadStatusV1` and no payload id.
fn forkchoice_response(status: &str, latest_valid: Option<B256>) -> Value {
    json!({
        "payloadStatus": {
            "status": status,
            "latestValidHash": latest_valid.map(|h| h.to_string()),
            "validationError": null,
        },
        "payloadId": null,
    })
}

/// `engine_forkchoiceUpdatedV{version}`.
async fn forkchoice_updated(
    engine: &Engine,
    params: Params<'static>,
    version: u8,
) -> Result<Value, ErrorObjectOwned> {
    let mut params = params.sequence();
    let state: ForkchoiceState = params.next()?;
    let attributes: Option<Value> = params.optional_next()?;
    if version >= 4 {
        // The custody columns (EIP-7594): devmux keeps no blobs, so none are custodied.
        let _custody: Option<Value> = params.optional_next()?;
    }
    let update = state.forkchoice()?;
    // A consensus client is here: from now on it names the head, even before it names
    // one we have (else fork choice could move the head meanwhile, or refuse the branch
    // sync fetches for it as deeper than the bound).
    engine.chain.follow_consensus_layer();
    let order = engine.updates.lock().await;
    let applied = tokio::time::timeout(CALL_TIMEOUT, engine.chain.set_forkchoice(update))
        .await
        .map_err(|_| {
            server_error(format!(
                "forkchoice update took longer than {CALL_TIMEOUT:?}"
            ))
        })?;
    let change = match applied {
        Ok(change) => change,
        Err(devmux_chain::Error::UnknownBlock(_)) => {
            // Sync fetches it, then the update is applied (unless a newer one came).
            if engine.set_pending(Some(update)) {
                info!(head = %update.head, "forkchoice: head not stored, fetching it from peers");
            }
            return Ok(forkchoice_response("SYNCING", None));
        }
        Err(
            e @ (devmux_chain::Error::InvalidForkchoice(_)
            | devmux_chain::Error::ReorgBelowFinalized { .. }
            | devmux_chain::Error::CheckpointMismatch { .. }),
        ) => {
            debug!(head = %update.head, "forkchoice refused: {e}");
            return Err(invalid_forkchoice(e.to_string()));
        }
        Err(e) => return Err(server_error(format!("forkchoice update failed: {e}"))),
    };
    // Applied (or skipped, below the finalized block): any pending head is superseded.
    engine.set_pending(None);
    drop(order);
    if change.head_changed() {
        info!(
            number = change.head.number,
            hash = %change.head.hash,
            reorg_depth = change.reorg_depth,
            "head set by the consensus client"
        );
        engine.sync.announce_head().await;
    }
    if change.applied && attributes.is_some_and(|a| !a.is_null()) {
        // Applied, and not rolled back: the spec's answer when no build process starts.
        return Err(ErrorObjectOwned::owned(
            INVALID_PAYLOAD_ATTRIBUTES,
            "Invalid payload attributes",
            Some(
                json!({ "err": "devmux does not build payloads; the forkchoice state was applied" }),
            ),
        ));
    }
    Ok(forkchoice_response("VALID", Some(update.head)))
}

/// The Engine API methods over `engine`.
fn module(engine: Arc<Engine>) -> Result<RpcModule<Arc<Engine>>, Error> {
    let mut module = RpcModule::new(engine);
    module
        .register_method("engine_exchangeCapabilities", |params, _, _| {
            let theirs: Vec<String> = params.one()?;
            debug!(?theirs, "engine_exchangeCapabilities");
            Ok::<_, ErrorObjectOwned>(CAPABILITIES.to_vec())
        })
        .map_err(register_error)?;
    for (method, version) in CAPABILITIES.iter().zip(1u8..) {
        module
            .register_async_method(method, move |params, engine, _| async move {
                forkchoice_updated(&engine, params, version).await
            })
            .map_err(register_error)?;
    }
    Ok(module)
}

// ---- JWT ------------------------------------------------------------------------------

/// Answers HTTP 401 to every request without a valid Engine API token.
#[derive(Clone)]
struct JwtLayer {
    key: Arc<DecodingKey>,
}

impl JwtLayer {
    fn new(secret: &[u8; 32]) -> Self {
        Self {
            key: Arc::new(DecodingKey::from_secret(secret)),
        }
    }
}

impl<S> tower::Layer<S> for JwtLayer {
    type Service = Jwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Jwt {
            inner,
            key: self.key.clone(),
        }
    }
}

/// [`JwtLayer`]'s service.
#[derive(Clone)]
struct Jwt<S> {
    inner: S,
    key: Arc<DecodingKey>,
}

impl<S, B> tower::Service<HttpRequest<B>> for Jwt<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        match authorize(&self.key, request.headers(), now_secs()) {
            Ok(()) => {
                let response = self.inner.call(request);
                Box::pin(async move { response.await.map_err(Into::into) })
            }
            Err(why) => {
                debug!("Engine API request refused: {why}");
                Box::pin(async move { Ok(unauthorized(&why)) })
            }
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unauthorized(why: &str) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(format!("{why}\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// The claims devmux reads; others are ignored, as the spec says.
#[derive(Deserialize)]
struct Claims {
    iat: Option<f64>,
    exp: Option<f64>,
}

/// Whether `headers` carry a valid token: `Authorization: Bearer <JWT>`, HS256 with our
/// secret (no other algorithm, `none` included), `iat` within [`MAX_IAT_SKEW_SECS`] of
/// `now`, and not expired if it has an `exp`.
fn authorize(key: &DecodingKey, headers: &HeaderMap, now: u64) -> Result<(), String> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or("no Authorization header (the Engine API needs a JWT)")?;
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or("the Authorization header is not a Bearer token")?;
    let mut validation = Validation::new(Algorithm::HS256);
    // Times are checked below, against `now`.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(token.trim(), key, &validation)
        .map_err(|e| format!("invalid token: {e}"))?
        .claims;
    let iat = claims.iat.ok_or("the token has no iat claim")?;
    let skew = (iat - now as f64).abs();
    // A NaN `iat` is no time at all: refused too.
    if skew.is_nan() || skew > MAX_IAT_SKEW_SECS as f64 {
        return Err(format!(
            "the token was issued at {iat}, {skew:.0} s from our clock ({now}): at most {MAX_IAT_SKEW_SECS} s"
        ));
    }
    if let Some(exp) = claims.exp.filter(|exp| *exp < now as f64) {
        return Err(format!("the token expired at {exp}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn token(secret: &[u8], claims: Value, alg: Algorithm) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn tokens_are_checked_for_secret_algorithm_and_iat() {
        let secret = [7u8; 32];
        let key = DecodingKey::from_secret(&secret);
        let now = 1_800_000_000;
        let ok = |claims: Value| {
            authorize(
                &key,
                &headers(&format!(
                    "Bearer {}",
                    token(&secret, claims, Algorithm::HS256)
                )),
                now,
            )
        };
        ok(json!({ "iat": now })).unwrap();
        ok(json!({ "iat": now - 60 })).unwrap();
        ok(json!({ "iat": now + 60, "id": "cl", "clv": "x/1" })).unwrap();
        assert!(ok(json!({ "iat": now - 61 }))
            .unwrap_err()
            .contains("issued at"));
        assert!(ok(json!({ "iat": now - 120 })).is_err());
        assert!(ok(json!({ "iat": now + 120 })).is_err());
        assert!(ok(json!({})).unwrap_err().contains("no iat"));
        assert!(ok(json!({ "iat": now, "exp": now - 10 })).is_err());

        let wrong = token(&[8u8; 32], json!({ "iat": now }), Algorithm::HS256);
        assert!(authorize(&key, &headers(&format!("Bearer {wrong}")), now).is_err());
        let hs512 = token(&secret, json!({ "iat": now }), Algorithm::HS512);
        assert!(authorize(&key, &headers(&format!("Bearer {hs512}")), now).is_err());
        // alg "none": header {"alg":"none","typ":"JWT"}, payload {"iat":now}, no signature.
        let b64 = |v: &Value| base64url(v.to_string().as_bytes());
        let none = format!(
            "{}.{}.",
            b64(&json!({ "alg": "none", "typ": "JWT" })),
            b64(&json!({ "iat": now }))
        );
        assert!(authorize(&key, &headers(&format!("Bearer {none}")), now).is_err());
        assert!(authorize(&key, &HeaderMap::new(), now).is_err());
        let good = token(&secret, json!({ "iat": now }), Algorithm::HS256);
        assert!(authorize(&key, &headers(&format!("Basic {good}")), now).is_err());
    }

    /// Unpadded base64url, for a hand-made token.
    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn secrets_are_64_hex_digits() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_jwt_secret(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_jwt_secret(&format!("0x{hex}\n")).unwrap(), [0xab; 32]);
        for bad in ["", "0x", &hex[..62], &format!("{hex}00"), &"zz".repeat(32)] {
            assert!(parse_jwt_secret(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forkchoice_states_parse_and_a_zero_head_is_invalid() {
        let zero = format!("0x{}", "00".repeat(32));
        let one = format!("0x{}", "11".repeat(32));
        let state = ForkchoiceState {
            head_block_hash: one.clone(),
            safe_block_hash: zero.clone(),
            finalized_block_hash: one.clone(),
        };
        let update = state.forkchoice().unwrap();
        assert_eq!(update.head, B256::repeat_byte(0x11));
        assert_eq!(update.safe, None);
        assert_eq!(update.finalized, Some(B256::repeat_byte(0x11)));
        let zero_head = ForkchoiceState {
            head_block_hash: zero.clone(),
            safe_block_hash: zero.clone(),
            finalized_block_hash: zero,
        };
        assert_eq!(
            zero_head.forkchoice().unwrap_err().code(),
            INVALID_FORKCHOICE_STATE
        );
        let short = ForkchoiceState {
            head_block_hash: "0x11".into(),
            safe_block_hash: one.clone(),
            finalized_block_hash: one,
        };
        assert_eq!(
            short.forkchoice().unwrap_err().code(),
            jsonrpsee::types::error::INVALID_PARAMS_CODE
        );
    }
}
