//! A bound on every store call, client-side: [`Bounded`] wraps a store and gives up on a call that
//! has not answered within its limit, as [`StoreError::Unavailable`] (a prompt 503 at the edge, a
//! retry or a recovery record in the refresh).
//!
//! The pool's acquire timeout bounds the wait for a connection and the statement timeout bounds a
//! statement the server runs, but neither bounds a statement whose answer never comes: in a
//! partition that drops packets (no reset, no close), a statement sent on a connection taken
//! before it waits as long as TCP does, which on a quiet link is for ever. Past the limit the
//! server has cancelled the call's statement itself, so silence means the network lost it.
//!
//! Giving up is safe: a transaction dropped unfinished rolls back (sqlx sends the rollback before
//! the connection is used again, and the server ends it when the connection closes), and a single
//! statement that still lands when the link heals is one the caller retries under the same rules
//! as any lost answer (a version check, a lease, a recovery record's fingerprint). It does not
//! bound migrations, which may rightly run long.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::contract::{
    ApiKeyRecord, AuditRow, DeletionRequest, NewAsset, NewEvent, NewPlatformEvent, OutboxEvent,
    PlatformEventRow, StatusCount, Store, StoreError, StoredAsset,
};
use super::posts::{PostQuery, PostRow, PostStore, PostTransition};
use crate::domain::{Connection, PlatformId, StoreId};

/// A store whose calls give up after `limit`.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    limit: Duration,
}

impl<S: Store> Bounded<S> {
    /// Wraps `inner`; each call answers within `limit` or fails as unavailable.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The store it wraps.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn within<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(sqlx::Error::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the database did not answer within {:?}", self.limit),
                    ),
                )))
            })
    }
}

/// Implements [`Store`] for [`Bounded`]: each listed call forwarded through `within`.
macro_rules! forward_within {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl<S: Store> Store for Bounded<S> {
            fn backend(&self) -> &'static str {
                self.inner.backend()
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                self.inner.migrate().await
            }

            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                    self.within(self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

forward_within! {
    ping() -> ();
    save_connection(connection: &Connection, event: Option<&NewEvent>) -> Connection;
    get_connection(store_id: &StoreId, platform: &PlatformId) -> Option<Connection>;
    list_connections(store_id: &StoreId) -> Vec<Connection>;
    update_connection(connection: &Connection, event: Option<&NewEvent>) -> Connection;
    delete_connection(
        store_id: &StoreId,
        platform: &PlatformId,
        event: Option<&NewEvent>
    ) -> Option<Connection>;
    connections_to_reseal(current_key_id: &str, limit: i64) -> Vec<Connection>;
    acquire_refresh_lease(id: Uuid, owner: &str, lease: Duration) -> Option<Connection>;
    delete_connection_row(id: Uuid, version: i64, event: Option<&NewEvent>) -> Option<Connection>;
    key_id_counts() -> Vec<(String, i64)>;
    connections_sealed_with(key_id: &str, after: Uuid, limit: i64) -> Vec<Connection>;
    revive_errors_sealed_with(key_id: &str, reason: &str, now: DateTime<Utc>) -> Vec<Connection>;
    finish_refresh(connection: &Connection, owner: &str, event: Option<&NewEvent>) -> Connection;
    release_refresh_lease(id: Uuid, owner: &str) -> ();
    due_for_refresh(now: DateTime<Utc>, limit: i64) -> Vec<Connection>;
    claim_liveness_checks(now: DateTime<Utc>, next: DateTime<Utc>, limit: i64) -> Vec<Connection>;
    record_liveness_check(id: Uuid, alive_at: Option<DateTime<Utc>>, next: DateTime<Utc>) -> ();
    health_sweep_candidates(
        failing_before: DateTime<Utc>,
        expiring_before: DateTime<Utc>,
        after: Uuid,
        limit: i64
    ) -> Vec<Connection>;
    mark_expiry_warned(
        id: Uuid,
        reconnect_by: DateTime<Utc>,
        days: i32,
        event: &NewEvent
    ) -> bool;
    mark_failing_alerted(
        id: Uuid,
        failing_since: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &NewEvent
    ) -> bool;
    count_by_status() -> Vec<StatusCount>;
    claim_events(now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: i64) -> Vec<OutboxEvent>;
    mark_event_delivered(id: Uuid, at: DateTime<Utc>) -> ();
    mark_event_failed(id: Uuid, next_attempt_at: DateTime<Utc>, error: &str) -> ();
    mark_event_dead(id: Uuid, at: DateTime<Utc>, error: &str) -> ();
    prune_delivered_events(before: DateTime<Utc>, limit: i64) -> u64;
    count_dead_events() -> i64;
    create_api_key(record: &ApiKeyRecord, hash: &str) -> ();
    find_api_key(hash: &str) -> Option<ApiKeyRecord>;
    list_api_keys() -> Vec<ApiKeyRecord>;
    revoke_api_key(name: &str, at: DateTime<Utc>) -> bool;
    revoked_api_key_count() -> i64;
    touch_api_key(id: Uuid, at: DateTime<Utc>, stale_before: DateTime<Utc>) -> ();
    insert_audit(rows: &[AuditRow]) -> ();
    list_audit(
        store_id: &StoreId,
        since: DateTime<Utc>,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: i64
    ) -> Vec<AuditRow>;
    prune_audit(before: DateTime<Utc>, limit: i64) -> u64;
    replace_assets(connection_id: Uuid, assets: &[NewAsset], now: DateTime<Utc>) -> ();
    list_assets(store_id: &StoreId) -> Vec<StoredAsset>;
    select_asset(connection_id: Uuid, kind: &str, id: &str) -> bool;
    insert_platform_events(events: &[NewPlatformEvent]) -> Vec<bool>;
    claim_platform_events(
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64
    ) -> Vec<PlatformEventRow>;
    finish_platform_event(id: Uuid, at: DateTime<Utc>, outcome: &str, scrub: bool) -> ();
    finish_platform_events(
        finished: &[(Uuid, &str)],
        at: DateTime<Utc>,
        webhooks: &[NewEvent]
    ) -> ();
    retry_platform_event(id: Uuid, next: DateTime<Utc>, error: &str) -> ();
    prune_platform_events(before: DateTime<Utc>, limit: i64) -> u64;
    connections_by_account(platform: &PlatformId, account_id: &str) -> Vec<Connection>;
    connections_by_asset(platform: &PlatformId, asset_id: &str) -> Vec<Connection>;
    mark_removed(
        connection: &Connection,
        reason: &str,
        at: DateTime<Utc>,
        event: &NewEvent
    ) -> Option<Connection>;
    create_deletion_request(request: &DeletionRequest) -> ();
    deletion_request(code: &str) -> Option<DeletionRequest>;
    complete_deletion_request(code: &str, at: DateTime<Utc>, connections_deleted: i32) -> ();
}

#[async_trait]
impl<S: Store> PostStore for Bounded<S> {
    async fn insert_post(
        &self,
        post: &PostRow,
        event: Option<&NewEvent>,
    ) -> Result<Option<PostRow>, StoreError> {
        self.within(self.inner.insert_post(post, event)).await
    }

    async fn post(&self, id: Uuid) -> Result<Option<PostRow>, StoreError> {
        self.within(self.inner.post(id)).await
    }

    async fn post_by_key(
        &self,
        store_id: &StoreId,
        idempotency_key: &str,
    ) -> Result<Option<PostRow>, StoreError> {
        self.within(self.inner.post_by_key(store_id, idempotency_key))
            .await
    }

    async fn renew_post_lease(
        &self,
        id: Uuid,
        owner: Uuid,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.within(self.inner.renew_post_lease(id, owner, until))
            .await
    }

    async fn save_sent_post(
        &self,
        post: &PostRow,
        sent_at: DateTime<Utc>,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        self.within(self.inner.save_sent_post(post, sent_at, event))
            .await
    }

    async fn list_posts(&self, query: &PostQuery<'_>) -> Result<Vec<PostRow>, StoreError> {
        self.within(self.inner.list_posts(query)).await
    }

    async fn claim_due_posts(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PostRow>, StoreError> {
        self.within(self.inner.claim_due_posts(now, lease_until, limit))
            .await
    }

    async fn save_claimed_post(
        &self,
        post: &PostRow,
        owner: Uuid,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        self.within(self.inner.save_claimed_post(post, owner, event))
            .await
    }

    async fn transition_post(
        &self,
        transition: &PostTransition<'_>,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        self.within(self.inner.transition_post(transition, event))
            .await
    }

    async fn post_approval_policy(&self, store_id: &StoreId) -> Result<Option<bool>, StoreError> {
        self.within(self.inner.post_approval_policy(store_id)).await
    }

    async fn set_post_approval_policy(
        &self,
        store_id: &StoreId,
        require: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.within(self.inner.set_post_approval_policy(store_id, require, at))
            .await
    }
}
