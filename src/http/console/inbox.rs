//! The inbox: conversations by last message; a conversation's thread (new messages appear
//! without a reload: `static/console.js` polls the JSON of the messages after the last shown);
//! the operator's reply as the company, through the outbox; take over from the assistant and
//! hand back.

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::page::{self, Checked, ConsoleError, Me, Nav, PagePath, local};
use crate::http::AppState;
use crate::store::console::conversations::{self, ThreadMessage};
use crate::store::conversations as conversation;
use crate::store::rules as messaging_rules;
use crate::store::settings;

/// Conversations per inbox page.
const PAGE: i64 = 30;
/// The longest reply, in characters (what one SMS carries at most).
pub const MAX_REPLY: usize = 1600;

struct Row {
    id: Uuid,
    who: String,
    channel: String,
    at: String,
    last: String,
    taken_over: bool,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct InboxPage {
    nav: Option<Nav>,
    rows: Vec<Row>,
    older: Option<String>,
}

fn parse_time(value: Option<&String>) -> Option<DateTime<Utc>> {
    value
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `GET /admin/inbox[?before=RFC 3339 time]`.
pub async fn list(
    State(state): State<AppState>,
    me: Me,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let found = conversations::list(&mut conn, parse_time(params.get("before")), PAGE).await?;
    let older = (found.len() == usize::try_from(PAGE).unwrap_or(usize::MAX))
        .then(|| found.last().map(|c| c.last_at.to_rfc3339()))
        .flatten();
    let rows = found
        .into_iter()
        .map(|c| Row {
            id: c.id,
            who: c
                .customer_name
                .or(c.phone)
                .unwrap_or_else(|| "(unknown visitor)".into()),
            channel: c.channel.to_string(),
            at: local(c.last_at, tz),
            last: c
                .last_message
                .map(|m| {
                    let role = if c.last_role.as_deref() == Some("user") {
                        ""
                    } else {
                        "↩ "
                    };
                    format!("{role}{}", m.chars().take(140).collect::<String>())
                })
                .unwrap_or_default(),
            taken_over: c.taken_over_by.is_some(),
        })
        .collect();
    page::render(&InboxPage {
        nav: me.nav("inbox"),
        rows,
        older,
    })
}

struct MessageView {
    role: String,
    who: String,
    content: String,
    at: String,
}

fn view(m: &ThreadMessage, tz: Tz) -> MessageView {
    let who = match (m.role.as_str(), &m.operator) {
        ("user", _) => "customer".to_owned(),
        ("assistant", Some(operator)) => operator.trim_start_matches("operator:").to_owned(),
        ("assistant", None) => "assistant".to_owned(),
        (other, _) => other.to_owned(),
    };
    MessageView {
        role: m.role.clone(),
        who,
        content: m.content.clone(),
        at: local(m.created_at, tz),
    }
}

#[derive(Template)]
#[template(path = "console/conversation.html")]
struct ConversationPage {
    nav: Option<Nav>,
    csrf: String,
    id: Uuid,
    customer_id: Uuid,
    who: String,
    channel: String,
    taken_over_by: Option<String>,
    messages: Vec<MessageView>,
    after: String,
    reply: String,
    reply_error: Option<String>,
}

async fn conversation_page(
    state: &AppState,
    me: &Me,
    id: Uuid,
    reply: String,
    reply_error: Option<String>,
) -> Result<ConversationPage, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let Some(c) = conversations::get(&mut conn, id).await? else {
        return Err(ConsoleError::NotFound);
    };
    let messages = conversations::messages(&mut conn, id, None).await?;
    let after = messages
        .last()
        .map(|m| m.created_at)
        .unwrap_or(c.last_at)
        .to_rfc3339();
    Ok(ConversationPage {
        nav: me.nav("inbox"),
        csrf: me.csrf.clone(),
        id,
        customer_id: c.customer_id,
        who: c
            .customer_name
            .or(c.phone)
            .unwrap_or_else(|| "(unknown visitor)".into()),
        channel: c.channel.to_string(),
        taken_over_by: c
            .taken_over_by
            .map(|a| a.trim_start_matches("operator:").to_owned()),
        messages: messages.iter().map(|m| view(m, tz)).collect(),
        after,
        reply,
        reply_error,
    })
}

/// `GET /admin/conversations/{id}`.
pub async fn show(
    State(state): State<AppState>,
    me: Me,
    PagePath(id): PagePath<Uuid>,
) -> Result<Response, ConsoleError> {
    page::render(&conversation_page(&state, &me, id, String::new(), None).await?)
}

/// `GET /admin/conversations/{id}/messages?after=…`: the messages after a time, as JSON (what
/// the thread polls for).
pub async fn messages(
    State(state): State<AppState>,
    _: Me,
    PagePath(id): PagePath<Uuid>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    if conversations::get(&mut conn, id).await?.is_none() {
        return Err(ConsoleError::NotFound);
    }
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let found = conversations::messages(&mut conn, id, parse_time(params.get("after"))).await?;
    let messages: Vec<Value> = found
        .iter()
        .map(|m| {
            let v = view(m, tz);
            json!({"role": v.role, "who": v.who, "content": v.content, "at": v.at,
                   "created_at": m.created_at.to_rfc3339()})
        })
        .collect();
    Ok(Json(json!({"messages": messages})).into_response())
}

#[derive(Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    text: String,
}

/// `POST /admin/conversations/{id}/reply`: the operator writes as the company.
pub async fn reply(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<ReplyForm>,
) -> Result<Response, ConsoleError> {
    let text = form.text.trim();
    let problem = if text.is_empty() {
        Some("Write a reply.".to_owned())
    } else if text.chars().count() > MAX_REPLY {
        Some(format!("A reply is at most {MAX_REPLY} characters."))
    } else {
        None
    };
    if let Some(problem) = problem {
        let page = conversation_page(&state, &me, id, form.text.clone(), Some(problem)).await?;
        return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let mut tx = state.pool.begin().await?;
    if conversations::get(&mut tx, id).await?.is_none() {
        return Err(ConsoleError::NotFound);
    }
    // The messaging rules hold for people too: an opted-out customer gets nothing.
    if let Some(reason) = messaging_rules::conversation_opted_out(&mut tx, id).await? {
        tx.rollback().await?;
        let problem = format!(
            "This customer opted out of messages ({reason}); nothing can be sent to them until they text START."
        );
        let page = conversation_page(&state, &me, id, form.text.clone(), Some(problem)).await?;
        return page::render_with(StatusCode::CONFLICT, &page);
    }
    if !conversation::reply(&mut tx, id, text, &me.actor()).await? {
        tx.rollback().await?;
        let problem = "This conversation has no lead to reply through.".to_owned();
        let page = conversation_page(&state, &me, id, form.text.clone(), Some(problem)).await?;
        return page::render_with(StatusCode::CONFLICT, &page);
    }
    tx.commit().await?;
    Ok(Redirect::to(&format!("/admin/conversations/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct TakeOverForm {
    #[serde(default)]
    action: String,
}

/// `POST /admin/conversations/{id}/takeover` with `action` = `take` or `hand_back`.
pub async fn take_over(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<TakeOverForm>,
) -> Result<Response, ConsoleError> {
    let actor = me.actor();
    let by = match form.action.as_str() {
        "take" => Some(actor.as_str()),
        "hand_back" => None,
        _ => {
            let problem = "Choose take over or hand back.".to_owned();
            let page = conversation_page(&state, &me, id, String::new(), Some(problem)).await?;
            return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let mut conn = state.pool.acquire().await?;
    if !conversation::take_over(&mut conn, id, by).await? {
        return Err(ConsoleError::NotFound);
    }
    Ok(Redirect::to(&format!("/admin/conversations/{id}")).into_response())
}
