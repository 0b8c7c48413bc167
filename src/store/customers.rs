//! Customers and their identities: who wrote, whoever the channel, and the operator's merge and
//! erase.
//!
//! An identity is proven by its channel (the phone an SMS came from, a Messenger sender id) or by
//! a one-time code entered ([`prove`]), and is then *verified*. A phone or email a customer only
//! types is a mention, not an identity: nothing is stored until its code is entered, so typing
//! someone's number first never makes their later messages or conversations yours. (Rows
//! without `verified_at` remain from before, and from the original's data; a channel or a code
//! that proves one moves it to the prover.)

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::audit;
use crate::domain::identity::{Identity, IdentityKind, Region, normalize_phone};

/// The customer a channel-proven identity belongs to, made (with the identity) if new. The
/// identity's advisory lock makes two first messages from one new number one customer.
pub async fn resolve(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<Uuid> {
    // A known, proven identity (most messages) needs no lock: only an operator's merge moves it.
    if let Some((customer_id, true)) = owner_of(conn, identity).await? {
        return Ok(customer_id);
    }
    lock(conn, identity).await?;
    let found = owner_of(conn, identity).await?;
    match found {
        Some((customer_id, true)) => Ok(customer_id),
        Some((claimant, false)) => {
            // Typed by someone, now proven by its channel: it is the prover's. (The claimant
            // lets go of it first: a phone or email belongs to one customer.)
            clear_field(conn, claimant, identity).await?;
            let customer_id = insert_customer(conn, identity).await?;
            sqlx::query(
                "UPDATE \"CustomerIdentity\" SET customer_id = $3, verified_at = now()
                 WHERE kind = $1 AND value = $2",
            )
            .bind(identity.kind)
            .bind(&identity.value)
            .bind(customer_id)
            .execute(&mut *conn)
            .await?;
            Ok(customer_id)
        }
        None => {
            let customer_id = insert_customer(conn, identity).await?;
            sqlx::query(
                "INSERT INTO \"CustomerIdentity\" (customer_id, kind, value, raw, verified_at)
                 VALUES ($1, $2, $3, $3, now())",
            )
            .bind(customer_id)
            .bind(identity.kind)
            .bind(&identity.value)
            .execute(&mut *conn)
            .await?;
            Ok(customer_id)
        }
    }
}

/// Serialises work on one identity until the transaction ends (an advisory lock on its key):
/// resolving it, proving it, and counting its codes and guesses.
pub(super) async fn lock(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(identity.lock_key())
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_customer(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<Uuid> {
    // The customer's phone field holds E.164 only; a sender the parser refuses (a short code)
    // is kept as their identity alone.
    let e164 = normalize_phone(&identity.value, Region::US).filter(|p| *p == identity.value);
    let (phone, email) = match identity.kind {
        IdentityKind::Phone => (e164.as_deref(), None),
        IdentityKind::Email => (None, Some(identity.value.as_str())),
        IdentityKind::Psid => (None, None),
    };
    sqlx::query_scalar("INSERT INTO \"Customer\" (phone, email) VALUES ($1, $2) RETURNING id")
        .bind(phone)
        .bind(email)
        .fetch_one(conn)
        .await
}

/// Empties the customer's phone or email field when it held `identity`.
async fn clear_field(
    conn: &mut PgConnection,
    customer_id: Uuid,
    identity: &Identity,
) -> sqlx::Result<()> {
    set_field(conn, customer_id, identity, false).await
}

/// Sets (`fill`: when empty) or clears (when it holds `identity`) the customer's phone or
/// email field.
async fn set_field(
    conn: &mut PgConnection,
    customer_id: Uuid,
    identity: &Identity,
    fill: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"Customer\" SET
             phone = CASE WHEN $2 <> 'phone' THEN phone
                          WHEN $4 THEN coalesce(phone, $3)
                          WHEN phone = $3 THEN NULL ELSE phone END,
             email = CASE WHEN $2 <> 'email' THEN email
                          WHEN $4 THEN coalesce(email, $3)
                          WHEN email = $3 THEN NULL ELSE email END,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(customer_id)
    .bind(identity.kind.as_str())
    .bind(&identity.value)
    .bind(fill)
    .execute(conn)
    .await?;
    Ok(())
}

/// Who holds an identity, and whether it is verified.
pub async fn owner_of(
    conn: &mut PgConnection,
    identity: &Identity,
) -> sqlx::Result<Option<(Uuid, bool)>> {
    sqlx::query_as(
        "SELECT customer_id, verified_at IS NOT NULL FROM \"CustomerIdentity\"
         WHERE kind = $1 AND value = $2",
    )
    .bind(identity.kind)
    .bind(&identity.value)
    .fetch_optional(conn)
    .await
}

/// Gives `identity` to `prover`, who has just entered the code sent to it, and returns the
/// customer the prover is from now on. When a customer holds it verified (proven by its channel
/// or a code), that customer is the prover: the prover is merged into them. Otherwise the prover
/// holds it, verified; an unverified holder (someone who typed it, before typed identities were
/// mentions only) lets go of it. An unverified holder is never merged into.
pub async fn prove(
    conn: &mut PgConnection,
    prover: Uuid,
    identity: &Identity,
) -> sqlx::Result<Uuid> {
    lock(conn, identity).await?;
    match owner_of(conn, identity).await? {
        Some((holder, true)) if holder != prover => {
            match merge(conn, holder, prover, "verification").await? {
                Ok(()) => Ok(holder),
                // Both rows were there a moment ago; a concurrent erase leaves the prover alone.
                Err(refused) => {
                    tracing::warn!(error = %refused, "a verified customer could not be merged");
                    Ok(prover)
                }
            }
        }
        Some((holder, _)) if holder == prover => {
            sqlx::query(
                "UPDATE \"CustomerIdentity\" SET verified_at = coalesce(verified_at, now())
                 WHERE kind = $1 AND value = $2",
            )
            .bind(identity.kind)
            .bind(&identity.value)
            .execute(&mut *conn)
            .await?;
            set_field(conn, prover, identity, true).await?;
            Ok(prover)
        }
        Some((holder, _)) => {
            clear_field(conn, holder, identity).await?;
            sqlx::query(
                "UPDATE \"CustomerIdentity\" SET customer_id = $3, verified_at = now()
                 WHERE kind = $1 AND value = $2",
            )
            .bind(identity.kind)
            .bind(&identity.value)
            .bind(prover)
            .execute(&mut *conn)
            .await?;
            set_field(conn, prover, identity, true).await?;
            Ok(prover)
        }
        None => {
            sqlx::query(
                "INSERT INTO \"CustomerIdentity\" (customer_id, kind, value, raw, verified_at)
                 VALUES ($1, $2, $3, $3, now())",
            )
            .bind(prover)
            .bind(identity.kind)
            .bind(&identity.value)
            .execute(&mut *conn)
            .await?;
            set_field(conn, prover, identity, true).await?;
            Ok(prover)
        }
    }
}

/// Sets the customer's name unless they have one.
pub async fn name_if_unknown(
    conn: &mut PgConnection,
    customer_id: Uuid,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"Customer\" SET name = $2, updated_at = now() WHERE id = $1 AND name IS NULL",
    )
    .bind(customer_id)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps a pickup address on the customer (once; the newest is primary).
pub async fn remember_address(
    conn: &mut PgConnection,
    customer_id: Uuid,
    address: &str,
) -> sqlx::Result<()> {
    let address = address.trim();
    let known: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM \"CustomerAddress\"
         WHERE customer_id = $1 AND lower(address) = lower($2)",
    )
    .bind(customer_id)
    .bind(address)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query("UPDATE \"CustomerAddress\" SET is_primary = false WHERE customer_id = $1")
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    match known {
        Some(id) => {
            sqlx::query("UPDATE \"CustomerAddress\" SET is_primary = true WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        None => {
            let zip = address
                .split(|c: char| !c.is_ascii_digit())
                .rfind(|w| w.len() == 5)
                .map(str::to_owned);
            sqlx::query(
                "INSERT INTO \"CustomerAddress\" (customer_id, address, zip, is_primary)
                 VALUES ($1, $2, $3, true)",
            )
            .bind(customer_id)
            .bind(address)
            .bind(zip)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// A customer found by an identity.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Found {
    /// Their id.
    pub id: Uuid,
    /// Their name, when known.
    pub name: Option<String>,
    /// Their phone (E.164).
    pub phone: Option<String>,
    /// Their email.
    pub email: Option<String>,
}

/// The customer holding `identity`, verified or not.
pub async fn find(conn: &mut PgConnection, identity: &Identity) -> sqlx::Result<Option<Found>> {
    sqlx::query_as(
        "SELECT c.id, c.name, c.phone, c.email FROM \"CustomerIdentity\" i
         JOIN \"Customer\" c ON c.id = i.customer_id
         WHERE i.kind = $1 AND i.value = $2",
    )
    .bind(identity.kind)
    .bind(&identity.value)
    .fetch_optional(conn)
    .await
}

/// Why a merge was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeRefused {
    /// One of the two does not exist.
    #[error("customer {0} does not exist")]
    Missing(Uuid),
    /// A customer cannot be merged into itself.
    #[error("a customer cannot be merged into itself")]
    Same,
}

/// Moves everything of `other` to `survivor` and deletes `other`, in one transaction: the
/// operator's decision that two customers are one person.
pub async fn merge(
    conn: &mut PgConnection,
    survivor: Uuid,
    other: Uuid,
    actor: &str,
) -> sqlx::Result<Result<(), MergeRefused>> {
    if survivor == other {
        return Ok(Err(MergeRefused::Same));
    }
    // Both rows locked, in a fixed order, so that two merges cannot deadlock or interleave.
    let locked: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM \"Customer\" WHERE id IN ($1, $2) ORDER BY id FOR UPDATE",
    )
    .bind(survivor)
    .bind(other)
    .fetch_all(&mut *conn)
    .await?;
    for id in [survivor, other] {
        if !locked.contains(&id) {
            return Ok(Err(MergeRefused::Missing(id)));
        }
    }
    for table in [
        "CustomerIdentity",
        "Conversation",
        "MemoryNote",
        "Lead",
        "Job",
        "IdentityChallenge",
    ] {
        sqlx::query(&format!(
            "UPDATE \"{table}\" SET customer_id = $1 WHERE customer_id = $2"
        ))
        .bind(survivor)
        .bind(other)
        .execute(&mut *conn)
        .await?;
    }
    // Addresses: the survivor's copy of a shared address stays; the rest move over.
    sqlx::query(
        "DELETE FROM \"CustomerAddress\" o USING \"CustomerAddress\" s
         WHERE o.customer_id = $2 AND s.customer_id = $1 AND lower(o.address) = lower(s.address)",
    )
    .bind(survivor)
    .bind(other)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE \"CustomerAddress\" SET customer_id = $1, is_primary = false WHERE customer_id = $2",
    )
    .bind(survivor)
    .bind(other)
    .execute(&mut *conn)
    .await?;
    // The other goes first, then the survivor takes what it lacked: a phone or email belongs to
    // one customer at a time.
    sqlx::query(
        "WITH gone AS (DELETE FROM \"Customer\" WHERE id = $2
                       RETURNING name, phone, email, metadata)
         UPDATE \"Customer\" s SET name = coalesce(s.name, gone.name),
                phone = coalesce(s.phone, gone.phone), email = coalesce(s.email, gone.email),
                metadata = gone.metadata || s.metadata, updated_at = now()
         FROM gone WHERE s.id = $1",
    )
    .bind(survivor)
    .bind(other)
    .execute(&mut *conn)
    .await?;
    audit::audit(
        conn,
        None,
        actor,
        "customers_merged",
        serde_json::json!({"survivor": survivor, "merged": other}),
    )
    .await?;
    Ok(Ok(()))
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Erased {
    /// Conversations (with their messages).
    pub conversations: u64,
    /// Leads (with their quotes, approvals, jobs and audit trail).
    pub leads: u64,
    /// Jobs not on one of those leads.
    pub jobs: u64,
    /// Memory notes.
    pub notes: u64,
    /// Addresses.
    pub addresses: u64,
    /// Identities.
    pub identities: u64,
}

/// Erases a customer and everything of theirs in one transaction; leaves an audit row with
/// counts and no personal data. `None` when there is no such customer.
pub async fn erase(
    conn: &mut PgConnection,
    customer_id: Uuid,
    actor: &str,
) -> sqlx::Result<Option<Erased>> {
    let exists: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM \"Customer\" WHERE id = $1 FOR UPDATE")
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let mut erased = Erased::default();
    // The leads' audit trails hold what the customer wrote; the leads hold phone and address.
    sqlx::query(
        "DELETE FROM \"Audit\" WHERE lead_id IN (SELECT id FROM \"Lead\" WHERE customer_id = $1)",
    )
    .bind(customer_id)
    .execute(&mut *conn)
    .await?;
    // Jobs before leads (a lead's jobs go with it, but a job may be on another lead), and the
    // customer's own records last: they restrict deleting the customer, never each other.
    for (table, count) in [
        ("Job", &mut erased.jobs),
        ("Conversation", &mut erased.conversations),
        ("Lead", &mut erased.leads),
        ("MemoryNote", &mut erased.notes),
        ("CustomerAddress", &mut erased.addresses),
        ("CustomerIdentity", &mut erased.identities),
    ] {
        *count = sqlx::query(&format!("DELETE FROM \"{table}\" WHERE customer_id = $1"))
            .bind(customer_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    sqlx::query("DELETE FROM \"Customer\" WHERE id = $1")
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    audit::audit(
        conn,
        None,
        actor,
        "customer_erased",
        serde_json::json!({"customer_id": customer_id, "removed": &erased}),
    )
    .await?;
    Ok(Some(erased))
}

/// A new customer who is nobody yet (a web chat visitor); returns their id.
pub async fn create_anonymous(conn: &mut PgConnection) -> sqlx::Result<Uuid> {
    sqlx::query_scalar("INSERT INTO \"Customer\" DEFAULT VALUES RETURNING id")
        .fetch_one(conn)
        .await
}

/// Whether there is a customer `id`.
pub async fn exists(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM \"Customer\" WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await
}
