//! The audit trail's setting: how long its rows are kept.

use std::time::Duration;

use super::error::ConfigError;
use super::vars::{Unit, Vars};

/// `AUDIT_RETENTION_DAYS` (default 90, 1 to 3650): rows older than this are pruned.
pub(super) fn retention(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    vars.duration_in("AUDIT_RETENTION_DAYS", 90, 1..=3650, Unit::Days)
}
