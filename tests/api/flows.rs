//! End-to-end flows per platform against its strict simulator: connect, consent, callback, the
//! connection listed with the account, no plaintext token stored, disconnect and revocation.

use crate::helpers::{spawn_app, TestApp};

const EXPECTED_NAMES: [(&str, &str); 5] = [
    ("meta", "Sandbox Merchant"),
    ("tiktok", "Sandbox Merchant"),
    ("google", "Sandbox Merchant"),
    ("pinterest", "Sandbox Merchant"),
    ("twitter", "Sandbox Merchant"),
];

async fn assert_no_plaintext_tokens(app: &TestApp, platform: &str) {
    let stored = app.everything_stored().await;
    assert!(!stored.is_empty());
    let mut secrets = app.simulator.issued_access_tokens(platform);
    secrets.extend(app.simulator.issued_refresh_tokens(platform));
    assert!(
        !secrets.is_empty(),
        "{platform}: the simulator issued tokens"
    );
    for secret in secrets {
        assert!(
            !stored.contains(&secret),
            "{platform}: a plaintext token is stored"
        );
    }
}

async fn full_flow(platform: &str) {
    let app = spawn_app().await;
    let store = format!("store-{platform}");
    let started = std::time::Instant::now();
    let result = app.run_flow(platform, &store, true).await;
    let elapsed = started.elapsed();
    assert_eq!(
        result.get("connection").map(String::as_str),
        Some("success"),
        "{platform}: {result:?}"
    );
    assert_eq!(result.get("platform").map(String::as_str), Some(platform));
    println!("{platform}: full flow in {} ms", elapsed.as_millis());

    let listed = app.connections(&store).await;
    let connection = &listed["connections"][0];
    assert_eq!(connection["platform"], platform);
    assert_eq!(connection["status"], "CONNECTED");
    let expected = EXPECTED_NAMES
        .iter()
        .find(|(p, _)| *p == platform)
        .unwrap()
        .1;
    assert_eq!(connection["account_name"], expected);
    assert!(connection["account_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert!(connection["connected_at"].is_string());
    assert!(connection.get("access_token").is_none());

    assert_no_plaintext_tokens(&app, platform).await;

    let response = app
        .delete(&format!(
            "/api/v1/oauth/disconnect/{platform}?user_id=user-1&store_id={store}"
        ))
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    let revocations = app.simulator.revocations(platform);
    if platform == "pinterest" {
        assert_eq!(body["revocation"], "not_supported");
        assert_eq!(body["revoked_at_platform"], false);
        assert!(body["message"].as_str().unwrap().contains("Pinterest"));
        assert!(revocations.is_empty());
    } else {
        assert_eq!(body["revocation"], "revoked", "{platform}: {body}");
        assert_eq!(body["revoked_at_platform"], true);
        assert!(
            !revocations.is_empty(),
            "{platform}: the simulator saw the revocation"
        );
    }
    assert_eq!(
        app.connections(&store).await["connections"],
        serde_json::json!([])
    );
    app.stop().await;
}

#[tokio::test]
async fn meta_connects_end_to_end_and_disconnects_with_revocation() {
    full_flow("meta").await;
}

#[tokio::test]
async fn tiktok_connects_end_to_end_and_disconnects_with_revocation() {
    full_flow("tiktok").await;
}

#[tokio::test]
async fn google_connects_end_to_end_and_disconnects_with_revocation() {
    full_flow("google").await;
}

#[tokio::test]
async fn pinterest_connects_end_to_end_and_disconnect_says_it_cannot_revoke() {
    full_flow("pinterest").await;
}

#[tokio::test]
async fn x_connects_end_to_end_and_disconnects_with_revocation() {
    full_flow("twitter").await;
}
