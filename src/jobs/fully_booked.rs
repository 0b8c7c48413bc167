//! The fully-booked follow-up: a customer told the schedule was full is texted the windows
//! that have opened since, once.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use super::{Job, Step};
use crate::agent;
use crate::store::{leads, outbox, settings};

/// The follow-up job.
pub fn job() -> Job {
    Job::new(
        "fully booked follow-up",
        Duration::from_secs(30),
        |pool| async move { follow_up_one(&pool).await.map(Step::from) },
    )
    .pausable()
}

/// How long after finding the schedule full it is looked at again for that customer.
pub const FULL_RECHECK_MINUTES: i32 = 60;

/// Looks again at one lead that was told the schedule was full, and texts the customer the
/// windows that have opened since, once. Returns whether a lead was looked at. Any number of
/// workers can run: leads are claimed with `SKIP LOCKED`.
pub async fn follow_up_one(pool: &PgPool) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let settings = settings::load(&mut tx).await?;
    let claimed = leads::claim_fully_booked(&mut tx, FULL_RECHECK_MINUTES).await?;
    let Some(conversation_id) = claimed else {
        tx.commit().await?;
        return Ok(false);
    };
    let mut lead = leads::lead_of_conversation(&mut tx, conversation_id).await?;
    let now = Utc::now();
    let text = agent::rules::offer_reply(
        &mut tx,
        &settings,
        &mut lead,
        now,
        "Good news: pickup windows have opened up",
    )
    .await?;
    if lead.state.offers.is_empty() {
        // Still full: nothing is sent; the next look is an interval from now.
        leads::found_full(&mut tx, lead.id).await?;
    } else {
        outbox::reply(&mut tx, conversation_id, None, &lead, &text).await?;
        leads::save_lead(&mut tx, &lead).await?;
    }
    tx.commit().await?;
    Ok(true)
}
