//! Unanswered messages: a request that died after storing a customer's message (a crash, a
//! deploy) leaves it unanswered; this job answers it, in order, once.

use std::time::Duration;

use super::{Job, Step};
use crate::agent::{self, Agent};
use crate::store::inbox;

/// Messages younger than this are still being answered by their own request.
const OLDER_THAN_SECS: i32 = 5;
/// Conversations looked at per step.
const BATCH: i64 = 20;

/// The job, answering with `agent`.
pub fn job(agent: Agent) -> Job {
    Job::new("unanswered messages", Duration::from_secs(2), move |pool| {
        let agent = agent.clone();
        async move {
            let mut answered = 0;
            for id in inbox::unanswered(&pool, OLDER_THAN_SECS, BATCH).await? {
                match agent::process(&agent, &pool, id).await {
                    Ok(n) => answered += n,
                    Err(e) => tracing::warn!(conversation = %id, error = %e, "could not answer"),
                }
            }
            Ok::<_, sqlx::Error>(Step::from(answered > 0))
        }
    })
}
