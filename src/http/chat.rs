//! The web chat API: a visitor opens a session, gets a bearer token, and talks to the agent.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::agent;
use crate::domain::Channel;
use crate::domain::token::{hash_token, new_token};
use crate::store::inbox::{self, Inbound, Sender};

/// The longest message a visitor may send, in characters.
pub const MAX_TEXT: usize = 2000;

/// `POST /api/chat/sessions` → `{session_id, token}`.
pub async fn open(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let token = new_token();
    let mut tx = state.pool.begin().await?;
    let customer_id: Uuid =
        sqlx::query_scalar("INSERT INTO \"Customer\" DEFAULT VALUES RETURNING id")
            .fetch_one(&mut *tx)
            .await?;
    let session_id = Uuid::new_v4();
    let conversation_id = inbox::open_conversation(
        &mut tx,
        customer_id,
        Channel::Web,
        None,
        Some(&session_id.to_string()),
    )
    .await?;
    sqlx::query(
        "INSERT INTO \"ChatSession\" (id, conversation_id, token_hash) VALUES ($1, $2, $3)",
    )
    .bind(session_id)
    .bind(conversation_id)
    .bind(hash_token(&token))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"session_id": session_id, "token": token})))
}

#[derive(Deserialize)]
struct Posted {
    text: String,
    /// The client's id for the message, so that a retried POST is recognised.
    id: Option<String>,
}

/// `POST /api/chat/sessions/{id}/messages` with `{"text": …}` → the replies.
pub async fn post(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let conversation_id = authorise(&state, &session, &headers).await?;
    let body = body?;
    let posted: Posted = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"text\": \"…\"}}: {e}")))?;
    let text = posted.text.trim();
    if text.is_empty() {
        return Err(ApiError::Invalid("text must not be empty".into()));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::Invalid(format!(
            "text is longer than {MAX_TEXT} characters"
        )));
    }
    let client_id = posted.id.unwrap_or_else(|| Uuid::new_v4().to_string());
    let provider_message_id = format!("{conversation_id}:{client_id}");
    let received = inbox::receive(
        &state.pool,
        Inbound {
            channel: Channel::Web,
            provider: "web",
            provider_message_id: &provider_message_id,
            sender: Sender::Conversation(conversation_id),
            text,
            photos: &[],
        },
    )
    .await?;
    agent::process(&state.agent, &state.pool, conversation_id).await?;
    // The assistant's messages written after this one are its replies.
    let replies: Vec<(String,)> = sqlx::query_as(
        "SELECT content FROM \"Message\"
         WHERE conversation_id = $1 AND role = 'assistant'
           AND created_at > (SELECT created_at FROM \"Message\" WHERE id = $2)
         ORDER BY created_at",
    )
    .bind(conversation_id)
    .bind(received.message_id)
    .fetch_all(&state.pool)
    .await?;
    let replies: Vec<Value> = replies
        .into_iter()
        .map(|(content,)| json!({"role": "assistant", "content": content}))
        .collect();
    Ok(Json(json!({"replies": replies})))
}

/// `GET /api/chat/sessions/{id}/messages` → the whole thread.
pub async fn thread(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let conversation_id = authorise(&state, &session, &headers).await?;
    let mut conn = state.pool.acquire().await?;
    let messages = inbox::thread(&mut conn, conversation_id).await?;
    Ok(Json(json!({"messages": messages})))
}

/// The session's conversation, if the bearer token is the session's.
async fn authorise(state: &AppState, session: &str, headers: &HeaderMap) -> Result<Uuid, ApiError> {
    let token = super::bearer(headers).ok_or_else(|| {
        ApiError::Unauthorized("Authorization: Bearer <session token> is required".into())
    })?;
    let Ok(session) = session.parse::<Uuid>() else {
        return Err(ApiError::NotFound);
    };
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT conversation_id, token_hash FROM \"ChatSession\" WHERE id = $1")
            .bind(session)
            .fetch_optional(&state.pool)
            .await?;
    let Some((conversation_id, stored)) = row else {
        return Err(ApiError::NotFound);
    };
    let given = hash_token(token);
    if !bool::from(given.as_bytes().ct_eq(stored.as_bytes())) {
        return Err(ApiError::Forbidden(
            "the token does not belong to this session".into(),
        ));
    }
    sqlx::query("UPDATE \"ChatSession\" SET last_seen_at = now() WHERE id = $1")
        .bind(session)
        .execute(&state.pool)
        .await?;
    Ok(conversation_id)
}
