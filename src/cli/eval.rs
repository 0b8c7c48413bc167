//! `junkquote eval`: plays the project's written conversations (`evals/*.toml`) against a
//! throwaway database, as customers texting over signed Twilio webhooks, and checks what each
//! one should have led to — items, price, the owner's approval, how it ended — from the database
//! and the replies. A measure of quality, not a test: it exits 0 whatever the pass rate, and
//! non-zero only when it could not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::serve::ContextArgs;
use super::{Cli, with_database};
use crate::app::{App, Config};
use crate::channels::signature::twilio_signature;
use crate::channels::twilio::TwilioConfig;
use crate::db::migrate::{self, MigrateOptions, MigrationSet};
use crate::domain::identity::{Identity, Region};
use crate::domain::progress::Progress;
use crate::domain::secret::Secret;
use crate::domain::stages::{JobStatus, Stage};
use crate::store::console::{conversations as console_conversations, views};
use crate::store::{customers, jobs, leads};

/// The auth token the evaluation's own server checks webhook signatures with (it serves no one
/// else, on 127.0.0.1, for the length of the run).
const TOKEN: &str = "eval-auth-token";
/// The public URL the evaluation's webhooks are signed over.
const WEBHOOK_URL: &str = "https://eval.junkquote.invalid/api/twilio/sms";
/// The company's number the customers text.
const COMPANY: &str = "+14045550000";

/// Options of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Which agent answers: the rule-based one, or the model configured by the
    /// JUNKQUOTE_LLM_* settings (as `serve` reads them).
    #[arg(long, value_enum, default_value = "rules")]
    agent: AgentKind,
    /// Play the whole set this many times (each on a database of its own) and report pass^k:
    /// the share of conversations that passed every time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Print each failed conversation and why it failed.
    #[arg(long)]
    verbose: bool,
    /// The directory of conversation files (`*.toml`, one category each).
    #[arg(default_value = "evals")]
    dir: PathBuf,
    #[command(flatten)]
    context: ContextArgs,
}

/// Which agent to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AgentKind {
    /// The rule-based agent (deterministic; one run says it all).
    Rules,
    /// The model at JUNKQUOTE_LLM_BASE_URL (JUNKQUOTE_LLM_MODEL, JUNKQUOTE_LLM_API_KEY).
    Llm,
}

/// One file of conversations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The category; the file's name without `.toml` when not given.
    category: Option<String>,
    #[serde(default, rename = "conversation")]
    conversations: Vec<Conversation>,
}

/// One written conversation and what it should lead to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    /// A short name, unique in its file.
    name: String,
    /// The customer's messages in order; `<window N>` picks the N-th offered window (sent as
    /// the customer's "N"), `<empty>` is an empty message.
    say: Vec<String>,
    /// The items the lead should hold, by catalogue name ("mattress" also counts its sizes,
    /// "mattress (twin)"), and how many; with `only_items` (the default) nothing else.
    items: Option<BTreeMap<String, u32>>,
    /// Whether `items` lists every item (no phantom ones beside them).
    #[serde(default = "yes")]
    only_items: bool,
    /// The newest quote's total, exact, in cents.
    price: Option<i64>,
    /// The newest quote's total at least this, in cents (a described volume).
    price_min: Option<i64>,
    /// The newest quote's total at most this, in cents.
    price_max: Option<i64>,
    /// Whether the newest quote goes to the owner for approval.
    approval: Option<bool>,
    /// How the conversation should stand after the last message.
    ending: Option<Ending>,
    /// The replies to the last message contain one of these (case-insensitive).
    #[serde(default)]
    reply_has: Vec<String>,
    /// The replies to the last message contain none of these (case-insensitive).
    #[serde(default)]
    reply_lacks: Vec<String>,
    /// The lead's pickup address, exactly (case and surrounding punctuation aside).
    address: Option<String>,
}

fn yes() -> bool {
    true
}

/// The endings the runner can tell apart from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Ending {
    /// A pickup is booked.
    Booked,
    /// The job was booked and then cancelled (none booked now).
    Cancelled,
    /// The quote waits for the owner.
    AwaitingOwner,
    /// Priced, and the customer asked for the address.
    AskedAddress,
    /// Pickup windows are offered.
    WindowsOffered,
    /// Nothing priced yet: the customer is asked what to haul.
    AskedItems,
    /// The conversation went to a person.
    Person,
    /// The customer opted out.
    OptedOut,
    /// A question was answered (`reply_has` says with what), nothing priced from it.
    Answered,
}

/// What one conversation came to.
#[derive(Debug)]
struct Outcome {
    passed: bool,
    why: Vec<String>,
}

/// Runs `eval`.
pub fn run(
    cli: &Cli,
    args: &EvalArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let sets = load(&args.dir)?;
    let total: usize = sets.iter().map(|(_, c)| c.len()).sum();
    if total == 0 {
        anyhow::bail!("no conversations in {}", args.dir.display());
    }
    let mut agent = args.context.agent()?;
    match args.agent {
        AgentKind::Rules => agent.llm = None,
        AgentKind::Llm if agent.llm.is_none() => anyhow::bail!(
            "--agent llm needs a model: set JUNKQUOTE_LLM_BASE_URL and JUNKQUOTE_LLM_MODEL"
        ),
        AgentKind::Llm => {}
    }
    let region = args.context.region();
    let migrations = Arc::new(MigrationSet::builtin()?);
    with_database(cli, runtime, true, async |db| {
        // passes[category][conversation] = how many runs it passed.
        let mut passes: Vec<Vec<u32>> = sets.iter().map(|(_, c)| vec![0; c.len()]).collect();
        for run in 0..args.runs {
            let scratch = db.throwaway().await?;
            let played = async {
                let mut conn = PgConnection::connect_with(&scratch.options).await?;
                migrate::up(
                    &mut conn,
                    &migrations,
                    None,
                    &MigrateOptions::default(),
                    &mut |_| {},
                )
                .await?;
                conn.close().await?;
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(scratch.options.clone())
                    .await?;
                let config = Config {
                    twilio: Some(TwilioConfig {
                        auth_token: Secret::new(TOKEN),
                        webhook_url: WEBHOOK_URL.into(),
                        account_sid: None,
                        from_number: None,
                        api_base: "https://api.twilio.invalid".into(),
                    }),
                    agent: agent.clone(),
                    ..Config::default()
                };
                let app = App::build(config, pool.clone(), migrations.clone());
                let result =
                    play_all(&app, &pool, &sets, region, args.verbose, run, &mut passes).await;
                pool.close().await;
                result
            }
            .await;
            scratch.drop_database().await?;
            played?;
        }
        report(&sets, &passes, args.runs, args.agent);
        Ok(ExitCode::SUCCESS)
    })
}

/// Every `*.toml` in `dir`, by category (sorted by name), each with its conversations.
fn load(dir: &Path) -> anyhow::Result<Vec<(String, Vec<Conversation>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut sets: Vec<(String, Vec<Conversation>)> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: File =
            toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
        let category = file.category.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        for c in &file.conversations {
            if c.say.is_empty() {
                anyhow::bail!("{}: conversation {:?} says nothing", path.display(), c.name);
            }
        }
        match sets.iter_mut().find(|(name, _)| *name == category) {
            Some((_, list)) => list.extend(file.conversations),
            None => sets.push((category, file.conversations)),
        }
    }
    Ok(sets)
}

/// Plays every conversation once against `app`, each as a new customer.
async fn play_all(
    app: &App,
    pool: &sqlx::PgPool,
    sets: &[(String, Vec<Conversation>)],
    region: Region,
    verbose: bool,
    run: u32,
    passes: &mut [Vec<u32>],
) -> anyhow::Result<()> {
    let (listener, addr) = crate::http::bind("127.0.0.1:0".parse()?).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.clone().serve_http(listener, async move {
        let _ = stopped.await;
    }));
    let player = Player {
        app,
        pool,
        client: reqwest::Client::new(),
        url: format!("http://{addr}/api/twilio/sms"),
        region,
    };
    let mut n: u32 = 0;
    let mut result = Ok(());
    'all: for (c, (category, conversations)) in sets.iter().enumerate() {
        for (i, conversation) in conversations.iter().enumerate() {
            n += 1;
            let phone = format!("+1404555{:04}", 1000 + n % 9000);
            let outcome = match player.play(&phone, n, conversation).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    result = Err(e.context(format!("{category}/{}", conversation.name)));
                    break 'all;
                }
            };
            if outcome.passed {
                passes[c][i] += 1;
            } else if verbose {
                println!(
                    "fail run={} category={category} name={:?} why={:?}",
                    run + 1,
                    conversation.name,
                    outcome.why.join("; ")
                );
            }
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    result
}

/// Plays conversations against one served application.
struct Player<'a> {
    app: &'a App,
    pool: &'a sqlx::PgPool,
    client: reqwest::Client,
    /// The SMS webhook's local URL.
    url: String,
    region: Region,
}

impl Player<'_> {
    /// Plays conversation number `n` from `phone` and checks what it led to.
    async fn play(
        &self,
        phone: &str,
        n: u32,
        conversation: &Conversation,
    ) -> anyhow::Result<Outcome> {
        let Player {
            app,
            pool,
            client,
            url,
            region,
        } = self;
        let region = *region;
        for (t, turn) in conversation.say.iter().enumerate() {
            let body = match turn.trim() {
                "<empty>" => String::new(),
                marker if marker.starts_with("<window ") && marker.ends_with('>') => {
                    marker["<window ".len()..marker.len() - 1].trim().to_owned()
                }
                _ => turn.clone(),
            };
            let params: Vec<(String, String)> = [
                ("MessageSid", format!("SMeval{n:05}x{t:03}")),
                ("From", phone.to_owned()),
                ("To", COMPANY.to_owned()),
                ("Body", body),
                ("NumMedia", "0".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let response = client
                .post(url.as_str())
                .header(
                    "X-Twilio-Signature",
                    twilio_signature(TOKEN, WEBHOOK_URL, &params),
                )
                .form(&params)
                .send()
                .await?;
            if !response.status().is_success() {
                anyhow::bail!("the SMS webhook answered {}", response.status());
            }
            // The answering workers reply on their own: wait for them before looking.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while crate::store::inbox::answering_in_flight(pool).await? {
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "a message was still unanswered after 30 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            app.run_jobs_until_idle()
                .await
                .map_err(|e| anyhow::anyhow!("background jobs: {e}"))?;
        }
        let mut conn = pool.acquire().await?;
        let identity = Identity::phone(phone, region)
            .ok_or_else(|| anyhow::anyhow!("{phone} is not a phone number"))?;
        let Some(customer) = customers::find(&mut conn, &identity).await? else {
            return Ok(Outcome {
                passed: false,
                why: vec!["no customer was recorded".into()],
            });
        };
        let history = views::history(&mut conn, customer.id).await?;
        let Some(conversation_id) = history.conversations.first().map(|c| c.id) else {
            return Ok(Outcome {
                passed: false,
                why: vec!["no conversation was recorded".into()],
            });
        };
        let seen = Seen::read(&mut conn, customer.id, conversation_id, &history).await?;
        // Checked: now its pickups give their crew time back, so that the conversations after it
        // find the schedule as open as the first one did (each is a customer of its own, not a
        // busy week).
        for job in history
            .jobs
            .iter()
            .filter(|j| j.status == JobStatus::Booked)
        {
            let _ = jobs::step(&mut conn, job.id, Progress::Cancelled, "eval").await?;
        }
        Ok(check(conversation, &seen))
    }
}

/// What the database and the replies say about one played conversation.
#[derive(Debug, Default)]
struct Seen {
    /// The lead's items: description and quantity.
    items: Vec<(String, u32)>,
    stage: Option<Stage>,
    address: Option<String>,
    /// The newest quote: total in cents and whether it needs the owner.
    quote: Option<(i64, bool)>,
    booked: bool,
    cancelled: bool,
    taken_over: bool,
    opted_out: bool,
    /// The replies after the customer's last message, joined.
    last_reply: String,
}

impl Seen {
    async fn read(
        conn: &mut PgConnection,
        customer_id: Uuid,
        conversation_id: Uuid,
        history: &views::History,
    ) -> anyhow::Result<Seen> {
        // Read in a transaction of its own: finding the lead locks its row until the end.
        let mut tx = conn.begin().await?;
        let lead = leads::lead_of_conversation(&mut tx, conversation_id).await?;
        tx.commit().await?;
        let messages = console_conversations::messages(conn, conversation_id, None).await?;
        let last_customer = messages.iter().rposition(|m| m.role == "user");
        let last_reply = messages
            .iter()
            .skip(last_customer.map_or(0, |i| i + 1))
            .filter(|m| m.role == "assistant")
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let taken_over = console_conversations::get(conn, conversation_id)
            .await?
            .is_some_and(|c| c.taken_over_by.is_some());
        let opted_out = views::opted_out(conn, customer_id).await?.is_some();
        let newest = history.quotes.iter().find(|q| q.lead_id == lead.id);
        Ok(Seen {
            items: lead
                .state
                .recognition
                .items
                .iter()
                .map(|i| (i.description.clone(), i.quantity))
                .collect(),
            stage: Some(lead.stage),
            address: lead.address.clone(),
            quote: newest.map(|q| (q.total_cents.get(), q.needs_approval)),
            booked: history.jobs.iter().any(|j| j.status == JobStatus::Booked),
            cancelled: history
                .jobs
                .iter()
                .any(|j| j.status == JobStatus::Cancelled),
            taken_over,
            opted_out,
            last_reply,
        })
    }
}

/// Whether a line's description is the expected kind: the same name, or a size of it
/// ("mattress" for "mattress (twin)").
fn is_kind(description: &str, kind: &str) -> bool {
    let d = description.trim().to_lowercase();
    let k = kind.trim().to_lowercase();
    d == k
        || d.strip_prefix(&k)
            .is_some_and(|rest| rest.starts_with(" ("))
}

/// An address as compared: lower case, inner spaces single, surrounding punctuation dropped.
fn plain_address(a: &str) -> String {
    a.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_lowercase()
}

/// Checks every expectation of `c` against what was seen.
fn check(c: &Conversation, seen: &Seen) -> Outcome {
    let mut why = Vec::new();
    if let Some(expected) = &c.items {
        for (kind, count) in expected {
            let got: u32 = seen
                .items
                .iter()
                .filter(|(d, _)| is_kind(d, kind))
                .map(|(_, q)| q)
                .sum();
            if got != *count {
                why.push(format!("{kind}: expected {count}, got {got}"));
            }
        }
        if c.only_items {
            let extra: Vec<String> = seen
                .items
                .iter()
                .filter(|(d, _)| !expected.keys().any(|k| is_kind(d, k)))
                .map(|(d, q)| format!("{q} × {d}"))
                .collect();
            if !extra.is_empty() {
                why.push(format!("unexpected items: {}", extra.join(", ")));
            }
        }
    }
    let total = seen.quote.map(|(t, _)| t);
    if let Some(price) = c.price
        && total != Some(price)
    {
        why.push(format!("price: expected {price}, got {total:?}"));
    }
    if let Some(min) = c.price_min
        && total.is_none_or(|t| t < min)
    {
        why.push(format!("price: expected at least {min}, got {total:?}"));
    }
    if let Some(max) = c.price_max
        && total.is_none_or(|t| t > max)
    {
        why.push(format!("price: expected at most {max}, got {total:?}"));
    }
    if let Some(approval) = c.approval {
        let got = seen.quote.is_some_and(|(_, a)| a);
        if got != approval {
            why.push(format!("approval: expected {approval}, got {got}"));
        }
    }
    let reply = seen.last_reply.to_lowercase();
    if !c.reply_has.is_empty()
        && !c
            .reply_has
            .iter()
            .any(|w| reply.contains(&w.to_lowercase()))
    {
        why.push(format!(
            "the last reply has none of {:?}: {:?}",
            c.reply_has, seen.last_reply
        ));
    }
    for word in &c.reply_lacks {
        if reply.contains(&word.to_lowercase()) {
            why.push(format!(
                "the last reply has {word:?}: {:?}",
                seen.last_reply
            ));
        }
    }
    if let Some(address) = &c.address {
        let got = seen.address.as_deref().map(plain_address);
        if got.as_deref() != Some(plain_address(address).as_str()) {
            why.push(format!(
                "address: expected {address:?}, got {:?}",
                seen.address
            ));
        }
    }
    if let Some(ending) = c.ending
        && let Some(problem) = ending_problem(ending, seen)
    {
        why.push(format!("ending {ending:?}: {problem}"));
    }
    Outcome {
        passed: why.is_empty(),
        why,
    }
}

/// Why the conversation did not end as `ending`, if it did not.
fn ending_problem(ending: Ending, seen: &Seen) -> Option<String> {
    let stage = seen.stage.map_or("none", |s| s.as_str());
    let state = || {
        format!(
            "stage {stage}, quote {:?}, booked {}, cancelled {}, taken over {}, opted out {}",
            seen.quote, seen.booked, seen.cancelled, seen.taken_over, seen.opted_out
        )
    };
    let held = match ending {
        Ending::Booked => seen.booked,
        Ending::Cancelled => seen.cancelled && !seen.booked,
        Ending::AwaitingOwner => seen.stage == Some(Stage::AwaitingOwner),
        Ending::AskedAddress => seen.stage == Some(Stage::Quoting) && seen.address.is_none(),
        Ending::WindowsOffered => seen.stage == Some(Stage::Scheduling),
        Ending::AskedItems => {
            seen.quote.is_none() && seen.items.is_empty() && !seen.taken_over && !seen.opted_out
        }
        Ending::Person => seen.taken_over,
        Ending::OptedOut => seen.opted_out,
        Ending::Answered => {
            !seen.taken_over
                && !seen.opted_out
                && !seen.last_reply.trim().is_empty()
                && !seen.last_reply.contains("Tell us what you'd like hauled")
        }
    };
    (!held).then(state)
}

/// Prints the pass rate per category and overall, as `key=value` lines (and pass^k when the
/// set was played more than once).
fn report(sets: &[(String, Vec<Conversation>)], passes: &[Vec<u32>], runs: u32, agent: AgentKind) {
    let agent = match agent {
        AgentKind::Rules => "rules",
        AgentKind::Llm => "llm",
    };
    let line = |name: &str, counts: &[u32]| {
        let total = counts.len() as u64 * u64::from(runs);
        let pass: u64 = counts.iter().map(|&p| u64::from(p)).sum();
        let rate = if total == 0 {
            0.0
        } else {
            pass as f64 / total as f64
        };
        let mut out =
            format!("{name} agent={agent} runs={runs} pass={pass} total={total} rate={rate:.2}");
        if runs > 1 {
            let all = counts.iter().filter(|&&p| p == runs).count();
            let share = if counts.is_empty() {
                0.0
            } else {
                all as f64 / counts.len() as f64
            };
            out.push_str(&format!(" pass^{runs}={share:.2}"));
        }
        out
    };
    for ((category, _), counts) in sets.iter().zip(passes) {
        println!("{}", line(&format!("category={category}"), counts));
    }
    let all: Vec<u32> = passes.iter().flatten().copied().collect();
    println!("{}", line("category=all", &all));
}
