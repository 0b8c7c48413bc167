//! The fully-booked follow-up: a customer told the schedule was full is texted the windows
//! that have opened since, once.

use std::time::Duration;

use super::{Job, Step};
use crate::agent;

/// The follow-up job.
pub fn job() -> Job {
    Job::new(
        "fully booked follow-up",
        Duration::from_secs(30),
        |pool| async move { agent::follow_up_one(&pool).await.map(Step::from) },
    )
    .pausable()
}
