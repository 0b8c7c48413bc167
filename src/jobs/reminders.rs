//! Pickup reminders, sent on the customer's channel at the configured hours before the window.

use std::time::Duration;

use super::{Job, Step};
use crate::agent;

/// The reminder job.
pub fn job() -> Job {
    Job::new("reminders", Duration::from_secs(1), |pool| async move {
        agent::remind_one(&pool).await.map(Step::from)
    })
    .pausable()
}
