//! Memory notes (durable facts about a customer, some expiring) and full-text search over what a
//! customer wrote.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::memory::Fact;

/// A memory note.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Note {
    /// Its id.
    pub id: Uuid,
    /// Whose it is.
    pub customer_id: Uuid,
    /// The conversation it was learnt in, if any.
    pub conversation_id: Option<Uuid>,
    /// The fact.
    pub content: String,
    /// What kind of fact (`access_code`, `pets`, …), or `operator` for one the operator wrote.
    pub key: Option<String>,
    /// When it stops being true.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, customer_id, conversation_id, content, metadata->>'key' AS key, \
                       expires_at, created_at, updated_at";

/// Remembers a fact learnt in a conversation: it replaces the customer's unexpired note with
/// the same key, or becomes a new note.
pub async fn remember(
    conn: &mut PgConnection,
    customer_id: Uuid,
    conversation_id: Uuid,
    fact: &Fact,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let expires_at = fact.lifetime.map(|lifetime| now + lifetime);
    let updated = sqlx::query(
        "UPDATE \"MemoryNote\" SET content = $3, expires_at = $4, conversation_id = $5,
                updated_at = now()
         WHERE customer_id = $1 AND metadata->>'key' = $2
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(customer_id)
    .bind(fact.key)
    .bind(&fact.content)
    .bind(expires_at)
    .bind(conversation_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO \"MemoryNote\" (customer_id, conversation_id, content, metadata, expires_at)
             VALUES ($1, $2, $3, jsonb_build_object('key', $4::text, 'source', 'agent'), $5)",
        )
        .bind(customer_id)
        .bind(conversation_id)
        .bind(&fact.content)
        .bind(fact.key)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds a fact as a note of its own (no replacing by key): what the LLM agent chose to keep.
pub async fn remember_new(
    conn: &mut PgConnection,
    customer_id: Uuid,
    conversation_id: Uuid,
    fact: &Fact,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO \"MemoryNote\" (customer_id, conversation_id, content, metadata, expires_at)
         VALUES ($1, $2, $3, jsonb_build_object('key', $4::text, 'source', 'assistant'),
                 now() + $5 * interval '1 second')",
    )
    .bind(customer_id)
    .bind(conversation_id)
    .bind(&fact.content)
    .bind(fact.key)
    .bind(fact.lifetime.map(|l| l.num_seconds() as f64))
    .execute(conn)
    .await?;
    Ok(())
}

/// The customer's unexpired notes, oldest first.
pub async fn list(conn: &mut PgConnection, customer_id: Uuid) -> sqlx::Result<Vec<Note>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM \"MemoryNote\"
         WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > now())
         ORDER BY created_at, id"
    ))
    .bind(customer_id)
    .fetch_all(conn)
    .await
}

/// Adds a note the operator wrote. `None` when the customer does not exist.
pub async fn add(
    conn: &mut PgConnection,
    customer_id: Uuid,
    content: &str,
    expires_at: Option<DateTime<Utc>>,
    actor: &str,
) -> sqlx::Result<Option<Note>> {
    sqlx::query_as(&format!(
        "INSERT INTO \"MemoryNote\" (customer_id, content, metadata, expires_at)
         SELECT id, $2, jsonb_build_object('key', 'operator', 'source', $4::text), $3
         FROM \"Customer\" WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(customer_id)
    .bind(content)
    .bind(expires_at)
    .bind(actor)
    .fetch_optional(conn)
    .await
}

/// A change to a note: fields left `None` stay; `expires_at: Some(None)` removes the expiry.
#[derive(Debug, Default)]
pub struct Change<'a> {
    /// New text.
    pub content: Option<&'a str>,
    /// New expiry.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// Edits an unexpired note; `None` when there is none with that id.
pub async fn update(
    conn: &mut PgConnection,
    note_id: Uuid,
    change: Change<'_>,
) -> sqlx::Result<Option<Note>> {
    sqlx::query_as(&format!(
        "UPDATE \"MemoryNote\" SET content = coalesce($2, content),
                expires_at = CASE WHEN $3 THEN $4 ELSE expires_at END, updated_at = now()
         WHERE id = $1 AND (expires_at IS NULL OR expires_at > now())
         RETURNING {COLUMNS}"
    ))
    .bind(note_id)
    .bind(change.content)
    .bind(change.expires_at.is_some())
    .bind(change.expires_at.flatten())
    .fetch_optional(conn)
    .await
}

/// Deletes a note; whether there was one.
pub async fn delete(conn: &mut PgConnection, note_id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM \"MemoryNote\" WHERE id = $1")
        .bind(note_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// Deletes up to `limit` expired notes (rows another worker holds are skipped); how many.
pub async fn purge_expired(pool: &PgPool, limit: i64) -> sqlx::Result<u64> {
    let purged = sqlx::query(
        "DELETE FROM \"MemoryNote\" WHERE id IN (
             SELECT id FROM \"MemoryNote\" WHERE expires_at <= now()
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
    )
    .bind(limit)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(purged)
}

/// Copies the customer's unexpired notes onto a job (a `crew_notes` event) for the crew.
pub async fn to_job(conn: &mut PgConnection, customer_id: Uuid, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO \"JobEvent\" (job_id, event_type, actor, metadata)
         SELECT $2, 'crew_notes', 'agent', jsonb_build_object('notes', jsonb_agg(content ORDER BY created_at))
         FROM \"MemoryNote\"
         WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > now())
         HAVING count(*) > 0",
    )
    .bind(customer_id)
    .bind(job_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A message found by search.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Hit {
    /// The message.
    pub message_id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// `user`, `assistant`, …
    pub role: String,
    /// The text.
    pub content: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// The customer's messages matching a web-search style query (`gate code`, `"blue couch"`,
/// `mattress -box`), best first, newest first among equals.
pub async fn search(
    conn: &mut PgConnection,
    customer_id: Uuid,
    query: &str,
    limit: i64,
) -> sqlx::Result<Vec<Hit>> {
    sqlx::query_as(
        "SELECT m.id AS message_id, m.conversation_id, m.role::text AS role, m.content, m.created_at
         FROM \"Conversation\" c JOIN \"Message\" m ON m.conversation_id = c.id,
              websearch_to_tsquery('english', $2) q
         WHERE c.customer_id = $1 AND to_tsvector('english'::regconfig, m.content) @@ q
         ORDER BY ts_rank(to_tsvector('english'::regconfig, m.content), q) DESC, m.created_at DESC
         LIMIT $3",
    )
    .bind(customer_id)
    .bind(query)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The customer a note is about, if there is such a note.
pub async fn owner_of_note(conn: &mut PgConnection, note_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT customer_id FROM \"MemoryNote\" WHERE id = $1")
        .bind(note_id)
        .fetch_optional(conn)
        .await
}
