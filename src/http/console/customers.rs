//! Customers: search by phone (any format), name, email or address; a customer's page with
//! identities, addresses, memory notes, conversations, leads, quotes and jobs; notes added,
//! edited and deleted; merge; erase.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{self, Checked, ConsoleError, Me, Nav, PagePath, local, money, window};
use crate::domain::identity::Identity;
use crate::domain::memory::MAX_NOTE;
use crate::http::AppState;
use crate::store::console::views::{self, CustomerRow};
use crate::store::customers::{self, MergeRefused};
use crate::store::{context, memory, settings};

#[derive(Template)]
#[template(path = "console/customers.html")]
struct SearchPage {
    nav: Option<Nav>,
    q: String,
    searched: bool,
    error: Option<String>,
    results: Vec<CustomerRow>,
    /// Shown when nothing is searched: who may not be messaged.
    opted_out: Vec<CustomerRow>,
}

/// `GET /admin/customers?q=…`.
pub async fn search(
    State(state): State<AppState>,
    me: Me,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let q: String = params
        .get("q")
        .map(|q| q.trim().chars().take(200).collect())
        .unwrap_or_default();
    let mut page = SearchPage {
        nav: me.nav("customers"),
        searched: !q.is_empty(),
        q,
        error: None,
        results: Vec::new(),
        opted_out: Vec::new(),
    };
    if page.q.chars().count() == 1 {
        page.error = Some("Type at least two characters.".into());
        return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    if page.searched {
        let region = state.agent.options.region;
        let identities: Vec<Identity> =
            [Identity::phone(&page.q, region), Identity::email(&page.q)]
                .into_iter()
                .flatten()
                .collect();
        let mut conn = state.pool.acquire().await?;
        page.results = views::search_customers(&mut conn, &identities, &page.q).await?;
    } else {
        let mut conn = state.pool.acquire().await?;
        page.opted_out = views::opted_out_customers(&mut conn).await?;
    }
    page::render(&page)
}

/// A note as the page shows it.
struct NoteView {
    id: Uuid,
    content: String,
    key: String,
    expires: Option<String>,
    /// For the edit form's `datetime-local` input, in the company's time zone.
    expires_input: String,
}

/// A message as the page shows it.
struct MessageView {
    role: String,
    channel: String,
    content: String,
    at: String,
}

struct ConversationView {
    id: Uuid,
    channel: String,
    started: String,
    last: String,
    messages: i64,
}

struct LeadView {
    stage: String,
    channel: String,
    address: String,
    created: String,
}

struct QuoteView {
    total: String,
    status: String,
    needs_approval: bool,
    explanation: String,
    created: String,
}

struct JobView {
    id: Uuid,
    progress: &'static str,
    window: String,
    items: String,
}

/// What went wrong with a form on the customer page, shown next to its field.
#[derive(Default)]
struct Problems {
    note: Option<String>,
    note_content: String,
    note_expires: String,
    edit: Option<(Uuid, String)>,
    merge: Option<String>,
    erase: Option<String>,
}

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    nav: Option<Nav>,
    csrf: String,
    id: Uuid,
    name: String,
    phone: String,
    email: String,
    since: String,
    /// Why they may not be messaged, when they opted out.
    opted_out: Option<String>,
    time_zone: String,
    identities: Vec<context::IdentityCard>,
    addresses: Vec<context::Address>,
    notes: Vec<NoteView>,
    messages: Vec<MessageView>,
    dropped: i64,
    conversations: Vec<ConversationView>,
    leads: Vec<LeadView>,
    quotes: Vec<QuoteView>,
    jobs: Vec<JobView>,
    problems: Problems,
}

impl CustomerPage {
    fn edit_error(&self, note: &Uuid) -> Option<&str> {
        self.problems
            .edit
            .as_ref()
            .filter(|(id, _)| id == note)
            .map(|(_, m)| m.as_str())
    }
}

async fn customer_page(
    state: &AppState,
    me: &Me,
    id: Uuid,
    problems: Problems,
) -> Result<CustomerPage, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let Some(ctx) = context::load(&mut conn, id, state.agent.options.budget).await? else {
        return Err(ConsoleError::NotFound);
    };
    let notes = memory::list(&mut conn, id).await?;
    let history = views::history(&mut conn, id).await?;
    let opted_out = views::opted_out(&mut conn, id).await?;
    let dash = || "—".to_owned();
    Ok(CustomerPage {
        nav: me.nav("customers"),
        csrf: me.csrf.clone(),
        id,
        name: ctx
            .customer
            .name
            .clone()
            .unwrap_or_else(|| "(no name yet)".into()),
        phone: ctx.customer.phone.clone().unwrap_or_else(dash),
        email: ctx.customer.email.clone().unwrap_or_else(dash),
        since: local(ctx.customer.created_at, tz),
        opted_out,
        time_zone: tz.name().to_owned(),
        identities: ctx.identities,
        addresses: ctx.addresses,
        notes: notes
            .into_iter()
            .map(|n| NoteView {
                id: n.id,
                content: n.content,
                key: n.key.unwrap_or_default(),
                expires: n.expires_at.map(|at| local(at, tz)),
                expires_input: n
                    .expires_at
                    .map(|at| at.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        messages: ctx
            .messages
            .into_iter()
            .map(|m| MessageView {
                role: m.role,
                channel: m.channel,
                content: m.content,
                at: local(m.created_at, tz),
            })
            .collect(),
        dropped: ctx.dropped.messages,
        conversations: history
            .conversations
            .into_iter()
            .map(|c| ConversationView {
                id: c.id,
                channel: c.channel.to_string(),
                started: local(c.started_at, tz),
                last: c
                    .last_message_at
                    .map(|at| local(at, tz))
                    .unwrap_or_else(dash),
                messages: c.messages,
            })
            .collect(),
        leads: history
            .leads
            .into_iter()
            .map(|l| LeadView {
                stage: l.stage.label(),
                channel: l.channel.to_string(),
                address: l.address.unwrap_or_else(dash),
                created: local(l.created_at, tz),
            })
            .collect(),
        quotes: history
            .quotes
            .into_iter()
            .map(|q| QuoteView {
                total: money(q.total_cents),
                status: q.status.label(),
                needs_approval: q.needs_approval,
                explanation: q.explanation.unwrap_or_default(),
                created: local(q.created_at, tz),
            })
            .collect(),
        jobs: history
            .jobs
            .into_iter()
            .map(|j| JobView {
                id: j.id,
                progress: j.progress().label(),
                window: window(j.window_start, j.window_end, tz),
                items: j.items.clone().unwrap_or_default(),
            })
            .collect(),
        problems,
    })
}

/// `GET /admin/customers/{id}`.
pub async fn show(
    State(state): State<AppState>,
    me: Me,
    PagePath(id): PagePath<Uuid>,
) -> Result<Response, ConsoleError> {
    let page = customer_page(&state, &me, id, Problems::default()).await?;
    page::render(&page)
}

async fn with_problems(
    state: &AppState,
    me: &Me,
    id: Uuid,
    problems: Problems,
) -> Result<Response, ConsoleError> {
    let page = customer_page(state, me, id, problems).await?;
    page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

fn back_to(id: Uuid) -> Response {
    Redirect::to(&format!("/admin/customers/{id}")).into_response()
}

/// A note's text, checked.
fn note_content(content: &str) -> Result<&str, String> {
    let content = content.trim();
    if content.is_empty() {
        return Err("Write the note.".into());
    }
    if content.chars().count() > MAX_NOTE {
        return Err(format!("A note is at most {MAX_NOTE} characters."));
    }
    Ok(content)
}

/// An expiry typed in the company's time zone (`2026-12-01T17:00`), checked to be later
/// than now; empty means none.
fn note_expiry(input: &str, tz: Tz) -> Result<Option<DateTime<Utc>>, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    let naive = NaiveDateTime::parse_from_str(input, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(input, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| "Give the expiry as a date and time.".to_owned())?;
    let at = tz
        .from_local_datetime(&naive)
        .earliest()
        .ok_or_else(|| "That time does not exist in the company's time zone.".to_owned())?
        .with_timezone(&Utc);
    if at <= Utc::now() {
        return Err("The expiry must be in the future.".into());
    }
    Ok(Some(at))
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    content: String,
    #[serde(default)]
    expires_at: String,
}

/// `POST /admin/customers/{id}/notes`.
pub async fn add_note(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<NoteForm>,
) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let checked = note_content(&form.content)
        .and_then(|content| note_expiry(&form.expires_at, tz).map(|at| (content, at)));
    match checked {
        Ok((content, expires_at)) => {
            match memory::add(&mut conn, id, content, expires_at, &me.actor()).await? {
                Some(_) => Ok(back_to(id)),
                None => Err(ConsoleError::NotFound),
            }
        }
        Err(message) => {
            drop(conn);
            let problems = Problems {
                note: Some(message),
                note_content: form.content,
                note_expires: form.expires_at,
                ..Problems::default()
            };
            with_problems(&state, &me, id, problems).await
        }
    }
}

/// `POST /admin/notes/{id}`: new text and expiry (an empty expiry removes it).
pub async fn edit_note(
    State(state): State<AppState>,
    PagePath(note): PagePath<Uuid>,
    Checked { me, form }: Checked<NoteForm>,
) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let Some(customer) = memory::owner_of_note(&mut conn, note).await? else {
        return Err(ConsoleError::NotFound);
    };
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let checked = note_content(&form.content)
        .and_then(|content| note_expiry(&form.expires_at, tz).map(|at| (content, at)));
    match checked {
        Ok((content, expires_at)) => {
            let change = memory::Change {
                content: Some(content),
                expires_at: Some(expires_at),
            };
            match memory::update(&mut conn, note, change).await? {
                Some(_) => Ok(back_to(customer)),
                None => Err(ConsoleError::NotFound),
            }
        }
        Err(message) => {
            drop(conn);
            let problems = Problems {
                edit: Some((note, message)),
                ..Problems::default()
            };
            with_problems(&state, &me, customer, problems).await
        }
    }
}

/// `POST /admin/notes/{id}/delete`.
pub async fn delete_note(
    State(state): State<AppState>,
    PagePath(note): PagePath<Uuid>,
    Checked { me: _, form: _ }: Checked<super::auth::Empty>,
) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let Some(customer) = memory::owner_of_note(&mut conn, note).await? else {
        return Err(ConsoleError::NotFound);
    };
    memory::delete(&mut conn, note).await?;
    Ok(back_to(customer))
}

#[derive(Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    other: String,
    #[serde(default)]
    keep: String,
}

/// `POST /admin/customers/{id}/merge`: `other` (an id) and `keep` (`this` or `other`).
pub async fn merge(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<MergeForm>,
) -> Result<Response, ConsoleError> {
    let other = form
        .other
        .trim()
        .trim_start_matches("/admin/customers/")
        .parse::<Uuid>();
    let problem = |message: &str| Problems {
        merge: Some(message.to_owned()),
        ..Problems::default()
    };
    let Ok(other) = other else {
        return with_problems(
            &state,
            &me,
            id,
            problem("Paste the other customer's id (from their page's address)."),
        )
        .await;
    };
    let (survivor, merged) = match form.keep.as_str() {
        "this" => (id, other),
        "other" => (other, id),
        _ => {
            return with_problems(&state, &me, id, problem("Choose which customer to keep.")).await;
        }
    };
    let mut tx = state.pool.begin().await?;
    match customers::merge(&mut tx, survivor, merged, &me.actor()).await? {
        Ok(()) => {
            tx.commit().await?;
            Ok(back_to(survivor))
        }
        Err(MergeRefused::Same) => {
            tx.rollback().await?;
            with_problems(&state, &me, id, problem("That is this customer.")).await
        }
        Err(MergeRefused::Missing(missing)) if missing == id => Err(ConsoleError::NotFound),
        Err(MergeRefused::Missing(_)) => {
            tx.rollback().await?;
            with_problems(
                &state,
                &me,
                id,
                problem("There is no customer with that id."),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /admin/customers/{id}/erase`: only with `confirm` = `ERASE`.
pub async fn erase(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<EraseForm>,
) -> Result<Response, ConsoleError> {
    if form.confirm.trim() != "ERASE" {
        let problems = Problems {
            erase: Some("Type ERASE to confirm.".into()),
            ..Problems::default()
        };
        return with_problems(&state, &me, id, problems).await;
    }
    let mut tx = state.pool.begin().await?;
    match customers::erase(&mut tx, id, &me.actor()).await? {
        Some(_) => {
            tx.commit().await?;
            Ok(Redirect::to("/admin/customers").into_response())
        }
        None => Err(ConsoleError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_in_the_company_time_zone_and_must_be_later() {
        let tz: Tz = "America/New_York".parse().expect("tz");
        assert_eq!(note_expiry("", tz), Ok(None));
        assert!(note_expiry("2001-01-01T10:00", tz).is_err());
        assert!(note_expiry("tomorrow", tz).is_err());
        let at = note_expiry("2999-01-01T10:00", tz)
            .expect("future")
            .expect("some");
        assert_eq!(at.to_rfc3339(), "2999-01-01T15:00:00+00:00");
        assert!(note_content("   ").is_err());
        assert!(note_content(&"x".repeat(MAX_NOTE + 1)).is_err());
    }
}
