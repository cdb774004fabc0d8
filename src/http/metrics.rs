//! `GET /metrics`: Prometheus text format, behind the API key (connection counts are business data).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::extract::ApiCaller;
use super::state::AppState;
use crate::lifecycle::Connections;
use crate::metrics::Metrics;

/// The metrics route.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus metrics in the text exposition format; connection counts are read from the database
/// at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security(("api_key" = [])),
    responses(
        (status = 200, content_type = "application/openmetrics-text", body = String),
        (status = 401, body = super::error::ErrorBody),
    ))]
pub async fn metrics(
    State(metrics): State<Metrics>,
    State(connections): State<Connections>,
    _caller: ApiCaller,
) -> impl IntoResponse {
    match connections.core().store().count_by_status().await {
        Ok(counts) => metrics.set_connection_counts(&counts),
        Err(error) => tracing::warn!(error = %error, "could not count connections for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
