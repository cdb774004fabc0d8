//! Health for load balancers and orchestrators: `GET /health` (the service and each dependency),
//! `GET /health/live` (the process answers) and `GET /health/ready` (it can serve tokens).
//!
//! PostgreSQL is the source of truth, so only the database decides readiness: with Redis down the
//! service still serves every token (the cache is an accelerator), so `/health` answers 200
//! `degraded` rather than asking a load balancer to pull a replica that works. The checks run at
//! most once a second, one at a time; every other request reuses the last result, so a probe storm
//! costs the dependencies nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::views::HealthResponse;
use super::{AppState, HealthProbe};

/// The health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// Bounds the database check; Redis calls are bounded by the handle's own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a check result is reused.
const CHECK_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedisState {
    NotConfigured,
    Up,
    Down,
}

/// One round of checks.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    database_up: bool,
    redis: RedisState,
}

/// The last check result, shared by every request of one application.
#[derive(Debug, Clone, Default)]
pub struct CheckCache {
    // A tokio mutex on purpose: it is held across the check so that only one runs at a time and
    // the requests that arrive meanwhile wait for its result instead of checking again.
    last: Arc<tokio::sync::Mutex<Option<(Instant, Snapshot)>>>,
}

async fn check(probe: &HealthProbe) -> Snapshot {
    let mut last = probe.checks.last.lock().await;
    if let Some((at, snapshot)) = *last {
        if at.elapsed() < CHECK_TTL {
            return snapshot;
        }
    }
    let database = async {
        matches!(
            tokio::time::timeout(CHECK_TIMEOUT, probe.store.ping()).await,
            Ok(Ok(()))
        )
    };
    let redis = async {
        match &probe.redis {
            None => RedisState::NotConfigured,
            // While the breaker is open this answers at once, without I/O.
            Some(redis) => match redis.ping().await {
                Ok(()) => RedisState::Up,
                Err(_) => RedisState::Down,
            },
        }
    };
    let (database_up, redis) = tokio::join!(database, redis);
    let snapshot = Snapshot { database_up, redis };
    *last = Some((Instant::now(), snapshot));
    snapshot
}

/// Reports the service's health and each dependency's: `healthy`, `degraded` (200: only Redis is
/// down, tokens are still served from the database) or `unhealthy` (503: the database is down).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, body = HealthResponse, description = "healthy, or degraded: Redis is down but every token is still served"),
        (status = 503, body = HealthResponse, description = "unhealthy: the database is down"),
    ))]
pub async fn health(State(probe): State<HealthProbe>) -> (StatusCode, Json<HealthResponse>) {
    let snapshot = check(&probe).await;
    let redis = match snapshot.redis {
        RedisState::NotConfigured => {
            json!({ "status": "not_configured", "flow_state": "in-process" })
        }
        RedisState::Up => json!({ "status": "up" }),
        RedisState::Down => json!({ "status": "down" }),
    };
    let redis_down = snapshot.redis == RedisState::Down;
    let mut failing = Vec::new();
    if !snapshot.database_up {
        failing.push("database");
    }
    if redis_down {
        failing.push("redis");
    }
    let (status, text) = match (snapshot.database_up, redis_down) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy"),
        (true, true) => (StatusCode::OK, "degraded"),
        (true, false) => (StatusCode::OK, "healthy"),
    };
    let body = HealthResponse {
        status: text.into(),
        service: "growth-engine".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        environment: probe.environment.into(),
        checks: json!({
            "database": {
                "status": if snapshot.database_up { "up" } else { "down" },
                "backend": probe.store.backend(),
            },
            "redis": redis,
            "failing": failing,
        }),
    };
    (status, Json(body))
}

/// Liveness: 200 whenever the process serves requests. No I/O, so a dependency outage never gets a
/// healthy process restarted.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "the process answers", body = Object)))]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// Readiness: 200 when tokens can be served (the database answers; Redis is not required), else 503.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "tokens can be served", body = Object),
        (status = 503, description = "the database is down: tokens cannot be served", body = Object),
    ))]
pub async fn ready(State(probe): State<HealthProbe>) -> (StatusCode, Json<serde_json::Value>) {
    if check(&probe).await.database_up {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "failing": ["database"] })),
        )
    }
}
