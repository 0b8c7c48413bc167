//! The outbox: replies and notifications waiting to be sent. Workers claim due rows with
//! `FOR UPDATE SKIP LOCKED`, holding the row's lock while they send, so two workers never send
//! the same row; a failed send is retried later with exponential backoff.
//!
//! A send whose outcome is unknown (the provider may have the message) leaves the row
//! *uncertain*: still `pending`, so that it keeps its place in its recipient's order, with
//! `sent_at` holding when it was first handed to the provider (on a sent row `sent_at` is when
//! the provider accepted it) and `last_error` starting with `uncertain:`. Before an uncertain
//! row is sent again the worker asks the provider whether it has it.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::challenges;
use super::leads::Lead;
use super::rules::{self, Candidate, Verdict};
use super::settings;
use crate::domain::Channel;
use crate::domain::messaging::MessengerSend;
use crate::domain::stages::{OutboxChannel, OutboxKind};

/// The most attempts before a message is marked failed for the operator to look at: with the
/// backoff capped at an hour, about a day of provider trouble.
pub const MAX_ATTEMPTS: i32 = 36;

/// The least wait before an uncertain message is checked: a message the provider accepted as
/// the connection dropped may take a moment to show in its message list.
pub const UNCERTAIN_SETTLE_SECS: f64 = 10.0;

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its id.
    pub id: Uuid,
    /// Where it goes.
    pub channel: OutboxChannel,
    /// Phone number or PSID.
    pub recipient: String,
    /// The text.
    pub body: String,
    /// Attempts so far (before this one).
    pub attempts: i32,
    /// An answer or an unprompted update.
    pub kind: OutboxKind,
    /// When it was first handed to the provider without a clear answer: set, the provider may
    /// already have it.
    pub uncertain_since: Option<DateTime<Utc>>,
    /// On Messenger, how the messaging rules let it go (`None` on the other channels).
    pub messenger: Option<MessengerSend>,
}

/// A claimed message (the oldest pending one for its recipient, so each recipient gets its
/// messages in order): the open transaction holds its row lock until [`Claim::sent`],
/// [`Claim::failed`] or [`Claim::held`].
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    /// The message.
    pub message: Outgoing,
}

/// Claims the oldest due message nobody else is sending, if any, that the messaging rules
/// let go now ([`rules::check`], which every send passes): a message to an opted-out
/// recipient is marked failed, one JunkQuote sends first during the recipient's quiet hours
/// waits for them to end (without keeping the recipient's later replies waiting), and one
/// outside Messenger's window goes by SMS to a proven phone or is left for the operator. A
/// row whose channel or kind this version does not know is held (with the reason) rather
/// than sent or left to block the queue.
pub async fn claim(pool: &PgPool) -> sqlx::Result<Option<Claim>> {
    loop {
        let mut tx = pool.begin().await?;
        let row: Option<OutgoingRow> = sqlx::query_as(
            "SELECT id, channel, recipient, body, attempts, kind, sent_at AS uncertain_since,
                    message_id, conversation_id, sent_by
             FROM \"Outbox\" o
             WHERE status = 'pending' AND next_attempt_at <= now()
               -- in order per recipient; a notice deferred on purpose (never tried, due
               -- later: see `quotes::request_approval`) holds back nothing behind it
               AND NOT EXISTS (SELECT 1 FROM \"Outbox\" e
                               WHERE e.status = 'pending' AND e.recipient = o.recipient
                                 AND e.channel = o.channel AND e.seq < o.seq
                                 AND (e.quiet_until IS NULL OR e.quiet_until <= now())
                                 AND NOT (e.attempts = 0 AND e.next_attempt_at > now()))
             ORDER BY next_attempt_at, seq
             LIMIT 1
             FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        match (row.channel.parse(), row.kind.parse()) {
            (Ok(channel), Ok(kind)) => {
                let mut message = Outgoing {
                    id: row.id,
                    channel,
                    recipient: row.recipient,
                    body: row.body,
                    attempts: row.attempts,
                    kind,
                    uncertain_since: row.uncertain_since,
                    messenger: None,
                };
                let candidate = Candidate {
                    id: row.id,
                    message_id: row.message_id,
                    conversation_id: row.conversation_id,
                    channel,
                    recipient: message.recipient.clone(),
                    kind,
                    sent_by: row.sent_by,
                };
                let settings = settings::load(&mut tx).await?;
                match rules::check(&mut tx, &settings, &candidate, Utc::now()).await? {
                    Verdict::Send(how) => {
                        message.messenger = how;
                        return Ok(Some(Claim { tx, message }));
                    }
                    Verdict::BySms(phone) => {
                        sqlx::query(
                            "UPDATE \"Outbox\" SET channel = 'sms', recipient = $2 WHERE id = $1",
                        )
                        .bind(row.id)
                        .bind(&phone)
                        .execute(&mut *tx)
                        .await?;
                        message.channel = OutboxChannel::Sms;
                        message.recipient = phone;
                        return Ok(Some(Claim { tx, message }));
                    }
                    Verdict::Hold(until) => {
                        sqlx::query(
                            "UPDATE \"Outbox\" SET next_attempt_at = $2, quiet_until = $2
                             WHERE id = $1",
                        )
                        .bind(row.id)
                        .bind(until)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                    }
                    Verdict::Refuse(reason) => {
                        refuse(&mut tx, &candidate, &message.body, &reason).await?;
                        tx.commit().await?;
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(id = %row.id, error = %e, "outbox message held");
                sqlx::query("UPDATE \"Outbox\" SET status = 'held', last_error = $2 WHERE id = $1")
                    .bind(row.id)
                    .bind(e.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
    }
}

/// An outbox row as stored; its channel and kind are parsed by [`claim`].
#[derive(sqlx::FromRow)]
struct OutgoingRow {
    id: Uuid,
    channel: String,
    recipient: String,
    body: String,
    attempts: i32,
    kind: String,
    uncertain_since: Option<DateTime<Utc>>,
    message_id: Option<Uuid>,
    conversation_id: Option<Uuid>,
    sent_by: Option<String>,
}

/// Marks a row the messaging rules refuse as failed, never to be sent, and says so in its
/// conversation's thread, where the operator sees what did not go out.
async fn refuse(
    conn: &mut PgConnection,
    row: &Candidate,
    body: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE \"Outbox\" SET status = 'failed', last_error = $2 WHERE id = $1")
        .bind(row.id)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    if let Some(conversation_id) = row.conversation_id {
        sqlx::query(
            "INSERT INTO \"Message\" (conversation_id, role, content, metadata, created_at)
             VALUES ($1, 'system', $2, jsonb_build_object('unsent', true, 'reason', $3::text),
                     clock_timestamp())",
        )
        .bind(conversation_id)
        .bind(format!("Not sent ({reason}): {body}"))
        .bind(reason)
        .execute(conn)
        .await?;
    }
    Ok(())
}

impl Claim {
    /// The provider accepted it.
    pub async fn sent(mut self, provider_message_id: Option<&str>) -> sqlx::Result<()> {
        // An owner notification carries a live approval token, a code text a one-time code:
        // neither is kept once delivered.
        sqlx::query(
            "UPDATE \"Outbox\" SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                    provider_message_id = $2, last_error = NULL,
                    body = CASE WHEN channel = 'owner' THEN '(approval request delivered)'
                                WHEN starts_with(dedupe_key, $3) THEN $4 ELSE body END
             WHERE id = $1",
        )
        .bind(self.message.id)
        .bind(provider_message_id)
        .bind(challenges::CODE_TEXT_KEY)
        .bind(challenges::REDACTED)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }

    /// Sending failed: try again after a backoff, or give up after [`MAX_ATTEMPTS`]. An
    /// uncertain message stays uncertain (a later failure says nothing about the earlier try).
    pub async fn failed(self, error: &str) -> sqlx::Result<DateTime<Utc>> {
        let error = match self.message.uncertain_since {
            Some(_) => format!("uncertain: {}", redact_numbers(error)),
            None => redact_numbers(error),
        };
        self.retry_later(&error, None, 0.0).await
    }

    /// The provider may have the message (first handed to it at `attempted_at`): check with it
    /// before sending again, after a backoff (at least [`UNCERTAIN_SETTLE_SECS`]).
    pub async fn uncertain(
        self,
        error: &str,
        attempted_at: DateTime<Utc>,
    ) -> sqlx::Result<DateTime<Utc>> {
        let error = format!("uncertain: {}", redact_numbers(error));
        self.retry_later(&error, Some(attempted_at), UNCERTAIN_SETTLE_SECS)
            .await
    }

    async fn retry_later(
        mut self,
        error: &str,
        attempted_at: Option<DateTime<Utc>>,
        min_delay_secs: f64,
    ) -> sqlx::Result<DateTime<Utc>> {
        let attempts = self.message.attempts + 1;
        let delay_secs = 2f64.powi(attempts.min(12)).min(3600.0).max(min_delay_secs);
        let status = if attempts >= MAX_ATTEMPTS {
            "failed"
        } else {
            "pending"
        };
        // The first uncertain attempt is kept: the provider's list is searched from then on.
        let next: DateTime<Utc> = sqlx::query_scalar(
            "UPDATE \"Outbox\" SET attempts = $2, status = $3, last_error = $4,
                    next_attempt_at = now() + make_interval(secs => $5),
                    sent_at = coalesce(sent_at, $6)
             WHERE id = $1 RETURNING next_attempt_at",
        )
        .bind(self.message.id)
        .bind(attempts)
        .bind(status)
        .bind(error)
        .bind(delay_secs)
        .bind(attempted_at)
        .fetch_one(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(next)
    }

    /// The first of `candidates` (provider message ids, in order) that no other outbox row has
    /// recorded as its own: a message with an identical text sent earlier to the same recipient
    /// is not this one.
    pub async fn first_unrecorded(
        &mut self,
        candidates: &[String],
    ) -> sqlx::Result<Option<String>> {
        if candidates.is_empty() {
            return Ok(None);
        }
        sqlx::query_scalar(
            "SELECT c FROM unnest($1::text[]) WITH ORDINALITY AS t(c, n)
             WHERE NOT EXISTS (SELECT 1 FROM \"Outbox\"
                               WHERE provider_message_id = t.c AND id <> $2)
             ORDER BY n LIMIT 1",
        )
        .bind(candidates)
        .bind(self.message.id)
        .fetch_optional(&mut *self.tx)
        .await
    }

    /// The provider refused it for good (an invalid number): stop trying.
    pub async fn gave_up(mut self, error: &str) -> sqlx::Result<()> {
        let error = redact_numbers(error);
        sqlx::query(
            "UPDATE \"Outbox\" SET status = 'failed', attempts = attempts + 1, last_error = $2
             WHERE id = $1",
        )
        .bind(self.message.id)
        .bind(error)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }

    /// The carrier refused it because the recipient opted out (Twilio error 21610): it is not
    /// tried again, and the number is recorded as opted out, so nothing more is queued to it.
    pub async fn opted_out(mut self, error: &str) -> sqlx::Result<()> {
        if self.message.channel == OutboxChannel::Sms {
            rules::opt_out(
                &mut self.tx,
                Channel::Sms,
                &self.message.recipient,
                rules::reason::CARRIER,
                None,
            )
            .await?;
        }
        self.gave_up(error).await
    }

    /// No way to send it is configured: keep it, marked held, until one is.
    pub async fn held(mut self, reason: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE \"Outbox\" SET status = 'held', last_error = $2 WHERE id = $1")
            .bind(self.message.id)
            .bind(reason)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await
    }
}

/// Puts held messages of `channels` back in the queue (their credentials are now configured).
pub async fn release_held(pool: &PgPool, channels: &[OutboxChannel]) -> sqlx::Result<u64> {
    let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let done = sqlx::query(
        "UPDATE \"Outbox\" SET status = 'pending', next_attempt_at = now()
         WHERE status = 'held' AND channel = ANY($1)",
    )
    .bind(channels)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// A provider's error with phone numbers (runs of 7 or more digits) masked, fit for logs.
pub fn redact_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 7 {
            out.push_str("[number]");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
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
    reply_as(conn, conversation_id, in_reply_to, lead, text, None).await
}

/// [`reply`], written by `sent_by` (a console user) or, with `None`, by the assistant. Nothing
/// is queued to a recipient who opted out: the message stays in the thread, marked unsent.
pub async fn reply_as(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    in_reply_to: Option<Uuid>,
    lead: &Lead,
    text: &str,
    sent_by: Option<&str>,
) -> sqlx::Result<Uuid> {
    // Web chat replies are read from the thread; the other channels' go through the outbox.
    let mut recipient = lead
        .recipient
        .as_deref()
        .filter(|_| lead.channel != Channel::Web);
    let mut unsent = None;
    if let Some(to) = recipient
        && let Some(reason) = rules::opted_out(conn, lead.channel, to).await?
    {
        recipient = None;
        unsent = Some(format!("opted out: {reason}"));
    }
    // Unprompted messages (reminders, the owner's decision) are what JunkQuote says first:
    // the messaging rules hold them in quiet hours and outside Messenger's window.
    let kind = if in_reply_to.is_some() {
        OutboxKind::Reply
    } else {
        OutboxKind::Update
    };
    // One statement: the message, the conversation's time, and the outbox row.
    sqlx::query_scalar(
        "WITH message AS (
             INSERT INTO \"Message\" (conversation_id, role, content, metadata, created_at)
             VALUES ($1, 'assistant', $2,
                     CASE WHEN $3::uuid IS NULL THEN '{}'::jsonb
                          ELSE jsonb_build_object('in_reply_to', $3::uuid) END
                     || CASE WHEN $9::text IS NULL THEN '{}'::jsonb
                             ELSE jsonb_build_object('unsent', $9::text) END,
                     clock_timestamp())
             RETURNING id
         ), conversation AS (
             UPDATE \"Conversation\" SET last_message_at = now(), updated_at = now()
             WHERE id = $1
         ), outbox AS (
             INSERT INTO \"Outbox\" (conversation_id, message_id, channel, recipient, body, kind,
                                     sent_by)
             SELECT $1, id, $4, $5, $6, $7, $8 FROM message WHERE $5::text IS NOT NULL
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
    .bind(sent_by)
    .bind(unsent)
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

/// Messages waiting, per channel and status (`pending` or `held`): the outbox's backlog, read
/// at each metrics scrape. Channel and status are the stored names.
pub async fn backlog(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT channel, status, count(*) FROM \"Outbox\"
         WHERE status IN ('pending', 'held') GROUP BY channel, status",
    )
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn phone_numbers_are_masked_in_provider_errors() {
        assert_eq!(
            super::redact_numbers("The 'To' number +14045550123 is not valid (21211)"),
            "The 'To' number +[number] is not valid (21211)"
        );
    }
}
