//! The HTTP edge: routes, extractors, the one error-to-HTTP mapping, and the middleware every response
//! passes through (request id, tracing without secrets, 5xx cause logging, body limits, and the
//! [`perimeter`]: security headers, CORS, rate limits, the request timeout), and the server loop
//! ([`serve()`], with the header-read timeout). [`dashboard`] is the merchant's connections page.
//!
//! This file builds the router from the handlers' modules; what they share ([`AppState`]) lives in
//! `state.rs`, so that no handler imports this file back.

pub mod asset_routes;
pub mod audit;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod inbox_routes;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod perimeter;
pub mod posts;
pub mod proxy;
pub mod serve;
pub mod state;
pub mod views;

pub use health::HealthProbe;
pub use serve::{serve, serve_until, ServerTimeouts};
pub use state::{AppParts, AppState, WebSettings};

use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use error::InternalCause;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Logs the cause of every 5xx once; the body the client got stays generic.
async fn log_server_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // A reference-counted copy, not a new string: this runs on every request.
    let uri = request.uri().clone();
    let response = next.run(request).await;
    if response.status().is_server_error() {
        let path = uri.path();
        let cause = response
            .extensions()
            .get::<InternalCause>()
            .map(|c| c.0.to_string())
            .unwrap_or_else(|| "unknown".into());
        tracing::error!(%method, %path, status = response.status().as_u16(), %cause, "request failed");
    }
    response
}

/// The whole router with its middleware.
///
/// The middleware wraps the routed router once, rather than each route (`Router::layer`): axum
/// clones a route's service for every request, and each `from_fn` layer clones what it wraps, so
/// layered per route every request copied the whole stack several times over (about a tenth of a
/// proxied call's CPU). Wrapped once, what a layer clones is the inner router, one reference count.
pub fn router(state: AppState, extra: Router) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        // The path only: query strings carry codes and states.
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
    });
    let perimeter = state.perimeter.clone();
    let limits = perimeter::RequestLimits {
        flow: perimeter::FlowRateLimit::new(&perimeter, state.api_keys.clone()),
        timeout: perimeter.request_timeout,
    };
    let routes = Router::new()
        .merge(health::router())
        .merge(oauth::router())
        .merge(audit::router())
        .merge(asset_routes::router())
        .merge(posts::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .merge(dashboard::router())
        .with_state(state.clone())
        .merge(extra)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        // After the 64 KiB limit: the proxy streams bodies up to its own PROXY_MAX_BODY_BYTES,
        // the platforms' receivers read up to theirs (a Meta batch holds up to 1000 entries).
        .merge(inbox_routes::router().with_state(state.clone()))
        .merge(proxy::router().with_state(state.clone()));
    // The MCP tools call the routes above in-process, behind the middleware the MCP request
    // itself passed.
    let routes = routes.clone().merge(mcp::router(mcp::McpParts {
        api: routes,
        keys: state.api_keys.clone(),
        audit: state.audit.clone(),
        metrics: state.metrics.clone(),
        api_url: state.web.api_url.clone(),
    }));
    // Outermost first.
    let middleware = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            perimeter::SecurityHeaders::new(&perimeter),
            perimeter::security_headers,
        ))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        // Inside the trace span; around the limits, so that a timed-out request's cause is logged.
        .layer(axum::middleware::from_fn(log_server_errors))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            perimeter::limit_requests,
        ));
    let router = Router::new().fallback_service(middleware.service(routes));
    // Outermost, so that preflights are answered before anything else and every answer (errors
    // included) carries the CORS headers.
    match perimeter.cors() {
        Some(cors) => router.layer(cors),
        None => router,
    }
}
