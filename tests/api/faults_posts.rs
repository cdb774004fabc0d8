//! Publishing under faults, against real processes and servers: SIGTERM while a post's send is
//! under way, a replica killed mid-send, PostgreSQL cut after the platform accepted a post, a
//! platform's answer lost. Each post is published at most once, and its outcome is recorded, or
//! reported `unknown` where the platform cannot tell.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::faults_refresh::{assert_log_clean, connect, connect_through, start_binary_with};
use crate::helpers::{fresh_database, spawn_app_with, wait_until, TestAppOptions, API_KEY};
use crate::posts::{create_post, settled};
use crate::proxy::CuttableProxy;

async fn create_at(address: &str, key: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{address}/api/v1/posts"))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// The post as the database has it (the service that wrote it may be gone).
async fn stored(db_url: &str, id: &str) -> (String, Option<String>, bool) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db_url)
        .await
        .unwrap();
    sqlx::query_as::<_, (String, Option<String>, bool)>(
        "select status, platform_post_id, sent_at is not null from posts where id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn sigterm_mid_send_waits_for_the_platforms_answer_and_records_it() {
    let binary = start_binary_with("posts-sigterm", &[]).await;
    connect_through(&binary.address, "twitter", "sigterm").await;
    binary.simulator.hold_api_calls("twitter", "tweets", true);
    let post = create_at(
        &binary.address,
        "sigterm-1",
        &json!({"store_id": "sigterm", "platform": "twitter", "text": "Out before the exit"}),
    )
    .await;
    let id = post["id"].as_str().unwrap().to_owned();
    wait_until("the send reaches X", Duration::from_secs(10), async || {
        binary.simulator.held_api_calls("twitter") == 1
    })
    .await;
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(binary.child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    binary.simulator.hold_api_calls("twitter", "tweets", false);
    let mut child = binary.child;
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
    let published = binary.simulator.published("twitter");
    assert_eq!(published.len(), 1);
    let (status, platform_id, _) = stored(&binary.db.url, &id).await;
    assert_eq!(
        status, "published",
        "the answer was written before the exit"
    );
    assert_eq!(platform_id.as_deref(), Some(published[0].id.as_str()));
    assert_log_clean("posts-sigterm", &binary.key, &binary.simulator);
    binary.db.drop_database().await;
}

#[tokio::test]
async fn a_replica_killed_mid_send_leaves_the_post_unknown_to_the_next_never_sent_again() {
    let extra = [("POSTS_LEASE_SECONDS", "2".to_owned())];
    let mut first = start_binary_with("posts-kill", &extra).await;
    connect_through(&first.address, "twitter", "killed").await;
    first.simulator.hold_api_calls("twitter", "tweets", true);
    let post = create_at(
        &first.address,
        "killed-1",
        &json!({"store_id": "killed", "platform": "twitter", "text": "Sent by a replica that died"}),
    )
    .await;
    let id = post["id"].as_str().unwrap().to_owned();
    wait_until("the send reaches X", Duration::from_secs(10), async || {
        first.simulator.held_api_calls("twitter") == 1
    })
    .await;
    // SIGKILL: no drain, no last write. The platform still takes the post.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    first.simulator.hold_api_calls("twitter", "tweets", false);
    let (status, _, sent) = stored(&first.db.url, &id).await;
    assert_eq!(status, "publishing");
    assert!(sent, "the send was recorded before it was made");

    // Another replica on the same database and platform takes the post over when the lease ends:
    // X offers no way to confirm a post, so it is reported unknown, and never sent again.
    let db_url = first.db.url.clone();
    let second = crate::faults_refresh::start_sibling_binary("posts-kill-2", &first, &extra).await;
    wait_until("the post settles", Duration::from_secs(30), async || {
        stored(&db_url, &id).await.0 != "publishing"
    })
    .await;
    let (status, _, _) = stored(&db_url, &id).await;
    assert_eq!(status, "unknown");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The dead replica's held call may or may not have been performed (its connection closed);
    // the replica that took over made none.
    assert!(
        first.simulator.published("twitter").len() <= 1,
        "at most once"
    );
    let tweets = first
        .simulator
        .api_requests("twitter")
        .into_iter()
        .filter(|r| r.path.ends_with("/tweets"))
        .count();
    assert!(tweets <= 1, "never sent again: {tweets} sends");
    drop(second);
    first.db.drop_database().await;
}

#[tokio::test]
async fn postgres_cut_after_the_platform_accepted_keeps_the_outcome_until_it_is_written() {
    let db = fresh_database().await;
    let pg = url::Url::parse(&db.url).unwrap();
    let proxy = CuttableProxy::start(format!(
        "{}:{}",
        pg.host_str().unwrap(),
        pg.port().unwrap_or(5432)
    ))
    .await;
    let mut proxied = pg.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("DATABASE_URL", proxied.to_string())],
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "cut").await;
    app.simulator.hold_api_calls("twitter", "tweets", true);
    let (_, post) = create_post(
        &app,
        "cut-1",
        &json!({"store_id": "cut", "platform": "twitter", "text": "Accepted while the database was away"}),
    )
    .await;
    let id = post["id"].as_str().unwrap().to_owned();
    wait_until("the send reaches X", Duration::from_secs(10), async || {
        app.simulator.held_api_calls("twitter") == 1
    })
    .await;
    proxy.cut();
    app.simulator.hold_api_calls("twitter", "tweets", false);
    wait_until("X publishes it", Duration::from_secs(10), async || {
        app.simulator.published("twitter").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    let post = settled(&app, &id).await;
    assert_eq!(post["status"], "published", "{post}");
    let published = app.simulator.published("twitter");
    assert_eq!(published.len(), 1);
    assert_eq!(post["platform_post"]["id"], published[0].id.as_str());
    app.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_lost_answer_is_confirmed_where_the_platform_can_tell_and_unknown_where_it_cannot() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "lost").await;
    app.simulator.lose_next_api_answers("twitter", "tweets", 1);
    let (_, post) = create_post(
        &app,
        "lost-1",
        &json!({"store_id": "lost", "platform": "twitter", "text": "Did it go out?"}),
    )
    .await;
    let post = settled(&app, post["id"].as_str().unwrap()).await;
    assert_eq!(post["status"], "unknown", "{post}");
    assert_eq!(post["error"]["code"], "answer_lost");
    assert_eq!(
        app.simulator.published("twitter").len(),
        1,
        "sent once, never again"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_send_that_outlasts_the_lease_keeps_its_post() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("POSTS_LEASE_SECONDS", "2".into())],
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "slow").await;
    app.simulator.hold_api_calls("twitter", "tweets", true);
    let (_, post) = create_post(
        &app,
        "slow-1",
        &json!({"store_id": "slow", "platform": "twitter", "text": "Slow but sure"}),
    )
    .await;
    let id = post["id"].as_str().unwrap().to_owned();
    wait_until("the send reaches X", Duration::from_secs(10), async || {
        app.simulator.held_api_calls("twitter") == 1
    })
    .await;
    // Well past the lease: without its renewal, a claim would take the post over and call it
    // unknown while its send is still under way.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        crate::posts::get_post(&app, &id).await["status"],
        "publishing"
    );
    app.simulator.hold_api_calls("twitter", "tweets", false);
    let post = settled(&app, &id).await;
    assert_eq!(post["status"], "published", "{post}");
    assert_eq!(app.simulator.published("twitter").len(), 1);
    app.stop().await;
}
