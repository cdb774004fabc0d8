//! The service's own settings: which environment it runs in, where it listens and how it is
//! reached, its HTTP limits and its shutdown grace.
//!
//! It owns the safe-default rule for `HOST`: in development, unless `API_KEYS` closes the API (every
//! key at least 16 characters, none the public development key `dev-api-key`), the service listens
//! on loopback only.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::error::ConfigError;
use super::keys::close_the_api;
use super::sections::Environment;
use super::vars::{parse_http_url, Vars};

/// `ENVIRONMENT`: `development` (default) or `production`.
pub(super) fn environment(vars: &Vars<'_>) -> Result<Environment, ConfigError> {
    match vars
        .get("ENVIRONMENT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("development") | Some("dev") => Ok(Environment::Development),
        Some("production") | Some("prod") => Ok(Environment::Production),
        Some(_) => Err(ConfigError::new(
            "ENVIRONMENT",
            "must be development or production",
        )),
    }
}

/// `PORT` (default 8003; 0 picks a free port).
pub(super) fn port(vars: &Vars<'_>) -> Result<u16, ConfigError> {
    vars.number_in("PORT", 8003, 0..=u16::MAX)
}

/// `HOST`: an IP address or a host name. The default is every interface (`0.0.0.0`) where the API
/// is closed by the operator's keys, and loopback (`127.0.0.1`) in development where it is not:
/// without `API_KEYS` (the API accepts `dev-api-key`, which anyone who has read the README knows),
/// or with a key that is short or is that public one. (Production refuses such keys outright.)
pub(super) fn host(vars: &Vars<'_>, api_keys: &[SecretString]) -> Result<String, ConfigError> {
    let open_api = !vars.production() && !close_the_api(api_keys);
    let Some(host) = vars.get("HOST") else {
        return Ok(if open_api { "127.0.0.1" } else { "0.0.0.0" }.to_owned());
    };
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    let loopback = match &ip {
        Ok(ip) => ip.is_loopback(),
        Err(_) if is_host_name(host) => host.eq_ignore_ascii_case("localhost"),
        Err(_) => {
            return Err(ConfigError::new(
                "HOST",
                "must be an IP address or a host name",
            ))
        }
    };
    if open_api && !loopback {
        return Err(ConfigError::new(
            "HOST",
            "a non-loopback address needs API_KEYS of at least 16 characters each, none of them the public development key dev-api-key",
        ));
    }
    Ok(ip
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| host.to_owned()))
}

fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `API_URL`: the public base URL (default `http://localhost:{PORT}`; required and https in
/// production, since callbacks carry authorization codes).
pub(super) fn api_url(vars: &Vars<'_>, port: u16) -> Result<Url, ConfigError> {
    let url = vars.https_url_in_production("API_URL")?;
    match vars.required_in_production("API_URL", url, "")? {
        Some(url) => Ok(url),
        None => parse_http_url("API_URL", &format!("http://localhost:{port}")),
    }
}

/// `HTTP_REQUEST_TIMEOUT_SECONDS` (default 30, 1 to 300): the limit on one request to the service.
pub(super) fn request_timeout(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("HTTP_REQUEST_TIMEOUT_SECONDS", 30, 1..=300)
}

/// `HTTP_HEADER_READ_TIMEOUT_SECONDS` (default 10, 1 to 120): how long a client may take to send
/// its request headers (a slow-loris guard).
pub(super) fn header_read_timeout(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("HTTP_HEADER_READ_TIMEOUT_SECONDS", 10, 1..=120)
}

/// `SHUTDOWN_GRACE_SECONDS` (default 30, at most 300): how long a stopping replica lets requests
/// and refreshes in flight finish. At least `HTTP_TIMEOUT_SECONDS` + 5, so that a platform call
/// already made can have its answer stored: a refresh cut off after the platform rotated the
/// refresh token would lose the connection.
pub(super) fn shutdown_grace(
    vars: &Vars<'_>,
    platform_timeout: Duration,
) -> Result<Duration, ConfigError> {
    let least = platform_timeout.as_secs() + 5;
    let grace = vars.seconds_in("SHUTDOWN_GRACE_SECONDS", 30, 0..=300)?;
    if grace.as_secs() < least {
        return Err(ConfigError::new(
            "SHUTDOWN_GRACE_SECONDS",
            format!("must be at least HTTP_TIMEOUT_SECONDS + 5 ({least} seconds) and at most 300"),
        ));
    }
    Ok(grace)
}

/// `LOG_FORMAT` (`json`, `text` or `pretty`) and `RUST_LOG` (a tracing filter): read by the
/// binary's logging, checked here so that a typo stops start-up like any other rather than falling
/// back to a default filter unnoticed.
pub(super) fn check_logging(vars: &Vars<'_>) -> Result<(), ConfigError> {
    match vars
        .get("LOG_FORMAT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("json" | "text" | "pretty") => {}
        Some(_) => {
            return Err(ConfigError::new(
                "LOG_FORMAT",
                "must be json, text or pretty",
            ))
        }
    }
    if let Some(filter) = vars.get("RUST_LOG") {
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|_| {
            ConfigError::new(
                "RUST_LOG",
                "is not a valid filter (e.g. info, or warn,growth_engine=debug)",
            )
        })?;
    }
    Ok(())
}
