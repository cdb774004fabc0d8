//! Publishing for the services (the social agent first): posts as a resource, a scheduler that
//! never posts twice, and the merchant's approval.
//!
//! It stands beside the lifecycle, above the platform layer: a post's platform client is the
//! platform's [`Platform`](crate::platforms::Platform) publishing stages (prepare, send,
//! confirm); its token comes from the lifecycle's [`Assets`](crate::lifecycle::Assets); its rows
//! and their fencing from the store's [`PostStore`](crate::store::PostStore).
//!
//! - `model`: a post's status, the API's request and view, the webhook events.
//! - `error`: this layer's error, turned into HTTP at the edge.
//! - `media`: fetching the callers' media (bounded, never from an internal address).
//! - `service`: [`Posts`], the verbs (create, read, list, cancel, approve, reject, the store's
//!   approval policy).
//! - `scheduler`: [`PostScheduler`], the loop every replica runs: claims due posts under a fenced
//!   lease and takes each one step further.

mod error;
mod media;
mod model;
mod scheduler;
mod service;

pub use error::PostError;
pub use media::MediaFetcher;
pub use model::{CreatePost, PostStatus, PostView};
pub use scheduler::PostScheduler;
pub use service::{ApprovalDecision, Posts, PostsParts};
