//! `junkquote db check`: the data-quality gates, each a count with pass or fail.
//!
//! A required gate fails the check when its count is not zero (or, for the index gate, when the
//! index is missing or invalid); an informational gate only reports.

use sqlx::PgConnection;

use crate::domain::identity::E164_PATTERN;

/// One gate's outcome.
#[derive(Debug, Clone)]
pub struct Gate {
    /// What it counts.
    pub name: &'static str,
    /// The count.
    pub count: i64,
    /// Whether a non-zero count fails the check.
    pub required: bool,
}

impl Gate {
    /// Whether the gate passes (informational gates always do).
    pub fn passed(&self) -> bool {
        !self.required || self.count == 0
    }
}

/// (name, required, query returning one bigint). A query that takes `$1` gets the domain's
/// E.164 pattern there, so that this gate and the Rust rule cannot drift apart.
const GATES: &[(&str, bool, &str)] = &[
    (
        "leads without a customer",
        true,
        r#"SELECT count(*) FROM "Lead" WHERE customer_id IS NULL"#,
    ),
    (
        "jobs without a customer",
        true,
        r#"SELECT count(*) FROM "Job" WHERE customer_id IS NULL"#,
    ),
    (
        "jobs whose customer is not their lead's",
        true,
        r#"SELECT count(*) FROM "Job" j JOIN "Lead" l ON l.id = j.lead_id
           WHERE j.customer_id IS DISTINCT FROM l.customer_id"#,
    ),
    (
        "leads or jobs linked to a customer that does not exist",
        true,
        r#"SELECT (SELECT count(*) FROM "Lead" l WHERE l.customer_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM "Customer" c WHERE c.id = l.customer_id))
                + (SELECT count(*) FROM "Job" j WHERE j.customer_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM "Customer" c WHERE c.id = j.customer_id))"#,
    ),
    (
        "conversations whose customer is not their lead's",
        true,
        r#"SELECT count(*) FROM "Conversation" c JOIN "Lead" l ON l.id = c.lead_id
           WHERE c.customer_id IS DISTINCT FROM l.customer_id"#,
    ),
    (
        "leads with more than one open conversation",
        true,
        "OPEN_CONVERSATIONS",
    ),
    (
        "phone numbers shared by several customers",
        true,
        r#"SELECT count(*) FROM (SELECT phone FROM "Customer" WHERE phone IS NOT NULL
           GROUP BY phone HAVING count(*) > 1) d"#,
    ),
    (
        "email addresses shared by several customers",
        true,
        r#"SELECT count(*) FROM (SELECT email FROM "Customer" WHERE email IS NOT NULL
           GROUP BY email HAVING count(*) > 1) d"#,
    ),
    (
        "customer phones not in E.164 or emails not normalised",
        true,
        r#"SELECT count(*) FROM "Customer"
           WHERE phone !~ $1 OR email <> lower(btrim(email))"#,
    ),
    (
        "customers without an identity (not flagged by the backfill)",
        true,
        r#"SELECT count(*) FROM "Customer" c
           WHERE NOT EXISTS (SELECT 1 FROM "CustomerIdentity" i WHERE i.customer_id = c.id)
             AND c.phone IS NULL AND c.email IS NULL
             AND NOT (jsonb_typeof(c.metadata -> 'psids') = 'array'
                      AND jsonb_array_length(c.metadata -> 'psids') > 0)
             AND NOT (c.metadata -> 'backfill' ? 'no_usable_identity'
                      OR c.metadata -> 'backfill' ? 'conflict')
             AND EXISTS (SELECT 1 FROM "Lead" l WHERE l.customer_id = c.id
                         AND l.channel <> 'web')"#,
    ),
    (
        "message full-text index missing or invalid",
        true,
        r#"SELECT CASE WHEN EXISTS (
               SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_namespace n ON n.oid = i.relnamespace
               WHERE n.nspname = 'public' AND i.relname = 'Message_content_search_idx'
                 AND x.indisvalid) THEN 0 ELSE 1 END::bigint"#,
    ),
    (
        "customers flagged by the backfill (no usable identity, or conflicting identities)",
        false,
        r#"SELECT count(*) FROM "Customer"
           WHERE metadata -> 'backfill' ? 'no_usable_identity'
              OR metadata -> 'backfill' ? 'conflict'"#,
    ),
    (
        "leads without a conversation",
        false,
        r#"SELECT count(*) FROM "Lead" l
           WHERE NOT EXISTS (SELECT 1 FROM "Conversation" c WHERE c.lead_id = l.id)"#,
    ),
    (
        "Audit rows whose lead is gone",
        false,
        r#"SELECT count(*) FROM "Audit" WHERE lead_id IS NULL"#,
    ),
    (
        "expired memory notes awaiting purge",
        false,
        r#"SELECT count(*) FROM "MemoryNote" WHERE expires_at < now()"#,
    ),
];

/// Runs every gate.
pub async fn check(conn: &mut PgConnection) -> sqlx::Result<Vec<Gate>> {
    let has_closed_at: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = 'Conversation'
           AND column_name = 'closed_at')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let open = if has_closed_at {
        "AND closed_at IS NULL"
    } else {
        ""
    };
    let mut gates = Vec::new();
    for (name, required, sql) in GATES {
        let sql = if *sql == "OPEN_CONVERSATIONS" {
            format!(
                r#"SELECT count(*) FROM (SELECT lead_id FROM "Conversation"
                   WHERE lead_id IS NOT NULL {open} GROUP BY lead_id HAVING count(*) > 1) d"#
            )
        } else {
            (*sql).to_owned()
        };
        let mut query = sqlx::query_scalar(&sql);
        if sql.contains("$1") {
            query = query.bind(E164_PATTERN);
        }
        let count: i64 = query.fetch_one(&mut *conn).await?;
        gates.push(Gate {
            name,
            count,
            required: *required,
        });
    }
    Ok(gates)
}
