//! The token lifecycle: always-valid tokens, refresh and rotation, each failure class and the status
//! it leaves, the background refresher, webhooks, and serving while Redis is down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use growth_engine::lifecycle::webhooks::sign;
use growth_engine::sandbox::Fault;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestAppOptions};

async fn connect(app: &TestApp, platform: &str, store: &str) {
    let result = app.run_flow(platform, store, true).await;
    assert_eq!(
        result.get("connection").map(String::as_str),
        Some("success"),
        "{platform}: {result:?}"
    );
}

async fn token(app: &TestApp, platform: &str, store: &str) -> (u16, serde_json::Value) {
    let response = app
        .get(&format!("/api/v1/oauth/token/{platform}?store_id={store}"))
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

fn refreshes(app: &TestApp, platform: &str) -> Vec<growth_engine::sandbox::TokenRequestRecord> {
    app.simulator
        .token_requests(platform)
        .into_iter()
        .filter(|r| r.grant_type == "refresh_token" || r.grant_type == "fb_exchange_token")
        .collect()
}

async fn status_of(app: &TestApp, store: &str) -> serde_json::Value {
    app.connections(store).await["connections"][0].clone()
}

#[tokio::test]
async fn a_fresh_token_is_served_without_calling_the_platform() {
    let app = spawn_app().await;
    connect(&app, "google", "fresh").await;
    let calls = app.simulator.token_requests("google").len();
    let (status, body) = token(&app, "google", "fresh").await;
    assert_eq!(status, 200, "{body}");
    let issued = app.simulator.issued_access_tokens("google");
    assert_eq!(body["access_token"], issued.last().unwrap().as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_at"].is_string());
    assert!(body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "https://www.googleapis.com/auth/adwords"));
    assert_eq!(body["account_id"], "100000000000000000001");
    assert_eq!(
        app.simulator.token_requests("google").len(),
        calls,
        "no platform call"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_inside_the_refresh_window_is_refreshed_first() {
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    connect(&app, "google", "window").await;
    let first = app.simulator.issued_access_tokens("google");
    // The simulator's token lives 3599 s; four minutes before it expires it is inside the window.
    clock.advance(chrono::Duration::seconds(3599 - 240));
    let (status, body) = token(&app, "google", "window").await;
    assert_eq!(status, 200);
    assert_eq!(refreshes(&app, "google").len(), 1);
    assert_ne!(body["access_token"], first.last().unwrap().as_str());
    assert_eq!(
        body["access_token"],
        app.simulator
            .issued_access_tokens("google")
            .last()
            .unwrap()
            .as_str()
    );
    app.stop().await;
}

#[tokio::test]
async fn google_keeps_its_refresh_token_when_the_refresh_response_has_none() {
    let app = spawn_app().await;
    connect(&app, "google", "keep-rt").await;
    for _ in 0..3 {
        let response = app
            .post("/api/v1/oauth/refresh/google?store_id=keep-rt")
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(refreshes(&app, "google").len(), 3);
    assert!(
        refreshes(&app, "google").iter().all(|r| r.ok),
        "the one refresh token still works"
    );
    assert_eq!(status_of(&app, "keep-rt").await["status"], "CONNECTED");
    app.stop().await;
}

#[tokio::test]
async fn rotating_refresh_tokens_are_stored_before_use_so_every_refresh_succeeds() {
    for platform in ["twitter", "tiktok", "pinterest"] {
        let app = spawn_app().await;
        connect(&app, platform, "rotating").await;
        for _ in 0..3 {
            let response = app
                .post(&format!(
                    "/api/v1/oauth/refresh/{platform}?store_id=rotating"
                ))
                .await;
            assert_eq!(response.status(), 200, "{platform}");
        }
        let records = refreshes(&app, platform);
        assert_eq!(records.len(), 3, "{platform}");
        assert!(
            records.iter().all(|r| r.ok),
            "{platform}: each refresh used the newest refresh token"
        );
        let issued = app.simulator.issued_refresh_tokens(platform);
        assert!(issued.len() >= 4, "{platform}: the platform rotated");
        app.stop().await;
    }
}

#[tokio::test]
async fn meta_renews_its_long_lived_token_by_exchange() {
    let app = spawn_app().await;
    connect(&app, "meta", "meta-renew").await;
    let before = app.simulator.issued_access_tokens("meta").len();
    let response = app
        .post("/api/v1/oauth/refresh/meta?store_id=meta-renew")
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["access_token"],
        app.simulator
            .issued_access_tokens("meta")
            .last()
            .unwrap()
            .as_str()
    );
    assert!(app.simulator.issued_access_tokens("meta").len() > before);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_meta_token_cannot_be_renewed_and_the_connection_expires() {
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    connect(&app, "meta", "meta-dead").await;
    let exchanges_at_connect = refreshes(&app, "meta").len();
    clock.advance(chrono::Duration::days(61));
    let (status, body) = token(&app, "meta", "meta-dead").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reconnect_required");
    assert_eq!(body["error"]["details"]["status"], "EXPIRED");
    assert_eq!(
        refreshes(&app, "meta").len(),
        exchanges_at_connect,
        "an expired token is not sent to Meta"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_grant_marks_the_connection_and_stops_retrying() {
    let app = spawn_app().await;
    connect(&app, "twitter", "revoked").await;
    app.simulator.revoke_all_grants("twitter");
    let response = app
        .post("/api/v1/oauth/refresh/twitter?store_id=revoked")
        .await;
    assert_eq!(response.status(), 409);
    let connection = status_of(&app, "revoked").await;
    // X answers a revoked grant's refresh with `invalid_request` "Value passed for the token was
    // invalid." (providers.md X5): a dead grant, which it does not call revoked.
    assert_eq!(connection["status"], "EXPIRED", "{connection}");
    assert!(connection["last_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    let calls = refreshes(&app, "twitter").len();
    let (status, _) = token(&app, "twitter", "revoked").await;
    assert_eq!(status, 409);
    assert_eq!(
        refreshes(&app, "twitter").len(),
        calls,
        "a dead connection is not retried"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_platform_outage_does_not_kill_the_connection_and_cools_it_down() {
    let app = spawn_app().await;
    connect(&app, "tiktok", "outage").await;
    for fault in [
        Fault::Status(503),
        Fault::RateLimited {
            retry_after_seconds: 120,
        },
    ] {
        app.simulator.set_fault("tiktok", Some(fault.clone()));
        let response = app
            .post("/api/v1/oauth/refresh/tiktok?store_id=outage")
            .await;
        // The stored token is still valid, so the caller still gets it.
        assert_eq!(response.status(), 200, "{fault:?}");
        let connection = status_of(&app, "outage").await;
        assert_eq!(connection["status"], "CONNECTED", "{fault:?}");
        assert!(
            connection["last_error"]
                .as_str()
                .unwrap()
                .contains("unavailable"),
            "{connection}"
        );
    }
    let row = app
        .services
        .store
        .get_connection(
            &growth_engine::domain::StoreId::parse("outage").unwrap(),
            &growth_engine::domain::PlatformId::parse("tiktok").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.refresh_failures, 2);
    let wait = row.next_refresh_at.unwrap() - chrono::Utc::now();
    assert!(
        wait >= chrono::Duration::seconds(115),
        "Retry-After is honoured, next in {wait}"
    );
    app.simulator.set_fault("tiktok", None);
    assert_eq!(
        app.post("/api/v1/oauth/refresh/tiktok?store_id=outage")
            .await
            .status(),
        200
    );
    let row = app
        .services
        .store
        .get_connection(&row.store_id, &row.platform)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.refresh_failures, 0);
    assert!(row.last_error.is_none());
    app.stop().await;
}

#[tokio::test]
async fn an_outage_with_an_expired_token_answers_502_and_keeps_the_connection() {
    // One clock for the service and the platform: the token expires for both when it is moved.
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        simulator_follows_clock: true,
        ..Default::default()
    })
    .await;
    app.simulator.set_access_token_ttl("google", 1);
    connect(&app, "google", "expired-outage").await;
    clock.advance(chrono::Duration::seconds(2));
    app.simulator.set_fault("google", Some(Fault::Status(500)));
    let (status, body) = token(&app, "google", "expired-outage").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "platform_unavailable");
    assert_eq!(
        status_of(&app, "expired-outage").await["status"],
        "CONNECTED"
    );
    app.stop().await;
}

#[tokio::test]
async fn no_connection_is_a_404_and_an_unknown_platform_too() {
    let app = spawn_app().await;
    let (status, body) = token(&app, "google", "nobody").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "connection_not_found");
    let (status, body) = token(&app, "friendster", "nobody").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_platform");
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_requests_for_an_expiring_token_cause_one_refresh() {
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "herd").await;
    clock.advance(chrono::Duration::seconds(7200 - 60)); // a minute before X's two hours run out
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let api = app.api.clone();
        let url = app.url("/api/v1/oauth/token/twitter?store_id=herd");
        tasks.push(tokio::spawn(async move {
            let response = api
                .get(url)
                .bearer_auth(crate::helpers::API_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert_eq!(
        refreshes(&app, "twitter").len(),
        1,
        "exactly one call to the token endpoint"
    );
    let newest = app
        .simulator
        .issued_access_tokens("twitter")
        .last()
        .unwrap()
        .clone();
    assert!(
        tokens.iter().all(|t| *t == newest),
        "every waiter got the new token"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_refresher_renews_due_connections_in_the_background() {
    let app = spawn_app_with(TestAppOptions {
        refresher: true,
        ..Default::default()
    })
    .await;
    app.simulator.set_access_token_ttl("pinterest", 8); // due at once: a quarter of its life
    connect(&app, "pinterest", "background").await;
    // The simulator counts the refresh when it answers; the row is written a
    // moment later, so wait for the stored result rather than the call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let connection = status_of(&app, "background").await;
        if connection["last_refreshed_at"].is_string() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refresher never stored a renewal (platform refreshes: {}): {connection}",
            refreshes(&app, "pinterest").len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !refreshes(&app, "pinterest").is_empty(),
        "renewed without calling the platform"
    );
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_served_from_postgres_while_redis_is_down() {
    let proxy = crate::proxy::CuttableProxy::start(crate::helpers::host_port(
        &crate::helpers::test_redis_url(),
    ))
    .await;
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("REDIS_URL", format!("redis://127.0.0.1:{}", proxy.port))],
        ..Default::default()
    })
    .await;
    connect(&app, "google", "no-redis").await;
    proxy.cut();
    let (status, body) = token(&app, "google", "no-redis").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["access_token"],
        app.simulator
            .issued_access_tokens("google")
            .last()
            .unwrap()
            .as_str()
    );
    // Starting a flow needs the shared state store, and says so.
    let response = app
        .get("/api/v1/oauth/connect/google?user_id=u&store_id=no-redis")
        .await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "state_store_unavailable");
    proxy.restore();
    app.stop().await;
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn start_receiver(port: u16, receiver: Receiver) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let router = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let receiver = receiver.clone();
            async move {
                receiver.received.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    })
}

#[tokio::test]
async fn webhooks_wait_in_the_outbox_while_the_receiver_is_down_and_arrive_signed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "webhook-secret-0123456789";
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("WEBHOOK_URL", format!("http://127.0.0.1:{port}/hooks")),
            ("WEBHOOK_SECRET", secret.into()),
        ],
        ..Default::default()
    })
    .await;
    connect(&app, "tiktok", "hooked").await;
    app.simulator.revoke_all_grants("tiktok");
    let _ = app
        .post("/api/v1/oauth/refresh/tiktok?store_id=hooked")
        .await;
    let db = app.database.as_ref().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    // Each event's delivery has failed (its failure is recorded, so it waits out a back-off): nobody
    // listens.
    crate::helpers::wait_until(
        "a failed delivery of each event",
        Duration::from_secs(10),
        async || {
            let (failed,): (i64,) = sqlx::query_as(
                "select count(*) from webhook_outbox where delivered_at is null and last_error is not null",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            failed >= 2
        },
    )
    .await;

    // The receiver comes back; failed deliveries were pushed out by back-off, so make them due now.
    let receiver = Receiver::default();
    let server = start_receiver(port, receiver.clone()).await;
    sqlx::query("update webhook_outbox set next_attempt_at = now() where delivered_at is null")
        .execute(&mut conn)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.received.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.received.lock().unwrap().clone();
    let types: Vec<String> = received
        .iter()
        .map(|(h, _)| h["growth-engine-event"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        types.contains(&"connection.created".to_owned()),
        "{types:?}"
    );
    assert!(
        types
            .iter()
            .any(|t| t == "connection.expired" || t == "connection.revoked"),
        "{types:?}"
    );
    let secret = SecretString::from(secret);
    for (headers, body) in &received {
        let header = headers["growth-engine-signature"].to_str().unwrap();
        let (t, v1) = header.split_once(',').unwrap();
        let timestamp: i64 = t.trim_start_matches("t=").parse().unwrap();
        // What a receiver computes, in another language: HMAC-SHA256 over `{t}.{body}`.
        let signed = [format!("{timestamp}.").as_bytes(), &body[..]].concat();
        assert_eq!(
            v1.trim_start_matches("v1="),
            crate::helpers::python_hmac_sha256_hex(secret.expose_secret().as_bytes(), &signed),
            "a receiver can verify it"
        );
        assert_eq!(
            sign(&secret, timestamp, body),
            v1.trim_start_matches("v1="),
            "the service's own signer agrees"
        );
        let text = String::from_utf8_lossy(body);
        for token in app.simulator.issued_access_tokens("tiktok") {
            assert!(!text.contains(&token), "no token in a webhook");
        }
    }
    let undelivered: (i64,) =
        sqlx::query_as("select count(*) from webhook_outbox where delivered_at is null")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(undelivered.0, 0);
    server.abort();
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_flows_refreshes_and_connections() {
    let app = spawn_app().await;
    connect(&app, "google", "metered").await;
    let _ = app.run_flow("google", "metered-2", false).await;
    assert_eq!(
        app.post("/api/v1/oauth/refresh/google?store_id=metered")
            .await
            .status(),
        200
    );
    let unauthenticated = app.api.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"growth_engine_flows_started_total{platform="google"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"growth_engine_flows_completed_total{platform="google"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"growth_engine_flows_failed_total{platform="google",reason="access_denied"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"growth_engine_refreshes_total{platform="google",outcome="success"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"growth_engine_token_endpoint_seconds_count{platform="google",grant_type="refresh_token"} 1"#), "{text}");
    assert!(
        text.contains(r#"growth_engine_connections{platform="google",status="CONNECTED"} 1"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_endpoint_timeout_during_refresh_leaves_the_connection_connected() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("HTTP_TIMEOUT_SECONDS", "1".into())],
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "slow-platform").await;
    app.simulator
        .set_fault("twitter", Some(Fault::Delay(Duration::from_secs(3))));
    let started = std::time::Instant::now();
    let response = app
        .post("/api/v1/oauth/refresh/twitter?store_id=slow-platform")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut at the timeout"
    );
    assert_eq!(response.status(), 200, "the still-valid token is served");
    let connection = status_of(&app, "slow-platform").await;
    assert_eq!(connection["status"], "CONNECTED");
    assert!(
        connection["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{connection}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failed_refresh_token_revocation_is_not_reported_as_revoked() {
    // X's revocation endpoint refuses the refresh token but accepts the access token.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let revoke_url = format!(
        "http://127.0.0.1:{}/revoke",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = seen.clone();
    let router = axum::Router::new().route(
        "/revoke",
        axum::routing::post(move |body: Bytes| {
            let recorded = recorded.clone();
            async move {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&body).unwrap_or_default();
                let hint = form
                    .iter()
                    .find(|(k, _)| k == "token_type_hint")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                recorded.lock().unwrap().push(hint.clone());
                if hint == "refresh_token" {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({"error": "invalid_request"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(serde_json::json!({"revoked": true})),
                    )
                }
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("TWITTER_REVOKE_URL", revoke_url)],
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "half-revoked").await;
    let response = app
        .delete("/api/v1/oauth/disconnect/twitter?user_id=user-1&store_id=half-revoked")
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["revocation"], "failed", "{body}");
    assert_eq!(body["revoked_at_platform"], false);
    assert_eq!(
        body["revocation_tokens"],
        serde_json::json!([
            {"token": "refresh_token", "revoked": false},
            {"token": "access_token", "revoked": true},
        ])
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["refresh_token".to_owned(), "access_token".to_owned()]
    );
    // The event names each token's outcome.
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&app.database.as_ref().unwrap().url)
        .await
        .unwrap();
    let (payload,): (serde_json::Value,) = sqlx::query_as(
        "select payload from webhook_outbox where event_type = 'connection.deleted'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(payload["revocation"], "failed");
    assert_eq!(
        payload["revocation_tokens"],
        serde_json::json!([
            {"token": "refresh_token", "revoked": false},
            {"token": "access_token", "revoked": true},
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_panicking_refresher_is_counted_and_restarted_while_the_service_keeps_serving() {
    use growth_engine::app::{AppOptions, Application};
    let app = spawn_app().await;
    // A zero interval makes the refresher's ticker panic at once (settings validation is the
    // config's job; this proves the supervision).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let settings = crate::helpers::settings_from(&[
        ("DATABASE_URL", app.database.as_ref().unwrap().url.clone()),
        ("API_KEYS", crate::helpers::API_KEY.into()),
        ("REFRESHER_ENABLED", "true".into()),
        (
            "TOKEN_ENCRYPTION_KEY",
            growth_engine::vault::Key::generate().to_base64(),
        ),
    ]);
    let panicky = Application::build_with(
        settings,
        listener,
        AppOptions {
            refresher_interval: Some(Duration::ZERO),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let metrics = panicky.services().metrics.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(panicky.run_until(async move {
        let _ = rx.await;
    }));
    let restarts = || {
        metrics
            .render()
            .lines()
            .find(|l| {
                l.starts_with("growth_engine_background_task_panics_total{task=\"refresher\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    crate::helpers::wait_until(
        "the refresher restarted more than once",
        Duration::from_secs(30),
        async || restarts() >= 2,
    )
    .await;
    let health = reqwest::get(format!("{address}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let _ = tx.send(());
    server.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_service_shutting_down_takes_no_new_refresh_and_says_so() {
    let app = spawn_app().await;
    connect(&app, "twitter", "closing").await;
    app.services.refresh.stop_taking_leases();
    let calls = refreshes(&app, "twitter").len();
    let response = app
        .post("/api/v1/oauth/refresh/twitter?store_id=closing")
        .await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");
    assert_eq!(refreshes(&app, "twitter").len(), calls, "no platform call");
    // A token that needs no refresh is still served.
    let (status, _) = token(&app, "twitter", "closing").await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&app, "closing").await["status"], "CONNECTED");
    app.stop().await;
}
