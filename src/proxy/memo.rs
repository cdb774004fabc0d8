//! A few seconds' memory of the tokens the proxy was handed, per store and platform, so that a
//! burst of proxied calls does not read and decrypt the connection once per call (with SQLite and
//! no Redis cache that read dominated the proxy's cost: see `scripts/bench-proxy`).
//!
//! Kept short on purpose: a disconnect or a refresh made by another replica is seen within
//! [`MEMO_TTL`] at worst (the lifecycle's own Redis cache already keeps rows for 60 s), and a token
//! the platform rejects in the meantime takes the usual dead-token path (forced refresh, one retry),
//! which also forgets the memory. A token close to expiry is never remembered: the lifecycle
//! decides when to refresh it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::{PlatformId, StoreId};
use crate::lifecycle::IssuedToken;

/// How long a token is remembered.
pub(crate) const MEMO_TTL: Duration = Duration::from_secs(5);
/// A token expiring within this is not remembered.
const EXPIRY_MARGIN_SECS: i64 = 600;
/// Past this many entries, stale ones are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

type Key = (StoreId, PlatformId);

/// The memory; a cheap-clone handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenMemo {
    entries: Arc<Mutex<HashMap<Key, (Instant, SecretString)>>>,
}

impl TokenMemo {
    /// The remembered access token, if still fresh (the only part of an answer the proxy uses).
    pub fn get(&self, store_id: &StoreId, platform: &PlatformId) -> Option<SecretString> {
        let key = (store_id.clone(), platform.clone());
        let entries = self.entries.lock().ok()?;
        entries
            .get(&key)
            .filter(|(at, _)| at.elapsed() < MEMO_TTL)
            .map(|(_, token)| token.clone())
    }

    /// Remembers `token` unless it expires soon (by `now`, the lifecycle's clock).
    pub fn put(
        &self,
        store_id: &StoreId,
        platform: &PlatformId,
        token: &IssuedToken,
        now: DateTime<Utc>,
    ) {
        let lasting = token
            .expires_at
            .is_none_or(|at| at > now + chrono::Duration::seconds(EXPIRY_MARGIN_SECS));
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let key = (store_id.clone(), platform.clone());
        if !lasting {
            entries.remove(&key);
            return;
        }
        if entries.len() >= SWEEP_ABOVE {
            entries.retain(|_, (at, _)| at.elapsed() < MEMO_TTL);
        }
        entries.insert(key, (Instant::now(), token.access_token.clone()));
    }

    /// Forgets a token the platform rejected.
    pub(crate) fn forget(&self, store_id: &StoreId, platform: &PlatformId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(store_id.clone(), platform.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: i64, now: DateTime<Utc>) -> IssuedToken {
        IssuedToken {
            access_token: "secret-token".to_owned().into(),
            token_type: "Bearer".into(),
            expires_at: Some(now + chrono::Duration::seconds(expires_in)),
            scopes: vec![],
            account_id: None,
        }
    }

    #[test]
    fn a_lasting_token_is_remembered_until_forgotten_and_a_dying_one_never() {
        let memo = TokenMemo::default();
        let store = StoreId::parse("shop").expect("id");
        let platform = PlatformId::parse("twitter").expect("slug");
        let now = Utc::now();
        memo.put(&store, &platform, &token(7200, now), now);
        assert!(memo.get(&store, &platform).is_some());
        memo.forget(&store, &platform);
        assert!(memo.get(&store, &platform).is_none());
        memo.put(&store, &platform, &token(60, now), now);
        assert!(
            memo.get(&store, &platform).is_none(),
            "expires within the margin"
        );
        assert!(!format!("{memo:?}").contains("secret-token"));
    }
}
