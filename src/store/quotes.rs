//! Quotes and the owner's approvals of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::items::Recognition;
use crate::domain::money::Cents;
use crate::domain::pricing::PriceQuote;
use crate::domain::stages::QuoteStatus;

use super::audit::audit;

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
    .bind(QuoteStatus::priced(quote.needs_approval))
    .bind(flags)
    .bind(serde_json::json!({"explanation": quote.explain(), "loads": quote.loads}))
    .bind(&quote.disclaimer)
    .fetch_one(&mut *conn)
    .await?;
    // The newest quote is the one that counts: the lead's older quotes are superseded, and
    // their approvals still pending stop working, so the owner cannot approve a price the
    // customer has moved past.
    sqlx::query(
        "WITH superseded AS (
             UPDATE \"Quote\" SET superseded_at = now()
             WHERE lead_id = $1 AND id <> $2 AND superseded_at IS NULL
         )
         UPDATE \"Approval\" a SET expires_at = least(coalesce(a.expires_at, now()), now())
         FROM \"Quote\" q
         WHERE a.quote_id = q.id AND q.lead_id = $1 AND q.id <> $2 AND a.status = 'pending'",
    )
    .bind(lead_id)
    .bind(quote_id)
    .execute(conn)
    .await?;
    Ok(quote_id)
}

/// Asks the owner to approve the lead's newest quote, with at most one notice outstanding per
/// lead: `text` (carrying the new approval's token, stored as `token_hash`) replaces the
/// lead's previous notice while that one has not reached the owner yet; once it has, the new
/// one waits until `quiet` after it. So a customer adding items message after message costs
/// the owner one text per `quiet`, always about the newest estimate. Returns the approval's id.
pub async fn request_approval(
    conn: &mut PgConnection,
    lead_id: Uuid,
    quote_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    text: &str,
    quiet: chrono::Duration,
) -> sqlx::Result<Uuid> {
    // The lead's latest notice, locked (a worker sending it holds the lock until it knows).
    let latest: Option<(Uuid, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT o.id, o.status, o.sent_at
         FROM \"Approval\" a
         JOIN \"Quote\" q ON q.id = a.quote_id
         JOIN \"Outbox\" o ON o.id = a.notice_id
         WHERE q.lead_id = $1
         ORDER BY a.created_at DESC
         LIMIT 1
         FOR UPDATE OF o",
    )
    .bind(lead_id)
    .fetch_optional(&mut *conn)
    .await?;
    let notice_id: Uuid = match latest {
        // Not handed to the provider yet: the owner will read the newest estimate instead.
        Some((id, status, None)) if status == "pending" || status == "held" => {
            sqlx::query("UPDATE \"Outbox\" SET body = $2 WHERE id = $1")
                .bind(id)
                .bind(text)
                .execute(&mut *conn)
                .await?;
            id
        }
        // Sent (or perhaps sent) at `sent_at`: the next notice waits out the quiet time.
        latest => {
            let not_before = latest
                .and_then(|(_, _, sent_at)| sent_at)
                .map(|sent_at| sent_at + quiet);
            sqlx::query_scalar(
                "INSERT INTO \"Outbox\" (channel, recipient, body, next_attempt_at)
                 VALUES ('owner', 'owner', $1, greatest(now(), coalesce($2, now())))
                 RETURNING id",
            )
            .bind(text)
            .bind(not_before)
            .fetch_one(&mut *conn)
            .await?
        }
    };
    sqlx::query_scalar(
        "INSERT INTO \"Approval\" (quote_id, token, status, expires_at, notice_id)
         VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
    )
    .bind(quote_id)
    .bind(token_hash)
    .bind(expires_at)
    .bind(notice_id)
    .fetch_one(conn)
    .await
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

/// The quote's total.
pub async fn quote_total(conn: &mut PgConnection, quote_id: Uuid) -> sqlx::Result<Cents> {
    sqlx::query_scalar("SELECT (total * 100)::bigint FROM \"Quote\" WHERE id = $1")
        .bind(quote_id)
        .fetch_one(conn)
        .await
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
    /// A newer estimate replaced the quote: the customer has moved past that price.
    Superseded,
}

/// An approval as `decide` reads it.
#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: Uuid,
    quote_id: Uuid,
    decided_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// Found by its token (whose expiry then counts), not by id.
    by_token: bool,
    superseded: bool,
}

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
    super::conversations::lock(conn, conversation).await?;
    let row: Option<ApprovalRow> = match by {
        ApprovalKey::Id(id) => {
            sqlx::query_as(
                "SELECT a.id, a.quote_id, a.decided_at, a.expires_at, false AS by_token,
                    q.superseded_at IS NOT NULL AS superseded
             FROM \"Approval\" a JOIN \"Quote\" q ON q.id = a.quote_id
             WHERE a.id = $1 FOR UPDATE OF a",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        }
        ApprovalKey::TokenHash(hash) => {
            sqlx::query_as(
                "SELECT a.id, a.quote_id, a.decided_at, a.expires_at, true AS by_token,
                    q.superseded_at IS NOT NULL AS superseded
             FROM \"Approval\" a JOIN \"Quote\" q ON q.id = a.quote_id
             WHERE a.token = $1 FOR UPDATE OF a",
            )
            .bind(hash)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(ApprovalRow {
        id,
        quote_id,
        decided_at,
        expires_at,
        by_token,
        superseded,
    }) = row
    else {
        return Ok(Err(DecisionRefused::Unknown));
    };
    if decided_at.is_some() {
        return Ok(Err(DecisionRefused::AlreadyDecided));
    }
    if superseded {
        return Ok(Err(DecisionRefused::Superseded));
    }
    if by_token && expires_at.is_some_and(|at| at <= Utc::now()) {
        return Ok(Err(DecisionRefused::Expired));
    }
    let (approval_status, quote_status) = match decision {
        Decision::Approve => ("approved", QuoteStatus::Approved),
        Decision::Deny => ("denied", QuoteStatus::Denied),
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
    pub total_cents: Cents,
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
