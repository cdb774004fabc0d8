//! What a failed refresh means for the connection: a named [`RefreshFailure`] and the status, event,
//! metric label and next refresh time it implies. Pure: the caller passes "now" and the failure
//! count, and writes the row.
//!
//! This module owns the classification of errors (dead grant, outage, unknown key, unreadable
//! row) and the back-off; it does not touch the store or the platforms.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::domain::ConnectionStatus;
use crate::error::OAuthError;
use crate::platforms::error::PlatformError;
use crate::vault::VaultError;

/// The longest cool-down after repeated transient refresh failures.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

/// The `last_error` older releases wrote when parking a row they could not open, whatever the
/// reason. ERROR rows carrying it are revived once their key is known (see `heal_unknown_keys`).
pub(crate) const LEGACY_UNREADABLE: &str =
    "the stored tokens are unreadable (sealed with a key that is no longer configured?)";

/// Why a refresh did not produce new tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    /// The platform says the grant was revoked.
    Revoked,
    /// The grant expired (or cannot be renewed at all).
    Expired,
    /// The platform or the network failed: try again at `retry_at`.
    Transient {
        /// When to try again.
        retry_at: DateTime<Utc>,
    },
    /// The row is sealed with a key this replica does not hold (a key rollout in progress): try
    /// again at `retry_at`, never park it for good.
    KeyUnavailable {
        /// The key's public id.
        key_id: String,
        /// When to look again.
        retry_at: DateTime<Utc>,
    },
    /// The sealed tokens fail authentication or are malformed: nothing can renew them.
    Unreadable,
}

impl RefreshFailure {
    /// Classifies `error`; `failures` counts this failure too.
    pub(crate) fn classify(error: &OAuthError, failures: i32, now: DateTime<Utc>) -> Self {
        match error {
            OAuthError::Platform(PlatformError::Rejected {
                permanent: true,
                revoked: true,
                ..
            }) => Self::Revoked,
            OAuthError::Platform(PlatformError::Rejected {
                permanent: true, ..
            }) => Self::Expired,
            OAuthError::Vault(VaultError::UnknownKey(key_id)) => Self::KeyUnavailable {
                key_id: key_id.clone(),
                // Short: the key may arrive with the next deploy, and reads work as soon as it does.
                retry_at: now + backoff(failures, None).min(Duration::minutes(15)),
            },
            OAuthError::Vault(_) => Self::Unreadable,
            OAuthError::Platform(PlatformError::Unavailable { retry_after, .. }) => {
                Self::Transient {
                    retry_at: now + backoff(failures, *retry_after),
                }
            }
            _ => Self::Transient {
                retry_at: now + backoff(failures, None),
            },
        }
    }

    /// The status the connection takes.
    pub fn status(&self) -> ConnectionStatus {
        match self {
            Self::Revoked => ConnectionStatus::Revoked,
            Self::Expired => ConnectionStatus::Expired,
            Self::Transient { .. } | Self::KeyUnavailable { .. } => ConnectionStatus::Connected,
            Self::Unreadable => ConnectionStatus::Error,
        }
    }

    /// The webhook event it records.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Revoked => "connection.revoked",
            Self::Expired => "connection.expired",
            _ => "connection.refresh_failed",
        }
    }

    /// When the refresher looks again (`None`: never).
    pub fn next_refresh_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Transient { retry_at } | Self::KeyUnavailable { retry_at, .. } => Some(*retry_at),
            _ => None,
        }
    }

    /// The `outcome` label of the refresh metric.
    pub(crate) fn metric(&self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Transient { .. } => "transient_failure",
            Self::KeyUnavailable { .. } => "unknown_key",
            Self::Unreadable => "error",
        }
    }

    /// The row's `last_error` when the failure is ours rather than the platform's.
    pub(crate) fn own_reason(&self) -> Option<String> {
        match self {
            Self::KeyUnavailable { key_id, .. } => Some(format!(
                "sealed with key {key_id}, which this replica does not hold yet (key rollout in progress?)"
            )),
            Self::Unreadable => Some(
                "the stored tokens failed authentication or are malformed; reconnect required"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Exponential back-off with jitter after `failures` transient failures, at least the platform's
/// `Retry-After`, at most six hours.
pub fn backoff(failures: i32, retry_after: Option<StdDuration>) -> Duration {
    let base = 30_i64.saturating_mul(1_i64 << failures.clamp(0, 16));
    let capped = base.min(MAX_BACKOFF_SECS);
    let jitter = rand::thread_rng().gen_range(0..=capped / 4 + 1);
    // A platform's Retry-After is honoured, but never beyond the cap: it is untrusted input.
    let floor = retry_after.map_or(0, |d| {
        i64::try_from(d.as_secs()).map_or(MAX_BACKOFF_SECS, |s| s.min(MAX_BACKOFF_SECS))
    });
    Duration::seconds(
        (capped + jitter)
            .max(floor)
            .min(MAX_BACKOFF_SECS + MAX_BACKOFF_SECS / 4 + 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::domain::PlatformId;
    use crate::lifecycle::renewal::tests::start;

    fn rejected(permanent: bool, revoked: bool) -> OAuthError {
        OAuthError::Platform(PlatformError::Rejected {
            platform: PlatformId::parse("twitter").unwrap(),
            code: "invalid_grant".into(),
            description: "x".into(),
            permanent,
            revoked,
        })
    }

    #[test]
    fn dead_grants_end_the_connection_with_their_event() {
        let now = start().now();
        let revoked = RefreshFailure::classify(&rejected(true, true), 1, now);
        assert_eq!(revoked, RefreshFailure::Revoked);
        assert_eq!(revoked.status(), ConnectionStatus::Revoked);
        assert_eq!(revoked.event_type(), "connection.revoked");
        assert_eq!(revoked.next_refresh_at(), None);
        let expired = RefreshFailure::classify(&rejected(true, false), 1, now);
        assert_eq!(expired.status(), ConnectionStatus::Expired);
        assert_eq!(expired.metric(), "expired");
    }

    #[test]
    fn outages_back_off_exponentially_and_honour_a_bounded_retry_after() {
        let clock = start();
        let now = clock.now();
        let outage = OAuthError::Platform(PlatformError::Unavailable {
            platform: PlatformId::parse("tiktok").unwrap(),
            detail: "503".into(),
            retry_after: Some(StdDuration::from_secs(900)),
        });
        let failure = RefreshFailure::classify(&outage, 1, now);
        assert_eq!(failure.status(), ConnectionStatus::Connected);
        assert_eq!(failure.event_type(), "connection.refresh_failed");
        let next = failure.next_refresh_at().unwrap();
        assert!(
            next >= now + Duration::seconds(900),
            "Retry-After is a floor"
        );
        let later = RefreshFailure::classify(&rejected(false, false), 5, now);
        let at = later.next_refresh_at().unwrap();
        assert!(at >= now + Duration::seconds(960) && at <= now + Duration::seconds(1201));
        let huge = backoff(30, Some(StdDuration::from_secs(u64::MAX)));
        assert!(huge <= Duration::seconds(MAX_BACKOFF_SECS + MAX_BACKOFF_SECS / 4 + 1));
    }

    #[test]
    fn an_unknown_key_is_a_transient_condition_but_a_tampered_row_is_final() {
        let now = start().now();
        let unknown = RefreshFailure::classify(
            &OAuthError::Vault(VaultError::UnknownKey("abcd".into())),
            1,
            now,
        );
        assert!(
            matches!(&unknown, RefreshFailure::KeyUnavailable { key_id, .. } if key_id == "abcd")
        );
        assert_eq!(unknown.status(), ConnectionStatus::Connected);
        assert!(unknown.next_refresh_at().is_some_and(|at| at > now));
        assert_eq!(unknown.metric(), "unknown_key");
        assert!(unknown.own_reason().unwrap().contains("abcd"));
        let tampered = RefreshFailure::classify(&OAuthError::Vault(VaultError::Tampered), 1, now);
        assert_eq!(tampered.status(), ConnectionStatus::Error);
        assert_eq!(tampered.next_refresh_at(), None);
        assert_ne!(tampered.own_reason().as_deref(), Some(LEGACY_UNREADABLE));
    }
}
