//! Customers under `/api/v1`: find one by any identity, read their context, keep their memory
//! notes, search what they wrote, merge two, erase one.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::AppState;
use super::api::Operator;
use super::error::{ApiError, ApiJson, ApiPath};
use crate::domain::identity::Identity;
use crate::domain::memory::MAX_NOTE;
use crate::store::customers::{self, MergeRefused};
use crate::store::{context, memory};

fn query(
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    params
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))
}

/// `GET /api/v1/customers?phone=…` (or `email=`, `psid=`): the customer holding that identity,
/// written in any format.
pub async fn find(
    State(state): State<AppState>,
    _: Operator,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let region = state.agent.options.region;
    let identity = match (params.get("phone"), params.get("email"), params.get("psid")) {
        (Some(phone), None, None) => Identity::phone(phone, region)
            .ok_or_else(|| ApiError::Invalid(format!("{phone:?} is not a valid phone number")))?,
        (None, Some(email), None) => Identity::email(email)
            .ok_or_else(|| ApiError::Invalid(format!("{email:?} is not an email address")))?,
        (None, None, Some(psid)) => Identity::psid(psid)
            .ok_or_else(|| ApiError::Invalid(format!("{psid:?} is not a Messenger id")))?,
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of phone, email or psid".into(),
            ));
        }
    };
    let mut conn = state.pool.acquire().await?;
    match customers::find(&mut conn, &identity).await? {
        Some(found) => Ok(Json(json!({"customer": found}))),
        None => Err(ApiError::NotFound),
    }
}

/// `GET /api/v1/customers/{id}/context`: what the assistant knows, as it reads it.
pub async fn context(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    match context::load(&mut conn, id, state.agent.options.budget).await? {
        Some(context) => Ok(Json(json!(context))),
        None => Err(ApiError::NotFound),
    }
}

/// `GET /api/v1/customers/{id}/notes`: unexpired notes.
pub async fn notes(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !customers::exists(&mut conn, id).await? {
        return Err(ApiError::NotFound);
    }
    let notes = memory::list(&mut conn, id).await?;
    Ok(Json(json!({"notes": notes})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    content: String,
    expires_at: Option<DateTime<Utc>>,
}

fn valid_content(content: &str) -> Result<&str, ApiError> {
    let content = content.trim();
    if content.is_empty() {
        return Err(ApiError::Invalid("content must not be empty".into()));
    }
    if content.chars().count() > MAX_NOTE {
        return Err(ApiError::Invalid(format!(
            "content is longer than {MAX_NOTE} characters"
        )));
    }
    Ok(content)
}

fn valid_expiry(expires_at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match expires_at {
        Some(at) if at <= Utc::now() => Err(ApiError::Invalid(format!(
            "expires_at {at} is in the past; a note must expire later than now"
        ))),
        other => Ok(other),
    }
}

/// `POST /api/v1/customers/{id}/notes` with `{"content", "expires_at"?}`.
pub async fn add_note(
    State(state): State<AppState>,
    Operator(actor): Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewNote>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let content = valid_content(&body.content)?;
    let expires_at = valid_expiry(body.expires_at)?;
    let mut conn = state.pool.acquire().await?;
    match memory::add(&mut conn, id, content, expires_at, &actor).await? {
        Some(note) => Ok((axum::http::StatusCode::CREATED, Json(json!({"note": note})))),
        None => Err(ApiError::NotFound),
    }
}

/// `PATCH /api/v1/notes/{id}` with `{"content"?, "expires_at"?}` (`null` removes the expiry).
pub async fn edit_note(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    if let Some(key) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "content" | "expires_at"))
    {
        return Err(ApiError::Invalid(format!(
            "unknown field {key:?}; a note has content and expires_at"
        )));
    }
    let content = match body.get("content") {
        None => None,
        Some(Value::String(s)) => Some(valid_content(s)?),
        Some(_) => return Err(ApiError::Invalid("content must be a string".into())),
    };
    let expires_at = match body.get("expires_at") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(value) => {
            let at: DateTime<Utc> = serde_json::from_value(value.clone()).map_err(|_| {
                ApiError::Invalid("expires_at must be an RFC 3339 time or null".into())
            })?;
            Some(valid_expiry(Some(at))?)
        }
    };
    let mut conn = state.pool.acquire().await?;
    let change = memory::Change {
        content,
        expires_at,
    };
    match memory::update(&mut conn, id, change).await? {
        Some(note) => Ok(Json(json!({"note": note}))),
        None => Err(ApiError::NotFound),
    }
}

/// `DELETE /api/v1/notes/{id}`.
pub async fn delete_note(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<axum::http::StatusCode, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if memory::delete(&mut conn, id).await? {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `GET /api/v1/customers/{id}/messages?q=…`: full-text search over what they and the
/// assistant wrote.
pub async fn search(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let q = params
        .get("q")
        .map(|q| q.trim())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::BadRequest("q (the words to search for) is required".into()))?;
    if q.chars().count() > 200 {
        return Err(ApiError::Invalid("q is longer than 200 characters".into()));
    }
    let mut conn = state.pool.acquire().await?;
    if !customers::exists(&mut conn, id).await? {
        return Err(ApiError::NotFound);
    }
    let hits = memory::search(&mut conn, id, q, 50).await?;
    Ok(Json(json!({"messages": hits})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The customer merged into the one in the path, then deleted.
    other: Uuid,
}

/// `POST /api/v1/customers/{id}/merge` with `{"other": id}`: the path's customer survives.
pub async fn merge(
    State(state): State<AppState>,
    Operator(actor): Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.pool.begin().await?;
    match customers::merge(&mut tx, id, body.other, &actor).await? {
        Ok(()) => {
            tx.commit().await?;
            Ok(Json(json!({"customer": id, "merged": body.other})))
        }
        Err(MergeRefused::Missing(_)) => Err(ApiError::NotFound),
        Err(refused @ MergeRefused::Same) => Err(ApiError::Invalid(refused.to_string())),
    }
}

/// `DELETE /api/v1/customers/{id}`: erases them and everything of theirs.
pub async fn erase(
    State(state): State<AppState>,
    Operator(actor): Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let mut tx = state.pool.begin().await?;
    match customers::erase(&mut tx, id, &actor).await? {
        Some(erased) => {
            tx.commit().await?;
            Ok(Json(json!({"erased": id, "removed": erased})))
        }
        None => Err(ApiError::NotFound),
    }
}
