//! Facebook Messenger: the webhook's verification handshake and payload, and the Send API
//! client for replies.

use std::time::Duration;

use serde::Deserialize;

use super::error::SendError;
use crate::domain::messaging::MessengerSend;
use crate::domain::secret::Secret;

/// The Graph API version used unless `FB_GRAPH_API_VERSION` says otherwise: the newest in
/// late 2026 (released 29 July 2026).
pub const GRAPH_API_VERSION: &str = "v26.0";

/// How JunkQuote talks to Messenger.
#[derive(Debug, Clone)]
pub struct MessengerConfig {
    /// The token Facebook echoes when subscribing the webhook.
    pub verify_token: Secret,
    /// The app secret: signs every webhook (`X-Hub-Signature-256`).
    pub app_secret: Secret,
    /// The page's access token, for sending; without it replies are kept in the outbox.
    pub page_access_token: Option<Secret>,
    /// The Graph API's base URL (a local fake in tests).
    pub graph_base: String,
    /// The Graph API version, e.g. `v26.0`.
    pub graph_version: String,
}

/// The webhook's body: `{"object": "page", "entry": [{"messaging": [...]}]}`.
#[derive(Debug, Deserialize)]
pub struct Payload {
    /// `page` for page messages.
    pub object: String,
    /// Batches of events.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One batch of events.
#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The messaging events.
    #[serde(default)]
    pub messaging: Vec<Event>,
}

/// One messaging event.
#[derive(Debug, Deserialize)]
pub struct Event {
    /// Who sent it.
    pub sender: Party,
    /// The message, if the event is one.
    pub message: Option<Message>,
}

/// A participant.
#[derive(Debug, Deserialize)]
pub struct Party {
    /// The page-scoped id.
    pub id: String,
}

/// A message.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Its id: a redelivery carries the same one.
    pub mid: String,
    /// Its text (absent for attachments only).
    pub text: Option<String>,
    /// Set on copies of the page's own messages.
    #[serde(default)]
    pub is_echo: bool,
    /// Photos and other attachments.
    #[serde(default)]
    pub attachments: Vec<serde_json::Value>,
}

/// Sends replies through the Send API.
#[derive(Debug, Clone)]
pub struct MessengerClient {
    http: reqwest::Client,
    url: String,
    token: Secret,
}

impl MessengerClient {
    /// A client, if the configuration has a page access token.
    pub fn new(config: &MessengerConfig) -> Option<Self> {
        let token = config.page_access_token.clone()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        Some(Self {
            http,
            url: format!(
                "{}/{}/me/messages",
                config.graph_base.trim_end_matches('/'),
                config.graph_version.trim_matches('/'),
            ),
            token,
        })
    }

    /// Sends `text` to the page-scoped id `psid` as `how` decided (see
    /// `domain::messaging::messenger_send`); returns the message id. Only a person's reply
    /// carries a tag (`HUMAN_AGENT`): Meta retired the tags automated updates once used.
    pub async fn send(
        &self,
        psid: &str,
        text: &str,
        how: MessengerSend,
    ) -> Result<String, SendError> {
        let (messaging_type, tag) = match how {
            MessengerSend::Response => ("RESPONSE", None),
            MessengerSend::Update => ("UPDATE", None),
            MessengerSend::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
            MessengerSend::Elsewhere => {
                return Err(SendError::Permanent(
                    "outside Messenger's 24-hour window".into(),
                ));
            }
        };
        let mut payload = serde_json::json!({
            "recipient": {"id": psid},
            "messaging_type": messaging_type,
            "message": {"text": text},
        });
        if let Some(tag) = tag {
            payload["tag"] = tag.into();
        }
        let response = self
            .http
            .post(&self.url)
            .query(&[("access_token", self.token.expose())])
            .json(&payload)
            .send()
            .await
            // Messenger has no API to ask whether a message went out, so a send whose outcome
            // is unknown (a timeout, a reset connection) is simply sent again: delivery here is
            // at-least-once, and after such a fault the customer may rarely see a reply twice.
            // Losing a quote or a booking confirmation would be worse.
            .map_err(|e| {
                SendError::Retryable(format!("Messenger did not answer: {}", e.without_url()))
            })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            let mid = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("message_id")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            return Ok(mid);
        }
        let message = format!(
            "Messenger answered {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        Err(SendError::from_status(status, message))
    }
}
