//! The platform layer, at the bottom of the core: what a platform is ([`platform`]: its spec as
//! data and its behaviour as the [`Platform`] trait), the table of built-in platforms
//! ([`builtin`], one module each), the catalog resolved from it and the operator's settings, the
//! HTTP client that speaks to platforms, the merchant's assets, and the layer's own error (platform facts
//! only: the flow and the lifecycle wrap it in `crate::error::OAuthError`).
//!
//! The table ([`BUILT_IN`]) is the one list of built-in platforms: settings, the catalog, the page's
//! cards, the OpenAPI document and the tests all derive theirs from it. Adding a platform is adding
//! its module under `builtin/` and its table line; a platform's name stands nowhere else
//! (`tests/architecture.rs`).
//!
//! This layer knows nothing of flows, connections, HTTP routing or SQL: the flow (`oauth`) and the
//! lifecycle sit above it, side by side.

pub mod assets;
pub mod budget;
pub mod builtin;
pub mod catalog;
pub mod client;
pub mod definition;
pub mod discovery;
pub mod error;
pub mod events;
pub mod grant;
pub mod platform;
pub mod publish;
pub mod settings;

pub use assets::{Asset, AssetKind, AssetSet};
pub use builtin::{built_in, BUILT_IN};
pub use catalog::Catalog;
pub use client::{PlatformClient, RevocationOutcome};
pub use definition::BuiltInPlatform;
pub use error::PlatformError;
pub use grant::{Grant, GrantDetails};
pub use platform::{
    AccountExtras, AccountInfo, AccountMapping, ClientAuth, ConsentMode, ConsentRequest,
    ErrorShape, Pkce, Platform, PlatformHttp, PlatformSpec, ReconnectRule, Renewal, Revocation,
    TokenGrant, TokenMethod,
};
