//! Settings: the plan's variable names, read from the environment (and a `.env` file, loaded by
//! `main`), validated once at start-up.
//!
//! A platform without credentials is "not configured", never a start-up failure. A bad value stops
//! start-up with one line naming the variable and what is wrong; secrets are never echoed. The
//! embedded defaults (SQLite, in-process state, a development key file) make a bare `cargo run` work.
//!
//! Layout: this module owns the types ([`Settings`] stays flat, so every field keeps its path) and
//! builds them in one struct literal, so the compiler checks that every field is read. Each value
//! comes from the module of its concern, which names the variable, its default, range and unit:
//! `server`, `storage`, `keys`, `dashboard`, `refresher`, `webhooks`, `audit`, `platforms`. The shared
//! rules (blank is unset, `<NAME>_FILE` secrets, ranges, URLs, production-only requirements, the
//! unknown-variable warnings) live in `vars`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use crate::platforms::settings::{
    ClientCredentials, GenericProviderSettings, PlatformSettings,
};
use crate::platforms::BUILT_IN;

mod audit;
mod dashboard;
mod error;
mod keys;
mod platforms;
mod posts;
mod refresher;
mod sections;
mod server;
mod storage;
mod vars;
mod webhooks;

pub use crate::redis_conn::RedisSentinelSettings;
pub use error::ConfigError;
pub use keys::DEV_API_KEY;
pub use posts::PostSettings;
pub(crate) use sections::mask_url;
pub use sections::{DatabaseSettings, Environment, KeySettings};
use vars::Vars;

/// Every setting, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ENVIRONMENT`.
    pub environment: Environment,
    /// `PORT` (default 8003).
    pub port: u16,
    /// `HOST`: default `0.0.0.0` in production or with `API_KEYS` that close the API (16+
    /// characters each, none the public development key), else `127.0.0.1` (where a stranger
    /// could know or guess a key, only loopback may listen).
    pub host: String,
    /// `HTTP_REQUEST_TIMEOUT_SECONDS` (default 30, 1 to 300): the limit on one request to us.
    pub request_timeout: Duration,
    /// `HTTP_HEADER_READ_TIMEOUT_SECONDS` (default 10, 1 to 120): how long a client may take to
    /// send its request headers.
    pub header_read_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECONDS` (default 30; at least `HTTP_TIMEOUT_SECONDS` + 5, at most 300):
    /// the bound on a stopping replica's whole shutdown, work in flight and the audit flush
    /// included.
    pub shutdown_grace: Duration,
    /// `API_URL`: the service's public base URL; callbacks are built from it.
    pub api_url: Url,
    /// `DASHBOARD_URL`: where callbacks send the browser (default `{API_URL}/dashboard/marketing`).
    pub dashboard_url: Url,
    /// `ALLOWED_ORIGINS`: origins allowed by CORS and allowed to embed the page.
    pub allowed_origins: Vec<String>,
    /// `DASHBOARD_JWT_SECRET` (at least 32 bytes): signs dashboard links and sessions. Required in
    /// production; `None` in development means "derive it from the token-encryption key".
    pub dashboard_jwt_secret: Option<SecretString>,
    /// `DASHBOARD_SESSION_MINUTES` (default 480): how long a dashboard session lasts.
    pub dashboard_session: Duration,
    /// `RATE_LIMIT_PER_MINUTE` (default 60): flow requests (connect, first hop, callback) allowed
    /// per client IP per minute.
    pub rate_limit_per_minute: u32,
    /// `TRUST_PROXY` (default false): take the client IP from the last `X-Forwarded-For` entry,
    /// which the proxy in front of us appended. Only safe behind such a proxy.
    pub trust_proxy: bool,
    /// `DATABASE_URL` (or `DATABASE_URL_FILE`); PostgreSQL's `sslmode` in it is honoured.
    pub database: DatabaseSettings,
    /// `DATABASE_STATEMENT_TIMEOUT_SECONDS` (default 10, 1 to 300): the longest one statement runs;
    /// plus 5 s, the longest one PostgreSQL call waits for an answer (`PgStore::call_limit`).
    pub statement_timeout: Duration,
    /// `REDIS_URL`; `None` keeps flow state in process (unless `redis_sentinel` is set).
    pub redis_url: Option<SecretString>,
    /// `REDIS_SENTINELS` and its companions, instead of `REDIS_URL`.
    pub redis_sentinel: Option<RedisSentinelSettings>,
    /// `REDIS_KEY_PREFIX` (default `ge:`): lets several deployments or test runs share one Redis.
    pub redis_key_prefix: String,
    /// `REDIS_TIMEOUT_MILLISECONDS` (default 500, 50 to 10000): the limit on one Redis command.
    pub redis_timeout: Duration,
    /// `TOKEN_ENCRYPTION_KEY` and `TOKEN_ENCRYPTION_OLD_KEYS`.
    pub keys: KeySettings,
    /// `API_KEYS`: bearer keys accepted by the API.
    pub api_keys: Vec<SecretString>,
    /// `AUTO_MIGRATE` (default true): apply migrations at start.
    pub auto_migrate: bool,
    /// `SANDBOX` (default true in development): serve unconfigured platforms from the built-in
    /// sandbox. Always off in production.
    pub sandbox: bool,
    /// Publishing: approval, retries, the scheduler, media fetching (`POSTS_*`, `MEDIA_*`).
    pub posts: PostSettings,
    /// `SANDBOX_REQUIRE_TOKEN_PROOFS` (default true): the sandbox's platforms that prove tokens
    /// refuse API calls without the proof, as an app that requires it does.
    pub sandbox_require_token_proofs: bool,
    /// `TOKEN_REFRESH_WINDOW_SECONDS` (default 300): a token expiring within this is refreshed first.
    pub refresh_window: Duration,
    /// `HTTP_TIMEOUT_SECONDS` (default 10): the limit on every call to a platform.
    pub platform_timeout: Duration,
    /// `PLATFORM_MAX_RESPONSE_BYTES` (default 1048576, 1024 to 67108864): the largest platform
    /// answer read.
    pub platform_max_response_bytes: usize,
    /// The proxy's limits and extra platform credentials (`PROXY_*`, `GOOGLE_ADS_*`).
    pub proxy: crate::proxy::ProxySettings,
    /// `WEBHOOK_URL`: where lifecycle events are posted; `None` keeps them in the outbox only.
    pub webhook_url: Option<Url>,
    /// `WEBHOOK_SECRET`: the HMAC-SHA256 key events are signed with (required with `WEBHOOK_URL`).
    pub webhook_secret: Option<SecretString>,
    /// `WEBHOOK_MAX_ATTEMPTS` (default 12, 1 to 100): deliveries tried before an event is given up.
    pub webhook_max_attempts: u32,
    /// `WEBHOOK_RETENTION_DAYS` (default 7, 1 to 365): how long delivered events are kept.
    pub webhook_retention: Duration,
    /// `AUDIT_RETENTION_DAYS` (default 90, 1 to 3650): how long audit rows are kept.
    pub audit_retention: Duration,
    /// `REFRESHER_ENABLED` (default true): run the background refresher in this replica.
    pub refresher_enabled: bool,
    /// `REFRESHER_INTERVAL_SECONDS` (default 30): how often it looks for due connections.
    pub refresher_interval: Duration,
    /// `REFRESHER_CONCURRENCY` (default 8): platform calls it makes at once.
    pub refresher_concurrency: usize,
    /// `LIVENESS_CHECK_INTERVAL_SECONDS`, `EXPIRY_WARNING_DAYS`, `REFRESH_FAILING_ALERT_SECONDS`:
    /// connection health.
    pub health: crate::lifecycle::HealthSettings,
    /// The five built-in platforms' settings, by slug.
    pub platforms: BTreeMap<String, PlatformSettings>,
    /// Operator-declared generic providers.
    pub generic_providers: Vec<GenericProviderSettings>,
    /// Settings that work but are probably not what the operator meant (unknown variables in our
    /// namespaces, clear-text database connections in production): logged once at start.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads settings from a variable map.
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut vars = Vars::new(map);
        let environment = server::environment(&vars)?;
        vars.set_production(environment == Environment::Production);
        // Read first: the defaults or rules of other settings depend on them.
        let port = server::port(&vars)?;
        let api_url = server::api_url(&vars, port)?;
        let api_keys = keys::api_keys(&vars)?;
        let platform_timeout = platforms::timeout(&vars)?;
        let webhook_url = webhooks::url(&vars)?;
        let sandbox = platforms::sandbox(&vars)?;
        let mut settings = Self {
            environment,
            port,
            host: server::host(&vars, &api_keys)?,
            request_timeout: server::request_timeout(&vars)?,
            header_read_timeout: server::header_read_timeout(&vars)?,
            shutdown_grace: server::shutdown_grace(&vars, platform_timeout)?,
            dashboard_url: dashboard::url(&vars, &api_url)?,
            api_url,
            allowed_origins: dashboard::allowed_origins(&vars)?,
            dashboard_jwt_secret: dashboard::jwt_secret(&vars)?,
            dashboard_session: dashboard::session(&vars)?,
            rate_limit_per_minute: dashboard::rate_limit_per_minute(&vars)?,
            trust_proxy: dashboard::trust_proxy(&vars)?,
            database: storage::database(&vars)?,
            statement_timeout: storage::statement_timeout(&vars)?,
            redis_sentinel: storage::redis_sentinel(&vars)?,
            redis_url: storage::redis_url(&vars)?,
            redis_key_prefix: storage::redis_key_prefix(&vars)?,
            redis_timeout: storage::redis_timeout(&vars)?,
            auto_migrate: storage::auto_migrate(&vars)?,
            keys: keys::token_keys(&vars)?,
            api_keys,
            sandbox,
            posts: PostSettings::read(&vars, sandbox)?,
            sandbox_require_token_proofs: vars.bool("SANDBOX_REQUIRE_TOKEN_PROOFS", true)?,
            refresh_window: refresher::window(&vars)?,
            refresher_enabled: refresher::enabled(&vars)?,
            refresher_interval: refresher::interval(&vars)?,
            refresher_concurrency: refresher::concurrency(&vars)?,
            health: crate::lifecycle::HealthSettings {
                check_interval: refresher::liveness_interval(&vars)?,
                warning_days: refresher::expiry_warning_days(&vars)?,
                failing_alert: refresher::refresh_failing_alert(&vars)?,
            },
            platform_timeout,
            platform_max_response_bytes: platforms::max_response_bytes(&vars)?,
            proxy: platforms::proxy(&vars)?,
            webhook_secret: webhooks::secret(&vars, webhook_url.is_some())?,
            webhook_url,
            webhook_max_attempts: webhooks::max_attempts(&vars)?,
            webhook_retention: webhooks::retention(&vars)?,
            audit_retention: audit::retention(&vars)?,
            platforms: platforms::built_in(&vars)?,
            generic_providers: platforms::generic_providers(&vars)?,
            warnings: Vec::new(),
        };
        server::check_logging(&vars)?;
        settings.warnings = vars.finish(&platforms::watched_prefixes(&settings.generic_providers));
        Ok(settings)
    }

    /// Whether the operator set `DASHBOARD_JWT_SECRET` (rather than the development derivation).
    pub(crate) fn dashboard_secret_configured(&self) -> bool {
        self.dashboard_jwt_secret.is_some()
    }

    /// Whether this is production.
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// A human summary for `check-config`, every secret masked.
    pub(crate) fn summary(&self) -> Vec<(String, String)> {
        let mut rows = self.server_rows();
        rows.extend(self.storage_rows());
        rows.extend(self.lifecycle_rows());
        rows.extend(self.platform_rows());
        rows
    }

    fn server_rows(&self) -> Vec<(String, String)> {
        vec![
            row("ENVIRONMENT", self.environment.as_str()),
            row("HOST", &self.host),
            row("PORT", self.port),
            row("API_URL", &self.api_url),
            row("DASHBOARD_URL", &self.dashboard_url),
            row("ALLOWED_ORIGINS", self.allowed_origins.join(",")),
            row(
                "DASHBOARD_JWT_SECRET",
                match self.dashboard_jwt_secret {
                    Some(_) => "set (hidden)",
                    None => "not set: derived from the token-encryption key",
                },
            ),
            row(
                "DASHBOARD_SESSION_MINUTES",
                self.dashboard_session.as_secs() / 60,
            ),
            row("RATE_LIMIT_PER_MINUTE", self.rate_limit_per_minute),
            row("TRUST_PROXY", self.trust_proxy),
            row(
                "API_KEYS",
                format!("{} key(s) (hidden)", self.api_keys.len()),
            ),
            row(
                "HTTP_REQUEST_TIMEOUT_SECONDS",
                self.request_timeout.as_secs(),
            ),
            row(
                "HTTP_HEADER_READ_TIMEOUT_SECONDS",
                self.header_read_timeout.as_secs(),
            ),
            row("SHUTDOWN_GRACE_SECONDS", self.shutdown_grace.as_secs()),
        ]
    }

    fn storage_rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            row("DATABASE_URL", self.database.describe()),
            row(
                "DATABASE_STATEMENT_TIMEOUT_SECONDS",
                self.statement_timeout.as_secs(),
            ),
            row("AUTO_MIGRATE", self.auto_migrate),
            row(
                "REDIS_URL",
                match (&self.redis_url, &self.redis_sentinel) {
                    (Some(url), _) => mask_url(url.expose_secret()),
                    (None, Some(_)) => "not set: through REDIS_SENTINELS".into(),
                    (None, None) => "not set: flow state in process".into(),
                },
            ),
            row("REDIS_KEY_PREFIX", &self.redis_key_prefix),
            row("REDIS_TIMEOUT_MILLISECONDS", self.redis_timeout.as_millis()),
            row(
                "TOKEN_ENCRYPTION_KEY",
                match &self.keys {
                    KeySettings::Configured { current, old } => {
                        format!("set (key id {}, {} old key(s))", current.id(), old.len())
                    }
                    KeySettings::DevelopmentFile(path) => {
                        format!("not set: development key file {}", path.display())
                    }
                },
            ),
        ];
        if let Some(sentinel) = &self.redis_sentinel {
            rows.extend(sentinel_rows(sentinel));
        }
        rows
    }

    fn lifecycle_rows(&self) -> Vec<(String, String)> {
        vec![
            row(
                "TOKEN_REFRESH_WINDOW_SECONDS",
                self.refresh_window.as_secs(),
            ),
            row("REFRESHER_ENABLED", self.refresher_enabled),
            row(
                "REFRESHER_INTERVAL_SECONDS",
                self.refresher_interval.as_secs(),
            ),
            row("REFRESHER_CONCURRENCY", self.refresher_concurrency),
            row(
                "LIVENESS_CHECK_INTERVAL_SECONDS",
                self.health.check_interval.as_secs(),
            ),
            row(
                "EXPIRY_WARNING_DAYS",
                self.health
                    .warning_days
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            row(
                "REFRESH_FAILING_ALERT_SECONDS",
                self.health.failing_alert.as_secs(),
            ),
            row(
                "WEBHOOK_URL",
                self.webhook_url
                    .as_ref()
                    .map(|u| mask_url(u.as_str()))
                    .unwrap_or_else(|| "not set: events stay in the outbox".into()),
            ),
            row("WEBHOOK_SECRET", set(self.webhook_secret.is_some())),
            row("WEBHOOK_MAX_ATTEMPTS", self.webhook_max_attempts),
            row(
                "WEBHOOK_RETENTION_DAYS",
                self.webhook_retention.as_secs() / (24 * 3600),
            ),
            row(
                "AUDIT_RETENTION_DAYS",
                self.audit_retention.as_secs() / (24 * 3600),
            ),
        ]
    }

    fn platform_rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            row("SANDBOX", self.sandbox),
            row(
                "SANDBOX_REQUIRE_TOKEN_PROOFS",
                self.sandbox_require_token_proofs,
            ),
            row("HTTP_TIMEOUT_SECONDS", self.platform_timeout.as_secs()),
            row(
                "PLATFORM_MAX_RESPONSE_BYTES",
                self.platform_max_response_bytes,
            ),
            row("PROXY_MAX_BODY_BYTES", self.proxy.max_body_bytes),
            row("PROXY_MAX_RESPONSE_BYTES", self.proxy.max_response_bytes),
            row("FAIR_SHARE_ENABLED", self.proxy.fair_share.enabled),
            row(
                "FAIR_SHARE_THRESHOLD_PERCENT",
                (self.proxy.fair_share.threshold * 100.0).round(),
            ),
            row(
                "STORE_CALL_CEILINGS",
                self.proxy
                    .fair_share
                    .ceilings
                    .iter()
                    .map(|(platform, calls)| format!("{platform}={calls}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        for built_in in BUILT_IN.iter() {
            for setting in built_in.api_settings {
                let value = self
                    .platforms
                    .get(built_in.slug)
                    .and_then(|p| p.api_headers.iter().find(|h| h.name == setting.header));
                rows.push(match value {
                    Some(_) if setting.secret => row(setting.var, "set"),
                    Some(header) => row(setting.var, header.value.expose_secret()),
                    None => row(setting.var, "not set"),
                });
            }
        }
        for built_in in BUILT_IN.iter() {
            let platform = self.platforms.get(built_in.slug);
            let creds = platform.and_then(|p| p.credentials.as_ref());
            rows.push(row(
                built_in.client_id_var,
                creds.map_or("not set", |c| c.client_id.as_str()),
            ));
            rows.push(row(built_in.client_secret_var, set(creds.is_some())));
        }
        for provider in &self.generic_providers {
            let creds = provider.platform.credentials.as_ref();
            let prefix = provider.id.env_prefix();
            rows.push(row(
                &format!("{prefix}_CLIENT_ID"),
                creds.map_or("", |c| c.client_id.as_str()),
            ));
            rows.push(row(
                &format!("{prefix}_CLIENT_SECRET"),
                set(creds.is_some()),
            ));
        }
        rows
    }
}

/// The Sentinel settings, passwords hidden.
fn sentinel_rows(sentinel: &RedisSentinelSettings) -> Vec<(String, String)> {
    vec![
        row("REDIS_SENTINELS", sentinel.addresses()),
        row("REDIS_SENTINEL_MASTER", &sentinel.master),
        row(
            "REDIS_SENTINEL_USERNAME",
            sentinel.sentinel_username.as_deref().unwrap_or("not set"),
        ),
        row(
            "REDIS_SENTINEL_PASSWORD",
            set(sentinel.sentinel_password.is_some()),
        ),
        row(
            "REDIS_SENTINEL_MASTER_USERNAME",
            sentinel.master_username.as_deref().unwrap_or("not set"),
        ),
        row(
            "REDIS_SENTINEL_MASTER_PASSWORD",
            set(sentinel.master_password.is_some()),
        ),
        row("REDIS_SENTINEL_TLS", sentinel.tls),
    ]
}

fn row(name: &str, value: impl fmt::Display) -> (String, String) {
    (name.to_owned(), value.to_string())
}

fn set(present: bool) -> &'static str {
    if present {
        "set (hidden)"
    } else {
        "not set"
    }
}
