//! The publishing layer's error. Its text is safe to show: no token, no media bytes.

use crate::error::OAuthError;
use crate::platforms::publish::PublishFailure;
use crate::store::StoreError;

/// Why a publishing call failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The request is malformed (a field, the media list, the time).
    #[error("{0}")]
    Invalid(String),
    /// `Idempotency-Key` is missing or unusable.
    #[error("an Idempotency-Key header (1 to 255 visible characters) is required")]
    MissingIdempotencyKey,
    /// The key was used before with another body.
    #[error("this Idempotency-Key was used for another post")]
    IdempotencyConflict,
    /// The platform would refuse the post (or publishes nothing of the kind).
    #[error("{}", .0.message)]
    Refused(PublishFailure),
    /// The connection has no account of a kind the platform publishes to (and none was named).
    #[error("the connection has no account to publish to")]
    NoAccount,
    /// No such post (or not one of the caller's stores).
    #[error("no such post")]
    NotFound,
    /// The post has gone past the state the change needs.
    #[error("the post is {0}")]
    WrongState(String),
    /// The approval link is unknown, used or expired.
    #[error("this approval link is not valid any more")]
    ApprovalLinkInvalid,
    /// The connection (or the platform) refused.
    #[error(transparent)]
    Connection(#[from] OAuthError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
