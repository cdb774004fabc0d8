//! The security perimeter around every route: security headers (Content-Security-Policy with the
//! embedding origins, HSTS in production), CORS for `ALLOWED_ORIGINS` only, and per-client rate
//! limits on the flow's entry points.
//!
//! It does not authenticate anyone (extractors do) nor log (the trace layer does).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, RETRY_AFTER, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use crate::config::Settings;

/// The perimeter's settings.
#[derive(Debug, Clone)]
pub struct Perimeter {
    /// Send HSTS.
    pub production: bool,
    /// `ALLOWED_ORIGINS`, serialised origins.
    pub allowed_origins: Vec<String>,
    /// `RATE_LIMIT_PER_MINUTE`.
    pub rate_limit_per_minute: u32,
    /// `TRUST_PROXY`.
    pub trust_proxy: bool,
}

impl Perimeter {
    /// From settings.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            production: settings.is_production(),
            allowed_origins: settings.allowed_origins.clone(),
            rate_limit_per_minute: settings.rate_limit_per_minute,
            trust_proxy: settings.trust_proxy,
        }
    }

    /// The page's policy: scripts, styles and fetches from our origin only, no inline code, images
    /// also from https (platform account pictures), and framing only by ourselves and the
    /// embedding origins.
    pub fn content_security_policy(&self) -> String {
        self.policy("style-src 'self'")
    }

    /// The sandbox consent pages' policy: the same, except that their inline `<style>` is allowed.
    /// The sandbox exists in development only.
    pub fn sandbox_content_security_policy(&self) -> String {
        self.policy("style-src 'unsafe-inline'")
    }

    fn policy(&self, style: &str) -> String {
        let mut ancestors = String::from("'self'");
        for origin in &self.allowed_origins {
            ancestors.push(' ');
            ancestors.push_str(origin);
        }
        format!(
            "default-src 'none'; script-src 'self'; {style}; img-src 'self' https: data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
        )
    }

    /// CORS for `ALLOWED_ORIGINS`; `None` (no CORS headers at all) when none are configured. The API
    /// authenticates with a bearer key, never cookies, so credentials stay off.
    pub fn cors(&self) -> Option<CorsLayer> {
        let origins: Vec<HeaderValue> = self
            .allowed_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    HeaderName::from_static("x-csrf-token"),
                ])
                .allow_credentials(false),
        )
    }
}

/// The headers every response carries, computed once.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    csp: HeaderValue,
    sandbox_csp: HeaderValue,
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// From the perimeter's settings.
    pub fn new(perimeter: &Perimeter) -> Self {
        // Origins were validated as URLs by the settings, so these are valid header values; an
        // invalid one falls back to the strictest policy rather than failing.
        let strict = "default-src 'none'; frame-ancestors 'none'";
        let value = |policy: String| {
            HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(strict))
        };
        Self {
            csp: value(perimeter.content_security_policy()),
            sandbox_csp: value(perimeter.sandbox_content_security_policy()),
            hsts: perimeter
                .production
                .then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains")),
        }
    }
}

/// Adds the Content-Security-Policy (the sandbox's for `/sandbox/*`) and, in production, HSTS.
pub async fn security_headers(
    State(headers): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let sandbox = request.uri().path().starts_with("/sandbox/");
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    let csp = if sandbox {
        &headers.sandbox_csp
    } else {
        &headers.csp
    };
    out.insert(CONTENT_SECURITY_POLICY, csp.clone());
    if let Some(hsts) = &headers.hsts {
        out.insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

/// Who a limit counts against: a browser by its address; the API's connect, called server to server
/// by the platform's dashboard for every merchant, by the store it starts a flow for (keying it by
/// address would make all merchants share one allowance).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Address(IpAddr),
    Store(String),
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(ip) => write!(f, "{ip}"),
            Self::Store(store) => write!(f, "store {store}"),
        }
    }
}

/// Per-client limits on the routes that start or finish flows.
///
/// The limiter lives in this process, so each replica limits on its own: N replicas let a client
/// through at most N times the rate. That is acceptable because its purpose is to protect the
/// replica (every flow costs state writes and platform calls) and to blunt floods; a limit shared
/// by all replicas would need a round trip to Redis on every request.
#[derive(Clone)]
pub struct FlowRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<ClientKey>>,
    trust_proxy: bool,
}

impl std::fmt::Debug for FlowRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRateLimit")
            .field("trust_proxy", &self.trust_proxy)
            .finish_non_exhaustive()
    }
}

/// How many client addresses the limiter tracks before it forgets the idle ones.
const TRACKED_CLIENTS: usize = 10_000;

impl FlowRateLimit {
    /// `per_minute` requests per client IP per minute, in bursts of up to `per_minute`.
    pub fn new(perimeter: &Perimeter) -> Self {
        let per_minute =
            NonZeroU32::new(perimeter.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                per_minute,
            ))),
            trust_proxy: perimeter.trust_proxy,
        }
    }

    /// Whether a path is limited: the API's connect, the first hop, the callback, the page's connect.
    pub fn applies_to(path: &str) -> bool {
        path.starts_with("/api/v1/oauth/connect/")
            || path == "/api/v1/oauth/authorize"
            || path == "/dashboard/authorize"
            || path.starts_with("/api/v1/oauth/callback/")
            || path.starts_with("/dashboard/api/connect/")
    }

    fn client(&self, request: &Request) -> Option<ClientKey> {
        if request.uri().path().starts_with("/api/v1/oauth/connect/") {
            let store = request.uri().query().and_then(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(name, _)| name == "store_id")
                    .map(|(_, value)| value.into_owned())
            });
            if let Some(store) = store {
                return Some(ClientKey::Store(store));
            }
        }
        self.address(request).map(ClientKey::Address)
    }

    fn address(&self, request: &Request) -> Option<IpAddr> {
        if self.trust_proxy {
            // The last entry is the one our proxy appended: the address it saw. Earlier entries
            // come from the client and can be forged.
            let forwarded = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|v| v.trim().parse::<IpAddr>().ok())
                .next_back();
            if forwarded.is_some() {
                return forwarded;
            }
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    }

    /// `Err(seconds to wait)` when the client is over its limit.
    fn check(&self, client: &ClientKey) -> Result<(), u64> {
        if self.limiter.len() > TRACKED_CLIENTS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Answers 429 with `Retry-After` to a client over its limit on a limited route.
pub async fn rate_limit(
    State(limit): State<FlowRateLimit>,
    request: Request,
    next: Next,
) -> Response {
    if FlowRateLimit::applies_to(request.uri().path()) {
        // Without a client address (a server built without connect info) there is nothing to key
        // on; limiting everyone together would let one client lock out all others.
        if let Some(client) = limit.client(&request) {
            if let Err(seconds) = limit.check(&client) {
                tracing::warn!(%client, retry_after = seconds, "rate limit exceeded");
                let mut response = ApiError::rate_limited(seconds).into_response();
                if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                    response.headers_mut().insert(RETRY_AFTER, value);
                }
                return response;
            }
        }
    }
    next.run(request).await
}
