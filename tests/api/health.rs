//! Health: healthy with both dependencies, 503 naming the one that is down, and recovery without a
//! restart when it comes back.

use std::time::Duration;

use crate::helpers::{
    spawn_app, spawn_app_with, test_database_url, test_redis_url, Backend, TestAppOptions,
};
use crate::proxy::CuttableProxy;

fn host_port(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

async fn health(app: &crate::helpers::TestApp) -> (u16, serde_json::Value) {
    let response = app.api.get(app.url("/health")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn wait_for_status(app: &crate::helpers::TestApp, expected: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = health(app).await;
        if status == expected {
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
async fn redis_going_down_makes_health_503_and_it_recovers_by_itself() {
    let proxy = CuttableProxy::start(host_port(&test_redis_url())).await;
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("REDIS_URL", format!("redis://127.0.0.1:{}", proxy.port))],
        ..Default::default()
    })
    .await;
    wait_for_status(&app, 200).await;
    proxy.cut();
    let body = wait_for_status(&app, 503).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["failing"], serde_json::json!(["redis"]));
    proxy.restore();
    wait_for_status(&app, 200).await;
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
    assert_eq!(body["checks"]["database"]["status"], "down");
    assert_eq!(body["checks"]["failing"], serde_json::json!(["database"]));
    proxy.restore();
    wait_for_status(&app, 200).await;
    app.stop().await;
    db.drop_database().await;
}
