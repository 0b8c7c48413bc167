//! Jobs: the week's schedule (seven days, day by day, in the company's time zone) and a list, with the
//! operator's steps booked → en route → arrived → completed, or cancelled.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::page::{self, Checked, ConsoleError, Me, Nav, PagePath, money};
use crate::domain::progress::Progress;
use crate::http::AppState;
use crate::store::console::views::{self, StepRefused};
use crate::store::settings;

struct JobView {
    id: Uuid,
    customer_id: Option<Uuid>,
    customer: String,
    time: String,
    address: String,
    items: String,
    total: String,
    progress: &'static str,
    next: Vec<Step>,
}

/// A button that moves a job on.
struct Step {
    value: &'static str,
    label: &'static str,
    danger: bool,
}

struct Day {
    label: String,
    jobs: Vec<JobView>,
}

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage {
    nav: Option<Nav>,
    csrf: String,
    week: String,
    previous: String,
    next: String,
    days: Vec<Day>,
    count: usize,
    notice: Option<String>,
}

async fn page_for(
    state: &AppState,
    me: &Me,
    week: Option<&str>,
    notice: Option<String>,
) -> Result<JobsPage, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let today = Utc::now().with_timezone(&tz).date_naive();
    // Seven days from today (what the crews have ahead); `?week=2026-11-23` starts elsewhere.
    let first = week
        .and_then(|w| NaiveDate::parse_from_str(w, "%Y-%m-%d").ok())
        .unwrap_or(today);
    let midnight = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|n| tz.from_local_datetime(&n).earliest())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (midnight(first), midnight(first + Duration::days(7))) else {
        return Err(ConsoleError::BadRequest("that week cannot be shown".into()));
    };
    let rows = views::jobs_between(&mut conn, from, to).await?;
    let count = rows.len();
    let mut days: Vec<Day> = (0..7)
        .map(|i| Day {
            label: (first + Duration::days(i)).format("%A %b %-d").to_string(),
            jobs: Vec::new(),
        })
        .collect();
    for job in rows {
        let local_day = job.window_start.with_timezone(&tz).date_naive();
        let index = usize::try_from((local_day - first).num_days())
            .unwrap_or(0)
            .min(6);
        let progress = job.progress();
        days[index].jobs.push(JobView {
            id: job.id,
            customer_id: job.customer_id,
            customer: job
                .customer_name
                .clone()
                .unwrap_or_else(|| "(no name yet)".into()),
            time: format!(
                "{}–{}",
                job.window_start.with_timezone(&tz).format("%-I:%M %p"),
                job.window_end.with_timezone(&tz).format("%-I:%M %p")
            ),
            address: job.address.clone().unwrap_or_default(),
            items: job.items.clone().unwrap_or_default(),
            total: job.total_cents.map(money).unwrap_or_default(),
            progress: progress.label(),
            next: progress
                .next()
                .iter()
                .map(|p| Step {
                    value: p.as_str(),
                    label: p.label(),
                    danger: *p == Progress::Cancelled,
                })
                .collect(),
        });
    }
    Ok(JobsPage {
        nav: me.nav("jobs"),
        csrf: me.csrf.clone(),
        week: format!("7 days from {}", first.format("%A %b %-d, %Y")),
        previous: (first - Duration::days(7)).format("%Y-%m-%d").to_string(),
        next: (first + Duration::days(7)).format("%Y-%m-%d").to_string(),
        days,
        count,
        notice,
    })
}

/// `GET /admin/jobs[?week=YYYY-MM-DD]`: seven days from today, or from that date.
pub async fn list(
    State(state): State<AppState>,
    me: Me,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let page = page_for(&state, &me, params.get("week").map(String::as_str), None).await?;
    page::render(&page)
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    to: String,
}

/// `POST /admin/jobs/{id}/step` with `to` = `en_route`, `arrived`, `completed` or `cancelled`.
pub async fn step(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<StepForm>,
) -> Result<Response, ConsoleError> {
    let Some(to) = Progress::parse(&form.to) else {
        let page = page_for(&state, &me, None, Some("Choose a step for the job.".into())).await?;
        return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let mut tx = state.pool.begin().await?;
    match views::step_job(&mut tx, id, to, &me.actor()).await? {
        Ok(()) => {
            tx.commit().await?;
            Ok(Redirect::to("/admin/jobs").into_response())
        }
        Err(StepRefused::Missing) => Err(ConsoleError::NotFound),
        Err(StepRefused::NotNext(at)) => {
            tx.rollback().await?;
            let notice = format!(
                "That job is {}; it cannot go to {} from there.",
                at.label().to_lowercase(),
                to.label().to_lowercase()
            );
            let page = page_for(&state, &me, None, Some(notice)).await?;
            page::render_with(StatusCode::CONFLICT, &page)
        }
    }
}
