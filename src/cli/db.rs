//! `junkquote db …`: verify the schema, print the connection URL, stop the embedded cluster, back
//! up and restore.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use sqlx::Connection;

use super::{Cli, with_database};
use crate::db::backup::{self, Target, Tools};
use crate::db::migrate::{MigrationSet, verify};
use crate::takeover::quality;

/// The `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Compare the live schema with what the applied migrations promise.
    Verify,
    /// The data-quality gates, each with its count; fails when a required gate fails.
    Check,
    /// Print the database URL (the embedded PostgreSQL is started and kept running).
    Url,
    /// Let the embedded PostgreSQL stop (now, unless other junkquote processes use it).
    Stop,
    /// Write a backup (pg_dump's custom format, one consistent snapshot); embedded: into the
    /// data directory's backups/, else into the current directory.
    Backup {
        /// Where to write it (never a half file: written beside it, then renamed).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Restore a backup into the database, which must be empty (a new data directory, or an
    /// empty DATABASE_URL database); the file is checked whole first.
    Restore {
        /// The backup file (`db backup`'s).
        file: PathBuf,
        /// Replace everything in a database that is not empty.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(
    cli: &Cli,
    cmd: &DbCommand,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Verify => {
            let set = MigrationSet::builtin()?;
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                let report = verify::verify(&mut conn, &set).await?;
                conn.close().await?;
                println!(
                    "total_tables={} new_tables={}",
                    report.total_tables, report.new_tables
                );
                if report.differences.is_empty() {
                    println!("schema matches migration {}", report.version);
                    return Ok(ExitCode::SUCCESS);
                }
                for difference in &report.differences {
                    println!("difference: {difference}");
                }
                println!(
                    "schema differs from migration {} in {} place(s)",
                    report.version,
                    report.differences.len()
                );
                Ok(ExitCode::FAILURE)
            })
        }
        DbCommand::Check => with_database(cli, runtime, true, async |db| {
            let mut conn = db.connect().await?;
            super::require_current_schema(&mut conn).await?;
            let gates = quality::check(&mut conn).await?;
            conn.close().await?;
            let mut failed = 0;
            for gate in &gates {
                let verdict = match (gate.required, gate.passed()) {
                    (false, _) => "info",
                    (true, true) => "PASS",
                    (true, false) => {
                        failed += 1;
                        "FAIL"
                    }
                };
                println!("{verdict:<4} {:>10}  {}", gate.count, gate.name);
            }
            if failed == 0 {
                println!("all required gates pass");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{failed} required gate(s) failed");
                Ok(ExitCode::FAILURE)
            }
        }),
        DbCommand::Url => with_database(cli, runtime, true, async |db| {
            if let Some(cluster) = db.cluster() {
                cluster.pin()?;
                eprintln!(
                    "the embedded PostgreSQL stays running; `junkquote db stop` lets it stop"
                );
            }
            println!("{}", db.url());
            Ok(ExitCode::SUCCESS)
        }),
        DbCommand::Stop => {
            anyhow::ensure!(
                cli.database_url
                    .as_deref()
                    .is_none_or(|u| u.trim().is_empty()),
                "db stop stops the embedded PostgreSQL; with DATABASE_URL set there is none to stop"
            );
            with_database(cli, runtime, true, async |db| {
                if let Some(cluster) = db.cluster() {
                    cluster.unpin()?;
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        DbCommand::Backup { to } => {
            let tools = Tools::find()?;
            with_database(cli, runtime, true, async |db| {
                let target = Target::from_url(db.url())?;
                let to = match (to, db.cluster()) {
                    (Some(to), _) => to.clone(),
                    (None, Some(_)) => {
                        let dir = cli.data_dir.join("backups");
                        backup::ensure_dir(&dir)?;
                        dir.join(backup::file_name(chrono::Utc::now()))
                    }
                    (None, None) => PathBuf::from(format!(
                        "{}-{}",
                        target.database(),
                        backup::file_name(chrono::Utc::now())
                    )),
                };
                let written =
                    tokio::task::spawn_blocking(move || backup::backup(&tools, &target, &to))
                        .await??;
                println!("{} ({} bytes)", written.path.display(), written.bytes);
                Ok(ExitCode::SUCCESS)
            })
        }
        DbCommand::Restore { file, force } => {
            let tools = Tools::find()?;
            with_database(cli, runtime, true, async |db| {
                let target = Target::from_url(db.url())?;
                let mut conn = db.connect().await?;
                let restored = backup::restore(&tools, &target, &mut conn, file, *force).await;
                conn.close().await?;
                restored?;
                println!("restored {} into {}", file.display(), target.database());
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
