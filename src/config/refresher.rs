//! The token lifecycle's timing: when a token counts as due, and the background refresher's pace.

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;

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
