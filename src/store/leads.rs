//! Leads: the agent's view of a lead and its state between messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Channel;
use crate::domain::items::Recognition;
use crate::domain::schedule::Window;
use crate::domain::stages::Stage;

/// The agent's memory of a lead between messages, kept in `Lead."stateMetadata"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeadState {
    /// What the customer wants hauled, so far.
    pub recognition: Recognition,
    /// The latest quote.
    pub quote_id: Option<Uuid>,
    /// The windows last offered, in the order numbered.
    pub offers: Vec<Window>,
    /// The booked job.
    pub job_id: Option<Uuid>,
    /// Whether the latest quote includes the same-day fee.
    pub quoted_same_day: bool,
    /// The address used last time, asked about and not yet confirmed.
    pub proposed_address: Option<String>,
    /// Whether the customer has been answered on this lead (a returning one is welcomed once).
    pub greeted: bool,
    /// When the schedule was last found full for this lead (it is looked at again later).
    pub found_full_at: Option<DateTime<Utc>>,
}

/// A lead as the agent sees it.
#[derive(Debug, Clone)]
pub struct Lead {
    /// Its id.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Option<Uuid>,
    /// Its stage.
    pub stage: Stage,
    /// The pickup address, once given.
    pub address: Option<String>,
    /// Where replies go: the channel and its recipient (phone, PSID or web session).
    pub channel: Channel,
    /// The recipient on that channel.
    pub recipient: Option<String>,
    /// The agent's memory.
    pub state: LeadState,
}

/// A lead's row as read, with its conversation's channel and recipient.
#[derive(sqlx::FromRow)]
struct LeadRow {
    id: Uuid,
    customer_id: Option<Uuid>,
    stage: Stage,
    address: Option<String>,
    channel: Channel,
    recipient: Option<String>,
    state: Option<serde_json::Value>,
}

/// The lead of a conversation, locked for the rest of the transaction. A stage or channel the
/// domain does not know is an error: guessing one would send replies the wrong way.
pub async fn lead_of_conversation(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Lead> {
    let row: LeadRow = sqlx::query_as(
        "SELECT l.id, l.customer_id, l.stage::text AS stage, l.address, c.channel::text AS channel,
                c.external_id AS recipient, l.\"stateMetadata\" AS state
         FROM \"Conversation\" c JOIN \"Lead\" l ON l.id = c.lead_id
         WHERE c.id = $1
         FOR UPDATE OF l",
    )
    .bind(conversation_id)
    .fetch_one(conn)
    .await?;
    Ok(Lead {
        id: row.id,
        customer_id: row.customer_id,
        stage: row.stage,
        address: row.address,
        channel: row.channel,
        recipient: row.recipient,
        // A lead written by the original service keeps its own state shape: start afresh.
        state: row
            .state
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
    })
}

/// Writes back the lead's stage, address and state.
pub async fn save_lead(conn: &mut PgConnection, lead: &Lead) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"Lead\" SET stage = $2::text::\"LeadStage\", address = $3, \"stateMetadata\" = $4,
                curbside = $5, last_agent_message_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(lead.id)
    .bind(lead.stage)
    .bind(&lead.address)
    .bind(sqlx::types::Json(&lead.state))
    .bind(lead.state.recognition.curbside)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims (`SKIP LOCKED`, so any number of workers can run) a lead that was told the schedule
/// was full at least `minutes` ago and has no windows offered; returns its conversation, both
/// locked (conversation, then lead).
pub async fn claim_fully_booked(
    conn: &mut PgConnection,
    minutes: i32,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT c.id FROM \"Lead\" l JOIN \"Conversation\" c ON c.lead_id = l.id
         WHERE l.stage = 'scheduling'
           AND coalesce(jsonb_array_length(l.\"stateMetadata\"->'offers'), 0) = 0
           AND coalesce((l.\"stateMetadata\"->>'found_full_at')::timestamptz,
                        l.last_agent_message_at, l.updated_at)
               < now() - make_interval(mins => $1)
         ORDER BY l.updated_at LIMIT 1
         FOR UPDATE OF c, l SKIP LOCKED",
    )
    .bind(minutes)
    .fetch_optional(conn)
    .await
}

/// Records that the schedule was found full for the lead now (it is looked at again later).
pub async fn found_full(conn: &mut PgConnection, lead_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"Lead\" SET \"stateMetadata\" = \"stateMetadata\" || jsonb_build_object('found_full_at', now())
         WHERE id = $1",
    )
    .bind(lead_id)
    .execute(conn)
    .await?;
    Ok(())
}
