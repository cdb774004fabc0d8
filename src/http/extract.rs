//! Extractors: the API caller (a bearer key from `API_KEYS`, compared in constant time, or a scoped
//! key from the database; see [`crate::access`]), and query/path wrappers whose
//! rejections come back in our JSON error format.
//!
//! A request's key is verified once: whoever verifies it first (the perimeter's rate limiter on the
//! API's connect, or the extractor) leaves the outcome in the request's extensions
//! ([`KeyVerdict`]) for the others.

use std::net::IpAddr;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use secrecy::SecretString;

use super::error::ApiError;
use crate::access::{ApiKeyRegistry, Caller, Verified};
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::StoreId;
use crate::store::StoreError;

/// The address a request came from, as the rate limits count it (the last `X-Forwarded-For` entry
/// with `TRUST_PROXY`, an IPv6 client by its /64), put in the request's extensions for everything
/// that limits per client (the API key lookups among them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddress(pub IpAddr);

/// `Query<T>` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Verifies API keys for the [`ApiCaller`] extractor: the keys of `API_KEYS` (full access) and
/// the scoped keys stored in the database ([`ApiKeyRegistry`]).
#[derive(Clone, Debug)]
pub struct ApiKeys(ApiKeyRegistry);

impl ApiKeys {
    /// Only the keys of `API_KEYS`.
    pub fn new(keys: &[SecretString]) -> Self {
        Self(ApiKeyRegistry::from_env_keys(keys))
    }

    /// The keys of `API_KEYS` and the database's keys.
    pub(crate) fn with_registry(registry: ApiKeyRegistry) -> Self {
        Self(registry)
    }

    /// Whether the request's `Authorization: Bearer` header carries an accepted key.
    pub async fn authenticates(&self, headers: &HeaderMap) -> bool {
        matches!(self.check(headers, None).await, Ok(KeyVerdict::Caller(_)))
    }

    /// Verifies the request's key for a client at `client` (see [`ApiKeyRegistry::verify`]).
    pub(crate) async fn check(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<KeyVerdict, StoreError> {
        let Some(presented) = presented_key(headers) else {
            return Ok(KeyVerdict::Unauthorized);
        };
        Ok(match self.0.verify(presented, client).await? {
            Verified::Caller(caller) => KeyVerdict::Caller(caller),
            Verified::Unknown => KeyVerdict::Unauthorized,
            Verified::Throttled(seconds) => KeyVerdict::Throttled(seconds),
        })
    }
}

/// How a request's key was judged, kept in its extensions so that it is verified once.
#[derive(Debug, Clone)]
pub(crate) enum KeyVerdict {
    /// An accepted key.
    Caller(Caller),
    /// No key, or one not accepted.
    Unauthorized,
    /// Not looked up: the client made too many failed attempts; retry in this many seconds.
    Throttled(u64),
}

impl KeyVerdict {
    fn into_result(self) -> Result<ApiCaller, ApiError> {
        match self {
            Self::Caller(caller) => Ok(ApiCaller(caller)),
            Self::Unauthorized => Err(ApiError::unauthorized()),
            Self::Throttled(seconds) => Err(ApiError::rate_limited(seconds)),
        }
    }
}

/// A backend service that presented a valid API key: its name (the audit's actor), scopes and
/// stores. Each handler checks the operation it performs with [`Caller::require`], and the store
/// it acts for with `ApiCaller::allow_store` (or [`Caller::require_store`]).
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Caller);

impl std::ops::Deref for ApiCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl ApiCaller {
    /// Allows a call for `store_id` ([`Caller::require_store`]), or records the refusal in that
    /// store's audit trail (`operation`, `failure`, `store_not_allowed`, with the platform when
    /// the call names one) and answers 403 `store_not_allowed`. Handlers that already record
    /// every outcome of the call (the proxy) call [`Caller::require_store`] directly instead.
    pub(crate) fn allow_store(
        &self,
        audit: &AuditLog,
        operation: &'static str,
        platform: Option<&str>,
        store_id: &StoreId,
    ) -> Result<(), ApiError> {
        self.require_store(store_id).map_err(|refused| {
            let error = ApiError::from(refused);
            let mut event = AuditEvent::new(Actor::ApiKey(self.name.clone()), operation, "started")
                .failed(error.code())
                .with_store(store_id);
            if let Some(platform) = platform {
                event = event.with_platform(platform);
            }
            audit.record(event);
            error
        })
    }
}

impl<S> FromRequestParts<S> for ApiCaller
where
    ApiKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    // Instrumented with skip_all so that the Authorization header can never reach a span.
    #[tracing::instrument(skip_all, level = "trace")]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(verdict) = parts.extensions.get::<KeyVerdict>() {
            return verdict.clone().into_result();
        }
        let client = parts.extensions.get::<ClientAddress>().map(|c| c.0);
        // A store that could not be asked leaves no verdict: the next asker tries again.
        let verdict = ApiKeys::from_ref(state)
            .check(&parts.headers, client)
            .await
            .map_err(|error| ApiError::from(crate::oauth::OAuthError::Store(error)))?;
        parts.extensions.insert(verdict.clone());
        verdict.into_result()
    }
}

/// The key in `Authorization: Bearer <key>`, if the header has that shape.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}
