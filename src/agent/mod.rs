//! The conversation engine: answers a conversation's new messages, one conversation at a time
//! and each conversation's messages in the order they arrived.

pub mod rules;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::schedule::Window;
use crate::store::{jobs, sales, settings};

/// How often answering one message may fail before it is set aside for the owner, so that
/// the conversation can go on.
pub const MAX_ANSWER_ATTEMPTS: i32 = 5;

/// Answers every stored but unanswered message of a conversation, in arrival order, in one
/// transaction. The conversation's row lock makes concurrent callers take turns, so a message is
/// answered once, after the ones before it. A message whose answer fails is rolled back alone
/// (a savepoint), retried later with backoff, and after [`MAX_ANSWER_ATTEMPTS`] set aside with
/// the owner told; the messages after it wait, to keep the order. Returns how many messages were
/// answered.
pub async fn process(pool: &PgPool, conversation_id: Uuid) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM \"Conversation\" WHERE id = $1 FOR UPDATE")
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?;
    let pending: Vec<(String, String, Uuid, String, i32, i32)> = sqlx::query_as(
        "SELECT i.provider, i.provider_message_id, m.id, m.content, i.attempts,
                coalesce(jsonb_array_length(m.metadata->'photos'), 0)
         FROM \"InboundMessage\" i JOIN \"Message\" m ON m.id = i.message_id
         WHERE i.conversation_id = $1 AND i.processed_at IS NULL
         ORDER BY i.seq",
    )
    .bind(conversation_id)
    .fetch_all(&mut *tx)
    .await?;
    if pending.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let settings = settings::load(&mut tx).await?;
    let mut lead: Option<sales::Lead> = None;
    let mut answered = 0;
    for (provider, provider_message_id, message_id, text, attempts, photos) in &pending {
        let key = (provider.as_str(), provider_message_id.as_str());
        // Paused: the message is kept and marked read, and nobody is answered automatically.
        if settings.paused {
            mark_processed(&mut tx, key, None).await?;
            continue;
        }
        let before = lead.clone();
        let mut step = sqlx::Connection::begin(&mut *tx).await?;
        let message = Incoming {
            id: *message_id,
            text,
            photos: *photos,
        };
        let result = answer(&mut step, &settings, &mut lead, conversation_id, message).await;
        match result {
            Ok(()) => {
                step.commit().await?;
                mark_processed(&mut tx, key, None).await?;
                answered += 1;
            }
            Err(e) => {
                step.rollback().await?;
                lead = before;
                let attempts = attempts + 1;
                tracing::warn!(conversation = %conversation_id, attempts, error = %e, "answering a message failed");
                if attempts >= MAX_ANSWER_ATTEMPTS {
                    mark_processed(&mut tx, key, Some(&e.to_string())).await?;
                    sales::notify_owner(
                        &mut tx,
                        &format!(
                            "A customer message could not be answered automatically after {attempts} tries; please reply yourself (conversation {conversation_id})."
                        ),
                    )
                    .await?;
                    continue;
                }
                sqlx::query(
                    "UPDATE \"InboundMessage\" SET attempts = $3, last_error = $4,
                            retry_at = now() + make_interval(secs => $5)
                     WHERE provider = $1 AND provider_message_id = $2",
                )
                .bind(key.0)
                .bind(key.1)
                .bind(attempts)
                .bind(e.to_string())
                .bind(2f64.powi(attempts).min(300.0))
                .execute(&mut *tx)
                .await?;
                // The messages after it wait for it: answers keep the order of the questions.
                break;
            }
        }
    }
    if let Some(lead) = &lead {
        sales::save_lead(&mut tx, lead).await?;
    }
    tx.commit().await?;
    Ok(answered)
}

/// A customer message to answer.
struct Incoming<'a> {
    id: Uuid,
    text: &'a str,
    photos: i32,
}

/// Answers one message: the lead is loaded on first use.
async fn answer(
    conn: &mut sqlx::PgConnection,
    settings: &settings::Settings,
    lead: &mut Option<sales::Lead>,
    conversation_id: Uuid,
    message: Incoming<'_>,
) -> sqlx::Result<()> {
    if lead.is_none() {
        *lead = Some(sales::lead_of_conversation(conn, conversation_id).await?);
    }
    let Some(lead) = lead.as_mut() else {
        return Err(sqlx::Error::RowNotFound);
    };
    let replies = rules::respond(
        conn,
        settings,
        lead,
        message.text,
        message.photos > 0,
        Utc::now(),
    )
    .await?;
    for reply in replies {
        sales::reply(conn, conversation_id, Some(message.id), lead, &reply).await?;
    }
    Ok(())
}

async fn mark_processed(
    conn: &mut sqlx::PgConnection,
    key: (&str, &str),
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"InboundMessage\" SET processed_at = now(), last_error = coalesce($3, last_error)
         WHERE provider = $1 AND provider_message_id = $2",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the owner's decision on an approval and tells the customer, in one transaction.
pub async fn decide(
    pool: &PgPool,
    key: sales::ApprovalKey<'_>,
    decision: sales::Decision,
    approver: &str,
) -> sqlx::Result<Result<(), sales::DecisionRefused>> {
    let mut tx = pool.begin().await?;
    let conversation_id = match sales::decide(&mut tx, key, decision, approver).await? {
        Ok(id) => id,
        Err(refused) => {
            tx.rollback().await?;
            return Ok(Err(refused));
        }
    };
    let settings = settings::load(&mut tx).await?;
    let mut lead = sales::lead_of_conversation(&mut tx, conversation_id).await?;
    let approved = decision == sales::Decision::Approve;
    let reply =
        rules::approval_decided(&mut tx, &settings, &mut lead, approved, Utc::now()).await?;
    if !settings.paused {
        sales::reply(&mut tx, conversation_id, None, &lead, &reply).await?;
    }
    sales::save_lead(&mut tx, &lead).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Sends one due pickup reminder on the customer's channel, if one is due; returns whether one
/// was. Paused, nothing is sent (and nothing is marked sent, so it goes out once resumed).
pub async fn remind_one(pool: &PgPool) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let settings = settings::load(&mut tx).await?;
    if settings.paused {
        tx.commit().await?;
        return Ok(false);
    }
    let Some(candidate) = jobs::next_due_reminder(&mut tx, &settings.reminder_hours).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    sqlx::query("SELECT 1 FROM \"Conversation\" WHERE id = $1 FOR UPDATE")
        .bind(candidate.conversation_id)
        .execute(&mut *tx)
        .await?;
    // Another worker may have sent it meanwhile (or hold it): then there is nothing to do.
    let Some(due) =
        jobs::claim_due_reminder(&mut tx, &settings.reminder_hours, candidate.job_id).await?
    else {
        tx.commit().await?;
        return Ok(false);
    };
    let mut lead = sales::lead_of_conversation(&mut tx, due.conversation_id).await?;
    let window = Window {
        start: due.window_start,
        end: due.window_end,
    };
    let text = format!(
        "Reminder: your junk pickup is {} at {}. Reply here if anything changes.",
        window.describe(settings.hours.time_zone),
        due.address.as_deref().unwrap_or("your address")
    );
    sales::reply(&mut tx, due.conversation_id, None, &lead, &text).await?;
    jobs::reminder_sent(&mut tx, due.job_id, due.hours).await?;
    lead.stage = "reminding".to_owned();
    sales::save_lead(&mut tx, &lead).await?;
    tx.commit().await?;
    Ok(true)
}
