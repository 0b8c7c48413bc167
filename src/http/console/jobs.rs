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
use crate::store::console::views;
use crate::store::jobs::{self, ItemsRefused, StepRefused};
use crate::store::settings;

struct JobView {
    id: Uuid,
    customer_id: Option<Uuid>,
    customer: String,
    time: String,
    address: String,
    items: String,
    item_lines: String,
    closed: bool,
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
    /// The job whose items form had a problem, with it.
    items_problem: Option<(Uuid, String)>,
}

impl JobsPage {
    fn items_error(&self, job: &Uuid) -> Option<&str> {
        self.items_problem
            .as_ref()
            .filter(|(id, _)| id == job)
            .map(|(_, m)| m.as_str())
    }
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
            item_lines: job.item_lines.clone().unwrap_or_default(),
            closed: matches!(progress, Progress::Completed | Progress::Cancelled),
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
        items_problem: None,
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
    match jobs::step(&mut tx, id, to, &me.actor()).await? {
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

/// The most items a job lists.
const MAX_ITEMS: usize = 50;

/// Items typed one a line, "2 × couch", "2 x couch", "2 couch" or "couch" (one); each checked.
fn parse_items(text: &str) -> Result<Vec<(i32, String)>, String> {
    let mut items = Vec::new();
    for (n, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let (quantity, rest) = match line.split_once(|c: char| !c.is_ascii_digit()) {
            Some((digits, rest)) if !digits.is_empty() => (digits.parse::<i32>().ok(), rest),
            _ if line.chars().all(|c| c.is_ascii_digit()) => (None, ""),
            _ => (Some(1), line),
        };
        let description = rest
            .trim_start()
            .trim_start_matches(['×', 'x', 'X', '*'])
            .trim();
        let line_no = n + 1;
        let Some(quantity) = quantity.filter(|q| (1..=999).contains(q)) else {
            return Err(format!(
                "Line {line_no}: the quantity must be from 1 to 999."
            ));
        };
        if description.is_empty() {
            return Err(format!("Line {line_no}: say what the item is."));
        }
        if description.chars().count() > 200 {
            return Err(format!("Line {line_no}: at most 200 characters."));
        }
        items.push((quantity, description.to_owned()));
    }
    if items.is_empty() {
        return Err("List at least one item.".into());
    }
    if items.len() > MAX_ITEMS {
        return Err(format!("At most {MAX_ITEMS} items."));
    }
    Ok(items)
}

#[derive(Deserialize)]
pub struct ItemsForm {
    #[serde(default)]
    items: String,
}

/// `POST /admin/jobs/{id}/items`: the job's items, one a line.
pub async fn items(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<ItemsForm>,
) -> Result<Response, ConsoleError> {
    let parsed = match parse_items(&form.items) {
        Ok(items) => items,
        Err(problem) => {
            let mut conn = state.pool.acquire().await?;
            if views::job(&mut conn, id).await?.is_none() {
                return Err(ConsoleError::NotFound);
            }
            drop(conn);
            let mut page = page_for(&state, &me, None, None).await?;
            page.items_problem = Some((id, problem));
            return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let mut tx = state.pool.begin().await?;
    match jobs::replace_items(&mut tx, id, &parsed, &me.actor()).await? {
        Ok(()) => {
            tx.commit().await?;
            Ok(Redirect::to(&format!("/admin/jobs#job-{id}")).into_response())
        }
        Err(ItemsRefused::Missing) => Err(ConsoleError::NotFound),
        Err(ItemsRefused::Closed) => {
            tx.rollback().await?;
            let notice = "A completed or cancelled job keeps its items.".to_owned();
            let page = page_for(&state, &me, None, Some(notice)).await?;
            page::render_with(StatusCode::CONFLICT, &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_read_one_a_line() {
        let items =
            parse_items("2 × mattress\n1 x dresser\n\ncouch\n3 bags of trash").expect("items");
        assert_eq!(
            items,
            [
                (2, "mattress".to_owned()),
                (1, "dresser".to_owned()),
                (1, "couch".to_owned()),
                (3, "bags of trash".to_owned()),
            ]
        );
        assert!(parse_items("").is_err());
        assert!(parse_items("0 × couch").is_err());
        assert!(parse_items("5000 couches").is_err());
        assert!(parse_items("2 ×").is_err());
        assert!(parse_items("12").is_err());
    }
}
