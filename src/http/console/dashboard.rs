//! The dashboard: the day's figures and a chart of quotes and bookings per day, drawn as SVG on
//! the server (no script).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::NaiveDate;

use super::page::{self, ConsoleError, Me, Nav, money};
use crate::http::AppState;
use crate::store::console::views;
use crate::store::settings;

/// Days the chart covers.
const CHART_DAYS: i32 = 14;

/// One bar of the chart.
struct Bar {
    x: i64,
    quotes_y: i64,
    quotes_h: i64,
    jobs_y: i64,
    jobs_h: i64,
    label: String,
    title: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    nav: Option<Nav>,
    leads_today: i64,
    leads_active: i64,
    conversion: String,
    average_quote: String,
    approvals_waiting: i64,
    pickups_next_7d: i64,
    revenue_30d: String,
    bars: Vec<Bar>,
    max: i64,
    paused: bool,
}

/// The chart's bars: two per day, scaled to the busiest day, 120 px tall.
fn bars(daily: &[(NaiveDate, i64, i64)]) -> (Vec<Bar>, i64) {
    const HEIGHT: i64 = 120;
    let max = daily
        .iter()
        .map(|(_, q, j)| (*q).max(*j))
        .max()
        .unwrap_or(0)
        .max(1);
    let bars = daily
        .iter()
        .enumerate()
        .map(|(i, (day, quotes, jobs))| {
            let h = |n: i64| n * HEIGHT / max;
            let x = i64::try_from(i).unwrap_or(0) * 40 + 30;
            Bar {
                x,
                quotes_y: 10 + HEIGHT - h(*quotes),
                quotes_h: h(*quotes),
                jobs_y: 10 + HEIGHT - h(*jobs),
                jobs_h: h(*jobs),
                label: day.format("%-d").to_string(),
                title: format!("{}: {quotes} quotes, {jobs} bookings", day.format("%b %-d")),
            }
        })
        .collect();
    (bars, max)
}

/// `GET /admin/dashboard`.
pub async fn show(State(state): State<AppState>, me: Me) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let settings = settings::load(&mut conn).await?;
    let tz = settings.hours.time_zone.name();
    let f = views::figures(&mut conn, tz).await?;
    let daily = views::daily(&mut conn, CHART_DAYS, tz).await?;
    let (bars, max) = bars(&daily);
    let conversion = if f.leads_30d == 0 {
        "—".to_owned()
    } else {
        format!("{}%", f.booked_30d * 100 / f.leads_30d)
    };
    let page = DashboardPage {
        nav: me.nav("dashboard"),
        leads_today: f.leads_today,
        leads_active: f.leads_active,
        conversion,
        average_quote: f
            .average_quote_cents
            .map(money)
            .unwrap_or_else(|| "—".into()),
        approvals_waiting: f.approvals_waiting,
        pickups_next_7d: f.pickups_next_7d,
        revenue_30d: money(f.revenue_30d_cents),
        bars,
        max,
        paused: settings.paused,
    };
    page::render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_day() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).expect("day");
        let (bars, max) = bars(&[(day(1), 4, 2), (day(2), 0, 0)]);
        assert_eq!(max, 4);
        assert_eq!((bars[0].quotes_h, bars[0].jobs_h), (120, 60));
        assert_eq!(bars[1].quotes_h, 0);
        assert_eq!(bars[0].quotes_y + bars[0].quotes_h, 130);
    }
}
