//! How a send to a provider failed, which decides whether the outbox tries again.

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Not sent, worth trying again: no connection could be made, a 5xx or a 429.
    #[error("{0}")]
    Retryable(String),
    /// The request went out but no answer came back (a timeout, a connection reset): the
    /// provider may have accepted the message. Check before sending it again.
    #[error("{0}")]
    Uncertain(String),
    /// Will fail again: a 4xx such as an invalid number.
    #[error("{0}")]
    Permanent(String),
    /// The recipient opted out with the carrier (Twilio error 21610): nothing more may be sent
    /// to them until they opt in again.
    #[error("{0}")]
    OptedOut(String),
}

impl SendError {
    /// The error for a provider's non-success `status`: worth retrying for 5xx and 429.
    pub fn from_status(status: reqwest::StatusCode, message: String) -> Self {
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            SendError::Retryable(message)
        } else {
            SendError::Permanent(message)
        }
    }
}
