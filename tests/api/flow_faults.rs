//! Bad input, platform faults and attacks on the flow: each ends in a clear JSON error or the error
//! redirect, and none stores anything.

use std::time::Duration;

use growth_engine::sandbox::Fault;

use crate::helpers::{
    location, query_of, spawn_app, spawn_app_with, Browser, TestApp, TestAppOptions, API_KEY,
};

async fn nothing_stored(app: &TestApp, store: &str) {
    let listed = app.connections(store).await;
    assert_eq!(
        listed["connections"],
        serde_json::json!([]),
        "nothing stored for {store}"
    );
}

fn assert_error_redirect(query: &std::collections::HashMap<String, String>, reason: &str) {
    assert_eq!(
        query.get("connection").map(String::as_str),
        Some("error"),
        "{query:?}"
    );
    assert_eq!(
        query.get("reason").map(String::as_str),
        Some(reason),
        "{query:?}"
    );
    let message = query.get("message").expect("a message");
    assert!(!message.is_empty() && message.len() < 200);
}

#[tokio::test]
async fn the_api_refuses_a_missing_or_wrong_key_with_a_json_401() {
    let app = spawn_app().await;
    for auth in [
        None,
        Some("Bearer wrong-key"),
        Some("Basic abc"),
        Some(API_KEY),
    ] {
        let mut request = app.api.get(app.url("/api/v1/oauth/connections/store-1"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(
        app.get("/api/v1/oauth/connections/store-1").await.status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_platform_is_a_404_listing_the_platforms() {
    let app = spawn_app().await;
    let response = app
        .get("/api/v1/oauth/connect/myspace?user_id=u&store_id=s")
        .await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_platform");
    assert_eq!(
        body["error"]["details"]["platforms"],
        serde_json::json!(growth_engine::platforms::BUILT_IN
            .iter()
            .map(|p| p.slug)
            .collect::<Vec<_>>())
    );
    app.stop().await;
}

#[tokio::test]
async fn missing_or_malformed_parameters_are_a_400_naming_them() {
    let app = spawn_app().await;
    for (path, named) in [
        ("/api/v1/oauth/connect/meta?store_id=s", "user_id"),
        ("/api/v1/oauth/connect/meta?user_id=u", "store_id"),
        (
            "/api/v1/oauth/connect/meta?user_id=u&store_id=has%20space",
            "store_id",
        ),
        ("/api/v1/oauth/token/meta", "store_id"),
        ("/api/v1/oauth/connections/%3Cscript%3E", "store_id"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]["code"]
                .as_str()
                .unwrap()
                .starts_with("invalid_"),
            "{path}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(named),
            "{path}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_declined_consent_ends_on_the_error_redirect_and_stores_nothing() {
    let app = spawn_app().await;
    let result = app.run_flow("google", "declining-store", false).await;
    assert_error_redirect(&result, "access_denied");
    assert_eq!(result.get("platform").map(String::as_str), Some("google"));
    nothing_stored(&app, "declining-store").await;
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let start = app.connect_url("tiktok", "replay-store").await;
    let authorize = browser.first_hop(&start).await;
    let callback = browser.consent(&authorize, true).await;
    let first = query_of(&browser.callback(&callback).await);
    assert_eq!(first["connection"], "success");
    let before = app.connections("replay-store").await;
    let second = query_of(&browser.callback(&callback).await);
    assert_error_redirect(&second, "state_invalid");
    assert_eq!(app.connections("replay-store").await, before);
    app.stop().await;
}

#[tokio::test]
async fn a_first_hop_link_works_once() {
    let app = spawn_app().await;
    let start = app.connect_url("meta", "once-store").await;
    Browser::new().first_hop(&start).await;
    let again = Browser::new().client.get(&start).send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert_error_redirect(&query_of(&location(&again)), "link_invalid");
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_state_is_refused() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let start = app.connect_url("pinterest", "tamper-store").await;
    let authorize = browser.first_hop(&start).await;
    let callback = browser.consent(&authorize, true).await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let result = query_of(&browser.callback(url.as_str()).await);
    assert_error_redirect(&result, "state_invalid");
    nothing_stored(&app, "tamper-store").await;
    app.stop().await;
}

#[tokio::test]
async fn a_state_issued_for_another_platform_is_refused() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let start = app.connect_url("google", "swap-store").await;
    let authorize = browser.first_hop(&start).await;
    let callback = browser.consent(&authorize, true).await;
    let swapped = callback.replace("/callback/google", "/callback/twitter");
    let result = query_of(&browser.callback(&swapped).await);
    assert_error_redirect(&result, "state_platform_mismatch");
    nothing_stored(&app, "swap-store").await;
    app.stop().await;
}

#[tokio::test]
async fn a_callback_finished_in_another_browser_is_refused() {
    // The attack: a flow started for the attacker's store, finished by a victim who is sent the
    // callback (or the consent link). The victim's browser lacks the binding cookie.
    let app = spawn_app().await;
    let attacker = Browser::new();
    let start = app.connect_url("meta", "attacker-store").await;
    let authorize = attacker.first_hop(&start).await;
    let victim = Browser::new();
    let callback = victim.consent(&authorize, true).await;
    let result = query_of(&victim.callback(&callback).await);
    assert_error_redirect(&result, "browser_mismatch");
    nothing_stored(&app, "attacker-store").await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let browser = Browser::new();
    let start = app.connect_url("tiktok", "slow-store").await;
    let authorize = browser.first_hop(&start).await;
    let callback = browser.consent(&authorize, true).await;
    clock.advance(chrono::Duration::minutes(11));
    let result = query_of(&browser.callback(&callback).await);
    assert_error_redirect(&result, "state_invalid");
    nothing_stored(&app, "slow-store").await;
    app.stop().await;
}

#[tokio::test]
async fn a_callback_without_state_or_code_is_refused_without_a_500() {
    let app = spawn_app().await;
    for query in ["", "?code=abc", "?state=unknown", "?error=server_error"] {
        let response = app
            .api
            .get(app.url(&format!("/api/v1/oauth/callback/meta{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{query}");
        assert_error_redirect(&query_of(&location(&response)), "state_invalid");
    }
    app.stop().await;
}

async fn flow_against_a_faulty_token_endpoint(
    fault: Fault,
    timeout_secs: Option<&str>,
) -> std::collections::HashMap<String, String> {
    let mut options = TestAppOptions::default();
    if let Some(t) = timeout_secs {
        options.extra_env.push(("HTTP_TIMEOUT_SECONDS", t.into()));
    }
    let app = spawn_app_with(options).await;
    app.simulator.set_fault("google", Some(fault));
    let result = app.run_flow("google", "faulty-store", true).await;
    nothing_stored(&app, "faulty-store").await;
    let stored = app.everything_stored().await;
    assert!(
        !stored.contains("faulty-store"),
        "no half-written connection"
    );
    app.stop().await;
    result
}

#[tokio::test]
async fn a_token_endpoint_answering_500_ends_on_the_error_redirect() {
    let result = flow_against_a_faulty_token_endpoint(Fault::Status(500), None).await;
    assert_error_redirect(&result, "platform_unavailable");
}

#[tokio::test]
async fn a_token_endpoint_answering_garbage_ends_on_the_error_redirect() {
    let result = flow_against_a_faulty_token_endpoint(Fault::Garbage, None).await;
    assert_error_redirect(&result, "platform_bad_response");
}

#[tokio::test]
async fn a_token_endpoint_slower_than_the_timeout_ends_on_the_error_redirect() {
    let started = std::time::Instant::now();
    let result =
        flow_against_a_faulty_token_endpoint(Fault::Delay(Duration::from_secs(3)), Some("1")).await;
    assert_error_redirect(&result, "platform_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the call was cut at the timeout"
    );
}

#[tokio::test]
async fn a_partial_grant_stays_connected_and_records_what_is_missing() {
    let app = spawn_app().await;
    app.simulator.set_granted_scopes_override(
        "twitter",
        Some(vec![
            "tweet.read".into(),
            "users.read".into(),
            "offline.access".into(),
        ]),
    );
    let result = app.run_flow("twitter", "partial-store", true).await;
    assert_eq!(result["connection"], "success");
    let connection = &app.connections("partial-store").await["connections"][0];
    assert_eq!(connection["status"], "CONNECTED");
    assert_eq!(
        connection["missing_scopes"],
        serde_json::json!(["tweet.write", "media.write"])
    );
    app.stop().await;
}

#[tokio::test]
async fn meta_keeps_pages_in_metadata_page_tokens_sealed_and_the_long_lived_expiry() {
    let app = spawn_app().await;
    let result = app.run_flow("meta", "meta-store", true).await;
    assert_eq!(result["connection"], "success");
    let connection = &app.connections("meta-store").await["connections"][0];
    let pages = connection["metadata"]["pages"].as_array().unwrap();
    assert!(!pages.is_empty());
    assert!(pages.iter().all(|p| p.get("access_token").is_none()));
    assert!(!connection["metadata"]["instagram_business_accounts"]
        .as_array()
        .unwrap()
        .is_empty());
    let expires: chrono::DateTime<chrono::Utc> =
        connection["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_days();
    assert!(
        (58..=60).contains(&days),
        "long-lived token recorded with its ~60-day expiry, got {days}"
    );
    let grants: Vec<_> = app
        .simulator
        .token_requests("meta")
        .iter()
        .map(|r| r.grant_type.clone())
        .collect();
    assert!(
        grants.contains(&"fb_exchange_token".to_owned()),
        "{grants:?}"
    );
    let stored = app.everything_stored().await;
    let services = &app.services;
    let row = services
        .store
        .get_connection(
            &"meta-store".parse_store(),
            &growth_engine::domain::PlatformId::parse("meta").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let tokens = services.core.open(&row).unwrap();
    assert!(
        tokens.extra.keys().any(|k| k.starts_with("page:")),
        "page tokens live in the sealed set"
    );
    for token in tokens.extra.values() {
        use secrecy::ExposeSecret;
        assert!(!stored.contains(token.expose_secret()));
    }
    app.stop().await;
}

trait ParseStore {
    fn parse_store(&self) -> growth_engine::domain::StoreId;
}

impl ParseStore for &str {
    fn parse_store(&self) -> growth_engine::domain::StoreId {
        growth_engine::domain::StoreId::parse(*self).unwrap()
    }
}

#[tokio::test]
async fn the_built_in_sandbox_completes_a_flow_on_our_own_origin() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let platforms: serde_json::Value = app
        .get("/api/v1/oauth/platforms")
        .await
        .json()
        .await
        .unwrap();
    assert!(platforms["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["sandbox"] == true));
    let browser = Browser::new();
    let start = app.connect_url("twitter", "sandbox-store").await;
    let authorize = browser.first_hop(&start).await;
    assert!(
        authorize.starts_with(&format!("{}/sandbox/twitter/", app.address)),
        "{authorize}"
    );
    let page = browser
        .client
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.to_lowercase().contains("sandbox"),
        "the consent screen says it is a sandbox"
    );
    let result = browser
        .complete_flow(&app.connect_url("twitter", "sandbox-store").await, true)
        .await;
    assert_eq!(result["connection"], "success");
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_is_never_served_in_production_shape() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        extra_env: vec![("SANDBOX", "false".into())],
        ..Default::default()
    })
    .await;
    let response = app
        .api
        .get(app.url("/sandbox/meta/v25.0/dialog/oauth"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let platforms: serde_json::Value = app
        .get("/api/v1/oauth/platforms")
        .await
        .json()
        .await
        .unwrap();
    assert!(platforms["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["configured"] == false));
    let refused = app
        .get("/api/v1/oauth/connect/meta?user_id=u&store_id=s")
        .await;
    assert_eq!(refused.status(), 409);
    app.stop().await;
}
