//! The legacy `Audit` trail, which the original service and the console both read.

use sqlx::PgConnection;
use uuid::Uuid;

/// Records an action in the legacy `Audit` trail.
pub async fn audit(
    conn: &mut PgConnection,
    lead_id: Option<Uuid>,
    actor: &str,
    action: &str,
    payload: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO \"Audit\" (lead_id, actor, action, payload) VALUES ($1, $2, $3, $4)")
        .bind(lead_id)
        .bind(actor)
        .bind(action)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}
