//! [`Inbox`], the handle the edge and the worker share, and the [`Parts`] it is built from.

use std::sync::Arc;

use tokio::sync::Notify;
use url::Url;

use super::keys::KeyCache;
use crate::audit::AuditLog;
use crate::lifecycle::Grants;
use crate::metrics::Metrics;

/// The inbox: receives notices and hands them to its worker. A cheap clone.
#[derive(Debug, Clone)]
pub struct Inbox(Arc<Parts>);

/// What the inbox is built from.
#[derive(Debug)]
pub struct Parts {
    /// Removals and deletions, with the core (store, catalog, clock) under them.
    pub grants: Grants,
    /// The platforms' published keys.
    pub keys: KeyCache,
    /// Counters by platform, kind and outcome.
    pub metrics: Metrics,
    /// The audit trail (removals, deletions, permission changes).
    pub audit: AuditLog,
    /// The service's public URL (the data deletion status page's link).
    pub api_url: Url,
    /// Wakes this replica's worker when a notice was stored here.
    pub wake: Notify,
}

impl Inbox {
    /// An inbox over these parts.
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }

    pub(super) fn parts(&self) -> &Parts {
        &self.0
    }

    /// The time by the service's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.grants.core().clock().now()
    }
}
