//! Park-or-record ([`ConnectWorkflow`]): a finished flow's grant is recorded as the store's
//! connection and its assets discovered, unless a flow started from the page signed in to another
//! account than the stored connection's: then it is parked for the merchant to confirm
//! ([`crate::oauth::parked`]). API flows replace the account as before.

use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::{Connection, ConnectionStatus, PlatformId, StoreId, UserId};
use crate::lifecycle::{Assets, Connections, Grants};
use crate::oauth::flow::{CallbackParams, Finished, FlowOrigin};
use crate::oauth::parked::account_id_of;
use crate::oauth::{Flow, Grant, OAuthError};
use crate::platforms::PlatformSpec;

/// What the callback did with the grant.
#[derive(Debug)]
pub enum Completed {
    /// Recorded as the store's connection (boxed: a connection is large).
    Recorded(Box<Connection>),
    /// Parked until the merchant confirms replacing another account (page flows only).
    Parked {
        /// The id the page confirms with.
        id: String,
        /// The platform.
        platform: PlatformId,
        /// The flow's store.
        store_id: StoreId,
        /// The flow's user.
        user_id: UserId,
    },
}

/// Finishes connects: the flow's callback, then park-or-record. A cheap clone.
#[derive(Debug, Clone)]
pub struct ConnectWorkflow {
    flow: Flow,
    connections: Connections,
    grants: Grants,
    assets: Assets,
    audit: AuditLog,
}

impl ConnectWorkflow {
    /// Finishes flows with `flow`, reads the store's connections with `connections`, records with
    /// `grants`, discovers with `assets`, and records each outcome in `audit`.
    pub fn new(
        flow: Flow,
        connections: Connections,
        grants: Grants,
        assets: Assets,
        audit: AuditLog,
    ) -> Self {
        Self {
            flow,
            connections,
            grants,
            assets,
            audit,
        }
    }

    /// Finishes the flow and records its grant as the store's connection (then discovers its
    /// assets, which never fails the connect), or parks it; then counts the outcome and records
    /// it in the audit trail: nothing is stored unless the whole flow succeeded.
    pub async fn complete(
        &self,
        platform: &str,
        params: CallbackParams,
        binding: Option<&str>,
    ) -> Result<Completed, OAuthError> {
        let result = async {
            let finished = self.flow.finish(platform, params, binding).await?;
            self.park_or_record(finished).await
        }
        .await;
        self.flow.count_outcome(platform, &result);
        if let Ok(completed) = &result {
            self.audit.record(completed_event(completed));
        }
        result
    }

    /// Parks a page flow's grant that signed in to another account; records any other.
    async fn park_or_record(
        &self,
        Finished { grant, origin, .. }: Finished,
    ) -> Result<Completed, OAuthError> {
        let spec = self.flow.catalog().require(grant.platform.as_str())?;
        if origin == FlowOrigin::Dashboard {
            if let Some(old) = self.replaced_account(&grant).await? {
                let (platform, store_id, user_id) = (
                    grant.platform.clone(),
                    grant.store_id.clone(),
                    grant.user_id.clone(),
                );
                let id = self
                    .flow
                    .park(grant, old.account_id, old.account_name)
                    .await?;
                return Ok(Completed::Parked {
                    id,
                    platform,
                    store_id,
                    user_id,
                });
            }
        }
        self.record(spec, grant)
            .await
            .map(|c| Completed::Recorded(Box::new(c)))
    }

    /// Records a fresh grant, then discovers its assets. A discovery failure is logged and leaves
    /// the connection as recorded (CONNECTED): its assets can be refreshed later.
    pub async fn record(
        &self,
        spec: &PlatformSpec,
        grant: Grant,
    ) -> Result<Connection, OAuthError> {
        let connection = self.grants.record_grant(spec, grant).await?;
        if let Err(error) = self.assets.refresh_assets(spec, &connection.store_id).await {
            tracing::warn!(
                platform = %spec.id,
                store_id = %connection.store_id,
                reason = error.reason(),
                error = %error,
                "asset discovery after connect failed; the connection stays, its assets can be refreshed"
            );
        }
        Ok(connection)
    }

    /// The store's connection a grant would replace with a different account, if any: one with an
    /// account id that differs from the grant's. A connection never completed, or one whose
    /// account is unknown, is simply replaced.
    async fn replaced_account(&self, grant: &Grant) -> Result<Option<Connection>, OAuthError> {
        let Some(new_id) = account_id_of(grant) else {
            return Ok(None);
        };
        Ok(self
            .connections
            .list(&grant.store_id)
            .await?
            .into_iter()
            .find(|c| c.platform == grant.platform)
            .filter(|c| c.status != ConnectionStatus::Pending)
            .filter(|c| c.account_id.as_deref().is_some_and(|old| old != new_id)))
    }
}

/// The audit row of a finished callback.
fn completed_event(completed: &Completed) -> AuditEvent {
    match completed {
        // The merchant's user finished the consent screen: the grant is theirs.
        Completed::Recorded(connection) => AuditEvent::new(
            Actor::PageUser(connection.user_id.to_string()),
            "connect",
            "success",
        )
        .with_store(&connection.store_id)
        .with_platform(connection.platform.as_str())
        .with_detail("consent completed"),
        // Nothing is replaced until the merchant answers the page's question.
        Completed::Parked {
            platform,
            store_id,
            user_id,
            ..
        } => AuditEvent::new(Actor::PageUser(user_id.to_string()), "connect", "pending")
            .with_store(store_id)
            .with_platform(platform.as_str())
            .with_detail("signed in to another account; awaiting confirmation"),
    }
}
