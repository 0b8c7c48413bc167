//! `junkquote legacy seed`: realistic legacy data, for rehearsing the takeover.

use std::process::ExitCode;

use clap::Subcommand;
use sqlx::Connection;

use super::{Cli, with_database};
use crate::takeover::legacy;

/// The `legacy` subcommands.
#[derive(Debug, Subcommand)]
pub enum LegacyCommand {
    /// Write deterministic legacy leads, Audit rows, quotes and jobs as the original did.
    Seed {
        /// How many leads.
        #[arg(long)]
        leads: u64,
        /// The seed: the same seed and count give the same rows.
        #[arg(long, default_value = "1")]
        seed: i64,
    },
}

pub fn run(
    cli: &Cli,
    cmd: &LegacyCommand,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match cmd {
        LegacyCommand::Seed { leads, seed } => with_database(cli, runtime, true, async |db| {
            let mut conn = db.connect_bulk().await?;
            let exists = legacy::has_legacy_schema(&mut conn).await?;
            anyhow::ensure!(
                exists,
                "there is no \"Lead\" table; run `junkquote migrate up --to 1` (the original's schema) or later first"
            );
            let bar = indicatif::ProgressBar::new(*leads);
            bar.set_style(super::backfill::bar_style());
            let seeded = legacy::seed(&mut conn, *leads, *seed, &mut |done| {
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            conn.close().await?;
            println!(
                "seeded {} leads, {} audit rows, {} quotes, {} jobs in {:.1} s",
                seeded.leads, seeded.audits, seeded.quotes, seeded.jobs, seeded.seconds
            );
            Ok(ExitCode::SUCCESS)
        }),
    }
}
