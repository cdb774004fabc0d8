//! Lifecycle-event delivery: where events are posted, the key that signs them, and how long the
//! outbox keeps trying and keeping them.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::error::ConfigError;
use super::vars::{Unit, Vars};

/// `WEBHOOK_URL` (https in production: events name merchants' connections).
pub(super) fn url(vars: &Vars<'_>) -> Result<Option<Url>, ConfigError> {
    vars.https_url_in_production("WEBHOOK_URL")
}

/// `WEBHOOK_SECRET`: at least 16 characters; required with `WEBHOOK_URL`.
pub(super) fn secret(vars: &Vars<'_>, url_set: bool) -> Result<Option<SecretString>, ConfigError> {
    let secret = vars.secret("WEBHOOK_SECRET")?;
    if url_set && secret.is_none() {
        return Err(ConfigError::new(
            "WEBHOOK_SECRET",
            "is required when WEBHOOK_URL is set (receivers verify the signature with it)",
        ));
    }
    if secret
        .as_ref()
        .is_some_and(|s| s.expose_secret().len() < 16)
    {
        return Err(ConfigError::new(
            "WEBHOOK_SECRET",
            "must be at least 16 characters",
        ));
    }
    Ok(secret)
}

/// `WEBHOOK_MAX_ATTEMPTS` (default 12, 1 to 100): deliveries tried before an event is given up.
pub(super) fn max_attempts(vars: &Vars<'_>) -> Result<u32, ConfigError> {
    vars.number_in("WEBHOOK_MAX_ATTEMPTS", 12, 1..=100)
}

/// `WEBHOOK_RETENTION_DAYS` (default 7, 1 to 365): how long delivered or abandoned events are kept.
pub(super) fn retention(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.duration_in("WEBHOOK_RETENTION_DAYS", 7, 1..=365, Unit::Days)
}
