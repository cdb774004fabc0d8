//! Where state lives: the database (`DATABASE_URL`, PostgreSQL TLS through its `sslmode`), Redis
//! (`REDIS_URL`, TLS through `rediss://`), and their limits.
//!
//! Both URLs may carry a password, so both are secrets (and may come from `<NAME>_FILE`).

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::vars::{Unit, Vars};
use super::{ConfigError, DatabaseSettings};

/// The `sslmode` values PostgreSQL (and sqlx) understand.
const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// `DATABASE_URL`: `postgres://` (required in production) or `sqlite:` (development only; default
/// an SQLite file in the working directory).
pub(super) fn database(vars: &Vars<'_>) -> Result<DatabaseSettings, ConfigError> {
    let url = vars.secret("DATABASE_URL")?;
    let url = vars.required_in_production("DATABASE_URL", url, " (a postgres:// URL)")?;
    let Some(url) = url else {
        return Ok(DatabaseSettings::Sqlite(
            "sqlite://growth-engine.db?mode=rwc".into(),
        ));
    };
    let text = url.expose_secret();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        check_postgres(vars, text)?;
        Ok(DatabaseSettings::Postgres(url))
    } else if text.starts_with("sqlite:") && !vars.production() {
        Ok(DatabaseSettings::Sqlite(text.to_owned()))
    } else if text.starts_with("sqlite:") {
        Err(ConfigError::new(
            "DATABASE_URL",
            "must be PostgreSQL in production: SQLite cannot be shared by replicas",
        ))
    } else {
        Err(ConfigError::new(
            "DATABASE_URL",
            "must start with postgres://, postgresql:// or sqlite:",
        ))
    }
}

/// Checks a PostgreSQL URL without ever echoing it. sqlx honours its `sslmode` (`require` encrypts,
/// `verify-full` also checks the server's certificate and name; `sslrootcert` names a private CA).
/// In production, a remote host without a verified mode starts with a warning (not a refusal: a
/// private network may make clear text acceptable, which only the operator knows).
fn check_postgres(vars: &Vars<'_>, text: &str) -> Result<(), ConfigError> {
    let url = Url::parse(text)
        .map_err(|_| ConfigError::new("DATABASE_URL", "is not a valid postgres:// URL"))?;
    let mode = url
        .query_pairs()
        .find(|(k, _)| k == "sslmode" || k == "ssl-mode")
        .map(|(_, v)| v.to_ascii_lowercase());
    if let Some(mode) = &mode {
        if !SSL_MODES.contains(&mode.as_str()) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "has an unknown sslmode: use disable, allow, prefer, require, verify-ca or verify-full",
            ));
        }
    }
    if !vars.production() || is_local(&url) {
        return Ok(());
    }
    match mode.as_deref() {
        Some(mode @ ("disable" | "allow")) => vars.warn(format!(
            "DATABASE_URL: sslmode={mode} to a remote host sends tokens and the password in clear text; use sslmode=verify-full"
        )),
        // PostgreSQL's default: TLS when the server offers it, but the server is not verified and
        // a man in the middle who answers "no TLS" gets the connection in clear text.
        None | Some("prefer") => vars.warn(
            "DATABASE_URL: sslmode=prefer (the default when none is given) to a remote host does not verify the server and falls back to clear text when TLS is refused; use sslmode=verify-full".to_owned(),
        ),
        _ => {}
    }
    Ok(())
}

/// Loopback or a Unix socket (no host): nothing crosses a network.
fn is_local(url: &Url) -> bool {
    match url.host_str() {
        None | Some("") => true,
        Some(host) => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// `DATABASE_STATEMENT_TIMEOUT_SECONDS` (default 10, 1 to 300): the longest one SQL statement may
/// run.
pub(super) fn statement_timeout(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("DATABASE_STATEMENT_TIMEOUT_SECONDS", 10, 1..=300)
}

/// `AUTO_MIGRATE` (default true).
pub(super) fn auto_migrate(vars: &Vars<'_>) -> Result<bool, ConfigError> {
    vars.bool("AUTO_MIGRATE", true)
}

/// `REDIS_URL`: `redis://` or `rediss://` (TLS); required in production, where replicas must share
/// flow state. `None` keeps flow state in process.
pub(super) fn redis_url(vars: &Vars<'_>) -> Result<Option<SecretString>, ConfigError> {
    let url = vars.secret("REDIS_URL")?;
    let url =
        vars.required_in_production("REDIS_URL", url, ": flow state must be shared by replicas")?;
    if let Some(url) = &url {
        let parsed = Url::parse(url.expose_secret())
            .map_err(|_| ConfigError::new("REDIS_URL", "is not a valid redis:// URL"))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(ConfigError::new(
                "REDIS_URL",
                "must start with redis:// or rediss://",
            ));
        }
        if vars.production() && parsed.scheme() == "redis" && !is_local(&parsed) {
            vars.warn(
                "REDIS_URL: redis:// to a remote host sends its password and everything the service keeps there in clear text; use rediss://".to_owned(),
            );
        }
    }
    Ok(url)
}

/// `REDIS_KEY_PREFIX` (default `ge:`, at most 64 characters, no spaces).
pub(super) fn redis_key_prefix(vars: &Vars<'_>) -> Result<String, ConfigError> {
    let prefix = vars.get("REDIS_KEY_PREFIX").unwrap_or("ge:");
    if prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            "REDIS_KEY_PREFIX",
            "must be at most 64 characters without spaces",
        ));
    }
    Ok(prefix.to_owned())
}

/// `REDIS_TIMEOUT_MILLISECONDS` (default 500, 50 to 10000): the limit on one Redis command.
pub(super) fn redis_timeout(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.duration_in(
        "REDIS_TIMEOUT_MILLISECONDS",
        500,
        50..=10_000,
        Unit::Milliseconds,
    )
}
