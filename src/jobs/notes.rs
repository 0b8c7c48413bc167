//! The note purge: deletes memory notes past their expiry. They are hidden from everyone from
//! the moment they expire; this frees the rows, a batch at a time.

use std::time::Duration;

use super::{Job, Step};
use crate::store::memory;

/// How many expired notes one step deletes.
const BATCH: i64 = 1000;

/// The purge job.
pub fn job() -> Job {
    Job::new("note purge", Duration::from_secs(60), |pool| async move {
        let purged = memory::purge_expired(&pool, BATCH).await?;
        if purged > 0 {
            tracing::info!(purged, "expired memory notes deleted");
        }
        Ok::<_, sqlx::Error>(Step::from(purged > 0))
    })
}
