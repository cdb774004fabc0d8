//! The page itself: exchanging a link for a session cookie, rendering the page or the "open it from
//! your main dashboard" page, and serving the script and stylesheet compiled into the binary.

use std::collections::HashMap;
use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::session::{DashboardAuth, SessionError, PAGE_PATH};
use crate::oauth::Flow;
use crate::platforms::PlatformSpec;

/// The script's path.
pub(crate) const SCRIPT_PATH: &str = "/dashboard/static/dashboard.js";
/// The stylesheet's path.
pub(crate) const STYLESHEET_PATH: &str = "/dashboard/static/dashboard.css";

const SCRIPT: &str = include_str!("../../../static/dashboard.js");
const STYLESHEET: &str = include_str!("../../../static/dashboard.css");

/// A content hash appended to asset URLs, so that they can be cached for good and still change
/// with each release.
fn version(cell: &'static OnceLock<String>, content: &str) -> &'static str {
    cell.get_or_init(|| hex::encode(&Sha256::digest(content.as_bytes())[..6]))
}

fn script_version() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    version(&CELL, SCRIPT)
}

fn stylesheet_version() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    version(&CELL, STYLESHEET)
}

/// A platform's card as the template lays it out before the page's script fills it in.
pub(crate) struct CardShell {
    /// Slug.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The lettered mark.
    pub mark: String,
    /// The mark's colour class (`mark--meta`, ..., `mark--generic`).
    pub mark_class: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    store_id: &'a str,
    csrf: &'a str,
    cards: Vec<CardShell>,
    script: String,
    stylesheet: String,
}

#[derive(Template)]
#[template(path = "dashboard_denied.html")]
struct DeniedPage<'a> {
    message: &'a str,
    stylesheet: String,
}

/// A built-in platform's mark from the table; a generic provider's initial otherwise.
fn mark(spec: &PlatformSpec) -> (String, &'static str) {
    match crate::platforms::built_in(spec.id.as_str()) {
        Some(platform) => (platform.mark.letter.into(), platform.mark.class),
        None => (
            spec.display_name
                .chars()
                .next()
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_else(|| "?".into()),
            "mark--generic",
        ),
    }
}

fn html_response(status: StatusCode, rendered: askama::Result<String>) -> Response {
    let mut response = match rendered {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(%error, "dashboard template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
                .into_response()
        }
    };
    // The page holds the CSRF value and the merchant's data: never cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn denied(error: &SessionError) -> Response {
    let page = DeniedPage {
        message: error.merchant_message(),
        stylesheet: format!("{STYLESHEET_PATH}?v={}", stylesheet_version()),
    };
    html_response(StatusCode::UNAUTHORIZED, page.render())
}

fn denied_unavailable() -> Response {
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        DeniedPage {
            message: "The service is temporarily unavailable. Please try again shortly.",
            stylesheet: format!("{STYLESHEET_PATH}?v={}", stylesheet_version()),
        }
        .render(),
    )
}

/// `GET /dashboard/authorize?ticket=..`: the first hop of a flow started from the page. Only the
/// browser holding the page session of the flow's store and user gets through.
pub async fn authorize(
    State(auth): State<DashboardAuth>,
    State(flow): State<Flow>,
    State(web): State<crate::http::state::WebSettings>,
    jar: CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session = auth.read_session(&jar).ok();
    let owner = session.as_ref().map(|s| (&s.store_id, &s.user_id));
    crate::http::oauth::first_hop(
        &flow,
        &web,
        jar.clone(),
        query.get("ticket").map(String::as_str),
        owner,
    )
    .await
}

/// `GET /dashboard/marketing`: with `?token=` exchanges a link for a session cookie and redirects to
/// the bare URL (the link leaves the address bar and history); without, renders the page for the
/// session's store, or a 401 page saying to open it from the main dashboard.
pub async fn page(
    State(auth): State<DashboardAuth>,
    State(flow): State<Flow>,
    jar: CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(token) = query.get("token") {
        let opened = match auth.links().verify_link(token) {
            // A link works once, so one that leaks (history, a proxy's log, a forwarded message)
            // cannot open a second session. Remembered for as long as a link can live.
            Ok((store_id, user_id)) => match flow
                .states()
                .claim_once(
                    "dashboard-link",
                    token,
                    chrono::Duration::minutes(super::session::LINK_MAX_MINUTES + 1),
                )
                .await
            {
                Ok(true) => auth.open_session(store_id, user_id),
                Ok(false) => Err(SessionError::Used),
                Err(error) => {
                    tracing::warn!(%error, "could not record the link's use");
                    return denied_unavailable();
                }
            },
            Err(error) => Err(error),
        };
        return match opened {
            Ok((cookie, session)) => {
                tracing::info!(store_id = %session.store_id, user_id = %session.user_id, "dashboard session opened");
                let mut response = (jar.add(cookie), Redirect::to(PAGE_PATH)).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(error) => {
                tracing::info!(reason = %error, "dashboard link refused");
                (jar.remove(auth.removal_cookie()), denied(&error)).into_response()
            }
        };
    }
    let session = match auth.read_session(&jar) {
        Ok(session) => session,
        Err(error) => return denied(&error),
    };
    let cards = flow
        .catalog()
        .all()
        .map(|spec| {
            let (mark, mark_class) = mark(spec);
            CardShell {
                id: spec.id.to_string(),
                name: spec.display_name.clone(),
                mark,
                mark_class,
            }
        })
        .collect();
    let page = DashboardPage {
        store_id: session.store_id.as_str(),
        csrf: session.csrf().expose_secret(),
        cards,
        script: format!("{SCRIPT_PATH}?v={}", script_version()),
        stylesheet: format!("{STYLESHEET_PATH}?v={}", stylesheet_version()),
    };
    html_response(StatusCode::OK, page.render())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // URLs carry the content hash, so a cached copy is never stale.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// The page's script.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The page's stylesheet.
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}
