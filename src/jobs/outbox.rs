//! Sending the outbox: replies and notifications leave through the provider's API, each row
//! once, in order per recipient; a send whose outcome is unknown is checked with the provider
//! before it is tried again. Messages for a channel without credentials are held, and released
//! when the credentials are there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use super::{Job, Step};
use crate::channels::error::SendError;
use crate::channels::messenger::MessengerClient;
use crate::channels::twilio::TwilioClient;
use crate::domain::messaging::MessengerSend;
use crate::domain::stages::OutboxChannel;
use crate::store::outbox;

/// The outbox job: sends due messages with `senders`. Its first step puts back in the queue
/// the messages held for want of the credentials that are now configured (and fails, to be
/// tried again, until that has worked).
pub fn job(senders: Senders) -> Job {
    let senders = Arc::new(senders);
    let released = Arc::new(AtomicBool::new(false));
    Job::new("outbox", Duration::from_millis(250), move |pool| {
        let senders = senders.clone();
        let released = released.clone();
        async move {
            if !released.load(Ordering::Acquire) {
                release_held(&pool, &senders).await?;
                released.store(true, Ordering::Release);
            }
            Ok::<_, sqlx::Error>(if send_one(&pool, &senders).await? {
                Step::Worked
            } else {
                Step::Idle
            })
        }
    })
}

/// Queues again the held messages of every channel `senders` can now reach.
async fn release_held(pool: &PgPool, senders: &Senders) -> sqlx::Result<()> {
    let mut channels = Vec::new();
    if senders.messenger.is_some() {
        channels.push(OutboxChannel::Messenger);
    }
    if senders.twilio.is_some() {
        channels.push(OutboxChannel::Sms);
        if senders.owner_phone.is_some() {
            channels.push(OutboxChannel::Owner);
        }
    }
    if channels.is_empty() {
        return Ok(());
    }
    let released = outbox::release_held(pool, &channels).await?;
    if released > 0 {
        tracing::info!(
            count = released,
            "credentials configured: held messages queued again"
        );
    }
    Ok(())
}

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

/// Sends one due message, if there is one; returns whether there was.
pub async fn send_one(pool: &PgPool, senders: &Senders) -> sqlx::Result<bool> {
    let Some(mut claim) = outbox::claim(pool).await? else {
        return Ok(false);
    };
    let id = claim.message.id;
    let channel = claim.message.channel;
    // Owner notifications go to the owner's phone by SMS.
    let recipient = claim.message.recipient.clone();
    let route = match claim.message.channel {
        OutboxChannel::Sms => senders.twilio.as_ref().map(|c| Route::Sms(c, recipient)),
        OutboxChannel::Owner => senders
            .twilio
            .as_ref()
            .zip(senders.owner_phone.clone())
            .map(|(c, phone)| Route::Sms(c, phone)),
        OutboxChannel::Messenger => senders
            .messenger
            .as_ref()
            .map(|c| Route::Messenger(c, recipient)),
    };
    let Some(route) = route else {
        // Bodies and numbers stay out of the log; the row keeps them.
        tracing::info!(%id, channel = %claim.message.channel, "no credentials for this channel: message kept in the outbox");
        claim
            .held("no credentials configured for this channel")
            .await?;
        count(channel, "held");
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
                    count(channel, "sent");
                    return Ok(true);
                }
            }
            Err(e) => {
                let error = e.to_string();
                let outcome = retry_outcome(claim.message.attempts);
                let next = claim.failed(&error).await?;
                count(channel, outcome);
                tracing::warn!(%id, error = %outbox::redact_numbers(&error), %next, "could not check whether an earlier try went out; will check again");
                return Ok(true);
            }
        }
    }
    let attempted_at = chrono::Utc::now();
    let result = match &route {
        Route::Sms(client, to) => client.send(to, &body).await,
        Route::Messenger(client, psid) => {
            // The claim passed the messaging rules, which say how it may go.
            let how = claim.message.messenger.unwrap_or(MessengerSend::Response);
            client.send(psid, &body, how).await
        }
    };
    match result {
        Ok(sid) => {
            tracing::info!(%id, "reply sent");
            claim.sent(Some(&sid)).await?;
            count(channel, "sent");
        }
        Err(SendError::Retryable(e)) => {
            let outcome = retry_outcome(claim.message.attempts);
            let next = claim.failed(&e).await?;
            count(channel, outcome);
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), %next, "send failed; will retry");
        }
        Err(SendError::Uncertain(e)) => {
            let outcome = match retry_outcome(claim.message.attempts) {
                "failed" => "failed",
                _ => "uncertain",
            };
            let next = claim.uncertain(&e, attempted_at).await?;
            count(channel, outcome);
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), %next, "no answer from the provider; will check before sending again");
        }
        Err(SendError::OptedOut(e)) => {
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), "the recipient opted out with the carrier; not retried");
            claim.opted_out(&e).await?;
            count(channel, "failed");
        }
        Err(SendError::Permanent(e)) => {
            tracing::warn!(%id, error = %outbox::redact_numbers(&e), "send refused; giving up");
            claim.gave_up(&e).await?;
            count(channel, "failed");
        }
    }
    Ok(true)
}

/// Counts one send's `outcome` for `/metrics`: sent, held (no credentials), retrying (a
/// failure tried again later), uncertain (checked with the provider first), failed (given up).
fn count(channel: OutboxChannel, outcome: &'static str) {
    metrics::counter!("junkquote_outbox_messages_total", "channel" => channel.as_str(), "outcome" => outcome)
        .increment(1);
}

/// How a failed try of a message tried `attempts` times before ends: tried again later, or
/// given up at the last of [`outbox::MAX_ATTEMPTS`].
fn retry_outcome(attempts: i32) -> &'static str {
    if attempts + 1 >= outbox::MAX_ATTEMPTS {
        "failed"
    } else {
        "retrying"
    }
}

enum Route<'a> {
    Sms(&'a TwilioClient, String),
    Messenger(&'a MessengerClient, String),
}
