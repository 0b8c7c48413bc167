//! Background work that must survive restarts, so it lives in the database: sending the
//! outbox, and answering messages stored by a request that died before answering them. Any
//! number of servers can run these loops side by side.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use super::messenger::MessengerClient;
use super::twilio::{SendError, TwilioClient};
use crate::agent;
use crate::store::{inbox, outbox};

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
                .send(psid, &body, claim.message.kind == "update")
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
pub async fn answer_leftovers(pool: PgPool, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        match inbox::unanswered(&pool, 5, 20).await {
            Ok(conversations) => {
                for id in conversations {
                    if let Err(e) = agent::process(&pool, id).await {
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
