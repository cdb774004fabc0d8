//! The authorization-code flow: begin, bind to the browser, finish. It sits above the platform
//! layer ([`crate::platforms`]), beside the lifecycle: it returns a [`Grant`] and leaves recording it
//! to its caller. It speaks in domain types; it knows nothing of HTTP routing or SQL.

pub mod flow;
pub mod parked;

pub use crate::error::OAuthError;
pub use crate::platforms::Grant;
pub use flow::Flow;
