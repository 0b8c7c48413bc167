//! `junkquote db …`: verify the schema, print the connection URL, stop the embedded cluster.

use std::process::ExitCode;

use clap::Subcommand;
use sqlx::Connection;

use super::{Cli, with_database};
use crate::store::migrate::{MigrationSet, verify};

/// The `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Compare the live schema with what the applied migrations promise.
    Verify,
    /// Print the database URL (the embedded PostgreSQL is started and kept running).
    Url,
    /// Let the embedded PostgreSQL stop (now, unless other junkquote processes use it).
    Stop,
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
    }
}
