//! Extractors: the API caller (bearer key, compared in constant time), and query/path wrappers whose
//! rejections come back in our JSON error format.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// `Query<T>` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The configured API keys, kept as SHA-256 digests so comparisons take the same time whatever the
/// key's length.
#[derive(Clone)]
pub struct ApiKeys(Arc<Vec<[u8; 32]>>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// Digests the keys.
    pub fn new(keys: &[SecretString]) -> Self {
        Self(Arc::new(
            keys.iter()
                .map(|k| Sha256::digest(k.expose_secret().as_bytes()).into())
                .collect(),
        ))
    }

    /// Whether the request's `Authorization: Bearer` header carries an accepted key. The rate
    /// limiter asks this before it keys anything on the request's parameters.
    pub fn authenticates(&self, headers: &HeaderMap) -> bool {
        presented_key(headers).is_some_and(|key| self.accepts(key))
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, not stopping at the first match, so timing says nothing about which.
        self.0
            .iter()
            .fold(false, |found, key| found | bool::from(key.ct_eq(&digest)))
    }
}

/// A backend service that presented a valid API key.
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller;

impl<S> FromRequestParts<S> for ApiCaller
where
    ApiKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    // Instrumented with skip_all so that the Authorization header can never reach a span.
    #[tracing::instrument(skip_all, level = "trace")]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if ApiKeys::from_ref(state).authenticates(&parts.headers) {
            Ok(ApiCaller)
        } else {
            Err(ApiError::unauthorized())
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
