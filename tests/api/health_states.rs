//! Connection health (issue 11): each state through the API, each health event once per episode,
//! the liveness probe finding a grant revoked at the platform, and two instances on one PostgreSQL
//! sending each event once. The clock is a `ManualClock` moved past each threshold; probe and sweep
//! passes are run on demand (`services.liveness.run_once()`), never waited for.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use growth_engine::clock::ManualClock;
use growth_engine::sandbox::{self, Fault};
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, TestAppOptions};

const DAY: i64 = 86_400;

/// Whole seconds, so that times read back from the database compare equal.
fn clock() -> ManualClock {
    ManualClock::new(Utc::now().trunc_subsecs(0))
}

async fn app_with(clock: &ManualClock, extra_env: Vec<(&'static str, String)>) -> TestApp {
    spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        extra_env,
        ..Default::default()
    })
    .await
}

async fn connect(app: &TestApp, platform: &str, store: &str) {
    let result = app.run_flow(platform, store, true).await;
    assert_eq!(
        result.get("connection").map(String::as_str),
        Some("success"),
        "{platform}: {result:?}"
    );
}

async fn connection(app: &TestApp, store: &str, platform: &str) -> Value {
    let body = app.connections(store).await;
    body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == platform)
        .cloned()
        .unwrap_or_else(|| panic!("no {platform} connection in {body}"))
}

async fn health(app: &TestApp, store: &str, platform: &str) -> Value {
    connection(app, store, platform).await["health"].clone()
}

/// The outbox's events of `event_type`, oldest first.
async fn events(app: &TestApp, event_type: &str) -> Vec<Value> {
    let db = app.database.as_ref().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let rows: Vec<(sqlx::types::Json<Value>,)> = sqlx::query_as(
        "select payload from webhook_outbox where event_type = $1 order by created_at, id",
    )
    .bind(event_type)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|(p,)| p.0).collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .unwrap()
    .with_timezone(&Utc)
}

async fn sweep(app: &TestApp) {
    app.services.liveness.run_once().await.expect("a pass runs");
}

#[tokio::test]
async fn a_new_connection_is_healthy_with_its_reconnect_by_and_first_check() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    let connected_at = clock_now(&clock);
    connect(&app, "tiktok", "h-healthy").await;
    let health = health(&app, "h-healthy", "tiktok").await;
    assert_eq!(health["state"], "healthy", "{health}");
    assert_eq!(time(&health["since"]), connected_at);
    assert_eq!(
        time(&health["last_checked_at"]),
        connected_at,
        "the connect's identity call"
    );
    assert!(health["last_error"].is_null());
    // TikTok reports refresh_expires_in (365 days in the sandbox).
    let by = time(&health["reconnect_by"]);
    assert_eq!(by, connected_at + Duration::seconds(365 * DAY));
    // X reports no refresh-token lifetime: no reconnect_by.
    connect(&app, "twitter", "h-healthy").await;
    let x = health_of(&app, "h-healthy", "twitter").await;
    assert_eq!(x["state"], "healthy");
    assert!(x["reconnect_by"].is_null(), "{x}");
    app.stop().await;
}

async fn health_of(app: &TestApp, store: &str, platform: &str) -> Value {
    health(app, store, platform).await
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use growth_engine::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn missing_scopes_are_a_state_of_their_own() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    app.simulator.set_granted_scopes_override(
        "twitter",
        Some(vec![
            "tweet.read".into(),
            "users.read".into(),
            "offline.access".into(),
        ]),
    );
    connect(&app, "twitter", "h-scopes").await;
    let health = health(&app, "h-scopes", "twitter").await;
    assert_eq!(health["state"], "missing_scopes", "{health}");
    app.stop().await;
}

#[tokio::test]
async fn expiry_warnings_go_out_once_per_threshold_and_episode() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    // The access token outlives the test, so nothing renews the refresh token meanwhile.
    app.simulator.set_access_token_ttl("tiktok", 400 * DAY);
    let connected_at = clock_now(&clock);
    connect(&app, "tiktok", "h-expiring").await;
    let by = connected_at + Duration::seconds(365 * DAY);

    clock.advance(Duration::days(357));
    sweep(&app).await;
    assert!(events(&app, "connection.expiring").await.is_empty());
    assert_eq!(
        health(&app, "h-expiring", "tiktok").await["state"],
        "healthy"
    );

    clock.advance(Duration::days(1) + Duration::seconds(1));
    sweep(&app).await;
    sweep(&app).await;
    let sent = events(&app, "connection.expiring").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["days_left"], 7);
    assert_eq!(time(&sent[0]["reconnect_by"]), by);
    assert_eq!(sent[0]["connection"]["store_id"], "h-expiring");
    let health = health(&app, "h-expiring", "tiktok").await;
    assert_eq!(health["state"], "expiring", "{health}");
    assert_eq!(time(&health["reconnect_by"]), by);
    assert_eq!(time(&health["since"]), by - Duration::days(7));

    clock.advance(Duration::days(6));
    sweep(&app).await;
    sweep(&app).await;
    let sent = events(&app, "connection.expiring").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1]["days_left"], 1);

    // Reconnecting starts a new episode: healthy again, warnings from scratch.
    connect(&app, "tiktok", "h-expiring").await;
    let health = health_of(&app, "h-expiring", "tiktok").await;
    assert_eq!(health["state"], "healthy", "{health}");
    sweep(&app).await;
    assert_eq!(events(&app, "connection.expiring").await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn failing_refreshes_alert_once_after_an_hour_and_recover_once() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    connect(&app, "tiktok", "h-failing").await;
    app.simulator.set_fault("tiktok", Some(Fault::Status(503)));
    let failed_at = clock_now(&clock);
    let refresh = "/api/v1/oauth/refresh/tiktok?store_id=h-failing";
    // While the platform fails, a forced refresh still hands out the valid token it holds.
    let served = |response: reqwest::Response| {
        assert_eq!(response.status(), 200, "the still-valid token is served");
    };
    served(app.post(refresh).await);
    let health = health(&app, "h-failing", "tiktok").await;
    assert_eq!(health["state"], "refresh_failing", "{health}");
    assert_eq!(time(&health["since"]), failed_at);
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{health}"
    );

    // More failures within the hour: same episode, no alert yet.
    clock.advance(Duration::minutes(30));
    served(app.post(refresh).await);
    sweep(&app).await;
    assert!(events(&app, "connection.refresh_failing").await.is_empty());
    assert_eq!(
        time(&health_of(&app, "h-failing", "tiktok").await["since"]),
        failed_at
    );

    clock.advance(Duration::minutes(31));
    sweep(&app).await;
    sweep(&app).await;
    served(app.post(refresh).await);
    sweep(&app).await;
    let alerts = events(&app, "connection.refresh_failing").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(time(&alerts[0]["failing_since"]), failed_at);
    assert!(events(&app, "connection.recovered").await.is_empty());

    // The platform is back: one recovered, and healthy again.
    app.simulator.set_fault("tiktok", None);
    let response = app.post(refresh).await;
    assert_eq!(response.status(), 200);
    served(app.post(refresh).await);
    sweep(&app).await;
    let recovered = events(&app, "connection.recovered").await;
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(time(&recovered[0]["failing_since"]), failed_at);
    let health = health_of(&app, "h-failing", "tiktok").await;
    assert_eq!(health["state"], "healthy", "{health}");
    assert!(health["last_error"].is_null());

    // A short episode that never reached the alert ends silently.
    app.simulator.set_fault("tiktok", Some(Fault::Status(503)));
    served(app.post(refresh).await);
    clock.advance(Duration::minutes(10));
    app.simulator.set_fault("tiktok", None);
    assert_eq!(app.post(refresh).await.status(), 200);
    sweep(&app).await;
    assert_eq!(events(&app, "connection.refresh_failing").await.len(), 1);
    assert_eq!(events(&app, "connection.recovered").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_probe_finds_a_grant_revoked_at_the_platform_within_one_period() {
    let clock = clock();
    let app = app_with(
        &clock,
        vec![("LIVENESS_CHECK_INTERVAL_SECONDS", "3600".into())],
    )
    .await;
    connect(&app, "meta", "h-probe").await;
    connect(&app, "tiktok", "h-probe").await;

    app.simulator.revoke_all_grants("meta");
    clock.advance(Duration::seconds(3601));
    let checked_at = clock_now(&clock);
    let pass = app.services.liveness.run_once().await.unwrap();
    assert_eq!(pass.dead, 1, "{pass:?}");
    let meta = connection(&app, "h-probe", "meta").await;
    assert_eq!(meta["status"], "REVOKED", "{meta}");
    assert_eq!(meta["health"]["state"], "dead");
    assert_eq!(time(&meta["health"]["since"]), checked_at);
    let revoked = events(&app, "connection.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["connection"]["platform"], "meta");
    // The page's JSON carries the same health.
    let merchant = crate::dashboard::Merchant::open(&app, "h-probe", "merchant").await;
    let cards = merchant.cards(&app).await;
    let card = cards["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "meta")
        .cloned()
        .unwrap();
    assert_eq!(card["health"], meta["health"], "{card}");
    let unconnected = cards["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "pinterest")
        .cloned()
        .unwrap();
    assert!(unconnected["health"].is_null(), "{unconnected}");
    // The live one was checked and recorded.
    let tiktok = health(&app, "h-probe", "tiktok").await;
    assert_eq!(tiktok["state"], "healthy");
    assert_eq!(time(&tiktok["last_checked_at"]), checked_at);

    // Each is checked once per period: nothing is due again until the next one.
    let pass = app.services.liveness.run_once().await.unwrap();
    assert_eq!(pass.checked, 0, "{pass:?}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .contains("growth_engine_liveness_probes_total{platform=\"meta\",outcome=\"dead\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_database_check_once_and_warn_once() {
    let clock = clock();
    let key = growth_engine::vault::Key::generate().to_base64();
    let a = app_with(&clock, vec![("TOKEN_ENCRYPTION_KEY", key.clone())]).await;
    // The second instance: same database, key and platforms (the first one's simulator).
    let mut env = vec![
        ("TOKEN_ENCRYPTION_KEY", key),
        ("DATABASE_URL", a.database.as_ref().unwrap().url.clone()),
    ];
    let endpoints = sandbox::endpoints(&a.simulator_address, "tiktok").unwrap();
    env.extend([
        ("TIKTOK_AUTHORIZE_URL", endpoints.authorize),
        ("TIKTOK_TOKEN_URL", endpoints.token),
        ("TIKTOK_REVOKE_URL", endpoints.revoke),
        ("TIKTOK_USERINFO_URL", endpoints.userinfo),
        (
            "TIKTOK_API_URL",
            sandbox::api_base(&a.simulator_address, "tiktok").unwrap(),
        ),
    ]);
    let b = app_with(&clock, env).await;
    a.simulator.set_access_token_ttl("tiktok", 400 * DAY);
    connect(&a, "tiktok", "h-replicas").await;

    clock.advance(Duration::days(358) + Duration::seconds(1));
    let (pass_a, pass_b) = tokio::join!(
        a.services.liveness.run_once(),
        b.services.liveness.run_once()
    );
    let (pass_a, pass_b) = (pass_a.unwrap(), pass_b.unwrap());
    assert_eq!(pass_a.checked + pass_b.checked, 1, "{pass_a:?} {pass_b:?}");
    assert_eq!(pass_a.alive + pass_b.alive, 1, "{pass_a:?} {pass_b:?}");
    let (again_a, again_b) = tokio::join!(
        a.services.liveness.run_once(),
        b.services.liveness.run_once()
    );
    assert_eq!(again_a.unwrap().checked + again_b.unwrap().checked, 0);
    let sent = events(&a, "connection.expiring").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        pass_a.expiry_warnings + pass_b.expiry_warnings,
        1,
        "{pass_a:?} {pass_b:?}"
    );
    // Both instances show the same health.
    assert_eq!(
        health(&b, "h-replicas", "tiktok").await["state"],
        "expiring"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_health() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["ConnectionView"]["properties"]["health"].is_object(),
        "{}",
        schemas["ConnectionView"]
    );
    let states = schemas["HealthState"]["enum"].to_string();
    for state in [
        "healthy",
        "refresh_failing",
        "expiring",
        "missing_scopes",
        "dead",
    ] {
        assert!(states.contains(state), "{states}");
    }
    for field in [
        "state",
        "since",
        "reconnect_by",
        "last_checked_at",
        "last_error",
    ] {
        assert!(
            schemas["Health"]["properties"][field].is_object(),
            "{field}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_meta_connection_must_be_reconnected_by_its_data_access_expiry() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    // A long-lived token that outlasts the data-access window (as one re-exchanged on schedule
    // does): only the data-access expiry can make this connection expire.
    app.simulator.set_access_token_ttl("meta", 200 * DAY);
    let connected_at = clock_now(&clock);
    connect(&app, "meta", "h-meta-dae").await;
    let meta = connection(&app, "h-meta-dae", "meta").await;
    // debug_token's data_access_expires_at: the sandbox's 90 days from the consent. The standalone
    // simulator reads the system clock, not the test's ManualClock: a few seconds apart at most.
    let recorded = meta["metadata"]["data_access_expires_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("no data-access expiry recorded: {meta}"));
    let data_access = DateTime::from_timestamp(recorded, 0).unwrap();
    let drift = data_access - (connected_at + Duration::seconds(90 * DAY));
    assert!(
        drift >= Duration::zero() && drift < Duration::seconds(60),
        "{data_access} is not 90 days after {connected_at}"
    );
    // The pages the other hook records are still there beside it.
    assert_eq!(
        meta["metadata"]["pages"].as_array().map(Vec::len),
        Some(2),
        "{meta}"
    );
    assert_eq!(meta["health"]["state"], "healthy", "{meta}");
    // Not the long-lived token's 60 days: never exchanged since, that one is not yet the end.
    assert_eq!(time(&meta["health"]["reconnect_by"]), data_access);

    // Five days before it (the refresher is off, so nothing else changes the connection), inside
    // the default 7-day warning.
    clock.advance(Duration::seconds(85 * DAY));
    let health = health(&app, "h-meta-dae", "meta").await;
    assert_eq!(health["state"], "expiring", "{health}");
    assert_eq!(time(&health["reconnect_by"]), data_access);
    assert_eq!(
        time(&health["since"]),
        data_access - Duration::seconds(7 * DAY)
    );
    // The sweep finds the row by its data-access expiry too (its token's own expiry is far): one
    // warning, not one per pass.
    sweep(&app).await;
    sweep(&app).await;
    let sent: Vec<Value> = events(&app, "connection.expiring")
        .await
        .into_iter()
        .filter(|e| e["connection"]["store_id"] == "h-meta-dae")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["days_left"], 7);
    assert_eq!(time(&sent[0]["reconnect_by"]), data_access);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_debug_token_leaves_meta_connected_and_the_next_exchange_records_the_expiry() {
    let clock = clock();
    let app = app_with(&clock, vec![]).await;
    app.simulator.set_meta_debug_token_unavailable(true);
    connect(&app, "meta", "h-meta-nodebug").await;
    assert_eq!(app.simulator.meta_debug_token_calls(), 1);
    let meta = connection(&app, "h-meta-nodebug", "meta").await;
    assert_eq!(meta["status"], "CONNECTED", "{meta}");
    assert!(
        meta["metadata"].get("data_access_expires_at").is_none(),
        "{meta}"
    );
    assert!(meta["health"]["reconnect_by"].is_null(), "{meta}");

    app.simulator.set_meta_debug_token_unavailable(false);
    let response = app
        .post("/api/v1/oauth/refresh/meta?store_id=h-meta-nodebug")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.simulator.meta_debug_token_calls(), 2);
    let meta = connection(&app, "h-meta-nodebug", "meta").await;
    let recorded = meta["metadata"]["data_access_expires_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("the exchange recorded no data-access expiry: {meta}"));
    assert_eq!(
        time(&meta["health"]["reconnect_by"]).timestamp(),
        recorded,
        "{meta}"
    );
    // The renewal kept the pages recorded at connect.
    assert_eq!(meta["metadata"]["pages"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}
