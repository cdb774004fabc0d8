//! The merchant's answer to a reconnect that signed in to a different account ([`Replacements`]):
//! what the parked grant would replace, and the choice, "Replace" (record it) or "Keep" the old
//! account (discard it, revoked at the platform where it can be). Only the page session of the
//! flow's store and user sees or settles a parked grant ([`crate::oauth::parked`]). A grant left
//! without an answer is revoked once its offer ends ([`Replacements::reap_unanswered`], run by the
//! app every minute) and recorded like a "Keep".

use serde::Serialize;

use super::workflow::ConnectWorkflow;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::{StoreId, UserId};
use crate::oauth::parked::Replacement;
use crate::oauth::{Flow, OAuthError};
use crate::platforms::RevocationOutcome;

/// The most grants one reaping round takes (the next round, a minute later, goes on).
const REAP_ROUND: usize = 1_000;

/// What the page shows before the merchant decides, and what the answer is about.
#[derive(Debug, Serialize)]
pub struct ReplacementView {
    /// The platform's slug.
    pub platform: String,
    /// Its display name.
    pub platform_name: String,
    /// The account signed in to now.
    pub new_account_name: String,
    /// The account the store is connected to.
    pub old_account_name: String,
}

/// Settles parked grants: the page's answers and the reaper. A cheap clone.
#[derive(Debug, Clone)]
pub struct Replacements {
    flow: Flow,
    workflow: ConnectWorkflow,
    audit: AuditLog,
}

impl Replacements {
    /// Reads and takes parked grants from `flow`, records a confirmed one through `workflow`, and
    /// records each answer in `audit`.
    pub fn new(flow: Flow, workflow: ConnectWorkflow, audit: AuditLog) -> Self {
        Self {
            flow,
            workflow,
            audit,
        }
    }

    /// What a parked grant would replace, for the page session of `store_id` and `user_id`.
    pub async fn show(
        &self,
        id: &str,
        store_id: &StoreId,
        user_id: &UserId,
    ) -> Result<ReplacementView, OAuthError> {
        let replacement = self
            .flow
            .replacement(id, store_id, user_id)
            .await?
            .ok_or(OAuthError::StateInvalid)?;
        Ok(self.names(&replacement))
    }

    /// Records the parked grant, replacing the old account (the connection keeps its row,
    /// selection and history).
    pub async fn confirm(
        &self,
        id: &str,
        store_id: &StoreId,
        user_id: &UserId,
    ) -> Result<ReplacementView, OAuthError> {
        let (grant, replacement) = self
            .flow
            .take_parked(id, store_id, user_id)
            .await?
            .ok_or(OAuthError::StateInvalid)?;
        let view = self.names(&replacement);
        let spec = self.flow.catalog().require(replacement.platform.as_str())?;
        let recorded = self.workflow.record(spec, grant).await;
        let event = AuditEvent::new(Actor::PageUser(user_id.to_string()), "connect", "success")
            .with_detail(format!("replaced account {}", view.old_account_name));
        let event = match &recorded {
            Ok(_) => event,
            Err(error) => event.failed(error.reason()),
        };
        self.audit
            .record(event.with_store(store_id).with_platform(&view.platform));
        recorded?;
        Ok(view)
    }

    /// Keeps the old account and drops the parked grant, revoking it at the platform where it can
    /// be.
    pub async fn decline(
        &self,
        id: &str,
        store_id: &StoreId,
        user_id: &UserId,
    ) -> Result<ReplacementView, OAuthError> {
        let (grant, replacement) = self
            .flow
            .take_parked(id, store_id, user_id)
            .await?
            .ok_or(OAuthError::StateInvalid)?;
        let view = self.names(&replacement);
        let revocation = self.flow.discard(&grant).await;
        self.audit.record(kept_event(
            Actor::PageUser(user_id.to_string()),
            &replacement,
            &view,
            &revocation,
            "kept",
        ));
        Ok(view)
    }

    /// Revokes the parked grants whose offer ended without the merchant's answer (the tab closed)
    /// and records each as a "Keep" by the service; returns how many. One grant at a time, each
    /// recorded as soon as it is revoked. Safe on every replica at once: each grant is taken by
    /// one.
    pub async fn reap_unanswered(&self) -> Result<usize, OAuthError> {
        let mut reaped = 0;
        while reaped < REAP_ROUND {
            let Some((replacement, revocation)) = self.flow.reap_next_parked().await? else {
                break;
            };
            let view = self.names(&replacement);
            self.audit.record(kept_event(
                Actor::System("parked-grant-reaper".into()),
                &replacement,
                &view,
                &revocation,
                "no answer: kept",
            ));
            reaped += 1;
        }
        Ok(reaped)
    }

    fn names(&self, r: &Replacement) -> ReplacementView {
        let display = |name: &Option<String>, id: &Option<String>, fallback: &str| {
            name.clone()
                .or_else(|| id.clone())
                .unwrap_or_else(|| fallback.to_owned())
        };
        ReplacementView {
            platform: r.platform.to_string(),
            platform_name: self
                .flow
                .catalog()
                .get(&r.platform)
                .map_or_else(|| r.platform.to_string(), |s| s.display_name.clone()),
            new_account_name: display(&r.new_account_name, &r.new_account_id, "another account"),
            old_account_name: display(
                &r.old_account_name,
                &r.old_account_id,
                "the current account",
            ),
        }
    }
}

/// The audit row of a parked grant not taken: the old account kept, the new grant revoked or not.
fn kept_event(
    actor: Actor,
    replacement: &Replacement,
    view: &ReplacementView,
    revocation: &RevocationOutcome,
    how: &str,
) -> AuditEvent {
    let revoked = matches!(revocation, RevocationOutcome::Revoked);
    AuditEvent::new(actor, "connect", "cancelled")
        .with_detail(format!(
            "{how} account {}; new grant {}",
            view.old_account_name,
            if revoked { "revoked" } else { "not revoked" }
        ))
        .with_store(&replacement.store_id)
        .with_platform(&view.platform)
}
