//! The flow-state store against Redis and in process: single use, expiry, the 100-way race; and the
//! connection cache's refusal to go backwards.

use std::sync::Arc;

use chrono::{Duration, Utc};
use growth_engine::clock::{Clock, ManualClock, SharedClock};
use growth_engine::lifecycle::TokenCache;
use growth_engine::redis_conn::RedisUnavailable;
use growth_engine::state::{FlowStates, StateError};
use growth_engine::vault::{Key, Keyring};

use crate::helpers::fresh_redis;

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new(Key::generate(), vec![]))
}

async fn both(clock: &ManualClock) -> Vec<(&'static str, FlowStates)> {
    let shared: SharedClock = Arc::new(clock.clone());
    let (redis, _) = fresh_redis().await;
    vec![
        ("redis", FlowStates::redis(redis, keyring(), shared.clone())),
        ("in-process", FlowStates::in_process(keyring(), shared)),
    ]
}

#[tokio::test]
async fn a_state_is_taken_once_and_then_is_gone() {
    let clock = ManualClock::new(Utc::now());
    for (name, states) in both(&clock).await {
        states
            .put("state", "secret-1", &"payload", Duration::minutes(10))
            .await
            .unwrap();
        let first: Option<String> = states.take("state", "secret-1").await.unwrap();
        assert_eq!(first.as_deref(), Some("payload"), "{name}");
        let second: Option<String> = states.take("state", "secret-1").await.unwrap();
        assert!(second.is_none(), "{name}: a state is single-use");
        let other: Option<String> = states.take("state", "never-stored").await.unwrap();
        assert!(other.is_none(), "{name}");
    }
}

#[tokio::test]
async fn an_expired_state_never_validates() {
    let clock = ManualClock::new(Utc::now());
    for (name, states) in both(&clock).await {
        states
            .put("state", "old", &1u32, Duration::minutes(10))
            .await
            .unwrap();
        states
            .put("state", "fresh", &2u32, Duration::minutes(10))
            .await
            .unwrap();
        clock.advance(Duration::minutes(10) + Duration::seconds(1));
        let old: Option<u32> = states.take("state", "old").await.unwrap();
        assert!(old.is_none(), "{name}: expired after 10 minutes");
        clock.advance(-Duration::minutes(20));
    }
}

#[tokio::test]
async fn a_state_of_one_kind_cannot_be_taken_as_another() {
    let clock = ManualClock::new(Utc::now());
    for (name, states) in both(&clock).await {
        states
            .put("ticket", "s", &1u32, Duration::minutes(10))
            .await
            .unwrap();
        let as_state: Option<u32> = states.take("state", "s").await.unwrap();
        assert!(as_state.is_none(), "{name}");
    }
}

#[tokio::test]
async fn when_100_callbacks_race_for_one_state_exactly_one_wins() {
    let clock = ManualClock::new(Utc::now());
    for (name, states) in both(&clock).await {
        states
            .put("state", "contested", &"only-once", Duration::minutes(10))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let states = states.clone();
            tasks.push(tokio::spawn(async move {
                states.take::<String>("state", "contested").await.unwrap()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap().is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{name}: exactly one of 100 takers wins");
    }
}

#[tokio::test]
async fn due_records_are_taken_once_by_racing_reapers_and_settled_ones_are_skipped() {
    let clock = ManualClock::new(Utc::now());
    for (name, states) in both(&clock).await {
        // Due in ten minutes and a half second: a whole-second score would make it due early.
        let due_at = clock.now() + Duration::minutes(10) + Duration::milliseconds(500);
        for (secret, value) in [("a", 1u32), ("b", 2), ("settled", 3)] {
            states
                .schedule_reap("parked", secret, due_at)
                .await
                .unwrap();
            states
                .put("parked", secret, &value, Duration::minutes(70))
                .await
                .unwrap();
        }
        let settled: Option<u32> = states.take("parked", "settled").await.unwrap();
        assert_eq!(settled, Some(3), "{name}");
        clock.advance(Duration::minutes(10));
        let early: Option<u32> = states.take_next_due("parked").await.unwrap();
        assert!(early.is_none(), "{name}: nothing is due before its time");

        clock.advance(Duration::seconds(1));
        let mut reapers = Vec::new();
        for _ in 0..10 {
            let states = states.clone();
            reapers.push(tokio::spawn(async move {
                let mut taken = Vec::new();
                while let Some(value) = states.take_next_due::<u32>("parked").await.unwrap() {
                    taken.push(value);
                }
                taken
            }));
        }
        let mut taken = Vec::new();
        for reaper in reapers {
            taken.extend(reaper.await.unwrap());
        }
        taken.sort_unstable();
        assert_eq!(
            taken,
            [1, 2],
            "{name}: each due record once, the settled one never"
        );
        let after: Option<u32> = states.take_next_due("parked").await.unwrap();
        assert!(after.is_none(), "{name}");
        let gone: Option<u32> = states.take("parked", "a").await.unwrap();
        assert!(gone.is_none(), "{name}: a reaped record is gone");
        clock.advance(-Duration::minutes(10) - Duration::seconds(1));
    }
}

#[tokio::test]
async fn redis_holds_the_state_sealed_under_a_hashed_key() {
    let clock: SharedClock = Arc::new(ManualClock::new(Utc::now()));
    let (redis, prefix) = fresh_redis().await;
    let states = FlowStates::redis(redis, keyring(), clock);
    states
        .put(
            "state",
            "the-state-value",
            &"pkce-verifier-plaintext",
            Duration::minutes(10),
        )
        .await
        .unwrap();
    let client = redis::Client::open(crate::helpers::test_redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains("the-state-value"));
    let value: String = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!value.contains("pkce-verifier-plaintext"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (590..=600).contains(&ttl),
        "Redis expires it after 10 minutes, ttl {ttl}"
    );
}

fn cached_connection(version: i64) -> growth_engine::domain::Connection {
    use growth_engine::domain::*;
    Connection {
        id: uuid::Uuid::now_v7(),
        store_id: StoreId::parse("cache-store").unwrap(),
        user_id: UserId::parse("u").unwrap(),
        platform: PlatformId::parse("meta").unwrap(),
        status: ConnectionStatus::Connected,
        account_id: None,
        account_name: None,
        account_picture: None,
        sealed_tokens: Some(format!("v1.k.version{version}")),
        key_id: None,
        metadata: serde_json::json!({}),
        granted_scopes: vec![],
        missing_scopes: vec![],
        access_token_expires_at: None,
        refresh_token_expires_at: None,
        last_refreshed_at: None,
        next_refresh_at: None,
        refresh_failures: 0,
        last_error: None,
        version,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        failing_since: None,
        health_since: None,
        last_checked_at: None,
        next_check_at: None,
        expiry_warned_for: None,
        expiry_warned_days: None,
        failing_alerted_at: None,
    }
}

#[tokio::test]
async fn the_cache_never_goes_back_to_an_older_version_or_past_a_delete() {
    let (redis, _) = fresh_redis().await;
    let cache = TokenCache::new(Some(redis), std::time::Duration::from_secs(60));
    let v1 = cached_connection(1);
    let v2 = growth_engine::domain::Connection {
        version: 2,
        sealed_tokens: Some("v1.k.version2".into()),
        ..v1.clone()
    };
    cache.put(&v2).await;
    cache.put(&v1).await; // a slow reader that loaded v1 before the write
    let got = cache.get(&v1.store_id, &v1.platform).await.unwrap();
    assert_eq!(got.version, 2);
    cache.tombstone(&v2).await;
    cache.put(&v2).await; // a reader that loaded the row before it was deleted
    assert!(cache.get(&v1.store_id, &v1.platform).await.is_none());
    // A new connection (newer UUIDv7) replaces the tombstone.
    let reconnected = cached_connection(1);
    cache.put(&reconnected).await;
    assert_eq!(
        cache.get(&v1.store_id, &v1.platform).await.unwrap().id,
        reconnected.id
    );
}

/// A handle with a short timeout on a Redis of the test's own.
fn own_handle(server: &crate::chaos::RedisServer) -> growth_engine::redis_conn::RedisHandle {
    growth_engine::redis_conn::RedisHandle::new(&server.url().into(), "breaker-test:")
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(200))
}

#[tokio::test]
async fn while_redis_is_frozen_the_state_store_fails_at_once_and_recovers_by_itself() {
    use std::time::{Duration as StdDuration, Instant};
    let mut server = crate::chaos::RedisServer::start().await;
    let redis = own_handle(&server);
    let clock: SharedClock = Arc::new(ManualClock::new(Utc::now()));
    let states = FlowStates::redis(redis.clone(), keyring(), clock);
    states
        .put("state", "before", &1u32, Duration::minutes(10))
        .await
        .unwrap();
    let takes_before = server.calls_of("getdel").await;
    server.freeze();
    let started = Instant::now();
    assert!(states
        .put("state", "a", &1u32, Duration::minutes(10))
        .await
        .is_err());
    let first = started.elapsed();
    assert!(
        first < StdDuration::from_millis(400),
        "bounded by the timeout: {first:?}"
    );
    assert!(!redis.is_available());
    // An open breaker costs no I/O: each call is refused before it is attempted, and none reaches
    // Redis (counted below, once it runs again). How fast that is, is `benches/state.rs`'s figure.
    for _ in 0..100 {
        let refused = states.take::<u32>("state", "before").await.unwrap_err();
        assert!(
            matches!(
                refused,
                StateError::Unavailable(RedisUnavailable::CircuitOpen)
            ),
            "refused without an attempt: {refused:?}"
        );
    }
    server.thaw();
    let thawed = Instant::now();
    while !redis.is_available() {
        assert!(
            thawed.elapsed() < StdDuration::from_secs(3),
            "Redis noticed back"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let kept: Option<u32> = states.take("state", "before").await.unwrap();
    assert_eq!(kept, Some(1), "a freeze loses nothing");
    assert_eq!(
        server.calls_of("getdel").await,
        takes_before + 1,
        "only the take after the thaw reached Redis"
    );
}

#[tokio::test]
async fn a_cache_entry_that_could_not_be_updated_during_an_outage_is_gone_when_redis_is_back() {
    let mut server = crate::chaos::RedisServer::start().await;
    let redis = own_handle(&server);
    let cache = TokenCache::new(Some(redis.clone()), std::time::Duration::from_secs(60));
    let v1 = cached_connection(1);
    cache.put(&v1).await;
    assert_eq!(
        cache.get(&v1.store_id, &v1.platform).await.unwrap().version,
        1
    );
    // A partition: the database moves on to version 2 (a refresh) while the cache cannot hear of
    // it, and Redis keeps version 1.
    server.freeze();
    let v2 = growth_engine::domain::Connection {
        version: 2,
        ..v1.clone()
    };
    cache.put(&v2).await;
    assert!(!redis.is_available());
    assert!(cache.get(&v1.store_id, &v1.platform).await.is_none());
    server.thaw();
    let started = std::time::Instant::now();
    while !redis.is_available() {
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        cache.get(&v1.store_id, &v1.platform).await.is_none(),
        "the stale version 1 was deleted before the cache was used again"
    );
    cache.put(&v2).await;
    assert_eq!(
        cache.get(&v1.store_id, &v1.platform).await.unwrap().version,
        2
    );
}
