//! The code sweep: one-time codes leave no usable trace. The text of a code that expired is
//! redacted in the outbox (an unsent one is not sent any more), and challenges older than any
//! limit counts are deleted.

use std::time::Duration;

use super::{Job, Step};
use crate::store::challenges;

/// The sweep job.
pub fn job() -> Job {
    Job::new("code sweep", Duration::from_secs(60), |pool| async move {
        let mut conn = pool.acquire().await?;
        let redacted = challenges::sweep(&mut conn).await?;
        Ok::<_, sqlx::Error>(Step::from(redacted > 0))
    })
}
