//! Settings: the pause switch; business hours, time zone and crews; the pricebook editor with
//! validation and a "what would this quote be" preview; whether each channel's credentials are
//! set (never their values). And the system page: migrations, the schema check, the outbox.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;

use super::page::{self, Checked, ConsoleError, Me, Nav, local};
use crate::db::migrate::{self, verify};
use crate::domain::items;
use crate::domain::pricing::{self, Pricebook};
use crate::domain::schedule::{Hours, MAX_CREWS};
use crate::http::AppState;
use crate::store::console::company;
use crate::store::{audit, settings};

/// The sample the preview prices when none is given.
const SAMPLE: &str = "a couch, 2 mattresses and 10 bags of trash";

/// What the hours form holds (as typed, to show back with its problems).
#[derive(Default, Deserialize)]
pub struct HoursForm {
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    open: String,
    #[serde(default)]
    close: String,
    #[serde(default)]
    crews: String,
}

#[derive(Default)]
struct HoursProblems {
    time_zone: Option<String>,
    open: Option<String>,
    close: Option<String>,
    crews: Option<String>,
}

struct Credential {
    name: &'static str,
    set: bool,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    nav: Option<Nav>,
    csrf: String,
    paused: bool,
    hours: HoursForm,
    hours_problems: HoursProblems,
    pricebook: String,
    pricebook_problems: Vec<String>,
    sample: String,
    preview: Option<String>,
    saved: bool,
    credentials: Vec<Credential>,
}

async fn settings_page(state: &AppState, me: &Me) -> Result<SettingsPage, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let s = settings::load(&mut conn).await?;
    let twilio = state.twilio.as_deref();
    let messenger = state.messenger.as_deref();
    Ok(SettingsPage {
        nav: me.nav("settings"),
        csrf: me.csrf.clone(),
        paused: s.paused,
        hours: HoursForm {
            time_zone: s.hours.time_zone.name().to_owned(),
            open: s.hours.open.format("%H:%M").to_string(),
            close: s.hours.close.format("%H:%M").to_string(),
            crews: s.hours.crews.to_string(),
        },
        hours_problems: HoursProblems::default(),
        pricebook: serde_json::to_string_pretty(&s.pricebook)
            .map_err(|e| ConsoleError::Internal(e.into()))?,
        pricebook_problems: Vec::new(),
        sample: SAMPLE.to_owned(),
        preview: None,
        saved: false,
        credentials: vec![
            Credential {
                name: "Twilio webhook (auth token and public URL)",
                set: twilio.is_some(),
            },
            Credential {
                name: "Twilio sending (account SID and number)",
                set: twilio.is_some_and(|t| t.account_sid.is_some() && t.from_number.is_some()),
            },
            Credential {
                name: "Messenger webhook (verify token and app secret)",
                set: messenger.is_some(),
            },
            Credential {
                name: "Messenger sending (page access token)",
                set: messenger.is_some_and(|m| m.page_access_token.is_some()),
            },
            Credential {
                name: "LLM endpoint",
                set: state.agent.llm.is_some(),
            },
        ],
    })
}

/// `GET /admin/settings`.
pub async fn show(State(state): State<AppState>, me: Me) -> Result<Response, ConsoleError> {
    page::render(&settings_page(&state, &me).await?)
}

#[derive(Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    paused: String,
}

/// `POST /admin/settings/pause` with `paused` = `true` or `false`.
pub async fn pause(
    State(state): State<AppState>,
    Checked { me, form }: Checked<PauseForm>,
) -> Result<Response, ConsoleError> {
    let paused = match form.paused.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(ConsoleError::BadRequest(
                "paused must be true or false".into(),
            ));
        }
    };
    let mut tx = state.pool.begin().await?;
    settings::set_paused(&mut tx, paused).await?;
    let action = if paused { "paused" } else { "resumed" };
    audit::audit(&mut tx, None, &me.actor(), action, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/settings").into_response())
}

/// The hours as typed, checked; problems name their field.
fn parse_hours(form: &HoursForm, current: &Hours) -> Result<Hours, HoursProblems> {
    let mut problems = HoursProblems::default();
    let time_zone = form.time_zone.trim().parse::<Tz>().ok();
    if time_zone.is_none() {
        problems.time_zone = Some("Give an IANA time zone, like America/New_York.".into());
    }
    let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
    let (open, close) = (time(&form.open), time(&form.close));
    if open.is_none() {
        problems.open = Some("Give the opening time as HH:MM.".into());
    }
    if close.is_none() {
        problems.close = Some("Give the closing time as HH:MM.".into());
    } else if open.is_some() && close <= open {
        problems.close = Some("Closing must be after opening.".into());
    }
    let crews = form
        .crews
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|c| (1..=MAX_CREWS).contains(c));
    if crews.is_none() {
        problems.crews = Some(format!("Give a number of crews from 1 to {MAX_CREWS}."));
    }
    match (time_zone, open, close, crews) {
        (Some(time_zone), Some(open), Some(close), Some(crews)) if close > open => Ok(Hours {
            time_zone,
            open,
            close,
            crews,
            ..current.clone()
        }),
        _ => Err(problems),
    }
}

/// `POST /admin/settings/hours`.
pub async fn hours(
    State(state): State<AppState>,
    Checked { me, form }: Checked<HoursForm>,
) -> Result<Response, ConsoleError> {
    let mut tx = state.pool.begin().await?;
    let current = settings::load(&mut tx).await?.hours;
    match parse_hours(&form, &current) {
        Ok(hours) => {
            settings::save_hours(&mut tx, &hours).await?;
            audit::audit(
                &mut tx,
                None,
                &me.actor(),
                "hours_changed",
                serde_json::json!({}),
            )
            .await?;
            tx.commit().await?;
            Ok(Redirect::to("/admin/settings").into_response())
        }
        Err(problems) => {
            tx.rollback().await?;
            let mut page = settings_page(&state, &me).await?;
            page.hours = form;
            page.hours_problems = problems;
            page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct PricebookForm {
    #[serde(default)]
    pricebook: String,
    #[serde(default)]
    sample: String,
    #[serde(default)]
    action: String,
}

/// The pricebook as typed, parsed and validated; every problem named with its field.
fn parse_pricebook(text: &str) -> Result<Pricebook, Vec<String>> {
    let book: Pricebook =
        serde_json::from_str(text).map_err(|e| vec![format!("The pricebook is not valid: {e}")])?;
    let problems = book.validate();
    if problems.is_empty() {
        Ok(book)
    } else {
        Err(problems
            .into_iter()
            .map(|(field, problem)| format!("{field}: {problem}"))
            .collect())
    }
}

/// `POST /admin/settings/pricebook` with `action` = `preview` (price the sample with the
/// pricebook as typed, saving nothing) or `save`.
pub async fn pricebook(
    State(state): State<AppState>,
    Checked { me, form }: Checked<PricebookForm>,
) -> Result<Response, ConsoleError> {
    let parsed = parse_pricebook(&form.pricebook);
    let mut page = settings_page(&state, &me).await?;
    page.pricebook = form.pricebook.clone();
    page.sample = form.sample.trim().chars().take(500).collect();
    let book = match parsed {
        Ok(book) => book,
        Err(problems) => {
            page.pricebook_problems = problems;
            return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    if !page.sample.is_empty() {
        let spec = items::recognise(&page.sample).job_spec();
        page.preview = Some(pricing::price(&book, &spec).explain());
    }
    match form.action.as_str() {
        "save" => {
            let mut tx = state.pool.begin().await?;
            settings::save_pricebook(&mut tx, &book).await?;
            audit::audit(
                &mut tx,
                None,
                &me.actor(),
                "pricebook_changed",
                serde_json::json!({}),
            )
            .await?;
            tx.commit().await?;
            page.saved = true;
            page::render(&page)
        }
        "preview" => page::render(&page),
        _ => Err(ConsoleError::BadRequest("choose preview or save".into())),
    }
}

struct MigrationView {
    version: i64,
    name: String,
    applied: String,
    problem: Option<String>,
}

struct BacklogView {
    status: String,
    count: i64,
    oldest: String,
}

struct GateView {
    name: &'static str,
    count: i64,
    required: bool,
    passed: bool,
}

#[derive(Template)]
#[template(path = "console/system.html")]
struct SystemPage {
    nav: Option<Nav>,
    migrations: Vec<MigrationView>,
    schema_version: i64,
    differences: Vec<String>,
    health: String,
    backlog: Vec<BacklogView>,
    unanswered: i64,
    gates: Vec<GateView>,
    backups: BackupsView,
}

/// The System page's backup card.
struct BackupsView {
    /// The embedded database's backups directory; `None` for a `DATABASE_URL` server.
    dir: Option<String>,
    /// The newest backup: when and how big.
    last: Option<(String, String)>,
    /// How many are kept there.
    count: usize,
}

/// The backups directory of the embedded database, and its newest backup.
async fn backups_view(
    conn: &mut sqlx::PgConnection,
    tz: chrono_tz::Tz,
) -> Result<BackupsView, ConsoleError> {
    use crate::db::backup;
    let Some(data_dir) = backup::embedded_data_dir(conn)
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?
    else {
        return Ok(BackupsView {
            dir: None,
            last: None,
            count: 0,
        });
    };
    let dir = data_dir.join("backups");
    let listed = backup::list(&dir);
    let last = listed.first().map(|b| {
        let at: chrono::DateTime<chrono::Utc> = b.modified.into();
        (local(at, tz), human_size(b.bytes))
    });
    Ok(BackupsView {
        dir: Some(dir.display().to_string()),
        last,
        count: listed.len(),
    })
}

/// `1536` → `1.5 KiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// `GET /admin/system`.
pub async fn system(State(state): State<AppState>, me: Me) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let applied = migrate::applied(&mut conn)
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let migrations = migrate::status(&state.migrations, &applied)
        .into_iter()
        .map(|row| MigrationView {
            version: row.version,
            name: row.name,
            applied: row
                .applied_at
                .map(|at| local(at, tz))
                .unwrap_or_else(|| "pending".into()),
            problem: row.problem,
        })
        .collect();
    let report = verify::verify(&mut conn, &state.migrations)
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let backlog = company::outbox_backlog(&mut conn)
        .await?
        .into_iter()
        .map(|b| BacklogView {
            status: b.status,
            count: b.count,
            oldest: b.oldest.map(|at| local(at, tz)).unwrap_or_default(),
        })
        .collect();
    let unanswered = company::unanswered(&mut conn).await?;
    let backups = backups_view(&mut conn, tz).await?;
    // `junkquote db check`'s gates, the same queries.
    let gates = crate::takeover::quality::check(&mut conn)
        .await?
        .into_iter()
        .map(|g| GateView {
            passed: g.passed(),
            name: g.name,
            count: g.count,
            required: g.required,
        })
        .collect();
    page::render(&SystemPage {
        nav: me.nav("system"),
        migrations,
        schema_version: report.version,
        health: format!(
            "total_tables={} new_tables={}",
            report.total_tables, report.new_tables
        ),
        differences: report.differences,
        backlog,
        unanswered,
        gates,
        backups,
    })
}

/// `POST /admin/settings/preview` (the same fields as the pricebook form): the preview as JSON,
/// for the settings page's script to show while the operator types.
pub async fn preview(Checked { me: _, form }: Checked<PricebookForm>) -> Response {
    match parse_pricebook(&form.pricebook) {
        Ok(book) => {
            let sample = form.sample.trim();
            let preview = (!sample.is_empty()).then(|| {
                let spec = items::recognise(sample).job_spec();
                pricing::price(&book, &spec).explain()
            });
            axum::Json(serde_json::json!({"preview": preview, "problems": []})).into_response()
        }
        Err(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({"preview": null, "problems": problems})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_checked_field_by_field() {
        let current = Hours::default();
        let form = |tz: &str, open: &str, close: &str, crews: &str| HoursForm {
            time_zone: tz.into(),
            open: open.into(),
            close: close.into(),
            crews: crews.into(),
        };
        let ok = parse_hours(&form("America/Chicago", "07:30", "17:00", "3"), &current)
            .unwrap_or_else(|_| panic!("valid hours"));
        assert_eq!((ok.crews, ok.time_zone.name()), (3, "America/Chicago"));
        let Err(bad) = parse_hours(&form("Mars/Base", "7am", "06:00", "0"), &current) else {
            panic!("invalid hours accepted");
        };
        assert!(bad.time_zone.is_some() && bad.open.is_some() && bad.crews.is_some());
        let Err(bad) = parse_hours(&form("UTC", "18:00", "08:00", "2"), &current) else {
            panic!("closing before opening accepted");
        };
        assert_eq!(bad.close.as_deref(), Some("Closing must be after opening."));
    }

    #[test]
    fn a_pricebook_is_parsed_then_validated() {
        let good = serde_json::to_string(&Pricebook::default()).expect("json");
        assert!(parse_pricebook(&good).is_ok());
        assert!(parse_pricebook("{not json").is_err());
        let mut book: serde_json::Value = serde_json::from_str(&good).expect("value");
        book["tiers"] = serde_json::json!([]);
        let problems = parse_pricebook(&book.to_string()).expect_err("no tiers");
        assert!(
            problems.iter().any(|p| p.starts_with("tiers")),
            "{problems:?}"
        );
    }
}
