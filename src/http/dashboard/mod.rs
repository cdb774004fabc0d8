//! The merchant's connections page at `/dashboard/marketing`, served by the service itself: the
//! HTML page (askama templates compiled into the binary), its script and stylesheet, and the JSON
//! calls the page makes under `/dashboard/api/...`.
//!
//! Every handler takes the store from the session ([`session::DashboardSession`]), never from the
//! request, so a session can only ever see and change its own store. State-changing calls also pass
//! the CSRF and origin checks ([`session::DashboardWriter`]). OAuth logic stays in the flow, the
//! connect workflow and the lifecycle; this module parses, shapes and renders.

pub mod api;
pub mod page;
pub mod posts;
pub mod replace;
pub mod session;

use axum::routing::{get, post};
use axum::Router;

use super::state::AppState;
pub use session::{DashboardAuth, DashboardSession, DashboardWriter};

/// The page, its assets and its JSON calls.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(session::PAGE_PATH, get(page::page))
        .route(page::SCRIPT_PATH, get(page::script))
        .route(page::STYLESHEET_PATH, get(page::stylesheet))
        .route("/dashboard/authorize", get(page::authorize))
        .route("/dashboard/api/connections", get(api::connections))
        .route("/dashboard/api/activity", get(api::activity))
        .route("/dashboard/api/posts", get(posts::posts))
        .route("/dashboard/api/posts/policy", post(posts::set_policy))
        .route("/dashboard/api/posts/{id}/approve", post(posts::approve))
        .route("/dashboard/api/posts/{id}/reject", post(posts::reject))
        .route("/dashboard/api/connect/{platform}", post(api::connect))
        .route(
            "/dashboard/api/disconnect/{platform}",
            post(api::disconnect),
        )
        .route("/dashboard/api/selection/{platform}", post(api::select))
        .route("/dashboard/api/replacement/{id}", get(replace::show))
        .route(
            "/dashboard/api/replacement/{id}/confirm",
            post(replace::confirm),
        )
        .route(
            "/dashboard/api/replacement/{id}/cancel",
            post(replace::cancel),
        )
}
