//! Which renewal a connection needs, and when: pure functions of the token set, the platform's
//! renewal kind, the refresh window and "now". No I/O; the refresh (`refresh.rs`) acts on the answer.
//!
//! This module owns the refresh margin, the "is it due" test, the refresher's schedule and the
//! choice between a refresh-token grant, Meta's exchange, or a permanent failure known without a
//! platform call. It does not call platforms or write rows.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use crate::domain::{PlatformId, TokenSet};
use crate::error::OAuthError;
use crate::platforms::error::PlatformError;
use crate::platforms::Renewal;

/// Long-lived tokens renewed by exchange are renewed this long before they expire.
const EXCHANGE_RENEW_BEFORE: i64 = 7 * 24 * 3600;

/// The renewal to perform.
#[derive(Debug)]
pub(crate) enum Plan<'a> {
    /// `grant_type=refresh_token` with this refresh token.
    RefreshToken(&'a SecretString),
    /// The platform's exchange of this still-valid long-lived token.
    ExchangeLiveToken(&'a SecretString),
    /// Nothing can renew the grant: the connection is dead without asking the platform.
    Impossible(Impossible),
}

/// A renewal that cannot be attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impossible {
    /// The platform issued no refresh token.
    NoRefreshToken,
    /// The long-lived token already expired: an expired token cannot be exchanged.
    TokenExpired,
}

impl Impossible {
    /// The permanent platform rejection this amounts to (what the row's `last_error` says).
    pub(crate) fn into_error(self, platform: &PlatformId) -> OAuthError {
        let (code, description) = match self {
            Self::NoRefreshToken => (
                "no_refresh_token",
                "the platform issued no refresh token; reconnect to renew",
            ),
            Self::TokenExpired => (
                "token_expired",
                "the long-lived token expired before it could be renewed",
            ),
        };
        OAuthError::Platform(PlatformError::Rejected {
            platform: platform.clone(),
            code: code.into(),
            description: description.into(),
            permanent: true,
            revoked: false,
        })
    }
}

/// Chooses the renewal of `tokens` for a platform renewing by `renewal`, at `now`.
pub(crate) fn choose(renewal: Renewal, tokens: &TokenSet, now: DateTime<Utc>) -> Plan<'_> {
    match renewal {
        Renewal::RefreshToken => match &tokens.refresh_token {
            Some(refresh_token) => Plan::RefreshToken(refresh_token),
            None => Plan::Impossible(Impossible::NoRefreshToken),
        },
        Renewal::ExchangeLiveToken if tokens.expires_at.is_some_and(|at| at <= now) => {
            Plan::Impossible(Impossible::TokenExpired)
        }
        Renewal::ExchangeLiveToken => Plan::ExchangeLiveToken(&tokens.access_token),
    }
}

/// How long before expiry a token counts as due: the refresh window, but at most half the token's
/// lifetime, so that a platform issuing tokens shorter-lived than the window does not see a refresh
/// on every request.
pub(crate) fn refresh_margin(window: Duration, tokens: &TokenSet) -> Duration {
    match (tokens.issued_at, tokens.expires_at) {
        (Some(issued), Some(expires)) if expires > issued => window.min((expires - issued) / 2),
        _ => window,
    }
}

/// Whether the access token should be refreshed before it is handed out.
pub(crate) fn needs_refresh(window: Duration, tokens: &TokenSet, now: DateTime<Utc>) -> bool {
    tokens
        .expires_at
        .is_some_and(|at| at <= now + refresh_margin(window, tokens))
}

/// When the refresher should look at a connection next (`None`: never, nothing can renew it).
pub(crate) fn schedule(
    renewal: Renewal,
    window: Duration,
    tokens: &TokenSet,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let expires_at = tokens.expires_at?;
    match renewal {
        // The platform does not promise that re-exchanging extends the token: never plan a renewal sooner
        // than half a day ahead, or a token with less than a week left would loop.
        Renewal::ExchangeLiveToken => Some(
            (expires_at - Duration::seconds(EXCHANGE_RENEW_BEFORE))
                .max(now + Duration::hours(12))
                .min(expires_at),
        ),
        Renewal::RefreshToken if tokens.refresh_token.is_some() => {
            // Ahead of the margin, so that callers rarely meet a token that needs refreshing.
            let margin = refresh_margin(window, tokens);
            Some(expires_at - margin - margin / 2)
        }
        Renewal::RefreshToken => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    pub(crate) fn start() -> ManualClock {
        ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap())
    }

    pub(crate) fn tokens(
        clock: &ManualClock,
        lifetime: Option<i64>,
        refresh: Option<&str>,
    ) -> TokenSet {
        let now = clock.now();
        TokenSet {
            access_token: SecretString::from("access"),
            refresh_token: refresh.map(SecretString::from),
            token_type: "Bearer".into(),
            expires_at: lifetime.map(|s| now + Duration::seconds(s)),
            issued_at: Some(now),
            refresh_expires_at: None,
            scopes: vec!["a".into()],
            extra: BTreeMap::new(),
        }
    }

    const WINDOW: i64 = 300;

    #[test]
    fn a_refresh_token_grant_is_chosen_when_the_platform_issued_a_refresh_token() {
        let clock = start();
        let set = tokens(&clock, Some(3600), Some("r1"));
        assert!(matches!(
            choose(Renewal::RefreshToken, &set, clock.now()),
            Plan::RefreshToken(_)
        ));
        let none = tokens(&clock, Some(3600), None);
        assert!(matches!(
            choose(Renewal::RefreshToken, &none, clock.now()),
            Plan::Impossible(Impossible::NoRefreshToken)
        ));
    }

    #[test]
    fn an_exchange_renews_a_live_token_and_gives_up_on_an_expired_one() {
        let clock = start();
        let set = tokens(&clock, Some(3600), None);
        assert!(matches!(
            choose(Renewal::ExchangeLiveToken, &set, clock.now()),
            Plan::ExchangeLiveToken(_)
        ));
        clock.advance(Duration::seconds(3600));
        assert!(matches!(
            choose(Renewal::ExchangeLiveToken, &set, clock.now()),
            Plan::Impossible(Impossible::TokenExpired)
        ));
        let error = Impossible::TokenExpired.into_error(&PlatformId::parse("meta").unwrap());
        assert!(matches!(
            error,
            OAuthError::Platform(PlatformError::Rejected {
                permanent: true,
                revoked: false,
                ..
            })
        ));
    }

    #[test]
    fn a_token_is_due_inside_the_margin_which_is_at_most_half_its_lifetime() {
        let clock = start();
        let window = Duration::seconds(WINDOW);
        let hour = tokens(&clock, Some(3600), Some("r"));
        assert_eq!(refresh_margin(window, &hour), window);
        assert!(!needs_refresh(window, &hour, clock.now()));
        clock.advance(Duration::seconds(3600 - WINDOW));
        assert!(needs_refresh(window, &hour, clock.now()));
        // A two-minute token is due in its second minute, not on every read.
        let clock = start();
        let short = tokens(&clock, Some(120), Some("r"));
        assert_eq!(refresh_margin(window, &short), Duration::seconds(60));
        assert!(!needs_refresh(window, &short, clock.now()));
        clock.advance(Duration::seconds(61));
        assert!(needs_refresh(window, &short, clock.now()));
        // No expiry: never due.
        assert!(!needs_refresh(
            window,
            &tokens(&clock, None, Some("r")),
            clock.now()
        ));
    }

    #[test]
    fn the_schedule_runs_ahead_of_the_margin_and_keeps_meta_half_a_day_out() {
        let clock = start();
        let window = Duration::seconds(WINDOW);
        let now = clock.now();
        let hour = tokens(&clock, Some(3600), Some("r"));
        assert_eq!(
            schedule(Renewal::RefreshToken, window, &hour, now),
            Some(now + Duration::seconds(3600 - WINDOW - WINDOW / 2))
        );
        let no_refresh = tokens(&clock, Some(3600), None);
        assert_eq!(
            schedule(Renewal::RefreshToken, window, &no_refresh, now),
            None
        );
        let sixty_days = tokens(&clock, Some(60 * 86400), None);
        assert_eq!(
            schedule(Renewal::ExchangeLiveToken, window, &sixty_days, now),
            Some(now + Duration::days(53))
        );
        let three_days = tokens(&clock, Some(3 * 86400), None);
        assert_eq!(
            schedule(Renewal::ExchangeLiveToken, window, &three_days, now),
            Some(now + Duration::hours(12))
        );
    }
}
