//! What handlers share ([`AppState`]): one handle on every service and setting of the edge, from
//! which each handler takes only the part it uses (`State<Connections>`, ...), and the
//! browser-facing settings ([`WebSettings`]). Handlers import it from here; the router that
//! `mod.rs` builds from them sits above.

use crate::inbox::Inbox;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::response::Redirect;
use url::Url;

use super::dashboard::session::DashboardAuth;
use super::extract::ApiKeys;
use super::health::HealthProbe;
use super::perimeter::Perimeter;
use crate::audit::AuditLog;
use crate::connect::{ConnectWorkflow, Replacements};
use crate::lifecycle::{Assets, Connections, Grants, Tokens};
use crate::metrics::Metrics;
use crate::oauth::{Flow, OAuthError};
use crate::proxy::Proxy;
use crate::publish::Posts;

/// Browser-facing settings: where callbacks land, whether cookies are `Secure`.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `API_URL`: where clients reach this service (the MCP endpoint allows its host).
    pub api_url: Url,
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
    dashboard: DashboardAuth,
    perimeter: Perimeter,
    audit: AuditLog,
    inbox: Inbox,
    posts: Posts,
    proxy: Proxy,
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
    pub dashboard: DashboardAuth,
    /// Security headers, CORS and rate limits.
    pub perimeter: Perimeter,
    /// The audit trail.
    pub audit: AuditLog,
    /// The platforms' notices.
    pub inbox: Inbox,
    /// Posts.
    pub posts: Posts,
    /// The authenticated proxy to the platforms' APIs.
    pub proxy: Proxy,
}
