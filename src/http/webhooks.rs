//! Provider webhooks. A request is verified before anything is read, the message is stored
//! (once, keyed by the provider's message id), the answering workers are woken, and the provider
//! is answered at once: the agent answers in a worker, never within the request (a slow model
//! must not make Twilio or Meta give up). If a worker dies the message stays stored and the
//! sweep answers it. Replies are never sent from here: they leave through the outbox.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::channels::{messenger, signature, twilio};
use crate::domain::Channel;
use crate::domain::identity;
use crate::store::inbox::{self, Inbound, Sender};

/// The longest provider message id accepted (Twilio's are 34 characters, Messenger's about
/// 60): the id is a key of the inbox, and a key that long is no provider's.
const MAX_PROVIDER_ID: usize = 100;

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
    if message_sid.chars().count() > MAX_PROVIDER_ID {
        return Err(ApiError::Invalid(format!(
            "MessageSid is longer than {MAX_PROVIDER_ID} characters"
        )));
    }
    let from = from.trim();
    // The domain's rule, the one migration 14's CHECK and `db check` use too.
    if !identity::is_e164(from) {
        return Err(ApiError::Invalid(
            "From is not a phone number in E.164 form".into(),
        ));
    }
    // MediaUrl0…MediaUrlN: photos, kept only when they are on Twilio's media host.
    let photos: Vec<String> = params
        .iter()
        .filter(|(k, v)| k.starts_with("MediaUrl") && inbox::is_provider_media(v))
        .map(|(_, v)| v.clone())
        .take(10)
        .collect();
    let received = inbox::receive(
        &state.pool,
        Inbound {
            channel: Channel::Sms,
            provider: "twilio",
            provider_message_id: message_sid,
            sender: Sender::Phone(from),
            text: field("Body").unwrap_or_default(),
            photos: &photos,
        },
    )
    .await?;
    if !received.duplicate {
        state.answers.wake(received.conversation_id);
    }
    Ok(([(header::CONTENT_TYPE, "text/xml")], twilio::EMPTY_TWIML).into_response())
}

/// The query of Messenger's subscription handshake.
#[derive(serde::Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /api/messenger`: answers Facebook's challenge when the verify token matches.
pub async fn messenger_verify(
    State(state): State<AppState>,
    axum::extract::Query(handshake): axum::extract::Query<Handshake>,
) -> Result<Response, ApiError> {
    let Some(config) = state.messenger.as_deref() else {
        return Err(ApiError::NotReady(
            "the Messenger channel is not configured".into(),
        ));
    };
    let token_ok = handshake.verify_token.as_deref().is_some_and(|t| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            t.as_bytes(),
            config.verify_token.expose().as_bytes(),
        ))
    });
    match (handshake.mode.as_deref(), token_ok, handshake.challenge) {
        (Some("subscribe"), true, Some(challenge)) => Ok(challenge.into_response()),
        _ => Err(ApiError::Forbidden("wrong verify token".into())),
    }
}

/// `POST /api/messenger`: page messages, signed with the app secret.
pub async fn messenger(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(config) = state.messenger.as_deref() else {
        return Err(ApiError::NotReady(
            "the Messenger channel is not configured".into(),
        ));
    };
    let body = body?;
    let signed = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| signature::messenger_valid(config.app_secret.expose(), &body, sig));
    if !signed {
        return Err(ApiError::Forbidden(
            "missing or invalid X-Hub-Signature-256".into(),
        ));
    }
    let payload: messenger::Payload = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a Messenger payload: {e}")))?;
    if payload.object != "page" {
        return Err(ApiError::Invalid("only page events are handled".into()));
    }
    // Checked before anything is stored: the batch is taken whole or refused whole.
    let overlong = payload
        .entry
        .iter()
        .flat_map(|e| &e.messaging)
        .filter_map(|event| event.message.as_ref())
        .any(|message| message.mid.chars().count() > MAX_PROVIDER_ID);
    if overlong {
        return Err(ApiError::Invalid(format!(
            "a message's mid is longer than {MAX_PROVIDER_ID} characters"
        )));
    }
    let mut conversations = Vec::new();
    for event in payload.entry.iter().flat_map(|e| &e.messaging) {
        let Some(message) = event.message.as_ref().filter(|m| !m.is_echo) else {
            continue;
        };
        let text = message.text.as_deref().unwrap_or_default();
        let photos: Vec<String> = message
            .attachments
            .iter()
            .filter(|a| a.get("type").and_then(|t| t.as_str()) == Some("image"))
            .filter_map(|a| a.pointer("/payload/url").and_then(|u| u.as_str()))
            .filter(|u| inbox::is_provider_media(u))
            .map(str::to_owned)
            .take(10)
            .collect();
        let received = inbox::receive(
            &state.pool,
            Inbound {
                channel: Channel::Messenger,
                provider: "messenger",
                provider_message_id: &message.mid,
                sender: Sender::Psid(&event.sender.id),
                text,
                photos: &photos,
            },
        )
        .await?;
        if !received.duplicate && !conversations.contains(&received.conversation_id) {
            conversations.push(received.conversation_id);
        }
    }
    for id in conversations {
        state.answers.wake(id);
    }
    Ok("EVENT_RECEIVED".into_response())
}
