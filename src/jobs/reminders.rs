//! Pickup reminders, sent on the customer's channel at the configured hours before the window.

use std::time::Duration;

use sqlx::PgPool;

use super::{Job, Step};
use crate::domain::schedule::Window;
use crate::domain::stages::Stage;
use crate::store::{conversations, jobs, leads, outbox, settings};

/// The reminder job.
pub fn job() -> Job {
    Job::new("reminders", Duration::from_secs(1), |pool| async move {
        remind_one(&pool).await.map(Step::from)
    })
    .pausable()
}

/// Sends one due pickup reminder on the customer's channel, if one is due; returns whether one
/// was. (The job waits while paused: nothing is sent or marked sent, so it goes out once
/// resumed.)
pub async fn remind_one(pool: &PgPool) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let settings = settings::load(&mut tx).await?;
    let Some(candidate) = jobs::next_due_reminder(&mut tx, &settings.reminder_hours).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    conversations::lock(&mut tx, candidate.conversation_id).await?;
    // Another worker may have sent it meanwhile (or hold it): then there is nothing to do.
    let Some(due) =
        jobs::claim_due_reminder(&mut tx, &settings.reminder_hours, candidate.job_id).await?
    else {
        tx.commit().await?;
        return Ok(false);
    };
    let mut lead = leads::lead_of_conversation(&mut tx, due.conversation_id).await?;
    let window = Window {
        start: due.window_start,
        end: due.window_end,
    };
    let text = format!(
        "Reminder: your junk pickup is {} at {}. Reply here if anything changes.",
        window.describe(settings.hours.time_zone),
        due.address.as_deref().unwrap_or("your address")
    );
    outbox::reply(&mut tx, due.conversation_id, None, &lead, &text).await?;
    jobs::reminder_sent(&mut tx, due.job_id, due.hours).await?;
    lead.stage = Stage::Reminding;
    leads::save_lead(&mut tx, &lead).await?;
    tx.commit().await?;
    Ok(true)
}
