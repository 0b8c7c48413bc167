//! API tokens for the JSON API (`junkquote admin create-token`): shown once, stored hashed,
//! each with a scope.

use sqlx::{PgConnection, PgPool};

use crate::domain::token::{hash_token, new_token};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole JSON API under `/api/v1`, and the calendar feed.
    Api,
    /// The calendar feed only: calendar apps keep the token in a URL, which proxies log.
    Calendar,
}

impl Scope {
    /// The name stored in `"ApiToken".scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::Calendar => "calendar",
        }
    }

    fn parse(name: &str) -> Option<Scope> {
        match name {
            "api" => Some(Scope::Api),
            "calendar" => Some(Scope::Calendar),
            _ => None,
        }
    }
}

/// A live token: its name (the actor of what it does) and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The name it was created with.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// Creates a token named `name` with `scope`; returns it (the only time it is visible).
pub async fn create(conn: &mut PgConnection, name: &str, scope: Scope) -> sqlx::Result<String> {
    let token = new_token();
    sqlx::query("INSERT INTO \"ApiToken\" (name, token_hash, scope) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(hash_token(&token))
        .bind(scope.as_str())
        .execute(conn)
        .await?;
    Ok(token)
}

/// The live token `token`, if it is one. A scope this version does not know counts as none.
pub async fn verify(pool: &PgPool, token: &str) -> sqlx::Result<Option<Verified>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE \"ApiToken\" SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL
         RETURNING name, scope",
    )
    .bind(hash_token(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(name, scope)| {
        Some(Verified {
            name,
            scope: Scope::parse(&scope)?,
        })
    }))
}
