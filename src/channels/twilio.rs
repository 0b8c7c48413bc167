//! Twilio SMS: the webhook's form and TwiML answer, and the REST client that sends replies.
//!
//! Sending is made effectively exactly-once: a send whose outcome is unknown (a timeout, a
//! connection dropped after the request was written) is [`SendError::Uncertain`], and before
//! such a message is sent again the worker asks Twilio's message list whether it went out
//! ([`TwilioClient::find_sent`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::SendError;
use crate::domain::secret::Secret;

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

/// How long a Twilio REST call may take by default before its outcome counts as unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How far Twilio's clock may be behind ours when matching a message's `date_created` against
/// the time we first tried to send it.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// Twilio's error for a number that replied STOP: sends to it are refused until it replies
/// START.
pub const OPTED_OUT: i64 = 21610;

/// The most pages of the message list read in one check (of 50 messages each).
const MAX_PAGES: usize = 20;

/// Sends SMS through Twilio's Messages API.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    api_base: String,
    url: String,
    account_sid: String,
    auth_token: Secret,
    from_number: String,
}

/// One page of `GET /2010-04-01/Accounts/{AccountSid}/Messages.json`.
#[derive(Debug, Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<ListedMessage>,
    /// The next page's path and query, relative to the API's base URL; null on the last page.
    next_page_uri: Option<String>,
}

/// A message as Twilio lists it (only the fields the check reads).
#[derive(Debug, Deserialize)]
struct ListedMessage {
    sid: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    from: Option<String>,
    /// RFC 2822, e.g. `Tue, 24 Nov 2026 06:42:20 +0000`.
    #[serde(default)]
    date_created: Option<String>,
}

impl TwilioClient {
    /// A client, if the configuration has what sending needs.
    pub fn new(config: &TwilioConfig) -> Option<Self> {
        Self::with_timeout(config, DEFAULT_TIMEOUT)
    }

    /// A client whose REST calls give up after `timeout`.
    pub fn with_timeout(config: &TwilioConfig, timeout: Duration) -> Option<Self> {
        let account_sid = config.account_sid.clone()?;
        let from_number = config.from_number.clone()?;
        let http = reqwest::Client::builder().timeout(timeout).build().ok()?;
        let api_base = config.api_base.trim_end_matches('/').to_owned();
        Some(Self {
            url: format!("{api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            api_base,
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
            .map_err(|e| {
                // Without a connection nothing was sent; after one, Twilio may have the message.
                let cause = with_causes(&e);
                if e.is_connect() {
                    SendError::Retryable(format!("could not reach Twilio: {cause}"))
                } else {
                    SendError::Uncertain(format!("Twilio did not answer: {cause}"))
                }
            })?;
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
        // Twilio's error body: {"code": 21610, "message": "...", "more_info": ..., "status": 400}.
        let code = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64));
        if code == Some(OPTED_OUT) {
            return Err(SendError::OptedOut(message));
        }
        Err(SendError::from_status(status, message))
    }

    /// The SIDs of messages Twilio holds from our number to `to` with exactly `body`, created
    /// at or after `since` (less a margin for clock skew), oldest first: what a send whose
    /// outcome was unknown may have become.
    ///
    /// Reads the message list filtered by `To`, `From` and `DateSent>=` the day of `since`,
    /// following `next_page_uri`; the list is newest first, so reading stops at the first
    /// message older than `since`. A message Twilio still queues has no `date_sent` yet and may
    /// not be listed, which is why the worker waits a little before checking.
    pub async fn find_sent(
        &self,
        to: &str,
        body: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, SendError> {
        let since = since - CLOCK_SKEW;
        let day = since.date_naive().format("%Y-%m-%d").to_string();
        let mut request = self.http.get(&self.url).query(&[
            ("To", to),
            ("From", self.from_number.as_str()),
            ("DateSent>", day.as_str()),
            ("PageSize", "50"),
        ]);
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = request
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
                .send()
                .await
                .map_err(|e| {
                    SendError::Retryable(format!(
                        "could not list Twilio messages: {}",
                        with_causes(&e)
                    ))
                })?;
            let status = response.status();
            if !status.is_success() {
                let detail: String = response
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                // Even a 4xx here says nothing about the message: try the check again later.
                return Err(SendError::Retryable(format!(
                    "listing Twilio messages answered {status}: {detail}"
                )));
            }
            let page: MessagePage = response.json().await.map_err(|e| {
                SendError::Retryable(format!("Twilio's message list did not parse: {e}"))
            })?;
            let mut older = false;
            for message in page.messages {
                let created = message
                    .date_created
                    .as_deref()
                    .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                    .map(|d| d.with_timezone(&Utc));
                let Some(created) = created else { continue };
                if created < since {
                    older = true;
                    continue;
                }
                let same = message.to.as_deref() == Some(to)
                    && message.from.as_deref() == Some(self.from_number.as_str())
                    && message.body.as_deref().map(str::trim) == Some(body.trim());
                if same {
                    found.push(message.sid);
                }
            }
            match page.next_page_uri.filter(|next| !older && !next.is_empty()) {
                // A path on the same API: credentials never go to another host.
                Some(next) if next.starts_with('/') => {
                    request = self.http.get(format!("{}{next}", self.api_base));
                }
                Some(_) => {
                    return Err(SendError::Retryable(
                        "Twilio's next_page_uri is not a path; not checked".into(),
                    ));
                }
                None => {
                    found.reverse();
                    return Ok(found);
                }
            }
        }
        Err(SendError::Retryable(format!(
            "Twilio's message list is longer than {MAX_PAGES} pages since {day}; not checked"
        )))
    }
}

/// An HTTP error with its causes ("… operation timed out", "… connection closed before message
/// completed"), which its own message leaves out.
fn with_causes(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
