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

/// The console's sign-in limits. Failures count per email *and* address, so a stranger
/// guessing the owner's password slows down only their own address; a per-email backoff then
/// spaces out the guesses of every address that has already failed for that email, while an
/// address that has not (the owner at the office) still signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures for one email from one address within the window before that pair waits.
    pub per_email_and_address: i64,
    /// Failures from one address (whatever the emails) within the window before it waits.
    pub per_address: i64,
    /// Failures for one email (from anywhere) within the window after which its backoff starts.
    pub backoff_after: i64,
    /// The window, in minutes.
    pub window_minutes: i32,
}

impl Default for LoginLimits {
    /// 5 per email and address, 20 per address, backoff after 5 per email; 15 minutes.
    fn default() -> Self {
        LoginLimits {
            per_email_and_address: 5,
            per_address: 20,
            backoff_after: 5,
            window_minutes: 15,
        }
    }
}

/// What the limit decided about one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the password; the attempt is already recorded as a failure (by this id) and
    /// becomes a success with [`record_success`].
    Evaluate(Uuid),
    /// Refused without looking at the password: try again after this many seconds.
    Wait(u64),
}

/// Counts and records a sign-in attempt before its password is checked, atomically: the
/// attempts of one email (and then of one address) take a transaction-scoped advisory lock in
/// that order, so concurrent guesses are counted one after another, in every `serve` process.
/// An admitted attempt is stored as a failure at once; a guess in flight counts against the
/// next.
pub async fn admit(
    pool: &PgPool,
    email: &str,
    address: &str,
    limits: LoginLimits,
) -> sqlx::Result<Admission> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('console-login-email:' || $1, 0)),
                pg_advisory_xact_lock(hashtextextended('console-login-address:' || $2, 0))",
    )
    .bind(email)
    .bind(address)
    .execute(&mut *tx)
    .await?;
    // Seconds until each limit lets this attempt in (0: it does now).
    let wait: f64 = sqlx::query_scalar(
        "WITH recent AS (
             SELECT email = $1 AS same_email, address = $2 AS same_address, created_at
             FROM \"LoginAttempt\"
             WHERE NOT succeeded AND (email = $1 OR address = $2)
               AND created_at > now() - make_interval(mins => $3)
         ), counted AS (
             SELECT count(*) FILTER (WHERE same_email AND same_address) AS pair,
                    count(*) FILTER (WHERE same_address) AS by_address,
                    count(*) FILTER (WHERE same_email) AS by_email,
                    min(created_at) FILTER (WHERE same_email AND same_address) AS pair_oldest,
                    min(created_at) FILTER (WHERE same_address) AS address_oldest,
                    max(created_at) FILTER (WHERE same_email) AS email_latest
             FROM recent
         )
         SELECT greatest(
             0,
             CASE WHEN pair >= $4 THEN extract(epoch FROM
                 (SELECT created_at FROM recent WHERE same_email AND same_address
                  ORDER BY created_at DESC OFFSET $4 - 1 LIMIT 1)
                 + make_interval(mins => $3) - now()) ELSE 0 END,
             CASE WHEN by_address >= $5 THEN extract(epoch FROM
                 (SELECT created_at FROM recent WHERE same_address
                  ORDER BY created_at DESC OFFSET $5 - 1 LIMIT 1)
                 + make_interval(mins => $3) - now()) ELSE 0 END,
             -- the email's backoff, for an address that has failed for it: 1 s, 2 s, 4 s, …
             -- after its latest failure, capped at the window
             CASE WHEN pair > 0 AND by_email >= $6 THEN extract(epoch FROM
                 email_latest + make_interval(secs => least(power(2, by_email - $6), $3 * 60))
                 - now()) ELSE 0 END
         )::float8
         FROM counted",
    )
    .bind(email)
    .bind(address)
    .bind(limits.window_minutes)
    .bind(limits.per_email_and_address)
    .bind(limits.per_address)
    .bind(limits.backoff_after)
    .fetch_one(&mut *tx)
    .await?;
    if wait > 0.0 {
        tx.rollback().await?;
        return Ok(Admission::Wait(wait.ceil().max(1.0) as u64));
    }
    let id: Uuid = sqlx::query_scalar(
        "WITH old AS (DELETE FROM \"LoginAttempt\" WHERE created_at < now() - interval '1 day')
         INSERT INTO \"LoginAttempt\" (email, address, succeeded) VALUES ($1, $2, false)
         RETURNING id",
    )
    .bind(email)
    .bind(address)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Admission::Evaluate(id))
}

/// The admitted attempt `id` had the right password.
pub async fn record_success(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE \"LoginAttempt\" SET succeeded = true WHERE id = $1")
        .bind(id)
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
