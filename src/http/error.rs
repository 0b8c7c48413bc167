//! The HTTP layer's one error type. Every failure a handler can return maps to a status and a
//! JSON body `{"error": {"code", "message"}}` here, in one place; database and internal error
//! text is logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials (or a signature) that do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// No such route or record.
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than this endpoint accepts.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Well-formed, but invalid.
    #[error("{0}")]
    Invalid(String),
    /// Too many requests: try again after this many seconds (sent as `Retry-After`).
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds until a retry is allowed.
        retry_after_secs: u64,
    },
    /// A dependency (the database) is not ready, or a feature is not configured.
    #[error("{0}")]
    NotReady(String),
    /// Anything unexpected: logged in full, reported as a bare 500.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(super::BODY_LIMIT),
            _ => ApiError::BadRequest(e.body_text()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match e {
            R::JsonDataError(e) => ApiError::Invalid(e.body_text()),
            R::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(super::BODY_LIMIT)
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// `Json` whose rejections are [`ApiError`]s, so a malformed body gets the usual JSON error.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        // A path segment of the wrong form (not a uuid) names nothing that exists.
        tracing::debug!(error = %e.body_text(), "path rejected");
        ApiError::NotFound
    }
}

/// `Path` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                "something went wrong on our side".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}
