//! The HTTP server: axum routers over the application state.

mod api;
mod calendar;
mod chat;
pub mod console;
mod customers;
pub mod error;
mod health;
pub mod metrics;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::routing::{delete, get, post, put};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::agent::Agent;
use crate::channels::messenger::MessengerConfig;
use crate::channels::twilio::TwilioConfig;
use crate::db::migrate::MigrationSet;
use crate::domain::secret::Secret;
pub use chat::{ChatOptions, MessageLimits, SessionLimits};
use error::ApiError;

/// The largest request body accepted (webhooks and chat messages are far smaller).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub pool: PgPool,
    /// The migrations this server expects applied.
    pub migrations: Arc<MigrationSet>,
    /// Twilio, when the SMS channel is configured.
    pub twilio: Option<Arc<TwilioConfig>>,
    /// Messenger, when that channel is configured.
    pub messenger: Option<Arc<MessengerConfig>>,
    /// The conversation engine.
    pub agent: Agent,
    /// The answering workers, woken by the webhooks.
    pub answers: crate::jobs::answer::Answerer,
    /// How the operator's console is served.
    pub console: console::Options,
    /// The web chat's message limits.
    pub chat: ChatOptions,
}

/// The header a request's id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application's routes; opening chat sessions is limited by `limits`. `/metrics`
/// is served only when `metrics` gives the scrape token it requires.
pub fn router(
    state: AppState,
    limits: SessionLimits,
    metrics: Option<(metrics::Scrape, Secret)>,
) -> Router {
    let sessions = Arc::new(chat::SessionLimiter::new(state.pool.clone(), limits));
    let scrape = match metrics {
        Some(scrape) => Router::new()
            .route("/metrics", get(metrics::scrape_with_token))
            .with_state(scrape),
        None => Router::new(),
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/twilio/sms", post(webhooks::twilio_sms))
        .route(
            "/api/messenger",
            get(webhooks::messenger_verify).post(webhooks::messenger),
        )
        .route(
            "/api/chat/sessions",
            post(chat::open).layer(axum::middleware::from_fn_with_state(
                sessions,
                chat::limit_sessions,
            )),
        )
        .route(
            "/api/chat/sessions/{id}/messages",
            post(chat::post).get(chat::thread),
        )
        .route("/api/approvals/{token}", post(api::decide_by_token))
        .route("/calendar.ics", get(calendar::feed))
        .route("/api/v1/approvals", get(api::approvals))
        .route("/api/v1/approvals/{id}", post(api::decide_by_id))
        .route("/api/v1/settings", get(api::get_settings))
        .route("/api/v1/settings/paused", put(api::set_paused))
        .route("/api/v1/settings/pricebook", put(api::put_pricebook))
        .route("/api/v1/customers", get(customers::find))
        .route("/api/v1/customers/{id}", delete(customers::erase))
        .route("/api/v1/customers/{id}/context", get(customers::context))
        .route(
            "/api/v1/customers/{id}/notes",
            get(customers::notes).post(customers::add_note),
        )
        .route("/api/v1/customers/{id}/messages", get(customers::search))
        .route("/api/v1/customers/{id}/merge", post(customers::merge))
        .route(
            "/api/v1/notes/{id}",
            axum::routing::patch(customers::edit_note).delete(customers::delete_note),
        )
        .merge(console::router())
        .merge(scrape)
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::from_fn(metrics::count_requests))
        // Every request gets an id that its log lines carry (in its span) and its response
        // returns: kept from its `X-Request-Id` when that is sane, else made up. Outermost
        // last: an insane id is dropped, a new one set, the id copied back, the span opened.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One line a request at info, its status and latency: the access log.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_insane_request_id))
        .with_state(state)
}

/// The routes of the metrics address (`--metrics-addr`): `/metrics` without a token, nothing
/// else.
pub fn metrics_router(scrape: metrics::Scrape) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape_open))
        .fallback(|| async { ApiError::NotFound })
        .with_state(scrape)
}

/// Removes an `X-Request-Id` that is not 1 to 64 of `[A-Za-z0-9._-]`: an id goes into every
/// log line of its request, so a client must not be able to write anything else there.
async fn drop_insane_request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let sane = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let all_sane = request.headers().get_all(&REQUEST_ID).iter().count() <= 1
        && request.headers().get_all(&REQUEST_ID).iter().all(sane);
    if !all_sane {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// The span of one request: its id, its method and its path with tokens redacted. The query
/// string is left out (the calendar feed's token rides there) and so is the token of an
/// approval link, at every log level.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    // Set (and checked) by the layers outside this one.
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %loggable_path(request.uri().path()),
    )
}

/// `path` fit for a log: the segment after `/api/approvals/` (a one-time credential) replaced.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/api/approvals/") {
        Some(rest) if !rest.is_empty() => {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/api/approvals/[redacted]{tail}").into()
        }
        _ => path.into(),
    }
}

/// Serves `state` on `listener` with the default limits until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, SessionLimits::default(), shutdown).await
}

/// [`serve`] with chat sessions limited by `limits`; handlers see the peer's address.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: SessionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state, limits, None).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Binds `addr` (port 0 picks a free port); returns the listener and the address it got.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn approval_tokens_are_redacted_from_logged_paths() {
        assert_eq!(
            loggable_path("/api/approvals/s3cr3t"),
            "/api/approvals/[redacted]"
        );
        assert_eq!(
            loggable_path("/api/approvals/s3cr3t/x"),
            "/api/approvals/[redacted]/x"
        );
        assert_eq!(loggable_path("/calendar.ics"), "/calendar.ics");
        assert_eq!(loggable_path("/api/v1/approvals"), "/api/v1/approvals");
    }
}
