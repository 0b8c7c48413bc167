//! `junkquote admin …`: operator credentials.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::{Cli, with_database};
use crate::domain::identity::normalize_email;
use crate::domain::password;
use crate::store::tokens;
use crate::store::users;

/// The `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an API token for the JSON API (printed once; only its hash is stored).
    CreateToken {
        /// What the token is for (shown as the actor of what it does).
        name: String,
        /// What it may do: `api` (the JSON API and the calendar feed) or `calendar` (the
        /// feed only, for calendar apps that keep the token in a URL).
        #[arg(long, value_enum, default_value_t = TokenScope::Api)]
        scope: TokenScope,
    },
    /// Create a console user; the password is read from standard input (one line).
    CreateUser {
        /// The email the user signs in with.
        email: String,
    },
}

/// A token's scope on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenScope {
    /// The JSON API under /api/v1, and the calendar feed.
    Api,
    /// The calendar feed only.
    Calendar,
}

impl From<TokenScope> for tokens::Scope {
    fn from(scope: TokenScope) -> Self {
        match scope {
            TokenScope::Api => tokens::Scope::Api,
            TokenScope::Calendar => tokens::Scope::Calendar,
        }
    }
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub fn run(
    cli: &Cli,
    cmd: &AdminCommand,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateToken { name, scope } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "the token's name must be 1 to 100 characters"
            );
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                super::require_current_schema(&mut conn).await?;
                let token = tokens::create(&mut conn, name, (*scope).into()).await?;
                println!("{token}");
                match scope {
                    TokenScope::Api => eprintln!(
                        "API token {name:?} created; it is shown only this once. Use it as: Authorization: Bearer <token>"
                    ),
                    TokenScope::Calendar => eprintln!(
                        "calendar token {name:?} created; it is shown only this once. Subscribe to /calendar.ics?token=<token>; it reads the feed and nothing else"
                    ),
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        AdminCommand::CreateUser { email } => {
            let email = normalize_email(email)
                .ok_or_else(|| anyhow::anyhow!("{email:?} is not an email address"))?;
            let password = read_password().map_err(|e| {
                anyhow::anyhow!("cannot read the password from standard input: {e}")
            })?;
            password::check(&password)?;
            let hash = password::hash(&password)
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            with_database(cli, runtime, true, async |db| {
                let mut conn = db.connect().await?;
                super::require_current_schema(&mut conn).await?;
                anyhow::ensure!(
                    users::create_user(&mut conn, &email, &hash).await?,
                    "a console user with the email {email} already exists"
                );
                eprintln!("console user {email} created; sign in at /admin/login");
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
