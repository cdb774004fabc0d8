//! Extractors: the API caller (a bearer key from `API_KEYS`, compared in constant time, or a scoped
//! key from the database; see [`crate::access`]), and query/path wrappers whose
//! rejections come back in our JSON error format.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use secrecy::SecretString;

use super::error::ApiError;
use crate::access::{ApiKeyRegistry, Caller};

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

    /// Whether the request's `Authorization: Bearer` header carries an accepted key. The rate
    /// limiter asks this before it keys anything on the request's parameters.
    pub async fn authenticates(&self, headers: &HeaderMap) -> bool {
        match presented_key(headers) {
            Some(key) => matches!(self.0.verify(key).await, Ok(Some(_))),
            None => false,
        }
    }
}

/// A backend service that presented a valid API key: its name (the audit's actor) and scopes.
/// Each handler checks the operation it performs with [`Caller::require`].
#[derive(Debug, Clone)]
pub struct ApiCaller(pub Caller);

impl std::ops::Deref for ApiCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
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
        let keys = ApiKeys::from_ref(state);
        let presented = presented_key(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        match keys.0.verify(presented).await {
            Ok(Some(caller)) => Ok(ApiCaller(caller)),
            Ok(None) => Err(ApiError::unauthorized()),
            Err(error) => Err(ApiError::from(crate::oauth::OAuthError::Store(error))),
        }
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
