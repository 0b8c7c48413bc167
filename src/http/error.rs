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
    /// No such route or record.
    #[error("not found")]
    NotFound,
    /// A dependency (the database) is not ready; the message says which.
    #[error("{0}")]
    NotReady(String),
    /// Anything unexpected: logged in full, reported as a bare 500.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
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
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}
