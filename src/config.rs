//! Settings: the plan's variable names, read from the environment (and a `.env` file, loaded by
//! `main`), validated once at start-up.
//!
//! A platform without credentials is "not configured", never a start-up failure. A bad value stops
//! start-up with one line naming the variable and what is wrong; secrets are never echoed. The
//! embedded defaults (SQLite, in-process state, a development key file) make a bare `cargo run` work.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::domain::PlatformId;
pub use crate::platforms::settings::{
    ClientCredentials, GenericProviderSettings, PlatformSettings,
};
use crate::platforms::BUILT_IN;
use crate::vault::Key;

/// One bad setting. Its `Display` is the one line start-up prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {variable}: {problem}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: String,
    /// What is wrong, without the value when the value is secret.
    pub problem: String,
}

impl ConfigError {
    fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

/// `ENVIRONMENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local work: embedded defaults and the sandbox platforms are allowed.
    Development,
    /// Real merchants: PostgreSQL, Redis, a key, API keys and https are required.
    Production,
}

impl Environment {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// Where connections are stored.
#[derive(Clone)]
pub enum DatabaseSettings {
    /// An embedded SQLite file (the default with no `DATABASE_URL`).
    Sqlite(String),
    /// PostgreSQL; the URL may carry a password, so it is secret.
    Postgres(SecretString),
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl DatabaseSettings {
    /// A printable description with any password masked.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(url) => format!("sqlite ({url})"),
            Self::Postgres(url) => format!("postgres ({})", mask_url(url.expose_secret())),
        }
    }
}

/// Where the token-encryption key comes from.
#[derive(Debug, Clone)]
pub enum KeySettings {
    /// `TOKEN_ENCRYPTION_KEY` (and `TOKEN_ENCRYPTION_OLD_KEYS`).
    Configured {
        /// The key new values are sealed with.
        current: Box<Key>,
        /// Retired keys still accepted for reading.
        old: Vec<Key>,
    },
    /// Development only: a key file created on first start.
    DevelopmentFile(PathBuf),
}

/// Every setting, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ENVIRONMENT`.
    pub environment: Environment,
    /// `PORT` (default 8003).
    pub port: u16,
    /// `HOST` (default 0.0.0.0).
    pub host: String,
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
    /// `DATABASE_URL`.
    pub database: DatabaseSettings,
    /// `REDIS_URL`; `None` keeps flow state in process.
    pub redis_url: Option<SecretString>,
    /// `REDIS_KEY_PREFIX` (default `ge:`): lets several deployments or test runs share one Redis.
    pub redis_key_prefix: String,
    /// `TOKEN_ENCRYPTION_KEY` and `TOKEN_ENCRYPTION_OLD_KEYS`.
    pub keys: KeySettings,
    /// `API_KEYS`: bearer keys accepted by the API.
    pub api_keys: Vec<SecretString>,
    /// `AUTO_MIGRATE` (default true): apply migrations at start.
    pub auto_migrate: bool,
    /// `SANDBOX` (default true in development): serve unconfigured platforms from the built-in
    /// sandbox. Always off in production.
    pub sandbox: bool,
    /// `TOKEN_REFRESH_WINDOW_SECONDS` (default 300): a token expiring within this is refreshed first.
    pub refresh_window: Duration,
    /// `HTTP_TIMEOUT_SECONDS` (default 10): the limit on every call to a platform.
    pub platform_timeout: Duration,
    /// `WEBHOOK_URL`: where lifecycle events are posted; `None` keeps them in the outbox only.
    pub webhook_url: Option<Url>,
    /// `WEBHOOK_SECRET`: the HMAC-SHA256 key events are signed with (required with `WEBHOOK_URL`).
    pub webhook_secret: Option<SecretString>,
    /// `REFRESHER_ENABLED` (default true): run the background refresher in this replica.
    pub refresher_enabled: bool,
    /// `REFRESHER_INTERVAL_SECONDS` (default 30): how often it looks for due connections.
    pub refresher_interval: Duration,
    /// `REFRESHER_CONCURRENCY` (default 8): platform calls it makes at once.
    pub refresher_concurrency: usize,
    /// The five built-in platforms' settings, by slug.
    pub platforms: BTreeMap<String, PlatformSettings>,
    /// Operator-declared generic providers.
    pub generic_providers: Vec<GenericProviderSettings>,
}

/// Reads settings from a variable map (the process environment in production, a literal map in
/// tests).
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn url(&self, name: &str) -> Result<Option<Url>, ConfigError> {
        self.get(name).map(|v| parse_http_url(name, v)).transpose()
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|v| SecretString::from(v.to_owned()))
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::new(name, "must be true or false")),
        }
    }

    fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => v
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| ConfigError::new(name, "must be a whole number of seconds")),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split([',', ' '])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn parse_http_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::new(name, format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            name,
            "must be an http or https URL with a host",
        ));
    }
    Ok(url)
}

/// Masks the password of a URL for printing.
pub fn mask_url(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("****"));
            }
            url.to_string()
        }
        Err(_) => "[unparseable URL]".into(),
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads settings from a variable map.
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(map);
        let environment = match vars
            .get("ENVIRONMENT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(_) => {
                return Err(ConfigError::new(
                    "ENVIRONMENT",
                    "must be development or production",
                ))
            }
        };
        let production = environment == Environment::Production;

        let port = match vars.get("PORT") {
            None => 8003,
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| ConfigError::new("PORT", "must be a port number from 0 to 65535"))?,
        };
        let host = vars.get("HOST").unwrap_or("0.0.0.0").to_owned();

        let api_url = match vars.url("API_URL")? {
            Some(url) => url,
            None if production => {
                return Err(ConfigError::new("API_URL", "is required in production"))
            }
            None => parse_http_url("API_URL", &format!("http://localhost:{port}"))?,
        };
        if production && api_url.scheme() != "https" {
            return Err(ConfigError::new("API_URL", "must be https in production"));
        }
        let dashboard_url = match vars.url("DASHBOARD_URL")? {
            Some(url) => url,
            None => api_url
                .join("dashboard/marketing")
                .map_err(|e| ConfigError::new("API_URL", format!("cannot be joined ({e})")))?,
        };

        let mut allowed_origins = Vec::new();
        for origin in vars.list("ALLOWED_ORIGINS") {
            let url = parse_http_url("ALLOWED_ORIGINS", &origin)?;
            allowed_origins.push(url.origin().ascii_serialization());
        }
        let dashboard = dashboard_settings(&vars, production)?;

        let database = match vars.get("DATABASE_URL") {
            None if production => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "is required in production (a postgres:// URL)",
                ))
            }
            None => DatabaseSettings::Sqlite("sqlite://growth-engine.db?mode=rwc".into()),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Url::parse(url).map_err(|_| {
                    ConfigError::new("DATABASE_URL", "is not a valid postgres:// URL")
                })?;
                DatabaseSettings::Postgres(SecretString::from(url.to_owned()))
            }
            Some(url) if url.starts_with("sqlite:") && !production => {
                DatabaseSettings::Sqlite(url.to_owned())
            }
            Some(url) if url.starts_with("sqlite:") => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must be PostgreSQL in production: SQLite cannot be shared by replicas",
                ))
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite:",
                ))
            }
        };

        let redis_url = match vars.get("REDIS_URL") {
            None if production => {
                return Err(ConfigError::new(
                    "REDIS_URL",
                    "is required in production: flow state must be shared by replicas",
                ))
            }
            None => None,
            Some(url) => {
                let parsed = Url::parse(url)
                    .map_err(|_| ConfigError::new("REDIS_URL", "is not a valid redis:// URL"))?;
                if !matches!(parsed.scheme(), "redis" | "rediss") {
                    return Err(ConfigError::new(
                        "REDIS_URL",
                        "must start with redis:// or rediss://",
                    ));
                }
                Some(SecretString::from(url.to_owned()))
            }
        };
        let redis_key_prefix = vars.get("REDIS_KEY_PREFIX").unwrap_or("ge:").to_owned();

        let keys = match vars.get("TOKEN_ENCRYPTION_KEY") {
            Some(text) => {
                let current = Key::parse(text)
                    .map_err(|e| ConfigError::new("TOKEN_ENCRYPTION_KEY", e.to_string()))?;
                let mut old = Vec::new();
                for (i, text) in vars.list("TOKEN_ENCRYPTION_OLD_KEYS").iter().enumerate() {
                    old.push(Key::parse(text).map_err(|e| {
                        ConfigError::new(
                            "TOKEN_ENCRYPTION_OLD_KEYS",
                            format!("entry {} {}", i + 1, e),
                        )
                    })?);
                }
                KeySettings::Configured {
                    current: Box::new(current),
                    old,
                }
            }
            None if production => {
                return Err(ConfigError::new(
                    "TOKEN_ENCRYPTION_KEY",
                    "is required in production (generate one with `growth-engine keygen`)",
                ))
            }
            None => KeySettings::DevelopmentFile(PathBuf::from(
                vars.get("DEV_KEY_FILE").unwrap_or(".growth-engine-dev.key"),
            )),
        };

        let api_keys: Vec<SecretString> = vars
            .list("API_KEYS")
            .into_iter()
            .map(SecretString::from)
            .collect();
        if production && api_keys.is_empty() {
            return Err(ConfigError::new(
                "API_KEYS",
                "needs at least one key in production",
            ));
        }
        if let Some(short) = api_keys.iter().position(|k| k.expose_secret().len() < 16) {
            if production {
                return Err(ConfigError::new(
                    "API_KEYS",
                    format!("entry {} is shorter than 16 characters", short + 1),
                ));
            }
        }

        let auto_migrate = vars.bool("AUTO_MIGRATE", true)?;
        // A build without the `sandbox` feature defaults to off and refuses SANDBOX=true.
        let sandbox = vars.bool("SANDBOX", !production && cfg!(feature = "sandbox"))?;
        if sandbox && !cfg!(feature = "sandbox") {
            return Err(ConfigError::new(
                "SANDBOX",
                "this build has no sandbox: rebuild with the `sandbox` feature",
            ));
        }
        if production && sandbox {
            return Err(ConfigError::new(
                "SANDBOX",
                "cannot be enabled in production",
            ));
        }
        let refresh_window = vars.seconds("TOKEN_REFRESH_WINDOW_SECONDS", 300)?;
        if refresh_window > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new(
                "TOKEN_REFRESH_WINDOW_SECONDS",
                "must be at most 86400 (one day)",
            ));
        }
        // A refresh holds its lease for 60 s: the platform call and the write of its result must
        // fit well inside, or a second replica could refresh with an already-rotated token.
        let platform_timeout = vars.seconds("HTTP_TIMEOUT_SECONDS", 10)?;
        if platform_timeout.is_zero() || platform_timeout > Duration::from_secs(20) {
            return Err(ConfigError::new(
                "HTTP_TIMEOUT_SECONDS",
                "must be from 1 to 20 seconds",
            ));
        }

        let webhook_url = vars.url("WEBHOOK_URL")?;
        let webhook_secret = vars.secret("WEBHOOK_SECRET");
        if webhook_url.is_some() && webhook_secret.is_none() {
            return Err(ConfigError::new(
                "WEBHOOK_SECRET",
                "is required when WEBHOOK_URL is set (receivers verify the signature with it)",
            ));
        }
        if webhook_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 16)
        {
            return Err(ConfigError::new(
                "WEBHOOK_SECRET",
                "must be at least 16 characters",
            ));
        }
        let refresher_enabled = vars.bool("REFRESHER_ENABLED", true)?;
        let refresher_interval = vars.seconds("REFRESHER_INTERVAL_SECONDS", 30)?;
        let refresher_concurrency = match vars.get("REFRESHER_CONCURRENCY") {
            None => 8,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    ConfigError::new("REFRESHER_CONCURRENCY", "must be a number from 1 to 256")
                })?,
        };

        let mut platforms = BTreeMap::new();
        for platform in BUILT_IN.iter() {
            let credentials = match (
                vars.get(platform.client_id_var),
                vars.secret(platform.client_secret_var),
            ) {
                (Some(id), Some(secret)) => Some(ClientCredentials {
                    client_id: id.to_owned(),
                    client_secret: secret,
                }),
                _ => None,
            };
            platforms.insert(
                platform.slug.to_owned(),
                platform_overrides(&vars, platform.env_prefix, credentials)?,
            );
        }

        let mut generic_providers = Vec::new();
        for name in vars.list("OAUTH_PROVIDERS") {
            let id = PlatformId::parse(&name).map_err(|_| {
                ConfigError::new(
                    "OAUTH_PROVIDERS",
                    format!("{name:?} is not a slug of lower-case letters, digits and '_'"),
                )
            })?;
            if BUILT_IN.iter().any(|p| p.slug == id.as_str()) {
                return Err(ConfigError::new(
                    "OAUTH_PROVIDERS",
                    format!("{id} is a built-in platform"),
                ));
            }
            let prefix = id.env_prefix();
            let credentials = match (
                vars.get(&format!("{prefix}_CLIENT_ID")),
                vars.secret(&format!("{prefix}_CLIENT_SECRET")),
            ) {
                (Some(id), Some(secret)) => Some(ClientCredentials {
                    client_id: id.to_owned(),
                    client_secret: secret,
                }),
                _ => {
                    return Err(ConfigError::new(
                        format!("{prefix}_CLIENT_ID"),
                        "and its _CLIENT_SECRET are required for a generic provider",
                    ))
                }
            };
            let platform = platform_overrides(&vars, &prefix, credentials)?;
            for (var, value) in [
                ("AUTHORIZE_URL", &platform.authorize_url),
                ("TOKEN_URL", &platform.token_url),
            ] {
                if value.is_none() {
                    return Err(ConfigError::new(
                        format!("{prefix}_{var}"),
                        "is required for a generic provider",
                    ));
                }
            }
            let client_auth_basic = match vars
                .get(&format!("{prefix}_CLIENT_AUTH"))
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("basic") => true,
                Some("body") => false,
                Some(_) => {
                    return Err(ConfigError::new(
                        format!("{prefix}_CLIENT_AUTH"),
                        "must be basic or body",
                    ))
                }
            };
            generic_providers.push(GenericProviderSettings {
                display_name: vars
                    .get(&format!("{prefix}_DISPLAY_NAME"))
                    .unwrap_or(id.as_str())
                    .to_owned(),
                id,
                platform,
                client_auth_basic,
                pkce: vars.bool(&format!("{prefix}_PKCE"), true)?,
                authorize_params: match vars.get(&format!("{prefix}_AUTHORIZE_PARAMS")) {
                    None => Vec::new(),
                    Some(text) => serde_urlencoded::from_str(text).map_err(|_| {
                        ConfigError::new(
                            format!("{prefix}_AUTHORIZE_PARAMS"),
                            "must be form-encoded, like prompt=consent&access_type=offline",
                        )
                    })?,
                },
            });
        }

        Ok(Self {
            environment,
            port,
            host,
            api_url,
            dashboard_url,
            allowed_origins,
            dashboard_jwt_secret: dashboard.jwt_secret,
            dashboard_session: dashboard.session,
            rate_limit_per_minute: dashboard.rate_limit_per_minute,
            trust_proxy: dashboard.trust_proxy,
            database,
            redis_url,
            redis_key_prefix,
            keys,
            api_keys,
            auto_migrate,
            sandbox,
            refresh_window,
            platform_timeout,
            webhook_url,
            webhook_secret,
            refresher_enabled,
            refresher_interval,
            refresher_concurrency,
            platforms,
            generic_providers,
        })
    }

    /// Whether the operator set `DASHBOARD_JWT_SECRET` (rather than the development derivation).
    pub fn dashboard_secret_configured(&self) -> bool {
        self.dashboard_jwt_secret.is_some()
    }

    /// Whether this is production.
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// A human summary for `check-config`, every secret masked.
    pub fn summary(&self) -> Vec<(String, String)> {
        let set = |present: bool| if present { "set (hidden)" } else { "not set" }.to_owned();
        let mut rows = vec![
            ("ENVIRONMENT".into(), self.environment.as_str().into()),
            ("PORT".into(), self.port.to_string()),
            ("API_URL".into(), self.api_url.to_string()),
            ("DASHBOARD_URL".into(), self.dashboard_url.to_string()),
            ("ALLOWED_ORIGINS".into(), self.allowed_origins.join(",")),
            (
                "DASHBOARD_JWT_SECRET".into(),
                match self.dashboard_jwt_secret {
                    Some(_) => "set (hidden)".into(),
                    None => "not set: derived from the token-encryption key".into(),
                },
            ),
            (
                "DASHBOARD_SESSION_MINUTES".into(),
                (self.dashboard_session.as_secs() / 60).to_string(),
            ),
            (
                "RATE_LIMIT_PER_MINUTE".into(),
                self.rate_limit_per_minute.to_string(),
            ),
            ("TRUST_PROXY".into(), self.trust_proxy.to_string()),
            ("DATABASE_URL".into(), self.database.describe()),
            (
                "REDIS_URL".into(),
                self.redis_url
                    .as_ref()
                    .map(|u| mask_url(u.expose_secret()))
                    .unwrap_or_else(|| "not set: flow state in process".into()),
            ),
            (
                "TOKEN_ENCRYPTION_KEY".into(),
                match &self.keys {
                    KeySettings::Configured { current, old } => {
                        format!("set (key id {}, {} old key(s))", current.id(), old.len())
                    }
                    KeySettings::DevelopmentFile(path) => {
                        format!("not set: development key file {}", path.display())
                    }
                },
            ),
            (
                "API_KEYS".into(),
                format!("{} key(s) (hidden)", self.api_keys.len()),
            ),
            ("SANDBOX".into(), self.sandbox.to_string()),
            (
                "WEBHOOK_URL".into(),
                self.webhook_url
                    .as_ref()
                    .map(|u| mask_url(u.as_str()))
                    .unwrap_or_else(|| "not set: events stay in the outbox".into()),
            ),
            ("WEBHOOK_SECRET".into(), set(self.webhook_secret.is_some())),
        ];
        for built_in in BUILT_IN.iter() {
            let platform = self.platforms.get(built_in.slug);
            let creds = platform.and_then(|p| p.credentials.as_ref());
            rows.push((
                built_in.client_id_var.into(),
                creds
                    .map(|c| c.client_id.clone())
                    .unwrap_or_else(|| "not set".into()),
            ));
            rows.push((built_in.client_secret_var.into(), set(creds.is_some())));
        }
        for provider in &self.generic_providers {
            rows.push((
                format!("{}_CLIENT_ID", provider.id.env_prefix()),
                provider
                    .platform
                    .credentials
                    .as_ref()
                    .map(|c| c.client_id.clone())
                    .unwrap_or_default(),
            ));
        }
        rows
    }
}

fn platform_overrides(
    vars: &Vars<'_>,
    prefix: &str,
    credentials: Option<ClientCredentials>,
) -> Result<PlatformSettings, ConfigError> {
    let scopes = vars
        .get(&format!("{prefix}_SCOPES"))
        .map(|_| vars.list(&format!("{prefix}_SCOPES")));
    Ok(PlatformSettings {
        credentials,
        authorize_url: vars.url(&format!("{prefix}_AUTHORIZE_URL"))?,
        token_url: vars.url(&format!("{prefix}_TOKEN_URL"))?,
        revoke_url: vars.url(&format!("{prefix}_REVOKE_URL"))?,
        userinfo_url: vars.url(&format!("{prefix}_USERINFO_URL"))?,
        scopes,
    })
}

/// The dashboard's and the perimeter's settings, read together.
struct DashboardVars {
    jwt_secret: Option<SecretString>,
    session: Duration,
    rate_limit_per_minute: u32,
    trust_proxy: bool,
}

fn dashboard_settings(vars: &Vars<'_>, production: bool) -> Result<DashboardVars, ConfigError> {
    // HS256 keys shorter than the hash's output weaken the signature (RFC 7518 §3.2).
    let jwt_secret = vars.secret("DASHBOARD_JWT_SECRET");
    match &jwt_secret {
        Some(secret) if secret.expose_secret().len() < 32 => {
            return Err(ConfigError::new(
                "DASHBOARD_JWT_SECRET",
                "must be at least 32 bytes (generate one with `growth-engine keygen`)",
            ))
        }
        None if production => {
            return Err(ConfigError::new(
                "DASHBOARD_JWT_SECRET",
                "is required in production: the main dashboard signs its links with it",
            ))
        }
        _ => {}
    }
    let session_minutes = match vars.get("DASHBOARD_SESSION_MINUTES") {
        None => 480,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|m| (1..=7 * 24 * 60).contains(m))
            .ok_or_else(|| {
                ConfigError::new(
                    "DASHBOARD_SESSION_MINUTES",
                    "must be a whole number of minutes from 1 to 10080 (a week)",
                )
            })?,
    };
    let rate_limit_per_minute = match vars.get("RATE_LIMIT_PER_MINUTE") {
        None => 60,
        Some(v) => v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ConfigError::new("RATE_LIMIT_PER_MINUTE", "must be a whole number above 0")
        })?,
    };
    Ok(DashboardVars {
        jwt_secret,
        session: Duration::from_secs(session_minutes * 60),
        rate_limit_per_minute,
        trust_proxy: vars.bool("TRUST_PROXY", false)?,
    })
}
