//! Twilio SMS: the webhook's form and TwiML answer, and the REST client that sends replies.

use std::fmt;
use std::time::Duration;

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How JunkQuote talks to Twilio.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// The account's auth token: verifies webhooks and authenticates REST calls.
    pub auth_token: Secret,
    /// The public URL Twilio posts to, exactly as configured there (signatures cover it).
    pub webhook_url: String,
    /// The account SID, for sending; without it replies are kept in the outbox.
    pub account_sid: Option<String>,
    /// The number replies come from.
    pub from_number: Option<String>,
    /// The REST API's base URL (a local fake in tests).
    pub api_base: String,
}

/// The answer to a webhook: an empty TwiML document (replies go through the outbox).
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: a timeout, a dropped connection, a 5xx or a 429.
    #[error("{0}")]
    Retryable(String),
    /// Will fail again: a 4xx such as an invalid number.
    #[error("{0}")]
    Permanent(String),
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

/// Sends SMS through Twilio's Messages API.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: Secret,
    from_number: String,
}

impl TwilioClient {
    /// A client, if the configuration has what sending needs.
    pub fn new(config: &TwilioConfig) -> Option<Self> {
        let account_sid = config.account_sid.clone()?;
        let from_number = config.from_number.clone()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        Some(Self {
            url: format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                config.api_base.trim_end_matches('/')
            ),
            http,
            account_sid,
            auth_token: config.auth_token.clone(),
            from_number,
        })
    }

    /// Sends `body` to `to`; returns Twilio's message SID.
    pub async fn send(&self, to: &str, body: &str) -> Result<String, SendError> {
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&[
                ("To", to),
                ("From", self.from_number.as_str()),
                ("Body", body),
            ])
            .send()
            .await
            .map_err(|e| SendError::Retryable(format!("Twilio did not answer: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let sid = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("sid").and_then(|s| s.as_str()).map(str::to_owned))
                .unwrap_or_default();
            return Ok(sid);
        }
        // Twilio's error bodies may name the number; callers mask numbers before logging.
        let detail: String = text.chars().take(300).collect();
        let message = format!("Twilio answered {status}: {detail}");
        Err(SendError::from_status(status, message))
    }
}
