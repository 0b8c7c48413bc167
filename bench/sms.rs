//! Benchmark: inbound SMS webhooks, two figures, against pgbench's TPC-B rate on the same
//! PostgreSQL in the same run:
//!
//! - **acknowledgement**: a Twilio-signed webhook → `200` with the message durable (verified,
//!   stored once); clients send as fast as they are acknowledged, while the answering workers
//!   answer behind them;
//! - **replies**: a webhook → its reply queued in the outbox (the rule-based agent, in a worker);
//!   each client waits for its reply before it sends the next message.
//!
//! `cargo run --release --example bench_sms -- [--clients N] [--seconds S] [--runs R]`
//!
//! It starts its own PostgreSQL (durable settings, as in production) under the temporary
//! directory; each run measures pgbench, then acknowledgement, then (once the backlog is
//! answered) replies, on a fresh database; the last lines are the medians of the runs.

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
use junkquote::jobs::answer::Answerer;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

#[path = "args.rs"]
mod args;

use args::arg;

const TOKEN: &str = "bench-token";
const WEBHOOK_URL: &str = "https://bench.example/api/twilio/sms";
/// Each client plays whole conversations, one after another, each from a new number:
/// items → price, address → windows, "1" → booking.
const SCRIPT: [&str; 3] = [
    "Hi, I need a couch, a fridge and 5 bags of trash picked up",
    "123 Main St, Canton GA 30114",
    "1",
];
const WARMUP: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = arg("--clients", 16) as usize;
    let seconds = arg("--seconds", 15);
    let runs = arg("--runs", 3).max(1);
    let dir = std::env::temp_dir().join(format!("jq-bench-{}", std::process::id()));
    let cluster = Cluster::start(&ClusterConfig {
        data_dir: dir.clone(),
        settings: vec![("max_connections".into(), "200".into())],
    })?;
    let result = all_runs(&cluster, clients, seconds, runs).await;
    cluster.release()?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    tps: f64,
    ack_per_sec: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    reply_per_sec: f64,
    reply_p50_ms: f64,
    reply_p99_ms: f64,
}

async fn all_runs(
    cluster: &Cluster,
    clients: usize,
    seconds: u64,
    runs: u64,
) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    sqlx::query("CREATE DATABASE pgbench")
        .execute(&mut admin)
        .await?;
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
    println!("clients={clients} seconds={seconds} runs={runs}");
    let mut all = Vec::new();
    for run in 1..=runs {
        // The database's own limit: pgbench TPC-B with the same number of clients.
        let clients_arg = clients.to_string();
        let secs = seconds.to_string();
        let report = pgbench(&["-n", "-c", &clients_arg, "-j", "2", "-T", &secs, "pgbench"])?;
        let tps: f64 = report
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {report}"))?;
        let name = format!("junkquote{run}");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let mut figures = service(cluster, &name, clients, seconds).await?;
        figures.tps = tps;
        println!(
            "run={run} pgbench_tpcb_tps={tps:.1} ack_per_sec={:.1} ack_p50_ms={:.2} ack_p99_ms={:.2} reply_per_sec={:.1} reply_p50_ms={:.2} reply_p99_ms={:.2}",
            figures.ack_per_sec,
            figures.ack_p50_ms,
            figures.ack_p99_ms,
            figures.reply_per_sec,
            figures.reply_p50_ms,
            figures.reply_p99_ms
        );
        all.push(figures);
    }
    let median = |f: fn(&Figures) -> f64| -> f64 {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("median of {runs} runs:");
    println!("pgbench_tpcb_tps={:.1}", median(|f| f.tps));
    println!("ack_per_sec={:.1}", median(|f| f.ack_per_sec));
    println!("ack_p50_ms={:.2}", median(|f| f.ack_p50_ms));
    println!("ack_p99_ms={:.2}", median(|f| f.ack_p99_ms));
    println!(
        "ratio_ack_per_tpcb={:.3}",
        median(|f| f.ack_per_sec / f.tps)
    );
    println!("reply_per_sec={:.1}", median(|f| f.reply_per_sec));
    println!("reply_p50_ms={:.2}", median(|f| f.reply_p50_ms));
    println!("reply_p99_ms={:.2}", median(|f| f.reply_p99_ms));
    println!(
        "ratio_reply_per_tpcb={:.3}",
        median(|f| f.reply_per_sec / f.tps)
    );
    Ok(())
}

/// The service on database `name`, in-process, with the SMS channel on and no sending
/// credentials (replies are queued and held: sending is Twilio's time, not ours).
async fn service(
    cluster: &Cluster,
    name: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let url = cluster.url(name);
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
    // The pool `serve` opens, and its default number of answering workers.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
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
    let answers = app.state().answers.clone();
    let (listener, addr) = http::bind("127.0.0.1:0".parse()?).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The outbox job runs (it holds every reply: no credentials); the other jobs have nothing
    // to do in this load.
    let server = tokio::spawn(app.serve(listener, async move {
        let mut stopped = stopped;
        let _ = stopped.changed().await;
    }));
    let endpoint = format!("http://{addr}/api/twilio/sms");

    let acks = load(&endpoint, clients, seconds, "a", None).await?;
    // The acknowledged backlog is answered before replies are measured.
    let drained = Instant::now();
    while unanswered(&pool).await? > 0 && drained.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = drained.elapsed().as_secs_f64();
    let replies = load(
        &endpoint,
        clients,
        seconds,
        "r",
        Some((pool.clone(), answers)),
    )
    .await?;
    let _ = stop.send(true);
    server.await??;
    let left = unanswered(&pool).await?;
    pool.close().await;

    let (ack, ack_errors) = acks;
    let (reply, reply_errors) = replies;
    let figures = Figures {
        tps: f64::NAN,
        ack_per_sec: ack.len() as f64 / seconds as f64,
        ack_p50_ms: pct(&ack, 0.50),
        ack_p99_ms: pct(&ack, 0.99),
        reply_per_sec: reply.len() as f64 / seconds as f64,
        reply_p50_ms: pct(&reply, 0.50),
        reply_p99_ms: pct(&reply, 0.99),
    };
    println!(
        "  acks={} ack_errors={ack_errors} backlog_answered_in_s={drain_secs:.1} replies={} reply_errors={reply_errors} unanswered_at_end={left}",
        ack.len(),
        reply.len()
    );
    Ok(figures)
}

/// Stored messages not yet answered.
async fn unanswered(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM \"InboundMessage\" WHERE processed_at IS NULL")
        .fetch_one(pool)
        .await
}

/// `clients` senders for `seconds` after the warm-up; each waits for the acknowledgement, and
/// with `replies` also for its reply to be queued. Returns the latencies measured and the errors.
async fn load(
    endpoint: &str,
    clients: usize,
    seconds: u64,
    tag: &'static str,
    replies: Option<(PgPool, Answerer)>,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let started = Instant::now();
    let deadline = started + WARMUP + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let endpoint = endpoint.to_owned();
        let replies = replies.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut conversation = 0u64;
            let area = if tag == "a" { 404 } else { 678 };
            'outer: loop {
                let phone = format!("+1{area}{:03}{:04}", client, conversation % 10_000);
                for (n, text) in SCRIPT.iter().enumerate() {
                    if Instant::now() >= deadline {
                        break 'outer;
                    }
                    let sid = format!("SM{tag}{client}x{conversation}x{n}");
                    let params: Vec<(String, String)> = [
                        ("MessageSid", sid.as_str()),
                        ("From", phone.as_str()),
                        ("Body", text),
                    ]
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                    let signature = twilio_signature(TOKEN, WEBHOOK_URL, &params);
                    let mut told = replies.as_ref().map(|(_, answers)| answers.subscribe());
                    let sent = Instant::now();
                    let response = http
                        .post(&endpoint)
                        .header("X-Twilio-Signature", signature)
                        .form(&params)
                        .send()
                        .await;
                    let mut ok = matches!(&response, Ok(r) if r.status().is_success());
                    if ok && let (Some((pool, _)), Some(told)) = (&replies, told.as_mut()) {
                        ok = replied(pool, told, &sid).await.unwrap_or(false);
                    }
                    let elapsed = sent.elapsed();
                    if sent >= started + WARMUP {
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
    latencies.sort();
    Ok((latencies, errors))
}

/// Waits (up to 30 s) for the message `sid` to be answered: its reply is then queued, in the
/// same transaction. Looks at the database when a worker says its conversation was answered.
async fn replied(
    pool: &PgPool,
    told: &mut tokio::sync::broadcast::Receiver<Uuid>,
    sid: &str,
) -> sqlx::Result<bool> {
    let (conversation_id, message_id): (Uuid, Uuid) = sqlx::query_as(
        "SELECT conversation_id, message_id FROM \"InboundMessage\"
         WHERE provider = 'twilio' AND provider_message_id = $1",
    )
    .bind(sid)
    .fetch_one(pool)
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done: bool = sqlx::query_scalar(
            "SELECT processed_at IS NOT NULL FROM \"InboundMessage\" WHERE message_id = $1",
        )
        .bind(message_id)
        .fetch_one(pool)
        .await?;
        if done {
            return Ok(true);
        }
        // Until this conversation's pass ends (or a while, in case the notice was missed).
        let wait = async {
            loop {
                match told.recv().await {
                    Ok(id) if id == conversation_id => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        tokio::select! {
            () = wait => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(false),
        }
    }
}

/// The `p` quantile of sorted `latencies`, in ms.
fn pct(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[i].as_secs_f64() * 1000.0
}
