//! Leads: the agent's view of a lead and its state between messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Channel;
use crate::domain::items::Recognition;
use crate::domain::schedule::Window;

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
    /// Its stage (`LeadStage`).
    pub stage: String,
    /// The pickup address, once given.
    pub address: Option<String>,
    /// Where replies go: the channel and its recipient (phone, PSID or web session).
    pub channel: Channel,
    /// The recipient on that channel.
    pub recipient: Option<String>,
    /// The agent's memory.
    pub state: LeadState,
}

type LeadRow = (
    Uuid,
    Option<Uuid>,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<serde_json::Value>,
);

/// The lead of a conversation, locked for the rest of the transaction.
pub async fn lead_of_conversation(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Lead> {
    let (id, customer_id, stage, address, channel, recipient, state): LeadRow = sqlx::query_as(
        "SELECT l.id, l.customer_id, l.stage::text, l.address, c.channel::text, c.external_id,
                l.\"stateMetadata\"
         FROM \"Conversation\" c JOIN \"Lead\" l ON l.id = c.lead_id
         WHERE c.id = $1
         FOR UPDATE OF l",
    )
    .bind(conversation_id)
    .fetch_one(conn)
    .await?;
    let channel = match channel.as_str() {
        "sms" => Channel::Sms,
        "messenger" => Channel::Messenger,
        _ => Channel::Web,
    };
    Ok(Lead {
        id,
        customer_id,
        stage,
        address,
        channel,
        recipient,
        // A lead written by the original service keeps its own state shape: start afresh.
        state: state
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
    .bind(&lead.stage)
    .bind(&lead.address)
    .bind(sqlx::types::Json(&lead.state))
    .bind(lead.state.recognition.curbside)
    .execute(conn)
    .await?;
    Ok(())
}
