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

/// Builds the error a constraint's violation is reported as.
type MakeError = fn() -> ApiError;

/// Named constraints a request can run into, and what the client is told: the one place
/// where a database refusal becomes a 409 or a 422. Anything else is a 500.
const CONSTRAINTS: &[(&str, MakeError)] = &[
    ("CustomerIdentity_kind_value_key", || {
        ApiError::Conflict("that phone, email or Messenger id belongs to another customer".into())
    }),
    ("ConsoleUser_email_key", || {
        ApiError::Conflict("there is already a console user with that email".into())
    }),
    ("Customer_email_normalised_check", || {
        ApiError::Invalid("the email is not in normal form".into())
    }),
];

impl From<sqlx::Error> for ApiError {
    /// No row is a 404; a named constraint in [`CONSTRAINTS`] is its 409 or 422; anything else
    /// is internal (logged, never shown).
    fn from(e: sqlx::Error) -> Self {
        if matches!(e, sqlx::Error::RowNotFound) {
            return ApiError::NotFound;
        }
        let known = e
            .as_database_error()
            .and_then(|db| db.constraint())
            .and_then(|name| CONSTRAINTS.iter().find(|(known, _)| *known == name));
        match known {
            Some((_, error)) => error(),
            None => ApiError::Internal(e.into()),
        }
    }
}

/// Turns one named constraint's violation into a chosen error at the call site, when a handler
/// means something more specific than [`CONSTRAINTS`] says (as realworld-axum-sqlx does).
pub trait OnConstraint<T> {
    /// `Err(map(e))` when the error is a violation of `name`, else the usual conversion.
    fn on_constraint(
        self,
        name: &str,
        map: impl FnOnce(Box<dyn sqlx::error::DatabaseError>) -> ApiError,
    ) -> Result<T, ApiError>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint(
        self,
        name: &str,
        map: impl FnOnce(Box<dyn sqlx::error::DatabaseError>) -> ApiError,
    ) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            sqlx::Error::Database(db) if db.constraint() == Some(name) => map(db),
            e => ApiError::from(e),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_row_is_not_found_and_other_database_errors_stay_internal() {
        assert!(matches!(
            ApiError::from(sqlx::Error::RowNotFound),
            ApiError::NotFound
        ));
        assert!(matches!(
            ApiError::from(sqlx::Error::PoolTimedOut),
            ApiError::Internal(_)
        ));
    }
}
