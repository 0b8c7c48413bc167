//! `junkquote backfill`: customers, identities, addresses, conversations and messages from the
//! original's leads, Audit rows and `stateMetadata`, and the customer link on every lead and job.
//!
//! Two phases. The plan reads every lead still in the backfill's domain (unlinked, or linked by
//! an earlier run of it), normalises its identifiers with the same code the service uses
//! ([`crate::domain::identity`]) and groups them transitively ([`plan`]). The write then takes
//! the groups oldest first, a batch of whole groups at a time, each batch one transaction of
//! set-based statements (arrays in, `INSERT … SELECT`, no query per row) that also records its
//! checkpoint; several batches are in flight at once, each on its own connection, because the
//! work is the server's (about twelve rows per lead, each with its indexes) and one connection
//! uses one of its cores. Every id it creates is derived from what it comes from (the group's
//! first lead, the Audit row, the lead and position in its history; conversations and messages
//! carry their source's time in front, so that inserts land together), and every insert skips
//! what exists: a rerun after a crash, at any point, ends with the same rows as a run that was
//! never interrupted, and a second run finds nothing to do.
//!
//! The service may keep writing meanwhile: its leads are created linked and are left alone; a
//! customer it creates for a phone or email the plan saw is found again when the batch is
//! written, and the leads join it. Problems in the data are never fatal: leads without a usable
//! identifier, conflicting identifiers, Audit payloads that are not objects and broken
//! `stateMetadata` are recorded in `junkquote.backfill_issue` and listed in the report.

pub mod plan;
mod write;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::identity::{IdentityKind, Region};
use plan::{Component, Decision, Planner, RawLead};

/// How the backfill runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Leads per transaction (whole groups are kept together, so a batch may hold more).
    pub batch_size: usize,
    /// Plan and count only; write nothing.
    pub dry_run: bool,
    /// The region phone numbers without a country code are read in.
    pub region: Region,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            dry_run: false,
            region: Region::US,
        }
    }
}

/// What the backfill tells its caller as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// Reading leads for the plan: how many so far.
    Reading(u64),
    /// The plan is made: this many leads to link.
    Planned { leads: u64, resumed_batches: u64 },
    /// A batch committed: leads linked so far in this run.
    Linked(u64),
}

/// Counts in and out, and every problem found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Whether nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// Leads in the database.
    pub leads_total: i64,
    /// Leads without a customer when the run began.
    pub leads_unlinked: u64,
    /// Audit rows of those leads.
    pub audit_rows: i64,
    /// Batches an earlier, interrupted run had committed.
    pub resumed_batches: u64,
    /// Customers created.
    pub customers: u64,
    /// Leads linked to a customer made before this run (by the service or an earlier backfill).
    pub leads_to_existing: u64,
    /// Identities recorded.
    pub identities: u64,
    /// Addresses recorded.
    pub addresses: u64,
    /// Leads linked.
    pub leads_linked: u64,
    /// Jobs linked.
    pub jobs_linked: u64,
    /// Conversations created.
    pub conversations: u64,
    /// Messages from Audit rows.
    pub messages_audit: u64,
    /// Messages from `stateMetadata` that the Audit rows did not hold.
    pub messages_state: u64,
    /// Leads that still have no customer at the end (written meanwhile without one).
    pub leads_left: i64,
    /// Jobs that still have no customer at the end.
    pub jobs_left: i64,
    /// Problems by kind: (count, examples "subject: reason").
    pub issues: BTreeMap<String, (i64, Vec<String>)>,
    /// Wall time.
    pub elapsed: Duration,
    /// Where it went: the plan, and each kind of statement summed over the batches (and over
    /// the workers, so the sum may exceed the wall time).
    pub timings: BTreeMap<&'static str, Duration>,
}

impl Report {
    /// Adds what one batch did.
    fn absorb(&mut self, part: Report) {
        self.audit_rows += part.audit_rows;
        self.customers += part.customers;
        self.leads_to_existing += part.leads_to_existing;
        self.identities += part.identities;
        self.addresses += part.addresses;
        self.leads_linked += part.leads_linked;
        self.jobs_linked += part.jobs_linked;
        self.conversations += part.conversations;
        self.messages_audit += part.messages_audit;
        self.messages_state += part.messages_state;
        for (what, took) in part.timings {
            *self.timings.entry(what).or_default() += took;
        }
    }

    /// Whether the run changed nothing.
    pub fn changed_nothing(&self) -> bool {
        self.customers
            + self.identities
            + self.addresses
            + self.leads_linked
            + self.jobs_linked
            + self.conversations
            + self.messages_audit
            + self.messages_state
            == 0
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0}")]
    Schema(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("another backfill is running on this database; wait for it to finish")]
    Busy,
    #[error("a backfill worker failed: {0}")]
    Worker(String),
    #[error("{0}; run the backfill again")]
    Raced(String),
}

/// How many issue examples of each kind the report shows.
pub const EXAMPLES: i64 = 10;
/// Leads read per round trip while planning.
const READ_PAGE: i64 = 50_000;

/// Runs the backfill: plans on `conn`, and writes the batches on `workers` (at least one
/// connection), one batch in flight on each.
pub async fn run(
    conn: &mut PgConnection,
    workers: Vec<PgConnection>,
    options: &Options,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<Report, BackfillError> {
    if workers.is_empty() && !options.dry_run {
        return Err(BackfillError::Schema(
            "the backfill needs at least one worker connection".into(),
        ));
    }
    let started = Instant::now();
    // Two backfills at once would only do the same work twice; the second is told so, before
    // it changes anything. A dry run writes nothing and needs no lock.
    let locked = !options.dry_run;
    if locked {
        let alone: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(BACKFILL_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !alone {
            return Err(BackfillError::Busy);
        }
    }
    let result = match write::ensure_tables(conn, options.dry_run).await {
        Ok(()) => plan_and_write(conn, workers, options, events).await,
        Err(e) => Err(e),
    };
    // The lock is the session's: released here, or by the server when the connection ends
    // (so a failed unlock after a failure need not hide the failure).
    if locked {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(BACKFILL_LOCK)
            .execute(&mut *conn)
            .await;
        if result.is_ok() {
            unlocked?;
        }
    }
    let mut report = result?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The advisory lock a running backfill holds.
const BACKFILL_LOCK: i64 = 0x6a71_6266; // "jqbf"

async fn plan_and_write(
    conn: &mut PgConnection,
    mut workers: Vec<PgConnection>,
    options: &Options,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<Report, BackfillError> {
    // A batch lost to a server crash after its commit was acknowledged is simply done again by
    // the next run (progress is read from the data, not from memory), so the backfill need not
    // wait for each commit to reach the disk.
    //
    // Each batch statement is planned for its own arrays: a prepared statement's generic plan
    // guesses their size, and a wrong guess turned a 0.2 s batch into a 10 s one.
    // Times in `stateMetadata` are read, and ids derived from them, in UTC whatever the
    // server's default time zone, so that every run derives the same ids.
    for worker in &mut workers {
        sqlx::raw_sql(
            "SET synchronous_commit = off; SET plan_cache_mode = force_custom_plan;
             SET TimeZone = 'UTC'",
        )
        .execute(&mut *worker)
        .await?;
    }
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    report.leads_total = sqlx::query_scalar("SELECT count(*) FROM \"Lead\"")
        .fetch_one(&mut *conn)
        .await?;

    let planning = Instant::now();
    let mut planner = load(conn, options.region, events).await?;
    load_owners(conn, &mut planner).await?;
    let components = planner.components();
    report.timings.insert("plan", planning.elapsed());
    let pending: Vec<usize> = components
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.leads
                .iter()
                .any(|&i| planner.leads[i as usize].customer_id.is_none())
        })
        .map(|(i, _)| i)
        .collect();
    report.leads_unlinked = planner
        .leads
        .iter()
        .filter(|l| l.customer_id.is_none())
        .count() as u64;
    report.resumed_batches = if options.dry_run {
        0
    } else {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM junkquote.backfill_checkpoint")
            .fetch_one(&mut *conn)
            .await?
            .try_into()
            .unwrap_or(0)
    };
    events(Event::Planned {
        leads: report.leads_unlinked,
        resumed_batches: report.resumed_batches,
    });

    if options.dry_run {
        write::dry_run(conn, &planner, &components, &pending, &mut report).await?;
    } else {
        // Whole components in each batch, oldest first.
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut leads_in_last = 0;
        for &c in &pending {
            if batches.is_empty() || leads_in_last >= options.batch_size.max(1) {
                batches.push(Vec::new());
                leads_in_last = 0;
            }
            if let Some(last) = batches.last_mut() {
                last.push(c);
            }
            leads_in_last += components[c].leads.len();
        }
        write_batches(workers, planner, components, batches, &mut report, events).await?;
        report.jobs_linked += write::link_remaining_jobs(conn).await?;
    }
    write::finish(conn, &mut report).await?;
    Ok(report)
}

/// Writes the batches, one in flight on each worker connection; stops at the first error (the
/// batches in flight roll back, and a rerun does them).
async fn write_batches(
    workers: Vec<PgConnection>,
    planner: Planner,
    components: Vec<Component>,
    batches: Vec<Vec<usize>>,
    report: &mut Report,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<(), BackfillError> {
    let planner = Arc::new(Mutex::new(planner));
    let components = Arc::new(components);
    let mut queue = batches.into_iter();
    let mut running = tokio::task::JoinSet::new();
    let spawn =
        |running: &mut tokio::task::JoinSet<_>, mut conn: PgConnection, batch: Vec<usize>| {
            let (planner, components) = (planner.clone(), components.clone());
            running.spawn(async move {
                let mut part = Report::default();
                let result =
                    write_with_retries(&mut conn, &planner, &components, &batch, &mut part).await;
                (conn, result.map(|linked| (linked, part)))
            });
        };
    for conn in workers {
        match queue.next() {
            Some(batch) => spawn(&mut running, conn, batch),
            None => break,
        }
    }
    let mut linked = 0;
    while let Some(done) = running.join_next().await {
        let finished = done
            .map_err(|e| BackfillError::Worker(e.to_string()))
            .and_then(|(conn, result)| result.map(|r| (conn, r)));
        let (conn, (count, part)) = match finished {
            Ok(done) => done,
            Err(e) => {
                // The batches in flight are stopped (and rolled back) before the caller
                // releases the backfill's lock.
                running.shutdown().await;
                return Err(e);
            }
        };
        linked += count;
        report.absorb(part);
        events(Event::Linked(linked));
        if let Some(batch) = queue.next() {
            spawn(&mut running, conn, batch);
        }
    }
    Ok(())
}

/// One batch, tried again when PostgreSQL chose it as a deadlock victim or could not serialise
/// it, or when the service took one of its identifiers meanwhile; each try is a whole
/// transaction, and only the counts of the one that committed are reported.
async fn write_with_retries(
    conn: &mut PgConnection,
    planner: &Mutex<Planner>,
    components: &[Component],
    batch: &[usize],
    report: &mut Report,
) -> Result<u64, BackfillError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let mut attempt = Report::default();
        match write::batch(conn, planner, components, batch, &mut attempt).await {
            Err(BackfillError::Database(sqlx::Error::Database(e)))
                if tries < 5 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tokio::time::sleep(Duration::from_millis(50 * tries)).await;
            }
            Err(BackfillError::Raced(_)) if tries < 5 => {}
            other => {
                report.absorb(attempt);
                return other;
            }
        }
    }
}

/// Reads every lead in the domain, a page at a time, normalising identifiers on two threads.
async fn load(
    conn: &mut PgConnection,
    region: Region,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<Planner, BackfillError> {
    type Row = (
        Uuid,
        Option<Uuid>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        chrono::DateTime<chrono::Utc>,
    );
    let mut planner = Planner::default();
    let mut after = Uuid::nil();
    let mut read = 0u64;
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT l.id, l.customer_id, l.channel::text, l.phone, l.email, l.\"messengerPsid\",
                    l.name, l.created_at
             FROM \"Lead\" l LEFT JOIN \"Customer\" c ON c.id = l.customer_id
             WHERE l.id > $1 AND (l.customer_id IS NULL OR c.metadata ? 'backfill')
             ORDER BY l.id LIMIT $2",
        )
        .bind(after)
        .bind(READ_PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        let raws: Vec<RawLead> = rows
            .into_iter()
            .map(
                |(id, customer_id, channel, phone, email, psid, name, created_at)| RawLead {
                    id,
                    customer_id,
                    channel,
                    phone,
                    email,
                    psid,
                    name,
                    created_at,
                },
            )
            .collect();
        let half = raws.len().div_ceil(2);
        let normalised: Vec<_> = std::thread::scope(|s| {
            let parts: Vec<_> = raws
                .chunks(half.max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|r| plan::normalise(r, region))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_default())
                .collect()
        });
        if normalised.len() != raws.len() {
            return Err(BackfillError::Schema(
                "normalising identifiers failed on a worker thread".into(),
            ));
        }
        for (raw, (ids, unusable)) in raws.into_iter().zip(normalised) {
            planner.add(raw, ids, unusable);
        }
        read += READ_PAGE as u64;
        events(Event::Reading(read.min(planner.leads.len() as u64)));
    }
    Ok(planner)
}

/// The identifiers of customers the service created (not the backfill): phones, emails,
/// Messenger ids, and recorded identities.
async fn load_owners(conn: &mut PgConnection, planner: &mut Planner) -> Result<(), BackfillError> {
    let rows: Vec<(String, String, Uuid)> =
        sqlx::query_as(OWNERS_SQL).fetch_all(&mut *conn).await?;
    for (kind, value, customer) in rows {
        if let Some(kind) = kind_of(&kind) {
            planner.add_owner(kind, &value, customer);
        }
    }
    Ok(())
}

/// Every identifier of every customer the service made, as (kind, value, customer).
const OWNERS_SQL: &str = "
    SELECT 'phone', c.phone, c.id FROM \"Customer\" c
    WHERE c.phone IS NOT NULL AND NOT c.metadata ? 'backfill'
    UNION ALL
    SELECT 'email', lower(btrim(c.email)), c.id FROM \"Customer\" c
    WHERE c.email IS NOT NULL AND NOT c.metadata ? 'backfill'
    UNION ALL
    SELECT 'psid', p.value, c.id FROM \"Customer\" c,
        jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.metadata -> 'psids') = 'array'
                                       THEN c.metadata -> 'psids' ELSE '[]' END) AS p(value)
    WHERE NOT c.metadata ? 'backfill'
    UNION ALL
    SELECT i.kind::text, i.value, i.customer_id FROM \"CustomerIdentity\" i
    JOIN \"Customer\" c ON c.id = i.customer_id
    WHERE NOT c.metadata ? 'backfill'";

fn kind_of(text: &str) -> Option<IdentityKind> {
    match text {
        "phone" => Some(IdentityKind::Phone),
        "email" => Some(IdentityKind::Email),
        "psid" => Some(IdentityKind::Psid),
        _ => None,
    }
}

/// The customer each lead of a component gets.
fn customer_of(decision: &Decision, lead: Uuid) -> Uuid {
    match decision {
        Decision::New(id) | Decision::Existing(id) => *id,
        Decision::Conflict(_) | Decision::NoIdentity(_) => plan::lead_customer_id(lead),
    }
}
