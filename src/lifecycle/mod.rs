//! The token lifecycle: recording a grant, handing out a valid access token (refreshing it first when
//! it is about to expire), renewing before expiry, marking dead connections, and disconnecting.
//!
//! One refresh at a time, across every replica: a refresh first takes the connection's lease in the
//! database (a conditional update, so PostgreSQL arbitrates between replicas), and only the lease's
//! holder may write the result (the lease is the fencing token). Others wait and then read the fresh
//! row. A rotated refresh token is written to the database before anything uses it.
//!
//! Layout: `renewal` (pure: is a token due, which renewal, the schedule), `merge` (pure: a renewal's
//! answer merged into the old token set; the row rewrites), `outcome` (pure: a failure classified
//! into a [`RefreshFailure`] and what it implies), `refresh` (the thin I/O: lease, platform call,
//! write, cache, metrics, in a tracked task that outlives its caller), `recovery` (renewed sets the
//! database refused, kept until written), `refresher` (the background loop), `supervise` (restarts
//! background tasks that panic), `cache`, `events` and `webhooks`; `assets` (the merchant's assets:
//! discovery after connect and on demand, the selection, the token for an account); `listing` (the
//! per-replica cache of a store's rows behind the connections listing, which every write path
//! below invalidates through [`Connections::changed`]); `health` (pure: a connection's health state,
//! `reconnect_by`, which expiry warning is owed) and `liveness` (the background probe of tokens and
//! the sweep that sends the health events).

mod assets;
pub mod cache;
pub mod events;
pub mod health;
mod issued;
pub mod listing;
pub mod liveness;
mod merge;
pub mod outcome;
mod recovery;
mod refresh;
pub mod refresher;
mod renewal;
pub mod supervise;
pub mod webhooks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::domain::{Connection, ConnectionStatus, PlatformId, StoreId, TokenSet};
use crate::metrics::Metrics;
use crate::platforms::catalog::{Catalog, PlatformSpec};
use crate::platforms::client::{
    PlatformClient, RevocationOutcome, RevocationReport, TokenRevocation,
};
use crate::platforms::error::OAuthError;
use crate::platforms::{Grant, ReconnectRule};
use crate::redis_conn::RedisHandle;
use crate::store::{Store, StoreError};
use crate::vault::{Binding, Keyring, VaultError};

pub use crate::platforms::GrantDetails;
pub use assets::{AccountRef, AccountToken};
pub use cache::TokenCache;
pub use health::HealthSettings;
pub use issued::IssuedToken;
pub use listing::{Listing, ListingCache};
pub use outcome::{backoff, RefreshFailure};
use recovery::RecoveryStore;

/// How long a refresh lease lasts: longer than a platform call may take (its timeout), so a live
/// holder never loses it, and short enough that a crashed holder frees the connection soon.
pub(crate) const LEASE: StdDuration = StdDuration::from_secs(60);

/// What disconnecting did.
#[derive(Debug, Clone)]
pub struct DisconnectOutcome {
    /// The connection that was removed.
    pub connection: Connection,
    /// What the platform said to revocation: `Revoked` only if every token attempted was revoked.
    pub revocation: RevocationOutcome,
    /// Each token attempted and whether it was revoked.
    pub tokens: Vec<TokenRevocation>,
}

/// The lifecycle service, shared by the HTTP edge, the flow and the background refresher.
#[derive(Debug, Clone)]
pub struct Connections {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    cache: TokenCache,
    client: PlatformClient,
    catalog: Arc<Catalog>,
    clock: SharedClock,
    refresh_window: Duration,
    replica: Arc<str>,
    metrics: Metrics,
    recovery: RecoveryStore,
    inflight: TaskTracker,
    shutting_down: Arc<AtomicBool>,
    audit: Option<AuditLog>,
    health: Arc<HealthSettings>,
    listings: ListingCache,
}

impl Connections {
    /// Builds the service.
    // Plain wiring of the services it stands on; a builder would add ceremony, not clarity.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        cache: TokenCache,
        client: PlatformClient,
        catalog: Arc<Catalog>,
        clock: SharedClock,
        refresh_window: StdDuration,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            keyring,
            cache,
            client,
            catalog,
            clock,
            refresh_window: Duration::from_std(refresh_window).unwrap_or(Duration::minutes(5)),
            replica: Uuid::new_v4().to_string().into(),
            metrics,
            recovery: RecoveryStore::new(None),
            inflight: TaskTracker::new(),
            shutting_down: Arc::new(AtomicBool::new(false)),
            audit: None,
            health: Arc::new(HealthSettings::default()),
            listings: ListingCache::off(),
        }
    }

    /// Uses these health settings (probe period, warning thresholds, alert delay).
    pub(crate) fn with_health(mut self, settings: HealthSettings) -> Self {
        self.health = Arc::new(settings);
        self
    }

    /// The rule that says until when a connection lasts without the merchant: its platform's
    /// (a platform gone from the settings falls back to the refresh token's reported expiry).
    pub(crate) fn reconnect_rule(&self, connection: &Connection) -> ReconnectRule {
        self.catalog
            .get(&connection.platform)
            .map_or(ReconnectRule::RefreshTokenExpiry, |spec| spec.reconnect)
    }

    /// A connection's health now, by its platform's rules.
    pub fn health(&self, connection: &Connection) -> health::Health {
        health::assess(
            connection,
            self.reconnect_rule(connection),
            self.clock.now(),
            self.health.warning_window(),
        )
    }

    /// Serves listings from `listings` (see `listing.rs` for when it may be used).
    pub(crate) fn with_listings(mut self, listings: ListingCache) -> Self {
        self.listings = listings;
        self
    }

    /// After a write (attempted: a failed one may still have committed) that changes a store's
    /// connection or its assets: no replica serves the old listing any more.
    pub(crate) async fn changed(&self, store_id: &StoreId) {
        self.listings.changed(store_id).await;
    }

    /// Keeps recovery records in Redis too, where every replica finds them (see `recovery.rs`).
    pub(crate) fn with_recovery_in(mut self, redis: Option<RedisHandle>) -> Self {
        self.recovery = RecoveryStore::new(redis);
        self
    }

    /// Records every refresh's outcome in the audit trail (actor `system`/`refresher`).
    pub(crate) fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Records a refresh's outcome (the metric's label) in the audit trail, when there is one.
    fn audit_refresh(&self, spec: &PlatformSpec, store_id: &StoreId, outcome: &str) {
        let Some(audit) = &self.audit else {
            return;
        };
        let event = AuditEvent::new(Actor::System("refresher".into()), "refresh", "success")
            .with_store(store_id)
            .with_platform(spec.id.as_str());
        audit.record(match outcome {
            "success" => event,
            other => event.failed(other),
        });
    }

    /// Stops taking refresh leases (callers get [`OAuthError::ShuttingDown`]) and waits up to `grace`
    /// for the refreshes in flight to be written; then tries once more to write pending recovery
    /// records. Returns whether every refresh finished in time.
    pub async fn drain(&self, grace: StdDuration) -> bool {
        self.stop_taking_leases();
        self.inflight.close();
        let finished = tokio::time::timeout(grace, self.inflight.wait())
            .await
            .is_ok();
        if !finished {
            tracing::error!(
                in_flight = self.inflight.len(),
                "refreshes still in flight at the end of the shutdown grace period"
            );
        }
        let left = self.recovery.pending().len();
        if left > 0 && self.write_pending_recoveries().await < left {
            tracing::error!("renewed token sets are still waiting for the database at shutdown: they remain in Redis as recovery records, if Redis took them");
        }
        finished
    }

    /// From now on, refuse new refresh leases (the first step of shutting down).
    pub fn stop_taking_leases(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The store (for health checks and tooling).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Seals a token set for one store and platform.
    pub fn seal(&self, store_id: &StoreId, platform: &PlatformId, tokens: &TokenSet) -> String {
        self.keyring.seal(
            Binding::Tokens { store_id, platform },
            &tokens.to_plaintext(),
        )
    }

    /// Opens a connection's sealed token set.
    pub fn open(&self, connection: &Connection) -> Result<TokenSet, OAuthError> {
        let sealed = connection
            .sealed_tokens
            .as_deref()
            .ok_or(OAuthError::NotUsable(connection.status))?;
        self.open_sealed(connection, sealed)
    }

    /// Opens a token set sealed for `connection`'s store and platform.
    fn open_sealed(&self, connection: &Connection, sealed: &str) -> Result<TokenSet, OAuthError> {
        let plain = self.keyring.open(
            Binding::Tokens {
                store_id: &connection.store_id,
                platform: &connection.platform,
            },
            sealed,
        )?;
        TokenSet::from_plaintext(plain.expose_secret())
            .map_err(|_| OAuthError::Vault(VaultError::Malformed))
    }

    /// When the refresher should look at a connection next.
    fn schedule(&self, spec: &PlatformSpec, tokens: &TokenSet) -> Option<DateTime<Utc>> {
        renewal::schedule(spec.renewal, self.refresh_window, tokens, self.clock.now())
    }

    /// Stores a fresh grant as the store's connection to the platform (replacing any earlier one)
    /// and records `connection.created`.
    pub async fn record_grant(
        &self,
        spec: &PlatformSpec,
        Grant {
            ref store_id,
            ref user_id,
            tokens: grant,
            account,
            details,
            extra_secrets,
            ..
        }: Grant,
    ) -> Result<Connection, OAuthError> {
        let now = self.clock.now();
        let mut tokens = grant.tokens;
        tokens.extra.extend(extra_secrets);
        let granted = match details.granted_scopes {
            Some(scopes) => scopes,
            None if grant.scopes_reported => tokens.scopes.clone(),
            // The platform did not say: it grants all or nothing (Meta's FLfB) or all it was asked.
            None => spec.scopes.clone(),
        };
        tokens.scopes = granted.clone();
        let missing: Vec<String> = spec
            .scopes
            .iter()
            .filter(|s| !granted.contains(s))
            .cloned()
            .collect();
        // A reconnect updates the store's row in place (the upsert keeps its id): the event and the
        // first check's offset must name that id, not a fresh one.
        let id = match self.store.get_connection(store_id, &spec.id).await? {
            Some(existing) => existing.id,
            None => Uuid::now_v7(),
        };
        let connection = Connection {
            id,
            store_id: store_id.clone(),
            user_id: user_id.clone(),
            platform: spec.id.clone(),
            status: ConnectionStatus::Connected,
            account_id: account.id.or(grant.account_hint),
            account_name: account.name,
            account_picture: account.picture,
            sealed_tokens: Some(self.seal(store_id, &spec.id, &tokens)),
            key_id: Some(self.keyring.current_key_id().to_owned()),
            metadata: details.metadata,
            granted_scopes: granted,
            missing_scopes: missing,
            access_token_expires_at: tokens.expires_at,
            refresh_token_expires_at: tokens.refresh_expires_at,
            last_refreshed_at: None,
            next_refresh_at: self.schedule(spec, &tokens),
            refresh_failures: 0,
            last_error: None,
            version: 1,
            created_at: now,
            updated_at: now,
            failing_since: None,
            health_since: Some(now),
            // The identity call made at connect is the first liveness check; the next falls at a
            // fixed point of the period, spread by the connection's id.
            last_checked_at: spec.userinfo_url.is_some().then_some(now),
            next_check_at: Some(now + health::first_check_offset(id, self.health.interval())),
            expiry_warned_for: None,
            expiry_warned_days: None,
            failing_alerted_at: None,
        };
        let event = events::event("connection.created", &connection, None, now);
        let saved = self.store.save_connection(&connection, Some(&event)).await;
        self.changed(store_id).await;
        let saved = saved?;
        self.cache.put(&saved).await;
        Ok(saved)
    }

    /// A store's rows (connections and their assets), from the listing cache when it may be used
    /// and holds them, else from the database (both queries at once), then cached.
    pub async fn listing(&self, store_id: &StoreId) -> Result<Arc<Listing>, OAuthError> {
        if let Some(hit) = self.listings.get(store_id) {
            return Ok(hit);
        }
        // Readers that missed together wait for the first one's read (only while the cache is
        // usable: otherwise nothing would be stored for them to find).
        let _filling = match self.listings.ticket() {
            Some(_) => Some(self.listings.fill_lock(store_id).await),
            None => None,
        };
        if let Some(hit) = self.listings.get(store_id) {
            return Ok(hit);
        }
        let ticket = self.listings.ticket();
        let (connections, assets) = tokio::try_join!(
            self.store.list_connections(store_id),
            self.store.list_assets(store_id)
        )?;
        let listing = Arc::new(Listing {
            connections,
            assets,
        });
        if let Some(ticket) = ticket {
            self.listings.put(store_id, ticket, listing.clone());
        }
        Ok(listing)
    }

    /// A store's connections (from the listing cache when it may be used).
    pub async fn list(&self, store_id: &StoreId) -> Result<Vec<Connection>, OAuthError> {
        if self.listings.ticket().is_none() {
            return Ok(self.store.list_connections(store_id).await?);
        }
        Ok(self.listing(store_id).await?.connections.clone())
    }

    /// The connection, from the cache when it has it, else from the database (then cached).
    async fn load(
        &self,
        store_id: &StoreId,
        platform: &PlatformId,
    ) -> Result<Connection, OAuthError> {
        if let Some(cached) = self.cache.get(store_id, platform).await {
            return Ok(cached);
        }
        let connection = self
            .store
            .get_connection(store_id, platform)
            .await?
            .ok_or(OAuthError::NotFound)?;
        self.cache.put(&connection).await;
        Ok(connection)
    }

    /// A valid access token for the store's connection: refreshed first when it expires within the
    /// refresh window, or when `force` is set.
    pub async fn access_token(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        force: bool,
    ) -> Result<IssuedToken, OAuthError> {
        let connection = self.load(store_id, &spec.id).await?;
        if connection.status != ConnectionStatus::Connected {
            return Err(OAuthError::NotUsable(connection.status));
        }
        let tokens = self.open(&connection)?;
        if !force && self.usable(&connection, &tokens) {
            return Ok(IssuedToken::of(&connection, tokens));
        }
        self.refresh_detached(spec, connection, force).await
    }

    /// After a transient failure the platform is left alone until the back-off ends, as long as the
    /// token still works: callers get the valid token instead of hammering an outage.
    fn cooling_down(&self, connection: &Connection, tokens: &TokenSet) -> bool {
        let now = self.clock.now();
        connection.refresh_failures > 0
            && connection.next_refresh_at.is_some_and(|next| next > now)
            && tokens.expires_at.is_some_and(|at| at > now)
    }

    /// Revokes at the platform where it allows it, deletes the connection and its tokens, and records
    /// `connection.deleted` with the revocation's outcome, overall and per token.
    ///
    /// The delete is bound to the row that was read and revoked (its id and version): a reconnect
    /// (or a refresh) that changed the row in between is neither deleted with tokens nobody revoked
    /// nor left behind silently. The caller then gets a retryable 503 and, retrying, revokes and
    /// deletes the new row. Retrying here instead would revoke a grant the merchant may have just
    /// made on purpose, without them seeing it.
    pub async fn disconnect(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
    ) -> Result<DisconnectOutcome, OAuthError> {
        let connection = self
            .store
            .get_connection(store_id, &spec.id)
            .await?
            .ok_or(OAuthError::NotFound)?;
        let report = match self.open(&connection) {
            Ok(tokens) => self.client.revoke(spec, &tokens).await,
            Err(_) => RevocationReport {
                outcome: RevocationOutcome::Failed("the stored tokens were unreadable".into()),
                tokens: Vec::new(),
            },
        };
        let now = self.clock.now();
        let outcome = match &report.outcome {
            RevocationOutcome::Revoked => "revoked",
            RevocationOutcome::Unsupported(_) => "not_supported",
            RevocationOutcome::Failed(_) => "failed",
        };
        // Stop serving the cached tokens before they are deleted (and tombstone after), so a cache
        // write that fails cannot keep a disconnected token alive.
        self.cache.tombstone(&connection).await;
        let mut event = events::event("connection.deleted", &connection, None, now);
        event.payload["revocation"] = serde_json::json!(outcome);
        event.payload["revocation_tokens"] = serde_json::json!(report.tokens);
        let deleted = self
            .store
            .delete_connection_row(connection.id, connection.version, Some(&event))
            .await;
        self.changed(store_id).await;
        let Some(deleted) = deleted? else {
            return match self.store.get_connection(store_id, &spec.id).await? {
                None => Err(OAuthError::NotFound),
                Some(_) => Err(OAuthError::Store(StoreError::Conflict)),
            };
        };
        self.cache.tombstone(&deleted).await;
        self.recovery.forget(deleted.id).await;
        Ok(DisconnectOutcome {
            connection: deleted,
            revocation: report.outcome,
            tokens: report.tokens,
        })
    }

    /// Re-seals up to `batch` rows sealed with an old key; returns how many were re-sealed. Rows it
    /// cannot open are left as they are (see [`Self::reseal_all`] for the counts).
    pub async fn reseal_batch(&self, batch: i64) -> Result<usize, OAuthError> {
        let rows = self
            .store
            .connections_to_reseal(self.keyring.current_key_id(), batch)
            .await?;
        let mut done = 0;
        for row in rows {
            if self.reseal(row).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Re-seals every row sealed with an old key this keyring holds, in pages, going past rows it
    /// cannot open. Safe while the service runs: each write is conditional on the row's version, and
    /// a row changed meanwhile was re-sealed by its writer with the current key anyway.
    pub(crate) async fn reseal_all(&self, batch: i64) -> Result<ResealReport, OAuthError> {
        let mut report = ResealReport::default();
        for (key_id, count) in self.store.key_id_counts().await? {
            if key_id == self.keyring.current_key_id() {
                report.already_current += usize::try_from(count).unwrap_or(0);
                continue;
            }
            if !self.keyring.knows(&key_id) {
                report
                    .unreadable
                    .insert(key_id, usize::try_from(count).unwrap_or(0));
                continue;
            }
            let mut after = Uuid::nil();
            loop {
                let rows = self
                    .store
                    .connections_sealed_with(&key_id, after, batch)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                for row in rows {
                    match self.reseal(row).await {
                        Ok(true) => report.resealed += 1,
                        Ok(false) => {}
                        Err(_) => *report.unreadable.entry(key_id.clone()).or_default() += 1,
                    }
                }
            }
        }
        Ok(report)
    }

    /// Re-seals one row with the current key; `false` when it changed meanwhile. An error when its
    /// tokens cannot be opened or the database failed.
    async fn reseal(&self, row: Connection) -> Result<bool, OAuthError> {
        let tokens = self.open(&row)?;
        let updated = Connection {
            sealed_tokens: Some(self.seal(&row.store_id, &row.platform, &tokens)),
            key_id: Some(self.keyring.current_key_id().to_owned()),
            ..row
        };
        let saved = self.store.update_connection(&updated, None).await;
        self.changed(&updated.store_id).await;
        match saved {
            Ok(saved) => {
                self.cache.put(&saved).await;
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Puts back in service the ERROR rows that an older release parked because their key was
    /// unknown, for every key this keyring now holds. Cheap (a partial index on ERROR rows); run by
    /// the refresher each round.
    pub(crate) async fn heal_unknown_keys(&self) -> Result<usize, OAuthError> {
        let mut healed = 0;
        for key_id in self.keyring.key_ids() {
            let now = self.clock.now();
            let rows = self
                .store
                .revive_errors_sealed_with(key_id, outcome::LEGACY_UNREADABLE, now)
                .await?;
            for row in &rows {
                self.changed(&row.store_id).await;
                tracing::warn!(store_id = %row.store_id, platform = %row.platform, key_id, "a connection parked for an unknown key is back: its key is known now");
                self.cache.put(row).await;
            }
            healed += rows.len();
        }
        Ok(healed)
    }
}

/// What `rotate-keys` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ResealReport {
    /// Rows re-sealed with the current key.
    pub resealed: usize,
    /// Rows already sealed with the current key.
    pub already_current: usize,
    /// Rows left as they are because they cannot be opened, by the key id that sealed them.
    pub unreadable: std::collections::BTreeMap<String, usize>,
}
