//! What a platform's own notice does to a connection ([`Grants::remove_at_platform`],
//! [`Grants::delete_at_platform_request`], [`Grants::change_permission_at_platform`]): the
//! merchant removed the app at the platform, the person behind the account asked for their data to
//! be deleted, or granted or revoked one permission.
//!
//! A removal keeps the row (the page shows "Removed at Meta on <date>" with Reconnect) but deletes
//! its tokens and stops its refreshes and probes; a deletion removes the row, its assets and its
//! tokens. Neither calls the platform: the grant is already gone there. Which connections a
//! notice concerns, and when it is processed, belongs to `crate::inbox`.

use super::events;
use super::grants::Grants;
use crate::domain::Connection;
use crate::error::OAuthError;
use crate::store::StoreError;

/// The reason a removal records (`last_error`, the event's `reason`).
pub const REMOVED_AT_PLATFORM: &str = "removed_at_platform";

impl Grants {
    /// Marks `connection` REVOKED by its platform: tokens deleted, no more refreshes or probes,
    /// `connection.revoked` with `reason` `removed_at_platform`. Re-reads and retries when the row
    /// changed meanwhile (a refresh finishing); `None` when it is gone or already revoked.
    pub async fn remove_at_platform(
        &self,
        connection: Connection,
    ) -> Result<Option<Connection>, OAuthError> {
        let mut current = connection;
        for _ in 0..5 {
            if current.status == crate::domain::ConnectionStatus::Revoked
                && current.sealed_tokens.is_none()
            {
                return Ok(None);
            }
            let now = self.core().clock().now();
            let mut revoked = current.clone();
            revoked.status = crate::domain::ConnectionStatus::Revoked;
            let event = events::event(
                "connection.revoked",
                &revoked,
                Some(REMOVED_AT_PLATFORM),
                now,
            );
            // Stop serving cached tokens first: a cache write that fails after the database's
            // cannot keep a removed grant's token alive.
            self.core().cache().tombstone(&current).await;
            let written = self
                .core()
                .store()
                .mark_removed(&current, REMOVED_AT_PLATFORM, now, &event)
                .await;
            self.core().changed(&current.store_id).await;
            match written? {
                Some(saved) => {
                    self.core().cache().put(&saved).await;
                    self.forget_recovery(saved.id).await;
                    return Ok(Some(saved));
                }
                None => match self.reread(&current).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(None),
                },
            }
        }
        Err(OAuthError::Store(StoreError::Conflict))
    }

    /// Deletes `connection` (its assets go with it) for a data deletion request, recording
    /// `connection.deleted` with `reason` `data_deletion_request`. `false` when it was gone.
    pub async fn delete_at_platform_request(
        &self,
        connection: Connection,
    ) -> Result<bool, OAuthError> {
        let mut current = connection;
        for _ in 0..5 {
            let now = self.core().clock().now();
            let mut event = events::event(
                "connection.deleted",
                &current,
                Some("data_deletion_request"),
                now,
            );
            // The services learn which connection went, not whose data it held.
            event.payload["connection"]["account_id"] = serde_json::Value::Null;
            event.payload["connection"]["account_name"] = serde_json::Value::Null;
            self.core().cache().tombstone(&current).await;
            let deleted = self
                .core()
                .store()
                .delete_connection_row(current.id, current.version, Some(&event))
                .await;
            self.core().changed(&current.store_id).await;
            if let Some(deleted) = deleted? {
                self.core().cache().tombstone(&deleted).await;
                self.forget_recovery(deleted.id).await;
                return Ok(true);
            }
            match self.reread(&current).await? {
                Some(fresh) => current = fresh,
                None => return Ok(false),
            }
        }
        Err(OAuthError::Store(StoreError::Conflict))
    }

    /// Records a permission the person granted or revoked at the platform (Meta's `permissions`
    /// topic [M30]): `granted_scopes` gains or loses it, `missing_scopes` is recomputed against
    /// the scopes the platform is asked for, and `connection.permissions_changed` is recorded.
    /// Re-reads and retries when the row changed meanwhile; `None` when it is gone.
    pub async fn change_permission_at_platform(
        &self,
        connection: Connection,
        permission: &str,
        granted: bool,
    ) -> Result<Option<Connection>, OAuthError> {
        let requested = self
            .core()
            .catalog()
            .get(&connection.platform)
            .map(|spec| spec.scopes.clone())
            .unwrap_or_default();
        let mut current = connection;
        for _ in 0..5 {
            current.granted_scopes.retain(|s| s != permission);
            if granted {
                current.granted_scopes.push(permission.to_owned());
            }
            current.missing_scopes = requested
                .iter()
                .filter(|s| !current.granted_scopes.contains(s))
                .cloned()
                .collect();
            let now = self.core().clock().now();
            current.updated_at = now;
            let mut event = events::event("connection.permissions_changed", &current, None, now);
            event.payload["permission"] = serde_json::json!(permission);
            event.payload["granted"] = serde_json::json!(granted);
            event.payload["granted_scopes"] = serde_json::json!(current.granted_scopes);
            let written = self
                .core()
                .store()
                .update_connection(&current, Some(&event))
                .await;
            self.core().changed(&current.store_id).await;
            match written {
                Ok(saved) => {
                    self.core().cache().put(&saved).await;
                    return Ok(Some(saved));
                }
                Err(StoreError::Conflict) => match self.reread(&current).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(None),
                },
                Err(error) => return Err(error.into()),
            }
        }
        Err(OAuthError::Store(StoreError::Conflict))
    }

    /// The row a guarded write missed, read again: `None` when it is gone or the store's
    /// connection on that platform is another row now.
    async fn reread(&self, connection: &Connection) -> Result<Option<Connection>, OAuthError> {
        let fresh = self
            .core()
            .store()
            .get_connection(&connection.store_id, &connection.platform)
            .await?;
        Ok(fresh.filter(|fresh| fresh.id == connection.id))
    }
}
