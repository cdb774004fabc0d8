//! The page's calls about a reconnect that signed in to a different account: show what the parked
//! grant would replace, and take the merchant's choice, "Replace" or "Keep". Parse the session and
//! the id, call [`Replacements`], shape the answer; the workflow (and its reaper) lives in
//! [`crate::connect`].

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

use super::api::no_store;
use super::session::{DashboardSession, DashboardWriter};
use crate::connect::Replacements;
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;

/// What the merchant's choice did.
#[derive(Debug, Serialize)]
pub(crate) struct ReplacementOutcome {
    /// The platform's slug.
    pub platform: String,
    /// A sentence for the page.
    pub message: String,
}

/// `GET /dashboard/api/replacement/{id}`: what a parked grant would replace.
pub async fn show(
    session: DashboardSession,
    State(replacements): State<Replacements>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let view = replacements
        .show(&id, &session.store_id, &session.user_id)
        .await?;
    Ok(no_store(Json(view)))
}

/// `POST /dashboard/api/replacement/{id}/confirm`: records the parked grant, replacing the old
/// account (the connection keeps its row, selection and history).
pub async fn confirm(
    writer: DashboardWriter,
    State(replacements): State<Replacements>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let view = replacements
        .confirm(&id, &session.store_id, &session.user_id)
        .await?;
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
    State(replacements): State<Replacements>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let view = replacements
        .decline(&id, &session.store_id, &session.user_id)
        .await?;
    Ok(no_store(Json(ReplacementOutcome {
        message: format!(
            "{} stays connected as {}.",
            view.platform_name, view.old_account_name
        ),
        platform: view.platform,
    })))
}
