//! The platform layer's error: what a platform call can fail with, in platform facts only
//! (transport, protocol, the platform's answers). Every variant's text is safe to log (no token,
//! code, secret or raw body); the flow and the lifecycle wrap it in the core's error
//! (`crate::error::OAuthError`), which the edge turns into HTTP.

use std::time::Duration;

use crate::domain::PlatformId;

/// Why a call to a platform (or the choice of one) failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// No platform has this slug.
    #[error("unknown platform {0:?}")]
    UnknownPlatform(String),
    /// The platform has no credentials (and no sandbox stands in), or no API to call.
    #[error("{0} is not configured")]
    NotConfigured(PlatformId),
    /// The platform is down, slow or rate limiting: worth retrying later.
    #[error("{platform} is unavailable: {detail}")]
    Unavailable {
        /// The platform.
        platform: PlatformId,
        /// What happened (status or timeout), safe to log.
        detail: String,
        /// The platform's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The platform refused the request.
    #[error("{platform} rejected the request: {code}")]
    Rejected {
        /// The platform.
        platform: PlatformId,
        /// The platform's error code (`invalid_grant`, `190`, ...).
        code: String,
        /// The platform's description, trimmed of anything token-like.
        description: String,
        /// The grant itself is dead (expired, revoked): retrying cannot help.
        permanent: bool,
        /// The platform said the grant was revoked.
        revoked: bool,
    },
    /// The platform answered something that is not what its protocol promises.
    #[error("{platform} answered something unreadable: {detail}")]
    BadResponse {
        /// The platform.
        platform: PlatformId,
        /// What was wrong, safe to log.
        detail: String,
    },
}

impl PlatformError {
    /// A stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownPlatform(_) => "unknown_platform",
            Self::NotConfigured(_) => "platform_not_configured",
            Self::Unavailable { .. } => "platform_unavailable",
            Self::Rejected { .. } => "platform_rejected",
            Self::BadResponse { .. } => "platform_bad_response",
        }
    }
}

/// Removes anything token-like (long unbroken words) from a platform's free text, and bounds it.
pub(crate) fn scrub(text: &str) -> String {
    let cleaned: Vec<&str> = text
        .split_whitespace()
        .map(|word| if word.len() > 32 { "[…]" } else { word })
        .collect();
    let mut out = cleaned.join(" ");
    if out.len() > 200 {
        let mut cut = 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_drops_token_like_words_and_bounds_length() {
        let text = "Invalid token EAAGm0PX4ZCpsBAJZCZC2ZCa1b2c3d4e5f6g7h8i9j0 given";
        assert_eq!(scrub(text), "Invalid token […] given");
        assert!(scrub(&"word ".repeat(100)).chars().count() <= 201);
    }
}
