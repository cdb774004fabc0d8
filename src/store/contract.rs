//! The [`Store`] trait and the records it speaks in, which both backends implement and the
//! contract tests hold them to.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Connection, ConnectionStatus, PlatformId, StoreId};

pub use super::shared::{NewEvent, StoreError};

/// A stored webhook event.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Event id (also the idempotency key receivers see).
    pub id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The JSON body.
    pub payload: serde_json::Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: i32,
}

/// Connections counted by platform and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// Platform slug.
    pub platform: String,
    /// Status.
    pub status: ConnectionStatus,
    /// How many.
    pub count: i64,
}

/// A stored API key: never the key, only what `api-key list` shows and the hash it was found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Row id.
    pub id: Uuid,
    /// Unique name (`posting-agent`); the audit's actor.
    pub name: String,
    /// Comma-separated scopes.
    pub scopes: String,
    /// Comma-separated stores the key is bound to; `None` covers every store.
    pub stores: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One row of the audit trail. Holds no token, code, state, secret or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Time-ordered id (UUIDv7).
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `api_key`, `page_user` or `system`.
    pub actor_kind: String,
    /// The key's name, the page user's id, or the system task (`refresher`, `cli`).
    pub actor: String,
    /// The store concerned, if any.
    pub store_id: Option<String>,
    /// The platform concerned, if any.
    pub platform: Option<String>,
    /// `connect`, `disconnect`, `token`, `refresh`, ...
    pub operation: String,
    /// `success`, `started`, `failure`, ...
    pub outcome: String,
    /// A short, non-secret detail (a revocation outcome, an error code).
    pub detail: Option<String>,
}

/// An asset as discovery hands it to the store (the kind as its API text).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAsset {
    /// `facebook_page`, `ad_account`, ...
    pub kind: String,
    /// The platform's id of it.
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Non-secret facts.
    pub details: serde_json::Value,
}

/// A stored asset of a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAsset {
    /// The connection it belongs to.
    pub connection_id: Uuid,
    /// The connection's platform.
    pub platform: PlatformId,
    /// `facebook_page`, `ad_account`, ...
    pub kind: String,
    /// The platform's id of it.
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Non-secret facts.
    pub details: serde_json::Value,
    /// Whether it is the connection's default of its kind.
    pub selected: bool,
    /// When discovery last saw it.
    pub discovered_at: DateTime<Utc>,
}

/// A verified platform notice, as the receiver stores it before acknowledging it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlatformEvent {
    /// The platform that sent it.
    pub platform: PlatformId,
    /// The platform's own id of the event, or a digest of what it sent: a redelivery has the same.
    pub dedupe_key: String,
    /// The receiver it came through (`deauthorize`, `webhooks`, ...).
    pub receiver: String,
    /// `removal`, `data_deletion`, `permissions`, `content` or `other`.
    pub kind: String,
    /// The platform's name for it (`authorization.removed`, `feed`, ...).
    pub event_type: String,
    /// `user` or `asset`: what `account_id` names.
    pub account_kind: Option<String>,
    /// The platform's id of the account (or asset) it concerns.
    pub account_id: Option<String>,
    /// What the platform sent (never a token: platforms send none in these notices).
    pub payload: serde_json::Value,
    /// When it happened, as the platform says.
    pub occurred_at: Option<DateTime<Utc>>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

/// A stored platform notice, claimed for processing.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformEventRow {
    /// Row id.
    pub id: Uuid,
    /// What was stored.
    pub event: NewPlatformEvent,
    /// Processing attempts so far, this one included.
    pub attempts: i32,
}

/// A data deletion request: its code, and where the deletion stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionRequest {
    /// The confirmation code the platform shows the person.
    pub confirmation_code: String,
    /// The platform it came from.
    pub platform: String,
    /// A digest of the account id (the id itself is deleted with the rest).
    pub account_digest: String,
    /// `pending` or `completed`.
    pub status: String,
    /// When it was received.
    pub requested_at: DateTime<Utc>,
    /// When the deletion finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// How many connections were deleted.
    pub connections_deleted: i32,
}

/// Which of `assets` are selected after a discovery, given the `(kind, id)` pairs selected before:
/// a selection survives while its asset does; a kind left without one whose only asset is this
/// one gets it by default.
pub(crate) fn plan_selection(
    assets: &[NewAsset],
    selected_before: &[(String, String)],
) -> Vec<bool> {
    let kept = |a: &NewAsset| {
        selected_before
            .iter()
            .any(|(k, i)| *k == a.kind && *i == a.id)
    };
    assets
        .iter()
        .map(|asset| {
            let same_kind = assets.iter().filter(|a| a.kind == asset.kind);
            kept(asset) || (same_kind.clone().count() == 1 && !same_kind.clone().any(kept))
        })
        .collect()
}

/// Where connections and the webhook outbox live.
#[async_trait]
pub trait Store: super::posts::PostStore + Send + Sync + Debug {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts the connection or replaces the one the store already has for its store and platform
    /// (keeping that row's id and creation time); records `event` in the same transaction.
    async fn save_connection(
        &self,
        connection: &Connection,
        event: Option<&NewEvent>,
    ) -> Result<Connection, StoreError>;

    /// The connection of a store on a platform.
    async fn get_connection(
        &self,
        store_id: &StoreId,
        platform: &PlatformId,
    ) -> Result<Option<Connection>, StoreError>;

    /// A store's connections, by platform.
    async fn list_connections(&self, store_id: &StoreId) -> Result<Vec<Connection>, StoreError>;

    /// Writes back a changed connection if nobody else changed it since it was read (its `version`);
    /// else [`StoreError::Conflict`]. Records `event` in the same transaction.
    async fn update_connection(
        &self,
        connection: &Connection,
        event: Option<&NewEvent>,
    ) -> Result<Connection, StoreError>;

    /// Deletes a connection, recording `event` in the same transaction; returns what was deleted.
    async fn delete_connection(
        &self,
        store_id: &StoreId,
        platform: &PlatformId,
        event: Option<&NewEvent>,
    ) -> Result<Option<Connection>, StoreError>;

    /// Up to `limit` connections whose tokens were sealed with a key other than `current_key_id`.
    async fn connections_to_reseal(
        &self,
        current_key_id: &str,
        limit: i64,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Takes the refresh lease of a connection for `lease` if nobody holds a live one; returns the
    /// fresh row. The lease is the fencing token: only its holder can finish the refresh. Its times
    /// come from the database's clock, not the caller's: replicas whose clocks disagree still
    /// exclude each other (for SQLite, embedded in one process, the machine's clock is the
    /// database's).
    async fn acquire_refresh_lease(
        &self,
        id: Uuid,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Connection>, StoreError>;

    /// Deletes exactly the row that was read (its id and version), recording `event` in the same
    /// transaction; `None` when that row is gone or has changed since.
    async fn delete_connection_row(
        &self,
        id: Uuid,
        version: i64,
        event: Option<&NewEvent>,
    ) -> Result<Option<Connection>, StoreError>;

    /// How many rows each key id sealed.
    async fn key_id_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Up to `limit` rows sealed with `key_id` whose id is above `after`, by id (for paging past
    /// rows that cannot be re-sealed).
    async fn connections_sealed_with(
        &self,
        key_id: &str,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Puts back to CONNECTED, due at `now`, the ERROR rows sealed with `key_id` whose last error
    /// is `reason` (rows parked because their key was unknown); returns them.
    async fn revive_errors_sealed_with(
        &self,
        key_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Writes a refreshed connection and frees the lease, only if `owner` still holds it.
    async fn finish_refresh(
        &self,
        connection: &Connection,
        owner: &str,
        event: Option<&NewEvent>,
    ) -> Result<Connection, StoreError>;

    /// Frees a lease without changing the connection.
    async fn release_refresh_lease(&self, id: Uuid, owner: &str) -> Result<(), StoreError>;

    /// Up to `limit` connected rows whose next refresh is due and whose lease is free, soonest first.
    /// Served by the partial index on `next_refresh_at`: the cost follows the due rows.
    async fn due_for_refresh(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Claims up to `limit` connected rows whose liveness check is due at `now`, moving their
    /// `next_check_at` to `next` in the same statement: another replica claiming at the same time
    /// gets other rows (PostgreSQL skips the rows being claimed), so each is checked once a period.
    async fn claim_liveness_checks(
        &self,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Records a finished liveness check: `alive_at` when the token was found working, and the
    /// next check at `next` (a claim only holds the row for a short while, so a check cut short by
    /// a crash or a shutdown is taken up again soon, not a period later).
    async fn record_liveness_check(
        &self,
        id: Uuid,
        alive_at: Option<DateTime<Utc>>,
        next: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Connected rows the health sweep looks at, by id after `after`, at most `limit`: failing since
    /// `failing_before` or earlier without an alert yet, or whose renewal credential or reported
    /// data-access expiry (`metadata.data_access_expires_at`, Unix seconds) runs out by
    /// `expiring_before`.
    async fn health_sweep_candidates(
        &self,
        failing_before: DateTime<Utc>,
        expiring_before: DateTime<Utc>,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Records an expiry warning of `days` for the episode ending at `reconnect_by`, with `event`
    /// in the same transaction, unless that episode was already warned of `days` or fewer; `true`
    /// when this call recorded it (so exactly one replica sends each warning).
    async fn mark_expiry_warned(
        &self,
        id: Uuid,
        reconnect_by: DateTime<Utc>,
        days: i32,
        event: &NewEvent,
    ) -> Result<bool, StoreError>;

    /// Records the `refresh_failing` alert of the episode that began at `failing_since`, with
    /// `event` in the same transaction, unless it was sent already, the episode ended, or a refresh
    /// holds the lease; `true` when this call recorded it.
    async fn mark_failing_alerted(
        &self,
        id: Uuid,
        failing_since: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &NewEvent,
    ) -> Result<bool, StoreError>;

    /// Connections counted by platform and status.
    async fn count_by_status(&self) -> Result<Vec<StatusCount>, StoreError>;

    /// Claims up to `limit` undelivered events due at `now`, pushing their next attempt to `lease_until`
    /// so other replicas skip them meanwhile.
    async fn claim_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Marks an event delivered.
    async fn mark_event_delivered(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records a failed delivery and when to try again.
    async fn mark_event_failed(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Gives up on an event (its last attempt failed): it becomes a dead letter, kept for inspection
    /// and never claimed again.
    async fn mark_event_dead(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Deletes up to `limit` events delivered before `before`, oldest first; returns how many.
    /// Bounded so that one call never holds a long transaction.
    async fn prune_delivered_events(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError>;

    /// How many events are dead letters.
    async fn count_dead_events(&self) -> Result<i64, StoreError>;

    /// Stores a new API key by its hash; [`StoreError::Conflict`] when the name (or hash) exists.
    async fn create_api_key(&self, record: &ApiKeyRecord, hash: &str) -> Result<(), StoreError>;

    /// The key with this hash, revoked or not.
    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every key, by name.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes the named key; `false` when there is no such key or it was already revoked.
    async fn revoke_api_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// How many keys are revoked (keys are never un-revoked nor deleted, so the count only grows:
    /// a change tells a replica that a key it cached may have been revoked).
    async fn revoked_api_key_count(&self) -> Result<i64, StoreError>;

    /// Sets a key's `last_used_at` to `at` unless it was already set after `stale_before`.
    async fn touch_api_key(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Appends audit rows in one transaction.
    async fn insert_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError>;

    /// A store's audit rows at or after `since`, newest first, strictly before the `(at, id)`
    /// cursor when given; at most `limit`. Served by the `(store_id, at)` index.
    async fn list_audit(
        &self,
        store_id: &StoreId,
        since: DateTime<Utc>,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError>;

    /// Deletes up to `limit` audit rows older than `before`, oldest first; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;

    /// Replaces a connection's assets with what discovery found at `now`, in one transaction:
    /// assets gone are removed, the selection of those still there is kept, and a kind with a
    /// single asset and no selection gets it selected ([`plan_selection`]).
    async fn replace_assets(
        &self,
        connection_id: Uuid,
        assets: &[NewAsset],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every asset of a store's connections, in one query, by platform, kind and name.
    async fn list_assets(&self, store_id: &StoreId) -> Result<Vec<StoredAsset>, StoreError>;

    /// Makes `(kind, id)` the connection's default of its kind (one per kind); `false` when the
    /// connection has no such asset (nothing changes then).
    async fn select_asset(
        &self,
        connection_id: Uuid,
        kind: &str,
        id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores verified platform notices in one transaction, skipping those already stored (same
    /// platform and dedupe key); returns, for each, whether it was new.
    async fn insert_platform_events(
        &self,
        events: &[NewPlatformEvent],
    ) -> Result<Vec<bool>, StoreError>;

    /// Claims up to `limit` unprocessed notices due at `now` in one statement, moving their next
    /// attempt to `lease_until`: another replica claiming at the same time gets other rows, and a
    /// claim cut short by a crash is taken up again at `lease_until`.
    async fn claim_platform_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PlatformEventRow>, StoreError>;

    /// Records a notice processed with `outcome`; `scrub` empties its payload and account id (a
    /// data deletion request keeps nothing personal once done).
    async fn finish_platform_event(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        outcome: &str,
        scrub: bool,
    ) -> Result<(), StoreError>;

    /// Records a batch of notices processed, each with its outcome, and writes `webhooks` to the
    /// outbox, in one transaction: the webhooks of a batch are sent once, or the batch is taken up
    /// again.
    async fn finish_platform_events(
        &self,
        finished: &[(Uuid, &str)],
        at: DateTime<Utc>,
        webhooks: &[NewEvent],
    ) -> Result<(), StoreError>;

    /// Puts a notice whose processing failed back for another attempt at `next`.
    async fn retry_platform_event(
        &self,
        id: Uuid,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Deletes up to `limit` notices processed before `before`; returns how many. (They are kept a
    /// while after processing: their dedupe keys catch the platforms' redeliveries.)
    async fn prune_platform_events(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, StoreError>;

    /// The connections on `platform` whose account is `account_id`.
    async fn connections_by_account(
        &self,
        platform: &PlatformId,
        account_id: &str,
    ) -> Result<Vec<Connection>, StoreError>;

    /// The connections on `platform` that hold the asset `asset_id` (a page, an Instagram account).
    async fn connections_by_asset(
        &self,
        platform: &PlatformId,
        asset_id: &str,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Marks a connection REVOKED by its platform, if it still is the row that was read (its
    /// version): its tokens are deleted, its refreshes and probes stop, a refresh lease is voided
    /// (so no refresh in flight can write its result over it), and `event` is recorded in the
    /// same transaction. `None` when the row changed or is gone.
    async fn mark_removed(
        &self,
        connection: &Connection,
        reason: &str,
        at: DateTime<Utc>,
        event: &NewEvent,
    ) -> Result<Option<Connection>, StoreError>;

    /// Records a data deletion request unless its code exists.
    async fn create_deletion_request(&self, request: &DeletionRequest) -> Result<(), StoreError>;

    /// The deletion request with this confirmation code.
    async fn deletion_request(&self, code: &str) -> Result<Option<DeletionRequest>, StoreError>;

    /// Marks a deletion request completed.
    async fn complete_deletion_request(
        &self,
        code: &str,
        at: DateTime<Utc>,
        connections_deleted: i32,
    ) -> Result<(), StoreError>;
}
