//! API tokens for the JSON API (`junkquote admin create-token`): shown once, stored hashed.

use sqlx::{PgConnection, PgPool};

use crate::domain::token::{hash_token, new_token};

/// Creates a token named `name`; returns it (the only time it is visible).
pub async fn create(conn: &mut PgConnection, name: &str) -> sqlx::Result<String> {
    let token = new_token();
    sqlx::query("INSERT INTO \"ApiToken\" (name, token_hash) VALUES ($1, $2)")
        .bind(name)
        .bind(hash_token(&token))
        .execute(conn)
        .await?;
    Ok(token)
}

/// The name of the live token `token`, if it is one.
pub async fn verify(pool: &PgPool, token: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE \"ApiToken\" SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL
         RETURNING name",
    )
    .bind(hash_token(token))
    .fetch_optional(pool)
    .await
}
