//! The storage contract, run against both backends: what one backend does, the other must do too.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use growth_engine::domain::{Connection, ConnectionStatus, PlatformId, StoreId, UserId};
use growth_engine::store::{
    ApiKeyRecord, AuditRow, NewAsset, NewEvent, PgStore, SqliteStore, Store, StoreError,
    StoredAsset,
};
use uuid::Uuid;

use crate::helpers::{fresh_database, TestDatabase};

async fn postgres() -> (Arc<dyn Store>, TestDatabase) {
    let db = fresh_database().await;
    let store = PgStore::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    (Arc::new(store), db)
}

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (Arc::new(store), dir)
}

fn connection(store: &str, platform: &str) -> Connection {
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    Connection {
        id: Uuid::now_v7(),
        store_id: StoreId::parse(store).unwrap(),
        user_id: UserId::parse("user-1").unwrap(),
        platform: PlatformId::parse(platform).unwrap(),
        status: ConnectionStatus::Connected,
        account_id: Some("acct-1".into()),
        account_name: Some("Shop Account".into()),
        account_picture: None,
        sealed_tokens: Some("v1.key.sealed".into()),
        key_id: Some("key".into()),
        metadata: serde_json::json!({"pages": [{"id": "1"}]}),
        granted_scopes: vec!["a".into(), "b".into()],
        missing_scopes: vec!["c".into()],
        access_token_expires_at: Some(at + Duration::hours(1)),
        refresh_token_expires_at: None,
        last_refreshed_at: None,
        next_refresh_at: Some(at + Duration::minutes(50)),
        refresh_failures: 0,
        last_error: None,
        version: 1,
        created_at: at,
        updated_at: at,
        failing_since: None,
        health_since: None,
        last_checked_at: None,
        next_check_at: None,
        expiry_warned_for: None,
        expiry_warned_days: None,
        failing_alerted_at: None,
    }
}

fn event(kind: &str) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        payload: serde_json::json!({"type": kind}),
        at: Utc::now(),
    }
}

/// Runs one contract check against both backends.
macro_rules! contract {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn on_postgres() {
                let (store, db) = postgres().await;
                ($body)(store).await;
                db.drop_database().await;
            }

            #[tokio::test]
            async fn on_sqlite() {
                let (store, _dir) = sqlite().await;
                ($body)(store).await;
            }
        }
    };
}

contract!(
    a_saved_connection_reads_back_field_for_field,
    |store: Arc<dyn Store>| async move {
        let c = connection("store-1", "meta");
        let saved = store
            .save_connection(&c, Some(&event("connection.created")))
            .await
            .unwrap();
        let read = store
            .get_connection(&c.store_id, &c.platform)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(read.id, c.id);
        assert_eq!(read.status, ConnectionStatus::Connected);
        assert_eq!(read.account_name.as_deref(), Some("Shop Account"));
        assert_eq!(read.sealed_tokens, c.sealed_tokens);
        assert_eq!(read.metadata, c.metadata);
        assert_eq!(read.granted_scopes, vec!["a", "b"]);
        assert_eq!(read.missing_scopes, vec!["c"]);
        assert_eq!(read.access_token_expires_at, c.access_token_expires_at);
        assert_eq!(read.next_refresh_at, c.next_refresh_at);
        assert_eq!(read.created_at, c.created_at);
        assert_eq!(saved.version, 1);
    }
);

contract!(
    saving_again_for_the_same_store_and_platform_replaces_the_row,
    |store: Arc<dyn Store>| async move {
        let first = connection("store-1", "tiktok");
        store.save_connection(&first, None).await.unwrap();
        let mut second = connection("store-1", "tiktok");
        second.account_name = Some("Other".into());
        let saved = store.save_connection(&second, None).await.unwrap();
        assert_eq!(saved.id, first.id, "the row keeps its id");
        assert_eq!(saved.version, 2);
        assert_eq!(saved.account_name.as_deref(), Some("Other"));
        let all = store.list_connections(&first.store_id).await.unwrap();
        assert_eq!(all.len(), 1);
    }
);

contract!(
    listing_returns_only_the_stores_own_connections,
    |store: Arc<dyn Store>| async move {
        store
            .save_connection(&connection("store-a", "meta"), None)
            .await
            .unwrap();
        store
            .save_connection(&connection("store-a", "google"), None)
            .await
            .unwrap();
        store
            .save_connection(&connection("store-b", "meta"), None)
            .await
            .unwrap();
        let a = store
            .list_connections(&StoreId::parse("store-a").unwrap())
            .await
            .unwrap();
        let platforms: Vec<_> = a.iter().map(|c| c.platform.to_string()).collect();
        assert_eq!(platforms, vec!["google", "meta"]);
    }
);

contract!(
    an_update_with_a_stale_version_is_a_conflict,
    |store: Arc<dyn Store>| async move {
        let saved = store
            .save_connection(&connection("s", "meta"), None)
            .await
            .unwrap();
        let mut first = saved.clone();
        first.status = ConnectionStatus::Expired;
        let updated = store.update_connection(&first, None).await.unwrap();
        assert_eq!(updated.version, saved.version + 1);
        let mut stale = saved.clone();
        stale.status = ConnectionStatus::Revoked;
        assert!(matches!(
            store.update_connection(&stale, None).await,
            Err(StoreError::Conflict)
        ));
        let read = store
            .get_connection(&saved.store_id, &saved.platform)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.status, ConnectionStatus::Expired);
    }
);

contract!(
    deleting_returns_the_row_and_writes_its_event,
    |store: Arc<dyn Store>| async move {
        let c = connection("s", "pinterest");
        store.save_connection(&c, None).await.unwrap();
        let deleted = store
            .delete_connection(&c.store_id, &c.platform, Some(&event("connection.deleted")))
            .await
            .unwrap();
        assert_eq!(deleted.map(|d| d.id), Some(c.id));
        assert!(store
            .get_connection(&c.store_id, &c.platform)
            .await
            .unwrap()
            .is_none());
        let now = Utc::now() + Duration::seconds(1);
        let events = store
            .claim_events(now, now + Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "connection.deleted");
        assert!(store
            .delete_connection(&c.store_id, &c.platform, None)
            .await
            .unwrap()
            .is_none());
    }
);

contract!(
    only_one_caller_holds_a_refresh_lease_and_only_it_can_finish,
    |store: Arc<dyn Store>| async move {
        let saved = store
            .save_connection(&connection("s", "twitter"), None)
            .await
            .unwrap();
        let lease = std::time::Duration::from_secs(30);
        let a = store
            .acquire_refresh_lease(saved.id, "a", lease)
            .await
            .unwrap();
        let b = store
            .acquire_refresh_lease(saved.id, "b", lease)
            .await
            .unwrap();
        assert!(a.is_some());
        assert!(b.is_none(), "a live lease is exclusive");
        let mut refreshed = a.unwrap();
        refreshed.sealed_tokens = Some("v1.key.new".into());
        assert!(matches!(
            store.finish_refresh(&refreshed, "b", None).await,
            Err(StoreError::Conflict)
        ));
        let done = store.finish_refresh(&refreshed, "a", None).await.unwrap();
        assert_eq!(done.sealed_tokens.as_deref(), Some("v1.key.new"));
        // The lease is free again, and an expired lease can be taken over.
        assert!(store
            .acquire_refresh_lease(saved.id, "b", std::time::Duration::from_secs(1))
            .await
            .unwrap()
            .is_some());
        // Once b's lease has run out by the database's clock, c takes it over (polled: the
        // database decides when, not a sleep here).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let taken = loop {
            if let Some(row) = store
                .acquire_refresh_lease(saved.id, "c", lease)
                .await
                .unwrap()
            {
                break row;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "an expired lease can be taken over"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        // The displaced holder's late result is refused; the new holder's is written.
        let mut late = taken.clone();
        late.sealed_tokens = Some("v1.key.late".into());
        assert!(matches!(
            store.finish_refresh(&late, "b", None).await,
            Err(StoreError::Conflict)
        ));
        let mut current = taken;
        current.sealed_tokens = Some("v1.key.current".into());
        let done = store.finish_refresh(&current, "c", None).await.unwrap();
        assert_eq!(done.sealed_tokens.as_deref(), Some("v1.key.current"));
    }
);

contract!(
    due_connections_come_soonest_first_and_skip_leased_and_dead_ones,
    |store: Arc<dyn Store>| async move {
        // The lease is timed by the database's clock: the schedule is read at the same time, not
        // at a fixed date that one clock or the other could pass.
        let now = Utc::now();
        let mut soon = connection("s1", "meta");
        soon.next_refresh_at = Some(now - Duration::minutes(1));
        let mut sooner = connection("s2", "meta");
        sooner.next_refresh_at = Some(now - Duration::minutes(5));
        let mut later = connection("s3", "meta");
        later.next_refresh_at = Some(now + Duration::minutes(5));
        let mut expired = connection("s4", "meta");
        expired.next_refresh_at = Some(now - Duration::minutes(9));
        expired.status = ConnectionStatus::Expired;
        let mut leased = connection("s5", "meta");
        leased.next_refresh_at = Some(now - Duration::minutes(7));
        for c in [&soon, &sooner, &later, &expired, &leased] {
            store.save_connection(c, None).await.unwrap();
        }
        store
            .acquire_refresh_lease(leased.id, "x", std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let due = store.due_for_refresh(now, 10).await.unwrap();
        let stores: Vec<_> = due.iter().map(|c| c.store_id.to_string()).collect();
        assert_eq!(stores, vec!["s2", "s1"]);
    }
);

contract!(
    rows_sealed_with_another_key_are_listed_for_resealing,
    |store: Arc<dyn Store>| async move {
        let mut old = connection("s1", "meta");
        old.key_id = Some("old".into());
        let mut current = connection("s2", "meta");
        current.key_id = Some("new".into());
        store.save_connection(&old, None).await.unwrap();
        store.save_connection(&current, None).await.unwrap();
        let listed = store.connections_to_reseal("new", 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].store_id.as_str(), "s1");
    }
);

contract!(
    an_event_is_claimed_by_one_replica_until_it_fails_or_is_delivered,
    |store: Arc<dyn Store>| async move {
        store
            .save_connection(
                &connection("s", "google"),
                Some(&event("connection.created")),
            )
            .await
            .unwrap();
        let now = Utc::now() + Duration::seconds(1);
        let lease = now + Duration::seconds(60);
        let first = store.claim_events(now, lease, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            store.claim_events(now, lease, 10).await.unwrap().is_empty(),
            "claimed events are skipped"
        );
        store
            .mark_event_failed(first[0].id, now, "receiver down")
            .await
            .unwrap();
        let again = store
            .claim_events(now + Duration::seconds(1), lease, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        store.mark_event_delivered(again[0].id, now).await.unwrap();
        assert!(store
            .claim_events(
                lease + Duration::seconds(1),
                lease + Duration::seconds(60),
                10
            )
            .await
            .unwrap()
            .is_empty());
    }
);

contract!(counts_by_status_group_platform_and_status, |store: Arc<
    dyn Store,
>| async move {
    store
        .save_connection(&connection("s1", "meta"), None)
        .await
        .unwrap();
    store
        .save_connection(&connection("s2", "meta"), None)
        .await
        .unwrap();
    let mut dead = connection("s3", "meta");
    dead.status = ConnectionStatus::Revoked;
    store.save_connection(&dead, None).await.unwrap();
    let counts = store.count_by_status().await.unwrap();
    let connected = counts
        .iter()
        .find(|c| c.status == ConnectionStatus::Connected)
        .unwrap();
    assert_eq!(connected.count, 2);
    assert_eq!(
        counts
            .iter()
            .find(|c| c.status == ConnectionStatus::Revoked)
            .unwrap()
            .count,
        1
    );
});

contract!(
    an_event_whose_last_attempt_failed_is_a_dead_letter_and_never_claimed_again,
    |store: Arc<dyn Store>| async move {
        store
            .save_connection(
                &connection("s", "google"),
                Some(&event("connection.created")),
            )
            .await
            .unwrap();
        let now = Utc::now() + Duration::seconds(1);
        let claimed = store
            .claim_events(now, now + Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(store.count_dead_events().await.unwrap(), 0);
        store
            .mark_event_dead(claimed[0].id, now, "receiver answered HTTP 500")
            .await
            .unwrap();
        assert_eq!(store.count_dead_events().await.unwrap(), 1);
        let later = now + Duration::days(30);
        assert!(
            store
                .claim_events(later, later + Duration::seconds(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "a dead letter is never delivered again"
        );
        assert_eq!(
            store.prune_delivered_events(later, 100).await.unwrap(),
            0,
            "dead letters are kept for inspection"
        );
    }
);

contract!(
    delivered_events_past_the_retention_are_pruned_in_bounded_batches,
    |store: Arc<dyn Store>| async move {
        for i in 0..5 {
            store
                .save_connection(
                    &connection(&format!("s{i}"), "google"),
                    Some(&event("connection.created")),
                )
                .await
                .unwrap();
        }
        let now = Utc::now() + Duration::seconds(1);
        let claimed = store
            .claim_events(now, now + Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 5);
        let old = now - Duration::days(8);
        for event in &claimed[..3] {
            store.mark_event_delivered(event.id, old).await.unwrap();
        }
        store
            .mark_event_delivered(claimed[3].id, now)
            .await
            .unwrap();
        // claimed[4] stays undelivered.
        let cutoff = now - Duration::days(7);
        assert_eq!(store.prune_delivered_events(cutoff, 2).await.unwrap(), 2);
        assert_eq!(store.prune_delivered_events(cutoff, 2).await.unwrap(), 1);
        assert_eq!(store.prune_delivered_events(cutoff, 2).await.unwrap(), 0);
        let later = now + Duration::minutes(5);
        let pending = store
            .claim_events(later, later + Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1, "an undelivered event is never pruned");
        assert_eq!(pending[0].id, claimed[4].id);
        assert_eq!(
            store
                .prune_delivered_events(now + Duration::seconds(1), 10)
                .await
                .unwrap(),
            1,
            "the recent delivery goes once it is past the cutoff"
        );
    }
);

contract!(
    a_lease_is_timed_by_the_database_clock_whatever_time_the_caller_believes,
    |store: Arc<dyn Store>| async move {
        let saved = store
            .save_connection(&connection("s", "tiktok"), None)
            .await
            .unwrap();
        store
            .acquire_refresh_lease(saved.id, "a", std::time::Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        // A replica whose clock runs a day ahead sees the row as due, but cannot take the lease:
        // the lease's end was set, and is compared, by the database's clock.
        let skewed = Utc::now() + Duration::days(1);
        assert_eq!(store.due_for_refresh(skewed, 10).await.unwrap().len(), 1);
        assert!(store
            .acquire_refresh_lease(saved.id, "b", std::time::Duration::from_secs(30))
            .await
            .unwrap()
            .is_none());
    }
);

contract!(
    a_delete_bound_to_a_row_spares_a_row_changed_since,
    |store: Arc<dyn Store>| async move {
        let read = store
            .save_connection(&connection("s", "twitter"), None)
            .await
            .unwrap();
        // A reconnect replaces the grant in place (same id, newer version).
        let mut again = connection("s", "twitter");
        again.sealed_tokens = Some("v1.key.regranted".into());
        let newer = store.save_connection(&again, None).await.unwrap();
        assert_eq!(newer.id, read.id);
        assert!(store
            .delete_connection_row(read.id, read.version, Some(&event("connection.deleted")))
            .await
            .unwrap()
            .is_none());
        let kept = store
            .get_connection(&read.store_id, &read.platform)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.sealed_tokens.as_deref(), Some("v1.key.regranted"));
        let deleted = store
            .delete_connection_row(newer.id, newer.version, Some(&event("connection.deleted")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.id, newer.id);
        assert!(store
            .get_connection(&read.store_id, &read.platform)
            .await
            .unwrap()
            .is_none());
    }
);

contract!(
    key_ids_are_counted_paged_and_unknown_key_errors_revived,
    |store: Arc<dyn Store>| async move {
        for (n, key) in ["k1", "k1", "k1", "k2"].iter().enumerate() {
            let mut c = connection(&format!("s{n}"), "meta");
            c.key_id = Some((*key).into());
            if n == 0 {
                c.status = ConnectionStatus::Error;
                c.last_error = Some("unreadable for a legacy reason".into());
            }
            if n == 1 {
                c.status = ConnectionStatus::Error;
                c.last_error = Some("another reason".into());
            }
            store.save_connection(&c, None).await.unwrap();
        }
        assert_eq!(
            store.key_id_counts().await.unwrap(),
            vec![("k1".to_owned(), 3), ("k2".to_owned(), 1)]
        );
        let first = store
            .connections_sealed_with("k1", Uuid::nil(), 2)
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let rest = store
            .connections_sealed_with("k1", first[1].id, 2)
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert!(first.iter().all(|c| c.id != rest[0].id));
        let now = Utc::now();
        let revived = store
            .revive_errors_sealed_with("k1", "unreadable for a legacy reason", now)
            .await
            .unwrap();
        assert_eq!(revived.len(), 1);
        assert_eq!(revived[0].status, ConnectionStatus::Connected);
        assert_eq!(revived[0].last_error, None);
        assert!(revived[0].next_refresh_at.is_some());
        let other = store
            .get_connection(
                &StoreId::parse("s1").unwrap(),
                &PlatformId::parse("meta").unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(other.status, ConnectionStatus::Error, "other errors stay");
    }
);

fn api_key(name: &str, scopes: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.into(),
        scopes: scopes.into(),
        stores: None,
        created_at: Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
        last_used_at: None,
        revoked_at: None,
    }
}

contract!(
    api_keys_are_found_by_hash_listed_by_name_and_revoked_once,
    |store: Arc<dyn Store>| async move {
        let key = api_key("posting-agent", "tokens:read:meta,connections:read");
        store.create_api_key(&key, "hash-1").await.unwrap();
        let bound = ApiKeyRecord {
            stores: Some("shop-42,shop-43".into()),
            ..api_key("another", "audit:read")
        };
        store.create_api_key(&bound, "hash-2").await.unwrap();
        let found = store.find_api_key("hash-2").await.unwrap().expect("found");
        assert_eq!(found, bound, "a bound key's stores come back");
        assert!(matches!(
            store
                .create_api_key(&api_key("posting-agent", "connect"), "hash-3")
                .await,
            Err(StoreError::Conflict)
        ));
        let found = store.find_api_key("hash-1").await.unwrap().expect("found");
        assert_eq!(found, key);
        assert!(store.find_api_key("hash-x").await.unwrap().is_none());
        let names: Vec<String> = store
            .list_api_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, vec!["another", "posting-agent"]);
        let at = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
        assert_eq!(store.revoked_api_key_count().await.unwrap(), 0);
        assert!(store.revoke_api_key("posting-agent", at).await.unwrap());
        assert!(!store.revoke_api_key("posting-agent", at).await.unwrap());
        assert!(!store.revoke_api_key("nobody", at).await.unwrap());
        assert_eq!(
            store.revoked_api_key_count().await.unwrap(),
            1,
            "a second revoke of the same key counts once"
        );
        let revoked = store.find_api_key("hash-1").await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(at));
    }
);

contract!(last_use_is_written_only_when_stale, |store: Arc<
    dyn Store,
>| async move {
    let key = api_key("agent", "connect");
    store.create_api_key(&key, "h").await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
    store
        .touch_api_key(key.id, t0, t0 - Duration::seconds(60))
        .await
        .unwrap();
    let t1 = t0 + Duration::seconds(30);
    store
        .touch_api_key(key.id, t1, t1 - Duration::seconds(60))
        .await
        .unwrap();
    let read = store.find_api_key("h").await.unwrap().unwrap();
    assert_eq!(read.last_used_at, Some(t0), "a recent use is not rewritten");
    let t2 = t0 + Duration::seconds(61);
    store
        .touch_api_key(key.id, t2, t2 - Duration::seconds(60))
        .await
        .unwrap();
    let read = store.find_api_key("h").await.unwrap().unwrap();
    assert_eq!(read.last_used_at, Some(t2));
});

fn audit_row(store: &str, at: chrono::DateTime<Utc>, operation: &str) -> AuditRow {
    AuditRow {
        id: Uuid::now_v7(),
        at,
        actor_kind: "api_key".into(),
        actor: "agent".into(),
        store_id: Some(store.into()),
        platform: Some("meta".into()),
        operation: operation.into(),
        outcome: "success".into(),
        detail: None,
    }
}

contract!(
    audit_rows_page_newest_first_by_store_and_prune_by_age,
    |store: Arc<dyn Store>| async move {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
        // Two rows share an instant: the id breaks the tie, so no row is skipped or repeated.
        let mut rows: Vec<AuditRow> = (0..5)
            .map(|n| audit_row("s1", t0 + Duration::seconds(n.min(3)), "token"))
            .collect();
        rows.push(audit_row("s2", t0, "connect"));
        store.insert_audit(&rows).await.unwrap();
        let s1 = StoreId::parse("s1").unwrap();
        let first = store.list_audit(&s1, t0, None, 3).await.unwrap();
        assert_eq!(first.len(), 3);
        assert!(first
            .windows(2)
            .all(|w| (w[0].at, w[0].id) > (w[1].at, w[1].id)));
        let last = first.last().unwrap();
        let second = store
            .list_audit(&s1, t0, Some((last.at, last.id)), 3)
            .await
            .unwrap();
        assert_eq!(second.len(), 2);
        let mut seen: Vec<Uuid> = first.iter().chain(&second).map(|r| r.id).collect();
        seen.sort();
        let mut expected: Vec<Uuid> = rows[..5].iter().map(|r| r.id).collect();
        expected.sort();
        assert_eq!(
            seen, expected,
            "every row of the store once, none of another store"
        );
        let newest = rows[3..5].iter().max_by_key(|r| r.id).unwrap();
        assert_eq!(&first[0], newest, "rows read back field for field");
        let since = store
            .list_audit(&s1, t0 + Duration::seconds(2), None, 10)
            .await
            .unwrap();
        assert_eq!(since.len(), 3);
        assert_eq!(
            store
                .prune_audit(t0 + Duration::seconds(1), 1)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .prune_audit(t0 + Duration::seconds(1), 10)
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.list_audit(&s1, t0, None, 10).await.unwrap().len(), 4);
    }
);

fn asset(kind: &str, id: &str) -> NewAsset {
    NewAsset {
        kind: kind.into(),
        id: id.into(),
        name: Some(format!("name {id}")),
        details: serde_json::json!({ "category": "Shop" }),
    }
}

fn selected_ids(assets: &[StoredAsset], kind: &str) -> Vec<String> {
    assets
        .iter()
        .filter(|a| a.kind == kind && a.selected)
        .map(|a| a.id.clone())
        .collect()
}

contract!(
    replacing_assets_selects_a_lone_asset_per_kind_and_lists_them_per_store,
    |store: Arc<dyn Store>| async move {
        let c = store
            .save_connection(&connection("store-a", "meta"), None)
            .await
            .unwrap();
        let other = store
            .save_connection(&connection("store-b", "meta"), None)
            .await
            .unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        let found = [
            asset("facebook_page", "p1"),
            asset("facebook_page", "p2"),
            asset("ad_account", "act_1"),
        ];
        store.replace_assets(c.id, &found, at).await.unwrap();
        store
            .replace_assets(other.id, &[asset("facebook_page", "q1")], at)
            .await
            .unwrap();
        let listed = store.list_assets(&c.store_id).await.unwrap();
        assert_eq!(listed.len(), 3, "only store-a's assets: {listed:?}");
        assert!(listed.iter().all(|a| a.connection_id == c.id));
        assert_eq!(selected_ids(&listed, "facebook_page"), Vec::<String>::new());
        assert_eq!(selected_ids(&listed, "ad_account"), ["act_1"]);
        let page = listed.iter().find(|a| a.id == "p1").unwrap();
        assert_eq!(page.name.as_deref(), Some("name p1"));
        assert_eq!(page.details["category"], "Shop");
        assert_eq!(page.discovered_at, at);
        assert_eq!(page.platform.as_str(), "meta");
    }
);

contract!(
    selecting_an_asset_keeps_one_per_kind_and_survives_a_rediscovery,
    |store: Arc<dyn Store>| async move {
        let c = store
            .save_connection(&connection("store-a", "meta"), None)
            .await
            .unwrap();
        let at = Utc::now();
        let found = [asset("facebook_page", "p1"), asset("facebook_page", "p2")];
        store.replace_assets(c.id, &found, at).await.unwrap();
        assert!(store
            .select_asset(c.id, "facebook_page", "p1")
            .await
            .unwrap());
        assert!(store
            .select_asset(c.id, "facebook_page", "p2")
            .await
            .unwrap());
        assert!(!store
            .select_asset(c.id, "facebook_page", "nope")
            .await
            .unwrap());
        assert!(!store.select_asset(c.id, "ad_account", "p1").await.unwrap());
        let listed = store.list_assets(&c.store_id).await.unwrap();
        assert_eq!(selected_ids(&listed, "facebook_page"), ["p2"]);
        // Rediscovered with a new page: the selection of p2 stays.
        let again = [
            asset("facebook_page", "p1"),
            asset("facebook_page", "p2"),
            asset("facebook_page", "p3"),
        ];
        store.replace_assets(c.id, &again, at).await.unwrap();
        let listed = store.list_assets(&c.store_id).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(selected_ids(&listed, "facebook_page"), ["p2"]);
        // p2 gone and one page left: that one becomes the default.
        store
            .replace_assets(c.id, &[asset("facebook_page", "p3")], at)
            .await
            .unwrap();
        let listed = store.list_assets(&c.store_id).await.unwrap();
        assert_eq!(selected_ids(&listed, "facebook_page"), ["p3"]);
    }
);

contract!(deleting_a_connection_deletes_its_assets, |store: Arc<
    dyn Store,
>| async move {
    let c = store
        .save_connection(&connection("store-a", "meta"), None)
        .await
        .unwrap();
    store
        .replace_assets(c.id, &[asset("facebook_page", "p1")], Utc::now())
        .await
        .unwrap();
    store
        .delete_connection(&c.store_id, &c.platform, None)
        .await
        .unwrap();
    // A new connection for the same store starts with no assets.
    store
        .save_connection(&connection("store-a", "meta"), None)
        .await
        .unwrap();
    assert!(store.list_assets(&c.store_id).await.unwrap().is_empty());
});

contract!(
    liveness_claims_move_due_rows_a_period_ahead_once,
    |store: Arc<dyn Store>| async move {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let mut due = connection("store-1", "tiktok");
        due.next_check_at = Some(at);
        let mut later = connection("store-1", "meta");
        later.next_check_at = Some(at + Duration::hours(5));
        let mut dead = connection("store-1", "google");
        dead.status = ConnectionStatus::Revoked;
        dead.next_check_at = Some(at);
        for c in [&due, &later, &dead] {
            store.save_connection(c, None).await.unwrap();
        }
        let now = at + Duration::minutes(1);
        let next = now + Duration::days(1);
        let claimed = store.claim_liveness_checks(now, next, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, due.id);
        assert_eq!(claimed[0].next_check_at, Some(next));
        assert!(store
            .claim_liveness_checks(now, next, 10)
            .await
            .unwrap()
            .is_empty());
        let period_on = now + chrono::Duration::days(1);
        store
            .record_liveness_check(due.id, Some(now), period_on)
            .await
            .unwrap();
        let read = store
            .get_connection(&due.store_id, &due.platform)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.last_checked_at, Some(now));
        assert_eq!(read.version, 1, "a check is not a change of the connection");
    }
);

contract!(
    health_alerts_are_recorded_once_per_episode_and_refresh_writes_keep_them,
    |store: Arc<dyn Store>| async move {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let mut c = connection("store-1", "tiktok");
        c.refresh_token_expires_at = Some(at + Duration::days(5));
        c.refresh_failures = 2;
        c.failing_since = Some(at - Duration::hours(2));
        let saved = store.save_connection(&c, None).await.unwrap();
        let candidates = store
            .health_sweep_candidates(
                at - Duration::hours(1),
                at + Duration::days(7),
                Uuid::nil(),
                10,
            )
            .await
            .unwrap();
        assert_eq!(candidates.len(), 1);
        let by = at + Duration::days(5);
        let warn = event("connection.expiring");
        assert!(store.mark_expiry_warned(c.id, by, 7, &warn).await.unwrap());
        assert!(!store.mark_expiry_warned(c.id, by, 7, &warn).await.unwrap());
        assert!(store.mark_expiry_warned(c.id, by, 1, &warn).await.unwrap());
        assert!(!store.mark_expiry_warned(c.id, by, 7, &warn).await.unwrap());
        let other_episode = by + Duration::days(365);
        assert!(store
            .mark_expiry_warned(c.id, other_episode, 7, &warn)
            .await
            .unwrap());

        let since = c.failing_since.unwrap();
        let alert = event("connection.refresh_failing");
        // Not while a refresh holds the lease.
        store
            .acquire_refresh_lease(c.id, "refresher", std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .expect("lease");
        assert!(!store
            .mark_failing_alerted(c.id, since, at, &alert)
            .await
            .unwrap());
        store
            .release_refresh_lease(c.id, "refresher")
            .await
            .unwrap();
        assert!(!store
            .mark_failing_alerted(c.id, since + Duration::seconds(1), at, &alert)
            .await
            .unwrap());
        assert!(store
            .mark_failing_alerted(c.id, since, at, &alert)
            .await
            .unwrap());
        assert!(!store
            .mark_failing_alerted(c.id, since, at, &alert)
            .await
            .unwrap());

        // A write from an older copy of the row keeps the alerts; clearing the failures ends the
        // episode's alert.
        let mut stale = saved.clone();
        stale.refresh_failures = 3;
        let kept = store.update_connection(&stale, None).await.unwrap();
        assert_eq!(kept.failing_alerted_at, Some(at));
        assert_eq!(kept.expiry_warned_for, Some(other_episode));
        assert_eq!(kept.expiry_warned_days, Some(7));
        let mut healed = kept.clone();
        healed.refresh_failures = 0;
        healed.failing_since = None;
        let healed = store.update_connection(&healed, None).await.unwrap();
        assert_eq!(healed.failing_alerted_at, None);
        assert_eq!(healed.failing_since, None);
        assert_eq!(healed.expiry_warned_for, Some(other_episode));
    }
);

fn post_row(store: &str, key: &str, due: chrono::DateTime<Utc>) -> growth_engine::store::PostRow {
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    growth_engine::store::PostRow {
        id: Uuid::now_v7(),
        store_id: store.into(),
        platform: "twitter".into(),
        account_kind: "x_user".into(),
        account_id: "u1".into(),
        idempotency_key: key.into(),
        request_digest: format!("digest-{key}"),
        created_by: "api_key:agent".into(),
        draft: serde_json::json!({"text": "hello"}),
        status: "scheduled".into(),
        publish_at: due,
        deadline_at: due + Duration::hours(1),
        due_at: Some(due),
        stage: "prepare".into(),
        checkpoint: serde_json::Value::Null,
        sent_at: None,
        lease_owner: None,
        attempts: 0,
        platform_post_id: None,
        platform_url: None,
        error_code: None,
        error_message: None,
        approval_digest: None,
        approval_expires_at: None,
        decided_by: None,
        decided_at: None,
        published_at: None,
        created_at: at,
        updated_at: at,
    }
}

contract!(a_post_is_stored_once_per_idempotency_key, |store: Arc<
    dyn Store,
>| async move {
    let due = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let first = post_row("store-1", "key-1", due);
    assert!(store
        .insert_post(&first, Some(&event("post.approval_requested")))
        .await
        .unwrap()
        .is_none());
    let again = post_row("store-1", "key-1", due);
    let existing = store
        .insert_post(&again, None)
        .await
        .unwrap()
        .expect("the first");
    assert_eq!(existing.id, first.id);
    assert_eq!(existing.draft, first.draft);
    // The same key in another store is another post.
    let other = post_row("store-2", "key-1", due);
    assert!(store.insert_post(&other, None).await.unwrap().is_none());
    assert_eq!(store.post(first.id).await.unwrap().unwrap(), first);
});

contract!(
    claims_take_due_posts_once_and_fence_the_previous_owner,
    |store: Arc<dyn Store>| async move {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let due = post_row("store-1", "due", now - Duration::seconds(1));
        let later = post_row("store-1", "later", now + Duration::minutes(5));
        store.insert_post(&due, None).await.unwrap();
        store.insert_post(&later, None).await.unwrap();
        let lease = now + Duration::minutes(2);
        let claimed = store.claim_due_posts(now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1, "only the due post");
        let mine = claimed[0].clone();
        assert_eq!(mine.id, due.id);
        assert_eq!(mine.due_at, Some(lease), "due again when the lease ends");
        let owner = mine.lease_owner.expect("an owner");
        assert!(store
            .claim_due_posts(now, lease, 10)
            .await
            .unwrap()
            .is_empty());

        // The lease ends: another claim takes it, and the first owner's write changes nothing.
        let taken = store
            .claim_due_posts(
                lease + Duration::seconds(1),
                lease + Duration::minutes(2),
                10,
            )
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        let mut stale = mine.clone();
        stale.status = "published".into();
        assert!(!store.save_claimed_post(&stale, owner, None).await.unwrap());
        let new_owner = taken[0].lease_owner.unwrap();
        let mut fresh = taken[0].clone();
        fresh.status = "publishing".into();
        fresh.sent_at = Some(now);
        fresh.due_at = None;
        assert!(store
            .save_claimed_post(&fresh, new_owner, Some(&event("post.published")))
            .await
            .unwrap());
        let read = store.post(due.id).await.unwrap().unwrap();
        assert_eq!(read.status, "publishing");
        assert_eq!(read.sent_at, Some(now));
        assert_eq!(read.attempts, 2);
    }
);

contract!(
    a_cancel_fences_out_the_worker_and_spares_a_sent_post,
    |store: Arc<dyn Store>| async move {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let post = post_row("store-1", "k", now);
        store.insert_post(&post, None).await.unwrap();
        let claimed = store
            .claim_due_posts(now, now + Duration::minutes(2), 1)
            .await
            .unwrap()
            .remove(0);
        let owner = claimed.lease_owner.unwrap();
        let cancelled = growth_engine::store::PostRow {
            status: "cancelled".into(),
            due_at: None,
            ..claimed.clone()
        };
        let transition = growth_engine::store::PostTransition {
            from: &["scheduled", "publishing"],
            unsent_only: true,
            approval_digest: None,
            unexpired_at: None,
            post: &cancelled,
        };
        assert!(store.transition_post(&transition, None).await.unwrap());
        // The worker that held it can no longer write (it would have marked the send).
        let mut sending = claimed.clone();
        sending.sent_at = Some(now);
        assert!(!store
            .save_claimed_post(&sending, owner, None)
            .await
            .unwrap());
        assert_eq!(
            store.post(post.id).await.unwrap().unwrap().status,
            "cancelled"
        );

        // A post whose send began cannot be cancelled.
        let sent = post_row("store-1", "k2", now);
        store.insert_post(&sent, None).await.unwrap();
        let claimed = store
            .claim_due_posts(now, now + Duration::minutes(2), 1)
            .await
            .unwrap()
            .remove(0);
        let owner = claimed.lease_owner.unwrap();
        let mut sending = claimed.clone();
        sending.status = "publishing".into();
        sending.sent_at = Some(now);
        assert!(store
            .save_claimed_post(&sending, owner, None)
            .await
            .unwrap());
        let cancelled = growth_engine::store::PostRow {
            status: "cancelled".into(),
            ..sending.clone()
        };
        let transition = growth_engine::store::PostTransition {
            from: &["scheduled", "publishing"],
            unsent_only: true,
            approval_digest: None,
            unexpired_at: None,
            post: &cancelled,
        };
        assert!(!store.transition_post(&transition, None).await.unwrap());
    }
);

contract!(
    an_approval_link_is_used_up_by_the_first_answer,
    |store: Arc<dyn Store>| async move {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let mut post = post_row("store-1", "k", now);
        post.status = "pending_approval".into();
        post.approval_digest = Some("d1".into());
        store.insert_post(&post, None).await.unwrap();
        let approved = growth_engine::store::PostRow {
            status: "scheduled".into(),
            approval_digest: None,
            decided_by: Some("page_user:u".into()),
            decided_at: Some(now),
            ..post.clone()
        };
        let with = |digest| growth_engine::store::PostTransition {
            from: &["pending_approval"],
            unsent_only: true,
            approval_digest: Some(digest),
            unexpired_at: Some(now),
            post: &approved,
        };
        assert!(!store.transition_post(&with("wrong"), None).await.unwrap());
        assert!(store.transition_post(&with("d1"), None).await.unwrap());
        assert!(!store.transition_post(&with("d1"), None).await.unwrap());
        let read = store.post(post.id).await.unwrap().unwrap();
        assert_eq!(read.status, "scheduled");
        assert_eq!(read.decided_by.as_deref(), Some("page_user:u"));
        assert_eq!(read.approval_digest, None);

        let id = StoreId::parse("store-1").unwrap();
        assert_eq!(store.post_approval_policy(&id).await.unwrap(), None);
        store
            .set_post_approval_policy(&id, true, now)
            .await
            .unwrap();
        assert_eq!(store.post_approval_policy(&id).await.unwrap(), Some(true));
        store
            .set_post_approval_policy(&id, false, now)
            .await
            .unwrap();
        assert_eq!(store.post_approval_policy(&id).await.unwrap(), Some(false));
    }
);
