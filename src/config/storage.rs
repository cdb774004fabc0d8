//! Where state lives: the database (`DATABASE_URL`, PostgreSQL TLS through its `sslmode`), Redis
//! (`REDIS_URL`, TLS through `rediss://`; or the primary that Sentinel names, `REDIS_SENTINELS`),
//! and their limits.
//!
//! Both URLs may carry a password, so both are secrets (and may come from `<NAME>_FILE`); so are
//! the Sentinel passwords.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::error::ConfigError;
use super::sections::DatabaseSettings;
use super::vars::{Unit, Vars};
use crate::redis_conn::RedisSentinelSettings;

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
/// run. With PostgreSQL it also sets how long one call waits for an answer before it is given up
/// as unavailable: this plus the 3 s wait for a connection and a 2 s margin.
pub(super) fn statement_timeout(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("DATABASE_STATEMENT_TIMEOUT_SECONDS", 10, 1..=300)
}

/// `AUTO_MIGRATE` (default true).
pub(super) fn auto_migrate(vars: &Vars<'_>) -> Result<bool, ConfigError> {
    vars.bool("AUTO_MIGRATE", true)
}

/// `REDIS_URL`: `redis://` or `rediss://` (TLS); required in production (unless `REDIS_SENTINELS`
/// is set), where replicas must share flow state. `None` keeps flow state in process.
pub(super) fn redis_url(vars: &Vars<'_>) -> Result<Option<SecretString>, ConfigError> {
    let url = vars.secret("REDIS_URL")?;
    if vars.get("REDIS_SENTINELS").is_some() {
        // Checked by `redis_sentinel`, which names the conflict.
        return Ok(None);
    }
    let url = vars.required_in_production(
        "REDIS_URL",
        url,
        " (or REDIS_SENTINELS): flow state must be shared by replicas",
    )?;
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

/// The settings that only mean something with `REDIS_SENTINELS`.
const SENTINEL_COMPANIONS: [&str; 6] = [
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_USERNAME",
    "REDIS_SENTINEL_PASSWORD",
    "REDIS_SENTINEL_MASTER_USERNAME",
    "REDIS_SENTINEL_MASTER_PASSWORD",
    "REDIS_SENTINEL_TLS",
];

/// `REDIS_SENTINELS` (`host:port,...`) with `REDIS_SENTINEL_MASTER` (the primary's name), the
/// optional usernames and passwords (secrets) of the sentinels and of the primary, and
/// `REDIS_SENTINEL_TLS`. Instead of `REDIS_URL`, never with it; a companion without
/// `REDIS_SENTINELS` is refused rather than silently ignored (the operator meant Sentinel).
pub(super) fn redis_sentinel(
    vars: &Vars<'_>,
) -> Result<Option<RedisSentinelSettings>, ConfigError> {
    let Some(list) = vars.get("REDIS_SENTINELS") else {
        for name in SENTINEL_COMPANIONS {
            let from_file =
                name.ends_with("_PASSWORD") && vars.get(&format!("{name}_FILE")).is_some();
            let set = vars.get(name).is_some() || from_file;
            if set {
                return Err(ConfigError::new(
                    name,
                    "only applies with REDIS_SENTINELS (the sentinels' host:port list)",
                ));
            }
        }
        return Ok(None);
    };
    if vars.get("REDIS_URL").is_some() || vars.get("REDIS_URL_FILE").is_some() {
        return Err(ConfigError::new(
            "REDIS_SENTINELS",
            "cannot be set together with REDIS_URL: set only one (Sentinel names the primary)",
        ));
    }
    let sentinels = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_sentinel_address)
        .collect::<Result<Vec<_>, _>>()?;
    if sentinels.is_empty() {
        return Err(ConfigError::new(
            "REDIS_SENTINELS",
            "must list at least one sentinel as host:port",
        ));
    }
    let master = vars.get("REDIS_SENTINEL_MASTER").ok_or_else(|| {
        ConfigError::new(
            "REDIS_SENTINEL_MASTER",
            "is required with REDIS_SENTINELS: the name the sentinels know the primary by",
        )
    })?;
    if master.len() > 200 || master.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            "REDIS_SENTINEL_MASTER",
            "must be at most 200 characters without spaces",
        ));
    }
    let settings = RedisSentinelSettings {
        sentinels,
        master: master.to_owned(),
        sentinel_username: username(vars, "REDIS_SENTINEL_USERNAME")?,
        sentinel_password: vars.secret("REDIS_SENTINEL_PASSWORD")?,
        master_username: username(vars, "REDIS_SENTINEL_MASTER_USERNAME")?,
        master_password: vars.secret("REDIS_SENTINEL_MASTER_PASSWORD")?,
        tls: vars.bool("REDIS_SENTINEL_TLS", false)?,
    };
    if vars.production() {
        if settings.sentinels.len() == 1 {
            vars.warn(
                "REDIS_SENTINELS lists one sentinel: if it is down, a failover cannot be followed; list every sentinel".into(),
            );
        }
        let remote = settings
            .sentinels
            .iter()
            .any(|(host, _)| !is_local_host(host));
        if remote && !settings.tls {
            vars.warn(
                "REDIS_SENTINELS: without REDIS_SENTINEL_TLS=true, flow state and passwords cross the network in clear text".into(),
            );
        }
    }
    Ok(Some(settings))
}

/// An ACL user name: printable, no spaces (it is not secret).
fn username(vars: &Vars<'_>, name: &str) -> Result<Option<String>, ConfigError> {
    match vars.get(name) {
        None => Ok(None),
        Some(user) if user.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(ConfigError::new(name, "must not contain spaces"))
        }
        Some(user) => Ok(Some(user.to_owned())),
    }
}

/// `host:port` or `[v6]:port`; the entry is not secret, so the error quotes it.
fn parse_sentinel_address(entry: &str) -> Result<(String, u16), ConfigError> {
    let problem = |why: &str| {
        ConfigError::new(
            "REDIS_SENTINELS",
            format!("{entry:?} {why}: list the sentinels as host:port (usually port 26379), comma-separated"),
        )
    };
    if entry.contains("://") || entry.contains('@') {
        // Not quoted: it may hold a password.
        return Err(ConfigError::new(
            "REDIS_SENTINELS",
            "lists a URL: list the sentinels as host:port only (TLS is REDIS_SENTINEL_TLS, passwords REDIS_SENTINEL_PASSWORD and REDIS_SENTINEL_MASTER_PASSWORD)",
        ));
    }
    let (host, port) = match entry.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| problem("is not [address]:port"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| problem("has an invalid IPv6 address"))?;
            (host, port)
        }
        None => {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| problem("has no port"))?;
            // A host name or an IPv4 address; an IPv6 address goes in brackets, or its last
            // group would read as the port.
            let valid = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !valid {
                return Err(problem(
                    "has an invalid host (an IPv6 address goes in brackets: [::1]:26379)",
                ));
            }
            (host, port)
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| problem("has an invalid port"))?;
    Ok((host.to_owned(), port))
}

/// A loopback address or `localhost`.
fn is_local_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
