//! Provider webhooks. A request is verified before anything is stored, stored before it is
//! answered, and acknowledged fast: replies leave through the outbox.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::agent;
use crate::channels::{signature, twilio};
use crate::domain::Channel;
use crate::store::inbox::{self, Inbound, Sender};

/// `POST /api/twilio/sms`: an SMS from a customer, form-encoded and signed by Twilio.
pub async fn twilio_sms(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(config) = state.twilio.as_deref() else {
        return Err(ApiError::NotReady(
            "the SMS channel is not configured".into(),
        ));
    };
    let body = body?;
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let signed = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| {
            signature::twilio_valid(
                config.auth_token.expose(),
                &config.webhook_url,
                &params,
                sig,
            )
        });
    if !signed {
        return Err(ApiError::Forbidden(
            "missing or invalid X-Twilio-Signature".into(),
        ));
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(message_sid), Some(from)) = (field("MessageSid"), field("From")) else {
        return Err(ApiError::BadRequest(
            "MessageSid and From are required".into(),
        ));
    };
    let from = from.trim();
    if !is_e164(from) {
        return Err(ApiError::Invalid(
            "From is not a phone number in E.164 form".into(),
        ));
    }
    let received = inbox::receive(
        &state.pool,
        Inbound {
            channel: Channel::Sms,
            provider: "twilio",
            provider_message_id: message_sid,
            sender: Sender::Phone(from),
            text: field("Body").unwrap_or_default(),
        },
    )
    .await?;
    if !received.duplicate {
        // Stored; answering can fail without losing it: the leftovers worker answers it later.
        if let Err(e) = agent::process(&state.pool, received.conversation_id).await {
            tracing::warn!(conversation = %received.conversation_id, error = %e, "answering failed; left for the worker");
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/xml")], twilio::EMPTY_TWIML).into_response())
}

/// `+` and 8 to 15 digits.
fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}
