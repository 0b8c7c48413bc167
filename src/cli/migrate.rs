//! `junkquote migrate …`: apply, revert, show and lint migrations.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use sqlx::{Connection, PgConnection};

use super::{Cli, with_database};
use crate::db::migrate::{self, MigrateOptions, MigrationSet, Progress, lint};

/// The `migrate` subcommands.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations (all, or up to --to).
    Up {
        /// Stop after this version.
        #[arg(long, allow_negative_numbers = true)]
        to: Option<i64>,
        #[command(flatten)]
        source: Source,
    },
    /// Revert applied migrations down to --to (0 empties the schema).
    Down {
        /// The version to end at.
        #[arg(long, allow_negative_numbers = true)]
        to: i64,
        #[command(flatten)]
        source: Source,
    },
    /// Show which migrations are applied.
    Status {
        #[command(flatten)]
        source: Source,
    },
    /// Check migrations for mistakes by replaying them on a throwaway database.
    Lint {
        /// A directory of migrations (default: the built-in ones).
        dir: Option<PathBuf>,
    },
}

/// Which migrations to use.
#[derive(Debug, Args)]
pub struct Source {
    /// Use the migrations in this directory instead of the built-in ones (for developing them).
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Give up on a lock after this many seconds (and retry) rather than block the table's users.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    lock_timeout: Duration,
}

/// A number of seconds from 0.001 to 3600.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.001..=3600.0).contains(&value) {
        return Err(format!("{text} is out of range (0.001 to 3600 seconds)"));
    }
    Ok(Duration::from_secs_f64(value))
}

impl Source {
    fn load(&self) -> anyhow::Result<MigrationSet> {
        Ok(match &self.source {
            Some(dir) => MigrationSet::from_dir(dir)?,
            None => MigrationSet::builtin()?,
        })
    }

    fn options(&self) -> MigrateOptions {
        MigrateOptions {
            lock_timeout: self.lock_timeout,
            ..MigrateOptions::default()
        }
    }
}

pub fn run(
    cli: &Cli,
    cmd: &MigrateCommand,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match cmd {
        MigrateCommand::Up { to, source } => {
            let set = source.load()?;
            let options = source.options();
            check_target(&set, *to)?;
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                let done = migrate::up(&mut conn, &set, *to, &options, &mut print_progress).await?;
                if done.is_empty() {
                    println!(
                        "nothing to apply: the database is at migration {}",
                        version(&mut conn).await?
                    );
                }
                conn.close().await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        MigrateCommand::Down { to, source } => {
            let set = source.load()?;
            let options = source.options();
            check_target(&set, Some(*to))?;
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                let done =
                    migrate::down(&mut conn, &set, *to, &options, &mut print_progress).await?;
                if done.is_empty() {
                    println!("nothing to revert: the database is at migration {to}");
                }
                conn.close().await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        MigrateCommand::Status { source } => {
            let set = source.load()?;
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                let applied = migrate::applied(&mut conn).await?;
                conn.close().await?;
                let rows = migrate::status(&set, &applied);
                println!(
                    "database at migration {} of {}",
                    migrate::current_version(&applied),
                    set.latest()
                );
                let mut ok = true;
                for row in rows {
                    let state = match (&row.problem, row.applied_at) {
                        (Some(problem), _) => {
                            ok = false;
                            format!("PROBLEM: {problem}")
                        }
                        (None, Some(at)) => {
                            format!("applied {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
                        }
                        (None, None) if row.waits_for_check => "pending: held until its data \
                            pre-check passes (run `junkquote backfill`, then `junkquote tighten`); \
                            the migrations after it apply without it"
                            .to_owned(),
                        (None, None) => "pending".to_owned(),
                    };
                    println!("{:>5}  {:<32} {state}", row.version, row.name);
                }
                Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            })
        }
        MigrateCommand::Lint { dir } => {
            let set = match dir {
                Some(dir) => MigrationSet::from_dir(dir)?,
                None => MigrationSet::builtin()?,
            };
            with_database(cli, runtime, true, async |db| {
                let scratch = db.throwaway().await?;
                let result = async {
                    let mut conn = PgConnection::connect_with(&scratch.options).await?;
                    let findings = lint::lint(&set, &mut conn).await;
                    conn.close().await?;
                    anyhow::Ok(findings?)
                }
                .await;
                scratch.drop_database().await?;
                let findings = result?;
                let count = set.iter().count();
                if findings.is_empty() {
                    println!("ok: {count} migrations, no problems found");
                    return Ok(ExitCode::SUCCESS);
                }
                for finding in &findings {
                    println!("{finding}");
                }
                println!("{} problem(s) in {count} migrations", findings.len());
                Ok(ExitCode::FAILURE)
            })
        }
    }
}

/// Refuses an unknown target before anything (even the embedded cluster) is started.
fn check_target(set: &MigrationSet, target: Option<i64>) -> anyhow::Result<()> {
    if let Some(target) = target
        && !set.is_known(target)
    {
        return Err(migrate::MigrateError::UnknownTarget {
            target,
            known: set.known_versions(),
        }
        .into());
    }
    Ok(())
}

async fn version(conn: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(migrate::current_version(&migrate::applied(conn).await?))
}

/// Prints what a migration run does, as it does it.
pub fn print_progress(progress: Progress) {
    match progress {
        Progress::Waiting => eprintln!("waiting for another migrator to finish…"),
        Progress::Applied {
            version,
            name,
            elapsed,
        } => {
            println!("applied  {version:>4} {name} ({} ms)", elapsed.as_millis());
        }
        Progress::Reverted {
            version,
            name,
            elapsed,
        } => {
            println!("reverted {version:>4} {name} ({} ms)", elapsed.as_millis());
        }
        Progress::Held {
            version,
            name,
            reason,
        } => {
            eprintln!(
                "held migration {version} ({name}) and the tightening after it: {reason}; the \
                 service's own migrations go on without them"
            );
        }
        Progress::Adopted {
            version,
            state,
            prisma_migrations,
        } => {
            println!(
                "adopted  the original JunkQuoteAgent's database {state} ({prisma_migrations} \
                 Prisma migrations finished): recorded versions 1 to {version} as applied"
            );
        }
        Progress::LockRetry { version, attempt } => {
            eprintln!(
                "migration {version}: a lock was not granted in time; retrying (attempt {attempt})"
            );
        }
    }
}
