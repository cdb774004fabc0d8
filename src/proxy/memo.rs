//! A few seconds' memory of the tokens the proxy was handed, per store and platform, so that a
//! burst of proxied calls does not read and decrypt the connection once per call (with SQLite and
//! no Redis cache that read dominated the proxy's cost: see `scripts/bench-proxy`).
//!
//! Cleared, on every replica, by every change to a store's connections: it follows the lifecycle's
//! listing invalidations (`lifecycle/listing.rs`: the local write path calls `changed`, which drops
//! the store here and publishes it to the other replicas, whose subscriptions drop it too), so a
//! disconnect or a status change is never answered from memory. It is used only while those
//! announcements reach this replica (SQLite, or Redis with a live subscription): on PostgreSQL
//! without Redis, or while the subscription is down, every call reads the connection. A read that
//! raced with an invalidation is not remembered (an epoch taken before the read, as the listing
//! cache does). [`MEMO_TTL`] still bounds what no announcement covers (a token refreshed by another
//! replica is still valid meanwhile); a token the platform rejects takes the usual dead-token path
//! (forced refresh, one retry), which also forgets it. A token close to expiry is never
//! remembered: the lifecycle decides when to refresh it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::{PlatformId, StoreId};
use crate::lifecycle::listing::ListingCache;
use crate::lifecycle::IssuedToken;

/// How long a token is remembered.
pub(crate) const MEMO_TTL: Duration = Duration::from_secs(5);
/// A token expiring within this is not remembered.
const EXPIRY_MARGIN_SECS: i64 = 600;
/// Past this many entries, stale ones are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

type Key = (StoreId, PlatformId);

#[derive(Default)]
struct Entries {
    map: HashMap<Key, (Instant, SecretString)>,
    /// Bumped by every invalidation.
    epoch: u64,
}

/// A read's ticket: the epoch it saw before reading the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

/// The memory; a cheap-clone handle.
#[derive(Clone, Default)]
pub(crate) struct TokenMemo {
    entries: Arc<Mutex<Entries>>,
    /// Whose invalidations it follows; `None` only in unit tests (then always used).
    listings: Option<ListingCache>,
}

impl std::fmt::Debug for TokenMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMemo")
            .field("entries", &self.lock().map.len())
            .finish_non_exhaustive()
    }
}

impl TokenMemo {
    /// A memo cleared by every invalidation of `listings` (local writes and other replicas').
    pub(crate) fn watching(listings: &ListingCache) -> Self {
        let entries: Arc<Mutex<Entries>> = Arc::default();
        let weak = Arc::downgrade(&entries);
        listings.watch(move |store_id| {
            let Some(entries) = weak.upgrade() else {
                return;
            };
            let mut entries = entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.epoch += 1;
            match store_id {
                Some(store_id) => entries.map.retain(|(store, _), _| store != store_id),
                None => entries.map.clear(),
            }
        });
        Self {
            entries,
            listings: Some(listings.clone()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether changes are announced to this replica now (else the memo is bypassed).
    fn announced(&self) -> bool {
        self.listings.as_ref().is_none_or(ListingCache::announced)
    }

    /// Taken before reading the connection; a [`Self::put`] under it is dropped if an invalidation
    /// came in between.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.lock().epoch)
    }

    /// The remembered access token, if still fresh (the only part of an answer the proxy uses).
    pub fn get(&self, store_id: &StoreId, platform: &PlatformId) -> Option<SecretString> {
        if !self.announced() {
            return None;
        }
        let key = (store_id.clone(), platform.clone());
        self.lock()
            .map
            .get(&key)
            .filter(|(at, _)| at.elapsed() < MEMO_TTL)
            .map(|(_, token)| token.clone())
    }

    /// Remembers `token`, read under `ticket`, unless it expires soon (by `now`, the lifecycle's
    /// clock), the store changed since the ticket, or changes are not announced here.
    pub(crate) fn put(
        &self,
        ticket: Ticket,
        store_id: &StoreId,
        platform: &PlatformId,
        token: &IssuedToken,
        now: DateTime<Utc>,
    ) {
        let lasting = token
            .expires_at
            .is_none_or(|at| at > now + chrono::Duration::seconds(EXPIRY_MARGIN_SECS));
        let announced = self.announced();
        let mut entries = self.lock();
        let key = (store_id.clone(), platform.clone());
        if !lasting || !announced || entries.epoch != ticket.0 {
            entries.map.remove(&key);
            return;
        }
        if entries.map.len() >= SWEEP_ABOVE {
            entries.map.retain(|_, (at, _)| at.elapsed() < MEMO_TTL);
        }
        entries
            .map
            .insert(key, (Instant::now(), token.access_token.clone()));
    }

    /// Forgets a token the platform rejected.
    pub(crate) fn forget(&self, store_id: &StoreId, platform: &PlatformId) {
        self.lock()
            .map
            .remove(&(store_id.clone(), platform.clone()));
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
        memo.put(memo.ticket(), &store, &platform, &token(7200, now), now);
        assert!(memo.get(&store, &platform).is_some());
        memo.forget(&store, &platform);
        assert!(memo.get(&store, &platform).is_none());
        memo.put(memo.ticket(), &store, &platform, &token(60, now), now);
        assert!(
            memo.get(&store, &platform).is_none(),
            "expires within the margin"
        );
        assert!(!format!("{memo:?}").contains("secret-token"));
    }
}
