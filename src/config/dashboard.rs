//! The connections page and the perimeter in front of it: where the browser lands, who may embed
//! the page, how its links are signed, how long its sessions last, and the per-client rate limit.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::error::ConfigError;
use super::vars::{parse_http_url, require_https_in_production, Unit, Vars};

/// `DASHBOARD_URL`: where callbacks send the browser (default `{API_URL}/dashboard/marketing`;
/// https in production).
pub(super) fn url(vars: &Vars<'_>, api_url: &Url) -> Result<Url, ConfigError> {
    match vars.https_url_in_production("DASHBOARD_URL")? {
        Some(url) => Ok(url),
        None => api_url
            .join("dashboard/marketing")
            .map_err(|e| ConfigError::new("API_URL", format!("cannot be joined ({e})"))),
    }
}

/// `ALLOWED_ORIGINS`: http(s) origins allowed by CORS and allowed to embed the page; https only in
/// production, where a page served over http could be altered on the way to frame the merchant's
/// connections page or read the API's answers.
pub(super) fn allowed_origins(vars: &Vars<'_>) -> Result<Vec<String>, ConfigError> {
    vars.list("ALLOWED_ORIGINS")
        .iter()
        .map(|origin| {
            let url = parse_http_url("ALLOWED_ORIGINS", origin)?;
            require_https_in_production(vars.production(), "ALLOWED_ORIGINS", &url)?;
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

/// `DASHBOARD_JWT_SECRET` (at least 32 bytes; required in production).
pub(super) fn jwt_secret(vars: &Vars<'_>) -> Result<Option<SecretString>, ConfigError> {
    let secret = vars.secret("DASHBOARD_JWT_SECRET")?;
    // HS256 keys shorter than the hash's output weaken the signature (RFC 7518 §3.2).
    if secret
        .as_ref()
        .is_some_and(|s| s.expose_secret().len() < 32)
    {
        return Err(ConfigError::new(
            "DASHBOARD_JWT_SECRET",
            "must be at least 32 bytes (generate one with `growth-engine keygen`)",
        ));
    }
    vars.required_in_production(
        "DASHBOARD_JWT_SECRET",
        secret,
        ": the main dashboard signs its links with it",
    )
}

/// `DASHBOARD_SESSION_MINUTES` (default 480, 1 to 10080: a week).
pub(super) fn session(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.duration_in(
        "DASHBOARD_SESSION_MINUTES",
        480,
        1..=7 * 24 * 60,
        Unit::Minutes,
    )
}

/// `RATE_LIMIT_PER_MINUTE` (default 60, 1 to 100000): flow requests per client IP per minute.
pub(super) fn rate_limit_per_minute(vars: &Vars<'_>) -> Result<u32, ConfigError> {
    vars.number_in("RATE_LIMIT_PER_MINUTE", 60, 1..=100_000)
}

/// `TRUST_PROXY` (default false).
pub(super) fn trust_proxy(vars: &Vars<'_>) -> Result<bool, ConfigError> {
    vars.bool("TRUST_PROXY", false)
}
