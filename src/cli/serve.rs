//! `junkquote serve`: the HTTP server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use sqlx::Connection;

use super::{Cli, migrate::print_progress, with_database};
use crate::http::{self, AppState};
use crate::store::migrate::{self, MigrateOptions, MigrationSet};

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "JUNKQUOTE_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Do not apply pending migrations at start (the server then reports not ready until they are).
    #[arg(long)]
    no_migrate: bool,
}

pub fn run(
    cli: &Cli,
    args: &ServeArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let migrations = Arc::new(MigrationSet::builtin()?);
    with_database(cli, runtime, async |db| {
        if !args.no_migrate {
            let mut conn = db.connect().await?;
            migrate::up(
                &mut conn,
                &migrations,
                None,
                &MigrateOptions::default(),
                &mut print_progress,
            )
            .await?;
            conn.close().await?;
        }
        let pool = db.pool(16).await?;
        let (listener, addr) = http::bind(args.addr).await?;
        tracing::info!(%addr, database = %db.redacted_url(), "listening");
        println!("junkquote listening on http://{addr}");
        let state = AppState {
            pool: pool.clone(),
            migrations,
        };
        http::serve(listener, state, shutdown_signal()).await?;
        pool.close().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = interrupt.await;
            return;
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
