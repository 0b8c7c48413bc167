//! `/healthz` (the process is up) and `/readyz` (it can serve: database reachable, schema
//! current), for load balancers and orchestrators.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::db::migrate;

/// How long the readiness probe waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers as long as the process runs.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Answers 200 when the database answers and every built-in migration the server needs is
/// applied unchanged (the tightening that waits for a backfill is not needed), 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let probe = async {
        let mut conn = state.pool.acquire().await?;
        migrate::applied(&mut conn).await
    };
    let applied = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(applied)) => applied,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe: database unavailable");
            return Err(ApiError::NotReady("database unreachable".into()));
        }
        Err(_) => return Err(ApiError::NotReady("database did not answer in time".into())),
    };
    if let Some(problem) = migrate::service_schema_problem(&state.migrations, &applied) {
        return Err(ApiError::NotReady(problem));
    }
    let current = migrate::current_version(&applied);
    Ok(Json(json!({"status": "ready", "migration": current})))
}
