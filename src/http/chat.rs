//! The web chat API: a visitor opens a session, gets a bearer token, and talks to the agent.
//! Opening a session is public, so it is rate-limited per client address and overall, and
//! messages per session and per client address; the buckets live in PostgreSQL
//! (`store::limits`), so every server behind a load balancer counts against the same ones.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::domain::Channel;
use crate::domain::token::{hash_token, new_token};
use crate::store::inbox::{self, Inbound, Sender};
use crate::store::limits::{self, Rate};
use crate::store::{conversations, customers};

/// The longest message a visitor may send, in characters.
pub const MAX_TEXT: usize = 2000;

/// The longest id a client may give its message, in characters (it becomes part of a key).
pub const MAX_CLIENT_ID: usize = 100;

/// Days a chat session may stay silent before it is closed.
pub const SESSION_IDLE_DAYS: i64 = 30;

/// How many messages a visitor may send, and how the client's address is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Messages one session may send per `window`.
    pub per_session: NonZeroU32,
    /// Messages all sessions of one client address together may send per `window`.
    pub per_client: NonZeroU32,
    /// The window over which the limits refill.
    pub window: Duration,
}

impl Default for MessageLimits {
    /// 20 messages a minute per session and 60 per address: a person typing sends a few a
    /// minute; a household or an office behind one address a few times that.
    fn default() -> Self {
        Self {
            per_session: const { NonZeroU32::new(20).unwrap() },
            per_client: const { NonZeroU32::new(60).unwrap() },
            window: Duration::from_secs(60),
        }
    }
}

/// What the chat handlers are configured with.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatOptions {
    /// Limits on messages.
    pub messages: MessageLimits,
    /// Proxies in front that append to `X-Forwarded-For` (see [`SessionLimits`]).
    pub trusted_proxy_hops: usize,
}

/// `POST /api/chat/sessions` → `{session_id, token}`.
pub async fn open(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let token = new_token();
    let mut tx = state.pool.begin().await?;
    let customer_id = customers::create_anonymous(&mut tx).await?;
    let session_id = Uuid::new_v4();
    let conversation_id = inbox::open_conversation(
        &mut tx,
        customer_id,
        Channel::Web,
        None,
        Some(&session_id.to_string()),
    )
    .await?;
    conversations::open_chat_session(&mut tx, session_id, conversation_id, &hash_token(&token))
        .await?;
    tx.commit().await?;
    Ok(Json(json!({"session_id": session_id, "token": token})))
}

#[derive(Deserialize)]
struct Posted {
    text: String,
    /// The client's id for the message, so that a retried POST is recognised.
    id: Option<String>,
}

/// How long `POST …/messages` waits for the answer before it answers 202 (the replies then
/// arrive through `GET …/messages`).
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// `POST /api/chat/sessions/{id}/messages` with `{"text": …}` → the replies, when they are ready
/// within [`ANSWER_WAIT`]; 202 with `"pending": true` otherwise.
pub async fn post(
    State(state): State<AppState>,
    Path(session): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (session_id, conversation_id) = authorise(&state, &session, &headers).await?;
    limit_message(&state, session_id, &headers, peer.ip()).await?;
    let body = body?;
    let posted: Posted = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"text\": \"…\"}}: {e}")))?;
    let text = posted.text.trim();
    if text.is_empty() {
        return Err(ApiError::Invalid("text must not be empty".into()));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::Invalid(format!(
            "text is longer than {MAX_TEXT} characters"
        )));
    }
    if let Some(id) = &posted.id
        && (id.is_empty() || id.chars().count() > MAX_CLIENT_ID)
    {
        return Err(ApiError::Invalid(format!(
            "id must be 1 to {MAX_CLIENT_ID} characters"
        )));
    }
    let client_id = posted.id.unwrap_or_else(|| Uuid::new_v4().to_string());
    let provider_message_id = format!("{conversation_id}:{client_id}");
    let received = inbox::receive(
        &state.pool,
        Inbound {
            channel: Channel::Web,
            provider: "web",
            provider_message_id: &provider_message_id,
            sender: Sender::Conversation(conversation_id),
            text,
            photos: &[],
        },
    )
    .await?;
    if !received.duplicate {
        state.answers.wake(conversation_id);
    }
    // A worker answers it; the visitor waits a little for the answer, not for a slow model.
    let answered = state
        .answers
        .wait_answered(received.message_id, ANSWER_WAIT)
        .await?;
    if !answered {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"replies": [], "pending": true})),
        )
            .into_response());
    }
    // The assistant's messages written after this one are its replies.
    let replies =
        conversations::replies_after(&state.pool, conversation_id, received.message_id).await?;
    let replies: Vec<Value> = replies
        .into_iter()
        .map(|content| json!({"role": "assistant", "content": content}))
        .collect();
    Ok(Json(json!({"replies": replies})).into_response())
}

/// One more message from `session` and its client address, or 429 with `Retry-After`.
async fn limit_message(
    state: &AppState,
    session: Uuid,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<(), ApiError> {
    let options = state.chat;
    let client = client_address(headers, Some(peer), options.trusted_proxy_hops);
    let window = options.messages.window.max(Duration::from_secs(1));
    let session_key = format!("chat-message:session:{session}");
    let client_key = format!("chat-message:client:{client}");
    let keys = [
        (
            session_key.as_str(),
            Rate {
                limit: options.messages.per_session.get(),
                window,
            },
        ),
        (
            client_key.as_str(),
            Rate {
                limit: options.messages.per_client.get(),
                window,
            },
        ),
    ];
    // Now and then, buckets idle for a day are dropped (any server may do it).
    static CHECKS: AtomicU64 = AtomicU64::new(0);
    if CHECKS.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
        limits::forget_idle(&state.pool).await?;
    }
    match limits::take_all(&state.pool, &keys).await? {
        Ok(()) => Ok(()),
        Err(wait) => {
            let secs = retry_secs(wait);
            tracing::debug!(retry_after = secs, "chat message refused: rate limited");
            Err(ApiError::RateLimited {
                message: format!("too many messages; try again in {secs} s"),
                retry_after_secs: secs,
            })
        }
    }
}

/// Whole seconds to wait, rounded up, at least one.
fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// `GET /api/chat/sessions/{id}/messages` → the thread as the visitor sees it: their messages
/// and the assistant's (internal notes are the operator's).
pub async fn thread(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, conversation_id) = authorise(&state, &session, &headers).await?;
    let mut conn = state.pool.acquire().await?;
    let mut messages = conversations::thread(&mut conn, conversation_id).await?;
    messages.retain(|m| m.role == "user" || m.role == "assistant");
    Ok(Json(json!({"messages": messages})))
}

/// The session and its conversation, if the bearer token is the session's and the session has
/// not been silent for [`SESSION_IDLE_DAYS`].
async fn authorise(
    state: &AppState,
    session: &str,
    headers: &HeaderMap,
) -> Result<(Uuid, Uuid), ApiError> {
    let token = super::bearer(headers).ok_or_else(|| {
        ApiError::Unauthorized("Authorization: Bearer <session token> is required".into())
    })?;
    let Ok(session) = session.parse::<Uuid>() else {
        return Err(ApiError::NotFound);
    };
    let Some(found) = conversations::chat_session(&state.pool, session).await? else {
        return Err(ApiError::NotFound);
    };
    let given = hash_token(token);
    if !bool::from(given.as_bytes().ct_eq(found.token_hash.as_bytes())) {
        return Err(ApiError::Forbidden(
            "the token does not belong to this session".into(),
        ));
    }
    if found.last_seen_at < chrono::Utc::now() - chrono::Duration::days(SESSION_IDLE_DAYS) {
        return Err(ApiError::Unauthorized(format!(
            "this chat was closed after {SESSION_IDLE_DAYS} days without messages; start a new chat"
        )));
    }
    conversations::chat_session_seen(&state.pool, session).await?;
    Ok((session, found.conversation_id))
}

/// How many chat sessions may be opened, and how the client's address is found.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions one client address may open per `window` (and at once).
    pub per_client: NonZeroU32,
    /// Sessions all clients together may open per `window`.
    pub global: NonZeroU32,
    /// The window over which the limits refill.
    pub window: Duration,
    /// How many proxies in front of the server append to `X-Forwarded-For`; 0 ignores the
    /// header (anyone can write it), 1 takes its last address, and so on.
    pub trusted_proxy_hops: usize,
}

impl Default for SessionLimits {
    /// 10 sessions per address and 300 in all per minute: far above what people chatting
    /// need, far below what fills the database.
    fn default() -> Self {
        Self {
            per_client: const { NonZeroU32::new(10).unwrap() },
            global: const { NonZeroU32::new(300).unwrap() },
            window: Duration::from_secs(60),
            trusted_proxy_hops: 0,
        }
    }
}

/// The limits on opening chat sessions, checked against buckets in PostgreSQL (one per client
/// address, one for everyone), so that every server counts against the same ones.
pub struct SessionLimiter {
    pool: sqlx::PgPool,
    limits: SessionLimits,
}

impl SessionLimiter {
    /// The limiter for `limits` over `pool` (a zero window counts as one second).
    pub fn new(pool: sqlx::PgPool, limits: SessionLimits) -> Self {
        Self { pool, limits }
    }

    /// Takes a session opening for `client`, or says how long until one is allowed. The
    /// client's own bucket comes first, and a refusal takes from neither: a client over its
    /// limit does not drain everyone's.
    async fn check(&self, client: IpAddr) -> sqlx::Result<Result<(), Duration>> {
        let window = self.limits.window.max(Duration::from_secs(1));
        let rate = |n: NonZeroU32| Rate {
            limit: n.get(),
            window,
        };
        let client_key = format!("chat-session:client:{client}");
        let keys = [
            (client_key.as_str(), rate(self.limits.per_client)),
            ("chat-session:all", rate(self.limits.global)),
        ];
        limits::take_all(&self.pool, &keys).await
    }
}

/// The address a request comes from: the peer, or behind `hops` trusted proxies the address the
/// outermost of them saw. IPv6 clients are counted by their /64, which one host can fill.
pub(crate) fn client_address(headers: &HeaderMap, peer: Option<IpAddr>, hops: usize) -> IpAddr {
    let forwarded = (hops > 0).then(|| forwarded_for(headers, hops)).flatten();
    let ip = forwarded
        .or(peer)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        .to_canonical();
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The `hops`-th address from the right of `X-Forwarded-For` (all its headers, in order), if
/// the request passed that many proxies and the address parses.
pub(crate) fn forwarded_for(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return None;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let entry = entries.len().checked_sub(hops).map(|i| entries[i])?;
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Middleware for `POST /api/chat/sessions`: 429 with `Retry-After` past the limits.
pub async fn limit_sessions(
    State(limiter): State<Arc<SessionLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let client = client_address(request.headers(), peer, limiter.limits.trusted_proxy_hops);
    match limiter.check(client).await {
        Ok(Ok(())) => next.run(request).await,
        Ok(Err(wait)) => {
            let secs = retry_secs(wait);
            tracing::debug!(retry_after = secs, "chat session refused: rate limited");
            ApiError::RateLimited {
                message: format!("too many chat sessions opened; try again in {secs} s"),
                retry_after_secs: secs,
            }
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        headers
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_by_trusted_hops() {
        let h = headers(&["203.0.113.7, 10.0.0.1", "10.0.0.2"]);
        assert_eq!(forwarded_for(&h, 1), "10.0.0.2".parse().ok());
        assert_eq!(forwarded_for(&h, 3), "203.0.113.7".parse().ok());
        assert_eq!(forwarded_for(&h, 4), None, "fewer proxies than trusted");
        assert_eq!(
            forwarded_for(&headers(&["[2001:db8::1]:443"]), 1),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(forwarded_for(&headers(&["unknown"]), 1), None);
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored_and_ipv6_counts_by_prefix() {
        let peer = "192.0.2.1".parse().ok();
        assert_eq!(
            client_address(&headers(&["203.0.113.7"]), peer, 0),
            IpAddr::from([192, 0, 2, 1])
        );
        assert_eq!(
            client_address(&headers(&["203.0.113.7"]), peer, 1),
            IpAddr::from([203, 0, 113, 7])
        );
        assert_eq!(
            client_address(&headers(&["2001:db8:1:2:aa::1"]), peer, 1),
            "2001:db8:1:2::".parse::<IpAddr>().expect("ip")
        );
    }
}
