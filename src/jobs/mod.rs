//! Background jobs: work that must survive a restart, so its state lives in the database, and
//! that any number of `serve` processes can run side by side (each step claims its rows with
//! `FOR UPDATE SKIP LOCKED`).
//!
//! A job is a *step* (do one unit of work, say whether there was any) and one loop, [`run`],
//! drives every job the same way: straight on to the next step after work, a nap when idle, a
//! growing backoff after errors, and a prompt stop on shutdown. The pause switch is honoured
//! here, once, for the jobs that send on their own. Tests call [`Jobs::run_until_idle`] instead
//! of waiting for the loops.

pub mod answer;
pub mod backups;
pub mod codes;
pub mod fully_booked;
pub mod notes;
pub mod outbox;
pub mod reminders;
pub mod renewals;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::settings;

/// What one step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It did some work: there may be more.
    Worked,
    /// Nothing to do now.
    Idle,
}

impl From<bool> for Step {
    /// `true`: there was work.
    fn from(worked: bool) -> Self {
        if worked { Step::Worked } else { Step::Idle }
    }
}

/// A step's failure: logged by the loop, which backs off and tries again.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

type StepFuture = Pin<Box<dyn Future<Output = Result<Step, JobError>> + Send>>;
type StepFn = dyn Fn(PgPool) -> StepFuture + Send + Sync;

/// One background job.
#[derive(Clone)]
pub struct Job {
    /// Its name, in logs.
    pub name: &'static str,
    /// How long to wait after an idle step before looking again.
    pub idle: Duration,
    /// Whether the pause switch stops it (everything that messages customers on its own).
    pub pausable: bool,
    step: Arc<StepFn>,
    /// When a step last succeeded (or the job was made): its lag, for `/metrics`.
    succeeded: Arc<Mutex<Instant>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("idle", &self.idle)
            .field("pausable", &self.pausable)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A job named `name` whose unit of work is `step`.
    pub fn new<F, Fut, E>(name: &'static str, idle: Duration, step: F) -> Self
    where
        F: Fn(PgPool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Step, E>> + Send + 'static,
        E: Into<JobError>,
    {
        let step = move |pool| -> StepFuture {
            let fut = step(pool);
            Box::pin(async move { fut.await.map_err(Into::into) })
        };
        Job {
            name,
            idle,
            pausable: false,
            step: Arc::new(step),
            succeeded: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// The same job, stopped while the pause switch is on.
    pub fn pausable(mut self) -> Self {
        self.pausable = true;
        self
    }

    /// Runs one step, or none while paused (for a pausable job; a paused job is not lagging).
    pub async fn step(&self, pool: &PgPool) -> Result<Step, JobError> {
        let result = match paused(pool, self.pausable).await {
            Ok(true) => Ok(Step::Idle),
            Ok(false) => (self.step)(pool.clone()).await,
            Err(e) => Err(e.into()),
        };
        match &result {
            Ok(_) => *self.succeeded.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now(),
            Err(_) => {
                metrics::counter!("junkquote_job_failures_total", "job" => self.name).increment(1)
            }
        }
        result
    }

    /// How long since a step last succeeded (or since the job was made, if none has).
    pub fn lag(&self) -> Duration {
        self.succeeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// Whether `pausable` work is paused now (never for other work).
async fn paused(pool: &PgPool, pausable: bool) -> sqlx::Result<bool> {
    if !pausable {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    Ok(settings::load(&mut conn).await?.paused)
}

/// The longest wait after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs `job` until `stop` turns true: the next step at once after work, after `job.idle` when
/// idle, and after a doubling backoff (up to a minute) while steps fail.
pub async fn run(job: Job, pool: PgPool, mut stop: watch::Receiver<bool>) {
    let mut failures: u32 = 0;
    while !*stop.borrow() {
        let pause = match job.step(&pool).await {
            Ok(Step::Worked) => {
                failures = 0;
                // Let other tasks (and a shutdown) in between units of work.
                tokio::task::yield_now().await;
                continue;
            }
            Ok(Step::Idle) => {
                failures = 0;
                job.idle
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(job = job.name, failures, error = %e, "background job failed");
                backoff(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The wait after `failures` failures in a row: 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// The service's background jobs.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    jobs: Vec<Job>,
}

impl Jobs {
    /// The jobs `list`.
    pub fn new(jobs: Vec<Job>) -> Self {
        Jobs { jobs }
    }

    /// Every job.
    pub fn iter(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter()
    }

    /// Each job's name and [`Job::lag`].
    pub fn lags(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        self.jobs.iter().map(|job| (job.name, job.lag()))
    }

    /// Starts one loop per job; each stops when `stop` turns true.
    pub fn spawn(&self, pool: &PgPool, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        self.jobs
            .iter()
            .map(|job| tokio::spawn(run(job.clone(), pool.clone(), stop.clone())))
            .collect()
    }

    /// Runs every job's steps until a whole round finds nothing to do, and returns how many
    /// steps worked; the first failure is returned as it is. For tests and one-off runs: what
    /// the loops would do, without waiting for them.
    pub async fn run_until_idle(&self, pool: &PgPool) -> Result<usize, JobError> {
        /// A job that never goes idle is a bug; this many rounds catches it.
        const MAX_ROUNDS: usize = 10_000;
        let mut worked = 0;
        for _ in 0..MAX_ROUNDS {
            let mut round = 0;
            for job in &self.jobs {
                while job.step(pool).await? == Step::Worked {
                    round += 1;
                    if round > MAX_ROUNDS {
                        return Err(format!("job {} never went idle", job.name).into());
                    }
                }
            }
            if round == 0 {
                return Ok(worked);
            }
            worked += round;
        }
        Err("background jobs never went idle".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
