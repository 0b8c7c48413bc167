//! The backfill's writes: one transaction per batch of whole components, set-based statements
//! fed with arrays, every insert keyed by a derived id and skipping what exists.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use super::plan::{Component, Decision, Planner, derived_id};
use super::{BackfillError, EXAMPLES, Report, customer_of, kind_of};
use crate::domain::identity::IdentityKind;

/// The backfill's own bookkeeping, beside the migrations' in the `junkquote` schema: the batches
/// committed (its checkpoints) and the problems found in the data.
pub(super) async fn ensure_tables(
    conn: &mut PgConnection,
    dry_run: bool,
) -> Result<(), BackfillError> {
    let ready: bool = sqlx::query_scalar(
        "SELECT to_regclass('public.\"CustomerIdentity\"') IS NOT NULL
            AND to_regclass('public.\"Conversation\"') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !ready {
        return Err(BackfillError::Schema(
            "the database has no \"CustomerIdentity\" table yet; run `junkquote migrate up` first"
                .into(),
        ));
    }
    if dry_run {
        return Ok(());
    }
    conn.execute(sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS junkquote;
         CREATE TABLE IF NOT EXISTS junkquote.backfill_checkpoint (
             first_lead uuid PRIMARY KEY,
             leads integer NOT NULL,
             committed_at timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE IF NOT EXISTS junkquote.backfill_issue (
             subject text NOT NULL,
             kind text NOT NULL,
             reason text NOT NULL,
             noted_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (kind, subject)
         );
         -- A derived id whose first 48 bits are the source row's time in milliseconds (as in
         -- a UUIDv7, without its version bits) and the rest a hash of its key: the same source
         -- gives the same id on every run, and rows written in time order land at the right
         -- edge of every index rather than on random pages, which keeps millions of inserts in
         -- cache. A missing, infinite or pre-1970 time gives a zero prefix.
         CREATE OR REPLACE FUNCTION junkquote.backfill_uuid(at timestamptz, key text)
         RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS $$
             SELECT (lpad(to_hex(CASE WHEN isfinite(at) AND at >= 'epoch'
                                      THEN floor(extract(epoch FROM at) * 1000)::bigint
                                      ELSE 0 END), 12, '0')
                     || substr(md5(key), 13))::uuid
         $$;
         CREATE OR REPLACE FUNCTION junkquote.backfill_timestamptz(value text)
         RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
         BEGIN
             RETURN value::timestamptz;
         EXCEPTION WHEN others THEN
             RETURN NULL;
         END $$;",
    ))
    .await?;
    Ok(())
}

/// Arrays for one batch's statements.
#[derive(Default)]
struct Batch {
    customer_ids: Vec<Uuid>,
    customer_names: Vec<Option<String>>,
    customer_phones: Vec<Option<String>>,
    customer_emails: Vec<Option<String>>,
    customer_metadata: Vec<String>,
    customer_created: Vec<chrono::DateTime<chrono::Utc>>,
    identity_ids: Vec<Uuid>,
    identity_customers: Vec<Uuid>,
    identity_kinds: Vec<String>,
    identity_values: Vec<String>,
    identity_raws: Vec<String>,
    identity_created: Vec<chrono::DateTime<chrono::Utc>>,
    identity_verified: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    lead_ids: Vec<Uuid>,
    lead_customers: Vec<Uuid>,
    lead_external: Vec<Option<String>>,
    new_customers: Vec<Uuid>,
    issue_subjects: Vec<String>,
    issue_kinds: Vec<String>,
    issue_reasons: Vec<String>,
    to_existing: u64,
}

impl Batch {
    fn customer(
        &mut self,
        id: Uuid,
        name: Option<String>,
        phone: Option<String>,
        email: Option<String>,
        metadata: serde_json::Value,
        created: chrono::DateTime<chrono::Utc>,
    ) {
        self.customer_ids.push(id);
        self.customer_names.push(name);
        self.customer_phones.push(phone);
        self.customer_emails.push(email);
        self.customer_metadata.push(metadata.to_string());
        self.customer_created.push(created);
        self.new_customers.push(id);
    }

    fn issue(&mut self, lead: Uuid, kind: &str, reason: &str) {
        self.issue_subjects.push(format!("lead {lead}"));
        self.issue_kinds.push(kind.to_owned());
        self.issue_reasons.push(reason.to_owned());
    }
}

/// What a component contributes to its batch.
fn collect(planner: &Planner, component: &Component, decision: &Decision, out: &mut Batch) {
    let leads: Vec<_> = component
        .leads
        .iter()
        .map(|&i| &planner.leads[i as usize])
        .collect();
    let unlinked = leads.iter().filter(|l| l.customer_id.is_none());
    match decision {
        Decision::New(id) | Decision::Existing(id) => {
            if let Decision::New(_) = decision {
                let first_of = |kind: IdentityKind| {
                    component
                        .identities
                        .iter()
                        .map(|&i| &planner.identities[i as usize])
                        .find(|i| i.kind == kind)
                        .map(|i| i.value.clone())
                };
                let psids: Vec<&str> = component
                    .identities
                    .iter()
                    .map(|&i| &planner.identities[i as usize])
                    .filter(|i| i.kind == IdentityKind::Psid)
                    .map(|i| i.value.as_str())
                    .collect();
                let named = leads
                    .iter()
                    .filter(|l| l.name.as_deref().is_some_and(|n| !n.trim().is_empty()))
                    .max_by_key(|l| (l.created_at, l.id))
                    .and_then(|l| l.name.as_deref().map(|n| n.trim().to_owned()));
                let mut metadata = json!({
                    "backfill": {"leads": leads.len(), "first_lead": leads[0].id},
                });
                if !psids.is_empty() {
                    metadata["psids"] = json!(psids);
                }
                let created = leads.iter().map(|l| l.created_at).min().unwrap_or_default();
                out.customer(
                    *id,
                    named,
                    first_of(IdentityKind::Phone),
                    first_of(IdentityKind::Email),
                    metadata,
                    created,
                );
            } else {
                out.to_existing += leads.iter().filter(|l| l.customer_id.is_none()).count() as u64;
            }
            for &i in &component.identities {
                let info = &planner.identities[i as usize];
                out.identity_ids.push(derived_id(
                    "identity",
                    &format!("{}:{}", info.kind.as_str(), info.value),
                ));
                out.identity_customers.push(*id);
                out.identity_kinds.push(info.kind.as_str().to_owned());
                out.identity_values.push(info.value.clone());
                out.identity_raws.push(info.raw.clone());
                out.identity_created.push(info.first.0);
                out.identity_verified.push(info.verified);
            }
        }
        Decision::Conflict(reason) | Decision::NoIdentity(reason) => {
            let (flag, kind) = match decision {
                Decision::Conflict(_) => ("conflict", "identity_conflict"),
                _ => ("no_usable_identity", "no_usable_identity"),
            };
            for lead in unlinked.clone() {
                let mut backfill = json!({"leads": 1, "first_lead": lead.id});
                backfill[flag] = json!(reason);
                out.customer(
                    customer_of(decision, lead.id),
                    lead.name.as_deref().map(|n| n.trim().to_owned()),
                    None,
                    None,
                    json!({ "backfill": backfill }),
                    lead.created_at,
                );
                let reason = match decision {
                    Decision::Conflict(_) => format!(
                        "{reason} (leads {})",
                        leads
                            .iter()
                            .map(|l| l.id.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => reason.clone(),
                };
                out.issue(lead.id, kind, &reason);
            }
        }
    }
    for lead in unlinked {
        out.lead_ids.push(lead.id);
        out.lead_customers.push(customer_of(decision, lead.id));
        out.lead_external.push(
            lead.external_id
                .map(|i| planner.identities[i as usize].value.clone()),
        );
    }
}

/// Adds the time since `*mark` to `what`, and moves the mark.
fn lap(report: &mut Report, what: &'static str, mark: &mut std::time::Instant) {
    *report.timings.entry(what).or_default() += mark.elapsed();
    *mark = std::time::Instant::now();
}

/// Writes one batch of components in one transaction; returns the leads linked. The planner is
/// shared with the other workers: it is locked only between statements, never across one.
pub(super) async fn batch(
    conn: &mut PgConnection,
    planner: &Mutex<Planner>,
    components: &[Component],
    batch: &[usize],
    report: &mut Report,
) -> Result<u64, BackfillError> {
    let mut mark = std::time::Instant::now();
    let mut tx = conn.begin().await?;
    refresh_owners(&mut tx, planner, components, batch).await?;
    let (arrays, first_key) = {
        let planner = lock(planner);
        let mut arrays = Batch::default();
        for &c in batch {
            let component = &components[c];
            // Decided again: a customer the service created since the plan now owns an
            // identifier.
            let decision = planner.decide(&component.leads, &component.identities);
            collect(&planner, component, &decision, &mut arrays);
        }
        let first_key = batch.first().map(|&c| components[c].key(&planner));
        (arrays, first_key)
    };
    let b = &arrays;
    lap(report, "owners", &mut mark);

    let customers = sqlx::query(
        "INSERT INTO \"Customer\" (id, name, phone, email, metadata, created_at, updated_at)
         SELECT u.id, u.name, u.phone, u.email, u.metadata::jsonb, u.created, u.created
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
              AS u(id, name, phone, email, metadata, created)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&b.customer_ids)
    .bind(&b.customer_names)
    .bind(&b.customer_phones)
    .bind(&b.customer_emails)
    .bind(&b.customer_metadata)
    .bind(&b.customer_created)
    .execute(&mut *tx)
    .await?;
    report.customers += customers.rows_affected();
    lap(report, "customers", &mut mark);

    let identities = sqlx::query(
        "INSERT INTO \"CustomerIdentity\" (id, customer_id, kind, value, raw, created_at,
                                           verified_at)
         SELECT u.id, u.customer_id, u.kind::\"IdentityKind\", u.value, u.raw, u.created,
                u.verified
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::timestamptz[])
              AS u(id, customer_id, kind, value, raw, created, verified)
         ON CONFLICT DO NOTHING",
    )
    .bind(&b.identity_ids)
    .bind(&b.identity_customers)
    .bind(&b.identity_kinds)
    .bind(&b.identity_values)
    .bind(&b.identity_raws)
    .bind(&b.identity_created)
    .bind(&b.identity_verified)
    .execute(&mut *tx)
    .await?;
    report.identities += identities.rows_affected();
    // The service may have given one of these identifiers a customer of its own after the
    // owners were read: the insert above then skipped it, and the batch would make a second
    // customer for the same phone. Found here, the batch is rolled back and tried again, and
    // the new owner is read with the others.
    let taken: Option<(String, String)> = sqlx::query_as(
        "SELECT u.kind, u.value
         FROM UNNEST($1::text[], $2::text[], $3::uuid[]) AS u(kind, value, customer_id)
         JOIN \"CustomerIdentity\" i
           ON i.kind = u.kind::\"IdentityKind\" AND i.value = u.value
         JOIN \"Customer\" c ON c.id = i.customer_id
         WHERE i.customer_id <> u.customer_id AND NOT c.metadata ? 'backfill'
         LIMIT 1",
    )
    .bind(&b.identity_kinds)
    .bind(&b.identity_values)
    .bind(&b.identity_customers)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((kind, _)) = taken {
        return Err(BackfillError::Raced(format!(
            "a {kind} of this batch was given to another customer while the batch was written"
        )));
    }
    lap(report, "identities", &mut mark);

    let leads = sqlx::query(
        "UPDATE \"Lead\" l SET customer_id = u.customer_id
         FROM UNNEST($1::uuid[], $2::uuid[]) AS u(id, customer_id)
         WHERE l.id = u.id AND l.customer_id IS NULL",
    )
    .bind(&b.lead_ids)
    .bind(&b.lead_customers)
    .execute(&mut *tx)
    .await?;
    report.leads_linked += leads.rows_affected();
    report.leads_to_existing += b.to_existing;

    let jobs = sqlx::query(
        "UPDATE \"Job\" j SET customer_id = l.customer_id
         FROM \"Lead\" l
         WHERE l.id = ANY($1) AND j.lead_id = l.id AND j.customer_id IS NULL",
    )
    .bind(&b.lead_ids)
    .execute(&mut *tx)
    .await?;
    report.jobs_linked += jobs.rows_affected();
    lap(report, "links", &mut mark);

    let addresses = sqlx::query(ADDRESSES_SQL)
        .bind(&b.lead_ids)
        .bind(&b.new_customers)
        .execute(&mut *tx)
        .await?;
    report.addresses += addresses.rows_affected();
    lap(report, "addresses", &mut mark);

    let conversations = sqlx::query(CONVERSATIONS_SQL)
        .bind(&b.lead_ids)
        .bind(&b.lead_external)
        .execute(&mut *tx)
        .await?;
    report.conversations += conversations.rows_affected();
    lap(report, "conversations", &mut mark);

    let (audit_rows, from_audit): (i64, i64) = sqlx::query_as(AUDIT_MESSAGES_SQL)
        .bind(&b.lead_ids)
        .fetch_one(&mut *tx)
        .await?;
    report.audit_rows += audit_rows;
    report.messages_audit += u64::try_from(from_audit).unwrap_or(0);
    lap(report, "messages from Audit", &mut mark);

    let from_state = sqlx::query(STATE_MESSAGES_SQL)
        .bind(&b.lead_ids)
        .execute(&mut *tx)
        .await?;
    report.messages_state += from_state.rows_affected();
    lap(report, "messages from stateMetadata", &mut mark);

    sqlx::query(
        "INSERT INTO junkquote.backfill_issue (subject, kind, reason)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&b.issue_subjects)
    .bind(&b.issue_kinds)
    .bind(&b.issue_reasons)
    .execute(&mut *tx)
    .await?;
    sqlx::query(DATA_ISSUES_SQL)
        .bind(&b.lead_ids)
        .execute(&mut *tx)
        .await?;

    if let Some(first_key) = first_key {
        sqlx::query(
            "INSERT INTO junkquote.backfill_checkpoint (first_lead, leads) VALUES ($1, $2)
             ON CONFLICT (first_lead) DO UPDATE SET leads = EXCLUDED.leads,
                                                    committed_at = now()",
        )
        .bind(first_key)
        .bind(i32::try_from(b.lead_ids.len()).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    }
    lap(report, "issues", &mut mark);
    tx.commit().await?;
    lap(report, "commit", &mut mark);
    Ok(leads.rows_affected())
}

/// The planner, even if a worker panicked while holding it (its data is only ever extended).
pub(super) fn lock(planner: &Mutex<Planner>) -> MutexGuard<'_, Planner> {
    planner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Finds customers the service created, since the plan, for the batch's identifiers.
async fn refresh_owners(
    tx: &mut PgConnection,
    planner: &Mutex<Planner>,
    components: &[Component],
    batch: &[usize],
) -> Result<(), BackfillError> {
    let mut kinds = Vec::new();
    let mut values = Vec::new();
    {
        let planner = lock(planner);
        for &c in batch {
            for &i in &components[c].identities {
                let info = &planner.identities[i as usize];
                kinds.push(info.kind.as_str().to_owned());
                values.push(info.value.clone());
            }
        }
    }
    let rows: Vec<(String, String, Uuid)> = sqlx::query_as(
        "WITH u AS (SELECT * FROM UNNEST($1::text[], $2::text[]) AS u(kind, value))
         SELECT 'phone', c.phone, c.id FROM \"Customer\" c
         WHERE c.phone IN (SELECT value FROM u WHERE kind = 'phone')
           AND NOT c.metadata ? 'backfill'
         UNION ALL
         SELECT 'email', c.email, c.id FROM \"Customer\" c
         WHERE c.email IN (SELECT value FROM u WHERE kind = 'email')
           AND NOT c.metadata ? 'backfill'
         UNION ALL
         SELECT i.kind::text, i.value, i.customer_id FROM \"CustomerIdentity\" i
         JOIN \"Customer\" c ON c.id = i.customer_id
         WHERE (i.kind, i.value) IN (SELECT kind::\"IdentityKind\", value FROM u)
           AND NOT c.metadata ? 'backfill'",
    )
    .bind(&kinds)
    .bind(&values)
    .fetch_all(&mut *tx)
    .await?;
    let mut planner = lock(planner);
    for (kind, value, customer) in rows {
        if let Some(kind) = kind_of(&kind) {
            planner.add_owner(kind, &value, customer);
        }
    }
    Ok(())
}

/// Addresses of the batch's leads, de-duplicated per customer on the address with case and
/// spacing ignored (the newest lead's spelling kept); the customer's latest address is primary
/// for a customer the backfill created. City, state and zip are filled when the address ends
/// "…, City, ST 12345".
const ADDRESSES_SQL: &str = r#"
    WITH src AS (
        SELECT l.id, l.customer_id, l.created_at, l.lat, l.lng,
               regexp_replace(btrim(l.address), '\s+', ' ', 'g') AS clean
        FROM "Lead" l
        WHERE l.id = ANY($1) AND l.customer_id IS NOT NULL AND btrim(coalesce(l.address, '')) <> ''
    ), ranked AS (
        SELECT src.*, lower(clean) AS norm,
               row_number() OVER (PARTITION BY customer_id ORDER BY created_at DESC, id DESC) AS recency,
               row_number() OVER (PARTITION BY customer_id, lower(clean)
                                  ORDER BY created_at DESC, id DESC) AS newest
        FROM src
    )
    INSERT INTO "CustomerAddress" (id, customer_id, address, city, state, zip, lat, lng,
                                   is_primary, metadata, created_at)
    SELECT md5('junkquote-backfill:address:' || r.customer_id || ':' || r.norm)::uuid,
           r.customer_id, r.clean, m[1], upper(m[2]), m[3], r.lat, r.lng,
           r.recency = 1 AND r.customer_id = ANY($2),
           jsonb_build_object('backfill', jsonb_build_object('lead', r.id)), r.created_at
    FROM ranked r
    LEFT JOIN LATERAL regexp_match(r.clean, ',\s*([^,]+),\s*([A-Za-z]{2})\s+(\d{5}(-\d{4})?)$') AS m ON true
    WHERE r.newest = 1
    ON CONFLICT (id) DO NOTHING"#;

/// One conversation per lead (a lead has one channel), unless the lead has one already.
const CONVERSATIONS_SQL: &str = r#"
    INSERT INTO "Conversation" (id, customer_id, lead_id, channel, external_id, started_at,
                                last_message_at, metadata, created_at, updated_at)
    SELECT junkquote.backfill_uuid(l.created_at, 'junkquote-backfill:conversation:' || l.id),
           l.customer_id, l.id, l.channel,
           u.external_id, l.created_at,
           greatest(l.last_customer_message_at, l.last_agent_message_at, l.created_at),
           jsonb_build_object('backfill', true), l.created_at,
           greatest(l.last_customer_message_at, l.last_agent_message_at, l.created_at)
    FROM UNNEST($1::uuid[], $2::text[]) AS u(id, external_id)
    JOIN "Lead" l ON l.id = u.id
    WHERE l.customer_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM "Conversation" c WHERE c.lead_id = l.id)
    ON CONFLICT (id) DO NOTHING"#;

/// The text of an Audit payload: `text`, else `message`, `content`, `body` (strings only).
const AUDIT_TEXT: &str = "coalesce(
        CASE WHEN jsonb_typeof(a.payload -> 'text') = 'string' THEN a.payload ->> 'text' END,
        CASE WHEN jsonb_typeof(a.payload -> 'message') = 'string' THEN a.payload ->> 'message' END,
        CASE WHEN jsonb_typeof(a.payload -> 'content') = 'string' THEN a.payload ->> 'content' END,
        CASE WHEN jsonb_typeof(a.payload -> 'body') = 'string' THEN a.payload ->> 'body' END)";

/// Messages from the Audit rows of the batch's leads, into the conversations the backfill made;
/// returns (Audit rows read, messages inserted).
const AUDIT_MESSAGES_SQL: &str = r#"
    WITH conv AS MATERIALIZED (
        SELECT c.id, l.id AS lead_id
        FROM "Lead" l
        JOIN "Conversation" c
          ON c.id = junkquote.backfill_uuid(l.created_at, 'junkquote-backfill:conversation:' || l.id)
        WHERE l.id = ANY($1)
    ), src AS MATERIALIZED (
        SELECT a.id, a.lead_id, a.action, a.created_at, a.payload, lower(a.actor) AS actor
        FROM "Audit" a WHERE a.lead_id = ANY($1)
    ), msgs AS (
        SELECT s.id, s.lead_id, s.action, s.created_at,
               CASE WHEN s.actor IN ('customer', 'user') THEN 'user'
                    WHEN s.actor IN ('agent', 'assistant') THEN 'assistant'
                    WHEN s.actor = 'system' THEN 'system'
                    WHEN s.actor = 'tool' THEN 'tool' END AS role,
               coalesce(
                   CASE WHEN jsonb_typeof(s.payload -> 'text') = 'string' THEN s.payload ->> 'text' END,
                   CASE WHEN jsonb_typeof(s.payload -> 'message') = 'string' THEN s.payload ->> 'message' END,
                   CASE WHEN jsonb_typeof(s.payload -> 'content') = 'string' THEN s.payload ->> 'content' END,
                   CASE WHEN jsonb_typeof(s.payload -> 'body') = 'string' THEN s.payload ->> 'body' END
               ) AS content
        FROM src s
        WHERE jsonb_typeof(s.payload) = 'object'
    ), ins AS (
        INSERT INTO "Message" (id, conversation_id, role, content, metadata, created_at)
        SELECT junkquote.backfill_uuid(m.created_at, 'junkquote-backfill:message:audit:' || m.id),
               c.id, m.role::"MessageRole", m.content,
               jsonb_build_object('source', 'audit', 'audit_id', m.id, 'action', m.action),
               m.created_at
        FROM msgs m
        JOIN conv c ON c.lead_id = m.lead_id
        WHERE m.role IS NOT NULL AND btrim(coalesce(m.content, '')) <> ''
        ORDER BY m.created_at
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins)"#;

/// Messages from the history in `stateMetadata` (`history` or `messages`: objects with a role
/// and `content` or `text`) that the Audit rows did not already give the conversation.
const STATE_MESSAGES_SQL: &str = r#"
    WITH hist AS (
        SELECT l.id AS lead_id, l.created_at AS lead_created, e.elem, e.ord
        FROM "Lead" l
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(l."stateMetadata") <> 'object' THEN '[]'::jsonb
                 WHEN jsonb_typeof(l."stateMetadata" -> 'history') = 'array'
                     THEN l."stateMetadata" -> 'history'
                 WHEN jsonb_typeof(l."stateMetadata" -> 'messages') = 'array'
                     THEN l."stateMetadata" -> 'messages'
                 ELSE '[]'::jsonb END) WITH ORDINALITY AS e(elem, ord)
        WHERE l.id = ANY($1)
    ), msgs AS (
        SELECT h.lead_id, h.lead_created, h.ord, h.elem ->> 'at' AS at,
               CASE lower(h.elem ->> 'role')
                   WHEN 'user' THEN 'user' WHEN 'customer' THEN 'user'
                   WHEN 'assistant' THEN 'assistant' WHEN 'agent' THEN 'assistant'
                   WHEN 'system' THEN 'system' WHEN 'tool' THEN 'tool' END AS role,
               coalesce(
                   CASE WHEN jsonb_typeof(h.elem -> 'content') = 'string' THEN h.elem ->> 'content' END,
                   CASE WHEN jsonb_typeof(h.elem -> 'text') = 'string' THEN h.elem ->> 'text' END
               ) AS content
        FROM hist h
        WHERE jsonb_typeof(h.elem) = 'object'
    )
    INSERT INTO "Message" (id, conversation_id, role, content, metadata, created_at)
    SELECT junkquote.backfill_uuid(m.created_at,
                                   'junkquote-backfill:message:state:' || m.lead_id || ':' || m.ord),
           c.id, m.role::"MessageRole", m.content,
           jsonb_build_object('source', 'stateMetadata', 'index', m.ord - 1), m.created_at
    FROM (
        SELECT m.*, coalesce(
                   CASE WHEN m.at ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}'
                        THEN junkquote.backfill_timestamptz(m.at) END,
                   m.lead_created + m.ord * interval '1 millisecond') AS created_at
        FROM msgs m
    ) m
    JOIN "Conversation" c
      ON c.id = junkquote.backfill_uuid(m.lead_created,
                                        'junkquote-backfill:conversation:' || m.lead_id)
    WHERE m.role IS NOT NULL AND btrim(coalesce(m.content, '')) <> ''
      AND NOT EXISTS (
          SELECT 1 FROM "Message" x
          WHERE x.conversation_id = c.id AND x.role = m.role::"MessageRole"
            AND btrim(x.content) = btrim(m.content) AND x.metadata ->> 'source' = 'audit')
    ON CONFLICT (id) DO NOTHING"#;

/// Problems in the batch's Audit rows and `stateMetadata`, recorded (never fatal).
const DATA_ISSUES_SQL: &str = r#"
    INSERT INTO junkquote.backfill_issue (subject, kind, reason)
    SELECT 'audit ' || a.id, 'audit_payload',
           'payload is ' || CASE jsonb_typeof(a.payload) WHEN 'array' THEN 'an array'
                                 ELSE 'a ' || jsonb_typeof(a.payload) END
           || ', not an object; its text, if any, cannot be read'
    FROM "Audit" a
    WHERE a.lead_id = ANY($1) AND jsonb_typeof(a.payload) <> 'object'
    UNION ALL
    SELECT 'lead ' || l.id, 'state_metadata',
           CASE WHEN jsonb_typeof(l."stateMetadata") <> 'object'
                    THEN 'stateMetadata is a ' || jsonb_typeof(l."stateMetadata")
                         || ', not an object; no history read from it'
                ELSE 'stateMetadata.history is a ' || jsonb_typeof(l."stateMetadata" -> 'history')
                     || ', not an array; no history read from it' END
    FROM "Lead" l
    WHERE l.id = ANY($1) AND l."stateMetadata" IS NOT NULL
      AND jsonb_typeof(l."stateMetadata") <> 'null'
      AND (jsonb_typeof(l."stateMetadata") <> 'object'
           OR (l."stateMetadata" ? 'history'
               AND jsonb_typeof(l."stateMetadata" -> 'history') <> 'array'))
    UNION ALL
    SELECT 'lead ' || l.id, 'state_history_entry',
           count(*) || ' of ' || jsonb_array_length(l."stateMetadata" -> 'history')
           || ' stateMetadata.history entries are not messages (an object with a known role and text); skipped'
    FROM "Lead" l
    CROSS JOIN LATERAL jsonb_array_elements(l."stateMetadata" -> 'history') AS e(elem)
    WHERE l.id = ANY($1) AND jsonb_typeof(l."stateMetadata") = 'object'
      AND jsonb_typeof(l."stateMetadata" -> 'history') = 'array'
      AND (jsonb_typeof(e.elem) <> 'object'
           OR lower(e.elem ->> 'role') NOT IN ('user', 'customer', 'assistant', 'agent', 'system', 'tool')
           OR e.elem ->> 'role' IS NULL
           OR btrim(coalesce(CASE WHEN jsonb_typeof(e.elem -> 'content') = 'string' THEN e.elem ->> 'content' END,
                             CASE WHEN jsonb_typeof(e.elem -> 'text') = 'string' THEN e.elem ->> 'text' END,
                             '')) = '')
    GROUP BY l.id, l."stateMetadata"
    ON CONFLICT DO NOTHING"#;

/// Jobs whose lead is linked but who are not (written by the original after its lead was
/// backfilled, or by an earlier interrupted run's lead update in another batch).
pub(super) async fn link_remaining_jobs(conn: &mut PgConnection) -> Result<u64, BackfillError> {
    let done = sqlx::query(
        "UPDATE \"Job\" j SET customer_id = l.customer_id
         FROM \"Lead\" l
         WHERE j.customer_id IS NULL AND l.id = j.lead_id AND l.customer_id IS NOT NULL",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// `--dry-run`: what the batches would create, counted from the plan and the source rows.
pub(super) async fn dry_run(
    conn: &mut PgConnection,
    planner: &Planner,
    components: &[Component],
    pending: &[usize],
    report: &mut Report,
) -> Result<(), BackfillError> {
    let mut arrays = Batch::default();
    for &c in pending {
        let component = &components[c];
        collect(planner, component, &component.decision, &mut arrays);
    }
    report.customers = arrays.customer_ids.len() as u64;
    report.identities = arrays.identity_ids.len() as u64;
    report.leads_linked = arrays.lead_ids.len() as u64;
    report.leads_to_existing = arrays.to_existing;
    report.conversations = arrays.lead_ids.len() as u64;
    let (audit_rows, audit_messages, jobs): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM \"Audit\" a JOIN \"Lead\" l ON l.id = a.lead_id
                 WHERE l.customer_id IS NULL),
                (SELECT count(*) FROM \"Audit\" a JOIN \"Lead\" l ON l.id = a.lead_id
                 WHERE l.customer_id IS NULL AND jsonb_typeof(a.payload) = 'object'
                   AND lower(a.actor) IN ('customer', 'user', 'agent', 'assistant', 'system', 'tool')
                   AND btrim(coalesce({AUDIT_TEXT}, '')) <> ''),
                (SELECT count(*) FROM \"Job\" WHERE customer_id IS NULL)"
    ))
    .fetch_one(&mut *conn)
    .await?;
    report.audit_rows = audit_rows;
    report.messages_audit = u64::try_from(audit_messages).unwrap_or(0);
    report.jobs_linked = u64::try_from(jobs).unwrap_or(0);
    let mut issues: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for ((subject, kind), reason) in arrays
        .issue_subjects
        .iter()
        .zip(&arrays.issue_kinds)
        .zip(&arrays.issue_reasons)
    {
        let entry = issues.entry(kind.clone()).or_default();
        entry.0 += 1;
        if entry.1.len() < EXAMPLES as usize {
            entry.1.push(format!("{subject}: {reason}"));
        }
    }
    report.issues = issues;
    Ok(())
}

/// The closing counts: what is left unlinked, and the issues recorded.
pub(super) async fn finish(
    conn: &mut PgConnection,
    report: &mut Report,
) -> Result<(), BackfillError> {
    let (leads_left, jobs_left): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM \"Lead\" WHERE customer_id IS NULL),
                (SELECT count(*) FROM \"Job\" WHERE customer_id IS NULL)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if report.dry_run {
        return Ok(());
    }
    report.leads_left = leads_left;
    report.jobs_left = jobs_left;
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM junkquote.backfill_issue GROUP BY kind ORDER BY kind",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (kind, count) in counts {
        let examples: Vec<String> = sqlx::query_scalar(
            "SELECT subject || ': ' || reason FROM junkquote.backfill_issue
             WHERE kind = $1 ORDER BY subject LIMIT $2",
        )
        .bind(&kind)
        .bind(EXAMPLES)
        .fetch_all(&mut *conn)
        .await?;
        report.issues.insert(kind, (count, examples));
    }
    Ok(())
}
