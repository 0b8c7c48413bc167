//! Approval renewals: an owner who let an approval link expire is asked once more.

use std::time::Duration;

use sqlx::PgPool;

use super::{Job, Step};
use crate::domain::money::Cents;
use crate::domain::token::{hash_token, new_token};
use crate::store::{quotes, settings};

/// The renewal job.
pub fn job() -> Job {
    Job::new(
        "approval renewals",
        Duration::from_secs(2),
        |pool| async move { renew_one(&pool).await.map(Step::from) },
    )
    .pausable()
}

/// How long the owner's renewed approval link works: as long as the first.
const RENEWED_APPROVAL_HOURS: i64 = crate::agent::rules::APPROVAL_VALID_HOURS;

/// Handles one approval whose link expired before the owner decided, if there is one; returns
/// whether there was.
///
/// A small company's owner who missed the request (out on a job, the text buried) wants a
/// nudge, not a customer lost in silence, and not a nag either: so the owner is told once
/// that the quote is still waiting, with a fresh link valid another 48 hours (a new approval of
/// the same quote; the old link keeps answering "expired"). If that one expires too nothing
/// more is sent: the quote stays in the operator's list (`GET /api/v1/approvals`), where it
/// can still be decided. The job waits while the pause switch is on.
pub async fn renew_one(pool: &PgPool) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let settings = settings::load(&mut tx).await?;
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
