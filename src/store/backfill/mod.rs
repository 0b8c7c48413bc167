//! `junkquote backfill`: customers, identities, addresses, conversations and messages from the
//! original's leads, Audit rows and `stateMetadata`, and the customer link on every lead and job.
//!
//! Two phases. The plan reads every lead still in the backfill's domain (unlinked, or linked by
//! an earlier run of it), normalises its identifiers with the same code the service uses
//! ([`crate::domain::identity`]) and groups them transitively ([`plan`]). The write then takes
//! the groups in order of their first lead, a batch of whole groups at a time, each batch one
//! transaction of set-based statements (arrays in, `INSERT … SELECT`, no query per row) that
//! also records its checkpoint. Every id it creates is derived from what it comes from (the
//! group's first lead, the Audit row, the lead and position in its history), and every insert
//! skips what exists: a rerun after a crash, at any point, ends with the same rows as a run that
//! was never interrupted, and a second run finds nothing to do.
//!
//! The service may keep writing meanwhile: its leads are created linked and are left alone; a
//! customer it creates for a phone or email the plan saw is found again when the batch is
//! written, and the leads join it. Problems in the data are never fatal: leads without a usable
//! identifier, conflicting identifiers, Audit payloads that are not objects and broken
//! `stateMetadata` are recorded in `junkquote.backfill_issue` and listed in the report.

pub mod plan;
mod write;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::identity::{IdentityKind, Region};
use plan::{Decision, Planner, RawLead};

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
    /// Leads linked to a customer the service had created.
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
    /// Where it went: the plan, and each kind of statement summed over the batches.
    pub timings: BTreeMap<&'static str, Duration>,
}

impl Report {
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
}

/// How many issue examples of each kind the report shows.
pub const EXAMPLES: i64 = 10;
/// Leads read per round trip while planning.
const READ_PAGE: i64 = 50_000;

/// Runs the backfill on `conn`.
pub async fn run(
    conn: &mut PgConnection,
    options: &Options,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<Report, BackfillError> {
    let started = Instant::now();
    write::ensure_tables(conn, options.dry_run).await?;
    // A batch lost to a server crash after its commit was acknowledged is simply done again by
    // the next run (progress is read from the data, not from memory), so the backfill need not
    // wait for each commit to reach the disk.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut *conn)
        .await?;
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
        let mut batch = Vec::new();
        let mut batch_leads = 0;
        let mut linked = 0u64;
        for (n, &c) in pending.iter().enumerate() {
            batch.push(c);
            batch_leads += components[c].leads.len();
            if batch_leads >= options.batch_size.max(1) || n + 1 == pending.len() {
                let done =
                    write::batch(conn, &mut planner, &components, &batch, &mut report).await?;
                linked += done;
                events(Event::Linked(linked));
                batch.clear();
                batch_leads = 0;
            }
        }
        report.jobs_linked += write::link_remaining_jobs(conn).await?;
    }
    write::finish(conn, &mut report).await?;
    report.elapsed = started.elapsed();
    Ok(report)
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
