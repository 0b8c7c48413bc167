//! Jobs: booking a window (the crew's time, which the database refuses to give twice), the
//! reminders that fall due, the operator's iCal feed, and the operator's steps and item
//! changes on the day.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::audit::audit;
use super::leads::Lead;
use super::quotes::bookable;
use crate::domain::money::Cents;
use crate::domain::progress::Progress;
use crate::domain::schedule::{Busy, MAX_CREWS, Window};
use crate::domain::stages::JobStatus;

/// A booked job that is due a reminder.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueReminder {
    /// The job.
    pub job_id: Uuid,
    /// Its conversation (where the reminder goes).
    pub conversation_id: Uuid,
    /// The reminder's lead time, in hours before the window.
    pub hours: i32,
    /// The window's start.
    pub window_start: DateTime<Utc>,
    /// The window's end.
    pub window_end: DateTime<Utc>,
    /// The pickup address.
    pub address: Option<String>,
}

/// The SQL for due reminders: the smallest configured lead time that has been reached, when no
/// reminder that close to the window was sent yet (a job booked late gets one reminder, not
/// every one it missed).
const DUE: &str = "SELECT j.id AS job_id, c.id AS conversation_id, h.hours, j.window_start,
                          j.window_end, l.address
         FROM \"Job\" j
         JOIN \"Lead\" l ON l.id = j.lead_id
         JOIN LATERAL (SELECT id FROM \"Conversation\" WHERE lead_id = j.lead_id
                       ORDER BY started_at DESC LIMIT 1) c ON true
         JOIN LATERAL (SELECT min(h) AS hours FROM unnest($1::int[]) h
                       WHERE j.window_start - make_interval(hours => h) <= now()) h ON true
         WHERE j.status = 'booked' AND j.window_start > now() AND h.hours IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM \"JobEvent\" e
                           WHERE e.job_id = j.id AND e.event_type = 'reminder_sent'
                             AND (e.metadata->>'hours')::int <= h.hours)
           AND ($2::uuid IS NULL OR j.id = $2)";

/// A job with a reminder due, unlocked: the caller locks its conversation first (the lock
/// order every writer follows), then claims it with [`claim_due_reminder`].
pub async fn next_due_reminder(
    conn: &mut PgConnection,
    hours: &[i32],
) -> sqlx::Result<Option<DueReminder>> {
    sqlx::query_as(&format!("{DUE} ORDER BY j.window_start LIMIT 1"))
        .bind(hours)
        .bind(None::<Uuid>)
        .fetch_optional(conn)
        .await
}

/// Locks `job_id` if its reminder is still due and no other worker holds it.
pub async fn claim_due_reminder(
    conn: &mut PgConnection,
    hours: &[i32],
    job_id: Uuid,
) -> sqlx::Result<Option<DueReminder>> {
    sqlx::query_as(&format!("{DUE} FOR UPDATE OF j SKIP LOCKED"))
        .bind(hours)
        .bind(job_id)
        .fetch_optional(conn)
        .await
}

/// Records that a reminder went out.
pub async fn reminder_sent(conn: &mut PgConnection, job_id: Uuid, hours: i32) -> sqlx::Result<()> {
    sqlx::query(
        "WITH e AS (
             INSERT INTO \"JobEvent\" (job_id, event_type, actor, metadata)
             VALUES ($1, 'reminder_sent', 'system', jsonb_build_object('hours', $2::int))
         )
         UPDATE \"Job\" SET reminder_sent_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(job_id)
    .bind(hours)
    .execute(conn)
    .await?;
    Ok(())
}

/// A job on the operator's calendar.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CalendarJob {
    /// The job.
    pub id: Uuid,
    /// Its window.
    pub window_start: DateTime<Utc>,
    /// Its window's end.
    pub window_end: DateTime<Utc>,
    /// `booked`, `completed`, …
    pub status: JobStatus,
    /// The pickup address.
    pub address: Option<String>,
    /// Its items, "2 × couch, 1 × refrigerator".
    pub items: Option<String>,
    /// The quote's total in cents.
    pub total_cents: Option<Cents>,
    /// What the crew should know (gate code, dog, stairs), from the customer's memory notes.
    pub crew_notes: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Booked and completed jobs from 30 days ago on, for the iCal feed.
pub async fn calendar(conn: &mut PgConnection) -> sqlx::Result<Vec<CalendarJob>> {
    sqlx::query_as(
        "SELECT j.id, j.window_start, j.window_end, j.status::text AS status, l.address,
                (SELECT string_agg(i.quantity || ' × ' || i.description, ', ' ORDER BY i.created_at)
                 FROM \"JobItem\" i WHERE i.job_id = j.id) AS items,
                (q.total * 100)::bigint AS total_cents,
                (SELECT string_agg(n.note, '; ')
                 FROM (SELECT e.metadata FROM \"JobEvent\" e
                       WHERE e.job_id = j.id AND e.event_type = 'crew_notes'
                       ORDER BY e.created_at DESC LIMIT 1) e,
                      jsonb_array_elements_text(e.metadata->'notes') AS n(note)) AS crew_notes,
                j.updated_at
         FROM \"Job\" j
         JOIN \"Lead\" l ON l.id = j.lead_id
         LEFT JOIN \"Quote\" q ON q.id = j.quote_id
         WHERE j.status IN ('booked', 'completed') AND j.window_end > now() - interval '30 days'
         ORDER BY j.window_start",
    )
    .fetch_all(conn)
    .await
}

/// The job's pickup window, if there is such a job.
pub async fn window(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Option<Window>> {
    let row: Option<(DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT window_start, window_end FROM \"Job\" WHERE id = $1")
            .bind(job_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(start, end)| Window { start, end }))
}

/// The crews' booked windows that overlap `from`..`to`.
pub async fn busy(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Busy>> {
    let rows: Vec<(i32, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT crew, window_start, window_end FROM \"Booking\"
         WHERE window_end > $1 AND window_start < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(crew, start, end)| (u32::try_from(crew).unwrap_or(0), Window { start, end }))
        .collect())
}

/// What came of a booking attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booked {
    /// The job is booked.
    Job(Uuid),
    /// Someone else booked overlapping crew time first.
    Taken,
    /// The quote waits for (or was refused) the owner's approval.
    NotApproved,
}

/// Books the lead's quote into `window`: a Job with its items and events, and the crew's time,
/// which the database refuses to give twice.
pub async fn book(
    conn: &mut PgConnection,
    lead: &Lead,
    quote_id: Uuid,
    window: Window,
    crews: u32,
) -> sqlx::Result<Booked> {
    if !bookable(conn, quote_id).await? {
        return Ok(Booked::NotApproved);
    }
    // A savepoint: a lost race rolls back the attempt, not the conversation's transaction.
    let mut attempt = conn.begin().await?;
    let job_id: Uuid = sqlx::query_scalar(
        "INSERT INTO \"Job\" (lead_id, quote_id, window_start, window_end, status, customer_id)
         VALUES ($1, $2, $3, $4, 'booked', $5) RETURNING id",
    )
    .bind(lead.id)
    .bind(quote_id)
    .bind(window.start)
    .bind(window.end)
    .bind(lead.customer_id)
    .fetch_one(&mut *attempt)
    .await?;
    // The first crew free for the whole window; the exclusion constraint settles a race.
    let booking = sqlx::query(
        "INSERT INTO \"Booking\" (job_id, crew, window_start, window_end)
         SELECT $1, c, $2, $3 FROM generate_series(1, $4) c
         WHERE NOT EXISTS (SELECT 1 FROM \"Booking\" b
                           WHERE b.crew = c AND tstzrange(b.window_start, b.window_end)
                                                && tstzrange($2, $3))
         ORDER BY c LIMIT 1",
    )
    .bind(job_id)
    .bind(window.start)
    .bind(window.end)
    .bind(i32::try_from(crews.clamp(1, MAX_CREWS)).unwrap_or(1))
    .execute(&mut *attempt)
    .await;
    if matches!(&booking, Ok(done) if done.rows_affected() == 0) {
        attempt.rollback().await?;
        return Ok(Booked::Taken);
    }
    if let Err(e) = booking {
        // Two bookings of the same time check each other's uncommitted rows; PostgreSQL then
        // refuses one with the constraint, or, when both saw the other, with a deadlock. Either
        // way the other booking stands.
        let db = e.as_database_error();
        let overlap = db.and_then(|d| d.constraint()) == Some("Booking_no_overlap")
            || db.and_then(|d| d.code()).as_deref() == Some("40P01");
        if overlap {
            attempt.rollback().await?;
            return Ok(Booked::Taken);
        }
        return Err(e);
    }
    for item in &lead.state.recognition.items {
        sqlx::query(
            "INSERT INTO \"JobItem\" (job_id, description, quantity, metadata)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(job_id)
        .bind(&item.description)
        .bind(i32::try_from(item.quantity).unwrap_or(i32::MAX))
        .bind(serde_json::json!({
            "cubic_feet_each": item.cubic_feet_each,
            "regulated": item.regulated,
            "heavy": item.heavy,
            "needs_review": item.needs_review,
        }))
        .execute(&mut *attempt)
        .await?;
    }
    sqlx::query(
        "INSERT INTO \"JobEvent\" (job_id, event_type, actor, metadata, created_at)
         VALUES ($1, 'created', 'agent', '{}', clock_timestamp()),
                ($1, 'booked', 'agent', jsonb_build_object('window_start', $2::timestamptz, 'window_end', $3::timestamptz), clock_timestamp())",
    )
    .bind(job_id)
    .bind(window.start)
    .bind(window.end)
    .execute(&mut *attempt)
    .await?;
    sqlx::query("UPDATE \"Quote\" SET status = 'accepted', updated_at = now() WHERE id = $1")
        .bind(quote_id)
        .execute(&mut *attempt)
        .await?;
    audit(
        &mut attempt,
        Some(lead.id),
        "agent",
        "job_booked",
        serde_json::json!({"job_id": job_id}),
    )
    .await?;
    attempt.commit().await?;
    Ok(Booked::Job(job_id))
}

/// Why a job step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRefused {
    /// No such job.
    Missing,
    /// Not a step that can follow the job's current one.
    NotNext(Progress),
}

/// Moves a job one step (en route, arrived, completed, cancelled), recording a `JobEvent` with
/// the operator as actor; a cancelled job gives its crew time back.
pub async fn step(
    conn: &mut PgConnection,
    id: Uuid,
    to: Progress,
    actor: &str,
) -> sqlx::Result<Result<(), StepRefused>> {
    let current: Option<(JobStatus, Option<String>, Option<Uuid>)> = sqlx::query_as(
        "SELECT j.status::text,
                (SELECT e.event_type FROM \"JobEvent\" e
                 WHERE e.job_id = j.id
                   AND e.event_type IN ('booked', 'en_route', 'arrived', 'completed', 'cancelled')
                 ORDER BY e.created_at DESC, e.id DESC LIMIT 1),
                j.lead_id
         FROM \"Job\" j WHERE j.id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((status, step, lead_id)) = current else {
        return Ok(Err(StepRefused::Missing));
    };
    let at = Progress::of(status, step.as_deref());
    if !at.allows(to) {
        return Ok(Err(StepRefused::NotNext(at)));
    }
    sqlx::query(
        "INSERT INTO \"JobEvent\" (job_id, event_type, actor, metadata, created_at)
         VALUES ($1, $2, $3, jsonb_build_object('from', $4::text), clock_timestamp())",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(actor)
    .bind(at.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE \"Job\" SET status = $2::text::\"JobStatus\", updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(to.status())
    .execute(&mut *conn)
    .await?;
    if to == Progress::Cancelled {
        sqlx::query("DELETE FROM \"Booking\" WHERE job_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if to == Progress::Completed
        && let Some(lead_id) = lead_id
    {
        sqlx::query("UPDATE \"Lead\" SET stage = 'done', updated_at = now() WHERE id = $1")
            .bind(lead_id)
            .execute(&mut *conn)
            .await?;
    }
    audit(
        conn,
        lead_id,
        actor,
        &format!("job_{}", to.as_str()),
        serde_json::json!({"job_id": id, "from": at.as_str()}),
    )
    .await?;
    Ok(Ok(()))
}

/// Why items could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemsRefused {
    /// No such job.
    Missing,
    /// The job is completed or cancelled.
    Closed,
}

/// Replaces a job's items (quantity, description), recording a `JobEvent` with the operator as
/// actor. The quote is not priced again: the operator settles a changed price on site.
pub async fn replace_items(
    conn: &mut PgConnection,
    id: Uuid,
    items: &[(i32, String)],
    actor: &str,
) -> sqlx::Result<Result<(), ItemsRefused>> {
    let status: Option<JobStatus> =
        sqlx::query_scalar("SELECT status::text FROM \"Job\" WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match status {
        None => return Ok(Err(ItemsRefused::Missing)),
        Some(JobStatus::Completed | JobStatus::Cancelled) => {
            return Ok(Err(ItemsRefused::Closed));
        }
        Some(JobStatus::Tentative | JobStatus::Booked) => {}
    }
    let quantities: Vec<i32> = items.iter().map(|(q, _)| *q).collect();
    let descriptions: Vec<&str> = items.iter().map(|(_, d)| d.as_str()).collect();
    sqlx::query("DELETE FROM \"JobItem\" WHERE job_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    // One statement for every item; clock_timestamp() keeps them in the order given.
    sqlx::query(
        "INSERT INTO \"JobItem\" (job_id, description, quantity, metadata, created_at)
         SELECT $1, d, q, jsonb_build_object('source', 'operator'),
                clock_timestamp() + make_interval(secs => n / 1000000.0)
         FROM unnest($2::int[], $3::text[]) WITH ORDINALITY AS i(q, d, n)",
    )
    .bind(id)
    .bind(&quantities)
    .bind(&descriptions)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO \"JobEvent\" (job_id, event_type, actor, metadata, created_at)
         VALUES ($1, 'items_changed', $2, jsonb_build_object('items', $3::int), clock_timestamp())",
    )
    .bind(id)
    .bind(actor)
    .bind(i32::try_from(items.len()).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE \"Job\" SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Ok(()))
}
