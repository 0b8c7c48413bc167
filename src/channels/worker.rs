//! Background work that must survive restarts, so it lives in the database: sending the
//! outbox, answering messages stored by a request that died before answering them, reminders,
//! and approvals that expired. Any number of servers can run these loops side by side.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use super::error::SendError;
use super::messenger::MessengerClient;
use super::twilio::TwilioClient;
use crate::agent::{self, Agent};
use crate::domain::money::Cents;
use crate::domain::stages::OutboxKind;
use crate::domain::token::{hash_token, new_token};
use crate::store::{inbox, outbox, quotes, settings};

/// How often an idle loop looks for work.
const IDLE: Duration = Duration::from_millis(250);

/// Where outbox messages can go.
#[derive(Debug, Clone, Default)]
pub struct Senders {
    /// SMS through Twilio, when configured.
    pub twilio: Option<TwilioClient>,
    /// Messenger's Send API, when configured.
    pub messenger: Option<MessengerClient>,
    /// The owner's phone, for approval requests and alerts.
    pub owner_phone: Option<String>,
}

/// Sends due outbox messages until `stop` turns true.
pub async fn send_outbox(pool: PgPool, senders: Senders, mut stop: watch::Receiver<bool>) {
    if senders.messenger.is_some() {
        let _ = outbox::release_held(&pool, &["messenger"]).await;
    }
    if senders.twilio.is_some() {
        let channels: &[&str] = if senders.owner_phone.is_some() {
            &["sms", "owner"]
        } else {
            &["sms"]
        };
        match outbox::release_held(&pool, channels).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "SMS credentials configured: held replies queued again"
            ),
            Err(e) => tracing::warn!(error = %e, "could not release held replies"),
        }
    }
    while !*stop.borrow() {
        match send_one(&pool, &senders).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "outbox: database error"),
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Sends one due message, if there is one; returns whether there was.
pub async fn send_one(pool: &PgPool, senders: &Senders) -> sqlx::Result<bool> {
    let Some(mut claim) = outbox::claim(pool).await? else {
        return Ok(false);
    };
    let id = claim.message.id;
    // Owner notifications go to the owner's phone by SMS.
    let recipient = claim.message.recipient.clone();
    let route = match claim.message.channel.as_str() {
        "sms" => senders.twilio.as_ref().map(|c| Route::Sms(c, recipient)),
        "owner" => senders
            .twilio
            .as_ref()
            .zip(senders.owner_phone.clone())
            .map(|(c, phone)| Route::Sms(c, phone)),
        "messenger" => senders
            .messenger
            .as_ref()
            .map(|c| Route::Messenger(c, recipient)),
        _ => None,
    };
    let Some(route) = route else {
        // Bodies and numbers stay out of the log; the row keeps them.
        tracing::info!(%id, channel = %claim.message.channel, "no credentials for this channel: message kept in the outbox");
        claim
            .held("no credentials configured for this channel")
            .await?;
        return Ok(true);
    };
    let body = claim.message.body.clone();
    // An earlier try may have reached Twilio: ask it before sending again. (Messenger cannot be
    // asked; its sends are at-least-once, see `MessengerClient::send`.)
    if let (Some(since), Route::Sms(client, to)) = (claim.message.uncertain_since, &route) {
        match client.find_sent(to, &body, since).await {
            Ok(candidates) => {
                if let Some(sid) = claim.first_unrecorded(&candidates).await? {
                    tracing::info!(%id, "an earlier try had reached Twilio: recorded as sent");
                    claim.sent(Some(&sid)).await?;
                    return Ok(true);
                }
            }
            Err(e) => {
                let error = e.to_string();
                let next = claim.failed(&error).await?;
                tracing::warn!(%id, error = %outbox::redact_numbers(&error), %next, "could not check whether an earlier try went out; will check again");
                return Ok(true);
            }
        }
    }
    let attempted_at = chrono::Utc::now();
    let result = match &route {
        Route::Sms(client, to) => client.send(to, &body).await,
        Route::Messenger(client, psid) => {
            client
                .send(psid, &body, claim.message.kind == OutboxKind::Update)
                .await
        }
    };
    match result {
        Ok(sid) => {
            tracing::info!(%id, "reply sent");
            claim.sent(Some(&sid)).await?;
        }
        Err(SendError::Retryable(e)) => {
            let next = claim.failed(&e).await?;
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), %next, "send failed; will retry");
        }
        Err(SendError::Uncertain(e)) => {
            let next = claim.uncertain(&e, attempted_at).await?;
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), %next, "no answer from the provider; will check before sending again");
        }
        Err(SendError::Permanent(e)) => {
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), "send refused; giving up");
            claim.gave_up(&e).await?;
        }
    }
    Ok(true)
}

enum Route<'a> {
    Sms(&'a TwilioClient, String),
    Messenger(&'a MessengerClient, String),
}

/// Answers messages left unanswered (their request died after storing them) until `stop`.
pub async fn answer_leftovers(agent: Agent, pool: PgPool, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match inbox::unanswered(&pool, 5, 20).await {
            Ok(conversations) => {
                for id in conversations {
                    if let Err(e) = agent::process(&agent, &pool, id).await {
                        tracing::warn!(conversation = %id, error = %e, "could not answer");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for unanswered messages failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Sends pickup reminders as they fall due, until `stop`.
pub async fn send_reminders(pool: PgPool, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match agent::remind_one(&pool).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reminders: database error"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// How long the owner's renewed approval link works: as long as the first.
const RENEWED_APPROVAL_HOURS: i64 = crate::agent::rules::APPROVAL_VALID_HOURS;

/// Renews approvals whose link expired, as they expire, until `stop`.
pub async fn renew_expired_approvals(pool: PgPool, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match renew_one(&pool).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "approvals: database error"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Handles one approval whose link expired before the owner decided, if there is one; returns
/// whether there was.
///
/// A small company's owner who missed the request (out on a job, the text buried) wants a
/// nudge, not a customer lost in silence, and not a nag either: so the owner is told once
/// that the quote is still waiting, with a fresh link valid another 48 hours (a new approval of
/// the same quote; the old link keeps answering "expired"). If that one expires too nothing
/// more is sent: the quote stays in the operator's list (`GET /api/v1/approvals`), where it
/// can still be decided. Paused, nothing is done until the switch is off.
pub async fn renew_one(pool: &PgPool) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let settings = settings::load(&mut tx).await?;
    if settings.paused {
        tx.commit().await?;
        return Ok(false);
    }
    let Some(expired) = quotes::claim_expired_approval(&mut tx).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    let token = new_token();
    let expires_at = chrono::Utc::now() + chrono::TimeDelta::hours(RENEWED_APPROVAL_HOURS);
    let reasons = if expired.reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", expired.reasons.join("; "))
    };
    let text = format!(
        "Still waiting for you: the {} quote{reasons} asked on {} has not been approved or \
         denied, and its link has expired. The customer is waiting. Approve or deny within \
         {RENEWED_APPROVAL_HOURS} h: POST /api/approvals/{token} with \
         {{\"decision\": \"approve\"}} or {{\"decision\": \"deny\"}}.",
        Cents::new(expired.total_cents),
        expired
            .created_at
            .with_timezone(&settings.hours.time_zone)
            .format("%b %-d"),
    );
    if quotes::renew_approval(&mut tx, &expired, &hash_token(&token), expires_at, &text).await? {
        tracing::info!(approval = %expired.id, "approval expired: the owner is asked once more");
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(true)
}
