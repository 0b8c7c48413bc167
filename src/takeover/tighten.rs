//! Tightening: the constraints a backfill makes possible (every lead and job linked to a
//! customer, one customer per normalised phone and email, one open conversation per lead).
//!
//! Each is a numbered migration whose file names a pre-check (`-- junkquote:requires-check
//! NAME`). The migration runner runs the pre-check first and stops before the migration when
//! rows would violate it, so `serve` on a database adopted from the original (not yet
//! backfilled) starts instead of failing halfway through a `VALIDATE`. On a fresh database the
//! checks pass trivially. `junkquote tighten` runs the same checks, lists the offending rows,
//! and refuses rather than fail halfway.

use sqlx::PgConnection;

use crate::domain::identity::E164_PATTERN;

/// The pre-checks migrations may name.
pub const CHECKS: &[&str] = &[
    "leads-and-jobs-linked",
    "customer-phone-email-unique",
    "one-open-conversation-per-lead",
];

/// One kind of offending row a pre-check found.
#[derive(Debug, Clone)]
pub struct Offence {
    /// How many rows offend.
    pub count: i64,
    /// What is wrong with them ("leads without a customer").
    pub what: String,
    /// Some of them, one line each (ids, never personal data).
    pub examples: Vec<String>,
}

/// What a pre-check found.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The check's name.
    pub name: String,
    /// Every kind of offence with at least one row.
    pub offences: Vec<Offence>,
}

impl CheckOutcome {
    /// No row offends.
    pub fn passed(&self) -> bool {
        self.offences.is_empty()
    }

    /// One line: "check leads-and-jobs-linked: 12 leads without a customer, 3 jobs …".
    pub fn summary(&self) -> String {
        if self.passed() {
            return format!("check {}: passed", self.name);
        }
        let parts: Vec<String> = self
            .offences
            .iter()
            .map(|o| format!("{} {}", o.count, o.what))
            .collect();
        format!("check {}: {}", self.name, parts.join(", "))
    }
}

/// Runs the pre-check `name`, listing up to `limit` offending rows of each kind. `None` when no
/// check has that name.
pub async fn precheck(
    conn: &mut PgConnection,
    name: &str,
    limit: i64,
) -> sqlx::Result<Option<CheckOutcome>> {
    // (what, count query, example query); each example query takes the limit as $1. The
    // domain's E.164 pattern is $1 of a count query and $2 of an example query that take it.
    let queries: &[(&str, &str, &str)] = match name {
        "leads-and-jobs-linked" => &[
            (
                "leads without a customer",
                r#"SELECT count(*) FROM "Lead" WHERE customer_id IS NULL"#,
                r#"SELECT 'lead ' || id FROM "Lead" WHERE customer_id IS NULL ORDER BY id LIMIT $1"#,
            ),
            (
                "jobs without a customer",
                r#"SELECT count(*) FROM "Job" WHERE customer_id IS NULL"#,
                r#"SELECT 'job ' || id || ' (lead ' || lead_id || ')' FROM "Job"
                   WHERE customer_id IS NULL ORDER BY id LIMIT $1"#,
            ),
        ],
        "customer-phone-email-unique" => &[
            (
                "customers whose phone is not E.164",
                r#"SELECT count(*) FROM "Customer" WHERE phone !~ $1"#,
                r#"SELECT 'customer ' || id FROM "Customer" WHERE phone !~ $2
                   ORDER BY id LIMIT $1"#,
            ),
            (
                "customers whose email is not trimmed and lower-case",
                r#"SELECT count(*) FROM "Customer" WHERE email <> lower(btrim(email))"#,
                r#"SELECT 'customer ' || id FROM "Customer" WHERE email <> lower(btrim(email))
                   ORDER BY id LIMIT $1"#,
            ),
            (
                "phone numbers shared by several customers",
                r#"SELECT count(*) FROM (SELECT phone FROM "Customer" WHERE phone IS NOT NULL
                   GROUP BY phone HAVING count(*) > 1) d"#,
                r#"SELECT 'customers ' || string_agg(id::text, ', ' ORDER BY id) || ' share a phone'
                   FROM "Customer" WHERE phone IS NOT NULL GROUP BY phone HAVING count(*) > 1
                   ORDER BY min(id::text) LIMIT $1"#,
            ),
            (
                "email addresses shared by several customers",
                r#"SELECT count(*) FROM (SELECT email FROM "Customer" WHERE email IS NOT NULL
                   GROUP BY email HAVING count(*) > 1) d"#,
                r#"SELECT 'customers ' || string_agg(id::text, ', ' ORDER BY id) || ' share an email'
                   FROM "Customer" WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1
                   ORDER BY min(id::text) LIMIT $1"#,
            ),
        ],
        "one-open-conversation-per-lead" => {
            // Before migration 15 there is no `closed_at`: every conversation is open.
            let has_closed_at: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = 'Conversation'
                   AND column_name = 'closed_at')",
            )
            .fetch_one(&mut *conn)
            .await?;
            if has_closed_at {
                &[(
                    "leads with more than one open conversation",
                    r#"SELECT count(*) FROM (SELECT lead_id FROM "Conversation"
                       WHERE lead_id IS NOT NULL AND closed_at IS NULL
                       GROUP BY lead_id HAVING count(*) > 1) d"#,
                    r#"SELECT 'lead ' || lead_id || ' has ' || count(*) || ' open conversations'
                       FROM "Conversation" WHERE lead_id IS NOT NULL AND closed_at IS NULL
                       GROUP BY lead_id HAVING count(*) > 1 ORDER BY lead_id LIMIT $1"#,
                )]
            } else {
                &[(
                    "leads with more than one open conversation",
                    r#"SELECT count(*) FROM (SELECT lead_id FROM "Conversation"
                       WHERE lead_id IS NOT NULL GROUP BY lead_id HAVING count(*) > 1) d"#,
                    r#"SELECT 'lead ' || lead_id || ' has ' || count(*) || ' open conversations'
                       FROM "Conversation" WHERE lead_id IS NOT NULL
                       GROUP BY lead_id HAVING count(*) > 1 ORDER BY lead_id LIMIT $1"#,
                )]
            }
        }
        _ => return Ok(None),
    };
    let mut offences = Vec::new();
    for (what, count_sql, examples_sql) in queries {
        let mut count_query = sqlx::query_scalar(count_sql);
        if count_sql.contains("$1") {
            count_query = count_query.bind(E164_PATTERN);
        }
        let count: i64 = count_query.fetch_one(&mut *conn).await?;
        if count == 0 {
            continue;
        }
        let examples = if limit > 0 {
            let mut examples_query = sqlx::query_scalar(examples_sql).bind(limit);
            if examples_sql.contains("$2") {
                examples_query = examples_query.bind(E164_PATTERN);
            }
            examples_query.fetch_all(&mut *conn).await?
        } else {
            Vec::new()
        };
        offences.push(Offence {
            count,
            what: (*what).to_owned(),
            examples,
        });
    }
    Ok(Some(CheckOutcome {
        name: name.to_owned(),
        offences,
    }))
}
