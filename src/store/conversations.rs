//! Conversations: the row lock that orders everything done in one, the answering lease that
//! keeps one worker at a time on it, whether an operator has taken it over, its thread, the
//! operator's replies, and the web chat's sessions. The lock order every writer follows starts
//! here: the conversation, then its lead, then quote/job.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{audit, leads, outbox};

/// A conversation locked for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// An operator took it over from the console: they answer it, the assistant does not.
    pub taken_over: bool,
}

/// Locks the conversation (`FOR UPDATE`) until the transaction ends; `None` when there is no
/// such conversation. Take it before its lead, quote or job.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Locked>> {
    let taken_over: Option<bool> = sqlx::query_scalar(
        "SELECT metadata ? 'taken_over_by' FROM \"Conversation\" WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(taken_over.map(|taken_over| Locked { taken_over }))
}

/// Takes the conversation's answering lease for `holder` until `ttl` from now, when nobody
/// holds it or its holder's lease has expired (a worker that died). `false` when another worker
/// holds it. One statement, so two workers racing for it cannot both win.
pub async fn take_lease(
    pool: &PgPool,
    id: Uuid,
    holder: Uuid,
    ttl: std::time::Duration,
) -> sqlx::Result<bool> {
    let taken: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO \"AnswerLease\" (conversation_id, holder, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))
         ON CONFLICT (conversation_id) DO UPDATE
             SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE \"AnswerLease\".expires_at < now()
         RETURNING holder",
    )
    .bind(id)
    .bind(holder)
    .bind(ttl.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(taken == Some(holder))
}

/// Extends `holder`'s lease to `ttl` from now; `false` when it is no longer theirs (it expired
/// and another worker took it). Inside a transaction it also keeps the lease from changing
/// hands until the transaction ends.
pub async fn renew_lease(
    conn: &mut PgConnection,
    id: Uuid,
    holder: Uuid,
    ttl: std::time::Duration,
) -> sqlx::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE \"AnswerLease\" SET expires_at = now() + make_interval(secs => $3)
         WHERE conversation_id = $1 AND holder = $2",
    )
    .bind(id)
    .bind(holder)
    .bind(ttl.as_secs_f64())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(renewed > 0)
}

/// Gives `holder`'s lease up (nothing happens when it is no longer theirs) and says whether the
/// conversation has a message that may be answered now: one stored while the lease was held,
/// whose own wake-up (in another process) found the lease taken. One round trip: the check sees
/// every message stored before the release, and a worker that tries for the lease meanwhile
/// waits for the release and takes it.
pub async fn release_lease(pool: &PgPool, id: Uuid, holder: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "WITH released AS (
             DELETE FROM \"AnswerLease\" WHERE conversation_id = $1 AND holder = $2
         )
         SELECT coalesce((SELECT i.retry_at IS NULL OR i.retry_at <= now()
                          FROM \"InboundMessage\" i
                          WHERE i.conversation_id = $1 AND i.processed_at IS NULL
                          ORDER BY i.seq LIMIT 1), false)",
    )
    .bind(id)
    .bind(holder)
    .fetch_one(pool)
    .await
}

/// A message of a conversation's thread.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct ThreadMessage {
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// The messages of a conversation in order (customer and assistant).
pub async fn thread(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Vec<ThreadMessage>> {
    sqlx::query_as(
        "SELECT role::text AS role, content, created_at FROM \"Message\"
         WHERE conversation_id = $1 ORDER BY created_at, id",
    )
    .bind(conversation_id)
    .fetch_all(conn)
    .await
}

/// The assistant's messages written after message `after`, oldest first: its replies to it.
pub async fn replies_after(
    pool: &PgPool,
    conversation_id: Uuid,
    after: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT content FROM \"Message\"
         WHERE conversation_id = $1 AND role = 'assistant'
           AND created_at > (SELECT created_at FROM \"Message\" WHERE id = $2)
         ORDER BY created_at",
    )
    .bind(conversation_id)
    .bind(after)
    .fetch_all(pool)
    .await
}

/// Records in the thread what the assistant would have said but did not send, because an
/// operator has the conversation.
pub async fn note_unsent(conn: &mut PgConnection, id: Uuid, text: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO \"Message\" (conversation_id, role, content, metadata, created_at)
         VALUES ($1, 'system', $2, '{\"unsent\": true}', clock_timestamp())",
    )
    .bind(id)
    .bind(format!(
        "Not sent (an operator has this conversation): {text}"
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the operator's reply as the company's message and queues it on the customer's
/// channel (web chat reads it from the thread). `false` when the conversation has no lead to
/// reply through.
pub async fn reply(
    conn: &mut PgConnection,
    id: Uuid,
    text: &str,
    actor: &str,
) -> sqlx::Result<bool> {
    if lock(conn, id).await?.is_none() {
        return Ok(false);
    }
    let has_lead: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM \"Conversation\" c JOIN \"Lead\" l ON l.id = c.lead_id
                        WHERE c.id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if !has_lead {
        return Ok(false);
    }
    let lead = leads::lead_of_conversation(conn, id).await?;
    let message_id = outbox::reply_as(conn, id, None, &lead, text, Some(actor)).await?;
    sqlx::query(
        "UPDATE \"Message\" SET metadata = metadata || jsonb_build_object('operator', $2::text)
         WHERE id = $1",
    )
    .bind(message_id)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    audit::audit(
        conn,
        Some(lead.id),
        actor,
        "operator_replied",
        serde_json::json!({"conversation_id": id, "message_id": message_id}),
    )
    .await?;
    Ok(true)
}

/// Takes the conversation over from the assistant (`Some(actor)`) or hands it back (`None`);
/// whether there is such a conversation.
pub async fn take_over(
    conn: &mut PgConnection,
    id: Uuid,
    actor: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE \"Conversation\" SET updated_at = now(),
                metadata = CASE WHEN $2::text IS NULL THEN metadata - 'taken_over_by'
                                ELSE metadata || jsonb_build_object('taken_over_by', $2::text) END
         WHERE id = $1",
    )
    .bind(id)
    .bind(actor)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Records a new web chat session of a conversation; the token is stored as its hash.
pub async fn open_chat_session(
    conn: &mut PgConnection,
    session_id: Uuid,
    conversation_id: Uuid,
    token_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO \"ChatSession\" (id, conversation_id, token_hash) VALUES ($1, $2, $3)",
    )
    .bind(session_id)
    .bind(conversation_id)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// A web chat session: its conversation and its token's hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChatSession {
    /// The conversation it talks in.
    pub conversation_id: Uuid,
    /// The hash of its bearer token (compare in constant time).
    pub token_hash: String,
    /// When the visitor last used it (a session silent for long is closed).
    pub last_seen_at: DateTime<Utc>,
}

/// The chat session `id`, if there is one.
pub async fn chat_session(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<ChatSession>> {
    sqlx::query_as(
        "SELECT conversation_id, token_hash, last_seen_at FROM \"ChatSession\" WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Records that the session was used now.
pub async fn chat_session_seen(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE \"ChatSession\" SET last_seen_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
