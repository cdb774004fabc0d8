//! The inbox of platform notices: a merchant removing the app at the platform, a data deletion
//! request, permissions changed, a post's outcome or a comment. It receives them (verified by
//! each platform's own scheme, `Platform::receive_events`), stores them durably before the
//! platform gets its 2xx, and processes them off the request path in whichever replica claims
//! them first.
//!
//! Nothing lost, nothing twice: a notice is stored (deduplicated by the platform's own event id
//! or a digest of what it said, across replicas and redeliveries) before it is acknowledged, so
//! a platform that gets no 2xx sends it again and one that got it may still send it again; the
//! worker claims stored notices with a lease in one statement, so a replica that dies while
//! processing leaves them to another once the lease ends. Processing is idempotent (a removal
//! of a revoked connection does nothing; a deletion of a deleted one neither).
//!
//! Layout: `receive` (verify, store, answer), `worker` (claim and act: removal, deletion,
//! permissions, forwarding content to the services as `platform.event` webhooks), `keys` (the
//! cached public keys of platforms that sign with them), `deletion` (confirmation codes and the
//! status page's facts), `service` ([`Inbox`] and what it is built from). It stands on the
//! lifecycle (which owns what a removal does to a connection) and the store; the edge
//! (`http::inbox_routes`) parses and answers. This file only declares the modules and re-exports:
//! no file below imports it.

mod deletion;
mod keys;
mod receive;
mod service;
mod worker;

pub use deletion::{confirmation_code, DeletionStatus};
pub use keys::KeyCache;
pub use receive::{Answer, ReceiveError};
pub use service::{Inbox, Parts};
pub use worker::InboxWorker;
