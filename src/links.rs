//! Dashboard links and sessions as signed tokens: minting and verifying the main dashboard's links,
//! issuing and reading the page's session tokens. The app and the CLI mint links with it; the edge
//! (`http::dashboard::session`) carries the tokens in URLs and cookies and makes the cross-site
//! checks. No HTTP type appears here.
//!
//! Both are HS256 JWTs, so every replica accepts every session without shared storage. A *link*
//! (`{API_URL}/dashboard/marketing?token=..`) is what the main dashboard mints with
//! `DASHBOARD_JWT_SECRET`: claims `sub` (user id), `store_id`, `exp` and optionally `iat`, at most
//! [`LINK_MAX_MINUTES`] long. The page exchanges it for a *session* signed with a key derived from
//! the same secret, so that a link can never be replayed as a session nor a session as a link. The
//! session carries a random CSRF value that the page echoes in a header.

use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use url::Url;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::{StoreId, UserId};
use crate::vault::Keyring;

/// The page's path on our origin; links point here.
pub const PAGE_PATH: &str = "/dashboard/marketing";
/// The longest a link may live: it travels in a URL, so it must be short-lived.
pub const LINK_MAX_MINUTES: i64 = 15;
/// Clock skew tolerated between the main dashboard and this service.
const LEEWAY_SECONDS: i64 = 30;

/// Why a link, a session or a write was refused. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session cookie.
    #[error("no dashboard session")]
    Missing,
    /// Bad signature, algorithm, claims or shape.
    #[error("the dashboard link or session is invalid")]
    Invalid,
    /// Past its `exp`.
    #[error("the dashboard link or session has expired")]
    Expired,
    /// A link whose lifetime exceeds [`LINK_MAX_MINUTES`].
    #[error("the dashboard link lives longer than {LINK_MAX_MINUTES} minutes")]
    LinkTooLong,
    /// A state-changing call without the CSRF value, or from another origin.
    #[error("cross-site request refused")]
    CrossSite,
    /// A link opened a second time: links are single-use bearer credentials.
    #[error("the dashboard link was already used")]
    Used,
}

impl SessionError {
    /// A sentence for the merchant.
    pub(crate) fn merchant_message(&self) -> &'static str {
        match self {
            Self::Missing => "Open the connections page from your main dashboard to sign in.",
            Self::Invalid | Self::LinkTooLong => {
                "This link is not valid. Open the connections page again from your main dashboard."
            }
            Self::Expired => {
                "This link or session has expired. Open the connections page again from your main dashboard."
            }
            Self::CrossSite => "This request did not come from the connections page.",
            Self::Used => {
                "This link was already used. Open the connections page again from your main dashboard."
            }
        }
    }
}

/// The link's claims, as the main dashboard signs them.
#[derive(Serialize, Deserialize)]
struct LinkClaims {
    sub: UserId,
    store_id: StoreId,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
}

/// Our session token's claims.
#[derive(Serialize, Deserialize)]
struct SessionClaims {
    sub: UserId,
    store_id: StoreId,
    exp: i64,
    iat: i64,
    csrf: String,
}

/// A merchant's session: one store, one user.
#[derive(Clone)]
pub struct DashboardSession {
    /// The only store this session may read or change.
    pub store_id: StoreId,
    /// The merchant's user.
    pub user_id: UserId,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    csrf: SecretString,
}

impl fmt::Debug for DashboardSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardSession")
            .field("store_id", &self.store_id)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .field("csrf", &"[redacted]")
            .finish()
    }
}

impl DashboardSession {
    /// The CSRF value the page must echo; rendered into the page only.
    pub fn csrf(&self) -> &SecretString {
        &self.csrf
    }
}

/// Signs and verifies links and sessions. Cheap to clone.
#[derive(Clone)]
pub struct DashboardLinks(Arc<Inner>);

struct Inner {
    link_encoding: EncodingKey,
    link_decoding: DecodingKey,
    session_encoding: EncodingKey,
    session_decoding: DecodingKey,
    session_ttl: Duration,
    api_url: Url,
    origin: String,
    clock: SharedClock,
}

impl fmt::Debug for DashboardLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardLinks")
            .field("origin", &self.0.origin)
            .finish_non_exhaustive()
    }
}

fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut block = [0u8; 64];
    // HMAC hashes a key longer than its block first and zero-pads a shorter one (RFC 2104 §2):
    // doing the same here lets us use the infallible constructor for any secret length.
    if secret.len() > 64 {
        use sha2::Digest;
        block[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

fn random_value() -> String {
    oauth2::CsrfToken::new_random_len(32).secret().clone()
}

impl DashboardLinks {
    /// Builds from the link secret (`DASHBOARD_JWT_SECRET`).
    pub fn new(
        link_secret: &[u8],
        session_ttl: StdDuration,
        api_url: &Url,
        clock: SharedClock,
    ) -> Self {
        let session_secret = derive(link_secret, "growth-engine dashboard session v1");
        Self(Arc::new(Inner {
            link_encoding: EncodingKey::from_secret(link_secret),
            link_decoding: DecodingKey::from_secret(link_secret),
            session_encoding: EncodingKey::from_secret(&session_secret),
            session_decoding: DecodingKey::from_secret(&session_secret),
            session_ttl: Duration::from_std(session_ttl).unwrap_or(Duration::hours(8)),
            api_url: api_url.clone(),
            origin: api_url.origin().ascii_serialization(),
            clock,
        }))
    }

    /// Builds from settings. Without `DASHBOARD_JWT_SECRET` (development only; production refuses
    /// to start), the secret is HMAC-SHA256(token-encryption key, "dashboard-jwt"): deterministic, so
    /// `growth-engine dashboard-link` and `serve` agree without another file to share.
    pub fn from_settings(settings: &Settings, keyring: &Keyring, clock: SharedClock) -> Self {
        match &settings.dashboard_jwt_secret {
            Some(secret) => Self::new(
                secret.expose_secret().as_bytes(),
                settings.dashboard_session,
                &settings.api_url,
                clock,
            ),
            None => Self::new(
                keyring.derive("dashboard-jwt").expose_secret(),
                settings.dashboard_session,
                &settings.api_url,
                clock,
            ),
        }
    }

    /// `API_URL`'s origin: the only `Origin` accepted on state-changing calls.
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// How long a session lasts.
    pub(crate) fn session_ttl(&self) -> Duration {
        self.0.session_ttl
    }

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against our clock below (tests control time); presence is still
        // required here. No audience is expected of the main dashboard.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation
    }

    /// Mints a link for a store and user, valid `minutes` (1 to [`LINK_MAX_MINUTES`]).
    pub fn mint_link(
        &self,
        store_id: &StoreId,
        user_id: &UserId,
        minutes: i64,
    ) -> Result<Url, SessionError> {
        let now = self.0.clock.now().timestamp();
        let claims = LinkClaims {
            sub: user_id.clone(),
            store_id: store_id.clone(),
            iat: Some(now),
            exp: now + minutes.clamp(1, LINK_MAX_MINUTES) * 60,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.0.link_encoding,
        )
        .map_err(|_| SessionError::Invalid)?;
        let mut url = self
            .0
            .api_url
            .join(PAGE_PATH.trim_start_matches('/'))
            .map_err(|_| SessionError::Invalid)?;
        url.query_pairs_mut().append_pair("token", &token);
        Ok(url)
    }

    /// Verifies a link: HS256 only, `exp` required and not past, lifetime at most
    /// [`LINK_MAX_MINUTES`].
    pub fn verify_link(&self, token: &str) -> Result<(StoreId, UserId), SessionError> {
        let claims =
            jsonwebtoken::decode::<LinkClaims>(token, &self.0.link_decoding, &Self::validation())
                .map_err(|_| SessionError::Invalid)?
                .claims;
        let now = self.0.clock.now().timestamp();
        if claims.exp + LEEWAY_SECONDS < now {
            return Err(SessionError::Expired);
        }
        let longest = LINK_MAX_MINUTES * 60 + LEEWAY_SECONDS;
        // Judged from `iat` when given (it must not be in the future), and always from now, so
        // that a link without `iat` cannot live longer either.
        if claims.exp - now > longest {
            return Err(SessionError::LinkTooLong);
        }
        if let Some(iat) = claims.iat {
            if iat > now + LEEWAY_SECONDS {
                return Err(SessionError::Invalid);
            }
            if claims.exp - iat > longest {
                return Err(SessionError::LinkTooLong);
            }
        }
        Ok((claims.store_id, claims.sub))
    }

    /// Opens a session for a verified link's store and user: the signed session token and the
    /// session it stands for.
    pub(crate) fn issue_session(
        &self,
        store_id: StoreId,
        user_id: UserId,
    ) -> Result<(SecretString, DashboardSession), SessionError> {
        let now = self.0.clock.now();
        let expires_at = now + self.0.session_ttl;
        let claims = SessionClaims {
            sub: user_id,
            store_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            csrf: random_value(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.0.session_encoding,
        )
        .map_err(|_| SessionError::Invalid)?;
        Ok((
            SecretString::from(token),
            DashboardSession {
                store_id: claims.store_id,
                user_id: claims.sub,
                expires_at,
                csrf: SecretString::from(claims.csrf),
            },
        ))
    }

    /// Reads a session token: signed with the session key, not expired.
    pub(crate) fn read_session(&self, token: &str) -> Result<DashboardSession, SessionError> {
        let claims = jsonwebtoken::decode::<SessionClaims>(
            token,
            &self.0.session_decoding,
            &Self::validation(),
        )
        .map_err(|_| SessionError::Invalid)?
        .claims;
        if claims.exp < self.0.clock.now().timestamp() {
            return Err(SessionError::Expired);
        }
        Ok(DashboardSession {
            store_id: claims.store_id,
            user_id: claims.sub,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
            csrf: SecretString::from(claims.csrf),
        })
    }
}
