//! Health for load balancers and orchestrators: `GET /health` (the service and each dependency),
//! `GET /health/live` (the process answers) and `GET /health/ready` (it can serve tokens).
//!
//! PostgreSQL is the source of truth, so only the database decides readiness: with Redis down the
//! service still serves every token (the cache is an accelerator), so `/health` answers 200
//! `degraded` rather than asking a load balancer to pull a replica that works. The checks run at
//! most once a second, one at a time; every other request answers at once with the last result
//! (even while a slow check is under way), so a probe storm costs the dependencies nothing and a
//! probe never waits on a dependency's timeout, except the very first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::views::HealthResponse;
use crate::redis_conn::RedisHandle;
use crate::store::Store;

/// What the health check looks at.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Redis, when configured.
    pub redis: Option<RedisHandle>,
    /// `development` or `production`.
    pub environment: &'static str,
    /// The last check result (checks run at most once a second).
    pub checks: CheckCache,
}

/// The health routes, for any state that holds a [`HealthProbe`].
pub fn router<S>() -> Router<S>
where
    HealthProbe: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
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

/// One round of checks, with the `/health` answer rendered once for every request that reuses it.
#[derive(Debug, Clone)]
struct Snapshot {
    database_up: bool,
    status: StatusCode,
    body: Bytes,
}

/// The last check result, shared by every request of one application.
#[derive(Debug, Clone, Default)]
pub struct CheckCache {
    last: Arc<std::sync::RwLock<Option<(Instant, Snapshot)>>>,
    // Held by the one request running a check (across its I/O, hence tokio's mutex). Requests that
    // arrive meanwhile answer with the last result instead of waiting for it.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl CheckCache {
    fn last(&self) -> Option<(Instant, Snapshot)> {
        self.last.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fresh(&self) -> Option<Snapshot> {
        self.last()
            .filter(|(at, _)| at.elapsed() < CHECK_TTL)
            .map(|(_, snapshot)| snapshot)
    }
}

async fn check(probe: &HealthProbe) -> Snapshot {
    let cache = &probe.checks;
    if let Some(snapshot) = cache.fresh() {
        return snapshot;
    }
    let _running = match cache.running.try_lock() {
        Ok(guard) => guard,
        Err(_) => {
            // A check is under way: the previous result is at most a check's duration staler.
            if let Some((_, snapshot)) = cache.last() {
                return snapshot;
            }
            cache.running.lock().await
        }
    };
    // Another request may have finished a check while this one waited for the lock.
    if let Some(snapshot) = cache.fresh() {
        return snapshot;
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
    let snapshot = render(probe, database_up, redis);
    *cache.last.write().unwrap_or_else(|p| p.into_inner()) =
        Some((Instant::now(), snapshot.clone()));
    snapshot
}

/// Reports the service's health and each dependency's: `healthy`, `degraded` (200: only Redis is
/// down, tokens are still served from the database) or `unhealthy` (503: the database is down).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, body = HealthResponse, description = "healthy, or degraded: Redis is down but every token is still served"),
        (status = 503, body = HealthResponse, description = "unhealthy: the database is down"),
    ))]
pub async fn health(State(probe): State<HealthProbe>) -> Response {
    let snapshot = check(&probe).await;
    (
        snapshot.status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        snapshot.body,
    )
        .into_response()
}

fn render(probe: &HealthProbe, database_up: bool, redis: RedisState) -> Snapshot {
    let redis_down = redis == RedisState::Down;
    let redis = match redis {
        RedisState::NotConfigured => {
            json!({ "status": "not_configured", "flow_state": "in-process" })
        }
        RedisState::Up => json!({ "status": "up" }),
        RedisState::Down => json!({ "status": "down" }),
    };
    let mut failing = Vec::new();
    if !database_up {
        failing.push("database");
    }
    if redis_down {
        failing.push("redis");
    }
    let (status, text) = match (database_up, redis_down) {
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
                "status": if database_up { "up" } else { "down" },
                "backend": probe.store.backend(),
            },
            "redis": redis,
            "failing": failing,
        }),
    };
    Snapshot {
        database_up,
        status,
        // Serializing strings and a JSON value cannot fail; an empty body would be the symptom.
        body: serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_default(),
    }
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
