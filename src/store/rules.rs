//! The messaging rules as storage keeps them (DESIGN §4): who opted out, and [`check`], the
//! one gate every outbox message passes when it is claimed for sending, whoever queued it.
//! What the rules decide is in `domain::messaging`; this applies it to rows.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::settings::Settings;
use crate::domain::Channel;
use crate::domain::messaging::{MessengerSend, messenger_send};
use crate::domain::stages::{OutboxChannel, OutboxKind};

/// Why a recipient opted out (`OptOut.reason`).
pub mod reason {
    /// A carrier keyword (STOP, UNSUBSCRIBE, …): Twilio blocks sends itself.
    pub const KEYWORD: &str = "texted a carrier opt-out keyword";
    /// Consent revoked in the customer's own words.
    pub const WORDS: &str = "asked in their own words not to be messaged";
    /// Twilio refused a send with error 21610.
    pub const CARRIER: &str = "the carrier reports the number opted out (Twilio error 21610)";
}

/// Records that `recipient` on `channel` opted out (`reason`: one of [`reason`]), keeping
/// the first reason when already recorded. `confirmation` is the message (the one plain
/// confirmation of a revocation in words) that may still be sent.
pub async fn opt_out(
    conn: &mut PgConnection,
    channel: Channel,
    recipient: &str,
    reason: &str,
    confirmation: Option<Uuid>,
) -> sqlx::Result<()> {
    let recorded = sqlx::query(
        "INSERT INTO \"OptOut\" (channel, recipient, reason, confirmation_id)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (channel, recipient) DO NOTHING",
    )
    .bind(channel.as_str())
    .bind(recipient)
    .bind(reason)
    .bind(confirmation)
    .execute(conn)
    .await?;
    if recorded.rows_affected() > 0 {
        let how = match reason {
            reason::KEYWORD => "keyword",
            reason::WORDS => "words",
            reason::CARRIER => "carrier",
            _ => "other",
        };
        metrics::counter!("junkquote_opt_outs_total", "channel" => channel.as_str(), "how" => how)
            .increment(1);
    }
    Ok(())
}

/// Lifts an opt-out (START, YES, UNSTOP); whether there was one.
pub async fn opt_in(
    conn: &mut PgConnection,
    channel: Channel,
    recipient: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM \"OptOut\" WHERE channel = $1 AND recipient = $2")
        .bind(channel.as_str())
        .bind(recipient)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Why `recipient` on `channel` opted out, if they did.
pub async fn opted_out(
    conn: &mut PgConnection,
    channel: Channel,
    recipient: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT reason FROM \"OptOut\" WHERE channel = $1 AND recipient = $2")
        .bind(channel.as_str())
        .bind(recipient)
        .fetch_optional(conn)
        .await
}

/// Why the customer of conversation `id` opted out on its channel, if they did (what keeps
/// an operator from writing to them).
pub async fn conversation_opted_out(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT o.reason FROM \"Conversation\" c
         JOIN \"OptOut\" o ON o.channel = c.channel::text AND o.recipient = c.external_id
         WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A claimed outbox row as the rules see it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The row.
    pub id: Uuid,
    /// The assistant's message it carries, if any.
    pub message_id: Option<Uuid>,
    /// Its conversation, if any (owner notifications have none).
    pub conversation_id: Option<Uuid>,
    /// Where it goes.
    pub channel: OutboxChannel,
    /// Phone number or PSID.
    pub recipient: String,
    /// An answer or something JunkQuote says first.
    pub kind: OutboxKind,
    /// The console user who wrote it; `None` for the assistant.
    pub sent_by: Option<String>,
}

/// What the rules make of a claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; on Messenger, as said.
    Send(Option<MessengerSend>),
    /// Never send it (the row is marked failed with the reason).
    Refuse(String),
    /// Not before then: the recipient's quiet hours.
    Hold(DateTime<Utc>),
    /// Send it by SMS to this proven phone instead (outside Messenger's window).
    BySms(String),
}

/// The messaging rules applied to one claimed row at `now`: an opted-out recipient gets
/// nothing (but the one confirmation of their revocation), what JunkQuote sends first waits
/// out the recipient's quiet hours, and Messenger keeps to Meta's window: `RESPONSE` or
/// `UPDATE` within 24 hours of the customer's last message, a person's reply with
/// `HUMAN_AGENT` within 7 days, else SMS to a proven phone, else the operator.
pub async fn check(
    conn: &mut PgConnection,
    settings: &Settings,
    row: &Candidate,
    now: DateTime<Utc>,
) -> sqlx::Result<Verdict> {
    // The owner is no customer: approvals and alerts reach them at once.
    let channel = match row.channel {
        OutboxChannel::Owner => return Ok(Verdict::Send(None)),
        OutboxChannel::Sms => Channel::Sms,
        OutboxChannel::Messenger => Channel::Messenger,
    };
    let blocked: Option<Option<Uuid>> = sqlx::query_scalar(
        "SELECT confirmation_id FROM \"OptOut\" WHERE channel = $1 AND recipient = $2",
    )
    .bind(channel.as_str())
    .bind(&row.recipient)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(confirmation) = blocked
        && (confirmation.is_none() || confirmation != row.message_id)
    {
        return Ok(Verdict::Refuse(
            "not sent: the recipient opted out".to_owned(),
        ));
    }
    let first = row.kind == OutboxKind::Update && row.sent_by.is_none();
    if first
        && let Some(opening) = settings
            .messaging
            .sending_hours
            .next_opening(now, settings.hours.time_zone)
    {
        return Ok(Verdict::Hold(opening));
    }
    if channel != Channel::Messenger {
        return Ok(Verdict::Send(None));
    }
    let last: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(m.created_at) FROM \"Conversation\" c
         JOIN \"Message\" m ON m.conversation_id = c.id AND m.role = 'user'
         WHERE c.channel = 'messenger' AND c.external_id = $1",
    )
    .bind(&row.recipient)
    .fetch_one(&mut *conn)
    .await?;
    let how = messenger_send(
        last,
        now,
        row.kind == OutboxKind::Reply,
        row.sent_by.is_some(),
    );
    if how != MessengerSend::Elsewhere {
        return Ok(Verdict::Send(Some(how)));
    }
    let phone: Option<String> = sqlx::query_scalar(
        "SELECT i.value FROM \"Conversation\" c
         JOIN \"CustomerIdentity\" i ON i.customer_id = c.customer_id
         WHERE c.id = $1 AND i.kind = 'phone' AND i.verified_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM \"OptOut\" o
                           WHERE o.channel = 'sms' AND o.recipient = i.value)
         ORDER BY i.verified_at, i.created_at LIMIT 1",
    )
    .bind(row.conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match phone {
        Some(phone) => Verdict::BySms(phone),
        None => Verdict::Refuse(
            "outside Messenger's 24-hour window and no proven phone: left for the operator"
                .to_owned(),
        ),
    })
}
