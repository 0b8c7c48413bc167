//! Approvals: each quote that waits for the owner, with its line-by-line explanation and
//! photos; approve or deny (the customer is told, as from the owner's link).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::page::{self, Checked, ConsoleError, Me, Nav, PagePath, local, money};
use crate::agent;
use crate::http::AppState;
use crate::store::console::views;
use crate::store::quotes::{ApprovalKey, Decision, DecisionRefused};
use crate::store::settings;

struct ApprovalView {
    id: Uuid,
    customer_id: Option<Uuid>,
    customer: String,
    address: String,
    total: String,
    reasons: Vec<String>,
    explanation: String,
    photos: Vec<String>,
    asked: String,
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    nav: Option<Nav>,
    csrf: String,
    approvals: Vec<ApprovalView>,
    notice: Option<String>,
}

async fn page_for(
    state: &AppState,
    me: &Me,
    notice: Option<String>,
) -> Result<ApprovalsPage, ConsoleError> {
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let approvals = views::approvals(&mut conn)
        .await?
        .into_iter()
        .map(|a| ApprovalView {
            id: a.id,
            customer_id: a.customer_id,
            customer: a.customer_name.unwrap_or_else(|| "(no name yet)".into()),
            address: a.address.unwrap_or_else(|| "no address yet".into()),
            total: money(a.total_cents),
            reasons: a.reasons,
            explanation: a.explanation.unwrap_or_default(),
            // Only https links are shown as images (what the channels record).
            photos: a
                .photos
                .into_iter()
                .filter(|p| p.starts_with("https://"))
                .collect(),
            asked: local(a.created_at, tz),
        })
        .collect();
    Ok(ApprovalsPage {
        nav: me.nav("approvals"),
        csrf: me.csrf.clone(),
        approvals,
        notice,
    })
}

/// `GET /admin/approvals`.
pub async fn list(State(state): State<AppState>, me: Me) -> Result<Response, ConsoleError> {
    page::render(&page_for(&state, &me, None).await?)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
}

/// `POST /admin/approvals/{id}` with `decision` = `approve` or `deny`.
pub async fn decide(
    State(state): State<AppState>,
    PagePath(id): PagePath<Uuid>,
    Checked { me, form }: Checked<DecisionForm>,
) -> Result<Response, ConsoleError> {
    let decision = match form.decision.as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => {
            let page = page_for(&state, &me, Some("Choose approve or deny.".into())).await?;
            return page::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    match agent::decide(&state.pool, ApprovalKey::Id(id), decision, &me.actor()).await? {
        Ok(()) => Ok(Redirect::to("/admin/approvals").into_response()),
        Err(DecisionRefused::Unknown) => Err(ConsoleError::NotFound),
        Err(DecisionRefused::AlreadyDecided | DecisionRefused::Expired) => {
            let page =
                page_for(&state, &me, Some("That quote was already decided.".into())).await?;
            page::render_with(StatusCode::CONFLICT, &page)
        }
        Err(DecisionRefused::Superseded) => {
            let message = "A newer estimate replaced that quote; decide the newer one.";
            let page = page_for(&state, &me, Some(message.into())).await?;
            page::render_with(StatusCode::CONFLICT, &page)
        }
    }
}
