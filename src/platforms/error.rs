//! The core's one error type, shared by the platform layer, the flow and the lifecycle. Every variant
//! knows a short text that is safe to show a merchant (no token, code, secret or raw platform body)
//! and a stable reason code; `http::error` turns it into a response.

use std::time::Duration;

use crate::domain::{ConnectionStatus, PlatformId};
use crate::state::StateError;
use crate::store::StoreError;
use crate::vault::VaultError;

/// Why an OAuth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// No platform has this slug.
    #[error("unknown platform {0:?}")]
    UnknownPlatform(String),
    /// The platform has no credentials (and no sandbox stands in).
    #[error("{0} is not configured")]
    NotConfigured(PlatformId),
    /// The first-hop ticket is unknown, expired or used.
    #[error("the authorization link is invalid, expired or already used")]
    TicketInvalid,
    /// The state is unknown, expired or already used.
    #[error("the state is invalid, expired or already used")]
    StateInvalid,
    /// The state was issued for another platform.
    #[error("the state was issued for another platform")]
    StateMismatch,
    /// The callback arrived in a browser other than the one that started the flow.
    #[error("the flow was started in another browser")]
    BrowserMismatch,
    /// The merchant declined at the platform (or the platform refused the request).
    #[error("the authorization was not granted ({0})")]
    Declined(String),
    /// A required callback parameter is missing.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// The platform is down, slow or rate limiting: worth retrying later.
    #[error("{platform} is unavailable: {detail}")]
    PlatformUnavailable {
        /// The platform.
        platform: PlatformId,
        /// What happened (status or timeout), safe to log.
        detail: String,
        /// The platform's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The platform refused the request.
    #[error("{platform} rejected the request: {code}")]
    PlatformRejected {
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
    /// There is no connection for this store and platform.
    #[error("no connection")]
    NotFound,
    /// The connection exists but cannot give a token until the merchant reconnects.
    #[error("the connection is {0}")]
    NotUsable(ConnectionStatus),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The flow-state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A sealed value could not be opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The service is shutting down and takes no new refresh.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The connection has no asset with this id (or kind and id).
    #[error("no such asset on this connection")]
    AssetNotFound,
}

impl OAuthError {
    /// A stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownPlatform(_) => "unknown_platform",
            Self::NotConfigured(_) => "platform_not_configured",
            Self::TicketInvalid => "link_invalid",
            Self::StateInvalid => "state_invalid",
            Self::StateMismatch => "state_platform_mismatch",
            Self::BrowserMismatch => "browser_mismatch",
            Self::Declined(_) => "access_denied",
            Self::MissingParameter(_) => "missing_parameter",
            Self::PlatformUnavailable { .. } => "platform_unavailable",
            Self::PlatformRejected { .. } => "platform_rejected",
            Self::BadResponse { .. } => "platform_bad_response",
            Self::NotFound => "connection_not_found",
            Self::NotUsable(_) => "reconnect_required",
            Self::Store(_) => "storage_unavailable",
            Self::State(_) => "state_store_unavailable",
            Self::Vault(VaultError::UnknownKey(_)) => "key_unavailable",
            Self::Vault(_) => "token_unreadable",
            Self::ShuttingDown => "shutting_down",
            Self::AssetNotFound => "asset_not_found",
        }
    }

    /// A short sentence safe to show the merchant.
    pub(crate) fn merchant_message(&self) -> String {
        match self {
            Self::UnknownPlatform(_) => "That platform is not supported.".into(),
            Self::NotConfigured(p) => format!("{p} is not configured on this service yet."),
            Self::TicketInvalid | Self::StateInvalid | Self::StateMismatch => {
                "This connection attempt expired or was already used. Please try again.".into()
            }
            Self::BrowserMismatch => {
                "This connection attempt was started in another browser. Please start again here."
                    .into()
            }
            Self::Declined(_) => "Access was not granted, so nothing was connected.".into(),
            Self::MissingParameter(_) => {
                "The platform sent an incomplete answer. Please try again.".into()
            }
            Self::PlatformUnavailable { .. } => {
                "The platform did not answer in time. Please try again in a few minutes.".into()
            }
            Self::PlatformRejected { .. } | Self::BadResponse { .. } => {
                "The platform refused the connection. Please try again.".into()
            }
            Self::NotFound => "There is no connection for this platform.".into(),
            Self::NotUsable(_) => "This connection needs to be reconnected.".into(),
            Self::AssetNotFound => "That account is not among this connection's accounts.".into(),
            Self::Store(_) | Self::State(_) | Self::Vault(_) | Self::ShuttingDown => {
                "The service is temporarily unavailable. Please try again shortly.".into()
            }
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
