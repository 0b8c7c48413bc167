//! The `junkquote` command line: one binary, a subcommand per job.
//!
//! Errors reach the user as one line, `error: what went wrong: why`, with a non-zero exit:
//! 1 for a failed command, 2 for a command line that could not be understood.

mod admin;
mod backfill;
mod db;
mod eval;
mod legacy;
mod migrate;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::db::pool::Database;

/// JunkQuote: quotes, approves and books junk-removal jobs over SMS, Messenger and web chat.
#[derive(Parser)]
#[command(name = "junkquote", version, about, propagate_version = true)]
struct Cli {
    /// PostgreSQL to use; without it, JunkQuote runs its own embedded PostgreSQL.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Where the embedded PostgreSQL keeps its files (used when no DATABASE_URL is set).
    #[arg(
        long,
        global = true,
        env = "JUNKQUOTE_DATA_DIR",
        default_value = "./.junkquote"
    )]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve(Box<serve::ServeArgs>),
    /// Apply, revert, inspect and lint schema migrations.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Check the database and print how to reach it.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Operator credentials.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Legacy data as the original JunkQuoteAgent wrote it, for rehearsals.
    #[command(subcommand)]
    Legacy(legacy::LegacyCommand),
    /// Customers, identities, conversations and messages from the original's leads and Audit
    /// rows; every lead and job linked to its customer. Safe to rerun and to interrupt.
    Backfill(backfill::BackfillArgs),
    /// After the backfill: NOT NULL customer links, unique normalised phone and email, one open
    /// conversation per lead (each after a pre-check that lists offending rows).
    Tighten(backfill::TightenArgs),
    /// Play the written conversations in evals/ against a throwaway database and print the
    /// pass rate per category (and pass^k over several runs).
    Eval(Box<eval::EvalArgs>),
}

impl Cli {
    /// Opens the database this invocation should use (starting the embedded one if needed).
    fn open_database(&self) -> anyhow::Result<Database> {
        let url = self
            .database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty());
        Ok(Database::open(url, &self.data_dir)?)
    }
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_tracing(matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        Command::Serve(args) => serve::run(&cli, args, &runtime),
        Command::Migrate(cmd) => migrate::run(&cli, cmd, &runtime),
        Command::Db(cmd) => db::run(&cli, cmd, &runtime),
        Command::Admin(cmd) => admin::run(&cli, cmd, &runtime),
        Command::Legacy(cmd) => legacy::run(&cli, cmd, &runtime),
        Command::Backfill(args) => backfill::run_backfill(&cli, args, &runtime),
        Command::Tighten(args) => backfill::run_tighten(&cli, args, &runtime),
        Command::Eval(args) => eval::run(&cli, args, &runtime),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as usual; anything else is a one-line error, exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    // clap spreads an error over several lines (the error, a tip, the usage); keep the error
    // and its tip, on one line.
    let rendered = e.render().to_string();
    let message = rendered
        .split("\n\nUsage:")
        .next()
        .unwrap_or_default()
        .split("\n\nFor more information")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message}; run `junkquote --help` for the commands and their options");
    ExitCode::from(2)
}

/// Logs go to stderr, as text for people or, with `JUNKQUOTE_LOG_FORMAT=json`, one JSON
/// object a line for machines (each line with the fields of the spans it was written in: a
/// request's id, method and path).
fn init_tracing(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("JUNKQUOTE_LOG_FORMAT")
        .as_deref()
        .map(str::trim)
    {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            // Every span, outermost first: a span opened inside a request still shows the
            // request's id.
            .with_span_list(true)
            .init(),
        Ok("" | "text") | Err(_) => builder.init(),
        Ok(other) => {
            builder.init();
            tracing::warn!(
                format = other,
                "unknown JUNKQUOTE_LOG_FORMAT (text or json); logging text"
            );
        }
    }
}

/// Runs `work` against the database, then leaves it (stopping the embedded cluster if this was
/// its last user), whatever `work` returned. SIGINT or SIGTERM abandons `work` (a migration in
/// flight rolls back with its connection) and still leaves the database in order; `serve`, which
/// handles those signals itself, passes `interruptible: false`.
fn with_database<T>(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    interruptible: bool,
    work: impl AsyncFnOnce(&Database) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let db = cli.open_database()?;
    let result = runtime.block_on(async {
        let run = async {
            db.prepare().await?;
            work(&db).await
        };
        if !interruptible {
            return run.await;
        }
        tokio::select! {
            result = run => result,
            () = shutdown_signal() => Err(anyhow::anyhow!("interrupted; nothing was left half done")),
        }
    });
    db.close()?;
    result
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops junkquote");
            let _ = interrupt.await;
            return;
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

/// Refuses to go on unless every built-in migration the service needs is applied (unchanged).
async fn require_current_schema(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    use crate::db::migrate::{self, MigrationSet};
    let set = MigrationSet::builtin()?;
    let applied = migrate::applied(conn).await?;
    if let Some(problem) = migrate::service_schema_problem(&set, &applied) {
        anyhow::bail!("{problem}");
    }
    Ok(())
}
