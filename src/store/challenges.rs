//! One-time codes that prove an identity: a phone or email a visitor types becomes theirs only
//! after they enter the code sent there (see `customers::prove`).
//!
//! Limits are per identity, across conversations and chat sessions, so that a new session
//! resets nothing: at most [`MAX_CODES_PER_DAY`] codes are sent to one phone or email in a day,
//! and after [`MAX_WRONG_PER_DAY`] wrong codes against one identity in a day it is locked (no
//! code sent, none accepted, the right one included) until the day since those guesses is over,
//! and the owner is told, once. Each code also has [`MAX_TRIES`], and a conversation at most
//! [`MAX_PER_HOUR`] codes an hour. The counts are read from the last day's challenges (kept
//! [`KEPT_DAYS`] days, then deleted by [`sweep`]) under the identity's advisory lock, so
//! concurrent requests and guesses count one at a time. No table of its own: the schema stays
//! as migration 5 made it.
//!
//! A code's text is redacted in the outbox once sent ([`CODE_TEXT_KEY`] marks it) or expired
//! ([`sweep`]), so that the database keeps no usable code.

use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{customers, outbox};
use crate::domain::identity::{Identity, IdentityKind};
use crate::domain::token::hash_token;

/// How long a code works.
pub const CODE_MINUTES: i32 = 10;
/// Wrong codes allowed per challenge.
pub const MAX_TRIES: i32 = 5;
/// Codes sent per conversation per hour, at most.
pub const MAX_PER_HOUR: i64 = 3;
/// Codes sent to one phone or email per day, at most, whoever asks.
pub const MAX_CODES_PER_DAY: i32 = 5;
/// Wrong codes against one identity per day before it is locked for a day.
pub const MAX_WRONG_PER_DAY: i32 = 10;
/// How long a challenge is kept: the daily limits count the last day's.
pub const KEPT_DAYS: i32 = 2;
/// What a code text's body becomes once it is sent or its code expired.
pub const REDACTED: &str = "[one-time code]";
/// The start of a code text's `"Outbox".dedupe_key` (the challenge id follows): how the outbox
/// knows to redact the body once sent.
pub const CODE_TEXT_KEY: &str = "identity-code:";

/// A six-digit code from the operating system's randomness (a v4 UUID's random bits).
fn new_code() -> String {
    let bits = Uuid::new_v4().as_u128();
    format!("{:06}", bits % 1_000_000)
}

fn code_hash(challenge_id: Uuid, code: &str) -> String {
    hash_token(&format!("{challenge_id}:{code}"))
}

/// Wrong codes entered against `identity` in the last day (every try of its challenges but
/// the right ones).
async fn wrong_today(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(attempts - (verified_at IS NOT NULL)::int), 0)::bigint
         FROM \"IdentityChallenge\"
         WHERE kind = $1 AND value = $2 AND created_at > now() - interval '1 day'",
    )
    .bind(identity.kind)
    .bind(&identity.value)
    .fetch_one(conn)
    .await
}

/// Whether too many wrong codes were entered against `identity` in the last day.
async fn locked(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<bool> {
    Ok(wrong_today(conn, identity).await? >= i64::from(MAX_WRONG_PER_DAY))
}

/// Codes sent (queued) to `recipient` (a phone number or an email address) in the last day,
/// whichever identity they were to prove.
async fn codes_today(conn: &mut PgConnection, recipient: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM \"IdentityChallenge\" c
         JOIN \"Outbox\" o ON o.dedupe_key = $2 || c.id::text
         WHERE c.created_at > now() - interval '1 day' AND o.recipient = $1",
    )
    .bind(recipient)
    .bind(CODE_TEXT_KEY)
    .fetch_one(conn)
    .await
}

/// What came of asking for a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A code was queued for delivery.
    Sent,
    /// Too many codes for this conversation lately.
    TooMany,
    /// The identity (or where its code would go) has had its codes for the day, or is locked.
    DayOver,
}

/// Starts a challenge for `identity` on behalf of `claimant` (the conversation's customer) and
/// queues the code through the outbox: by text to a phone; for an email, to its verified
/// holder's verified phone when there is one, else to the email (no email sender is
/// configured, so it stays queued for the operator). Whether anyone holds the identity changes
/// nothing a visitor can see.
pub async fn start(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    claimant: Uuid,
    identity: &Identity,
) -> sqlx::Result<Started> {
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM \"IdentityChallenge\"
         WHERE conversation_id = $1 AND created_at > now() - interval '1 hour'",
    )
    .bind(conversation_id)
    .fetch_one(&mut *conn)
    .await?;
    if recent >= MAX_PER_HOUR {
        return Ok(Started::TooMany);
    }
    let recipient = recipient(conn, identity).await?;
    // The day's codes count where they go (counted under its lock); the lock-out is the
    // identity's.
    customers::lock(conn, &recipient).await?;
    if codes_today(conn, &recipient.value).await? >= i64::from(MAX_CODES_PER_DAY)
        || locked(conn, identity).await?
    {
        return Ok(Started::DayOver);
    }
    // A new code replaces any earlier one of this conversation.
    sqlx::query(
        "UPDATE \"IdentityChallenge\" SET expires_at = least(expires_at, now())
         WHERE conversation_id = $1 AND verified_at IS NULL",
    )
    .bind(conversation_id)
    .execute(&mut *conn)
    .await?;
    let id = Uuid::new_v4();
    let code = new_code();
    let channel = match recipient.kind {
        IdentityKind::Phone => "sms",
        _ => "email",
    };
    // One statement: the challenge, and its code's text keyed by it.
    sqlx::query(
        "WITH challenge AS (
             INSERT INTO \"IdentityChallenge\"
                 (id, conversation_id, customer_id, kind, value, code_hash, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(mins => $11))
         )
         INSERT INTO \"Outbox\" (conversation_id, channel, recipient, body, kind, dedupe_key)
         VALUES ($2, $7, $8, $9, 'update', $10 || $1::text)",
    )
    .bind(id)
    .bind(conversation_id)
    .bind(claimant)
    .bind(identity.kind)
    .bind(&identity.value)
    .bind(code_hash(id, &code))
    .bind(channel)
    .bind(&recipient.value)
    .bind(format!(
        "Your verification code is {code}. It works for {CODE_MINUTES} minutes. If you didn't ask for it, ignore this message."
    ))
    .bind(CODE_TEXT_KEY)
    .bind(CODE_MINUTES)
    .execute(&mut *conn)
    .await?;
    Ok(Started::Sent)
}

/// Where the code proving `identity` goes: a phone itself; an email to the verified phone of
/// the customer who proved the email, else to the email.
async fn recipient(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<Identity> {
    if identity.kind != IdentityKind::Email {
        return Ok(identity.clone());
    }
    let phone: Option<String> = sqlx::query_scalar(
        "SELECT p.value FROM \"CustomerIdentity\" e
         JOIN \"CustomerIdentity\" p ON p.customer_id = e.customer_id
          AND p.kind = 'phone' AND p.verified_at IS NOT NULL
         WHERE e.kind = 'email' AND e.value = $1 AND e.verified_at IS NOT NULL
         ORDER BY p.created_at LIMIT 1",
    )
    .bind(&identity.value)
    .fetch_optional(conn)
    .await?;
    Ok(match phone {
        Some(value) => Identity {
            kind: IdentityKind::Phone,
            value,
        },
        None => identity.clone(),
    })
}

/// What came of entering a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// No code was asked for in this conversation lately.
    NoChallenge,
    /// Right: the identity is the conversation customer's to take (`customers::prove`).
    Verified(Identity),
    /// Wrong; this many tries are left.
    Wrong(i32),
    /// The code expired or was tried too often.
    Expired,
    /// Too many wrong codes against the identity today: nothing is accepted until its day is
    /// over.
    Locked,
}

/// Checks a code against the conversation's latest challenge (of the last day).
pub async fn attempt(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    code: &str,
) -> sqlx::Result<Attempt> {
    // The conversation is locked by its caller, so its latest challenge stays the latest.
    let latest: Option<(Uuid, IdentityKind, String)> = sqlx::query_as(
        "SELECT id, kind, value FROM \"IdentityChallenge\"
         WHERE conversation_id = $1 AND verified_at IS NULL
           AND created_at > now() - interval '1 day'
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, kind, value)) = latest else {
        return Ok(Attempt::NoChallenge);
    };
    // Guesses against one identity are counted one at a time, whatever the conversation; its
    // lock is taken before any challenge row's, as in `start` and `lock_out`.
    let identity = Identity { kind, value };
    customers::lock(conn, &identity).await?;
    let (stored, attempts, expired): (String, i32, bool) = sqlx::query_as(
        "SELECT code_hash, attempts, expires_at <= now() FROM \"IdentityChallenge\"
         WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if locked(conn, &identity).await? {
        return Ok(Attempt::Locked);
    }
    if expired || attempts >= MAX_TRIES {
        return Ok(Attempt::Expired);
    }
    let right = bool::from(code_hash(id, code).as_bytes().ct_eq(stored.as_bytes()));
    sqlx::query(
        "UPDATE \"IdentityChallenge\" SET attempts = attempts + 1,
                verified_at = CASE WHEN $2 THEN now() END,
                expires_at = CASE WHEN $2 THEN least(expires_at, now()) ELSE expires_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(right)
    .execute(&mut *conn)
    .await?;
    if right {
        return Ok(Attempt::Verified(identity));
    }
    // The guess that reaches the limit locks the identity; later ones are not counted.
    if locked(conn, &identity).await? {
        lock_out(conn, conversation_id, &identity).await?;
        return Ok(Attempt::Locked);
    }
    Ok(Attempt::Wrong(MAX_TRIES - attempts - 1))
}

/// The identity has just been locked: every code of it waiting anywhere stops working, and the
/// owner is told (this happens once a day at most: a locked identity's guesses are not
/// counted).
async fn lock_out(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    identity: &Identity,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"IdentityChallenge\" SET expires_at = least(expires_at, now())
         WHERE kind = $1 AND value = $2 AND verified_at IS NULL",
    )
    .bind(identity.kind)
    .bind(&identity.value)
    .execute(&mut *conn)
    .await?;
    outbox::notify_owner(
        conn,
        &format!(
            "{MAX_WRONG_PER_DAY} wrong codes were entered today to verify {} (the last in conversation {conversation_id}). No codes will be sent or accepted for it for a day.",
            describe(identity)
        ),
    )
    .await
}

/// An identity as the owner is told of it: enough to recognise, not the whole of it.
fn describe(identity: &Identity) -> String {
    match identity.kind {
        IdentityKind::Phone => {
            let digits: Vec<char> = identity.value.chars().collect();
            let last: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            format!("the phone number ending in {last}")
        }
        IdentityKind::Email => match identity.value.split_once('@') {
            Some((_, domain)) => format!("an email address at {domain}"),
            None => "an email address".to_owned(),
        },
        IdentityKind::Psid => "a Messenger account".to_owned(),
    }
}

/// Redacts the texts of codes that expired (an unsent one is not sent any more), then deletes
/// the challenges of more than [`KEPT_DAYS`] ago, which no limit counts any more. Returns how
/// many texts were redacted.
pub async fn sweep(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let redacted = sqlx::query(
        "UPDATE \"Outbox\" o SET body = $2,
                status = CASE WHEN o.status IN ('pending', 'held') THEN 'failed' ELSE o.status END,
                last_error = CASE WHEN o.status IN ('pending', 'held')
                                  THEN 'the code expired before it was sent' ELSE o.last_error END
         FROM \"IdentityChallenge\" c
         WHERE o.dedupe_key = $1 || c.id::text AND c.expires_at <= now() AND o.body <> $2",
    )
    .bind(CODE_TEXT_KEY)
    .bind(REDACTED)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM \"IdentityChallenge\"
         WHERE created_at < now() - make_interval(days => $1) AND expires_at <= now()",
    )
    .bind(KEPT_DAYS)
    .execute(conn)
    .await?;
    Ok(redacted)
}

/// A six-digit code in a message, if it is one ("123456", "my code is 123 456").
pub fn code_in(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let other = text
        .chars()
        .filter(|c| c.is_alphanumeric() && !c.is_ascii_digit())
        .count();
    (digits.len() == 6 && other <= 12).then_some(digits)
}
