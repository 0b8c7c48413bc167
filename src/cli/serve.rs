//! `junkquote serve`: the HTTP server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use sqlx::Connection;

use super::{Cli, migrate::print_progress, shutdown_signal, with_database};
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
    with_database(cli, runtime, false, async |db| {
        if !args.no_migrate {
            let migrate = async {
                let mut conn = db.connect().await?;
                let options = MigrateOptions::default();
                migrate::up(&mut conn, &migrations, None, &options, &mut print_progress).await?;
                conn.close().await?;
                anyhow::Ok(())
            };
            tokio::select! {
                result = migrate => result?,
                () = shutdown_signal() => anyhow::bail!("interrupted while migrating; nothing was left half done"),
            }
        }
        let pool = db.pool(16).await?;
        let (listener, addr) = http::bind(args.addr).await?;
        tracing::info!(%addr, database = %db.redacted_url(), "listening");
        println!("junkquote listening on http://{addr}");
        let state = AppState {
            pool: pool.clone(),
            migrations,
        };
        let shutdown = async {
            shutdown_signal().await;
            tracing::info!("shutting down");
        };
        http::serve(listener, state, shutdown).await?;
        pool.close().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
