//! The system figures the console's System page shows.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Outbox messages by status: how many, and the oldest.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Backlog {
    /// `pending`, `sent`, `failed`, `held`, …
    pub status: String,
    /// How many.
    pub count: i64,
    /// The oldest one's creation.
    pub oldest: Option<DateTime<Utc>>,
}

/// The outbox by status.
pub async fn outbox_backlog(conn: &mut PgConnection) -> sqlx::Result<Vec<Backlog>> {
    sqlx::query_as(
        "SELECT status, count(*) AS count, min(created_at) AS oldest FROM \"Outbox\"
         GROUP BY status ORDER BY status",
    )
    .fetch_all(conn)
    .await
}

/// Customer messages stored but not yet answered (waiting, or being retried).
pub async fn unanswered(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM \"InboundMessage\" WHERE processed_at IS NULL")
        .fetch_one(conn)
        .await
}
