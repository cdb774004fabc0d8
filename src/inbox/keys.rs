//! The public keys platforms sign their notices with (Google's RISC tokens [G15]): the discovery
//! document names the issuer and the JWKS; both are cached for an hour and fetched again at once
//! when a token names a key the cached set lacks (the platform rotated), at most once a minute per
//! document so that forged `kid`s cannot make us hammer the platform.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use tokio::sync::Mutex;
use url::Url;

use crate::platforms::events::{EventKeys, EventRejection};

/// How long a fetched key set is used.
const FRESH_FOR: Duration = Duration::from_secs(3600);

/// The least time between two fetches of one document.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// A fetched document: its issuer and key set.
#[derive(Debug, Clone)]
struct Fetched {
    issuer: String,
    keys: JwkSet,
    at: Instant,
}

/// The cache of platforms' published keys, per discovery URL. In each replica: the keys are
/// public, and a replica that starts fetches its own.
#[derive(Debug)]
pub struct KeyCache {
    http: reqwest::Client,
    documents: Mutex<HashMap<Url, Fetched>>,
}

impl KeyCache {
    /// A cache fetching with `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            documents: Mutex::new(HashMap::new()),
        })
    }

    async fn fetch(&self, discovery: &Url) -> Result<Fetched, EventRejection> {
        let document: serde_json::Value = self.get_json(discovery.clone()).await?;
        let issuer = document["issuer"]
            .as_str()
            .ok_or(EventRejection::KeysUnavailable)?
            .to_owned();
        let jwks_uri = document["jwks_uri"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or(EventRejection::KeysUnavailable)?;
        Ok(Fetched {
            issuer,
            keys: self.get_json(jwks_uri).await?,
            at: Instant::now(),
        })
    }

    /// A JSON document; any failure (transport, status, shape) is "the keys are unavailable".
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<T, EventRejection> {
        let unavailable = |_| EventRejection::KeysUnavailable;
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl EventKeys for KeyCache {
    async fn key(
        &self,
        discovery: &Url,
        kid: &str,
    ) -> Result<Option<(String, Jwk)>, EventRejection> {
        // One lock over the fetch: concurrent notices after a rotation wait for one fetch.
        let mut documents = self.documents.lock().await;
        let find = |fetched: &Fetched| {
            fetched
                .keys
                .find(kid)
                .map(|key| (fetched.issuer.clone(), key.clone()))
        };
        if let Some(fetched) = documents.get(discovery) {
            let fresh = fetched.at.elapsed() < FRESH_FOR;
            if let (true, Some(found)) = (fresh, find(fetched)) {
                return Ok(Some(found));
            }
            if fresh && fetched.at.elapsed() < REFETCH_AFTER {
                return Ok(None);
            }
        }
        let fetched = self.fetch(discovery).await?;
        let found = find(&fetched);
        documents.insert(discovery.clone(), fetched);
        Ok(found)
    }
}
