//! Leads, quotes, approvals and bookings: what the agent writes as a conversation goes on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use crate::domain::Channel;
use crate::domain::items::Recognition;
use crate::domain::pricing::PriceQuote;
use crate::domain::schedule::{Busy, MAX_CREWS, Window};

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

/// Stores a quote for the lead; returns its id.
pub async fn insert_quote(
    conn: &mut PgConnection,
    lead_id: Uuid,
    recognition: &Recognition,
    quote: &PriceQuote,
) -> sqlx::Result<Uuid> {
    let discounts: Vec<_> = quote.lines.iter().filter(|l| l.amount.get() < 0).collect();
    let review: Vec<&str> = recognition
        .items
        .iter()
        .filter(|i| i.needs_review)
        .map(|i| i.description.as_str())
        .collect();
    let flags =
        serde_json::json!({"approval_reasons": quote.approval_reasons, "needs_review": review});
    let quote_id: Uuid = sqlx::query_scalar(
        "INSERT INTO \"Quote\" (lead_id, features_json, line_items_json, discounts_json, subtotal,
                                total, confidence, needs_approval, status, flags_json, notes_json,
                                disclaimer)
         VALUES ($1, $2, $3, $4, $5::numeric / 100, $6::numeric / 100, round($7::numeric, 2), $8,
                 $9::text::\"QuoteStatus\", $10, $11, $12)
         RETURNING id",
    )
    .bind(lead_id)
    .bind(sqlx::types::Json(recognition))
    .bind(sqlx::types::Json(&quote.lines))
    .bind(sqlx::types::Json(&discounts))
    .bind(quote.subtotal.get())
    .bind(quote.total.get())
    .bind(quote.confidence)
    .bind(quote.needs_approval)
    .bind(if quote.needs_approval {
        "pending_approval"
    } else {
        "sent"
    })
    .bind(flags)
    .bind(serde_json::json!({"explanation": quote.explain(), "loads": quote.loads}))
    .bind(&quote.disclaimer)
    .fetch_one(&mut *conn)
    .await?;
    // The newest quote is the one that counts: approvals still pending for the lead's older
    // quotes stop working, so the owner cannot approve a price the customer has moved past.
    sqlx::query(
        "UPDATE \"Approval\" a SET expires_at = least(coalesce(a.expires_at, now()), now())
         FROM \"Quote\" q
         WHERE a.quote_id = q.id AND q.lead_id = $1 AND q.id <> $2 AND a.status = 'pending'",
    )
    .bind(lead_id)
    .bind(quote_id)
    .execute(conn)
    .await?;
    Ok(quote_id)
}

/// Asks the owner to approve a quote: an approval whose token (stored as its hash) works once,
/// until `expires_at`.
pub async fn insert_approval(
    conn: &mut PgConnection,
    quote_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO \"Approval\" (quote_id, token, status, expires_at)
         VALUES ($1, $2, 'pending', $3) RETURNING id",
    )
    .bind(quote_id)
    .bind(token_hash)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

/// Whether a quote may be booked: it needs no approval, or was approved.
pub async fn bookable(conn: &mut PgConnection, quote_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT NOT needs_approval OR status IN ('approved', 'accepted') FROM \"Quote\" WHERE id = $1",
    )
    .bind(quote_id)
    .fetch_one(conn)
    .await
}

/// The quote's total in cents.
pub async fn quote_total(conn: &mut PgConnection, quote_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT (total * 100)::bigint FROM \"Quote\" WHERE id = $1")
        .bind(quote_id)
        .fetch_one(conn)
        .await
}

/// The crews' booked windows that overlap `from`..`to`.
pub async fn busy(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Busy>> {
    let rows: Vec<(i32, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT crew, window_start, window_end FROM \"Booking\"
         WHERE window_end > $1 AND window_start < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(crew, start, end)| (u32::try_from(crew).unwrap_or(0), Window { start, end }))
        .collect())
}

/// What came of a booking attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booked {
    /// The job is booked.
    Job(Uuid),
    /// Someone else booked overlapping crew time first.
    Taken,
    /// The quote waits for (or was refused) the owner's approval.
    NotApproved,
}

/// Books the lead's quote into `window`: a Job with its items and events, and the crew's time,
/// which the database refuses to give twice.
pub async fn book(
    conn: &mut PgConnection,
    lead: &Lead,
    quote_id: Uuid,
    window: Window,
    crews: u32,
) -> sqlx::Result<Booked> {
    if !bookable(conn, quote_id).await? {
        return Ok(Booked::NotApproved);
    }
    // A savepoint: a lost race rolls back the attempt, not the conversation's transaction.
    let mut attempt = conn.begin().await?;
    let job_id: Uuid = sqlx::query_scalar(
        "INSERT INTO \"Job\" (lead_id, quote_id, window_start, window_end, status, customer_id)
         VALUES ($1, $2, $3, $4, 'booked', $5) RETURNING id",
    )
    .bind(lead.id)
    .bind(quote_id)
    .bind(window.start)
    .bind(window.end)
    .bind(lead.customer_id)
    .fetch_one(&mut *attempt)
    .await?;
    // The first crew free for the whole window; the exclusion constraint settles a race.
    let booking = sqlx::query(
        "INSERT INTO \"Booking\" (job_id, crew, window_start, window_end)
         SELECT $1, c, $2, $3 FROM generate_series(1, $4) c
         WHERE NOT EXISTS (SELECT 1 FROM \"Booking\" b
                           WHERE b.crew = c AND tstzrange(b.window_start, b.window_end)
                                                && tstzrange($2, $3))
         ORDER BY c LIMIT 1",
    )
    .bind(job_id)
    .bind(window.start)
    .bind(window.end)
    .bind(i32::try_from(crews.clamp(1, MAX_CREWS)).unwrap_or(1))
    .execute(&mut *attempt)
    .await;
    if matches!(&booking, Ok(done) if done.rows_affected() == 0) {
        attempt.rollback().await?;
        return Ok(Booked::Taken);
    }
    if let Err(e) = booking {
        // Two bookings of the same time check each other's uncommitted rows; PostgreSQL then
        // refuses one with the constraint, or, when both saw the other, with a deadlock. Either
        // way the other booking stands.
        let db = e.as_database_error();
        let overlap = db.and_then(|d| d.constraint()) == Some("Booking_no_overlap")
            || db.and_then(|d| d.code()).as_deref() == Some("40P01");
        if overlap {
            attempt.rollback().await?;
            return Ok(Booked::Taken);
        }
        return Err(e);
    }
    for item in &lead.state.recognition.items {
        sqlx::query(
            "INSERT INTO \"JobItem\" (job_id, description, quantity, metadata)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(job_id)
        .bind(&item.description)
        .bind(i32::try_from(item.quantity).unwrap_or(i32::MAX))
        .bind(serde_json::json!({
            "cubic_feet_each": item.cubic_feet_each,
            "regulated": item.regulated,
            "heavy": item.heavy,
            "needs_review": item.needs_review,
        }))
        .execute(&mut *attempt)
        .await?;
    }
    sqlx::query(
        "INSERT INTO \"JobEvent\" (job_id, event_type, actor, metadata, created_at)
         VALUES ($1, 'created', 'agent', '{}', clock_timestamp()),
                ($1, 'booked', 'agent', jsonb_build_object('window_start', $2::timestamptz, 'window_end', $3::timestamptz), clock_timestamp())",
    )
    .bind(job_id)
    .bind(window.start)
    .bind(window.end)
    .execute(&mut *attempt)
    .await?;
    sqlx::query("UPDATE \"Quote\" SET status = 'accepted', updated_at = now() WHERE id = $1")
        .bind(quote_id)
        .execute(&mut *attempt)
        .await?;
    audit(
        &mut attempt,
        Some(lead.id),
        "agent",
        "job_booked",
        serde_json::json!({"job_id": job_id}),
    )
    .await?;
    attempt.commit().await?;
    Ok(Booked::Job(job_id))
}

/// Stores the assistant's reply to message `in_reply_to` and queues it for delivery (web chat
/// replies are read from the thread, so they skip the outbox). Returns the reply's id.
pub async fn reply(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    in_reply_to: Option<Uuid>,
    lead: &Lead,
    text: &str,
) -> sqlx::Result<Uuid> {
    // Web chat replies are read from the thread; the other channels' go through the outbox.
    let recipient = lead
        .recipient
        .as_deref()
        .filter(|_| lead.channel != Channel::Web);
    // Unprompted messages (reminders, the owner's decision) may fall outside Messenger's
    // 24-hour reply window; they are sent as tagged updates.
    let kind = if in_reply_to.is_some() {
        "reply"
    } else {
        "update"
    };
    // One statement: the message, the conversation's time, and the outbox row.
    sqlx::query_scalar(
        "WITH message AS (
             INSERT INTO \"Message\" (conversation_id, role, content, metadata, created_at)
             VALUES ($1, 'assistant', $2,
                     CASE WHEN $3::uuid IS NULL THEN '{}'::jsonb
                          ELSE jsonb_build_object('in_reply_to', $3::uuid) END,
                     clock_timestamp())
             RETURNING id
         ), conversation AS (
             UPDATE \"Conversation\" SET last_message_at = now(), updated_at = now()
             WHERE id = $1
         ), outbox AS (
             INSERT INTO \"Outbox\" (conversation_id, message_id, channel, recipient, body, kind)
             SELECT $1, id, $4, $5, $6, $7 FROM message WHERE $5::text IS NOT NULL
         )
         SELECT id FROM message",
    )
    .bind(conversation_id)
    .bind(text)
    .bind(in_reply_to)
    .bind(lead.channel.as_str())
    .bind(recipient)
    .bind(fit(lead.channel, text))
    .bind(kind)
    .fetch_one(conn)
    .await
}

/// Queues a message for the owner (sent to the owner's phone when one is configured).
pub async fn notify_owner(conn: &mut PgConnection, text: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO \"Outbox\" (channel, recipient, body) VALUES ('owner', 'owner', $1)")
        .bind(text)
        .execute(conn)
        .await?;
    Ok(())
}

/// `text` cut to what the channel delivers (1,600 characters by SMS, 2,000 on Messenger).
fn fit(channel: Channel, text: &str) -> String {
    let limit = match channel {
        Channel::Sms => 1600,
        Channel::Messenger => 2000,
        Channel::Web => usize::MAX,
    };
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}

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

/// A decision on an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Book it at this price.
    Approve,
    /// Do not.
    Deny,
}

/// Why a decision could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionRefused {
    /// No such approval (or token).
    Unknown,
    /// It was decided already: tokens work once.
    AlreadyDecided,
    /// The token expired.
    Expired,
}

/// An approval's id, quote, decision time, expiry, and whether it was found by token.
type ApprovalRow = (
    Uuid,
    Uuid,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    bool,
);

/// Records the owner's decision on the approval found by `id` or by its token's hash (checking
/// the token's expiry); returns the conversation to tell, locked for the caller's transaction.
pub async fn decide(
    conn: &mut PgConnection,
    by: ApprovalKey<'_>,
    decision: Decision,
    approver: &str,
) -> sqlx::Result<Result<Uuid, DecisionRefused>> {
    // The conversation first, as the agent takes its locks: conversation, then lead, then quote.
    let conversation: Option<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM \"Approval\" a
         JOIN \"Quote\" q ON q.id = a.quote_id
         JOIN \"Conversation\" c ON c.lead_id = q.lead_id
         WHERE a.id = $1 OR a.token = $2
         ORDER BY c.started_at DESC LIMIT 1",
    )
    .bind(match by {
        ApprovalKey::Id(id) => Some(id),
        ApprovalKey::TokenHash(_) => None,
    })
    .bind(match by {
        ApprovalKey::Id(_) => None,
        ApprovalKey::TokenHash(hash) => Some(hash),
    })
    .fetch_optional(&mut *conn)
    .await?;
    let Some(conversation) = conversation else {
        return Ok(Err(DecisionRefused::Unknown));
    };
    sqlx::query("SELECT 1 FROM \"Conversation\" WHERE id = $1 FOR UPDATE")
        .bind(conversation)
        .execute(&mut *conn)
        .await?;
    let row: Option<ApprovalRow> = match by {
        ApprovalKey::Id(id) => sqlx::query_as(
            "SELECT id, quote_id, decided_at, expires_at, false FROM \"Approval\" WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?,
        ApprovalKey::TokenHash(hash) => sqlx::query_as(
            "SELECT id, quote_id, decided_at, expires_at, true FROM \"Approval\" WHERE token = $1 FOR UPDATE",
        )
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?,
    };
    let Some((id, quote_id, decided_at, expires_at, by_token)) = row else {
        return Ok(Err(DecisionRefused::Unknown));
    };
    if decided_at.is_some() {
        return Ok(Err(DecisionRefused::AlreadyDecided));
    }
    if by_token && expires_at.is_some_and(|at| at <= Utc::now()) {
        return Ok(Err(DecisionRefused::Expired));
    }
    let (approval_status, quote_status) = match decision {
        Decision::Approve => ("approved", "approved"),
        Decision::Deny => ("denied", "denied"),
    };
    // A renewed request (see `renew_approval`) leaves two approvals of one quote: deciding
    // either decides both, so each link still works once.
    sqlx::query(
        "UPDATE \"Approval\" SET status = $2::text::\"ApprovalStatus\", decided_at = now(), approver = $3
         WHERE id = $1 OR (quote_id = $4 AND decided_at IS NULL)",
    )
    .bind(id)
    .bind(approval_status)
    .bind(approver)
    .bind(quote_id)
    .execute(&mut *conn)
    .await?;
    let lead_id: Uuid = sqlx::query_scalar(
        "UPDATE \"Quote\" SET status = $2::text::\"QuoteStatus\", updated_at = now() WHERE id = $1 RETURNING lead_id",
    )
    .bind(quote_id)
    .bind(quote_status)
    .fetch_one(&mut *conn)
    .await?;
    audit(
        conn,
        Some(lead_id),
        approver,
        &format!("quote_{approval_status}"),
        serde_json::json!({"approval_id": id, "quote_id": quote_id}),
    )
    .await?;
    Ok(Ok(conversation))
}

/// How an approval is named.
#[derive(Debug, Clone, Copy)]
pub enum ApprovalKey<'a> {
    /// By id (an authenticated operator).
    Id(Uuid),
    /// By its token's SHA-256 (the owner's link).
    TokenHash(&'a str),
}

/// A quote waiting for the owner.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PendingApproval {
    /// The approval's id.
    pub id: Uuid,
    /// The quote.
    pub quote_id: Uuid,
    /// Its lead.
    pub lead_id: Uuid,
    /// The quote's total, in cents.
    pub total_cents: i64,
    /// Why it needs approval.
    pub reasons: serde_json::Value,
    /// The quote, line by line.
    pub explanation: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its token stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Approvals waiting for a decision, oldest first.
pub async fn pending_approvals(conn: &mut PgConnection) -> sqlx::Result<Vec<PendingApproval>> {
    sqlx::query_as(
        "SELECT a.id, a.quote_id, q.lead_id, (q.total * 100)::bigint AS total_cents,
                coalesce(q.flags_json->'approval_reasons', '[]') AS reasons,
                q.notes_json->>'explanation' AS explanation, a.created_at, a.expires_at
         FROM \"Approval\" a JOIN \"Quote\" q ON q.id = a.quote_id
         WHERE a.status = 'pending'
           -- a renewed request stands for the expired one it replaced
           AND NOT EXISTS (SELECT 1 FROM \"Approval\" n
                           WHERE n.quote_id = a.quote_id AND n.created_at > a.created_at)
           -- a quote the customer has moved past (more items, a new price) waits for nobody
           AND NOT EXISTS (SELECT 1 FROM \"Quote\" newer
                           WHERE newer.lead_id = q.lead_id AND newer.created_at > q.created_at)
         ORDER BY a.created_at",
    )
    .fetch_all(conn)
    .await
}

/// An approval whose link expired before the owner decided, while its customer still waits.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpiredApproval {
    /// The approval's id.
    pub id: Uuid,
    /// Its quote.
    pub quote_id: Uuid,
    /// The quote's lead.
    pub lead_id: Uuid,
    /// The quote's total, in cents.
    pub total_cents: i64,
    /// Why it needs approval.
    pub reasons: sqlx::types::Json<Vec<String>>,
    /// When the owner was first asked.
    pub created_at: DateTime<Utc>,
}

/// Claims (`FOR UPDATE SKIP LOCKED`, so any number of workers can run) the approval that
/// expired first among those never renewed: still pending, its quote the lead's newest and
/// still waiting for it, the lead still waiting for the owner, and no other approval asked
/// for the same quote.
pub async fn claim_expired_approval(
    conn: &mut PgConnection,
) -> sqlx::Result<Option<ExpiredApproval>> {
    sqlx::query_as(
        "SELECT a.id, a.quote_id, q.lead_id, (q.total * 100)::bigint AS total_cents,
                coalesce(q.flags_json->'approval_reasons', '[]') AS reasons, a.created_at
         FROM \"Approval\" a
         JOIN \"Quote\" q ON q.id = a.quote_id
         JOIN \"Lead\" l ON l.id = q.lead_id
         WHERE a.status = 'pending' AND a.decided_at IS NULL AND a.expires_at <= now()
           AND q.status = 'pending_approval' AND l.stage = 'awaiting_owner'
           -- a quote the customer has moved past is not worth the owner's time
           AND NOT EXISTS (SELECT 1 FROM \"Quote\" n
                           WHERE n.lead_id = q.lead_id AND n.created_at > q.created_at)
           AND NOT EXISTS (SELECT 1 FROM \"Approval\" o
                           WHERE o.quote_id = a.quote_id AND o.id <> a.id)
         ORDER BY a.expires_at
         LIMIT 1
         FOR UPDATE OF a SKIP LOCKED",
    )
    .fetch_optional(conn)
    .await
}

/// Renews an expired approval once: a new approval of the same quote whose token (stored as
/// `token_hash`) works until `expires_at`, and `text` (carrying that token) queued for the
/// owner. The old link keeps answering "expired". Returns false, doing nothing, when the
/// approval was renewed already (a worker that read before another's commit).
pub async fn renew_approval(
    conn: &mut PgConnection,
    expired: &ExpiredApproval,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    text: &str,
) -> sqlx::Result<bool> {
    // The outbox's unique dedupe key makes "once" hold whatever the snapshots saw.
    let queued: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO \"Outbox\" (channel, recipient, body, kind, dedupe_key)
         VALUES ('owner', 'owner', $1, 'update', $2)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(text)
    .bind(format!("approval-renewed:{}", expired.id))
    .fetch_optional(&mut *conn)
    .await?;
    if queued.is_none() {
        return Ok(false);
    }
    let renewed = insert_approval(conn, expired.quote_id, token_hash, expires_at).await?;
    audit(
        conn,
        Some(expired.lead_id),
        "system",
        "approval_expired",
        serde_json::json!({"approval_id": expired.id, "renewed_as": renewed}),
    )
    .await?;
    Ok(true)
}
