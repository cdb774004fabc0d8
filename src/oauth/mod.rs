//! The OAuth core: the platform catalog, the calls to platforms, their quirks, and the
//! authorization-code flow. It speaks in domain types; it knows nothing of HTTP routing or SQL.

pub mod catalog;
pub mod client;
pub mod error;
pub mod flow;
pub mod quirks;

pub use catalog::{Catalog, PlatformSpec};
pub use error::OAuthError;
pub use flow::Flow;
