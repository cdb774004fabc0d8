//! A store's connections as the edge shows them ([`Connections`]): its rows (connections and their
//! assets, from the listing cache when it may be used) and each connection's health now.
//!
//! It only reads: recording, refreshing and disconnecting are the other services' (`grants.rs`,
//! `refresh.rs`), and every one of their writes invalidates the listing through
//! [`Core::changed`].

use std::sync::Arc;

use super::health::{self, Health, HealthSettings};
use super::listing::Listing;
use super::shared::Core;
use crate::domain::{Connection, StoreId};
use crate::error::OAuthError;
use crate::store::StoredAsset;

/// The read side of the lifecycle. A cheap clone.
#[derive(Debug, Clone)]
pub struct Connections {
    core: Core,
    health: Arc<HealthSettings>,
}

impl Connections {
    /// Reads through `core`; health by these settings (the expiry warnings' window).
    pub fn new(core: Core, health: Arc<HealthSettings>) -> Self {
        Self { core, health }
    }

    /// The core it stands on (the store, for the metrics' counts).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// A connection's health now, by its platform's rules.
    pub fn health(&self, connection: &Connection) -> Health {
        health::assess(
            connection,
            self.core.reconnect_rule(connection),
            self.core.clock().now(),
            self.health.warning_window(),
        )
    }

    /// A store's rows (connections and their assets), from the listing cache when it may be used
    /// and holds them, else from the database (both queries at once), then cached.
    pub async fn listing(&self, store_id: &StoreId) -> Result<Arc<Listing>, OAuthError> {
        let listings = self.core.listings();
        if let Some(hit) = listings.get(store_id) {
            return Ok(hit);
        }
        // Readers that missed together wait for the first one's read (only while the cache is
        // usable: otherwise nothing would be stored for them to find).
        let _filling = match listings.ticket() {
            Some(_) => Some(listings.fill_lock(store_id).await),
            None => None,
        };
        if let Some(hit) = listings.get(store_id) {
            return Ok(hit);
        }
        let ticket = listings.ticket();
        let store = self.core.store();
        let (connections, assets) = tokio::try_join!(
            store.list_connections(store_id),
            store.list_assets(store_id)
        )?;
        let listing = Arc::new(Listing {
            connections,
            assets,
        });
        if let Some(ticket) = ticket {
            listings.put(store_id, ticket, listing.clone());
        }
        Ok(listing)
    }

    /// A store's connections (from the listing cache when it may be used).
    pub async fn list(&self, store_id: &StoreId) -> Result<Vec<Connection>, OAuthError> {
        if self.core.listings().ticket().is_none() {
            return Ok(self.core.store().list_connections(store_id).await?);
        }
        Ok(self.listing(store_id).await?.connections.clone())
    }

    /// Every asset of a store's connections (one query, or none from the listing cache).
    pub async fn assets(&self, store_id: &StoreId) -> Result<Vec<StoredAsset>, OAuthError> {
        if self.core.listings().ticket().is_none() {
            return Ok(self.core.store().list_assets(store_id).await?);
        }
        Ok(self.listing(store_id).await?.assets.clone())
    }
}
