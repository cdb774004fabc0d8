//! The page's answer to a reconnect that signed in to a different account: what the parked grant
//! would replace, and the merchant's choice, "Replace" (record it) or "Keep" the old account
//! (discard it, revoked at the platform where it can be). Only the page session of the flow's
//! store and user sees or settles a parked grant ([`crate::oauth::parked`]). A grant left without
//! an answer is revoked once its offer ends ([`reap_unanswered`], run by the app every minute) and
//! recorded like a "Keep".

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

use super::api::no_store;
use super::session::{DashboardSession, DashboardWriter};
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::lifecycle::{Assets, Grants};
use crate::oauth::parked::Replacement;
use crate::oauth::{Flow, OAuthError};
use crate::platforms::RevocationOutcome;

/// What the page shows before the merchant decides.
#[derive(Debug, Serialize)]
pub(crate) struct ReplacementView {
    /// The platform's slug.
    pub platform: String,
    /// Its display name.
    pub platform_name: String,
    /// The account signed in to now.
    pub new_account_name: String,
    /// The account the store is connected to.
    pub old_account_name: String,
}

/// What the merchant's choice did.
#[derive(Debug, Serialize)]
pub(crate) struct ReplacementOutcome {
    /// The platform's slug.
    pub platform: String,
    /// A sentence for the page.
    pub message: String,
}

fn names(flow: &Flow, r: &Replacement) -> ReplacementView {
    let display = |name: &Option<String>, id: &Option<String>, fallback: &str| {
        name.clone()
            .or_else(|| id.clone())
            .unwrap_or_else(|| fallback.to_owned())
    };
    ReplacementView {
        platform: r.platform.to_string(),
        platform_name: flow
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

/// `GET /dashboard/api/replacement/{id}`: what a parked grant would replace.
pub async fn show(
    session: DashboardSession,
    State(flow): State<Flow>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let replacement = flow
        .replacement(&id, &session.store_id, &session.user_id)
        .await?
        .ok_or(OAuthError::StateInvalid)?;
    Ok(no_store(Json(names(&flow, &replacement))))
}

/// `POST /dashboard/api/replacement/{id}/confirm`: records the parked grant, replacing the old
/// account (the connection keeps its row, selection and history).
pub async fn confirm(
    writer: DashboardWriter,
    State(flow): State<Flow>,
    State(grants): State<Grants>,
    State(assets): State<Assets>,
    State(audit): State<AuditLog>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let (grant, replacement) = flow
        .take_parked(&id, &session.store_id, &session.user_id)
        .await?
        .ok_or(OAuthError::StateInvalid)?;
    let view = names(&flow, &replacement);
    let spec = flow.catalog().require(replacement.platform.as_str())?;
    let recorded =
        crate::http::oauth::record_grant_and_discover(&grants, &assets, spec, grant).await;
    let event = AuditEvent::new(
        Actor::PageUser(session.user_id.to_string()),
        "connect",
        "success",
    )
    .with_detail(format!("replaced account {}", view.old_account_name));
    let event = match &recorded {
        Ok(_) => event,
        Err(error) => event.failed(error.reason()),
    };
    audit.record(
        event
            .with_store(&session.store_id)
            .with_platform(&view.platform),
    );
    recorded?;
    Ok(no_store(Json(ReplacementOutcome {
        message: format!(
            "{} is connected as {}; it replaced {}.",
            view.platform_name, view.new_account_name, view.old_account_name
        ),
        platform: view.platform,
    })))
}

/// `POST /dashboard/api/replacement/{id}/cancel`: keeps the old account and drops the parked
/// grant, revoking it at the platform where it can be.
pub async fn cancel(
    writer: DashboardWriter,
    State(flow): State<Flow>,
    State(audit): State<AuditLog>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let (grant, replacement) = flow
        .take_parked(&id, &session.store_id, &session.user_id)
        .await?
        .ok_or(OAuthError::StateInvalid)?;
    let view = names(&flow, &replacement);
    let revocation = flow.discard(&grant).await;
    audit.record(kept_event(
        Actor::PageUser(session.user_id.to_string()),
        &replacement,
        &view,
        &revocation,
        "kept",
    ));
    Ok(no_store(Json(ReplacementOutcome {
        message: format!(
            "{} stays connected as {}.",
            view.platform_name, view.old_account_name
        ),
        platform: view.platform,
    })))
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

/// The most grants one reaping round takes (the next round, a minute later, goes on).
const REAP_ROUND: usize = 1_000;

/// Revokes the parked grants whose offer ended without the merchant's answer (the tab closed) and
/// records each as a "Keep" by the service; returns how many. One grant at a time, each recorded
/// as soon as it is revoked. Safe on every replica at once: each grant is taken by one.
pub async fn reap_unanswered(flow: &Flow, audit: &AuditLog) -> Result<usize, OAuthError> {
    let mut reaped = 0;
    while reaped < REAP_ROUND {
        let Some((replacement, revocation)) = flow.reap_next_parked().await? else {
            break;
        };
        let view = names(flow, &replacement);
        audit.record(kept_event(
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
