//! The refresh service ([`Refresh`]): the refresh's I/O, kept thin around the pure pieces
//! (`renewal`, `merge`, `outcome`): take the lease, apply a pending recovery record, call the
//! platform, write the result, update the cache and the metrics.
//!
//! A refresh runs in its own task, tracked by this service: the caller awaits its result, and a
//! caller that hangs up (an HTTP client timing out, a dropped handler) changes nothing, so a token
//! set a platform has issued is always written. On shutdown no new lease is taken and the tasks in
//! flight are awaited (see [`Refresh::drain`]). A write the database refuses leaves a recovery
//! record (`recovery.rs`).
//!
//! It does not hand tokens out (`tokens.rs` decides when a refresh is needed and calls it) nor
//! run the background loop (`refresher.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::events;
use super::issued::IssuedToken;
use super::merge::merge;
use super::outcome::{self, RefreshFailure};
use super::recovery::{fingerprint, RecoveryRecord, RecoveryStore};
use super::renewal::{self, Plan};
use super::shared::Core;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::{Connection, ConnectionStatus, StoreId, TokenSet};
use crate::error::OAuthError;
use crate::metrics::Metrics;
use crate::platforms::error::PlatformError;
use crate::platforms::{PlatformClient, PlatformSpec, TokenGrant};
use crate::redis_conn::RedisHandle;
use crate::store::{NewEvent, StoreError};

/// How long a refresh lease lasts: longer than a platform call may take (its timeout), so a live
/// holder never loses it, and short enough that a crashed holder frees the connection soon.
pub(crate) const LEASE: StdDuration = StdDuration::from_secs(60);

/// The most a platform's follow-up call after a renewal (Meta's `debug_token`) may add to a
/// refresh held under its lease.
const AFTER_RENEWAL_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a caller waits for another replica's refresh before giving up.
const WAIT_FOR_OTHER_REFRESH: StdDuration = StdDuration::from_secs(25);
/// Writes of a refresh's result are retried this many times before a recovery record takes over.
const WRITE_ATTEMPTS: u64 = 5;

/// At most one forced refresh per connection in this window: a forced refresh asked for within it
/// of the last renewal hands out that renewal's result. The renewal's time is the row's
/// `last_refreshed_at`, read under the lease, so the window holds across replicas.
pub(crate) const FORCED_REFRESH_INTERVAL: Duration = Duration::seconds(30);

/// Whether a refresh is asked for even though the token is still usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Only when the token is due.
    No,
    /// Now (the refresh endpoint: the caller asked for a new token).
    Always,
    /// Now, unless the connection was renewed within [`FORCED_REFRESH_INTERVAL`] (a platform's
    /// dead-token answer, which any caller of the proxy can provoke).
    OncePerWindow,
}

impl From<bool> for Force {
    fn from(force: bool) -> Self {
        if force {
            Self::Always
        } else {
            Self::No
        }
    }
}

/// What the lease holder found on taking the lease.
enum Step {
    /// Done: hand this out.
    Issue(IssuedToken),
    /// Call the platform.
    Refresh(Connection),
    /// A recovery record was written (lease released): decide again on the new row.
    Again(Connection),
}

/// What the refresh service is built from besides the core.
#[derive(Debug)]
pub struct RefreshParts {
    /// Speaks to the platforms.
    pub client: PlatformClient,
    /// `REFRESH_WINDOW_SECONDS`: a token expiring within this is refreshed before it is handed out.
    pub window: StdDuration,
    /// Keeps recovery records in Redis too, where every replica finds them (see `recovery.rs`).
    pub recovery_in: Option<RedisHandle>,
    /// Counts each refresh's outcome.
    pub metrics: Metrics,
    /// Records each refresh's outcome in the audit trail (actor `system`/`refresher`), when set.
    pub audit: Option<AuditLog>,
}

/// Renewing tokens: the lease, the platform call, the write (or its recovery record), and the
/// shutdown of all that (no new lease, the refreshes in flight awaited). A cheap clone.
#[derive(Debug, Clone)]
pub struct Refresh(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    core: Core,
    client: PlatformClient,
    window: Duration,
    leases: Leases,
    recovery: RecoveryStore,
    log: RefreshLog,
}

/// This replica's leases: its name in lease owners, the refreshes it runs, and whether it still
/// takes leases.
#[derive(Debug)]
struct Leases {
    replica: Arc<str>,
    inflight: TaskTracker,
    shutting_down: AtomicBool,
}

/// Where each refresh's outcome is recorded: the metric and, when there is one, the audit trail.
#[derive(Debug)]
struct RefreshLog {
    metrics: Metrics,
    audit: Option<AuditLog>,
}

impl RefreshLog {
    /// Records a refresh's outcome (the metric's label).
    fn record(&self, spec: &PlatformSpec, store_id: &StoreId, outcome: &str) {
        self.metrics.refresh(spec.id.as_str(), outcome);
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
}

impl Refresh {
    /// Builds the service.
    pub fn new(core: Core, parts: RefreshParts) -> Self {
        Self(Arc::new(Shared {
            core,
            client: parts.client,
            window: Duration::from_std(parts.window).unwrap_or(Duration::minutes(5)),
            leases: Leases {
                replica: Uuid::new_v4().to_string().into(),
                inflight: TaskTracker::new(),
                shutting_down: AtomicBool::new(false),
            },
            recovery: RecoveryStore::new(parts.recovery_in),
            log: RefreshLog {
                metrics: parts.metrics,
                audit: parts.audit,
            },
        }))
    }

    /// The core it stands on.
    pub fn core(&self) -> &Core {
        &self.0.core
    }

    /// Stops taking refresh leases (callers get [`OAuthError::ShuttingDown`]) and waits up to `grace`
    /// for the refreshes in flight to be written; then tries once more to write pending recovery
    /// records. Returns whether every refresh finished in time.
    pub async fn drain(&self, grace: StdDuration) -> bool {
        self.stop_taking_leases();
        self.0.leases.inflight.close();
        let finished = tokio::time::timeout(grace, self.0.leases.inflight.wait())
            .await
            .is_ok();
        if !finished {
            tracing::error!(
                in_flight = self.0.leases.inflight.len(),
                "refreshes still in flight at the end of the shutdown grace period"
            );
        }
        let left = self.0.recovery.pending().len();
        if left > 0 && self.write_pending_recoveries().await < left {
            tracing::error!("renewed token sets are still waiting for the database at shutdown: they remain in Redis as recovery records, if Redis took them");
        }
        finished
    }

    /// From now on, refuse new refresh leases (the first step of shutting down).
    pub fn stop_taking_leases(&self) {
        self.0.leases.shutting_down.store(true, Ordering::SeqCst);
    }

    /// A lease owner's name for `role` (`refresher`, ...): this replica's, unique per lease.
    pub(crate) fn lease_owner(&self, role: &str) -> String {
        format!("{}:{role}:{}", self.0.leases.replica, Uuid::new_v4())
    }

    /// When the refresher should look at a connection next.
    pub(crate) fn schedule(&self, spec: &PlatformSpec, tokens: &TokenSet) -> Option<DateTime<Utc>> {
        renewal::schedule(
            spec.renewal,
            self.0.window,
            tokens,
            self.0.core.clock().now(),
        )
    }

    /// Forgets a connection's recovery record (the connection is gone).
    pub(crate) async fn forget_recovery(&self, connection_id: Uuid) {
        self.0.recovery.forget(connection_id).await;
    }

    /// Runs [`Self::refresh_under_lease`] in its own tracked task and awaits it: dropping the
    /// caller does not stop the refresh.
    pub(crate) async fn refresh_detached(
        &self,
        spec: &PlatformSpec,
        seen: Connection,
        force: Force,
    ) -> Result<IssuedToken, OAuthError> {
        let this = self.clone();
        let spec_owned = spec.clone();
        self.tracked(spec, async move {
            this.refresh_under_lease(&spec_owned, seen, force).await
        })
        .await
    }

    /// Runs [`Self::refresh_holding_lease`] (the caller took the lease) in its own tracked task
    /// and awaits it, so that shutdown waits for it.
    pub(crate) async fn refresh_leased(
        &self,
        spec: &PlatformSpec,
        leased: Connection,
        owner: String,
    ) -> Result<IssuedToken, OAuthError> {
        let this = self.clone();
        let spec_owned = spec.clone();
        self.tracked(spec, async move {
            this.refresh_holding_lease(&spec_owned, leased, &owner)
                .await
        })
        .await
    }

    /// Runs a refresh in the tracked task set (awaited by [`Self::drain`]) and awaits it.
    async fn tracked(
        &self,
        spec: &PlatformSpec,
        refresh: impl std::future::Future<Output = Result<IssuedToken, OAuthError>> + Send + 'static,
    ) -> Result<IssuedToken, OAuthError> {
        let task = self.0.leases.inflight.spawn(refresh);
        task.await.unwrap_or_else(|error| {
            tracing::error!(platform = %spec.id, %error, "a refresh task failed");
            Err(OAuthError::Platform(PlatformError::Unavailable {
                platform: spec.id.clone(),
                detail: "the refresh did not complete".into(),
                retry_after: Some(StdDuration::from_secs(5)),
            }))
        })
    }

    /// Takes a connection's refresh lease, timed by the database's clock; refuses once shutting
    /// down, so that the refreshes in flight are the last ones.
    pub(crate) async fn take_lease(
        &self,
        id: Uuid,
        owner: &str,
    ) -> Result<Option<Connection>, OAuthError> {
        if self.0.leases.shutting_down.load(Ordering::SeqCst) {
            return Err(OAuthError::ShuttingDown);
        }
        Ok(self
            .0
            .core
            .store()
            .acquire_refresh_lease(id, owner, LEASE)
            .await?)
    }

    /// Refreshes a connection while holding its lease, or waits for whoever holds it and uses their
    /// result. `seen` is the row the caller decided on; a newer row means someone else refreshed.
    async fn refresh_under_lease(
        &self,
        spec: &PlatformSpec,
        mut seen: Connection,
        force: Force,
    ) -> Result<IssuedToken, OAuthError> {
        let owner = format!("{}:{}", self.0.leases.replica, Uuid::new_v4());
        let give_up = tokio::time::Instant::now() + WAIT_FOR_OTHER_REFRESH;
        loop {
            if let Some(fresh) = self.take_lease(seen.id, &owner).await? {
                match self.on_lease(spec, &seen, fresh, &owner, force).await? {
                    Step::Issue(token) => return Ok(token),
                    Step::Refresh(fresh) => {
                        return self.refresh_holding_lease(spec, fresh, &owner).await
                    }
                    Step::Again(saved) => {
                        seen = saved;
                        continue;
                    }
                }
            }
            // Another caller (here or in another replica) is refreshing: wait for its result.
            let pause = rand::thread_rng().gen_range(30..80);
            tokio::time::sleep(StdDuration::from_millis(pause)).await;
            if let Some(token) = self.their_result(&seen).await? {
                return Ok(token);
            }
            if tokio::time::Instant::now() > give_up {
                return Err(OAuthError::Platform(PlatformError::Unavailable {
                    platform: spec.id.clone(),
                    detail: "a refresh in progress did not finish in time".into(),
                    retry_after: Some(StdDuration::from_secs(5)),
                }));
            }
        }
    }

    /// Decides, as the new lease holder, whether a platform call is still needed.
    async fn on_lease(
        &self,
        spec: &PlatformSpec,
        seen: &Connection,
        fresh: Connection,
        owner: &str,
        force: Force,
    ) -> Result<Step, OAuthError> {
        if fresh.status != ConnectionStatus::Connected {
            self.0
                .core
                .store()
                .release_refresh_lease(fresh.id, owner)
                .await?;
            self.0.core.cache().put(&fresh).await;
            return Err(OAuthError::NotUsable(fresh.status));
        }
        match self.settle_recovery(spec, fresh.clone(), owner).await {
            Ok(Some(saved)) => return Ok(Step::Again(saved)),
            Ok(None) => {}
            Err(error) => {
                self.0
                    .core
                    .store()
                    .release_refresh_lease(fresh.id, owner)
                    .await?;
                return Err(error);
            }
        }
        // Someone refreshed between our read and our lease: use their result (a forced refresh is
        // satisfied by it too), unless it is already due again.
        let someone_refreshed = fresh.version != seen.version;
        let tokens = match self.0.core.open(&fresh) {
            Ok(tokens) => tokens,
            Err(error) => {
                self.0
                    .core
                    .store()
                    .release_refresh_lease(fresh.id, owner)
                    .await?;
                return Err(error);
            }
        };
        if self.usable(&fresh, &tokens)
            && (someone_refreshed
                || force == Force::No
                || (force == Force::OncePerWindow && self.renewed_lately(&fresh)))
        {
            self.0
                .core
                .store()
                .release_refresh_lease(fresh.id, owner)
                .await?;
            self.0.core.cache().put(&fresh).await;
            return Ok(Step::Issue(IssuedToken::of(&fresh, tokens)));
        }
        Ok(Step::Refresh(fresh))
    }

    /// Whether the connection was renewed within [`FORCED_REFRESH_INTERVAL`]: a forced refresh is
    /// then answered with that renewal's tokens (however many callers a dead-token answer reached).
    fn renewed_lately(&self, connection: &Connection) -> bool {
        let now = self.0.core.clock().now();
        connection.last_refreshed_at.is_some_and(|at| {
            at > now - FORCED_REFRESH_INTERVAL && at < now + FORCED_REFRESH_INTERVAL
        })
    }

    /// The row another refresher left, if it is usable now.
    async fn their_result(&self, seen: &Connection) -> Result<Option<IssuedToken>, OAuthError> {
        let current = self
            .0
            .core
            .store()
            .get_connection(&seen.store_id, &seen.platform)
            .await?
            .ok_or(OAuthError::NotFound)?;
        if current.id != seen.id {
            return Err(OAuthError::NotFound);
        }
        if current.version == seen.version {
            return Ok(None);
        }
        if current.status != ConnectionStatus::Connected {
            return Err(OAuthError::NotUsable(current.status));
        }
        let tokens = self.0.core.open(&current)?;
        if !self.usable(&current, &tokens) {
            return Ok(None);
        }
        self.0.core.cache().put(&current).await;
        Ok(Some(IssuedToken::of(&current, tokens)))
    }

    /// Calls the platform and writes the outcome, as the holder of the connection's lease.
    async fn refresh_holding_lease(
        &self,
        spec: &PlatformSpec,
        connection: Connection,
        owner: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let old = match self.0.core.open(&connection) {
            Ok(tokens) => tokens,
            Err(error) => {
                self.store_failure(spec, connection, &error, owner).await?;
                return Err(error);
            }
        };
        match self.renew(spec, &old).await {
            Ok(grant) => {
                let mut connection = connection;
                // What the platform notes after a renewal (a data-access expiry; best effort). It runs
                // under the lease and before the write, so it gets a short budget of its own: the
                // renewed tokens must be stored well within the shutdown grace.
                let noted = tokio::time::timeout(
                    AFTER_RENEWAL_BUDGET,
                    spec.behaviour.after_renewal(
                        &self.0.client,
                        spec,
                        &grant.tokens.access_token,
                        &mut connection.metadata,
                    ),
                )
                .await;
                if noted.is_err() {
                    tracing::warn!(platform = %spec.id, "the call after a renewal took too long; the renewal is stored without it");
                }
                self.store_renewal(spec, connection, old, grant, owner)
                    .await
            }
            Err(error) => {
                let saved = self.store_failure(spec, connection, &error, owner).await?;
                // A platform outage does not make a still-valid token useless.
                match old.expires_at {
                    Some(at) if at > self.0.core.clock().now() => Ok(IssuedToken::of(&saved, old)),
                    _ => Err(error),
                }
            }
        }
    }

    /// The platform call the renewal plan asks for.
    async fn renew(&self, spec: &PlatformSpec, old: &TokenSet) -> Result<TokenGrant, OAuthError> {
        let now = self.0.core.clock().now();
        match renewal::choose(spec.renewal, old, now) {
            Plan::RefreshToken(token) => self
                .0
                .client
                .refresh(spec, token, now)
                .await
                .map_err(OAuthError::from),
            Plan::ExchangeLiveToken(token) => (spec.behaviour)
                .exchange_live_token(&self.0.client, spec, token, now)
                .await
                .map_err(OAuthError::from),
            Plan::Impossible(why) => Err(why.into_error(&spec.id)),
        }
    }

    /// Writes a renewal's tokens; if the database refuses them, keeps a recovery record and still
    /// hands the (valid) new token out.
    async fn store_renewal(
        &self,
        spec: &PlatformSpec,
        connection: Connection,
        old: TokenSet,
        grant: TokenGrant,
        owner: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let now = self.0.core.clock().now();
        let base = fingerprint(&old);
        let tokens = merge(old, grant, spec.renewal);
        let sealed = self.0.core.seal_with_id(&connection, &tokens);
        let next = renewal::schedule(spec.renewal, self.0.window, &tokens, now);
        let alerted = connection.clone();
        let updated = connection.with_tokens(&tokens, sealed.clone(), &spec.scopes, next, now);
        let recovered = events::recovered(&alerted, &updated, now);
        match self
            .finish_with_retry(&updated, owner, recovered.as_ref())
            .await
        {
            Ok(saved) => {
                self.0.recovery.forget(saved.id).await;
                self.0.core.cache().put(&saved).await;
                self.0.log.record(spec, &saved.store_id, "success");
                Ok(IssuedToken::of(&saved, tokens))
            }
            Err(OAuthError::Store(StoreError::Unavailable(error))) => {
                tracing::error!(platform = %spec.id, store_id = %updated.store_id, %error, rotates = spec.refresh_rotates, "the database refused a renewed token set: keeping it as a recovery record until it is written");
                self.0
                    .recovery
                    .keep(RecoveryRecord {
                        connection_id: updated.id,
                        store_id: updated.store_id.clone(),
                        platform: updated.platform.clone(),
                        sealed,
                        renewed_at: now,
                        base: Some(base),
                        owner: Some(owner.to_owned()),
                    })
                    .await;
                self.0
                    .log
                    .record(spec, &updated.store_id, "recovery_record");
                Ok(IssuedToken::of(&updated, tokens))
            }
            Err(error) => {
                tracing::error!(platform = %spec.id, store_id = %updated.store_id, error = %error, rotates = spec.refresh_rotates, "a refreshed token could not be stored (the lease was lost)");
                Err(error)
            }
        }
    }

    /// Writes a failed refresh: the status, event and next look its classification implies.
    async fn store_failure(
        &self,
        spec: &PlatformSpec,
        connection: Connection,
        error: &OAuthError,
        owner: &str,
    ) -> Result<Connection, OAuthError> {
        let now = self.0.core.clock().now();
        let failure = RefreshFailure::classify(error, connection.refresh_failures + 1, now);
        let reason = failure
            .own_reason()
            .unwrap_or_else(|| crate::platforms::error::scrub(&error.to_string()));
        match &failure {
            RefreshFailure::KeyUnavailable { key_id, .. } => {
                tracing::error!(platform = %spec.id, store_id = %connection.store_id, key_id = %key_id, "a connection is sealed with a key this replica does not hold: add it to TOKEN_ENCRYPTION_OLD_KEYS (key rollout); backing off, the connection stays CONNECTED");
            }
            RefreshFailure::Unreadable => {
                tracing::error!(platform = %spec.id, store_id = %connection.store_id, error = %error, "refresh impossible: the stored tokens are unreadable");
            }
            _ => {}
        }
        let updated = connection.parked(failure.status(), failure.next_refresh_at(), &reason, now);
        let event = events::event(failure.event_type(), &updated, Some(&reason), now);
        let saved = self
            .finish_with_retry(&updated, owner, Some(&event))
            .await?;
        self.0.core.cache().put(&saved).await;
        self.0.log.record(spec, &saved.store_id, failure.metric());
        tracing::warn!(platform = %spec.id, store_id = %saved.store_id, status = %saved.status, reason = %reason, "refresh failed");
        if saved.status != ConnectionStatus::Connected {
            return Err(OAuthError::NotUsable(saved.status));
        }
        Ok(saved)
    }

    /// Writes a connection back, as the lease's holder, with a status, the next time to look at it
    /// and the reason, and records `connection.refresh_failed`.
    pub(crate) async fn park(
        &self,
        connection: Connection,
        owner: &str,
        status: ConnectionStatus,
        next_refresh_at: Option<chrono::DateTime<chrono::Utc>>,
        reason: &str,
    ) -> Result<Connection, OAuthError> {
        let now = self.0.core.clock().now();
        let updated = connection.parked(status, next_refresh_at, reason, now);
        let event = events::event("connection.refresh_failed", &updated, Some(reason), now);
        let saved = self
            .finish_with_retry(&updated, owner, Some(&event))
            .await?;
        self.0.core.cache().put(&saved).await;
        Ok(saved)
    }

    async fn finish_with_retry(
        &self,
        connection: &Connection,
        owner: &str,
        event: Option<&NewEvent>,
    ) -> Result<Connection, OAuthError> {
        let mut attempt = 0;
        let result = loop {
            match self
                .0
                .core
                .store()
                .finish_refresh(connection, owner, event)
                .await
            {
                Ok(saved) => break Ok(saved),
                Err(StoreError::Unavailable(error)) if attempt < WRITE_ATTEMPTS => {
                    attempt += 1;
                    tracing::error!(error = %error, attempt, "could not write a refresh result; retrying");
                    tokio::time::sleep(StdDuration::from_millis(200 * attempt)).await;
                }
                Err(error) => break Err(error.into()),
            }
        };
        self.0.core.changed(&connection.store_id).await;
        result
    }

    /// As the lease holder, writes a pending recovery record of `leased` (which frees the lease);
    /// `None` when there is none or it belongs to another grant than the row's (then it is
    /// dropped). The write is fenced by the lease, which a reconnect clears.
    pub(crate) async fn settle_recovery(
        &self,
        spec: &PlatformSpec,
        leased: Connection,
        owner: &str,
    ) -> Result<Option<Connection>, OAuthError> {
        let Some(record) = self.0.recovery.find(leased.id).await else {
            return Ok(None);
        };
        let same_grant = match &record.base {
            Some(base) => *base == fingerprint(&self.0.core.open(&leased)?),
            // An older release's record: only onto a row nobody wrote since the renewal.
            None => leased.updated_at <= record.renewed_at,
        };
        if !same_grant
            || leased
                .last_refreshed_at
                .is_some_and(|at| at >= record.renewed_at)
        {
            if !same_grant {
                tracing::warn!(platform = %spec.id, store_id = %leased.store_id, "a recovery record of an earlier grant was dropped: the connection holds another grant now");
            }
            self.0.recovery.forget(leased.id).await;
            return Ok(None);
        }
        let tokens = self.0.core.open_sealed(&leased, &record.sealed.text)?;
        let next = renewal::schedule(spec.renewal, self.0.window, &tokens, record.renewed_at);
        let alerted = leased.clone();
        let row = leased.with_tokens(
            &tokens,
            record.sealed,
            &spec.scopes,
            next,
            record.renewed_at,
        );
        let recovered = events::recovered(&alerted, &row, self.0.core.clock().now());
        let saved = self
            .finish_with_retry(&row, owner, recovered.as_ref())
            .await?;
        tracing::info!(platform = %spec.id, store_id = %saved.store_id, "a recovery record was written");
        self.0.recovery.forget(saved.id).await;
        self.0.core.cache().put(&saved).await;
        Ok(Some(saved))
    }

    /// Writes the recovery records this process holds, where the database now answers; returns how
    /// many were written. Run by a background task every second.
    pub(crate) async fn write_pending_recoveries(&self) -> usize {
        let mut written = 0;
        for record in self.0.recovery.pending() {
            let Some(spec) = self.0.core.catalog().get(&record.platform).cloned() else {
                continue;
            };
            let result = async {
                let Some(row) = self
                    .0
                    .core
                    .store()
                    .get_connection(&record.store_id, &record.platform)
                    .await?
                    .filter(|row| row.id == record.connection_id)
                else {
                    // The connection is gone (disconnected): nothing left to renew.
                    self.0.recovery.forget(record.connection_id).await;
                    return Ok::<_, OAuthError>(false);
                };
                // The lease the failed write held, if it is still ours; else a new one.
                let owner = record.owner.clone().unwrap_or_default();
                match self.settle_recovery(&spec, row.clone(), &owner).await {
                    Ok(Some(_)) => return Ok(true),
                    Ok(None) => return Ok(false),
                    Err(OAuthError::Store(StoreError::Conflict)) => {}
                    Err(error) => return Err(error),
                }
                let owner = self.lease_owner("recovery");
                let Some(leased) = self.take_lease(row.id, &owner).await? else {
                    return Ok(false);
                };
                let settled = self.settle_recovery(&spec, leased.clone(), &owner).await;
                if !matches!(settled, Ok(Some(_))) {
                    let _ = self
                        .0
                        .core
                        .store()
                        .release_refresh_lease(leased.id, &owner)
                        .await;
                }
                Ok(settled?.is_some())
            }
            .await;
            match result {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, connection_id = %record.connection_id, "a recovery record is still waiting for the database");
                }
            }
        }
        written
    }

    /// After a transient failure the platform is left alone until the back-off ends, as long as the
    /// token still works: callers get the valid token instead of hammering an outage.
    fn cooling_down(&self, connection: &Connection, tokens: &TokenSet) -> bool {
        let now = self.0.core.clock().now();
        connection.refresh_failures > 0
            && connection.next_refresh_at.is_some_and(|next| next > now)
            && tokens.expires_at.is_some_and(|at| at > now)
    }

    /// Puts back in service the ERROR rows that an older release parked because their key was
    /// unknown, for every key this keyring now holds. Cheap (a partial index on ERROR rows); run by
    /// the refresher each round.
    pub(crate) async fn heal_unknown_keys(&self) -> Result<usize, OAuthError> {
        let core = &self.0.core;
        let mut healed = 0;
        for key_id in core.keyring().key_ids() {
            let now = core.clock().now();
            let rows = core
                .store()
                .revive_errors_sealed_with(key_id, outcome::LEGACY_UNREADABLE, now)
                .await?;
            for row in &rows {
                core.changed(&row.store_id).await;
                tracing::warn!(store_id = %row.store_id, platform = %row.platform, key_id, "a connection parked for an unknown key is back: its key is known now");
                core.cache().put(row).await;
            }
            healed += rows.len();
        }
        Ok(healed)
    }

    /// Whether a token may be handed out as it is: not due, or due but cooling down after failures.
    pub(crate) fn usable(&self, connection: &Connection, tokens: &TokenSet) -> bool {
        !renewal::needs_refresh(self.0.window, tokens, self.0.core.clock().now())
            || self.cooling_down(connection, tokens)
    }
}
