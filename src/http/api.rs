//! The JSON API under `/api/v1`, for operators with an API token, and the owner's approval link.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath};
use crate::agent;
use crate::domain::pricing::Pricebook;
use crate::domain::token::hash_token;
use crate::store::audit;
use crate::store::quotes::{self, ApprovalKey, Decision, DecisionRefused};
use crate::store::{settings, tokens};

/// An operator authenticated by `Authorization: Bearer <API token>` of the `api` scope; its
/// name is the actor. A calendar token is refused (403): it reads the feed and nothing else.
pub struct Operator(pub String);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = super::bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("Authorization: Bearer <API token> is required".into())
        })?;
        match tokens::verify(&state.pool, token).await? {
            Some(tokens::Verified {
                name,
                scope: tokens::Scope::Api,
            }) => Ok(Operator(format!("operator:{name}"))),
            Some(_) => Err(ApiError::Forbidden(
                "this token reads the calendar feed only".into(),
            )),
            None => Err(ApiError::Unauthorized(
                "unknown or revoked API token".into(),
            )),
        }
    }
}

/// `GET /api/v1/approvals`: quotes waiting for the owner.
pub async fn approvals(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let pending = quotes::pending_approvals(&mut conn).await?;
    Ok(Json(json!({"approvals": pending})))
}

#[derive(Deserialize)]
pub struct DecisionBody {
    decision: Decision,
}

/// `POST /api/v1/approvals/{id}` with `{"decision": "approve" | "deny"}`.
pub async fn decide_by_id(
    State(state): State<AppState>,
    Operator(actor): Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, ApprovalKey::Id(id), body.decision, &actor).await
}

/// `POST /api/approvals/{token}` with `{"decision": …}`: the owner's link; the token is the
/// credential, works once, and expires.
pub async fn decide_by_token(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let hash = hash_token(&token);
    decide(
        &state,
        ApprovalKey::TokenHash(&hash),
        body.decision,
        "owner",
    )
    .await
}

async fn decide(
    state: &AppState,
    key: ApprovalKey<'_>,
    decision: Decision,
    actor: &str,
) -> Result<Json<Value>, ApiError> {
    match agent::decide(&state.pool, key, decision, actor).await? {
        Ok(()) => Ok(Json(json!({"status": match decision {
            Decision::Approve => "approved",
            Decision::Deny => "denied",
        }}))),
        Err(DecisionRefused::Unknown) => Err(ApiError::NotFound),
        Err(DecisionRefused::AlreadyDecided) => Err(ApiError::Conflict(
            "this approval was already decided".into(),
        )),
        Err(DecisionRefused::Expired) => Err(ApiError::Conflict(
            "this approval link has expired; decide from the console or the API".into(),
        )),
        Err(DecisionRefused::Superseded) => Err(ApiError::Conflict(
            "a newer estimate replaced this quote; decide that one".into(),
        )),
    }
}

#[derive(Deserialize)]
pub struct PauseBody {
    paused: bool,
}

/// `PUT /api/v1/settings/paused` with `{"paused": true}`: stops (or resumes) every automated reply.
pub async fn set_paused(
    State(state): State<AppState>,
    Operator(actor): Operator,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.pool.begin().await?;
    settings::set_paused(&mut tx, body.paused).await?;
    audit::audit(
        &mut tx,
        None,
        &actor,
        if body.paused { "paused" } else { "resumed" },
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({"paused": body.paused})))
}

/// `GET /api/v1/settings`: the pricebook, business hours, reminder hours and pause switch.
pub async fn get_settings(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let settings = settings::load(&mut conn).await?;
    Ok(Json(json!({
        "pricebook": settings.pricebook,
        "hours": settings.hours,
        "reminder_hours": settings.reminder_hours,
        "paused": settings.paused,
    })))
}

/// `PUT /api/v1/settings/pricebook`: replaces the pricebook after validating it; every problem
/// is named with its field.
pub async fn put_pricebook(
    State(state): State<AppState>,
    Operator(actor): Operator,
    ApiJson(pricebook): ApiJson<Pricebook>,
) -> Result<Json<Value>, ApiError> {
    let problems = pricebook.validate();
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(|(field, problem)| format!("{field}: {problem}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ApiError::Invalid(message));
    }
    let mut tx = state.pool.begin().await?;
    settings::save_pricebook(&mut tx, &pricebook).await?;
    audit::audit(&mut tx, None, &actor, "pricebook_changed", json!({})).await?;
    tx.commit().await?;
    Ok(Json(json!({"pricebook": pricebook})))
}
