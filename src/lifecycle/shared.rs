//! The core handle every lifecycle service shares: the store and the Redis cache of its rows, the
//! vault binding that seals a connection's tokens to its store and platform, the catalog, the
//! clock, and the listing invalidation that every write path calls ([`Core::changed`]).
//!
//! It owns no decision (when to refresh, what a grant records, how healthy a row is): the services
//! built on it do (`tokens`, `refresh`, `grants`, `assets`, `connections`, `liveness`). A cheap
//! clone: one reference count.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::cache::TokenCache;
use super::listing::ListingCache;
use super::merge::Sealed;
use crate::clock::SharedClock;
use crate::domain::{Connection, PlatformId, StoreId, TokenSet};
use crate::error::OAuthError;
use crate::platforms::catalog::Catalog;
use crate::platforms::ReconnectRule;
use crate::store::Store;
use crate::vault::{Binding, Keyring, VaultError};

/// What the core handle is built from.
#[derive(Debug)]
pub struct CoreParts {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The keys that seal tokens at rest.
    pub keyring: Arc<Keyring>,
    /// The Redis cache of connection rows (tokens still sealed).
    pub cache: TokenCache,
    /// The per-replica cache of store listings (see `listing.rs` for when it may be used).
    pub listings: ListingCache,
    /// The platforms.
    pub catalog: Arc<Catalog>,
    /// The clock every service reads.
    pub clock: SharedClock,
}

/// The shared core of the lifecycle services.
#[derive(Debug, Clone)]
pub struct Core(Arc<CoreParts>);

impl From<CoreParts> for Core {
    fn from(parts: CoreParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl Core {
    /// The store (for health checks and tooling).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.0.catalog
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.0.clock
    }

    /// The keys (their ids, for re-sealing).
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }

    /// The cache of connection rows.
    pub(crate) fn cache(&self) -> &TokenCache {
        &self.0.cache
    }

    /// The cache of store listings.
    pub(crate) fn listings(&self) -> &ListingCache {
        &self.0.listings
    }

    /// After a write (attempted: a failed one may still have committed) that changes a store's
    /// connection or its assets: no replica serves the old listing any more.
    pub(crate) async fn changed(&self, store_id: &StoreId) {
        self.0.listings.changed(store_id).await;
    }

    /// The rule that says until when a connection lasts without the merchant: its platform's
    /// (a platform gone from the settings falls back to the refresh token's reported expiry).
    pub(crate) fn reconnect_rule(&self, connection: &Connection) -> ReconnectRule {
        self.0
            .catalog
            .get(&connection.platform)
            .map_or(ReconnectRule::RefreshTokenExpiry, |spec| spec.reconnect)
    }

    /// Seals a token set for one store and platform.
    pub fn seal(&self, store_id: &StoreId, platform: &PlatformId, tokens: &TokenSet) -> String {
        self.0.keyring.seal(
            Binding::Tokens { store_id, platform },
            &tokens.to_plaintext(),
        )
    }

    /// Seals a connection's token set, with the id of the key that sealed it.
    pub(crate) fn seal_with_id(&self, connection: &Connection, tokens: &TokenSet) -> Sealed {
        Sealed {
            text: self.seal(&connection.store_id, &connection.platform, tokens),
            key_id: self.0.keyring.current_key_id().to_owned(),
        }
    }

    /// Opens a connection's sealed token set.
    pub fn open(&self, connection: &Connection) -> Result<TokenSet, OAuthError> {
        let sealed = connection
            .sealed_tokens
            .as_deref()
            .ok_or(OAuthError::NotUsable(connection.status))?;
        self.open_sealed(connection, sealed)
    }

    /// Opens a token set sealed for `connection`'s store and platform.
    pub(crate) fn open_sealed(
        &self,
        connection: &Connection,
        sealed: &str,
    ) -> Result<TokenSet, OAuthError> {
        let plain = self.0.keyring.open(
            Binding::Tokens {
                store_id: &connection.store_id,
                platform: &connection.platform,
            },
            sealed,
        )?;
        TokenSet::from_plaintext(plain.expose_secret())
            .map_err(|_| OAuthError::Vault(VaultError::Malformed))
    }

    /// The connection, from the cache when it has it, else from the database (then cached).
    pub(crate) async fn load(
        &self,
        store_id: &StoreId,
        platform: &PlatformId,
    ) -> Result<Connection, OAuthError> {
        if let Some(cached) = self.0.cache.get(store_id, platform).await {
            return Ok(cached);
        }
        let connection = self
            .0
            .store
            .get_connection(store_id, platform)
            .await?
            .ok_or(OAuthError::NotFound)?;
        self.0.cache.put(&connection).await;
        Ok(connection)
    }
}
