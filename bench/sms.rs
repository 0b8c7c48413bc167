//! Benchmark: inbound SMS webhooks end to end (signature check, storage, the rule-based agent,
//! the reply queued in the outbox) from many concurrent senders, against pgbench's TPC-B rate
//! on the same PostgreSQL in the same run.
//!
//! `cargo run --release --example bench_sms -- [--clients N] [--seconds S]`
//!
//! It starts its own PostgreSQL (durable settings, as in production) under the temporary
//! directory, runs pgbench there, then the service in-process on a free port, and prints
//! messages/s, p50/p99 latency and the ratio to pgbench's transactions/s.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use junkquote::app::{App, Config};
use junkquote::channels::signature::twilio_signature;
use junkquote::channels::twilio::TwilioConfig;
use junkquote::db::embedded::{Cluster, ClusterConfig};
use junkquote::db::migrate::{self, MigrateOptions, MigrationSet};
use junkquote::domain::secret::Secret;
use junkquote::http;
use sqlx::Connection;

#[path = "args.rs"]
mod args;

use args::arg;

const TOKEN: &str = "bench-token";
const WEBHOOK_URL: &str = "https://bench.example/api/twilio/sms";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = arg("--clients", 16) as usize;
    let seconds = arg("--seconds", 20);
    let dir = std::env::temp_dir().join(format!("jq-bench-{}", std::process::id()));
    let cluster = Cluster::start(&ClusterConfig {
        data_dir: dir.clone(),
        settings: vec![("max_connections".into(), "200".into())],
    })?;
    let result = run(&cluster, clients, seconds).await;
    cluster.release()?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(cluster: &Cluster, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    sqlx::query("CREATE DATABASE junkquote")
        .execute(&mut admin)
        .await?;
    sqlx::query("CREATE DATABASE pgbench")
        .execute(&mut admin)
        .await?;

    // The database's own limit: pgbench TPC-B with the same number of clients.
    let socket = cluster.socket_dir().display().to_string();
    let pgbench = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("pgbench")
            .args(["-h", &socket, "-p", "5432", "-U", "postgres"])
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pgbench: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let scale = clients.max(1).to_string();
    pgbench(&["-i", "-q", "-s", &scale, "pgbench"])?;
    let threads = "2";
    let clients_arg = clients.to_string();
    let secs = seconds.to_string();
    let report = pgbench(&[
        "-n",
        "-c",
        &clients_arg,
        "-j",
        threads,
        "-T",
        &secs,
        "pgbench",
    ])?;
    let tps: f64 = report
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {report}"))?;
    let pg_latency: f64 = report
        .lines()
        .find(|l| l.starts_with("latency average = "))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);

    // The service, in-process, with the SMS channel on and no sending credentials (replies are
    // queued and held: sending is Twilio's time, not ours).
    let url = cluster.url("junkquote");
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let set = MigrationSet::builtin()?;
    migrate::up(
        &mut conn,
        &set,
        None,
        &MigrateOptions::default(),
        &mut |_| {},
    )
    .await?;
    conn.close().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .connect(&url)
        .await?;
    let config = Config {
        twilio: Some(TwilioConfig {
            auth_token: Secret::new(TOKEN),
            webhook_url: WEBHOOK_URL.into(),
            account_sid: None,
            from_number: None,
            api_base: "http://127.0.0.1:9".into(),
        }),
        ..Config::default()
    };
    let app = App::build(config, pool.clone(), Arc::new(set));
    let (listener, addr) = http::bind("127.0.0.1:0".parse()?).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The outbox job runs (it holds every reply: no credentials); the other jobs have nothing
    // to do in this load.
    let server = tokio::spawn(app.serve(listener, async move {
        let mut stopped = stopped;
        let _ = stopped.changed().await;
    }));
    let endpoint = format!("http://{addr}/api/twilio/sms");

    // Each client plays whole conversations, one after another, each from a new number:
    // items → price, address → windows, "1" → booking.
    let script = [
        "Hi, I need a couch, a fridge and 5 bags of trash picked up",
        "123 Main St, Canton GA 30114",
        "1",
    ];
    let warmup = Duration::from_secs(3);
    let started = Instant::now();
    let deadline = started + warmup + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut conversation = 0u64;
            'outer: loop {
                let phone = format!("+1404{:03}{:04}", client, conversation % 10_000);
                for (n, text) in script.iter().enumerate() {
                    if Instant::now() >= deadline {
                        break 'outer;
                    }
                    let sid = format!("SMb{client}x{conversation}x{n}");
                    let params: Vec<(String, String)> = [
                        ("MessageSid", sid.as_str()),
                        ("From", phone.as_str()),
                        ("Body", text),
                    ]
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                    let signature = twilio_signature(TOKEN, WEBHOOK_URL, &params);
                    let sent = Instant::now();
                    let response = http
                        .post(&endpoint)
                        .header("X-Twilio-Signature", signature)
                        .form(&params)
                        .send()
                        .await;
                    let elapsed = sent.elapsed();
                    let ok = matches!(&response, Ok(r) if r.status().is_success());
                    if sent >= started + warmup {
                        if ok {
                            latencies.push(elapsed);
                        } else {
                            errors += 1;
                        }
                    }
                }
                conversation += 1;
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let _ = stop.send(true);
    server.await??;
    let answered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM \"Message\" WHERE role = 'assistant'")
            .fetch_one(&pool)
            .await?;
    let booked: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Job\"")
        .fetch_one(&pool)
        .await?;
    pool.close().await;

    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    let rate = latencies.len() as f64 / seconds as f64;
    println!("clients={clients} seconds={seconds}");
    println!("pgbench_tpcb_tps={tps:.1} pgbench_latency_avg_ms={pg_latency:.2}");
    println!(
        "sms_messages={} errors={errors} sms_per_sec={rate:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!("ratio_sms_per_tpcb={:.3}", rate / tps);
    println!("assistant_replies_total={answered} jobs_booked_total={booked}");
    Ok(())
}
