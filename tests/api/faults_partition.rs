//! PostgreSQL behind a partition that drops packets (issue 22 item 4): connections stay open and
//! nothing comes back, no reset, no close ([`CuttableProxy::partition`]). Unlike a cut, which is
//! refused at once, this is what defeats a pool's timeouts: a statement already sent waits for an
//! answer that never comes.
//!
//! The statements are caught in flight for certain: a table lock held from outside the proxy
//! keeps them waiting inside PostgreSQL until the partition has begun (PostgreSQL's own view,
//! `pg_stat_activity`, says so before and after), and the statement timeout then cancels them,
//! an answer the partition swallows. The token endpoint and a forced refresh must answer the
//! service's JSON 503 within the database call limit (`PgStore::call_limit`), and once the
//! partition heals nothing was written half-way and a refresh works.

use std::time::{Duration, Instant};

use growth_engine::domain::ConnectionStatus;
use growth_engine::store::PgStore;
use secrecy::ExposeSecret;
use sqlx::Connection as _;

use crate::faults_refresh::{connect, refresh_calls, row, simulator_accepts};
use crate::helpers::{
    fresh_database, spawn_app_with, test_redis_url, wait_until, TestApp, TestAppOptions, API_KEY,
};
use crate::proxy::CuttableProxy;

/// Short, so that the call limit is too: 2 s + the 3 s acquire timeout + the 2 s margin.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How many of the test database's statements wait on a lock, as PostgreSQL sees it.
async fn waiting_on_a_lock(watcher: &mut sqlx::PgConnection, database: &str) -> i64 {
    let (count,): (i64,) = sqlx::query_as(
        "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
    )
    .bind(database)
    .fetch_one(watcher)
    .await
    .unwrap();
    count
}

/// Sends `method path` with a client that gives up after a minute; the status, the body and how
/// long the answer took.
fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
) -> tokio::task::JoinHandle<(u16, serde_json::Value, Duration)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let request = client.request(method, app.url(path)).bearer_auth(API_KEY);
    tokio::spawn(async move {
        let started = Instant::now();
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer within a minute: {e}"));
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or_default();
        (status, body, started.elapsed())
    })
}

/// Drops the cached row of `store`'s `platform` connection, so that a read needs PostgreSQL.
async fn uncache(app: &TestApp, platform: &str, store: &str) {
    let mut redis = redis::Client::open(test_redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!(
        "{}conn:{platform}:{store}",
        app.redis_prefix.as_deref().unwrap()
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_silent_postgres_partition_answers_503_within_the_call_limit_and_writes_nothing_half_way()
{
    let db = fresh_database().await;
    let pg = url::Url::parse(&db.url).unwrap();
    let proxy = CuttableProxy::start(crate::helpers::host_port(&db.url)).await;
    let mut proxied = pg.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("DATABASE_URL", proxied.to_string()),
            (
                "DATABASE_STATEMENT_TIMEOUT_SECONDS",
                STATEMENT_TIMEOUT.as_secs().to_string(),
            ),
        ],
        ..Default::default()
    })
    .await;
    connect(&app, "google", "partition-read").await;
    connect(&app, "twitter", "partition-refresh").await;
    let read_before = row(&app.services, "partition-read", "google").await;
    let refresh_before = row(&app.services, "partition-refresh", "twitter").await;
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (events_before,): (i64,) = sqlx::query_as("select count(*) from webhook_outbox")
        .fetch_one(&mut watcher)
        .await
        .unwrap();

    // Held from outside the proxy: the service's statements on the table wait inside PostgreSQL.
    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("lock table platform_connections in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    uncache(&app, "google", "partition-read").await;
    let read = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/oauth/token/google?store_id=partition-read",
    );
    let refresh = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/oauth/refresh/twitter?store_id=partition-refresh",
    );
    wait_until(
        "both calls waiting inside PostgreSQL",
        Duration::from_secs(20),
        async || waiting_on_a_lock(&mut watcher, &db.name).await >= 2,
    )
    .await;
    proxy.partition();
    assert!(
        waiting_on_a_lock(&mut watcher, &db.name).await >= 2,
        "the statements were still in flight when the partition began"
    );

    let limit = PgStore::call_limit(STATEMENT_TIMEOUT);
    for (what, answer) in [("token read", read), ("forced refresh", refresh)] {
        let (status, body, took) = answer.await.unwrap();
        println!(
            "[postgres partition] {what} answered {status} in {took:?} (call limit {limit:?})"
        );
        assert_eq!(status, 503, "{what}: {body}");
        assert_eq!(
            body["error"]["code"], "storage_unavailable",
            "{what}: {body}"
        );
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
        // Generous beside the limit: this says "does not hang", not how fast.
        assert!(took < limit * 2, "{what} took {took:?}");
    }
    lock.rollback().await.unwrap();
    proxy.restore();
    wait_until(
        "healthy again after the partition heals",
        Duration::from_secs(30),
        async || {
            let response = reqwest::get(app.url("/health")).await.unwrap();
            response.status() == 200
        },
    )
    .await;

    // Nothing was written: not a lease, not a half of a refresh, not an event.
    for before in [&read_before, &refresh_before] {
        let after = row(
            &app.services,
            before.store_id.as_str(),
            before.platform.as_str(),
        )
        .await;
        assert_eq!(after.version, before.version, "{}", before.platform);
        assert_eq!(
            after.sealed_tokens, before.sealed_tokens,
            "{}",
            before.platform
        );
        assert_eq!(
            after.status,
            ConnectionStatus::Connected,
            "{}",
            before.platform
        );
    }
    let (leased, events_after): (i64, i64) = sqlx::query_as(
        "select (select count(*) from platform_connections where refresh_lease_owner is not null), \
                (select count(*) from webhook_outbox)",
    )
    .fetch_one(&mut watcher)
    .await
    .unwrap();
    assert_eq!((leased, events_after), (0, events_before));
    assert!(
        refresh_calls(&app.simulator, "twitter").is_empty(),
        "the platform was never asked"
    );

    // And the service works: the rotating platform's refresh presents the stored token.
    let forced = app
        .post("/api/v1/oauth/refresh/twitter?store_id=partition-refresh")
        .await;
    assert_eq!(forced.status(), 200);
    let body: serde_json::Value = forced.json().await.unwrap();
    let renewed = body["access_token"].as_str().unwrap();
    assert!(simulator_accepts(&app.simulator_address, "twitter", renewed).await);
    let calls = refresh_calls(&app.simulator, "twitter");
    assert!(calls.len() == 1 && calls[0].ok, "{calls:?}");
    let stored = row(&app.services, "partition-refresh", "twitter").await;
    let tokens = app.services.core.open(&stored).unwrap();
    assert_eq!(
        tokens.refresh_token.unwrap().expose_secret(),
        app.simulator
            .issued_refresh_tokens("twitter")
            .last()
            .unwrap()
            .as_str()
    );
    let read = app
        .get("/api/v1/oauth/token/google?store_id=partition-read")
        .await;
    assert_eq!(read.status(), 200);
    let body: serde_json::Value = read.json().await.unwrap();
    assert!(
        simulator_accepts(
            &app.simulator_address,
            "google",
            body["access_token"].as_str().unwrap()
        )
        .await
    );
    app.stop().await;
    db.drop_database().await;
}
