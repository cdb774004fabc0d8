//! `GET /health`: the service and the state of its database and Redis. 503 names the failing part.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::views::HealthResponse;
use super::{AppState, HealthProbe};

/// The health route.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Reports the service's health and each dependency's.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, body = HealthResponse, description = "healthy"),
        (status = 503, body = HealthResponse, description = "unhealthy: a dependency is down"),
    ))]
pub async fn health(State(probe): State<HealthProbe>) -> (StatusCode, Json<HealthResponse>) {
    let database_up = matches!(
        tokio::time::timeout(CHECK_TIMEOUT, probe.store.ping()).await,
        Ok(Ok(()))
    );
    let redis = match &probe.redis {
        None => json!({ "status": "not_configured", "flow_state": "in-process" }),
        Some(redis) => {
            let up = matches!(
                tokio::time::timeout(CHECK_TIMEOUT, redis.ping()).await,
                Ok(Ok(()))
            );
            json!({ "status": if up { "up" } else { "down" } })
        }
    };
    let redis_up = redis["status"] != "down";
    let healthy = database_up && redis_up;
    let mut failing = Vec::new();
    if !database_up {
        failing.push("database");
    }
    if !redis_up {
        failing.push("redis");
    }
    let body = HealthResponse {
        status: if healthy { "healthy" } else { "unhealthy" }.into(),
        service: "growth-engine".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        environment: probe.environment.into(),
        checks: json!({
            "database": {
                "status": if database_up { "up" } else { "down" },
                "backend": probe.store.backend(),
            },
            "redis": redis,
            "failing": failing,
        }),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
