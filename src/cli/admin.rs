//! `junkquote admin …`: operator credentials.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Cli, with_database};
use crate::store::tokens;

/// The `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an API token for the JSON API (printed once; only its hash is stored).
    CreateToken {
        /// What the token is for (shown as the actor of what it does).
        name: String,
    },
}

pub fn run(
    cli: &Cli,
    cmd: &AdminCommand,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateToken { name } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "the token's name must be 1 to 100 characters"
            );
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                super::require_current_schema(&mut conn).await?;
                let token = tokens::create(&mut conn, name).await?;
                println!("{token}");
                eprintln!(
                    "API token {name:?} created; it is shown only this once. Use it as: Authorization: Bearer <token>"
                );
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
