//! The connections listing served from each replica's cache is not stale after a change: two
//! applications share one PostgreSQL and one Redis; changes go through replica A and listings are
//! read from replica B right after the change, allowing only the time Redis takes to deliver the
//! invalidation (bounded by [`DELIVERY`]). With Redis cut, B bypasses its cache and still answers
//! the truth.

use std::time::{Duration, Instant};

use sqlx::Connection as _;

use crate::chaos::RedisServer;
use crate::helpers::{
    spawn_app, spawn_app_with, test_redis_url, Backend, TestApp, TestAppOptions, API_KEY,
};

/// The longest a pub/sub invalidation may take to reach the other replica on this machine.
const DELIVERY: Duration = Duration::from_millis(500);

/// Asserts that `b` lists `expected` for `store` within [`DELIVERY`].
async fn lists_soon(b: &TestApp, store: &str, expected: &[&str]) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let listed = platforms(b, store).await;
        if listed == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica B still lists {listed:?}, not {expected:?}, {DELIVERY:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that `b` shows `page` selected for `store` within [`DELIVERY`].
async fn selects_soon(b: &TestApp, store: &str, page: &str) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let selected = selected_page(b, store).await;
        if selected.as_deref() == Some(page) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica B still shows {selected:?} selected, not {page}, {DELIVERY:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A second replica on `a`'s database, with the given Redis and key prefix.
async fn replica_of(a: &TestApp, redis_url: String, prefix: String) -> TestApp {
    spawn_app_with(TestAppOptions {
        backend: Backend::Embedded,
        extra_env: vec![
            ("DATABASE_URL", a.database.as_ref().unwrap().url.clone()),
            ("REDIS_URL", redis_url),
            ("REDIS_KEY_PREFIX", prefix),
        ],
        ..Default::default()
    })
    .await
}

/// The platforms listed for `store`, in order.
async fn platforms(app: &TestApp, store: &str) -> Vec<String> {
    app.connections(store).await["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["platform"].as_str().unwrap().to_owned())
        .collect()
}

/// The Meta page `app` lists as selected for `store`, if any.
async fn selected_page(app: &TestApp, store: &str) -> Option<String> {
    let listed = app.connections(store).await;
    let meta = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "meta")
        .unwrap_or_else(|| panic!("no meta connection in {listed}"));
    meta["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|asset| asset["kind"] == "facebook_page" && asset["selected"] == true)
        .and_then(|asset| asset["id"].as_str())
        .map(str::to_owned)
}

/// Selects a Meta page through `app`.
async fn select_page(app: &TestApp, store: &str, page: &str) {
    let response = app
        .api
        .put(app.url(&format!("/api/v1/oauth/connections/{store}/meta/selection")))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({ "kind": "facebook_page", "id": page }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Waits until `b` serves `store`'s listing from its cache: a write made behind the service's back
/// (plain SQL, which tells no replica) is not seen by a listing right after one that filled the
/// cache. Proves the freshness checks below are about a cache in use, not a cache bypassed.
async fn wait_until_cached(a: &TestApp, b: &TestApp, store: &str) {
    wait_until_served(a, b, store, true).await;
}

/// Waits until `b` reads `store`'s listing from PostgreSQL again: a write made behind the
/// service's back is seen at once (the cache is no longer trusted).
async fn wait_until_uncached(a: &TestApp, b: &TestApp, store: &str) {
    wait_until_served(a, b, store, false).await;
}

async fn wait_until_served(a: &TestApp, b: &TestApp, store: &str, from_cache: bool) {
    let mut db = sqlx::PgConnection::connect(&a.database.as_ref().unwrap().url)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        let before = b.connections(store).await;
        let name = format!("behind-the-back-{n}");
        sqlx::query("update platform_connections set account_name = $1 where store_id = $2")
            .bind(&name)
            .bind(store)
            .execute(&mut db)
            .await
            .unwrap();
        let after = b.connections(store).await;
        if (after == before) == from_cache {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica B never served the listing {}",
            if from_cache {
                "from its cache"
            } else {
                "from PostgreSQL"
            }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_change_made_through_replica_a_is_listed_by_replica_b_once_invalidated() {
    let a = spawn_app().await;
    let b = replica_of(&a, test_redis_url(), a.redis_prefix.clone().unwrap()).await;
    let store = "listed-twice";
    assert_eq!(
        a.run_flow("twitter", store, true).await["connection"],
        "success"
    );
    wait_until_cached(&a, &b, store).await;

    // A connect through A: B lists it as soon as the invalidation arrives.
    assert_eq!(
        a.run_flow("tiktok", store, true).await["connection"],
        "success"
    );
    lists_soon(&b, store, &["tiktok", "twitter"]).await;

    // A selection through A (the assets are part of the cached rows).
    assert_eq!(
        a.run_flow("meta", store, true).await["connection"],
        "success"
    );
    select_page(&a, store, "2000000001").await;
    wait_until_cached(&a, &b, store).await;
    selects_soon(&b, store, "2000000001").await;
    select_page(&a, store, "2000000002").await;
    selects_soon(&b, store, "2000000002").await;

    // A disconnect through A.
    wait_until_cached(&a, &b, store).await;
    let response = a
        .delete(&format!(
            "/api/v1/oauth/disconnect/twitter?user_id=user-1&store_id={store}"
        ))
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    lists_soon(&b, store, &["meta", "tiktok"]).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn with_redis_cut_a_replica_still_lists_a_change_made_on_another() {
    let mut redis = RedisServer::start().await;
    let prefix = format!("listing-cut:{}:", uuid::Uuid::new_v4());
    let a = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("REDIS_URL", redis.url()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
        ],
        ..Default::default()
    })
    .await;
    let b = replica_of(&a, redis.url(), prefix).await;
    let store = "listed-while-cut";
    assert_eq!(
        a.run_flow("twitter", store, true).await["connection"],
        "success"
    );
    assert_eq!(
        a.run_flow("tiktok", store, true).await["connection"],
        "success"
    );

    // Killed: B's subscription is gone (B sees its connection close at once), so B reads
    // PostgreSQL and keeps nothing, including what it reads while Redis is down.
    wait_until_cached(&a, &b, store).await;
    redis.kill();
    wait_until_uncached(&a, &b, store).await;
    lists_soon(&b, store, &["tiktok", "twitter"]).await;
    let response = a
        .delete(&format!(
            "/api/v1/oauth/disconnect/twitter?user_id=user-1&store_id={store}"
        ))
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    lists_soon(&b, store, &["tiktok"]).await;

    // Back: B subscribes again (and starts empty); a change through A is seen as soon as the invalidation arrives.
    redis.restart().await;
    let redis_of_a = a.services.redis.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_of_a.is_available() || redis_of_a.ping().await.is_err() {
        assert!(Instant::now() < deadline, "A never used Redis again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until_cached(&a, &b, store).await;
    assert_eq!(
        a.run_flow("twitter", store, true).await["connection"],
        "success"
    );
    lists_soon(&b, store, &["tiktok", "twitter"]).await;

    // Frozen: B cannot know yet that its subscription is dead, but stops trusting it within the
    // liveness window (1 s), and never serves rows older than the cache's max age (2 s).
    wait_until_cached(&a, &b, store).await;
    redis.freeze();
    let frozen_at = Instant::now();
    let response = a
        .delete(&format!(
            "/api/v1/oauth/disconnect/twitter?user_id=user-1&store_id={store}"
        ))
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    while platforms(&b, store).await != ["tiktok"] {
        assert!(
            frozen_at.elapsed() < Duration::from_millis(2000),
            "B listed a deleted connection for more than the cache's max age"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.thaw();
    b.stop().await;
    a.stop().await;
}
