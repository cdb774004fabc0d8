//! The worker: claims stored notices (a batch under a lease, in one statement: replicas claiming
//! together get different rows) and acts on each. A notice that fails (the database went away
//! midway) goes back with a growing delay; its actions are idempotent, so doing part of one again
//! changes nothing. Runs in every replica, woken at once when its own replica stored a notice and
//! otherwise polling.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::service::Inbox;
use crate::audit::{Actor, AuditEvent};
use crate::domain::Connection;
use crate::error::OAuthError;
use crate::platforms::events::NoticeKind;
use crate::store::{NewEvent, PlatformEventRow};

/// How many notices one claim takes.
const BATCH: i64 = 200;

/// How long a claim holds its notices: a replica that died while processing leaves them to
/// another after this.
const LEASE: Duration = Duration::from_secs(60);

/// How long processed notices are kept, for their dedupe keys: longer than any platform retries
/// (Meta 36 h, TikTok 72 h) [M31, T24].
const KEEP_PROCESSED: chrono::Duration = chrono::Duration::days(7);

/// The processing loop of one replica.
#[derive(Debug, Clone)]
pub struct InboxWorker {
    inbox: Inbox,
    poll: Duration,
}

impl InboxWorker {
    /// A worker that polls every `poll` besides being woken.
    pub fn new(inbox: Inbox, poll: Duration) -> Self {
        Self { inbox, poll }
    }

    /// Processes until `stop` resolves; the batch in progress finishes first.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut pruned_at = tokio::time::Instant::now();
        loop {
            let done = match self.process_due().await {
                Ok(done) => done,
                Err(error) => {
                    tracing::warn!(error = %error, "platform events: claiming failed; trying again");
                    0
                }
            };
            if pruned_at.elapsed() > Duration::from_secs(3600) {
                pruned_at = tokio::time::Instant::now();
                self.prune().await;
            }
            if done as i64 >= BATCH {
                continue;
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.inbox.parts().wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Claims and processes one batch of due notices; returns how many.
    pub async fn process_due(&self) -> Result<usize, OAuthError> {
        let parts = self.inbox.parts();
        let core = parts.grants.core();
        let now = core.clock().now();
        let lease = chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::minutes(1));
        let claimed = core
            .store()
            .claim_platform_events(now, now + lease, BATCH)
            .await?;
        let count = claimed.len();
        // Content is most of the traffic and changes no connection: one transaction per batch.
        // Removals, deletions and permission changes act on connections one notice at a time
        // (the claim hands them out first).
        let (content, acting): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|row| {
            matches!(
                NoticeKind::parse(&row.event.kind),
                NoticeKind::Content | NoticeKind::Other
            )
        });
        for row in acting {
            self.process_one(row).await?;
        }
        self.process_content(content).await?;
        Ok(count)
    }

    /// Acts on one notice and records its outcome, or puts it back for later.
    async fn process_one(&self, row: PlatformEventRow) -> Result<(), OAuthError> {
        let parts = self.inbox.parts();
        let core = parts.grants.core();
        let id = row.id;
        let platform = row.event.platform.as_str().to_owned();
        let kind = row.event.kind.clone();
        let scrub = NoticeKind::parse(&kind) == NoticeKind::DataDeletion;
        match self.process(&row).await {
            Ok(outcome) => {
                parts.metrics.platform_event(&platform, &kind, outcome);
                let at = core.clock().now();
                core.store()
                    .finish_platform_event(id, at, outcome, scrub)
                    .await?;
            }
            Err(error) => {
                parts.metrics.platform_event(&platform, &kind, "retried");
                tracing::warn!(platform = %platform, kind = %kind, error = %error, "a platform event could not be processed; it will be tried again");
                let next = core.clock().now() + crate::lifecycle::backoff(row.attempts, None);
                core.store()
                    .retry_platform_event(
                        id,
                        next,
                        &crate::platforms::error::scrub(&error.to_string()),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Forwards a batch of content notices: the connections of each account looked up once, every
    /// webhook written and every notice finished in one transaction. When it fails, the claim's
    /// lease gives the batch back.
    async fn process_content(&self, rows: Vec<PlatformEventRow>) -> Result<(), OAuthError> {
        if rows.is_empty() {
            return Ok(());
        }
        let parts = self.inbox.parts();
        let core = parts.grants.core();
        let at = core.clock().now();
        let mut attributed: HashMap<(String, Option<String>, Option<String>), Vec<Connection>> =
            HashMap::new();
        let mut finished: Vec<(Uuid, &'static str)> = Vec::with_capacity(rows.len());
        let mut webhooks = Vec::new();
        for row in &rows {
            let event = &row.event;
            if NoticeKind::parse(&event.kind) == NoticeKind::Other {
                finished.push((row.id, "ignored"));
                continue;
            }
            let key = (
                event.platform.as_str().to_owned(),
                event.account_kind.clone(),
                event.account_id.clone(),
            );
            if !attributed.contains_key(&key) {
                let found = self.attributed(event).await?;
                attributed.insert(key.clone(), found);
            }
            let connections = &attributed[&key];
            if connections.is_empty() {
                finished.push((row.id, "unmatched"));
            } else {
                webhooks.extend(content_webhooks(event, connections, at));
                finished.push((row.id, "processed"));
            }
        }
        core.store()
            .finish_platform_events(&finished, at, &webhooks)
            .await?;
        for (row, (_, outcome)) in rows.iter().zip(&finished) {
            parts
                .metrics
                .platform_event(row.event.platform.as_str(), &row.event.kind, outcome);
        }
        Ok(())
    }

    async fn prune(&self) {
        let core = self.inbox.parts().grants.core();
        let before = core.clock().now() - KEEP_PROCESSED;
        if let Err(error) = core.store().prune_platform_events(before, 10_000).await {
            tracing::warn!(error = %error, "platform events: pruning failed");
        }
    }

    /// Acts on a removal, a deletion or a permission change; returns its outcome (`processed`,
    /// `unmatched`). Content and other notices go through `process_content`.
    async fn process(&self, row: &PlatformEventRow) -> Result<&'static str, OAuthError> {
        let event = &row.event;
        let kind = NoticeKind::parse(&event.kind);
        let connections = self.attributed(event).await?;
        if kind == NoticeKind::DataDeletion {
            return self.delete_data(row, connections).await;
        }
        if connections.is_empty() {
            return Ok("unmatched");
        }
        match kind {
            NoticeKind::Removal => self.remove(event, connections).await,
            NoticeKind::Permissions => self.change_permissions(event, connections).await,
            // `process_due` sends content and other notices to `process_content`, never here.
            NoticeKind::Content | NoticeKind::Other | NoticeKind::DataDeletion => Ok("ignored"),
        }
    }

    /// The connections a notice names: by account id, or by an asset they hold.
    async fn attributed(
        &self,
        event: &crate::store::NewPlatformEvent,
    ) -> Result<Vec<Connection>, OAuthError> {
        let Some(account) = &event.account_id else {
            return Ok(Vec::new());
        };
        let store = self.inbox.parts().grants.core().store();
        let found = match event.account_kind.as_deref() {
            Some("asset") => store.connections_by_asset(&event.platform, account).await?,
            _ => {
                store
                    .connections_by_account(&event.platform, account)
                    .await?
            }
        };
        Ok(found)
    }

    fn audit(&self, connection: &Connection, operation: &'static str, detail: &str) {
        let platform = connection.platform.as_str();
        self.inbox.parts().audit.record(
            AuditEvent::new(Actor::Platform(platform.to_owned()), operation, "success")
                .with_store(&connection.store_id)
                .with_platform(platform)
                .with_detail(detail),
        );
    }

    async fn remove(
        &self,
        event: &crate::store::NewPlatformEvent,
        connections: Vec<Connection>,
    ) -> Result<&'static str, OAuthError> {
        for connection in connections {
            if let Some(saved) = self
                .inbox
                .parts()
                .grants
                .remove_at_platform(connection)
                .await?
            {
                tracing::info!(platform = %saved.platform, store_id = %saved.store_id, event = %event.event_type, "connection removed at the platform");
                self.audit(&saved, "platform_removal", &event.event_type);
            }
        }
        Ok("processed")
    }

    /// Deletes every connection of the account and completes the request: the notice itself is
    /// scrubbed by the caller.
    async fn delete_data(
        &self,
        row: &PlatformEventRow,
        connections: Vec<Connection>,
    ) -> Result<&'static str, OAuthError> {
        let parts = self.inbox.parts();
        let mut deleted = 0;
        for connection in connections {
            let store_id = connection.store_id.clone();
            let platform = connection.platform.clone();
            if parts.grants.delete_at_platform_request(connection).await? {
                deleted += 1;
                parts.audit.record(
                    AuditEvent::new(
                        Actor::Platform(platform.as_str().to_owned()),
                        "data_deletion",
                        "success",
                    )
                    .with_store(&store_id)
                    .with_platform(platform.as_str()),
                );
            }
        }
        let code =
            super::deletion::confirmation_code(row.event.platform.as_str(), &row.event.dedupe_key);
        let at = parts.grants.core().clock().now();
        parts
            .grants
            .core()
            .store()
            .complete_deletion_request(&code, at, deleted)
            .await?;
        tracing::info!(platform = %row.event.platform, connections = deleted, "data deletion request completed");
        Ok("processed")
    }

    /// Meta's `permissions` topic: a permission granted or revoked changes the connection's
    /// granted and missing scopes [M30].
    async fn change_permissions(
        &self,
        event: &crate::store::NewPlatformEvent,
        connections: Vec<Connection>,
    ) -> Result<&'static str, OAuthError> {
        let permission = event.payload["field"].as_str().unwrap_or_default();
        let granted = event.payload["value"]["verb"].as_str() == Some("granted");
        for connection in connections {
            let changed = self
                .inbox
                .parts()
                .grants
                .change_permission_at_platform(connection, permission, granted)
                .await?;
            if let Some(saved) = changed {
                self.audit(&saved, "platform_permissions", permission);
            }
        }
        Ok("processed")
    }
}

/// Content for the services: one signed `platform.event` webhook per store concerned.
fn content_webhooks(
    event: &crate::store::NewPlatformEvent,
    connections: &[Connection],
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<NewEvent> {
    connections
        .iter()
        .map(|connection| NewEvent {
            event_type: "platform.event".into(),
            payload: json!({
                "type": "platform.event",
                "occurred_at": event.occurred_at.unwrap_or(event.received_at),
                "platform": event.platform,
                "store_id": connection.store_id,
                "connection_id": connection.id,
                "account": event.account_id,
                "event_type": event.event_type,
                "event": event.payload,
            }),
            at,
        })
        .collect()
}
