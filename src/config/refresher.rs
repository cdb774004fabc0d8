//! The token lifecycle's timing: when a token counts as due, the background refresher's pace, and
//! connection health (the liveness probe's period, expiry warnings, the refresh-failing alert).

use std::time::Duration;

use super::error::ConfigError;
use super::vars::Vars;

/// `TOKEN_REFRESH_WINDOW_SECONDS` (default 300, 0 to 86400): a token expiring within this is
/// refreshed before it is handed out.
pub(super) fn window(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("TOKEN_REFRESH_WINDOW_SECONDS", 300, 0..=24 * 3600)
}

/// `REFRESHER_ENABLED` (default true).
pub(super) fn enabled(vars: &Vars<'_>) -> Result<bool, ConfigError> {
    vars.bool("REFRESHER_ENABLED", true)
}

/// `REFRESHER_INTERVAL_SECONDS` (default 30, 1 to 3600). Zero would make the refresher's ticker
/// panic after start-up, so it is refused here.
pub(super) fn interval(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("REFRESHER_INTERVAL_SECONDS", 30, 1..=3600)
}

/// `REFRESHER_CONCURRENCY` (default 8, 1 to 256): platform calls the refresher makes at once.
pub(super) fn concurrency(vars: &Vars<'_>) -> Result<usize, ConfigError> {
    vars.number_in("REFRESHER_CONCURRENCY", 8, 1..=256)
}

/// `LIVENESS_CHECK_INTERVAL_SECONDS` (default 86400, 60 to 2592000): each connected token is checked
/// with the platform's identity call once per period (the task runs where the refresher runs:
/// `REFRESHER_ENABLED`).
pub(super) fn liveness_interval(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("LIVENESS_CHECK_INTERVAL_SECONDS", 86_400, 60..=30 * 86_400)
}

/// `EXPIRY_WARNING_DAYS` (default `7,1`; 1 to 10 distinct whole numbers from 1 to 365):
/// `connection.expiring` is sent this many days before a connection's `reconnect_by`. Largest first.
pub(super) fn expiry_warning_days(vars: &Vars<'_>) -> Result<Vec<u32>, ConfigError> {
    const NAME: &str = "EXPIRY_WARNING_DAYS";
    let listed = vars.list(NAME);
    if listed.is_empty() {
        return Ok(vec![7, 1]);
    }
    let invalid = || {
        ConfigError::new(
            NAME,
            "must be 1 to 10 distinct whole numbers of days from 1 to 365, comma-separated",
        )
    };
    let mut days = listed
        .iter()
        .map(|d| d.parse::<u32>().ok().filter(|d| (1..=365).contains(d)))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(invalid)?;
    days.sort_unstable_by(|a, b| b.cmp(a));
    let count = days.len();
    days.dedup();
    if days.len() != count || count > 10 {
        return Err(invalid());
    }
    Ok(days)
}

/// `REFRESH_FAILING_ALERT_SECONDS` (default 3600, 60 to 604800): `connection.refresh_failing` is
/// sent once a connection's refreshes have failed for this long.
pub(super) fn refresh_failing_alert(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.seconds_in("REFRESH_FAILING_ALERT_SECONDS", 3600, 60..=7 * 86_400)
}
