//! Health: healthy with both dependencies, degraded (still 200) when only Redis is down, 503 naming
//! the database when it is down, liveness and readiness, and recovery without a restart.

use std::time::Duration;

use crate::helpers::{
    host_port, spawn_app, spawn_app_with, test_database_url, test_redis_url, Backend,
    TestAppOptions,
};
use crate::proxy::CuttableProxy;

async fn health(app: &crate::helpers::TestApp) -> (u16, serde_json::Value) {
    let response = app.api.get(app.url("/health")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn wait_for_status(app: &crate::helpers::TestApp, expected: u16) -> serde_json::Value {
    wait_for(app, expected, None).await
}

/// Waits until `/health` answers `expected` (and, if given, that `status` in its body).
async fn wait_for(
    app: &crate::helpers::TestApp,
    expected: u16,
    text: Option<&str>,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = health(app).await;
        if status == expected && text.is_none_or(|t| body["status"] == t) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn health_reports_the_database_and_redis() {
    let app = spawn_app().await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "growth-engine");
    assert_eq!(body["checks"]["database"]["status"], "up");
    assert_eq!(body["checks"]["database"]["backend"], "postgres");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    app.stop().await;
}

#[tokio::test]
async fn the_embedded_default_is_healthy_without_redis() {
    let app = spawn_app_with(TestAppOptions {
        backend: Backend::Embedded,
        ..Default::default()
    })
    .await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "not_configured");
    app.stop().await;
}

#[tokio::test]
async fn redis_going_down_makes_health_degraded_but_200_and_it_recovers_by_itself() {
    let proxy = CuttableProxy::start(host_port(&test_redis_url())).await;
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("REDIS_URL", format!("redis://127.0.0.1:{}", proxy.port))],
        ..Default::default()
    })
    .await;
    wait_for(&app, 200, Some("healthy")).await;
    proxy.cut();
    // Tokens are still served from PostgreSQL: a load balancer must keep this replica.
    let body = wait_for(&app, 200, Some("degraded")).await;
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["database"]["status"], "up");
    assert_eq!(body["checks"]["failing"], serde_json::json!(["redis"]));
    let ready = app.api.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready without Redis");
    proxy.restore();
    wait_for(&app, 200, Some("healthy")).await;
    app.stop().await;
}

#[tokio::test]
async fn postgres_going_down_makes_health_503_and_it_recovers_by_itself() {
    let proxy = CuttableProxy::start(host_port(&test_database_url())).await;
    let db = crate::helpers::fresh_database().await;
    let mut via_proxy = url::Url::parse(&db.url).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("DATABASE_URL", via_proxy.to_string())],
        ..Default::default()
    })
    .await;
    wait_for_status(&app, 200).await;
    proxy.cut();
    let body = wait_for_status(&app, 503).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["database"]["status"], "down");
    assert_eq!(body["checks"]["failing"], serde_json::json!(["database"]));
    let ready = app.api.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "not_ready");
    let live = app.api.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200, "alive while the database is down");
    proxy.restore();
    wait_for_status(&app, 200).await;
    app.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn live_and_ready_answer_200_and_are_in_the_openapi_document() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let response = app.api.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["status"].is_string(), "{path}: {body}");
    }
    let doc: serde_json::Value = app
        .api
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/health", "/health/live", "/health/ready"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} documented");
    }
    app.stop().await;
}
