//! The console's inbox, read only: conversations by their last message and a thread with who
//! wrote each message (the operator's replies and taking over are in `store::conversations`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Channel;

/// A conversation in the inbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    /// Its id.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// Their name.
    pub customer_name: Option<String>,
    /// Their phone.
    pub phone: Option<String>,
    /// Its channel.
    pub channel: Channel,
    /// Its last message's time (or its start).
    pub last_at: DateTime<Utc>,
    /// The last message.
    pub last_message: Option<String>,
    /// Who wrote it.
    pub last_role: Option<String>,
    /// The operator who took it over, if one did.
    pub taken_over_by: Option<String>,
}

/// Conversations by last message, newest first, `limit` of them older than `before`.
pub async fn list(
    conn: &mut PgConnection,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<ConversationRow>> {
    sqlx::query_as(
        "SELECT v.id, v.customer_id, c.name AS customer_name, c.phone, v.channel::text AS channel,
                coalesce(v.last_message_at, v.started_at) AS last_at,
                m.content AS last_message, m.role::text AS last_role,
                v.metadata->>'taken_over_by' AS taken_over_by
         FROM \"Conversation\" v
         JOIN \"Customer\" c ON c.id = v.customer_id
         LEFT JOIN LATERAL (SELECT content, role FROM \"Message\"
                            WHERE conversation_id = v.id
                            ORDER BY created_at DESC, id DESC LIMIT 1) m ON true
         WHERE $1::timestamptz IS NULL OR coalesce(v.last_message_at, v.started_at) < $1
         ORDER BY coalesce(v.last_message_at, v.started_at) DESC, v.id
         LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One conversation.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(
        "SELECT v.id, v.customer_id, c.name AS customer_name, c.phone, v.channel::text AS channel,
                coalesce(v.last_message_at, v.started_at) AS last_at,
                NULL::text AS last_message, NULL::text AS last_role,
                v.metadata->>'taken_over_by' AS taken_over_by
         FROM \"Conversation\" v JOIN \"Customer\" c ON c.id = v.customer_id
         WHERE v.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A message of a thread.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThreadMessage {
    /// Its id.
    pub id: Uuid,
    /// `user`, `assistant`, `system`, `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// The operator who wrote it, when one did.
    pub operator: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The conversation's messages written after `after` (all when `None`), oldest first, at most
/// 500.
pub async fn messages(
    conn: &mut PgConnection,
    id: Uuid,
    after: Option<DateTime<Utc>>,
) -> sqlx::Result<Vec<ThreadMessage>> {
    sqlx::query_as(
        "SELECT id, role::text AS role, content, metadata->>'operator' AS operator, created_at
         FROM (SELECT * FROM \"Message\"
               WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR created_at > $2)
               ORDER BY created_at DESC, id DESC LIMIT 500) m
         ORDER BY created_at, id",
    )
    .bind(id)
    .bind(after)
    .fetch_all(conn)
    .await
}
