//! Dashboard sessions at the edge: the session cookie that carries a [`DashboardLinks`] session
//! token, and the cross-site checks on the page's state-changing calls. Signing and verifying links
//! and sessions is the core's (`crate::links`); this module owns cookies and headers only, and does
//! not decide what a session may see (the handlers only ever use the session's own store).

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::domain::{StoreId, UserId};
use crate::http::error::ApiError;
pub use crate::links::{
    DashboardLinks, DashboardSession, SessionError, LINK_MAX_MINUTES, PAGE_PATH,
};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "ge_dashboard";
/// The header the page echoes the CSRF value in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Links and sessions with their cookies. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DashboardAuth {
    links: DashboardLinks,
    secure_cookies: bool,
}

impl DashboardAuth {
    /// The edge's view of `links`; `secure_cookies` marks the cookie `Secure` (HTTPS deployments).
    pub fn new(links: DashboardLinks, secure_cookies: bool) -> Self {
        Self {
            links,
            secure_cookies,
        }
    }

    /// Minting and verifying links and session tokens.
    pub fn links(&self) -> &DashboardLinks {
        &self.links
    }

    /// Opens a session for a verified link's store and user: the cookie to set and the session.
    pub(crate) fn open_session(
        &self,
        store_id: StoreId,
        user_id: UserId,
    ) -> Result<(Cookie<'static>, DashboardSession), SessionError> {
        let (token, session) = self.links.issue_session(store_id, user_id)?;
        let cookie = Cookie::build((SESSION_COOKIE, token.expose_secret().to_owned()))
            .http_only(true)
            .secure(self.secure_cookies)
            .same_site(SameSite::Lax)
            .path("/dashboard")
            .max_age(time::Duration::seconds(
                self.links.session_ttl().num_seconds(),
            ))
            .build();
        Ok((cookie, session))
    }

    /// A cookie that removes the session (sent with a refused link).
    pub(crate) fn removal_cookie(&self) -> Cookie<'static> {
        Cookie::build(SESSION_COOKIE).path("/dashboard").build()
    }

    /// Reads the session from the request's cookies.
    pub(crate) fn read_session(&self, jar: &CookieJar) -> Result<DashboardSession, SessionError> {
        let token = jar.get(SESSION_COOKIE).ok_or(SessionError::Missing)?;
        self.links.read_session(token.value())
    }

    /// The checks on a state-changing call: an `Origin`, when sent, must be ours; a
    /// `Sec-Fetch-Site`, when sent, must not say cross-site; `X-CSRF-Token` must equal the session's
    /// value. A cross-site form or `fetch` can do none of these.
    pub(crate) fn check_write(
        &self,
        session: &DashboardSession,
        headers: &HeaderMap,
    ) -> Result<(), SessionError> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            if origin.as_bytes() != self.links.origin().as_bytes() {
                return Err(SessionError::CrossSite);
            }
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            if site.as_bytes() == b"cross-site" {
                return Err(SessionError::CrossSite);
            }
        }
        let presented = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .ok_or(SessionError::CrossSite)?;
        if bool::from(presented.ct_eq(session.csrf().expose_secret().as_bytes())) {
            Ok(())
        } else {
            Err(SessionError::CrossSite)
        }
    }
}

impl<S> FromRequestParts<S> for DashboardSession
where
    DashboardAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    // skip_all: the cookie is a credential and must never reach a span.
    #[tracing::instrument(skip_all, level = "trace")]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = DashboardAuth::from_ref(state);
        let jar = CookieJar::from_headers(&parts.headers);
        Ok(auth.read_session(&jar)?)
    }
}

/// A session whose request passed [`DashboardAuth::check_write`]: what state-changing handlers take.
#[derive(Debug, Clone)]
pub struct DashboardWriter(pub DashboardSession);

impl<S> FromRequestParts<S> for DashboardWriter
where
    DashboardAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    #[tracing::instrument(skip_all, level = "trace")]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = DashboardAuth::from_ref(state);
        let session = DashboardSession::from_request_parts(parts, state).await?;
        auth.check_write(&session, &parts.headers)?;
        Ok(Self(session))
    }
}
