//! The HTTP edge: routes, extractors, the one error-to-HTTP mapping, and the middleware every response
//! passes through (request id, tracing without secrets, 5xx cause logging, body limits, and the
//! [`perimeter`]: security headers, CORS, rate limits, the request timeout), and the server loop
//! ([`serve()`], with the header-read timeout). [`dashboard`] is the merchant's connections page.

pub mod assets;
pub mod audit;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod perimeter;
pub mod proxy;
pub mod serve;
pub mod views;

pub use serve::{serve, ServerTimeouts};

use std::sync::Arc;

use axum::extract::{FromRef, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{Redirect, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use url::Url;

use crate::connect::{ConnectWorkflow, Replacements};
use crate::lifecycle::{Assets, Connections, Grants, Tokens};
use crate::metrics::Metrics;
use crate::oauth::{Flow, OAuthError};
use crate::redis_conn::RedisHandle;
use crate::store::Store;
use error::InternalCause;
use extract::ApiKeys;

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
    pub checks: health::CheckCache,
}

/// Browser-facing settings: where callbacks land, whether cookies are `Secure`.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `DASHBOARD_URL`.
    pub dashboard_url: Url,
    /// Set `Secure` on cookies (production, or an https `API_URL`).
    pub secure_cookies: bool,
}

impl WebSettings {
    fn redirect(&self, pairs: &[(&str, &str)]) -> Redirect {
        let mut url = self.dashboard_url.clone();
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
        }
        Redirect::to(url.as_str())
    }

    /// `303` to the dashboard with `connection=success`.
    pub(crate) fn success_redirect(&self, platform: &str) -> Redirect {
        self.redirect(&[("connection", "success"), ("platform", platform)])
    }

    /// `303` to the dashboard with `connection=confirm` and the parked grant's id: the reconnect
    /// signed in to another account, and the merchant decides whether it replaces the old one.
    pub(crate) fn confirm_redirect(&self, platform: &str, pending: &str) -> Redirect {
        self.redirect(&[
            ("connection", "confirm"),
            ("platform", platform),
            ("pending", pending),
        ])
    }

    /// `303` to the dashboard with `connection=error`, a reason code and a safe message.
    pub(crate) fn error_redirect(&self, platform: &str, error: &OAuthError) -> Redirect {
        self.redirect(&[
            ("connection", "error"),
            ("platform", platform),
            ("reason", error.reason()),
            ("message", &error.merchant_message()),
        ])
    }
}

/// Everything handlers share; each takes only the part it uses (`State<Connections>`, ...).
///
/// axum clones the router's state for every request, so this is a handle on one [`AppParts`]: a
/// clone is one reference count. (Copying every service per request, each with its own handles,
/// URLs and strings, cost about 5% of a listing's CPU and as much of a proxied call's.)
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// Each part a handler may take from the state (a part added to [`AppParts`] is listed here too).
macro_rules! state_parts {
    ($($field:ident: $part:ty),+ $(,)?) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        }
    )+};
}

state_parts!(
    flow: Flow,
    connections: Connections,
    tokens: Tokens,
    grants: Grants,
    assets: Assets,
    connect: ConnectWorkflow,
    replacements: Replacements,
    api_keys: ApiKeys,
    health: HealthProbe,
    metrics: Metrics,
    web: WebSettings,
    dashboard: dashboard::DashboardAuth,
    perimeter: perimeter::Perimeter,
    audit: crate::audit::AuditLog,
    proxy: crate::proxy::Proxy,
);

/// The services behind [`AppState`].
#[derive(Debug)]
pub struct AppParts {
    /// The authorization flow.
    pub flow: Flow,
    /// A store's connections and their health.
    pub connections: Connections,
    /// Valid tokens for calling services.
    pub tokens: Tokens,
    /// Recording and disconnecting connections.
    pub grants: Grants,
    /// The merchant's assets.
    pub assets: Assets,
    /// What becomes of a finished flow's grant.
    pub connect: ConnectWorkflow,
    /// The merchant's answers to parked grants.
    pub replacements: Replacements,
    /// Accepted API keys.
    pub api_keys: ApiKeys,
    /// Health dependencies.
    pub health: HealthProbe,
    /// Metrics.
    pub metrics: Metrics,
    /// Browser-facing settings.
    pub web: WebSettings,
    /// Dashboard links and sessions.
    pub dashboard: dashboard::DashboardAuth,
    /// Security headers, CORS and rate limits.
    pub perimeter: perimeter::Perimeter,
    /// The audit trail.
    pub audit: crate::audit::AuditLog,
    /// The authenticated proxy to the platforms' APIs.
    pub proxy: crate::proxy::Proxy,
}

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
        .merge(assets::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .merge(dashboard::router())
        .with_state(state.clone())
        .merge(extra)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        // After the 64 KiB limit: the proxy streams bodies up to its own PROXY_MAX_BODY_BYTES.
        .merge(proxy::router().with_state(state));
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
