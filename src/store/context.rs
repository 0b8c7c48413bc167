//! What the assistant knows about a customer, read in one database round trip: who they are,
//! their addresses, unexpired memory notes, their recent messages across conversations within a
//! size budget, and their open leads and jobs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// How much of the message history is read.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Characters of message text, newest first; the message at the boundary is cut.
    pub chars: i32,
    /// Messages read per conversation, at most.
    pub per_conversation: i32,
    /// Conversations read, most recent first.
    pub conversations: i32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            chars: 6000,
            per_conversation: 40,
            conversations: 8,
        }
    }
}

/// A customer's context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Context {
    /// Who they are.
    pub customer: Card,
    /// Their phones, emails and Messenger ids.
    pub identities: Vec<IdentityCard>,
    /// Their addresses, the primary one first.
    pub addresses: Vec<Address>,
    /// Their unexpired memory notes, oldest first.
    pub notes: Vec<NoteCard>,
    /// Their recent messages across conversations, oldest first, within the budget.
    pub messages: Vec<MessageCard>,
    /// What of their history was left out.
    pub dropped: Dropped,
    /// Their leads that are not done, newest first, with the latest quote.
    pub leads: Vec<LeadCard>,
    /// Their jobs still to do, soonest first, with items and the latest event.
    pub jobs: Vec<JobCard>,
}

/// The customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    /// Their id.
    pub id: Uuid,
    /// Their name, when known.
    pub name: Option<String>,
    /// Their main phone (E.164).
    pub phone: Option<String>,
    /// Their main email.
    pub email: Option<String>,
    /// Since when they are a customer.
    pub created_at: DateTime<Utc>,
}

/// An identity of the customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityCard {
    /// `phone`, `email` or `psid`.
    pub kind: String,
    /// Its normalised value.
    pub value: String,
    /// Proven by its channel or by a code.
    pub verified: bool,
}

/// An address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Address {
    /// As given.
    pub address: String,
    /// ZIP code, when read.
    pub zip: Option<String>,
    /// The one used last.
    pub is_primary: bool,
}

/// A memory note.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoteCard {
    /// Its id.
    pub id: Uuid,
    /// The fact.
    pub content: String,
    /// Its kind.
    pub key: Option<String>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageCard {
    /// Its conversation.
    pub conversation_id: Uuid,
    /// That conversation's channel.
    pub channel: String,
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// The text (the oldest one kept may be cut to fit the budget).
    pub content: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// What the budget left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dropped {
    /// Older messages not included.
    pub messages: i64,
    /// The customer's first message, if any was left out.
    pub since: Option<DateTime<Utc>>,
}

/// An open lead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeadCard {
    /// Its id.
    pub id: Uuid,
    /// Its stage.
    pub stage: String,
    /// Its channel.
    pub channel: String,
    /// The pickup address, once given.
    pub address: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its latest quote.
    pub quote: Option<QuoteCard>,
}

/// A quote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuoteCard {
    /// Its id.
    pub id: Uuid,
    /// Total in cents.
    pub total_cents: i64,
    /// Its status.
    pub status: String,
    /// Whether the owner must approve it.
    pub needs_approval: bool,
}

/// A job still to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobCard {
    /// Its id.
    pub id: Uuid,
    /// Its status.
    pub status: String,
    /// The pickup window.
    pub window_start: DateTime<Utc>,
    /// End of the window.
    pub window_end: DateTime<Utc>,
    /// What is hauled.
    pub items: Vec<ItemCard>,
    /// What happened last.
    pub latest_event: Option<EventCard>,
}

/// A job item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemCard {
    /// What it is.
    pub description: String,
    /// How many.
    pub quantity: i32,
}

/// A job event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventCard {
    /// What happened.
    pub event_type: String,
    /// Who did it.
    pub actor: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The one statement that reads a context: everything is customer-scoped and index-driven.
/// It builds `json`, not `jsonb`: the text is parsed once, by the reader, not converted twice.
const QUERY: &str = r#"
WITH conv AS (
    SELECT id, channel FROM "Conversation" WHERE customer_id = $1
    ORDER BY last_message_at DESC NULLS LAST, started_at DESC LIMIT $4
), recent AS (
    SELECT m.id, m.conversation_id, conv.channel, m.role, m.content, m.created_at,
           sum(length(m.content)) OVER (ORDER BY m.created_at DESC, m.id DESC) AS running
    FROM conv CROSS JOIN LATERAL (
        SELECT id, conversation_id, role, content, created_at FROM "Message"
        WHERE conversation_id = conv.id ORDER BY created_at DESC LIMIT $3
    ) m
), kept AS (
    SELECT id, conversation_id, channel, role, created_at,
           left(content, ($2 - (running - length(content)))::int) AS content
    FROM recent WHERE running - length(content) < $2
), history AS (
    SELECT count(*) AS total, min(m.created_at) AS first
    FROM "Conversation" c JOIN "Message" m ON m.conversation_id = c.id
    WHERE c.customer_id = $1
)
SELECT json_build_object(
    'customer', json_build_object('id', c.id, 'name', c.name, 'phone', c.phone,
                                   'email', c.email, 'created_at', c.created_at),
    'identities', coalesce((
        SELECT json_agg(json_build_object('kind', i.kind, 'value', i.value,
                                            'verified', i.verified_at IS NOT NULL)
                         ORDER BY i.created_at)
        FROM "CustomerIdentity" i WHERE i.customer_id = c.id), '[]'::json),
    'addresses', coalesce((
        SELECT json_agg(json_build_object('address', a.address, 'zip', a.zip,
                                            'is_primary', a.is_primary)
                         ORDER BY a.is_primary DESC, a.created_at DESC)
        FROM "CustomerAddress" a WHERE a.customer_id = c.id), '[]'::json),
    'notes', coalesce((
        SELECT json_agg(json_build_object('id', n.id, 'content', n.content,
                                            'key', n.metadata->>'key', 'expires_at', n.expires_at)
                         ORDER BY n.created_at, n.id)
        FROM "MemoryNote" n
        WHERE n.customer_id = c.id AND (n.expires_at IS NULL OR n.expires_at > now())), '[]'::json),
    'messages', coalesce((
        SELECT json_agg(json_build_object('conversation_id', k.conversation_id,
                                            'channel', k.channel, 'role', k.role,
                                            'content', k.content, 'created_at', k.created_at)
                         ORDER BY k.created_at, k.id)
        FROM kept k), '[]'::json),
    'dropped', (
        SELECT json_build_object(
            'messages', h.total - (SELECT count(*) FROM kept),
            'since', CASE WHEN h.total > (SELECT count(*) FROM kept) THEN h.first END)
        FROM history h),
    'leads', coalesce((
        SELECT json_agg(json_build_object(
                   'id', l.id, 'stage', l.stage, 'channel', l.channel, 'address', l.address,
                   'created_at', l.created_at,
                   'quote', (SELECT json_build_object('id', q.id,
                                                       'total_cents', (q.total * 100)::bigint,
                                                       'status', q.status,
                                                       'needs_approval', q.needs_approval)
                             FROM "Quote" q WHERE q.lead_id = l.id
                             ORDER BY q.created_at DESC LIMIT 1))
               ORDER BY l.created_at DESC)
        FROM (SELECT * FROM "Lead" WHERE customer_id = c.id AND stage <> 'done'
              ORDER BY created_at DESC LIMIT 10) l), '[]'::json),
    'jobs', coalesce((
        SELECT json_agg(json_build_object(
                   'id', j.id, 'status', j.status, 'window_start', j.window_start,
                   'window_end', j.window_end,
                   'items', coalesce((SELECT json_agg(json_build_object(
                                                'description', it.description,
                                                'quantity', it.quantity) ORDER BY it.created_at)
                                      FROM "JobItem" it WHERE it.job_id = j.id), '[]'::json),
                   'latest_event', (SELECT json_build_object('event_type', e.event_type,
                                                              'actor', e.actor,
                                                              'created_at', e.created_at)
                                    FROM "JobEvent" e WHERE e.job_id = j.id
                                    ORDER BY e.created_at DESC LIMIT 1))
               ORDER BY j.window_start)
        FROM (SELECT * FROM "Job" WHERE customer_id = c.id
                AND status IN ('tentative', 'booked')
              ORDER BY window_start LIMIT 10) j), '[]'::json)
)
FROM "Customer" c WHERE c.id = $1
"#;

/// The customer's context, or `None` when there is no such customer.
pub async fn load(
    conn: &mut PgConnection,
    customer_id: Uuid,
    budget: Budget,
) -> sqlx::Result<Option<Context>> {
    let row: Option<sqlx::types::Json<Context>> = sqlx::query_scalar(QUERY)
        .bind(customer_id)
        .bind(budget.chars)
        .bind(budget.per_conversation)
        .bind(budget.conversations)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|json| json.0))
}

impl Context {
    /// The address used last, when there is one.
    pub fn last_address(&self) -> Option<&str> {
        self.addresses.first().map(|a| a.address.as_str())
    }

    /// The first name, for a greeting.
    pub fn first_name(&self) -> Option<&str> {
        self.customer
            .name
            .as_deref()
            .and_then(|n| n.split_whitespace().next())
    }
}
