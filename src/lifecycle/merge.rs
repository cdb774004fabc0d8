//! Merging a renewal's answer into the token set it renews, and the two ways a refresh rewrites a
//! connection row (new tokens, or parked with a status and a reason). Pure: no I/O, no clock.
//!
//! This module owns which old values survive a renewal (a refresh token the platform did not
//! rotate, scopes it did not report, the extra secrets) and the row fields derived from a token
//! set. It does not seal (the caller hands in the sealed text) nor write.

use chrono::{DateTime, Utc};

use crate::domain::{Connection, ConnectionStatus, TokenSet};
use crate::platforms::Renewal;
use crate::platforms::TokenGrant;

/// The token set after a renewal answered `grant`: the new access token, and from `old` whatever
/// the answer left out.
pub(crate) fn merge(old: TokenSet, grant: TokenGrant, renewal: Renewal) -> TokenSet {
    // Meta's exchanged token is its own renewal credential: its expiry bounds the grant.
    let new_refresh_expiry = match renewal {
        Renewal::ExchangeLiveToken => grant.tokens.expires_at,
        Renewal::RefreshToken => grant.tokens.refresh_expires_at,
    };
    TokenSet {
        access_token: grant.tokens.access_token,
        // A response without a refresh token keeps the stored one (Google never rotates).
        refresh_token: grant.tokens.refresh_token.or(old.refresh_token),
        token_type: grant.tokens.token_type,
        expires_at: grant.tokens.expires_at,
        issued_at: grant.tokens.issued_at,
        refresh_expires_at: new_refresh_expiry.or(old.refresh_expires_at),
        scopes: if grant.scopes_reported {
            grant.tokens.scopes
        } else {
            old.scopes
        },
        extra: old.extra,
    }
}

/// The sealed form of a token set, with the id of the key that sealed it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sealed {
    /// `v1.<key_id>.<data>`.
    pub text: String,
    /// The key's id.
    pub key_id: String,
}

impl Connection {
    /// The row holding freshly renewed `tokens` (already `sealed`): connected, failures cleared,
    /// next look at `next_refresh_at`, scopes recomputed against the platform's `wanted` scopes.
    pub(crate) fn with_tokens(
        self,
        tokens: &TokenSet,
        sealed: Sealed,
        wanted: &[String],
        next_refresh_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            sealed_tokens: Some(sealed.text),
            key_id: Some(sealed.key_id),
            granted_scopes: tokens.scopes.clone(),
            missing_scopes: wanted
                .iter()
                .filter(|s| !tokens.scopes.contains(s))
                .cloned()
                .collect(),
            access_token_expires_at: tokens.expires_at,
            refresh_token_expires_at: tokens.refresh_expires_at,
            last_refreshed_at: Some(now),
            next_refresh_at,
            refresh_failures: 0,
            last_error: None,
            // The failure episode (and its alert, cleared by the store) ends here.
            failing_since: None,
            failing_alerted_at: None,
            health_since: if self.failing_since.is_some()
                || self.status != ConnectionStatus::Connected
            {
                Some(now)
            } else {
                self.health_since
            },
            status: ConnectionStatus::Connected,
            updated_at: now,
            ..self
        }
    }

    /// The row after a failed renewal: `status`, the next look, one more failure and the reason.
    pub(crate) fn parked(
        self,
        status: ConnectionStatus,
        next_refresh_at: Option<DateTime<Utc>>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Self {
        // A transient failure starts (or continues) a failure episode; a final one ends it: the
        // connection is dead, which is its own state.
        let failing_since = if status == ConnectionStatus::Connected {
            self.failing_since.or(Some(now))
        } else {
            None
        };
        let changed =
            status != self.status || failing_since.is_some() != self.failing_since.is_some();
        Self {
            status,
            next_refresh_at,
            refresh_failures: self.refresh_failures + 1,
            last_error: Some(reason.to_owned()),
            failing_since,
            health_since: if changed {
                Some(now)
            } else {
                self.health_since
            },
            updated_at: now,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Duration;
    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::clock::Clock;
    use crate::lifecycle::renewal::tests::{start, tokens};

    fn grant(
        clock: &crate::clock::ManualClock,
        refresh: Option<&str>,
        scopes: Option<&[&str]>,
    ) -> TokenGrant {
        let now = clock.now();
        TokenGrant {
            tokens: TokenSet {
                access_token: SecretString::from("new-access"),
                refresh_token: refresh.map(SecretString::from),
                token_type: "Bearer".into(),
                expires_at: Some(now + Duration::hours(2)),
                issued_at: Some(now),
                refresh_expires_at: None,
                scopes: scopes
                    .unwrap_or_default()
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                extra: BTreeMap::new(),
            },
            scopes_reported: scopes.is_some(),
            account_hint: None,
        }
    }

    #[test]
    fn a_rotated_refresh_token_replaces_the_old_one_and_a_missing_one_keeps_it() {
        let clock = start();
        let mut old = tokens(&clock, Some(3600), Some("old-refresh"));
        old.extra
            .insert("page:1".into(), SecretString::from("page-token"));
        clock.advance(Duration::minutes(55));
        let rotated = merge(
            old.clone(),
            grant(&clock, Some("new-refresh"), None),
            Renewal::RefreshToken,
        );
        assert_eq!(rotated.access_token.expose_secret(), "new-access");
        assert_eq!(
            rotated
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("new-refresh".into())
        );
        assert_eq!(
            rotated.scopes,
            vec!["a".to_owned()],
            "unreported scopes stay"
        );
        assert!(rotated.extra.contains_key("page:1"));
        let kept = merge(
            old,
            grant(&clock, None, Some(&["a", "b"])),
            Renewal::RefreshToken,
        );
        assert_eq!(
            kept.refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("old-refresh".into())
        );
        assert_eq!(kept.scopes, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(kept.expires_at, Some(clock.now() + Duration::hours(2)));
    }

    fn row(clock: &crate::clock::ManualClock) -> Connection {
        let now = clock.now();
        Connection {
            id: uuid::Uuid::now_v7(),
            store_id: crate::domain::StoreId::parse("s").unwrap(),
            user_id: crate::domain::UserId::parse("u").unwrap(),
            platform: crate::domain::PlatformId::parse("tiktok").unwrap(),
            status: ConnectionStatus::Connected,
            account_id: Some("acct".into()),
            account_name: None,
            account_picture: None,
            sealed_tokens: Some("v1.old.x".into()),
            key_id: Some("old".into()),
            metadata: serde_json::json!({}),
            granted_scopes: vec!["a".into()],
            missing_scopes: vec![],
            access_token_expires_at: Some(now),
            refresh_token_expires_at: None,
            last_refreshed_at: None,
            next_refresh_at: Some(now),
            refresh_failures: 3,
            last_error: Some("HTTP 503".into()),
            version: 7,
            created_at: now,
            updated_at: now,
            failing_since: Some(now - Duration::hours(2)),
            health_since: Some(now - Duration::hours(2)),
            last_checked_at: None,
            next_check_at: None,
            expiry_warned_for: None,
            expiry_warned_days: None,
            failing_alerted_at: Some(now - Duration::hours(1)),
        }
    }

    #[test]
    fn a_row_with_new_tokens_is_connected_with_failures_cleared_and_scopes_recomputed() {
        let clock = start();
        let before = row(&clock);
        clock.advance(Duration::minutes(1));
        let set = tokens(&clock, Some(7200), Some("r2"));
        let next = clock.now() + Duration::hours(1);
        let sealed = Sealed {
            text: "v1.new.y".into(),
            key_id: "new".into(),
        };
        let wanted = vec!["a".to_owned(), "b".to_owned()];
        let after = before
            .clone()
            .with_tokens(&set, sealed, &wanted, Some(next), clock.now());
        assert_eq!(after.sealed_tokens.as_deref(), Some("v1.new.y"));
        assert_eq!(after.key_id.as_deref(), Some("new"));
        assert_eq!(after.missing_scopes, vec!["b".to_owned()]);
        assert_eq!(after.refresh_failures, 0);
        assert_eq!(after.last_error, None);
        assert_eq!(after.last_refreshed_at, Some(clock.now()));
        assert_eq!(after.next_refresh_at, Some(next));
        assert_eq!(after.access_token_expires_at, set.expires_at);
        assert_eq!((after.id, after.version), (before.id, before.version));
        // The failure episode ends, and health changed now.
        assert_eq!(after.failing_since, None);
        assert_eq!(after.failing_alerted_at, None);
        assert_eq!(after.health_since, Some(clock.now()));
    }

    #[test]
    fn a_transient_failure_starts_an_episode_once_and_a_final_one_ends_it() {
        let clock = start();
        let mut healthy = row(&clock);
        healthy.refresh_failures = 0;
        healthy.failing_since = None;
        let first = healthy.parked(ConnectionStatus::Connected, None, "HTTP 503", clock.now());
        assert_eq!(first.failing_since, Some(clock.now()));
        assert_eq!(first.health_since, Some(clock.now()));
        let started = clock.now();
        clock.advance(Duration::minutes(10));
        let second = first.parked(ConnectionStatus::Connected, None, "HTTP 503", clock.now());
        assert_eq!(
            second.failing_since,
            Some(started),
            "the episode began at the first failure"
        );
        assert_eq!(second.health_since, Some(started));
        let dead = second.parked(ConnectionStatus::Revoked, None, "revoked", clock.now());
        assert_eq!(dead.failing_since, None);
        assert_eq!(dead.health_since, Some(clock.now()));
    }

    #[test]
    fn a_parked_row_keeps_its_tokens_and_counts_one_more_failure() {
        let clock = start();
        let before = row(&clock);
        let after = before
            .clone()
            .parked(ConnectionStatus::Revoked, None, "revoked", clock.now());
        assert_eq!(after.status, ConnectionStatus::Revoked);
        assert_eq!(after.refresh_failures, 4);
        assert_eq!(after.last_error.as_deref(), Some("revoked"));
        assert_eq!(after.next_refresh_at, None);
        assert_eq!(after.sealed_tokens, before.sealed_tokens);
    }

    #[test]
    fn meta_bounds_the_grant_by_the_exchanged_tokens_expiry() {
        let clock = start();
        let old = tokens(&clock, Some(3600), None);
        let merged = merge(old, grant(&clock, None, None), Renewal::ExchangeLiveToken);
        assert_eq!(merged.refresh_expires_at, merged.expires_at);
    }
}
