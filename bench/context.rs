//! Benchmark: reading a customer's whole context (the one-round-trip query the agent and the
//! context API use) from a database of 1,000,000 customers, 10,000,000 messages and 2,000,000
//! memory notes, at 1 and at 16 concurrent clients, against pgbench's select-only latency on the
//! same PostgreSQL at the same concurrency, in the same run.
//!
//! `cargo run --release --example bench_context -- [--customers N] [--seconds S] [--runs R] [--keep]`
//!
//! The data is generated set-based (INSERT … SELECT over generate_series, ids from md5 so that
//! runs are repeatable) in a cluster under the temporary directory; `--keep` leaves it there and
//! reuses it on the next run. Latency percentiles of pgbench come from its per-transaction log.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use junkquote::db::embedded::{Cluster, ClusterConfig};
use junkquote::db::migrate::{self, MigrateOptions, MigrationSet};
use junkquote::store::context::{self, Budget};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[path = "args.rs"]
mod args;

use args::{arg, flag};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let customers = arg("--customers", 1_000_000) as i64;
    let seconds = arg("--seconds", 10);
    let runs = arg("--runs", 3) as usize;
    let keep = flag("--keep");
    let dir = std::env::temp_dir().join(format!("jq-bench-context-{customers}"));
    let cluster = Cluster::start(&ClusterConfig {
        data_dir: dir.clone(),
        settings: vec![
            ("max_connections".into(), "100".into()),
            ("shared_buffers".into(), "6GB".into()),
            ("maintenance_work_mem".into(), "1GB".into()),
            ("max_wal_size".into(), "8GB".into()),
        ],
    })?;
    let result = run(&cluster, customers, seconds, runs).await;
    cluster.release()?;
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run(cluster: &Cluster, customers: i64, seconds: u64, runs: usize) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'junkquote')")
            .fetch_one(&mut admin)
            .await?;
    let url = cluster.url("junkquote");
    if !exists {
        sqlx::query("CREATE DATABASE junkquote")
            .execute(&mut admin)
            .await?;
        sqlx::query("CREATE DATABASE pgbench")
            .execute(&mut admin)
            .await?;
        let mut conn = PgConnection::connect(&url).await?;
        migrate::up(
            &mut conn,
            &MigrationSet::builtin()?,
            None,
            &MigrateOptions::default(),
            &mut |_| {},
        )
        .await?;
        generate(&mut conn, customers).await?;
        let socket = cluster.socket_dir().display().to_string();
        pgbench(&socket, None, &["-i", "-q", "-s", "10", "pgbench"])?;
    } else {
        println!(
            "reusing the generated data in {}",
            cluster.socket_dir().display()
        );
    }
    // Both databases are read into shared buffers first (the context's tables and the indexes
    // it uses; not the full-text index), so that runs compare warm with warm.
    for (database, skip) in [("junkquote", "Message_content_search_idx"), ("pgbench", "")] {
        let mut conn = PgConnection::connect(&cluster.url(database)).await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            .execute(&mut conn)
            .await?;
        let pages: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(pg_prewarm(c.oid)), 0)::bigint FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') AND c.relname <> $1",
        )
        .bind(skip)
        .fetch_one(&mut conn)
        .await?;
        println!("prewarmed {database}: {} MiB", pages * 8 / 1024);
    }
    let socket = cluster.socket_dir().display().to_string();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()?.get()
    );
    println!(
        "clients | pgbench -S p50 / p99 (ms) | context p50 / p99 (ms) | context/s | p99 ratio"
    );
    for clients in [1usize, 16] {
        let mut rows = Vec::new();
        for _ in 0..runs {
            let base = pgbench_select_only(&socket, clients, seconds)?;
            let ours = lookups(&url, customers, clients, seconds).await?;
            rows.push((base, ours));
        }
        for ((b50, b99), (o50, o99, rate)) in &rows {
            println!(
                "  run {clients:>2} | {b50:.3} / {b99:.3} | {o50:.3} / {o99:.3} | {rate:.0} | {:.2}",
                o99 / b99
            );
        }
        let median = |f: &dyn Fn(&Run) -> f64| {
            let mut v: Vec<f64> = rows.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (b50, b99) = (median(&|r| r.0.0), median(&|r| r.0.1));
        let (o50, o99, rate) = (median(&|r| r.1.0), median(&|r| r.1.1), median(&|r| r.1.2));
        println!(
            "median {clients:>2} | {b50:.3} / {b99:.3} | {o50:.3} / {o99:.3} | {rate:.0} | {:.2}",
            o99 / b99
        );
    }
    Ok(())
}

/// One run's figures: pgbench (p50, p99) and ours (p50, p99, reads/s).
type Run = ((f64, f64), (f64, f64, f64));

/// Customers, identities, addresses, a lead and two conversations each with five messages,
/// two notes (one in four expired), and a booked job with items for one in ten.
async fn generate(conn: &mut PgConnection, customers: i64) -> anyhow::Result<()> {
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut *conn)
        .await?;
    // The full-text index is built once at the end rather than row by row.
    sqlx::query("DROP INDEX \"Message_content_search_idx\"")
        .execute(&mut *conn)
        .await?;
    let steps: [(&str, &str); 9] = [
        (
            "Customer",
            r#"INSERT INTO "Customer" (id, name, phone, email, created_at)
            SELECT md5('cu' || i)::uuid, 'Customer ' || i, '+1404' || lpad(i::text, 7, '0'),
                   'c' || i || '@example.com', now() - (i % 700) * interval '1 day'
            FROM generate_series($1::bigint, $2) i"#,
        ),
        (
            "CustomerIdentity",
            r#"INSERT INTO "CustomerIdentity" (customer_id, kind, value, raw, verified_at)
            SELECT md5('cu' || i)::uuid, 'phone', '+1404' || lpad(i::text, 7, '0'),
                   '(404) ' || lpad(i::text, 7, '0'), now()
            FROM generate_series($1::bigint, $2) i"#,
        ),
        (
            "CustomerAddress",
            r#"INSERT INTO "CustomerAddress" (customer_id, address, zip, is_primary)
            SELECT md5('cu' || i)::uuid, (i % 9000 + 100) || ' Main St, Canton GA 30114', '30114', true
            FROM generate_series($1::bigint, $2) i"#,
        ),
        (
            "Lead",
            r#"INSERT INTO "Lead" (id, channel, phone, customer_id, stage, address)
            SELECT md5('le' || i)::uuid, 'sms', '+1404' || lpad(i::text, 7, '0'), md5('cu' || i)::uuid,
                   CASE WHEN i % 10 = 0 THEN 'booked' ELSE 'done' END::"LeadStage",
                   (i % 9000 + 100) || ' Main St, Canton GA 30114'
            FROM generate_series($1::bigint, $2) i"#,
        ),
        (
            "Conversation",
            r#"INSERT INTO "Conversation" (id, customer_id, lead_id, channel, external_id, started_at, last_message_at)
            SELECT md5('co' || i || '-' || k)::uuid, md5('cu' || i)::uuid,
                   CASE WHEN k = 2 THEN md5('le' || i)::uuid END, 'sms',
                   '+1404' || lpad(i::text, 7, '0'),
                   now() - (30 * (3 - k)) * interval '1 day', now() - (30 * (3 - k) - 1) * interval '1 day'
            FROM generate_series($1::bigint, $2) i, generate_series(1, 2) k"#,
        ),
        (
            "Message",
            r#"INSERT INTO "Message" (conversation_id, role, content, created_at)
            SELECT md5('co' || i || '-' || k)::uuid,
                   CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END::"MessageRole",
                   (ARRAY['Hi, I need a couch, a fridge and 5 bags of trash picked up',
                          'Thanks! For a couch, a refrigerator and 5 bags of trash your estimate is $412. What''s the pickup address?',
                          '123 Main St, Canton GA 30114, the gate code is 4321',
                          'Pickup windows: 1) Tue 9-11am 2) Tue 1-3pm 3) Wed 9-11am. Reply 1, 2 or 3.',
                          '1, and watch out for the dog in the yard'])[m],
                   now() - (30 * (3 - k)) * interval '1 day' + m * interval '1 minute'
            FROM generate_series($1::bigint, $2) i, generate_series(1, 2) k, generate_series(1, 5) m"#,
        ),
        (
            "MemoryNote",
            r#"INSERT INTO "MemoryNote" (customer_id, content, metadata, expires_at)
            SELECT md5('cu' || i)::uuid,
                   CASE WHEN n = 1 THEN 'Gate code: ' || (i % 9000 + 1000) ELSE 'Pets: dog in the yard' END,
                   jsonb_build_object('key', CASE WHEN n = 1 THEN 'access_code' ELSE 'pets' END),
                   CASE WHEN (i + n) % 4 = 0 THEN now() - interval '1 day' ELSE now() + interval '300 days' END
            FROM generate_series($1::bigint, $2) i, generate_series(1, 2) n"#,
        ),
        (
            "Job",
            r#"INSERT INTO "Job" (id, lead_id, customer_id, window_start, window_end, status)
            SELECT md5('jo' || i)::uuid, md5('le' || i)::uuid, md5('cu' || i)::uuid,
                   now() + (i % 14) * interval '1 day', now() + (i % 14) * interval '1 day' + interval '2 hours',
                   'booked'
            FROM generate_series($1::bigint, $2) i WHERE i % 10 = 0"#,
        ),
        (
            "JobItem",
            r#"INSERT INTO "JobItem" (job_id, description, quantity)
            SELECT md5('jo' || i)::uuid, d, q
            FROM generate_series($1::bigint, $2) i,
                 (VALUES ('couch', 1), ('bag of trash', 5)) AS items(d, q)
            WHERE i % 10 = 0"#,
        ),
    ];
    let started = Instant::now();
    let mut rows = 0u64;
    let chunk = 100_000i64;
    for (table, sql) in steps {
        let t = Instant::now();
        let mut n = 0u64;
        let mut from = 1i64;
        while from <= customers {
            let to = (from + chunk - 1).min(customers);
            n += sqlx::query(sql)
                .bind(from)
                .bind(to)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            from = to + 1;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "generated {n:>10} {table:<17} in {secs:>6.1} s ({:.0} rows/s)",
            n as f64 / secs
        );
        rows += n;
    }
    let t = Instant::now();
    sqlx::query(
        "CREATE INDEX \"Message_content_search_idx\" ON \"Message\"
             USING gin (to_tsvector('english'::regconfig, content))",
    )
    .execute(&mut *conn)
    .await?;
    println!(
        "built the full-text index in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE").execute(&mut *conn).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generator: {rows} rows in {secs:.1} s ({:.0} rows/s, indexes and VACUUM ANALYZE included)",
        rows as f64 / secs
    );
    Ok(())
}

fn pgbench(socket: &str, cwd: Option<&Path>, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new("pgbench");
    cmd.args(["-h", socket, "-p", "5432", "-U", "postgres"])
        .args(args);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// pgbench's select-only p50 and p99 in ms, from its per-transaction log.
fn pgbench_select_only(socket: &str, clients: usize, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let logs = tempfile::tempdir()?;
    let clients_arg = clients.to_string();
    let secs = seconds.to_string();
    pgbench(
        socket,
        Some(logs.path()),
        &[
            "-n",
            "-S",
            "-c",
            &clients_arg,
            "-j",
            "2",
            "-T",
            &secs,
            "-l",
            "pgbench",
        ],
    )?;
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(logs.path())? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            // client_id transaction_no time(us) script_no time_epoch time_us
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<f64>().ok())
            {
                latencies.push(us / 1000.0);
            }
        }
    }
    anyhow::ensure!(!latencies.is_empty(), "pgbench logged no transactions");
    latencies.sort_by(f64::total_cmp);
    Ok((percentile(&latencies, 0.50), percentile(&latencies, 0.99)))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Context reads of random customers by `clients` connections for `seconds`: p50, p99 (ms)
/// and reads per second.
async fn lookups(
    url: &str,
    customers: i64,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    // The ids are read once, outside the measurement.
    let mut conn = PgConnection::connect(url).await?;
    let ids: std::sync::Arc<Vec<Uuid>> = std::sync::Arc::new(
        sqlx::query_scalar("SELECT id FROM \"Customer\"")
            .fetch_all(&mut conn)
            .await?,
    );
    conn.close().await?;
    anyhow::ensure!(
        ids.len() as i64 == customers,
        "expected {customers} customers"
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let url = url.to_owned();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await?;
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (client as u64 + 1);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let id = ids[(state % ids.len() as u64) as usize];
                let t = Instant::now();
                let found = context::load(&mut conn, id, Budget::default()).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(
                    found.is_some_and(|c| c.messages.len() == 10),
                    "customer {id}"
                );
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by(f64::total_cmp);
    Ok((
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.len() as f64 / seconds as f64,
    ))
}
