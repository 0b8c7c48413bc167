//! One-time codes that prove an identity: a visitor who names an existing customer's phone or
//! email is linked to that customer only after entering the code sent there.

use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::identity::{Identity, IdentityKind};
use crate::domain::token::hash_token;

/// How long a code works.
pub const CODE_MINUTES: i32 = 10;
/// Wrong codes allowed per challenge.
pub const MAX_TRIES: i32 = 5;
/// Codes sent per conversation per hour, at most.
pub const MAX_PER_HOUR: i64 = 3;

/// A six-digit code from the operating system's randomness (a v4 UUID's random bits).
fn new_code() -> String {
    let bits = Uuid::new_v4().as_u128();
    format!("{:06}", bits % 1_000_000)
}

fn code_hash(challenge_id: Uuid, code: &str) -> String {
    hash_token(&format!("{challenge_id}:{code}"))
}

/// What came of asking for a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A code was queued for delivery to the identity's owner.
    Sent,
    /// Too many codes for this conversation lately.
    TooMany,
}

/// Starts a challenge for `identity` (held by `owner`) in a conversation, and queues the code
/// through the outbox: by text to the phone, or to the owner's verified phone for an email
/// (the email itself when they have none; no email sender is configured, so it stays queued
/// for the operator).
pub async fn start(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    owner: Uuid,
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
    sqlx::query(
        "INSERT INTO \"IdentityChallenge\"
             (id, conversation_id, customer_id, kind, value, code_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(mins => $7))",
    )
    .bind(id)
    .bind(conversation_id)
    .bind(owner)
    .bind(identity.kind)
    .bind(&identity.value)
    .bind(code_hash(id, &code))
    .bind(CODE_MINUTES)
    .execute(&mut *conn)
    .await?;
    let (channel, recipient) = match identity.kind {
        IdentityKind::Phone => ("sms", identity.value.clone()),
        _ => {
            let phone: Option<String> = sqlx::query_scalar(
                "SELECT value FROM \"CustomerIdentity\"
                 WHERE customer_id = $1 AND kind = 'phone' AND verified_at IS NOT NULL
                 ORDER BY created_at LIMIT 1",
            )
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await?;
            match phone {
                Some(phone) => ("sms", phone),
                None => ("email", identity.value.clone()),
            }
        }
    };
    sqlx::query(
        "INSERT INTO \"Outbox\" (conversation_id, channel, recipient, body, kind)
         VALUES ($1, $2, $3, $4, 'update')",
    )
    .bind(conversation_id)
    .bind(channel)
    .bind(recipient)
    .bind(format!(
        "Your verification code is {code}. It works for {CODE_MINUTES} minutes. If you didn't ask for it, ignore this message."
    ))
    .execute(&mut *conn)
    .await?;
    Ok(Started::Sent)
}

/// What came of entering a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// No code is waiting in this conversation.
    NoChallenge,
    /// Right: the conversation belongs to this customer now.
    Verified(Uuid),
    /// Wrong; this many tries are left.
    Wrong(i32),
    /// The code expired or was tried too often.
    Expired,
}

/// Checks a code against the conversation's latest challenge.
pub async fn attempt(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    code: &str,
) -> sqlx::Result<Attempt> {
    let row: Option<(Uuid, Uuid, String, i32, bool)> = sqlx::query_as(
        "SELECT id, customer_id, code_hash, attempts, expires_at <= now()
         FROM \"IdentityChallenge\"
         WHERE conversation_id = $1 AND verified_at IS NULL
         ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, owner, stored, attempts, expired)) = row else {
        return Ok(Attempt::NoChallenge);
    };
    if expired || attempts >= MAX_TRIES {
        return Ok(Attempt::Expired);
    }
    let right = bool::from(code_hash(id, code).as_bytes().ct_eq(stored.as_bytes()));
    sqlx::query(
        "UPDATE \"IdentityChallenge\" SET attempts = attempts + 1,
                verified_at = CASE WHEN $2 THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(right)
    .execute(&mut *conn)
    .await?;
    if right {
        return Ok(Attempt::Verified(owner));
    }
    Ok(Attempt::Wrong(MAX_TRIES - attempts - 1))
}

/// Whether the conversation has a code waiting to be entered.
pub async fn waiting(conn: &mut PgConnection, conversation_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM \"IdentityChallenge\"
                        WHERE conversation_id = $1 AND verified_at IS NULL
                          AND expires_at > now() AND attempts < $2)",
    )
    .bind(conversation_id)
    .bind(MAX_TRIES)
    .fetch_one(conn)
    .await
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
