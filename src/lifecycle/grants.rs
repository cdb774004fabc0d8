//! Grants ([`Grants`]): recording a fresh grant as the store's connection, disconnecting it
//! (revoked at the platform where it can be), and re-sealing rows with the current key.
//!
//! It owns what a recorded row holds at first (granted and missing scopes, the first refresh and
//! liveness check) and the delete bound to the row that was revoked. It does not own the flow that
//! produced the grant (`oauth`), the choice between recording and parking it (`connect`), nor
//! asset discovery (`assets.rs`).

use std::sync::Arc;

use uuid::Uuid;

use super::events;
use super::health::{self, HealthSettings};
use super::merchant_assets::change_subscription;
use super::refresh::Refresh;
use super::shared::Core;
use crate::domain::{Connection, ConnectionStatus, StoreId};
use crate::error::OAuthError;
use crate::platforms::client::{
    PlatformClient, RevocationOutcome, RevocationReport, TokenRevocation,
};
use crate::platforms::Grant;
use crate::platforms::PlatformSpec;
use crate::store::StoreError;

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

/// Records, disconnects and re-seals connections. A cheap clone.
#[derive(Debug, Clone)]
pub struct Grants {
    core: Core,
    refresh: Refresh,
    client: PlatformClient,
    health: Arc<HealthSettings>,
}

impl Grants {
    /// Records with `refresh`'s schedule, revokes through `client`; a new row's first liveness
    /// check falls within `health`'s period.
    pub fn new(refresh: Refresh, client: PlatformClient, health: Arc<HealthSettings>) -> Self {
        Self {
            core: refresh.core().clone(),
            refresh,
            client,
            health,
        }
    }

    /// The shared core.
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Drops any recovery record of connection `id` (its grant is gone).
    pub(super) async fn forget_recovery(&self, id: Uuid) {
        self.refresh.forget_recovery(id).await;
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
        let now = self.core.clock().now();
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
        let id = match self.core.store().get_connection(store_id, &spec.id).await? {
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
            sealed_tokens: Some(self.core.seal(store_id, &spec.id, &tokens)),
            key_id: Some(self.core.keyring().current_key_id().to_owned()),
            metadata: details.metadata,
            granted_scopes: granted,
            missing_scopes: missing,
            access_token_expires_at: tokens.expires_at,
            refresh_token_expires_at: tokens.refresh_expires_at,
            last_refreshed_at: None,
            next_refresh_at: self.refresh.schedule(spec, &tokens),
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
        let saved = self
            .core
            .store()
            .save_connection(&connection, Some(&event))
            .await;
        self.core.changed(store_id).await;
        let saved = saved?;
        // A recovery record of the grant this one replaces must never be applied to it (it would
        // not be anyway: a record names its grant, see `recovery.rs`).
        self.refresh.forget_recovery(saved.id).await;
        self.core.cache().put(&saved).await;
        Ok(saved)
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
            .core
            .store()
            .get_connection(store_id, &spec.id)
            .await?
            .ok_or(OAuthError::NotFound)?;
        let report = match self.core.open(&connection) {
            Ok(tokens) => {
                self.unsubscribe_selected(spec, &connection, &tokens).await;
                self.client.revoke(spec, &tokens).await
            }
            Err(_) => RevocationReport {
                outcome: RevocationOutcome::Failed("the stored tokens were unreadable".into()),
                tokens: Vec::new(),
            },
        };
        let now = self.core.clock().now();
        let outcome = match &report.outcome {
            RevocationOutcome::Revoked => "revoked",
            RevocationOutcome::Unsupported(_) => "not_supported",
            RevocationOutcome::Failed(_) => "failed",
        };
        // Stop serving the cached tokens before they are deleted (and tombstone after), so a cache
        // write that fails cannot keep a disconnected token alive.
        self.core.cache().tombstone(&connection).await;
        let mut event = events::event("connection.deleted", &connection, None, now);
        event.payload["revocation"] = serde_json::json!(outcome);
        event.payload["revocation_tokens"] = serde_json::json!(report.tokens);
        let deleted = self
            .core
            .store()
            .delete_connection_row(connection.id, connection.version, Some(&event))
            .await;
        self.core.changed(store_id).await;
        let Some(deleted) = deleted? else {
            return match self.core.store().get_connection(store_id, &spec.id).await? {
                None => Err(OAuthError::NotFound),
                Some(_) => Err(OAuthError::Store(StoreError::Conflict)),
            };
        };
        self.core.cache().tombstone(&deleted).await;
        self.refresh.forget_recovery(deleted.id).await;
        Ok(DisconnectOutcome {
            connection: deleted,
            revocation: report.outcome,
            tokens: report.tokens,
        })
    }

    /// Before a disconnect revokes the grant: the selected assets subscribed to the app's webhooks
    /// (Meta's pages) are unsubscribed with their own tokens, while those still work. Best effort:
    /// the disconnect goes on whatever the platform says.
    async fn unsubscribe_selected(
        &self,
        spec: &PlatformSpec,
        connection: &Connection,
        tokens: &crate::domain::TokenSet,
    ) {
        if spec.events.subscribe_fields.is_empty() {
            return;
        }
        let Ok(assets) = self.core.store().list_assets(&connection.store_id).await else {
            return;
        };
        for asset in assets
            .iter()
            .filter(|a| a.connection_id == connection.id && a.selected)
        {
            let token = tokens
                .extra
                .get(&format!("page:{}", asset.id))
                .unwrap_or(&tokens.access_token);
            change_subscription(
                &self.client,
                spec,
                &connection.store_id,
                &asset.kind,
                &asset.id,
                token,
                false,
            )
            .await;
        }
    }

    /// Re-seals up to `batch` rows sealed with an old key; returns how many were re-sealed. Rows it
    /// cannot open are left as they are (see [`Self::reseal_all`] for the counts).
    pub async fn reseal_batch(&self, batch: i64) -> Result<usize, OAuthError> {
        let rows = self
            .core
            .store()
            .connections_to_reseal(self.core.keyring().current_key_id(), batch)
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
        for (key_id, count) in self.core.store().key_id_counts().await? {
            if key_id == self.core.keyring().current_key_id() {
                report.already_current += usize::try_from(count).unwrap_or(0);
                continue;
            }
            if !self.core.keyring().knows(&key_id) {
                report
                    .unreadable
                    .insert(key_id, usize::try_from(count).unwrap_or(0));
                continue;
            }
            let mut after = Uuid::nil();
            loop {
                let rows = self
                    .core
                    .store()
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
        let tokens = self.core.open(&row)?;
        let updated = Connection {
            sealed_tokens: Some(self.core.seal(&row.store_id, &row.platform, &tokens)),
            key_id: Some(self.core.keyring().current_key_id().to_owned()),
            ..row
        };
        let saved = self.core.store().update_connection(&updated, None).await;
        self.core.changed(&updated.store_id).await;
        match saved {
            Ok(saved) => {
                self.core.cache().put(&saved).await;
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(error) => Err(error.into()),
        }
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
