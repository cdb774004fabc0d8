//! Why a call could not be proxied: the proxy's one error type, turned into HTTP at the edge.

use crate::error::OAuthError;

/// Why a call could not be proxied (a platform's own error answers are not errors: they are
/// passed through).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The platform has no API base (a generic provider without `<NAME>_API_URL`).
    #[error("{0} has no API configured for the proxy")]
    NoApi(String),
    /// The path could leave the API base.
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    /// `Growth-Engine-Account` names no asset of the connection.
    #[error("the connection has no account {0:?}")]
    AccountNotFound(String),
    /// The request body exceeds `PROXY_MAX_BODY_BYTES`.
    #[error("the request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The platform announced an answer larger than `PROXY_MAX_RESPONSE_BYTES`.
    #[error("the platform's answer exceeds {0} bytes")]
    ResponseTooLarge(usize),
    /// The platform could not be reached, or broke the connection before answering.
    #[error("platform unreachable: {0}")]
    Unreachable(String),
    /// The caller's request body paused for longer than the platform timeout.
    #[error("the request body stalled")]
    BodyStalled,
    /// The store has used more than its share of a budget the app's merchants share (or its
    /// ceiling): retry after this many seconds.
    #[error("quota exceeded ({reason}); retry in {retry_after} s")]
    QuotaExceeded {
        /// `fair_share` or `store_ceiling`.
        reason: &'static str,
        /// Seconds until the share window turns.
        retry_after: u64,
    },
    /// The connection's token could not be had (no connection, dead grant, store down, ...).
    #[error(transparent)]
    Token(#[from] OAuthError),
}
