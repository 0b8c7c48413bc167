//! Answering customers' messages: the webhooks store a message and wake the [`Answerer`]'s
//! workers, which answer it at once, a bounded number of conversations at a time; the sweep job
//! answers whatever a crash or a lost wake-up left behind (a message older than a few seconds
//! whose conversation no live worker holds). Either way [`agent::process`] takes the
//! conversation's lease in the database first, so each message is answered once, in order,
//! however many workers and `serve` processes there are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{Job, Step};
use crate::agent::{self, Agent};
use crate::store::inbox;

/// Conversations looked at per sweep step.
const BATCH: i64 = 20;
/// Wake-ups waiting for a worker, at most; past that they are dropped and the sweep answers.
const QUEUE: usize = 10_000;

/// How answering is run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Conversations answered at once in this process (`JUNKQUOTE_AGENT_WORKERS`).
    pub workers: usize,
    /// How old an unanswered message must be before the sweep answers it (younger ones are
    /// their workers' to answer).
    pub sweep_after: Duration,
}

impl Default for Options {
    /// Eight workers (half of the sixteen pooled connections `serve` opens, leaving the rest
    /// for requests and jobs), a sweep after 5 s.
    fn default() -> Self {
        Options {
            workers: 8,
            sweep_after: Duration::from_secs(5),
        }
    }
}

/// The answering workers' front door: wake them for a conversation, wait for a message to be
/// answered. Cheap to clone.
#[derive(Clone)]
pub struct Answerer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

struct Inner {
    agent: Agent,
    pool: PgPool,
    options: Options,
    wake: mpsc::Sender<Uuid>,
    woken: Mutex<Option<mpsc::Receiver<Uuid>>>,
    /// Told each conversation a worker has finished a pass over.
    answered: broadcast::Sender<Uuid>,
}

impl Answerer {
    /// Workers answering with `agent` over `pool`; they run once [`Answerer::run`] is driven.
    pub fn new(agent: Agent, pool: PgPool, options: Options) -> Answerer {
        let (wake, woken) = mpsc::channel(QUEUE);
        let (answered, _) = broadcast::channel(256);
        Answerer {
            inner: Arc::new(Inner {
                agent,
                pool,
                options,
                wake,
                woken: Mutex::new(Some(woken)),
                answered,
            }),
        }
    }

    /// Asks a worker to answer the conversation's new messages. Never waits: when the queue is
    /// full the sweep answers them.
    pub fn wake(&self, conversation_id: Uuid) {
        if self.inner.wake.try_send(conversation_id).is_err() {
            tracing::warn!(conversation = %conversation_id, "the answering queue is full; left for the sweep");
        }
    }

    /// Waits up to `timeout` for the stored message `message_id` to be answered (by this
    /// process or another); whether it was.
    pub async fn wait_answered(&self, message_id: Uuid, timeout: Duration) -> sqlx::Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut answered = self.inner.answered.subscribe();
        loop {
            if inbox::answered(&self.inner.pool, message_id).await? {
                return Ok(true);
            }
            // Woken by this process's workers; another process's are noticed by looking again.
            tokio::select! {
                _ = answered.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return inbox::answered(&self.inner.pool, message_id).await;
                }
            }
        }
    }

    /// Told the id of each conversation a worker of this process has finished a pass over (for
    /// waiters that check their own message then).
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.inner.answered.subscribe()
    }

    /// Runs the workers until the future is dropped (which stops them mid-answer, as a crash
    /// would; their leases then expire). Only the first call runs them.
    pub async fn run(self) {
        let taken = self
            .inner
            .woken
            .lock()
            .map(|mut woken| woken.take())
            .unwrap_or_default();
        let Some(mut woken) = taken else {
            return;
        };
        let permits = Arc::new(Semaphore::new(self.inner.options.workers.max(1)));
        // Conversations being answered here, and whether they were woken again meanwhile.
        let busy: Arc<Mutex<HashMap<Uuid, bool>>> = Arc::default();
        let mut running = JoinSet::new();
        loop {
            let id = tokio::select! {
                id = woken.recv() => id,
                Some(_) = running.join_next(), if !running.is_empty() => continue,
            };
            let Some(id) = id else { break };
            {
                let Ok(mut busy) = busy.lock() else { break };
                if let Some(again) = busy.get_mut(&id) {
                    *again = true;
                    continue;
                }
                busy.insert(id, false);
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let inner = self.inner.clone();
            let busy = busy.clone();
            running.spawn(async move {
                let _permit = permit;
                loop {
                    if let Err(e) = agent::process(&inner.agent, &inner.pool, id).await {
                        tracing::warn!(conversation = %id, error = %e, "answering failed; left for the sweep");
                    }
                    let _ = inner.answered.send(id);
                    let Ok(mut busy) = busy.lock() else { return };
                    match busy.get_mut(&id) {
                        Some(again) if *again => *again = false,
                        _ => {
                            busy.remove(&id);
                            return;
                        }
                    }
                }
            });
        }
    }

    /// The sweep: answers messages left unanswered (a crash, a full queue, a lost lease) once
    /// they are older than `sweep_after`, and tells waiters.
    pub fn job(&self) -> Job {
        let inner = self.inner.clone();
        Job::new("unanswered messages", Duration::from_secs(2), move |pool| {
            let inner = inner.clone();
            async move {
                let mut answered = 0;
                let left = inbox::unanswered(&pool, inner.options.sweep_after, BATCH).await?;
                for id in left {
                    match agent::process(&inner.agent, &pool, id).await {
                        Ok(n) => answered += n,
                        Err(e) => {
                            tracing::warn!(conversation = %id, error = %e, "could not answer")
                        }
                    }
                    let _ = inner.answered.send(id);
                }
                Ok::<_, sqlx::Error>(Step::from(answered > 0))
            }
        })
    }
}
