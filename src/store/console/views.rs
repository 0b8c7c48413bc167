//! The console's read models: what each page shows, each read in as few statements as it takes
//! (the operator's job steps and item changes are in `store::jobs`).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Channel;
use crate::domain::identity::Identity;
use crate::domain::money::Cents;
use crate::domain::progress::Progress;
use crate::domain::stages::{JobStatus, QuoteStatus, Stage};

/// A customer in a list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRow {
    /// Their id.
    pub id: Uuid,
    /// Their name.
    pub name: Option<String>,
    /// Their main phone.
    pub phone: Option<String>,
    /// Their main email.
    pub email: Option<String>,
    /// Since when.
    pub created_at: DateTime<Utc>,
    /// Why they may not be messaged, when they opted out (on any of their identities).
    pub opted_out: Option<String>,
}

/// Why the customer's identities opted out: `"<channel>: <reason>"` each, for the badge.
const OPTED_OUT: &str =
    "(SELECT string_agg(o.channel || ': ' || o.reason, '; ' ORDER BY o.created_at)
                          FROM \"CustomerIdentity\" i
                          JOIN \"OptOut\" o ON o.recipient = i.value
                           AND o.channel = CASE i.kind WHEN 'phone' THEN 'sms'
                                                       WHEN 'psid' THEN 'messenger' END
                          WHERE i.customer_id = c.id)";

/// The customers who opted out of messages, the latest first, at most 50.
pub async fn opted_out_customers(conn: &mut PgConnection) -> sqlx::Result<Vec<CustomerRow>> {
    sqlx::query_as(&format!(
        "SELECT * FROM (SELECT c.id, c.name, c.phone, c.email, c.created_at,
                               {OPTED_OUT} AS opted_out
                        FROM \"Customer\" c) c
         WHERE opted_out IS NOT NULL ORDER BY created_at DESC LIMIT 50"
    ))
    .fetch_all(conn)
    .await
}

/// Why customer `id` may not be messaged, if they opted out.
pub async fn opted_out(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(&format!(
        "SELECT {OPTED_OUT} FROM \"Customer\" c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Customers matching what the operator typed: the holder of a phone or email written in any
/// format, else names, emails and addresses containing the text. Newest first, at most 50.
pub async fn search_customers(
    conn: &mut PgConnection,
    identities: &[Identity],
    text: &str,
) -> sqlx::Result<Vec<CustomerRow>> {
    let kinds: Vec<&str> = identities.iter().map(|i| i.kind.as_str()).collect();
    let values: Vec<&str> = identities.iter().map(|i| i.value.as_str()).collect();
    let pattern = format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    sqlx::query_as(&format!(
        "SELECT c.id, c.name, c.phone, c.email, c.created_at, {OPTED_OUT} AS opted_out
         FROM \"Customer\" c
         WHERE c.id IN (SELECT i.customer_id FROM \"CustomerIdentity\" i
                        JOIN unnest($1::text[], $2::text[]) AS q(kind, value)
                          ON i.kind::text = q.kind AND i.value = q.value)
            OR c.phone = ANY($2) OR c.email = ANY($2)
            OR ($3 <> '%%' AND (c.name ILIKE $3 OR c.email ILIKE $3
                OR EXISTS (SELECT 1 FROM \"CustomerAddress\" a
                           WHERE a.customer_id = c.id AND a.address ILIKE $3)))
         ORDER BY c.created_at DESC LIMIT 50"
    ))
    .bind(&kinds)
    .bind(&values)
    .bind(pattern)
    .fetch_all(conn)
    .await
}

/// A conversation in the customer's list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    /// Its id.
    pub id: Uuid,
    /// Its channel.
    pub channel: Channel,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last message's time.
    pub last_message_at: Option<DateTime<Utc>>,
    /// How many messages.
    pub messages: i64,
}

/// A lead with its latest quote.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeadRow {
    /// Its id.
    pub id: Uuid,
    /// Its stage.
    pub stage: Stage,
    /// Its channel.
    pub channel: Channel,
    /// The pickup address.
    pub address: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

/// A quote.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuoteRow {
    /// Its id.
    pub id: Uuid,
    /// Its lead.
    pub lead_id: Uuid,
    /// Its total.
    pub total_cents: Cents,
    /// Its status.
    pub status: QuoteStatus,
    /// Whether the owner had to approve it.
    pub needs_approval: bool,
    /// Line by line.
    pub explanation: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A job with what the console shows of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// Its id.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Option<Uuid>,
    /// The customer's name.
    pub customer_name: Option<String>,
    /// Its status.
    pub status: JobStatus,
    /// The latest progress step recorded (`en_route`, `arrived`, …).
    pub step: Option<String>,
    /// The window.
    pub window_start: DateTime<Utc>,
    /// The window's end.
    pub window_end: DateTime<Utc>,
    /// The pickup address.
    pub address: Option<String>,
    /// "2 × couch, 1 × refrigerator".
    pub items: Option<String>,
    /// The same, one item a line (for the edit form).
    pub item_lines: Option<String>,
    /// The quote's total.
    pub total_cents: Option<Cents>,
}

impl JobRow {
    /// Where the job is.
    pub fn progress(&self) -> Progress {
        Progress::of(self.status, self.step.as_deref())
    }
}

const JOB_COLUMNS: &str = "j.id, j.customer_id, c.name AS customer_name, j.status::text AS status,
    (SELECT e.event_type FROM \"JobEvent\" e
     WHERE e.job_id = j.id AND e.event_type IN ('booked', 'en_route', 'arrived', 'completed', 'cancelled')
     ORDER BY e.created_at DESC, e.id DESC LIMIT 1) AS step,
    j.window_start, j.window_end, l.address,
    (SELECT string_agg(i.quantity || ' × ' || i.description, ', ' ORDER BY i.created_at, i.id)
     FROM \"JobItem\" i WHERE i.job_id = j.id) AS items,
    (SELECT string_agg(i.quantity || ' × ' || i.description, E'\\n' ORDER BY i.created_at, i.id)
     FROM \"JobItem\" i WHERE i.job_id = j.id) AS item_lines,
    (q.total * 100)::bigint AS total_cents";

const JOB_FROM: &str = "FROM \"Job\" j
    JOIN \"Lead\" l ON l.id = j.lead_id
    LEFT JOIN \"Customer\" c ON c.id = j.customer_id
    LEFT JOIN \"Quote\" q ON q.id = j.quote_id";

/// Everything the customer page shows besides the context.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Conversations, newest first.
    pub conversations: Vec<ConversationRow>,
    /// Leads, newest first.
    pub leads: Vec<LeadRow>,
    /// Quotes, newest first.
    pub quotes: Vec<QuoteRow>,
    /// Jobs, newest window first.
    pub jobs: Vec<JobRow>,
}

/// A customer's conversations, leads, quotes and jobs (the latest 50 of each).
pub async fn history(conn: &mut PgConnection, customer_id: Uuid) -> sqlx::Result<History> {
    let conversations = sqlx::query_as(
        "SELECT v.id, v.channel::text AS channel, v.started_at, v.last_message_at,
                (SELECT count(*) FROM \"Message\" m WHERE m.conversation_id = v.id) AS messages
         FROM \"Conversation\" v WHERE v.customer_id = $1
         ORDER BY v.started_at DESC LIMIT 50",
    )
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    let leads = sqlx::query_as(
        "SELECT id, stage::text AS stage, channel::text AS channel, address, created_at
         FROM \"Lead\" WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50",
    )
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    let quotes = sqlx::query_as(
        "SELECT q.id, q.lead_id, (q.total * 100)::bigint AS total_cents, q.status::text AS status,
                q.needs_approval, q.notes_json->>'explanation' AS explanation, q.created_at
         FROM \"Quote\" q JOIN \"Lead\" l ON l.id = q.lead_id
         WHERE l.customer_id = $1 ORDER BY q.created_at DESC LIMIT 50",
    )
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    let jobs = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.customer_id = $1
         ORDER BY j.window_start DESC LIMIT 50"
    ))
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(History {
        conversations,
        leads,
        quotes,
        jobs,
    })
}

/// Jobs whose window starts in `from`..`to`, soonest first.
pub async fn jobs_between(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} {JOB_FROM}
         WHERE j.window_start >= $1 AND j.window_start < $2
         ORDER BY j.window_start, j.id LIMIT 500"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// One job.
pub async fn job(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(&format!("SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A quote waiting for the owner, with what the approvals page shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApprovalRow {
    /// The approval.
    pub id: Uuid,
    /// The quote.
    pub quote_id: Uuid,
    /// The customer.
    pub customer_id: Option<Uuid>,
    /// Their name.
    pub customer_name: Option<String>,
    /// The pickup address.
    pub address: Option<String>,
    /// Its total.
    pub total_cents: Cents,
    /// Why it waits.
    pub reasons: Vec<String>,
    /// The quote line by line.
    pub explanation: Option<String>,
    /// The lead's photos.
    pub photos: Vec<String>,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// Approvals waiting, oldest first: each lead's latest quote, if it waits for the owner.
pub async fn approvals(conn: &mut PgConnection) -> sqlx::Result<Vec<ApprovalRow>> {
    sqlx::query_as(
        "SELECT a.id, a.quote_id, l.customer_id, c.name AS customer_name, l.address,
                (q.total * 100)::bigint AS total_cents,
                coalesce(ARRAY(SELECT jsonb_array_elements_text(
                                  coalesce(q.flags_json->'approval_reasons', '[]'))), '{}') AS reasons,
                q.notes_json->>'explanation' AS explanation,
                coalesce(ARRAY(SELECT p.url FROM \"LeadAttachment\" p
                               WHERE p.lead_id = l.id ORDER BY p.created_at), '{}') AS photos,
                a.created_at
         FROM \"Approval\" a
         JOIN \"Quote\" q ON q.id = a.quote_id
         JOIN \"Lead\" l ON l.id = q.lead_id
         LEFT JOIN \"Customer\" c ON c.id = l.customer_id
         WHERE a.status = 'pending' AND q.status = 'pending_approval'
           -- A quote the customer moved past (a newer one on the lead) is not decided.
           AND NOT EXISTS (SELECT 1 FROM \"Quote\" n
                           WHERE n.lead_id = q.lead_id AND n.created_at > q.created_at)
         ORDER BY a.created_at LIMIT 200",
    )
    .fetch_all(conn)
    .await
}

/// The dashboard's figures.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Figures {
    /// Leads started today.
    pub leads_today: i64,
    /// Leads not done.
    pub leads_active: i64,
    /// Leads of the last 30 days that led to a job.
    pub booked_30d: i64,
    /// Leads of the last 30 days.
    pub leads_30d: i64,
    /// Average quote of the last 30 days.
    pub average_quote_cents: Option<Cents>,
    /// Approvals waiting.
    pub approvals_waiting: i64,
    /// Pickups in the next 7 days.
    pub pickups_next_7d: i64,
    /// Completed jobs' quotes of the last 30 days.
    pub revenue_30d_cents: Cents,
}

/// The dashboard's figures, in one statement ("today" in the company's time zone `tz`).
pub async fn figures(conn: &mut PgConnection, tz: &str) -> sqlx::Result<Figures> {
    sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM \"Lead\"
             WHERE created_at >= date_trunc('day', now() AT TIME ZONE $1) AT TIME ZONE $1)
                AS leads_today,
            (SELECT count(*) FROM \"Lead\" WHERE stage <> 'done') AS leads_active,
            (SELECT count(DISTINCT j.lead_id) FROM \"Job\" j JOIN \"Lead\" l ON l.id = j.lead_id
             WHERE l.created_at > now() - interval '30 days' AND j.status <> 'cancelled') AS booked_30d,
            (SELECT count(*) FROM \"Lead\" WHERE created_at > now() - interval '30 days') AS leads_30d,
            (SELECT (avg(total) * 100)::bigint FROM \"Quote\"
             WHERE created_at > now() - interval '30 days') AS average_quote_cents,
            (SELECT count(*) FROM \"Approval\" a JOIN \"Quote\" q ON q.id = a.quote_id
             WHERE a.status = 'pending' AND q.status = 'pending_approval'
               AND NOT EXISTS (SELECT 1 FROM \"Quote\" n
                               WHERE n.lead_id = q.lead_id AND n.created_at > q.created_at))
                AS approvals_waiting,
            (SELECT count(*) FROM \"Job\" WHERE status = 'booked'
             AND window_start >= now() AND window_start < now() + interval '7 days') AS pickups_next_7d,
            (SELECT coalesce((sum(q.total) * 100)::bigint, 0) FROM \"Job\" j
             JOIN \"Quote\" q ON q.id = j.quote_id
             WHERE j.status = 'completed' AND j.window_start > now() - interval '30 days')
                AS revenue_30d_cents",
    )
    .bind(tz)
    .fetch_one(conn)
    .await
}

/// Quotes and bookings per day, in the company's time zone `tz`, over the last `days` days
/// (oldest first; days without any included).
pub async fn daily(
    conn: &mut PgConnection,
    days: i32,
    tz: &str,
) -> sqlx::Result<Vec<(NaiveDate, i64, i64)>> {
    sqlx::query_as(
        "SELECT d.day::date,
                (SELECT count(*) FROM \"Quote\" q
                 WHERE q.created_at >= d.day AT TIME ZONE $2
                   AND q.created_at < (d.day + interval '1 day') AT TIME ZONE $2),
                (SELECT count(*) FROM \"Job\" j
                 WHERE j.created_at >= d.day AT TIME ZONE $2
                   AND j.created_at < (d.day + interval '1 day') AT TIME ZONE $2)
         FROM generate_series(date_trunc('day', now() AT TIME ZONE $2)
                                  - make_interval(days => $1 - 1),
                              date_trunc('day', now() AT TIME ZONE $2),
                              interval '1 day') AS d(day)
         ORDER BY d.day",
    )
    .bind(days)
    .bind(tz)
    .fetch_all(conn)
    .await
}

/// A lead in the pipeline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PipelineRow {
    /// Its id.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Option<Uuid>,
    /// Their name.
    pub customer_name: Option<String>,
    /// The lead's or the customer's phone.
    pub phone: Option<String>,
    /// Its stage.
    pub stage: Stage,
    /// Its channel.
    pub channel: Channel,
    /// The pickup address.
    pub address: Option<String>,
    /// The latest quote's total.
    pub total_cents: Option<Cents>,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

/// Leads at `stage` (any when `None`) matching the search (identities in any format, else
/// text in the name, email, phone or address), newest first, `limit` from `offset`.
pub async fn pipeline(
    conn: &mut PgConnection,
    stage: Option<Stage>,
    identities: &[Identity],
    text: &str,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Vec<PipelineRow>> {
    let kinds: Vec<&str> = identities.iter().map(|i| i.kind.as_str()).collect();
    let values: Vec<&str> = identities.iter().map(|i| i.value.as_str()).collect();
    let pattern = if text.is_empty() {
        String::new()
    } else {
        format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    };
    sqlx::query_as(
        "SELECT l.id, l.customer_id, coalesce(c.name, l.name) AS customer_name,
                coalesce(l.phone, c.phone) AS phone,
                l.stage::text AS stage, l.channel::text AS channel, l.address,
                (SELECT (q.total * 100)::bigint FROM \"Quote\" q WHERE q.lead_id = l.id
                 ORDER BY q.created_at DESC LIMIT 1) AS total_cents,
                l.created_at
         FROM \"Lead\" l LEFT JOIN \"Customer\" c ON c.id = l.customer_id
         WHERE ($1::text IS NULL OR l.stage::text = $1)
           AND ($4 = '' AND cardinality($2::text[]) = 0
                OR l.customer_id IN (SELECT i.customer_id FROM \"CustomerIdentity\" i
                                     JOIN unnest($2::text[], $3::text[]) AS q(kind, value)
                                       ON i.kind::text = q.kind AND i.value = q.value)
                OR l.phone = ANY($3) OR l.email = ANY($3)
                OR ($4 <> '' AND (c.name ILIKE $4 OR c.email ILIKE $4 OR l.name ILIKE $4
                                  OR l.address ILIKE $4 OR l.email ILIKE $4)))
         ORDER BY l.created_at DESC, l.id
         LIMIT $6 OFFSET $5",
    )
    .bind(stage)
    .bind(&kinds)
    .bind(&values)
    .bind(pattern)
    .bind(offset)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// How many leads are at each stage.
pub async fn stage_counts(conn: &mut PgConnection) -> sqlx::Result<Vec<(Stage, i64)>> {
    sqlx::query_as("SELECT stage::text, count(*) FROM \"Lead\" GROUP BY stage")
        .fetch_all(conn)
        .await
}
