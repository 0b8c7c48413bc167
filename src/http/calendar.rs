//! `GET /calendar.ics?token=…`: booked jobs as an iCal feed that calendar apps subscribe to
//! (they cannot send headers, so the token rides in the query string: make it a `calendar`
//! token, which can do nothing else; an `api` token works too, as before).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::domain::stages::JobStatus;
use crate::store::{jobs, tokens};

#[derive(Deserialize)]
pub struct Feed {
    token: Option<String>,
}

/// The feed of booked and recently completed jobs.
pub async fn feed(
    State(state): State<AppState>,
    Query(feed): Query<Feed>,
) -> Result<Response, ApiError> {
    let token = feed
        .token
        .ok_or_else(|| ApiError::Unauthorized("add ?token=<calendar token> to the feed's URL (junkquote admin create-token NAME --scope calendar)".into()))?;
    if tokens::verify(&state.pool, &token).await?.is_none() {
        return Err(ApiError::Unauthorized(
            "unknown or revoked API token".into(),
        ));
    }
    let mut conn = state.pool.acquire().await?;
    let jobs = jobs::calendar(&mut conn).await?;
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//JunkQuote//Pickups//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "X-WR-CALNAME:Junk pickups".to_owned(),
    ];
    for job in jobs {
        let mut summary = format!(
            "Junk pickup: {}",
            job.items.as_deref().unwrap_or("items to confirm")
        );
        if job.status == JobStatus::Completed {
            summary.push_str(" (done)");
        }
        let mut total = job
            .total_cents
            .map(|c| format!("Estimate {c}"))
            .unwrap_or_default();
        if let Some(notes) = &job.crew_notes {
            total.push_str(&format!("\nCrew notes: {notes}"));
        }
        lines.extend([
            "BEGIN:VEVENT".to_owned(),
            format!("UID:{}@junkquote", job.id),
            format!("DTSTAMP:{}", stamp(job.updated_at)),
            format!("DTSTART:{}", stamp(job.window_start)),
            format!("DTEND:{}", stamp(job.window_end)),
            format!("SUMMARY:{}", escape(&summary)),
            format!("LOCATION:{}", escape(job.address.as_deref().unwrap_or(""))),
            format!("DESCRIPTION:{}", escape(&total)),
            "END:VEVENT".to_owned(),
        ]);
    }
    lines.push("END:VCALENDAR".to_owned());
    let body: String = lines.iter().map(|l| fold(l)).collect();
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    )
        .into_response())
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// RFC 5545 TEXT: backslash, semicolon and comma escaped, a line break (CRLF, CR or LF) as
/// `\n`, and every other control character but tab dropped (TEXT may not hold them), so no
/// stored value can end a content line or start another.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A content line folded at 75 octets (continuations start with a space), ending in CRLF.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_long_lines_folded() {
        assert_eq!(
            escape("12 Oak St, Canton; GA\nback\\door"),
            "12 Oak St\\, Canton\\; GA\\nback\\\\door"
        );
        assert_eq!(
            escape("a\rEND:VEVENT\r\nb\u{7}\u{85}\tc"),
            "a\\nEND:VEVENT\\nb\tc"
        );
        let folded = fold(&format!("SUMMARY:{}", "é".repeat(60)));
        assert!(folded.split("\r\n").all(|l| l.len() <= 75), "{folded:?}");
        assert!(folded.contains("\r\n "));
    }
}
