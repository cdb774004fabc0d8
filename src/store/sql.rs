//! The SQL both backends share. sqlx binds `$N` placeholders on SQLite as on PostgreSQL, and the
//! schema keeps the same column names, so one body serves both; `impl_store!` stamps it onto each
//! backend's pool type. Only what truly differs (JSON column types, migrations) stays per backend.

/// Every column of `platform_connections`, in the order `decode_connection` reads them.
pub(super) const CONNECTION_COLUMNS: &str = "id, store_id, user_id, platform, status, account_id, \
    account_name, account_picture, sealed_tokens, key_id, metadata, granted_scopes, missing_scopes, \
    access_token_expires_at, refresh_token_expires_at, last_refreshed_at, next_refresh_at, \
    refresh_failures, last_error, version, created_at, updated_at, failing_since, health_since, \
    last_checked_at, next_check_at, expiry_warned_for, expiry_warned_days, failing_alerted_at";

/// The most audit rows one insert carries: 9 bound values a row stays far below SQLite's 32766 and
/// PostgreSQL's 65535.
pub(super) const AUDIT_ROWS_PER_STATEMENT: usize = 1000;

/// The most platform notices one insert carries: 13 bound values a row stays below SQLite's 32766
/// and PostgreSQL's 65535.
pub(super) const PLATFORM_EVENTS_PER_STATEMENT: usize = 1000;

/// The columns of `api_keys` that leave the store (never `hash`).
pub(super) const API_KEY_COLUMNS: &str =
    "id, name, scopes, stores, created_at, last_used_at, revoked_at";

/// Whether a failed statement broke a unique constraint (a duplicate key name).
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Stamps the [`Store`](super::Store) implementation onto a backend: `$store` wraps a pool of `$db`,
/// `$db_now` is the query that reads the database's clock (for leases), and `$skip_locked` ends a
/// subquery that claims rows (PostgreSQL's `for update skip locked`; nothing on SQLite, whose
/// writes are serialised anyway), and `$data_access_expiry` is the SQL expression of a reported
/// data-access expiry in `metadata` (Unix seconds, or null; the same text as the index on it in
/// migration 0031).
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $db_now:literal, $skip_locked:literal, $data_access_expiry:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::types::Json;
        use sqlx::Row;
        use uuid::Uuid;

        use crate::domain::{Connection, PlatformId, StoreId};
        use crate::store::sql::{
            update_sql, API_KEY_COLUMNS, AUDIT_ROWS_PER_STATEMENT, CONNECTION_COLUMNS,
            PLATFORM_EVENTS_PER_STATEMENT,
        };
        use crate::store::contract::{
            plan_selection, ApiKeyRecord, AuditRow, DeletionRequest, NewAsset, NewEvent,
            NewPlatformEvent, OutboxEvent, PlatformEventRow, StatusCount, Store, StoreError,
            StoredAsset,
        };

        type DbRow = <$db as sqlx::Database>::Row;

        fn decode_connection(row: &DbRow) -> Result<Connection, StoreError> {
            let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
            let status: String = row.try_get("status")?;
            Ok(Connection {
                id: row.try_get("id")?,
                store_id: StoreId::parse(row.try_get::<String, _>("store_id")?)
                    .map_err(|_| corrupt("store_id"))?,
                user_id: crate::domain::UserId::parse(row.try_get::<String, _>("user_id")?)
                    .map_err(|_| corrupt("user_id"))?,
                platform: PlatformId::parse(&row.try_get::<String, _>("platform")?)
                    .map_err(|_| corrupt("platform"))?,
                status: status.parse().map_err(|e: String| StoreError::Corrupt(e))?,
                account_id: row.try_get("account_id")?,
                account_name: row.try_get("account_name")?,
                account_picture: row.try_get("account_picture")?,
                sealed_tokens: row.try_get("sealed_tokens")?,
                key_id: row.try_get("key_id")?,
                metadata: row.try_get::<Json<serde_json::Value>, _>("metadata")?.0,
                granted_scopes: row.try_get::<Json<Vec<String>>, _>("granted_scopes")?.0,
                missing_scopes: row.try_get::<Json<Vec<String>>, _>("missing_scopes")?.0,
                access_token_expires_at: row.try_get("access_token_expires_at")?,
                refresh_token_expires_at: row.try_get("refresh_token_expires_at")?,
                last_refreshed_at: row.try_get("last_refreshed_at")?,
                next_refresh_at: row.try_get("next_refresh_at")?,
                refresh_failures: row.try_get("refresh_failures")?,
                last_error: row.try_get("last_error")?,
                version: row.try_get("version")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                failing_since: row.try_get("failing_since")?,
                health_since: row.try_get("health_since")?,
                last_checked_at: row.try_get("last_checked_at")?,
                next_check_at: row.try_get("next_check_at")?,
                expiry_warned_for: row.try_get("expiry_warned_for")?,
                expiry_warned_days: row.try_get("expiry_warned_days")?,
                failing_alerted_at: row.try_get("failing_alerted_at")?,
            })
        }

        async fn insert_event<'c>(
            tx: &mut sqlx::Transaction<'c, $db>,
            event: Option<&NewEvent>,
        ) -> Result<(), StoreError> {
            if let Some(event) = event {
                sqlx::query(
                    "insert into webhook_outbox (id, event_type, payload, created_at, attempts, next_attempt_at) \
                     values ($1, $2, $3, $4, 0, $4)",
                )
                .bind(Uuid::new_v4())
                .bind(&event.event_type)
                .bind(Json(&event.payload))
                .bind(event.at)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                $migrator.run(&self.pool).await.map_err(StoreError::Migration)
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("select 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn save_connection(
                &self,
                c: &Connection,
                event: Option<&NewEvent>,
            ) -> Result<Connection, StoreError> {
                let mut tx = self.pool.begin().await?;
                let sql = format!(
                    "insert into platform_connections ({CONNECTION_COLUMNS}) values \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 1, $20, $21, \
                     $22, $23, $24, $25, $26, $27, $28) \
                     on conflict (store_id, platform) do update set \
                     user_id = excluded.user_id, status = excluded.status, account_id = excluded.account_id, \
                     account_name = excluded.account_name, account_picture = excluded.account_picture, \
                     sealed_tokens = excluded.sealed_tokens, key_id = excluded.key_id, \
                     metadata = excluded.metadata, granted_scopes = excluded.granted_scopes, \
                     missing_scopes = excluded.missing_scopes, \
                     access_token_expires_at = excluded.access_token_expires_at, \
                     refresh_token_expires_at = excluded.refresh_token_expires_at, \
                     last_refreshed_at = excluded.last_refreshed_at, next_refresh_at = excluded.next_refresh_at, \
                     refresh_failures = excluded.refresh_failures, last_error = excluded.last_error, \
                     refresh_lease_owner = null, refresh_lease_until = null, \
                     failing_since = excluded.failing_since, health_since = excluded.health_since, \
                     last_checked_at = excluded.last_checked_at, next_check_at = excluded.next_check_at, \
                     expiry_warned_for = excluded.expiry_warned_for, \
                     expiry_warned_days = excluded.expiry_warned_days, \
                     failing_alerted_at = excluded.failing_alerted_at, \
                     version = platform_connections.version + 1, updated_at = excluded.updated_at \
                     returning {CONNECTION_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(c.id)
                    .bind(c.store_id.as_str())
                    .bind(c.user_id.as_str())
                    .bind(c.platform.as_str())
                    .bind(c.status.as_str())
                    .bind(&c.account_id)
                    .bind(&c.account_name)
                    .bind(&c.account_picture)
                    .bind(&c.sealed_tokens)
                    .bind(&c.key_id)
                    .bind(Json(&c.metadata))
                    .bind(Json(&c.granted_scopes))
                    .bind(Json(&c.missing_scopes))
                    .bind(c.access_token_expires_at)
                    .bind(c.refresh_token_expires_at)
                    .bind(c.last_refreshed_at)
                    .bind(c.next_refresh_at)
                    .bind(c.refresh_failures)
                    .bind(&c.last_error)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.failing_since)
                    .bind(c.health_since)
                    .bind(c.last_checked_at)
                    .bind(c.next_check_at)
                    .bind(c.expiry_warned_for)
                    .bind(c.expiry_warned_days)
                    .bind(c.failing_alerted_at)
                    .fetch_one(&mut *tx)
                    .await?;
                let saved = decode_connection(&row)?;
                insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(saved)
            }

            async fn get_connection(
                &self,
                store_id: &StoreId,
                platform: &PlatformId,
            ) -> Result<Option<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections where store_id = $1 and platform = $2"
                );
                sqlx::query(&sql)
                    .bind(store_id.as_str())
                    .bind(platform.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(decode_connection)
                    .transpose()
            }

            async fn list_connections(&self, store_id: &StoreId) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections where store_id = $1 order by platform"
                );
                sqlx::query(&sql)
                    .bind(store_id.as_str())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn update_connection(
                &self,
                c: &Connection,
                event: Option<&NewEvent>,
            ) -> Result<Connection, StoreError> {
                let mut tx = self.pool.begin().await?;
                let row = update_fields(c, None)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::Conflict)?;
                let saved = decode_connection(&row)?;
                insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(saved)
            }

            async fn delete_connection(
                &self,
                store_id: &StoreId,
                platform: &PlatformId,
                event: Option<&NewEvent>,
            ) -> Result<Option<Connection>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let sql = format!(
                    "delete from platform_connections where store_id = $1 and platform = $2 returning {CONNECTION_COLUMNS}"
                );
                let deleted = sqlx::query(&sql)
                    .bind(store_id.as_str())
                    .bind(platform.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(decode_connection)
                    .transpose()?;
                if deleted.is_some() {
                    insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn connections_to_reseal(
                &self,
                current_key_id: &str,
                limit: i64,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections \
                     where sealed_tokens is not null and (key_id is null or key_id <> $1) limit $2"
                );
                sqlx::query(&sql)
                    .bind(current_key_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn acquire_refresh_lease(
                &self,
                id: Uuid,
                owner: &str,
                lease: std::time::Duration,
            ) -> Result<Option<Connection>, StoreError> {
                // The database's clock: the conditional update below stays the arbiter, only the
                // times come from one clock for every replica.
                let now: DateTime<Utc> = sqlx::query_scalar($db_now).fetch_one(&self.pool).await?;
                let until = now
                    + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                let sql = format!(
                    "update platform_connections set refresh_lease_owner = $2, refresh_lease_until = $3 \
                     where id = $1 and (refresh_lease_until is null or refresh_lease_until < $4) \
                     returning {CONNECTION_COLUMNS}"
                );
                sqlx::query(&sql)
                    .bind(id)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(decode_connection)
                    .transpose()
            }

            async fn delete_connection_row(
                &self,
                id: Uuid,
                version: i64,
                event: Option<&NewEvent>,
            ) -> Result<Option<Connection>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let sql = format!(
                    "delete from platform_connections where id = $1 and version = $2 returning {CONNECTION_COLUMNS}"
                );
                let deleted = sqlx::query(&sql)
                    .bind(id)
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(decode_connection)
                    .transpose()?;
                if deleted.is_some() {
                    insert_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn key_id_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
                let rows = sqlx::query(
                    "select key_id, count(*) as n from platform_connections \
                     where key_id is not null and sealed_tokens is not null group by key_id order by key_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("key_id")?, row.try_get("n")?)))
                    .collect()
            }

            async fn connections_sealed_with(
                &self,
                key_id: &str,
                after: Uuid,
                limit: i64,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections \
                     where key_id = $1 and sealed_tokens is not null and id > $2 order by id limit $3"
                );
                sqlx::query(&sql)
                    .bind(key_id)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn revive_errors_sealed_with(
                &self,
                key_id: &str,
                reason: &str,
                now: DateTime<Utc>,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "update platform_connections set status = 'CONNECTED', next_refresh_at = $3, \
                     last_error = null, refresh_failures = 0, version = version + 1, updated_at = $3 \
                     where status = 'ERROR' and key_id = $1 and last_error = $2 \
                     returning {CONNECTION_COLUMNS}"
                );
                sqlx::query(&sql)
                    .bind(key_id)
                    .bind(reason)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn finish_refresh(
                &self,
                c: &Connection,
                owner: &str,
                event: Option<&NewEvent>,
            ) -> Result<Connection, StoreError> {
                let mut tx = self.pool.begin().await?;
                let row = update_fields(c, Some(owner))
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::Conflict)?;
                let saved = decode_connection(&row)?;
                insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(saved)
            }

            async fn release_refresh_lease(&self, id: Uuid, owner: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "update platform_connections set refresh_lease_owner = null, refresh_lease_until = null \
                     where id = $1 and refresh_lease_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn due_for_refresh(
                &self,
                now: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections \
                     where next_refresh_at is not null and next_refresh_at <= $1 and status = 'CONNECTED' \
                     and (refresh_lease_until is null or refresh_lease_until < $1) \
                     order by next_refresh_at limit $2"
                );
                sqlx::query(&sql)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn claim_liveness_checks(
                &self,
                now: DateTime<Utc>,
                next: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<Connection>, StoreError> {
                // One statement claims: the rows it moves to `next` are this caller's alone.
                let sql = format!(
                    "update platform_connections set next_check_at = $2 where id in (\
                     select id from platform_connections where next_check_at is not null \
                     and next_check_at <= $1 and status = 'CONNECTED' \
                     order by next_check_at limit $3{}) returning {CONNECTION_COLUMNS}",
                    $skip_locked
                );
                sqlx::query(&sql)
                    .bind(now)
                    .bind(next)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn record_liveness_check(
                &self,
                id: Uuid,
                alive_at: Option<DateTime<Utc>>,
                next: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "update platform_connections set \
                     last_checked_at = coalesce($2, last_checked_at), next_check_at = $3 \
                     where id = $1 and next_check_at is not null",
                )
                .bind(id)
                .bind(alive_at)
                .bind(next)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn health_sweep_candidates(
                &self,
                failing_before: DateTime<Utc>,
                expiring_before: DateTime<Utc>,
                after: Uuid,
                limit: i64,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections \
                     where status = 'CONNECTED' and id > $3 and (\
                     (failing_since is not null and failing_since <= $1 and failing_alerted_at is null) \
                     or (refresh_token_expires_at is not null and refresh_token_expires_at <= $2) \
                     or {expiry} <= $5) \
                     order by id limit $4",
                    expiry = $data_access_expiry
                );
                sqlx::query(&sql)
                    .bind(failing_before)
                    .bind(expiring_before)
                    .bind(after)
                    .bind(limit)
                    .bind(expiring_before.timestamp())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn mark_expiry_warned(
                &self,
                id: Uuid,
                reconnect_by: DateTime<Utc>,
                days: i32,
                event: &NewEvent,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                // Of two replicas sweeping at once, one moves the row; only it records the event.
                let done = sqlx::query(
                    "update platform_connections set expiry_warned_for = $2, expiry_warned_days = $3 \
                     where id = $1 and status = 'CONNECTED' and (expiry_warned_for is null \
                     or expiry_warned_for <> $2 or expiry_warned_days is null or expiry_warned_days > $3)",
                )
                .bind(id)
                .bind(reconnect_by)
                .bind(days)
                .execute(&mut *tx)
                .await?;
                let claimed = done.rows_affected() == 1;
                if claimed {
                    insert_event(&mut tx, Some(event)).await?;
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn mark_failing_alerted(
                &self,
                id: Uuid,
                failing_since: DateTime<Utc>,
                at: DateTime<Utc>,
                event: &NewEvent,
            ) -> Result<bool, StoreError> {
                // Not while a refresh holds the lease: its write decides from the row it leased
                // whether a `connection.recovered` is owed, so the alert must not land under it.
                let db_now: DateTime<Utc> = sqlx::query_scalar($db_now).fetch_one(&self.pool).await?;
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "update platform_connections set failing_alerted_at = $3 \
                     where id = $1 and status = 'CONNECTED' and failing_since = $2 \
                     and failing_alerted_at is null \
                     and (refresh_lease_until is null or refresh_lease_until < $4)",
                )
                .bind(id)
                .bind(failing_since)
                .bind(at)
                .bind(db_now)
                .execute(&mut *tx)
                .await?;
                let claimed = done.rows_affected() == 1;
                if claimed {
                    insert_event(&mut tx, Some(event)).await?;
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn count_by_status(&self) -> Result<Vec<StatusCount>, StoreError> {
                let rows = sqlx::query(
                    "select platform, status, count(*) as n from platform_connections group by platform, status \
                     order by platform, status",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let status: String = row.try_get("status")?;
                        Ok(StatusCount {
                            platform: row.try_get("platform")?,
                            status: status.parse().map_err(|e: String| StoreError::Corrupt(e))?,
                            count: row.try_get("n")?,
                        })
                    })
                    .collect()
            }

            async fn claim_events(
                &self,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<OutboxEvent>, StoreError> {
                let candidates = sqlx::query(
                    "select id, next_attempt_at from webhook_outbox \
                     where delivered_at is null and dead_at is null and next_attempt_at <= $1 \
                     order by next_attempt_at limit $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = Vec::new();
                for candidate in candidates {
                    let id: Uuid = candidate.try_get("id")?;
                    let seen: DateTime<Utc> = candidate.try_get("next_attempt_at")?;
                    // A conditional update is the claim: of two replicas, only one moves the row.
                    let row = sqlx::query(
                        "update webhook_outbox set next_attempt_at = $3, attempts = attempts + 1 \
                         where id = $1 and next_attempt_at = $2 and delivered_at is null and dead_at is null \
                         returning id, event_type, payload, created_at, attempts",
                    )
                    .bind(id)
                    .bind(seen)
                    .bind(lease_until)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = row {
                        claimed.push(OutboxEvent {
                            id: row.try_get("id")?,
                            event_type: row.try_get("event_type")?,
                            payload: row.try_get::<Json<serde_json::Value>, _>("payload")?.0,
                            created_at: row.try_get("created_at")?,
                            attempts: row.try_get("attempts")?,
                        });
                    }
                }
                Ok(claimed)
            }

            async fn mark_event_delivered(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query("update webhook_outbox set delivered_at = $2, last_error = null where id = $1")
                    .bind(id)
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mark_event_failed(
                &self,
                id: Uuid,
                next_attempt_at: DateTime<Utc>,
                error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("update webhook_outbox set next_attempt_at = $2, last_error = $3 where id = $1")
                    .bind(id)
                    .bind(next_attempt_at)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mark_event_dead(
                &self,
                id: Uuid,
                at: DateTime<Utc>,
                error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("update webhook_outbox set dead_at = $2, last_error = $3 where id = $1")
                    .bind(id)
                    .bind(at)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn prune_delivered_events(
                &self,
                before: DateTime<Utc>,
                limit: i64,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "delete from webhook_outbox where id in (select id from webhook_outbox \
                     where delivered_at is not null and delivered_at < $1 order by delivered_at limit $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn count_dead_events(&self) -> Result<i64, StoreError> {
                let row = sqlx::query("select count(*) as n from webhook_outbox where dead_at is not null")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn create_api_key(
                &self,
                record: &ApiKeyRecord,
                hash: &str,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "insert into api_keys (id, name, hash, scopes, stores, created_at) values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(record.id)
                .bind(&record.name)
                .bind(hash)
                .bind(&record.scopes)
                .bind(record.stores.as_deref())
                .bind(record.created_at)
                .execute(&self.pool)
                .await;
                match done {
                    Ok(_) => Ok(()),
                    Err(error) if crate::store::sql::is_unique_violation(&error) => {
                        Err(StoreError::Conflict)
                    }
                    Err(error) => Err(error.into()),
                }
            }

            async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
                let sql = format!("select {API_KEY_COLUMNS} from api_keys where hash = $1");
                sqlx::query(&sql)
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(decode_api_key)
                    .transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
                let sql = format!("select {API_KEY_COLUMNS} from api_keys order by name");
                sqlx::query(&sql)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_api_key)
                    .collect()
            }

            async fn revoke_api_key(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "update api_keys set revoked_at = $2 where name = $1 and revoked_at is null",
                )
                .bind(name)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoked_api_key_count(&self) -> Result<i64, StoreError> {
                let (count,): (i64,) =
                    sqlx::query_as("select count(revoked_at) from api_keys")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(count)
            }

            async fn touch_api_key(
                &self,
                id: Uuid,
                at: DateTime<Utc>,
                stale_before: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "update api_keys set last_used_at = $2 \
                     where id = $1 and (last_used_at is null or last_used_at < $3)",
                )
                .bind(id)
                .bind(at)
                .bind(stale_before)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
                // A writer's batch is one statement: one round trip, atomic by itself.
                if rows.len() <= AUDIT_ROWS_PER_STATEMENT {
                    audit_insert(rows).build().execute(&self.pool).await?;
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for chunk in rows.chunks(AUDIT_ROWS_PER_STATEMENT) {
                    audit_insert(chunk).build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                store_id: &StoreId,
                since: DateTime<Utc>,
                before: Option<(DateTime<Utc>, Uuid)>,
                limit: i64,
            ) -> Result<Vec<AuditRow>, StoreError> {
                let page = match before {
                    Some((at, id)) => sqlx::query(
                        "select id, at, actor_kind, actor, store_id, platform, operation, outcome, detail \
                         from audit where store_id = $1 and at >= $2 and (at < $3 or (at = $3 and id < $4)) \
                         order by at desc, id desc limit $5",
                    )
                    .bind(store_id.as_str())
                    .bind(since)
                    .bind(at)
                    .bind(id)
                    .bind(limit),
                    None => sqlx::query(
                        "select id, at, actor_kind, actor, store_id, platform, operation, outcome, detail \
                         from audit where store_id = $1 and at >= $2 order by at desc, id desc limit $3",
                    )
                    .bind(store_id.as_str())
                    .bind(since)
                    .bind(limit),
                };
                page.fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(AuditRow {
                            id: row.try_get("id")?,
                            at: row.try_get("at")?,
                            actor_kind: row.try_get("actor_kind")?,
                            actor: row.try_get("actor")?,
                            store_id: row.try_get("store_id")?,
                            platform: row.try_get("platform")?,
                            operation: row.try_get("operation")?,
                            outcome: row.try_get("outcome")?,
                            detail: row.try_get("detail")?,
                        })
                    })
                    .collect()
            }

            async fn prune_audit(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "delete from audit where id in (select id from audit where at < $1 order by at limit $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn replace_assets(
                &self,
                connection_id: Uuid,
                assets: &[NewAsset],
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                let before: Vec<(String, String)> = sqlx::query_as(
                    "select kind, asset_id from connection_assets where connection_id = $1 and selected",
                )
                .bind(connection_id)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query("delete from connection_assets where connection_id = $1")
                    .bind(connection_id)
                    .execute(&mut *tx)
                    .await?;
                for (asset, selected) in assets.iter().zip(plan_selection(assets, &before)) {
                    sqlx::query(
                        "insert into connection_assets \
                         (connection_id, kind, asset_id, name, details, selected, discovered_at) \
                         values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
                    )
                    .bind(connection_id)
                    .bind(&asset.kind)
                    .bind(&asset.id)
                    .bind(&asset.name)
                    .bind(Json(&asset.details))
                    .bind(selected)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_assets(&self, store_id: &StoreId) -> Result<Vec<StoredAsset>, StoreError> {
                let rows = sqlx::query(
                    "select a.connection_id, c.platform, a.kind, a.asset_id, a.name, a.details, \
                     a.selected, a.discovered_at from connection_assets a \
                     join platform_connections c on c.id = a.connection_id \
                     where c.store_id = $1 order by c.platform, a.kind, a.name, a.asset_id",
                )
                .bind(store_id.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(StoredAsset {
                            connection_id: row.try_get("connection_id")?,
                            platform: PlatformId::parse(&row.try_get::<String, _>("platform")?)
                                .map_err(|_| StoreError::Corrupt("platform".into()))?,
                            kind: row.try_get("kind")?,
                            id: row.try_get("asset_id")?,
                            name: row.try_get("name")?,
                            details: row.try_get::<Json<serde_json::Value>, _>("details")?.0,
                            selected: row.try_get("selected")?,
                            discovered_at: row.try_get("discovered_at")?,
                        })
                    })
                    .collect()
            }

            async fn select_asset(
                &self,
                connection_id: Uuid,
                kind: &str,
                id: &str,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                // Clear first, then set: the partial unique index allows one selected per kind at
                // every statement's end.
                let exists = sqlx::query(
                    "select 1 from connection_assets where connection_id = $1 and kind = $2 and asset_id = $3",
                )
                .bind(connection_id)
                .bind(kind)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                if !exists {
                    return Ok(false);
                }
                sqlx::query(
                    "update connection_assets set selected = false where connection_id = $1 and kind = $2 and selected",
                )
                .bind(connection_id)
                .bind(kind)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "update connection_assets set selected = true \
                     where connection_id = $1 and kind = $2 and asset_id = $3",
                )
                .bind(connection_id)
                .bind(kind)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_platform_events(
                &self,
                events: &[NewPlatformEvent],
            ) -> Result<Vec<bool>, StoreError> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                // One statement for a whole batch (Meta sends up to 1000 entries in one POST): the
                // rows it inserted come back; the others were stored before.
                let mut inserted = std::collections::HashSet::new();
                for chunk in events.chunks(PLATFORM_EVENTS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "insert into platform_events (id, platform, dedupe_key, receiver, kind, \
                         event_type, account_kind, account_id, payload, occurred_at, received_at, \
                         attempts, next_attempt_at) ",
                    );
                    insert.push_values(chunk, |mut values, event| {
                        values
                            .push_bind(Uuid::now_v7())
                            .push_bind(event.platform.as_str().to_owned())
                            .push_bind(event.dedupe_key.clone())
                            .push_bind(event.receiver.clone())
                            .push_bind(event.kind.clone())
                            .push_bind(event.event_type.clone())
                            .push_bind(event.account_kind.clone())
                            .push_bind(event.account_id.clone())
                            .push_bind(Json(event.payload.clone()))
                            .push_bind(event.occurred_at)
                            .push_bind(event.received_at)
                            .push_bind(0_i32)
                            .push_bind(event.received_at);
                    });
                    insert.push(" on conflict (platform, dedupe_key) do nothing returning dedupe_key");
                    for row in insert.build().fetch_all(&self.pool).await? {
                        inserted.insert(row.try_get::<String, _>("dedupe_key")?);
                    }
                }
                // A batch may hold the same notice twice: the first is the new one.
                let mut seen = std::collections::HashSet::new();
                Ok(events
                    .iter()
                    .map(|e| inserted.contains(&e.dedupe_key) && seen.insert(e.dedupe_key.clone()))
                    .collect())
            }

            async fn claim_platform_events(
                &self,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<PlatformEventRow>, StoreError> {
                let sql = format!(
                    "update platform_events set next_attempt_at = $2, attempts = attempts + 1 \
                     where id in (select id from platform_events where processed_at is null \
                     and next_attempt_at <= $1 \
                     order by case when kind in ('removal', 'data_deletion') then 0 else 1 end, \
                     next_attempt_at limit $3{}) \
                     returning id, platform, dedupe_key, receiver, kind, event_type, account_kind, \
                     account_id, payload, occurred_at, received_at, attempts",
                    $skip_locked
                );
                let rows = sqlx::query(&sql)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut claimed = rows
                    .iter()
                    .map(decode_platform_event)
                    .collect::<Result<Vec<_>, _>>()?;
                // `returning` follows no order: the oldest first, as they were received.
                claimed.sort_by_key(|row| (row.event.received_at, row.id));
                Ok(claimed)
            }

            async fn finish_platform_event(
                &self,
                id: Uuid,
                at: DateTime<Utc>,
                outcome: &str,
                scrub: bool,
            ) -> Result<(), StoreError> {
                let sql = if scrub {
                    "update platform_events set processed_at = $2, outcome = $3, payload = '{}', \
                     account_id = null where id = $1"
                } else {
                    "update platform_events set processed_at = $2, outcome = $3 where id = $1"
                };
                sqlx::query(sql)
                    .bind(id)
                    .bind(at)
                    .bind(outcome)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn finish_platform_events(
                &self,
                finished: &[(Uuid, &str)],
                at: DateTime<Utc>,
                webhooks: &[NewEvent],
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for webhook in webhooks {
                    insert_event(&mut tx, Some(webhook)).await?;
                }
                for (id, outcome) in finished {
                    sqlx::query(
                        "update platform_events set processed_at = $2, outcome = $3 where id = $1",
                    )
                    .bind(id)
                    .bind(at)
                    .bind(*outcome)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn retry_platform_event(
                &self,
                id: Uuid,
                next: DateTime<Utc>,
                error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "update platform_events set next_attempt_at = $2, outcome = $3 \
                     where id = $1 and processed_at is null",
                )
                .bind(id)
                .bind(next)
                .bind(error)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn prune_platform_events(
                &self,
                before: DateTime<Utc>,
                limit: i64,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "delete from platform_events where id in (select id from platform_events \
                     where processed_at is not null and processed_at < $1 order by processed_at limit $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn connections_by_account(
                &self,
                platform: &PlatformId,
                account_id: &str,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections \
                     where platform = $1 and account_id = $2 order by store_id"
                );
                sqlx::query(&sql)
                    .bind(platform.as_str())
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn connections_by_asset(
                &self,
                platform: &PlatformId,
                asset_id: &str,
            ) -> Result<Vec<Connection>, StoreError> {
                let sql = format!(
                    "select {CONNECTION_COLUMNS} from platform_connections where platform = $1 \
                     and id in (select connection_id from connection_assets where asset_id = $2) \
                     order by store_id"
                );
                sqlx::query(&sql)
                    .bind(platform.as_str())
                    .bind(asset_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(decode_connection)
                    .collect()
            }

            async fn mark_removed(
                &self,
                connection: &Connection,
                reason: &str,
                at: DateTime<Utc>,
                event: &NewEvent,
            ) -> Result<Option<Connection>, StoreError> {
                static REMOVED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    update_sql(
                        "version = $21",
                        ", refresh_lease_owner = null, refresh_lease_until = null, next_check_at = null",
                    )
                });
                let removed = Connection {
                    status: crate::domain::ConnectionStatus::Revoked,
                    sealed_tokens: None,
                    next_refresh_at: None,
                    last_error: Some(reason.to_owned()),
                    failing_since: None,
                    health_since: Some(at),
                    updated_at: at,
                    ..connection.clone()
                };
                let mut tx = self.pool.begin().await?;
                let row = bind_fields(sqlx::query(&REMOVED), &removed, None)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let saved = decode_connection(&row)?;
                insert_event(&mut tx, Some(event)).await?;
                tx.commit().await?;
                Ok(Some(saved))
            }

            async fn create_deletion_request(
                &self,
                request: &DeletionRequest,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "insert into data_deletion_requests (confirmation_code, platform, account_digest, \
                     status, requested_at, completed_at, connections_deleted) values ($1, $2, $3, $4, $5, $6, $7) \
                     on conflict (confirmation_code) do nothing",
                )
                .bind(&request.confirmation_code)
                .bind(&request.platform)
                .bind(&request.account_digest)
                .bind(&request.status)
                .bind(request.requested_at)
                .bind(request.completed_at)
                .bind(request.connections_deleted)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn deletion_request(
                &self,
                code: &str,
            ) -> Result<Option<DeletionRequest>, StoreError> {
                let row = sqlx::query(
                    "select confirmation_code, platform, account_digest, status, requested_at, \
                     completed_at, connections_deleted from data_deletion_requests where confirmation_code = $1",
                )
                .bind(code)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok(DeletionRequest {
                        confirmation_code: row.try_get("confirmation_code")?,
                        platform: row.try_get("platform")?,
                        account_digest: row.try_get("account_digest")?,
                        status: row.try_get("status")?,
                        requested_at: row.try_get("requested_at")?,
                        completed_at: row.try_get("completed_at")?,
                        connections_deleted: row.try_get("connections_deleted")?,
                    })
                })
                .transpose()
            }

            async fn complete_deletion_request(
                &self,
                code: &str,
                at: DateTime<Utc>,
                connections_deleted: i32,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "update data_deletion_requests set status = 'completed', completed_at = $2, \
                     connections_deleted = $3 where confirmation_code = $1",
                )
                .bind(code)
                .bind(at)
                .bind(connections_deleted)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        fn decode_platform_event(row: &DbRow) -> Result<PlatformEventRow, StoreError> {
            Ok(PlatformEventRow {
                id: row.try_get("id")?,
                event: NewPlatformEvent {
                    platform: PlatformId::parse(&row.try_get::<String, _>("platform")?)
                        .map_err(|_| StoreError::Corrupt("platform".into()))?,
                    dedupe_key: row.try_get("dedupe_key")?,
                    receiver: row.try_get("receiver")?,
                    kind: row.try_get("kind")?,
                    event_type: row.try_get("event_type")?,
                    account_kind: row.try_get("account_kind")?,
                    account_id: row.try_get("account_id")?,
                    payload: row.try_get::<Json<serde_json::Value>, _>("payload")?.0,
                    occurred_at: row.try_get("occurred_at")?,
                    received_at: row.try_get("received_at")?,
                },
                attempts: row.try_get("attempts")?,
            })
        }

        /// One multi-row insert of audit rows (at most [`AUDIT_ROWS_PER_STATEMENT`]).
        fn audit_insert(rows: &[AuditRow]) -> sqlx::QueryBuilder<'_, $db> {
            let mut insert = sqlx::QueryBuilder::<$db>::new(
                "insert into audit (id, at, actor_kind, actor, store_id, platform, operation, outcome, detail) ",
            );
            insert.push_values(rows, |mut values, row| {
                values
                    .push_bind(row.id)
                    .push_bind(row.at)
                    .push_bind(row.actor_kind.as_str())
                    .push_bind(row.actor.as_str())
                    .push_bind(row.store_id.as_deref())
                    .push_bind(row.platform.as_deref())
                    .push_bind(row.operation.as_str())
                    .push_bind(row.outcome.as_str())
                    .push_bind(row.detail.as_deref());
            });
            insert
        }

        fn decode_api_key(row: &DbRow) -> Result<ApiKeyRecord, StoreError> {
            Ok(ApiKeyRecord {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                scopes: row.try_get("scopes")?,
                stores: row.try_get("stores")?,
                created_at: row.try_get("created_at")?,
                last_used_at: row.try_get("last_used_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        /// The update of every mutable field, guarded by `$21`: the connection's version for
        /// optimistic writes, or the lease owner (fencing) for a refresh's write, which also frees it.
        fn update_fields<'q>(
            c: &'q Connection,
            owner: Option<&'q str>,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            static BY_VERSION: std::sync::LazyLock<String> =
                std::sync::LazyLock::new(|| update_sql("version = $21", ""));
            static BY_LEASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                update_sql(
                    "refresh_lease_owner = $21",
                    ", refresh_lease_owner = null, refresh_lease_until = null",
                )
            });
            let sql: &'static str = if owner.is_some() { &BY_LEASE } else { &BY_VERSION };
            bind_fields(sqlx::query(sql), c, owner)
        }

        /// Binds every field [`update_sql`] sets, and its guard (`$21`: the lease owner, else the
        /// version).
        fn bind_fields<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            c: &'q Connection,
            owner: Option<&'q str>,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            let query = query
                .bind(c.id)
                .bind(c.status.as_str())
                .bind(c.account_id.as_deref())
                .bind(c.account_name.as_deref())
                .bind(c.account_picture.as_deref())
                .bind(c.sealed_tokens.as_deref())
                .bind(c.key_id.as_deref())
                .bind(Json(&c.metadata))
                .bind(Json(&c.granted_scopes))
                .bind(Json(&c.missing_scopes))
                .bind(c.access_token_expires_at)
                .bind(c.refresh_token_expires_at)
                .bind(c.last_refreshed_at)
                .bind(c.next_refresh_at)
                .bind(c.refresh_failures)
                .bind(c.last_error.as_deref())
                .bind(c.updated_at)
                .bind(c.user_id.as_str())
                .bind(c.store_id.as_str())
                .bind(c.platform.as_str());
            let query = match owner {
                Some(owner) => query.bind(owner),
                None => query.bind(c.version),
            };
            query.bind(c.failing_since).bind(c.health_since)
        }
    };
}

pub(super) use impl_store;

/// The guarded update of every mutable column of a connection.
///
/// Not the probe's schedule (`last_checked_at`, `next_check_at`) nor the alerts sent
/// (`expiry_warned_*`, `failing_alerted_at`): those belong to their own conditional statements, so
/// that a writer holding an older copy of the row cannot undo them. The one exception: a write
/// that clears the failures (`refresh_failures = 0`) ends the failure episode, and its alert with it.
pub(super) fn update_sql(guard: &str, extra_sets: &str) -> String {
    format!(
        "update platform_connections set status = $2, account_id = $3, account_name = $4, \
         account_picture = $5, sealed_tokens = $6, key_id = $7, metadata = $8, granted_scopes = $9, \
         missing_scopes = $10, access_token_expires_at = $11, refresh_token_expires_at = $12, \
         last_refreshed_at = $13, next_refresh_at = $14, refresh_failures = $15, last_error = $16, \
         updated_at = $17, user_id = $18, store_id = $19, platform = $20{extra_sets}, \
         failing_since = $22, health_since = $23, \
         failing_alerted_at = case when $15 = 0 then null else failing_alerted_at end, \
         version = version + 1 where id = $1 and {guard} returning {CONNECTION_COLUMNS}"
    )
}
