//! Console users (`junkquote admin create-user`), their sessions, and login attempts.
//!
//! A session's cookie carries a random token; only its SHA-256 is stored, next to the
//! session's CSRF token (which every form of the session carries back).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::token::{hash_token, new_token};

/// How long a session lasts without use.
pub const SESSION_IDLE_HOURS: i32 = 12;

/// Creates a user; `false` when the email is taken.
pub async fn create_user(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<bool> {
    let created = sqlx::query(
        "INSERT INTO \"ConsoleUser\" (email, password_hash) VALUES ($1, $2)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(password_hash)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(created > 0)
}

/// A user's id and password hash, by email.
pub async fn user_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<(Uuid, String)>> {
    sqlx::query_as("SELECT id, password_hash FROM \"ConsoleUser\" WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

/// Failed logins in the last `minutes`, for this email and for this client address.
pub async fn recent_failures(
    pool: &PgPool,
    email: &str,
    address: &str,
    minutes: i32,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT
             (SELECT count(*) FROM \"LoginAttempt\"
              WHERE email = $1 AND NOT succeeded
                AND created_at > now() - make_interval(mins => $3)),
             (SELECT count(*) FROM \"LoginAttempt\"
              WHERE address = $2 AND NOT succeeded
                AND created_at > now() - make_interval(mins => $3))",
    )
    .bind(email)
    .bind(address)
    .bind(minutes)
    .fetch_one(pool)
    .await
}

/// Records a login attempt (old ones are dropped on the way: only the last day counts).
pub async fn record_attempt(
    pool: &PgPool,
    email: &str,
    address: &str,
    succeeded: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH old AS (DELETE FROM \"LoginAttempt\" WHERE created_at < now() - interval '1 day')
         INSERT INTO \"LoginAttempt\" (email, address, succeeded) VALUES ($1, $2, $3)",
    )
    .bind(email)
    .bind(address)
    .bind(succeeded)
    .execute(pool)
    .await?;
    Ok(())
}

/// A new session for `user_id`: the cookie's token (returned once) and the CSRF token.
pub async fn open_session(pool: &PgPool, user_id: Uuid) -> sqlx::Result<(String, String)> {
    let token = new_token();
    let csrf = new_token();
    sqlx::query(
        "WITH expired AS (DELETE FROM \"ConsoleSession\" WHERE expires_at < now())
         INSERT INTO \"ConsoleSession\" (user_id, token_hash, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
    )
    .bind(user_id)
    .bind(hash_token(&token))
    .bind(&csrf)
    .bind(SESSION_IDLE_HOURS)
    .execute(pool)
    .await?;
    Ok((token, csrf))
}

/// The signed-in operator of a session.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The user.
    pub user_id: Uuid,
    /// Their email (the actor of what they do).
    pub email: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the session ends unless used.
    pub expires_at: DateTime<Utc>,
}

/// The live session whose cookie token is `token`, extended by its use.
pub async fn session(pool: &PgPool, token: &str) -> sqlx::Result<Option<SessionUser>> {
    let row: Option<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE \"ConsoleSession\" s
         SET last_seen_at = now(), expires_at = now() + make_interval(hours => $2)
         FROM \"ConsoleUser\" u
         WHERE s.token_hash = $1 AND s.expires_at > now() AND u.id = s.user_id
         RETURNING u.id, u.email, s.csrf_token, s.expires_at",
    )
    .bind(hash_token(token))
    .bind(SESSION_IDLE_HOURS)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(user_id, email, csrf, expires_at)| SessionUser {
        user_id,
        email,
        csrf,
        expires_at,
    }))
}

/// Ends the session whose cookie token is `token`.
pub async fn close_session(pool: &PgPool, token: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM \"ConsoleSession\" WHERE token_hash = $1")
        .bind(hash_token(token))
        .execute(pool)
        .await?;
    Ok(())
}
