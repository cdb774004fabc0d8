//! The core's error, shared by the flow, the lifecycle and the connect workflow above them: their
//! own failures (tickets, states, browsers, connections, shutdown), the platform layer's
//! [`PlatformError`] wrapped whole, and the stores' errors. Every variant knows a short text that
//! is safe to show a merchant (no token, code, secret or raw platform body) and a stable reason
//! code; `http::error` turns it into a response.

use crate::domain::ConnectionStatus;
use crate::platforms::error::PlatformError;
use crate::state::StateError;
use crate::store::StoreError;
use crate::vault::VaultError;

/// Why an OAuth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A platform call failed, or no platform fits.
    #[error(transparent)]
    Platform(#[from] PlatformError),
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
    /// The platform refused the permissions asked for (`invalid_scope`): the operator's scopes
    /// are wrong, not the merchant's choice.
    #[error("the platform refused the requested scopes")]
    InvalidScope,
    /// A required callback parameter is missing.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
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
            Self::Platform(error) => error.reason(),
            Self::TicketInvalid => "link_invalid",
            Self::StateInvalid => "state_invalid",
            Self::StateMismatch => "state_platform_mismatch",
            Self::BrowserMismatch => "browser_mismatch",
            Self::Declined(_) => "access_denied",
            Self::InvalidScope => "invalid_scope",
            Self::MissingParameter(_) => "missing_parameter",
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
            Self::Platform(PlatformError::UnknownPlatform(_)) => {
                "That platform is not supported.".into()
            }
            Self::Platform(PlatformError::NotConfigured(p)) => {
                format!("{p} is not configured on this service yet.")
            }
            Self::TicketInvalid | Self::StateInvalid | Self::StateMismatch => {
                "This connection attempt expired or was already used. Please try again.".into()
            }
            Self::BrowserMismatch => {
                "This connection attempt was started in another browser. Please start again here."
                    .into()
            }
            Self::Declined(_) => "Access was not granted, so nothing was connected.".into(),
            Self::InvalidScope => {
                "The platform refused the permissions this service asks for, so nothing was \
                 connected. The service's operator must check its scope settings."
                    .into()
            }
            Self::MissingParameter(_) => {
                "The platform sent an incomplete answer. Please try again.".into()
            }
            Self::Platform(PlatformError::Unavailable { .. }) => {
                "The platform did not answer in time. Please try again in a few minutes.".into()
            }
            Self::Platform(PlatformError::Rejected { .. } | PlatformError::BadResponse { .. }) => {
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
