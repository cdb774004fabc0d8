//! The token lifecycle: recording a grant, handing out a valid access token (refreshing it first when
//! it is about to expire), renewing before expiry, marking dead connections, and disconnecting.
//!
//! One refresh at a time, across every replica: a refresh first takes the connection's lease in the
//! database (a conditional update, so PostgreSQL arbitrates between replicas), and only the lease's
//! holder may write the result (the lease is the fencing token). Others wait and then read the fresh
//! row. A rotated refresh token is written to the database before anything uses it.

pub mod cache;
pub mod events;
pub mod refresher;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::{Connection, ConnectionStatus, PlatformId, StoreId, TokenSet};
use crate::metrics::Metrics;
use crate::platforms::catalog::{Catalog, PlatformSpec, Renewal};
use crate::platforms::client::{PlatformClient, RevocationOutcome};
use crate::platforms::error::OAuthError;
use crate::platforms::Grant;
use crate::store::{NewEvent, Store, StoreError};
use crate::vault::{Binding, Keyring};

pub use crate::platforms::GrantDetails;
pub use cache::TokenCache;

/// How long a refresh lease lasts: longer than a platform call may take (its timeout), so a live
/// holder never loses it, and short enough that a crashed holder frees the connection soon.
pub(crate) const LEASE: StdDuration = StdDuration::from_secs(60);
/// How long a caller waits for another replica's refresh before giving up.
const WAIT_FOR_OTHER_REFRESH: StdDuration = StdDuration::from_secs(25);
/// Meta's long-lived tokens are renewed this long before they expire.
const META_RENEW_BEFORE: i64 = 7 * 24 * 3600;
/// The longest cool-down after repeated transient refresh failures.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

/// A valid access token, ready for a calling service.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub access_token: SecretString,
    /// Its type (`Bearer`).
    pub token_type: String,
    /// When it expires, if known.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The platform's account id.
    pub account_id: Option<String>,
}

/// What disconnecting did.
#[derive(Debug, Clone)]
pub struct DisconnectOutcome {
    /// The connection that was removed.
    pub connection: Connection,
    /// What the platform said to revocation.
    pub revocation: RevocationOutcome,
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
        }
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
        let plain = self.keyring.open(
            Binding::Tokens {
                store_id: &connection.store_id,
                platform: &connection.platform,
            },
            sealed,
        )?;
        TokenSet::from_plaintext(plain.expose_secret())
            .map_err(|_| OAuthError::Vault(crate::vault::VaultError::Malformed))
    }

    /// How long before expiry a token counts as due: the refresh window, but at most half the
    /// token's lifetime, so that a platform issuing tokens shorter-lived than the window does not see
    /// a refresh on every request.
    fn refresh_margin(&self, tokens: &TokenSet) -> Duration {
        match (tokens.issued_at, tokens.expires_at) {
            (Some(issued), Some(expires)) if expires > issued => {
                self.refresh_window.min((expires - issued) / 2)
            }
            _ => self.refresh_window,
        }
    }

    /// Whether the access token should be refreshed before it is handed out.
    fn needs_refresh(&self, tokens: &TokenSet) -> bool {
        tokens
            .expires_at
            .is_some_and(|at| at <= self.clock.now() + self.refresh_margin(tokens))
    }

    /// When the refresher should look at a connection next.
    fn schedule(&self, spec: &PlatformSpec, tokens: &TokenSet) -> Option<DateTime<Utc>> {
        let expires_at = tokens.expires_at?;
        match spec.renewal {
            // Meta does not promise that re-exchanging extends the token: never plan a renewal sooner
            // than half a day ahead, or a token with less than a week left would loop.
            Renewal::MetaExchange => Some(
                (expires_at - Duration::seconds(META_RENEW_BEFORE))
                    .max(self.clock.now() + Duration::hours(12))
                    .min(expires_at),
            ),
            Renewal::RefreshToken if tokens.refresh_token.is_some() => {
                // Ahead of the margin, so that callers rarely meet a token that needs refreshing.
                let margin = self.refresh_margin(tokens);
                Some(expires_at - margin - margin / 2)
            }
            Renewal::RefreshToken => None,
        }
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
        let connection = Connection {
            id: Uuid::now_v7(),
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
        };
        let event = events::event("connection.created", &connection, None, now);
        let saved = self
            .store
            .save_connection(&connection, Some(&event))
            .await?;
        self.cache.put(&saved).await;
        Ok(saved)
    }

    /// A store's connections.
    pub async fn list(&self, store_id: &StoreId) -> Result<Vec<Connection>, OAuthError> {
        Ok(self.store.list_connections(store_id).await?)
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

    fn issue(connection: &Connection, tokens: TokenSet) -> IssuedToken {
        IssuedToken {
            access_token: tokens.access_token,
            token_type: tokens.token_type,
            expires_at: tokens.expires_at,
            scopes: tokens.scopes,
            account_id: connection.account_id.clone(),
        }
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
        if !force && (!self.needs_refresh(&tokens) || self.cooling_down(&connection, &tokens)) {
            return Ok(Self::issue(&connection, tokens));
        }
        self.refresh_under_lease(spec, connection, force).await
    }

    /// After a transient failure the platform is left alone until the back-off ends, as long as the
    /// token still works: callers get the valid token instead of hammering an outage.
    fn cooling_down(&self, connection: &Connection, tokens: &TokenSet) -> bool {
        let now = self.clock.now();
        connection.refresh_failures > 0
            && connection.next_refresh_at.is_some_and(|next| next > now)
            && tokens.expires_at.is_some_and(|at| at > now)
    }

    /// Refreshes a connection while holding its lease, or waits for whoever holds it and uses their
    /// result. `seen` is the row the caller decided on; a newer row means someone else refreshed.
    async fn refresh_under_lease(
        &self,
        spec: &PlatformSpec,
        seen: Connection,
        force: bool,
    ) -> Result<IssuedToken, OAuthError> {
        let owner = format!("{}:{}", self.replica, Uuid::new_v4());
        let give_up = tokio::time::Instant::now() + WAIT_FOR_OTHER_REFRESH;
        loop {
            let now = self.clock.now();
            let lease_until = now + Duration::from_std(LEASE).unwrap_or(Duration::seconds(30));
            if let Some(fresh) = self
                .store
                .acquire_refresh_lease(seen.id, &owner, now, lease_until)
                .await?
            {
                if fresh.status != ConnectionStatus::Connected {
                    self.store.release_refresh_lease(fresh.id, &owner).await?;
                    self.cache.put(&fresh).await;
                    return Err(OAuthError::NotUsable(fresh.status));
                }
                // Someone refreshed between our read and our lease: use their result (a forced
                // refresh is satisfied by it too), unless it is already due again.
                let someone_refreshed = fresh.version != seen.version;
                let tokens = match self.open(&fresh) {
                    Ok(tokens) => tokens,
                    Err(error) => {
                        self.store.release_refresh_lease(fresh.id, &owner).await?;
                        return Err(error);
                    }
                };
                let usable = !self.needs_refresh(&tokens) || self.cooling_down(&fresh, &tokens);
                if usable && (someone_refreshed || !force) {
                    self.store.release_refresh_lease(fresh.id, &owner).await?;
                    self.cache.put(&fresh).await;
                    return Ok(Self::issue(&fresh, tokens));
                }
                return self.refresh_holding_lease(spec, fresh, &owner).await;
            }
            // Another caller (here or in another replica) is refreshing: wait for its result.
            let pause = rand::thread_rng().gen_range(30..80);
            tokio::time::sleep(StdDuration::from_millis(pause)).await;
            let current = self
                .store
                .get_connection(&seen.store_id, &seen.platform)
                .await?
                .ok_or(OAuthError::NotFound)?;
            if current.id != seen.id {
                return Err(OAuthError::NotFound);
            }
            if current.version != seen.version {
                if current.status != ConnectionStatus::Connected {
                    return Err(OAuthError::NotUsable(current.status));
                }
                let tokens = self.open(&current)?;
                if !self.needs_refresh(&tokens) || self.cooling_down(&current, &tokens) {
                    self.cache.put(&current).await;
                    return Ok(Self::issue(&current, tokens));
                }
            }
            if tokio::time::Instant::now() > give_up {
                return Err(OAuthError::PlatformUnavailable {
                    platform: spec.id.clone(),
                    detail: "a refresh in progress did not finish in time".into(),
                    retry_after: Some(StdDuration::from_secs(5)),
                });
            }
        }
    }

    /// Calls the platform and writes the outcome, as the holder of the connection's lease.
    pub(crate) async fn refresh_holding_lease(
        &self,
        spec: &PlatformSpec,
        connection: Connection,
        owner: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let old = match self.open(&connection) {
            Ok(tokens) => tokens,
            Err(error) => {
                // Unreadable tokens cannot be renewed now or later: take the connection out of the
                // due queue as ERROR, or it would fill every refresher round for good.
                tracing::error!(platform = %spec.id, store_id = %connection.store_id, error = %error, "refresh impossible");
                self.park(
                    connection,
                    owner,
                    ConnectionStatus::Error,
                    None,
                    "the stored tokens are unreadable (sealed with a key that is no longer configured?)",
                )
                .await?;
                self.metrics.refresh(spec.id.as_str(), "error");
                return Err(error);
            }
        };
        let now = self.clock.now();
        let result = match spec.renewal {
            Renewal::RefreshToken => match &old.refresh_token {
                Some(refresh_token) => self.client.refresh(spec, refresh_token, now).await,
                None => Err(OAuthError::PlatformRejected {
                    platform: spec.id.clone(),
                    code: "no_refresh_token".into(),
                    description: "the platform issued no refresh token; reconnect to renew".into(),
                    permanent: true,
                    revoked: false,
                }),
            },
            // Meta: an expired token cannot be exchanged (providers.md §1).
            Renewal::MetaExchange if old.expires_at.is_some_and(|at| at <= now) => {
                Err(OAuthError::PlatformRejected {
                    platform: spec.id.clone(),
                    code: "token_expired".into(),
                    description: "Meta's long-lived token expired before it could be renewed"
                        .into(),
                    permanent: true,
                    revoked: false,
                })
            }
            Renewal::MetaExchange => {
                self.client
                    .meta_exchange(spec, &old.access_token, now)
                    .await
            }
        };
        let now = self.clock.now();
        match result {
            Ok(grant) => {
                let new_refresh_expiry = match spec.renewal {
                    Renewal::MetaExchange => grant.tokens.expires_at,
                    Renewal::RefreshToken => grant.tokens.refresh_expires_at,
                };
                let tokens = TokenSet {
                    access_token: grant.tokens.access_token,
                    // A response without a refresh token keeps the stored one (Google never rotates).
                    refresh_token: grant.tokens.refresh_token.or(old.refresh_token),
                    token_type: grant.tokens.token_type,
                    expires_at: grant.tokens.expires_at,
                    issued_at: grant.tokens.issued_at,
                    refresh_expires_at: new_refresh_expiry.or(old.refresh_expires_at),
                    scopes: if grant.scopes_reported {
                        grant.tokens.scopes
                    } else {
                        old.scopes
                    },
                    extra: old.extra,
                };
                let updated = Connection {
                    sealed_tokens: Some(self.seal(&connection.store_id, &spec.id, &tokens)),
                    key_id: Some(self.keyring.current_key_id().to_owned()),
                    granted_scopes: tokens.scopes.clone(),
                    missing_scopes: spec
                        .scopes
                        .iter()
                        .filter(|s| !tokens.scopes.contains(s))
                        .cloned()
                        .collect(),
                    access_token_expires_at: tokens.expires_at,
                    refresh_token_expires_at: tokens.refresh_expires_at,
                    last_refreshed_at: Some(now),
                    next_refresh_at: self.schedule(spec, &tokens),
                    refresh_failures: 0,
                    last_error: None,
                    status: ConnectionStatus::Connected,
                    updated_at: now,
                    ..connection
                };
                // The rotated refresh token exists only in this process until this write lands:
                // retry it briefly before giving up (see the lifecycle note).
                let saved = match self.finish_with_retry(&updated, owner, None).await {
                    Ok(saved) => saved,
                    Err(error) => {
                        // The platform may have rotated the refresh token we could not store.
                        tracing::error!(platform = %spec.id, store_id = %updated.store_id, error = %error, rotates = spec.refresh_rotates, "a refreshed token could not be stored; a rotated refresh token may be lost");
                        return Err(error);
                    }
                };
                self.cache.put(&saved).await;
                self.metrics.refresh(spec.id.as_str(), "success");
                Ok(Self::issue(&saved, tokens))
            }
            Err(error) => {
                let (status, event_type, next, failures) = match &error {
                    OAuthError::PlatformRejected {
                        permanent: true,
                        revoked,
                        ..
                    } => {
                        let status = if *revoked {
                            ConnectionStatus::Revoked
                        } else {
                            ConnectionStatus::Expired
                        };
                        let event = if *revoked {
                            "connection.revoked"
                        } else {
                            "connection.expired"
                        };
                        (status, event, None, connection.refresh_failures + 1)
                    }
                    _ => {
                        let failures = connection.refresh_failures + 1;
                        let retry_after = match &error {
                            OAuthError::PlatformUnavailable { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        let next = now + backoff(failures, retry_after);
                        (
                            ConnectionStatus::Connected,
                            "connection.refresh_failed",
                            Some(next),
                            failures,
                        )
                    }
                };
                let reason = crate::platforms::error::scrub(&error.to_string());
                let updated = Connection {
                    status,
                    next_refresh_at: next,
                    refresh_failures: failures,
                    last_error: Some(reason.clone()),
                    updated_at: now,
                    ..connection
                };
                let event = events::event(event_type, &updated, Some(&reason), now);
                let saved = self
                    .finish_with_retry(&updated, owner, Some(&event))
                    .await?;
                self.cache.put(&saved).await;
                let outcome = match saved.status {
                    ConnectionStatus::Revoked => "revoked",
                    ConnectionStatus::Connected => "transient_failure",
                    _ => "expired",
                };
                self.metrics.refresh(spec.id.as_str(), outcome);
                tracing::warn!(platform = %spec.id, store_id = %saved.store_id, status = %saved.status, reason = %reason, "refresh failed");
                if saved.status != ConnectionStatus::Connected {
                    return Err(OAuthError::NotUsable(saved.status));
                }
                // A platform outage does not make a still-valid token useless.
                match old.expires_at {
                    Some(at) if at > now => Ok(Self::issue(&saved, old)),
                    _ => Err(error),
                }
            }
        }
    }

    /// Writes a connection back, as the lease's holder, with a status, the next time to look at it and
    /// the reason, and records `connection.refresh_failed`.
    pub(crate) async fn park(
        &self,
        connection: Connection,
        owner: &str,
        status: ConnectionStatus,
        next_refresh_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> Result<Connection, OAuthError> {
        let now = self.clock.now();
        let updated = Connection {
            status,
            next_refresh_at,
            refresh_failures: connection.refresh_failures + 1,
            last_error: Some(reason.to_owned()),
            updated_at: now,
            ..connection
        };
        let event = events::event("connection.refresh_failed", &updated, Some(reason), now);
        let saved = self
            .finish_with_retry(&updated, owner, Some(&event))
            .await?;
        self.cache.put(&saved).await;
        Ok(saved)
    }

    async fn finish_with_retry(
        &self,
        connection: &Connection,
        owner: &str,
        event: Option<&NewEvent>,
    ) -> Result<Connection, OAuthError> {
        let mut attempt = 0;
        loop {
            match self.store.finish_refresh(connection, owner, event).await {
                Ok(saved) => return Ok(saved),
                Err(StoreError::Unavailable(error)) if attempt < 5 => {
                    attempt += 1;
                    tracing::error!(error = %error, attempt, "could not write a refresh result; retrying");
                    tokio::time::sleep(StdDuration::from_millis(200 * attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Revokes at the platform where it allows it, deletes the connection and its tokens, and records
    /// `connection.deleted` with the revocation's outcome.
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
        let revocation = match self.open(&connection) {
            Ok(tokens) => self.client.revoke(spec, &tokens).await,
            Err(_) => RevocationOutcome::Failed("the stored tokens were unreadable".into()),
        };
        let now = self.clock.now();
        let outcome = match &revocation {
            RevocationOutcome::Revoked => "revoked",
            RevocationOutcome::Unsupported(_) => "not_supported",
            RevocationOutcome::Failed(_) => "failed",
        };
        // Stop serving the cached tokens before they are deleted (and tombstone after), so a cache
        // write that fails cannot keep a disconnected token alive.
        self.cache.tombstone(&connection).await;
        let mut event = events::event("connection.deleted", &connection, None, now);
        event.payload["revocation"] = serde_json::json!(outcome);
        let deleted = self
            .store
            .delete_connection(store_id, &spec.id, Some(&event))
            .await?
            .ok_or(OAuthError::NotFound)?;
        self.cache.tombstone(&deleted).await;
        Ok(DisconnectOutcome {
            connection: deleted,
            revocation,
        })
    }

    /// Re-seals up to `batch` rows sealed with an old key; returns how many were re-sealed. Safe while
    /// the service runs: each write is conditional on the row's version, and a row changed meanwhile
    /// was re-sealed by its writer with the current key anyway.
    pub async fn reseal_batch(&self, batch: i64) -> Result<usize, OAuthError> {
        let rows = self
            .store
            .connections_to_reseal(self.keyring.current_key_id(), batch)
            .await?;
        let mut done = 0;
        for row in rows {
            let tokens = self.open(&row)?;
            let updated = Connection {
                sealed_tokens: Some(self.seal(&row.store_id, &row.platform, &tokens)),
                key_id: Some(self.keyring.current_key_id().to_owned()),
                ..row
            };
            match self.store.update_connection(&updated, None).await {
                Ok(saved) => {
                    self.cache.put(&saved).await;
                    done += 1;
                }
                Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(done)
    }
}

/// Exponential back-off with jitter after `failures` transient failures, at least the platform's
/// `Retry-After`, at most six hours.
pub fn backoff(failures: i32, retry_after: Option<StdDuration>) -> Duration {
    let base = 30_i64.saturating_mul(1_i64 << failures.clamp(0, 16));
    let capped = base.min(MAX_BACKOFF_SECS);
    let jitter = rand::thread_rng().gen_range(0..=capped / 4 + 1);
    // A platform's Retry-After is honoured, but never beyond the cap: it is untrusted input.
    let floor = retry_after.map_or(0, |d| {
        i64::try_from(d.as_secs()).map_or(MAX_BACKOFF_SECS, |s| s.min(MAX_BACKOFF_SECS))
    });
    Duration::seconds(
        (capped + jitter)
            .max(floor)
            .min(MAX_BACKOFF_SECS + MAX_BACKOFF_SECS / 4 + 1),
    )
}
