//! Error paths no other test walks: each answers a JSON error with its stable code (or, for the
//! browser's callback, the page's error redirect), never a 500, and changes nothing.

use serde_json::Value;

use crate::helpers::{query_of, spawn_app, Browser};

/// The status and the error code of a JSON error answer.
async fn error_of(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code, body)
}

#[tokio::test]
async fn disconnecting_an_unknown_platform_or_a_missing_connection_is_a_404_with_its_code() {
    let app = spawn_app().await;
    let (status, code, body) = error_of(
        app.delete("/api/v1/oauth/disconnect/myspace?store_id=shop-1&user_id=u")
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "unknown_platform"), "{body}");
    let (status, code, body) = error_of(
        app.delete("/api/v1/oauth/disconnect/google?store_id=shop-1&user_id=u")
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (404, "connection_not_found"),
        "{body}"
    );
    let (status, _, body) = error_of(app.delete("/api/v1/oauth/disconnect/google").await).await;
    assert_eq!(
        status, 400,
        "a disconnect without its store is refused: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn refreshing_an_unknown_connection_or_with_a_bad_store_is_refused_with_its_code() {
    let app = spawn_app().await;
    let (status, code, body) = error_of(
        app.post("/api/v1/oauth/refresh/google?store_id=shop-1")
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (404, "connection_not_found"),
        "{body}"
    );
    let (status, code, body) = error_of(
        app.post("/api/v1/oauth/refresh/myspace?store_id=shop-1")
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "unknown_platform"), "{body}");
    let (status, _, body) = error_of(
        app.post("/api/v1/oauth/refresh/google?store_id=%20not%20a%20store%20")
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_pages_activity_without_a_session_is_a_401_json_error() {
    let app = spawn_app().await;
    let response = reqwest::Client::new()
        .get(app.url("/dashboard/api/activity"))
        .send()
        .await
        .expect("request");
    let (status, code, body) = error_of(response).await;
    assert_eq!(status, 401, "{body}");
    assert!(!code.is_empty(), "a stable code: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_since_on_the_audit_trail_is_a_400_json_error() {
    let app = spawn_app().await;
    let (status, code, body) = error_of(
        app.get("/api/v1/audit?store_id=shop-1&since=yesterday")
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(!code.is_empty(), "a stable code: {body}");
    let ok = app
        .get("/api/v1/audit?store_id=shop-1&since=2026-01-01T00:00:00Z")
        .await;
    assert_eq!(ok.status(), 200, "a well-formed since is read");
    app.stop().await;
}

#[tokio::test]
async fn a_callback_for_an_unknown_platform_ends_on_the_pages_error_redirect() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let response = browser
        .client
        .get(app.url("/api/v1/oauth/callback/myspace?code=c&state=s"))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned();
    let query = query_of(&location);
    assert_eq!(
        query.get("connection").map(String::as_str),
        Some("error"),
        "{location}"
    );
    assert!(
        query.get("reason").is_some_and(|r| !r.is_empty()),
        "a reason: {location}"
    );
    assert!(
        !location.contains("code=c"),
        "the code stays behind: {location}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_path_that_does_not_parse_is_invalid_path_and_a_body_that_does_not_parse_is_invalid_json()
{
    let app = spawn_app().await;
    let (status, code, body) =
        error_of(app.get("/api/v1/oauth/connections/%20bad%20store%20").await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_path"), "{body}");
    let response = app
        .api
        .put(app.url("/api/v1/oauth/connections/shop-1/google/selection"))
        .bearer_auth(crate::helpers::API_KEY)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .expect("request");
    let (status, code, body) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"), "{body}");
    app.stop().await;
}
