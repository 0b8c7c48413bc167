//! `junkquote backfill` and `junkquote tighten`: taking over the original's data.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sqlx::Connection;

use super::migrate::print_progress;
use super::{Cli, with_database};
use crate::db::migrate::{self, MigrateOptions, MigrationSet};
use crate::takeover::backfill::{self, Event, Options, Report};
use crate::takeover::tighten;

/// Options of `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Report what would be created; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leads per transaction (each transaction is also a checkpoint).
    #[arg(long, default_value = "2000", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch_size: u32,
    /// Batches written at once, each on its own connection (the database's cores are the limit).
    #[arg(long, default_value = "2", value_parser = clap::value_parser!(u32).range(1..=32))]
    workers: u32,
}

/// Options of `tighten`.
#[derive(Debug, Args)]
pub struct TightenArgs {
    /// Give up on a lock after this many seconds (and retry) rather than block the table's users.
    /// Below PostgreSQL's deadlock_timeout (1 s), so that in a lock cycle with the service's
    /// writes the tightening is the one that gives up.
    #[arg(long, value_name = "SECONDS", default_value = "0.5")]
    lock_timeout: f64,
}

/// The progress bar's look: rate and ETA.
pub fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(
        "{msg:10} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} leads {per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

pub fn run_backfill(
    cli: &Cli,
    args: &BackfillArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let options = Options {
        batch_size: args.batch_size as usize,
        dry_run: args.dry_run,
        ..Options::default()
    };
    with_database(cli, runtime, true, async |db| {
        let mut conn = db.connect_bulk().await?;
        require_service_schema(&mut conn).await?;
        let mut workers = Vec::new();
        if !args.dry_run {
            for _ in 0..args.workers {
                workers.push(db.connect_bulk().await?);
            }
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message("planning");
        let report = backfill::run(&mut conn, workers, &options, &mut |event| match event {
            Event::Reading(n) => {
                bar.set_position(n);
                bar.tick();
            }
            Event::Planned {
                leads,
                resumed_batches,
            } => {
                if resumed_batches > 0 && leads > 0 {
                    bar.println(format!(
                        "resuming: {resumed_batches} batches were committed by an earlier run"
                    ));
                }
                bar.set_style(bar_style());
                bar.set_message("linking");
                bar.set_length(leads);
                bar.set_position(0);
                bar.reset_eta();
            }
            Event::Linked(n) => bar.set_position(n),
        })
        .await?;
        bar.finish_and_clear();
        conn.close().await?;
        print_report(&report);
        Ok(ExitCode::SUCCESS)
    })
}

fn print_report(r: &Report) {
    let verb = if r.dry_run { "would create" } else { "created" };
    println!(
        "backfill {} in {:.1} s",
        if r.dry_run { "dry run" } else { "done" },
        r.elapsed.as_secs_f64()
    );
    println!(
        "in:  {} leads, {} of them without a customer; {} Audit rows of those leads{}",
        r.leads_total,
        r.leads_unlinked,
        r.audit_rows,
        if r.resumed_batches > 0 && r.leads_unlinked > 0 {
            format!("; resumed after {} committed batches", r.resumed_batches)
        } else {
            String::new()
        }
    );
    println!(
        "out: {verb} {} customers, {} identities, {} addresses, {} conversations, {} messages \
         from Audit, {} more from stateMetadata (the rest were already in Audit)",
        r.customers, r.identities, r.addresses, r.conversations, r.messages_audit, r.messages_state
    );
    let linked = if r.dry_run { "would link" } else { "linked" };
    println!(
        "     {linked} {} leads ({} to customers made before this run, by the service or an \
         earlier backfill) and {} jobs",
        r.leads_linked, r.leads_to_existing, r.jobs_linked
    );
    if !r.dry_run {
        println!(
            "left without a customer: {} leads, {} jobs",
            r.leads_left, r.jobs_left
        );
        if r.changed_nothing() {
            println!("nothing changed: every lead was already backfilled");
        }
    }
    for (kind, (count, examples)) in &r.issues {
        println!("issues: {count} {}", describe(kind));
        for example in examples {
            println!("  {example}");
        }
        if *count > examples.len() as i64 {
            println!(
                "  … and {} more (all in junkquote.backfill_issue, kind '{kind}')",
                *count - examples.len() as i64
            );
        }
    }
}

fn describe(kind: &str) -> &str {
    match kind {
        "no_usable_identity" => "leads without a usable identity (each is a customer of its own)",
        "identity_conflict" => "leads with conflicting identities (not merged)",
        "audit_payload" => "Audit rows whose payload is not an object",
        "state_metadata" => "leads whose stateMetadata cannot be read",
        "state_history_entry" => "leads with stateMetadata history entries that are not messages",
        other => other,
    }
}

/// The backfill and tightening need the service's tables (everything but the tightening).
async fn require_service_schema(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let set = MigrationSet::builtin()?;
    let applied = migrate::applied(conn).await?;
    if let Some(problem) = migrate::service_schema_problem(&set, &applied) {
        anyhow::bail!("{problem}");
    }
    Ok(())
}

pub fn run_tighten(
    cli: &Cli,
    args: &TightenArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.001..=3600.0).contains(&args.lock_timeout),
        "--lock-timeout must be between 0.001 and 3600 seconds"
    );
    let options = MigrateOptions {
        lock_timeout: Duration::from_secs_f64(args.lock_timeout),
        ..MigrateOptions::default()
    };
    let set = MigrationSet::builtin()?;
    with_database(cli, runtime, true, async |db| {
        let mut conn = db.connect_bulk().await?;
        require_service_schema(&mut conn).await?;
        let applied = migrate::applied(&mut conn).await?;
        let current = migrate::current_version(&applied);
        let pending: Vec<_> = migrate::pending(&set, &applied)
            .into_iter()
            .filter(|m| m.requires_check().is_some())
            .collect();
        if pending.is_empty() {
            println!("nothing to tighten: the database is at migration {current}");
            return Ok(ExitCode::SUCCESS);
        }
        // Every check first: refuse before changing anything rather than stop halfway.
        let mut refused = false;
        for m in &pending {
            let Some(check) = m.requires_check() else {
                continue;
            };
            let outcome = tighten::precheck(&mut conn, check, backfill::EXAMPLES)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("migration {} names an unknown check {check:?}", m.version)
                })?;
            if outcome.passed() {
                println!("pre-check for migration {} ({}): passed", m.version, m.name);
                continue;
            }
            refused = true;
            println!("pre-check for migration {} ({}): FAILED", m.version, m.name);
            for offence in &outcome.offences {
                println!("  {} {}", offence.count, offence.what);
                for example in &offence.examples {
                    println!("    {example}");
                }
            }
        }
        if refused {
            conn.close().await?;
            anyhow::bail!(
                "tighten refused, nothing was changed: fix the rows listed above (`junkquote backfill` links leads and jobs), then run it again"
            );
        }
        migrate::up(&mut conn, &set, None, &options, &mut print_progress).await?;
        let after = migrate::current_version(&migrate::applied(&mut conn).await?);
        conn.close().await?;
        println!("tightened: the database is at migration {after}");
        Ok(ExitCode::SUCCESS)
    })
}
