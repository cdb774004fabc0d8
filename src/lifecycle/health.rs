//! A connection's health, as the API and the page show it: one state, since when, until when the
//! merchant must reconnect, and the last check. Pure: the caller passes the row, the platform's
//! [`ReconnectRule`] and "now"; nothing here reads a clock, the store or a platform.
//!
//! This module owns the states and their priority, each platform rule's `reconnect_by`, which
//! expiry warning is owed, and the liveness probe's spread over its period. The probe and the sweep
//! that act on them live in `liveness.rs`.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Connection, ConnectionStatus};
use crate::platforms::ReconnectRule;

/// A long-lived token renewed by exchange is re-exchanged this long before it expires (`renewal.rs`); an exchange
/// that leaves less than this did not extend the token.
const EXCHANGE_AHEAD: i64 = 7;

/// Where a connection stands, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Works, and nothing needs the merchant.
    Healthy,
    /// Renewals have been failing (transiently) since `since`.
    RefreshFailing,
    /// Cannot be renewed automatically past `reconnect_by`, which is near.
    Expiring,
    /// Works, but some asked-for permissions were not granted.
    MissingScopes,
    /// EXPIRED, REVOKED or ERROR (or a flow that never finished): the merchant must reconnect.
    Dead,
}

/// A connection's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// The state (the worst that applies: `dead` > `refresh_failing` > `expiring` >
    /// `missing_scopes` > `healthy`).
    pub state: HealthState,
    /// Since when the state holds, when known.
    pub since: Option<DateTime<Utc>>,
    /// Until when the connection lasts without the merchant, when the platform's rules say
    /// (shown whatever the state).
    pub reconnect_by: Option<DateTime<Utc>>,
    /// The last time the token was found working (at connect, then by the liveness probe).
    pub last_checked_at: Option<DateTime<Utc>>,
    /// The last error, a short safe text.
    pub last_error: Option<String>,
}

/// Until when `connection` lasts without the merchant under its platform's `rule`.
pub fn reconnect_by(rule: ReconnectRule, connection: &Connection) -> Option<DateTime<Utc>> {
    match rule {
        ReconnectRule::RefreshTokenExpiry => connection.refresh_token_expires_at,
        // A grant whose refresh token reports a lifetime ends with it; one without a refresh token
        // ends when its access token does.
        ReconnectRule::GrantExpiry => connection
            .refresh_token_expires_at
            .or(connection.access_token_expires_at),
        ReconnectRule::ExchangedTokenExpiry => {
            // The long-lived token's expiry is stored as the renewal credential's expiry (merge.rs).
            let not_extended = connection.refresh_token_expires_at.filter(|end| {
                connection
                    .last_refreshed_at
                    .is_some_and(|exchanged| *end - exchanged <= Duration::days(EXCHANGE_AHEAD))
            });
            let data_access = connection
                .metadata
                .get("data_access_expires_at")
                .and_then(timestamp);
            match (not_extended, data_access) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
    }
}

/// A time as `debug_token` gives it (Unix seconds) or as RFC 3339 text.
fn timestamp(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    match value {
        serde_json::Value::Number(n) => n
            .as_i64()
            .filter(|s| *s > 0)
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// The health of `connection` at `now`; `warning_window` is the largest expiry-warning threshold
/// (from then on, a known `reconnect_by` makes it `expiring`).
pub fn assess(
    connection: &Connection,
    rule: ReconnectRule,
    now: DateTime<Utc>,
    warning_window: Duration,
) -> Health {
    let reconnect_by = reconnect_by(rule, connection);
    let stored_since = connection.health_since.or(Some(connection.created_at));
    let (state, since) = match connection.status {
        ConnectionStatus::Expired
        | ConnectionStatus::Revoked
        | ConnectionStatus::Error
        | ConnectionStatus::Pending => (
            HealthState::Dead,
            connection.health_since.or(Some(connection.updated_at)),
        ),
        ConnectionStatus::Connected if connection.refresh_failures > 0 => (
            HealthState::RefreshFailing,
            connection.failing_since.or(connection.health_since),
        ),
        ConnectionStatus::Connected
            if reconnect_by.is_some_and(|by| now >= by - warning_window) =>
        {
            (
                HealthState::Expiring,
                reconnect_by.map(|by| by - warning_window),
            )
        }
        ConnectionStatus::Connected if !connection.missing_scopes.is_empty() => {
            (HealthState::MissingScopes, stored_since)
        }
        ConnectionStatus::Connected => (HealthState::Healthy, stored_since),
    };
    Health {
        state,
        since,
        reconnect_by,
        last_checked_at: connection.last_checked_at,
        last_error: connection.last_error.clone(),
    }
}

/// The expiry warning owed at `now` for an episode ending at `reconnect_by`, in days, given the
/// `thresholds` (days before `reconnect_by`) and what was sent already: the smallest threshold
/// crossed, unless this episode was warned of it (or of a smaller one) already. Several thresholds
/// crossed at once give one warning, the smallest. Nothing once `reconnect_by` has passed.
pub fn expiry_warning(
    reconnect_by: DateTime<Utc>,
    thresholds: &[u32],
    now: DateTime<Utc>,
    warned_for: Option<DateTime<Utc>>,
    warned_days: Option<i32>,
) -> Option<u32> {
    if now >= reconnect_by {
        return None;
    }
    let smallest = thresholds
        .iter()
        .copied()
        .filter(|days| now >= reconnect_by - Duration::days(i64::from(*days)))
        .min()?;
    let already = warned_for == Some(reconnect_by)
        && warned_days.is_some_and(|sent| i64::from(sent) <= i64::from(smallest));
    (!already).then_some(smallest)
}

/// How far a `reconnect_by` may move and still be the same episode: platforms report lifetimes as
/// seconds remaining (TikTok's `refresh_expires_in`), so each refresh recomputes the same end a
/// moment apart; a reconnect or a real extension moves it by days.
const EPISODE_TOLERANCE: Duration = Duration::hours(1);

/// The `reconnect_by` of the episode a warning belongs to: the one already warned of when `now_by`
/// is the same end give or take [`EPISODE_TOLERANCE`], else `now_by` (a new episode).
pub fn episode_end(now_by: DateTime<Utc>, warned_for: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match warned_for {
        Some(warned) if (now_by - warned).abs() <= EPISODE_TOLERANCE => warned,
        _ => now_by,
    }
}

/// Where in the probe's period a connection's first check falls: a fixed offset in
/// `[0, interval)` derived from its id, so that connections made together are not all checked
/// together.
pub fn first_check_offset(id: Uuid, interval: Duration) -> Duration {
    let seconds = u128::try_from(interval.num_seconds().max(1)).unwrap_or(1);
    Duration::seconds(i64::try_from(id.as_u128() % seconds).unwrap_or(0))
}

/// The health settings: the liveness probe's period, the expiry warnings' thresholds and how long
/// refreshes fail before an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// `LIVENESS_CHECK_INTERVAL_SECONDS`: each connection's token is checked once per period.
    pub check_interval: StdDuration,
    /// `EXPIRY_WARNING_DAYS`: `connection.expiring` this many days before `reconnect_by`, largest
    /// first.
    pub warning_days: Vec<u32>,
    /// `REFRESH_FAILING_ALERT_SECONDS`: `connection.refresh_failing` once failures last this long.
    pub failing_alert: StdDuration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            check_interval: StdDuration::from_secs(86_400),
            warning_days: vec![7, 1],
            failing_alert: StdDuration::from_secs(3600),
        }
    }
}

impl HealthSettings {
    /// The largest warning threshold: from then on, a known `reconnect_by` makes a connection
    /// `expiring`.
    pub fn warning_window(&self) -> Duration {
        Duration::days(i64::from(
            self.warning_days.iter().copied().max().unwrap_or(0),
        ))
    }

    /// The probe's period (a day when it does not fit).
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_std(self.check_interval).unwrap_or(Duration::days(1))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::domain::{PlatformId, StoreId, UserId};

    fn clock() -> ManualClock {
        ManualClock::new(
            DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn connection(now: DateTime<Utc>) -> Connection {
        Connection {
            id: Uuid::now_v7(),
            store_id: StoreId::parse("store").unwrap(),
            user_id: UserId::parse("user").unwrap(),
            platform: PlatformId::parse("tiktok").unwrap(),
            status: ConnectionStatus::Connected,
            account_id: None,
            account_name: None,
            account_picture: None,
            sealed_tokens: None,
            key_id: None,
            metadata: json!({}),
            granted_scopes: vec!["a".into()],
            missing_scopes: Vec::new(),
            access_token_expires_at: Some(now + Duration::hours(2)),
            refresh_token_expires_at: Some(now + Duration::days(365)),
            last_refreshed_at: None,
            next_refresh_at: None,
            refresh_failures: 0,
            last_error: None,
            version: 1,
            created_at: now,
            updated_at: now,
            failing_since: None,
            health_since: Some(now),
            last_checked_at: Some(now),
            next_check_at: None,
            expiry_warned_for: None,
            expiry_warned_days: None,
            failing_alerted_at: None,
        }
    }

    const WEEK: i64 = 7;

    fn assess_at(c: &Connection, now: DateTime<Utc>) -> Health {
        assess(
            c,
            ReconnectRule::RefreshTokenExpiry,
            now,
            Duration::days(WEEK),
        )
    }

    #[test]
    fn each_state_with_its_since_and_the_priority_between_them() {
        let clock = clock();
        let start = clock.now();
        let mut c = connection(start);
        let health = assess_at(&c, start);
        assert_eq!(health.state, HealthState::Healthy);
        assert_eq!(health.since, Some(start));
        assert_eq!(health.reconnect_by, Some(start + Duration::days(365)));

        c.missing_scopes = vec!["video.publish".into()];
        assert_eq!(assess_at(&c, start).state, HealthState::MissingScopes);

        // A week before the refresh token runs out: expiring beats missing scopes.
        clock.advance(Duration::days(358) + Duration::seconds(1));
        let health = assess_at(&c, clock.now());
        assert_eq!(health.state, HealthState::Expiring);
        assert_eq!(health.since, Some(start + Duration::days(358)));

        // Failing refreshes beat expiring, with the episode's start.
        let failing = clock.now() - Duration::hours(2);
        c.refresh_failures = 3;
        c.failing_since = Some(failing);
        c.last_error = Some("tiktok is unavailable: HTTP 503".into());
        let health = assess_at(&c, clock.now());
        assert_eq!(health.state, HealthState::RefreshFailing);
        assert_eq!(health.since, Some(failing));
        assert_eq!(
            health.last_error.as_deref(),
            Some("tiktok is unavailable: HTTP 503")
        );

        // Dead beats everything; reconnect_by is still shown.
        for status in [
            ConnectionStatus::Revoked,
            ConnectionStatus::Expired,
            ConnectionStatus::Error,
        ] {
            c.status = status;
            c.health_since = Some(clock.now());
            let health = assess_at(&c, clock.now());
            assert_eq!(health.state, HealthState::Dead);
            assert_eq!(health.since, Some(clock.now()));
            assert_eq!(health.reconnect_by, Some(start + Duration::days(365)));
        }
    }

    #[test]
    fn reconnect_by_is_unknown_where_the_platform_reports_no_lifetime() {
        let now = clock().now();
        let mut c = connection(now);
        c.refresh_token_expires_at = None;
        let health = assess_at(&c, now + Duration::days(3000));
        assert_eq!(health.reconnect_by, None);
        assert_eq!(health.state, HealthState::Healthy);
    }

    #[test]
    fn meta_has_a_reconnect_by_once_an_exchange_no_longer_extends_the_token() {
        let now = clock().now();
        let mut c = connection(now);
        c.platform = PlatformId::parse("meta").unwrap();
        let rule = ReconnectRule::ExchangedTokenExpiry;
        // Connected: a fresh 60-day token, never exchanged yet.
        c.refresh_token_expires_at = Some(now + Duration::days(60));
        assert_eq!(reconnect_by(rule, &c), None);
        // Exchanged 7 days before the expiry, and Meta gave a new 60-day token: still unknown.
        c.last_refreshed_at = Some(now + Duration::days(53));
        c.refresh_token_expires_at = Some(now + Duration::days(113));
        assert_eq!(reconnect_by(rule, &c), None);
        // The next exchange left the expiry where it was: that is the end.
        c.last_refreshed_at = Some(now + Duration::days(106));
        assert_eq!(reconnect_by(rule, &c), Some(now + Duration::days(113)));
        // A recorded data-access expiry bounds it, whichever comes first.
        let data_access = now + Duration::days(90);
        c.metadata = json!({ "data_access_expires_at": data_access.timestamp() });
        assert_eq!(reconnect_by(rule, &c), Some(data_access));
    }

    #[test]
    fn one_warning_per_threshold_and_episode_and_only_the_smallest_when_several_are_crossed() {
        let now = clock().now();
        let by = now + Duration::days(10);
        let thresholds = [7, 1];
        assert_eq!(expiry_warning(by, &thresholds, now, None, None), None);
        let week = by - Duration::days(7);
        assert_eq!(expiry_warning(by, &thresholds, week, None, None), Some(7));
        assert_eq!(
            expiry_warning(by, &thresholds, week, Some(by), Some(7)),
            None
        );
        let day = by - Duration::days(1);
        assert_eq!(
            expiry_warning(by, &thresholds, day, Some(by), Some(7)),
            Some(1)
        );
        assert_eq!(
            expiry_warning(by, &thresholds, day, Some(by), Some(1)),
            None
        );
        // Both crossed at once (the sweep did not run for a week): the 1-day warning only.
        assert_eq!(expiry_warning(by, &thresholds, day, None, None), Some(1));
        // A new reconnect_by (reconnected) is a new episode.
        let later = by + Duration::days(365);
        assert_eq!(
            expiry_warning(
                later,
                &thresholds,
                later - Duration::days(7),
                Some(by),
                Some(1)
            ),
            Some(7)
        );
        assert_eq!(expiry_warning(by, &thresholds, by, None, None), None);
    }

    #[test]
    fn a_reconnect_by_recomputed_a_moment_apart_is_the_same_episode() {
        let warned = clock().now() + Duration::days(5);
        let drifted = warned + Duration::seconds(2);
        assert_eq!(episode_end(drifted, Some(warned)), warned);
        assert_eq!(
            expiry_warning(
                episode_end(drifted, Some(warned)),
                &[7, 1],
                clock().now(),
                Some(warned),
                Some(7)
            ),
            None,
            "no second 7-day warning for the same end"
        );
        let extended = warned + Duration::days(60);
        assert_eq!(episode_end(extended, Some(warned)), extended);
        assert_eq!(episode_end(drifted, None), drifted);
    }

    #[test]
    fn first_checks_are_spread_over_the_period_and_stable() {
        let interval = Duration::days(1);
        let offsets: Vec<Duration> = (0..200)
            .map(|_| first_check_offset(Uuid::now_v7(), interval))
            .collect();
        assert!(offsets
            .iter()
            .all(|o| *o >= Duration::zero() && *o < interval));
        let distinct: std::collections::BTreeSet<i64> =
            offsets.iter().map(Duration::num_seconds).collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        let id = Uuid::now_v7();
        assert_eq!(
            first_check_offset(id, interval),
            first_check_offset(id, interval)
        );
        // Spread: no hour of the day holds more than a fifth of 200 connections made together.
        let mut hours = [0_usize; 24];
        for o in &offsets {
            hours[usize::try_from(o.num_hours()).unwrap()] += 1;
        }
        assert!(hours.iter().all(|n| *n < 40), "{hours:?}");
    }
}
