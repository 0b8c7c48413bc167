//! Benchmark: the backfill of seeded legacy data, against a single set-based `INSERT … SELECT` of
//! the same customers in the same run (the database's own floor), then `tighten` while a writer
//! keeps inserting.
//!
//! `cargo run --release --example bench_backfill -- [--leads N] [--runs R] [--batch-size B]
//! [--workers W]`
//!
//! It starts its own PostgreSQL (durable settings) under the temporary directory, migrates a
//! database to version 11, seeds it once (`legacy seed`), and for each run copies it
//! (`CREATE DATABASE … TEMPLATE`), times the two floors (the same customers in one statement;
//! the same rows in one statement per table, in a copy of its own), the backfill (in this
//! process: its peak memory is this process's), `tighten` under a concurrent writer (the longest
//! a write waited is the longest lock the tightening made anyone feel), and `db check`'s gates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use junkquote::db::embedded::{Cluster, ClusterConfig};
use junkquote::db::migrate::{self, MigrateOptions, MigrationSet};
use junkquote::takeover::backfill::{self, Options};
use junkquote::takeover::{legacy, quality};
use sqlx::{ConnectOptions, Connection, PgConnection};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's peak resident memory so far, in MiB (Linux `VmHWM`).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let leads = arg("--leads", 100_000);
    let runs = arg("--runs", 3);
    let batch = arg("--batch-size", 5000) as usize;
    let workers = arg("--workers", 2) as usize;
    let keep = std::env::args().any(|a| a == "--keep");
    let dir = std::env::temp_dir().join(format!("jq-bench-backfill-{leads}"));
    // Durable (fsync on), with the memory and WAL room a server holding a million leads would
    // be given; PostgreSQL's defaults (128 MB of buffers, a checkpoint every 1 GB of WAL) are
    // sized for a laptop. The floors run under the same settings.
    let settings = [
        ("max_connections", "50"),
        ("shared_buffers", "4GB"),
        ("max_wal_size", "16GB"),
        ("checkpoint_timeout", "30min"),
        ("maintenance_work_mem", "1GB"),
        ("work_mem", "64MB"),
    ];
    let cluster = Cluster::start(&ClusterConfig {
        data_dir: dir.clone(),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })?;
    let result = run(&cluster, leads, runs, batch, workers).await;
    cluster.release()?;
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn connect(cluster: &Cluster, db: &str) -> anyhow::Result<PgConnection> {
    Ok(cluster
        .url(db)
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(3600))
        .connect()
        .await?)
}

async fn run(
    cluster: &Cluster,
    leads: u64,
    runs: u64,
    batch: usize,
    worker_count: usize,
) -> anyhow::Result<()> {
    let set = MigrationSet::builtin()?;
    let mut admin = connect(cluster, "postgres").await?;
    // A kept cluster (`--keep`) already holds the seeded database, marked complete by its
    // comment; one whose seeding was cut short is made again. Runs are dropped either way.
    let complete = format!("seeded: {leads} leads");
    let mark: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'seeded'",
    )
    .fetch_optional(&mut admin)
    .await?;
    if mark.as_ref().and_then(Option::as_deref) == Some(complete.as_str()) {
        println!("reusing the seeded database of a kept cluster");
    } else {
        sqlx::query("DROP DATABASE IF EXISTS seeded WITH (FORCE)")
            .execute(&mut admin)
            .await?;
        sqlx::query("CREATE DATABASE seeded")
            .execute(&mut admin)
            .await?;
        let mut conn = connect(cluster, "seeded").await?;
        migrate::up(
            &mut conn,
            &set,
            Some(11),
            &MigrateOptions::default(),
            &mut |_| {},
        )
        .await?;
        let seeded = legacy::seed(&mut conn, leads, 1, &mut |_| {}).await?;
        sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;
        conn.close().await?;
        sqlx::query(&format!("COMMENT ON DATABASE seeded IS '{complete}'"))
            .execute(&mut admin)
            .await?;
        println!(
            "seeded {} leads, {} audit rows, {} jobs in {:.1} s ({:.0} leads/s)",
            seeded.leads,
            seeded.audits,
            seeded.jobs,
            seeded.seconds,
            seeded.leads as f64 / seeded.seconds
        );
    }
    for r in 1..=runs {
        sqlx::query(&format!("DROP DATABASE IF EXISTS run{r} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    println!(
        "run | floor s | rows floor s | backfill s | leads/s | rows/s | ratio | rows ratio | peak MiB | tighten s | longest write wait ms | writes | failed writes"
    );
    for r in 1..=runs {
        let name = format!("run{r}");
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE seeded"))
            .execute(&mut admin)
            .await?;
        let rows_floor = rows_floor(cluster, &mut admin, "seeded").await?;
        let mut conn = connect(cluster, &name).await?;
        sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;

        // The floor: the same customers (leads grouped by their phone's digits) in one statement.
        sqlx::query("CREATE TABLE bench_floor (LIKE \"Customer\" INCLUDING DEFAULTS)")
            .execute(&mut conn)
            .await?;
        let started = Instant::now();
        sqlx::query(
            r#"INSERT INTO bench_floor (phone, email, name, created_at)
              SELECT p, min(lower(btrim(email))), min(name), min(created_at)
              FROM (SELECT '+1' || right(regexp_replace(phone, '\D', '', 'g'), 10) AS p,
                           email, name, created_at
                    FROM public."Lead" WHERE phone ~ '\d{3}.*\d{4}') l
              GROUP BY p"#,
        )
        .execute(&mut conn)
        .await?;
        let floor = started.elapsed().as_secs_f64();
        sqlx::query("DROP TABLE bench_floor")
            .execute(&mut conn)
            .await?;

        let options = Options {
            batch_size: batch,
            ..Options::default()
        };
        let mut workers = Vec::new();
        for _ in 0..worker_count {
            workers.push(connect(cluster, &name).await?);
        }
        let started = Instant::now();
        let report = backfill::run(&mut conn, workers, &options, &mut |_| {}).await?;
        let took = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.leads_left == 0,
            "leads left unlinked: {}",
            report.leads_left
        );
        let peak = peak_mib();

        // Tighten while a writer inserts as the service does.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(
                cluster
                    .url(&name)
                    .parse::<sqlx::postgres::PgConnectOptions>()?
                    .log_statements(tracing::log::LevelFilter::Off)
                    .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(3600)),
            )
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut n, mut slowest, mut failed) = (0u64, Duration::ZERO, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    let done = sqlx::query(
                        "WITH c AS (INSERT INTO \"Customer\" (phone) VALUES ($1) RETURNING id),
                              l AS (INSERT INTO \"Lead\" (channel, phone, customer_id)
                                    SELECT 'sms', $1, id FROM c RETURNING id, customer_id)
                         INSERT INTO \"Conversation\" (customer_id, lead_id, channel, external_id)
                         SELECT customer_id, id, 'sms', $1 FROM l",
                    )
                    .bind(format!("+1907{:07}", n))
                    .execute(&pool)
                    .await;
                    slowest = slowest.max(t.elapsed());
                    if done.is_err() {
                        failed += 1;
                    }
                }
                (n, slowest, failed)
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let options = MigrateOptions {
            lock_timeout: Duration::from_millis(500),
            ..MigrateOptions::default()
        };
        migrate::up(&mut conn, &set, None, &options, &mut |_| {}).await?;
        let tighten = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let (writes, slowest, failed) = writer.await?;
        pool.close().await;
        let version = migrate::current_version(&migrate::applied(&mut conn).await?);
        anyhow::ensure!(version == set.latest(), "tighten stopped at {version}");
        // The rehearsal's last step: `junkquote db check`'s gates.
        let gates = quality::check(&mut conn).await?;
        let failing: Vec<String> = gates
            .iter()
            .filter(|g| g.required && !g.passed())
            .map(|g| format!("{} ({})", g.name, g.count))
            .collect();
        println!(
            "    db check: {} of {} required gates pass{}",
            gates.iter().filter(|g| g.required && g.passed()).count(),
            gates.iter().filter(|g| g.required).count(),
            if failing.is_empty() {
                String::new()
            } else {
                format!("; failing: {}", failing.join(", "))
            }
        );
        conn.close().await?;

        let rows = report.customers
            + report.identities
            + report.addresses
            + report.conversations
            + report.messages_audit
            + report.messages_state
            + report.leads_linked
            + report.jobs_linked;
        println!(
            "{r} | {floor:.2} | {rows_floor:.2} | {took:.2} | {:.0} | {:.0} | {:.1} | {:.2} | {peak:.0} | {tighten:.2} | {:.1} | {writes} | {failed}",
            report.leads_linked as f64 / took,
            rows as f64 / took,
            took / floor,
            took / rows_floor,
            slowest.as_secs_f64() * 1000.0
        );
        println!(
            "    customers {} identities {} addresses {} conversations {} messages {}+{} jobs {}",
            report.customers,
            report.identities,
            report.addresses,
            report.conversations,
            report.messages_audit,
            report.messages_state,
            report.jobs_linked
        );
        let timings: Vec<String> = report
            .timings
            .iter()
            .map(|(what, took)| format!("{what} {:.1} s", took.as_secs_f64()))
            .collect();
        println!("    time: {}", timings.join(", "));
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}

/// The database's floor for the rows the backfill writes: in a copy of the seeded database, one
/// set-based `INSERT … SELECT` (or `UPDATE`) per table, unbatched and without the backfill's
/// de-duplication: a customer per lead, the lead linked, a conversation per lead, a message per
/// Audit row with text, into the real tables with their indexes and foreign keys. It writes a
/// little less than the backfill (no identities, addresses or `stateMetadata` messages, and
/// more customers), so it flatters the floor, not the backfill.
async fn rows_floor(
    cluster: &Cluster,
    admin: &mut PgConnection,
    source: &str,
) -> anyhow::Result<f64> {
    let copy = "rows_floor";
    sqlx::query(&format!("DROP DATABASE IF EXISTS {copy} WITH (FORCE)"))
        .execute(&mut *admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {copy} TEMPLATE {source}"))
        .execute(&mut *admin)
        .await?;
    let mut conn = connect(cluster, copy).await?;
    sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;
    let started = Instant::now();
    for sql in [
        r#"INSERT INTO "Customer" (id, name, phone, email, metadata, created_at)
           SELECT md5('floor:' || id)::uuid, name, phone, lower(btrim(email)), '{}', created_at
           FROM "Lead""#,
        r#"UPDATE "Lead" SET customer_id = md5('floor:' || id)::uuid"#,
        r#"INSERT INTO "Conversation" (id, customer_id, lead_id, channel, started_at, metadata,
                                      created_at, updated_at)
           SELECT md5('floor-conversation:' || id)::uuid, customer_id, id, channel, created_at,
                  '{}', created_at, created_at
           FROM "Lead""#,
        r#"INSERT INTO "Message" (id, conversation_id, role, content, metadata, created_at)
           SELECT md5('floor-message:' || a.id)::uuid, md5('floor-conversation:' || a.lead_id)::uuid,
                  CASE WHEN lower(a.actor) IN ('customer', 'user') THEN 'user'
                       ELSE 'assistant' END::"MessageRole",
                  t.content, jsonb_build_object('source', 'audit', 'audit_id', a.id), a.created_at
           FROM "Audit" a
           CROSS JOIN LATERAL (SELECT coalesce(a.payload ->> 'text', a.payload ->> 'message',
                                               a.payload ->> 'content', a.payload ->> 'body')
                               AS content) t
           WHERE a.lead_id IS NOT NULL AND jsonb_typeof(a.payload) = 'object'
             AND lower(a.actor) IN ('customer', 'user', 'agent', 'assistant')
             AND t.content IS NOT NULL"#,
    ] {
        sqlx::query(sql).execute(&mut conn).await?;
    }
    let took = started.elapsed().as_secs_f64();
    conn.close().await?;
    sqlx::query(&format!("DROP DATABASE {copy} WITH (FORCE)"))
        .execute(&mut *admin)
        .await?;
    Ok(took)
}
