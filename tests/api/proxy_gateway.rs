//! The authenticated proxy to the platforms' APIs (`/api/v1/proxy/{platform}/{*path}`): each
//! platform's identity endpoint through it, what crosses it (credentials, headers, cookies), paths
//! that could leave the API base, one refresh and one retry on a dead token, dead grants, broken
//! connections, stalled platforms, throttling and size limits.
//!
//! The simulators' user-info endpoints stand in for the APIs (they check bearer tokens and answer
//! dead ones in each platform's shape); a small echo server stands in where a test needs to see
//! what arrived or to answer something the simulators do not.
//
// merge: once the sandbox crate serves API routes (`growth_engine_sandbox::api_base`), the identity
// calls below can target those instead of the user-info endpoints.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{env_prefix, spawn_app_with, TestApp, TestAppOptions, API_KEY};

/// Each platform's identity (or first listing) call, as a path under its API base; the built-in
/// sandbox serves each platform's API under `{API_URL}/sandbox/{platform}/api/{version}/`.
const IDENTITY: [(&str, &str); 5] = [
    ("meta", "me"),
    ("tiktok", "user/info/?fields=open_id,display_name"),
    ("google", "customers:listAccessibleCustomers"),
    ("pinterest", "user_account"),
    ("twitter", "users/me"),
];

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn api_url_var(platform: &str) -> &'static str {
    leak(format!("{}_API_URL", env_prefix(platform)))
}

/// An app whose five platforms are served by its built-in sandbox, which also stands in for their
/// APIs; the app's clock is `clock` (the sandbox keeps real time).
async fn spawn_sandboxed(clock: Option<growth_engine::clock::ManualClock>) -> TestApp {
    spawn_app_with(TestAppOptions {
        simulated: vec![],
        clock,
        ..Default::default()
    })
    .await
}

/// The built-in sandbox's simulator.
fn sandbox(app: &TestApp) -> growth_engine::sandbox::Simulator {
    app.services
        .sandbox
        .clone()
        .expect("the sandbox is on in the tests")
}

/// An app whose `platform` API is the server at `api` (its OAuth stays the standalone simulator).
async fn spawn_with_api(
    platform: &str,
    api: String,
    extra: Vec<(&'static str, String)>,
) -> TestApp {
    let mut extra_env = vec![(api_url_var(platform), api)];
    extra_env.extend(extra);
    spawn_app_with(TestAppOptions {
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

fn proxy_request(
    app: &TestApp,
    method: reqwest::Method,
    platform: &str,
    path: &str,
    store: &str,
) -> reqwest::RequestBuilder {
    app.api
        .request(method, app.url(&format!("/api/v1/proxy/{platform}/{path}")))
        .bearer_auth(API_KEY)
        .header("Growth-Engine-Store", store)
}

async fn proxy_get(app: &TestApp, platform: &str, path: &str, store: &str) -> reqwest::Response {
    proxy_request(app, reqwest::Method::GET, platform, path, store)
        .send()
        .await
        .expect("request")
}

fn refreshes(sim: &growth_engine::sandbox::Simulator, platform: &str) -> usize {
    sim.token_requests(platform)
        .iter()
        .filter(|r| r.grant_type == "refresh_token" || r.grant_type == "fb_exchange_token")
        .count()
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

// ---- a stand-in API that shows what reached it -------------------------------------------------

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body_len: usize,
}

#[derive(Clone, Default)]
struct Echo {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// What it answers to a listing of accounts (`.../accounts`), once set.
    accounts: Arc<Mutex<Option<serde_json::Value>>>,
}

impl Echo {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn echo_handler(State(echo): State<Echo>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body_len = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.len())
        .unwrap_or(0);
    echo.seen.lock().unwrap().push(Seen {
        body_len,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
    });
    let last = parts.uri.path().rsplit('/').next().unwrap_or_default();
    if last == "accounts" {
        if let Some(accounts) = echo.accounts.lock().unwrap().clone() {
            return json_response(StatusCode::OK, accounts);
        }
    }
    match last {
        // 64 KiB in 1 KiB chunks, no Content-Length.
        "big" => {
            let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1024])));
            Response::new(Body::from_stream(futures::stream::iter(chunks)))
        }
        "big-announced" => Response::new(Body::from(vec![b'x'; 8192])),
        "dead" => json_response(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 2, "message": "Authentication failed."}),
        ),
        "scope" => json_response(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 3, "message": "Your token does not have sufficient permissions."}),
        ),
        "throttled" => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
                {"errors": [{"details": {"quotaErrorDetails": {"retryDelay": "29.5s"}}}]}
            ]}}),
        ),
        _ => {
            let mut response = json_response(StatusCode::OK, serde_json::json!({"ok": true}));
            let headers = response.headers_mut();
            headers.insert(
                "set-cookie",
                "platform_session=abc; Path=/".parse().unwrap(),
            );
            headers.insert("x-rate-limit-remaining", "42".parse().unwrap());
            headers.insert("x-platform-request-id", "rid-1".parse().unwrap());
            response
        }
    }
}

async fn echo_server() -> (String, Echo) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let echo = Echo::default();
    let router = Router::new()
        .fallback(echo_handler)
        .with_state(echo.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (address, echo)
}

/// A server that reads each request's head and closes the connection without answering; counts
/// the requests that reached it.
async fn dropping_server() -> (String, Arc<AtomicUsize>) {
    head_reading_server(None).await
}

/// A server that reads each request's head, writes `answer` (perhaps nothing, perhaps part of an
/// answer) and then holds the connection without another byte; counts the requests that reached it.
async fn stalling_server(answer: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    head_reading_server(Some(answer)).await
}

/// Reads each request's head, counts it, then closes the connection (`None`) or writes `stall`'s
/// bytes and holds it open for a minute.
async fn head_reading_server(stall: Option<&'static [u8]>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = stall {
                    let _ = socket.write_all(answer).await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    (address, count)
}

/// Sends a request line exactly as written (an HTTP client would normalise `..` away).
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {API_KEY}\r\n\
         Growth-Engine-Store: shop\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

// ---- the tests ------------------------------------------------------------------------------

#[tokio::test]
async fn each_platforms_identity_endpoint_answers_through_the_proxy_with_our_token() {
    let app = spawn_sandboxed(None).await;
    for (platform, path) in IDENTITY {
        connect(&app, platform, "shop").await;
        let response = proxy_get(&app, platform, path, "shop").await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        // The simulators answer only a live bearer token they issued: ours, not the API key.
        assert_eq!(status, 200, "{platform}: {body}");
        assert!(
            body.get("error").is_none_or(|e| e["code"] == "ok"),
            "{platform}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_platform_gets_our_token_and_none_of_the_callers_credentials_or_hop_headers() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("pinterest", format!("{api}/v5/"), vec![]).await;
    connect(&app, "pinterest", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    let response = proxy_request(
        &app,
        reqwest::Method::GET,
        "pinterest",
        "boards?page_size=5",
        "shop",
    )
    .header("Cookie", "dashboard_session=secret")
    .header("Connection", "x-hop-secret")
    .header("X-Hop-Secret", "1")
    .header("Proxy-Authorization", "Basic c2VjcmV0")
    .header("X-Forwarded-For", "10.0.0.1")
    .header("Accept", "application/json")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "Set-Cookie passed back"
    );
    assert_eq!(response.headers()["x-platform-request-id"], "rid-1");
    assert_eq!(response.headers()["x-rate-limit-remaining"], "42");

    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    let call = &seen[0];
    assert_eq!(call.path, "/v5/boards");
    assert_eq!(call.query.as_deref(), Some("page_size=5"));
    let token = app.simulator.issued_access_tokens("pinterest");
    assert_eq!(
        call.headers["authorization"],
        format!("Bearer {}", token.last().unwrap()).as_str()
    );
    for name in [
        "cookie",
        "x-hop-secret",
        "proxy-authorization",
        "x-forwarded-for",
        "growth-engine-store",
    ] {
        assert!(call.headers.get(name).is_none(), "{name} was forwarded");
    }
    assert!(!format!("{:?}", call.headers).contains(API_KEY));
    assert_eq!(call.headers["accept"], "application/json");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("proxy_rate_limit_remaining{platform=\"pinterest\"} 42"),
        "{metrics}"
    );
    assert!(
        metrics.contains("proxy_requests_total{platform=\"pinterest\",status_class=\"2xx\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn paths_that_could_leave_the_api_base_are_refused_before_any_call() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("pinterest", format!("{api}/v5/"), vec![]).await;
    connect(&app, "pinterest", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    for path in [
        "../admin",
        "boards/../../admin",
        "%2e%2e/admin",
        "%2E%2e%2fadmin",
        "boards%2f..%2fadmin",
        "/evil.example/x",
        "@evil.example/x",
        "boards@evil.example",
        "http://evil.example/x",
        "https:%2f%2fevil.example",
        "boards%5c..%5cadmin",
        "%252e%252e/admin",
    ] {
        let (status, text) = raw_get(&app, &format!("/api/v1/proxy/pinterest/{path}")).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("invalid_proxy_path"), "{path}: {text}");
    }
    let (status, _) = raw_get(&app, "/api/v1/proxy/pinterest/boards\\..\\admin").await;
    assert_eq!(status, 400, "a raw backslash");
    assert!(
        echo.seen().is_empty(),
        "a call reached the API: {:?}",
        echo.seen()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_sent_again() {
    // The app's clock stands still, so it believes the token fresh; the sandbox keeps real time
    // and expires it after a second.
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_sandboxed(Some(clock)).await;
    let sim = sandbox(&app);
    sim.set_access_token_ttl("tiktok", 1);
    connect(&app, "tiktok", "shop").await;
    let token = sim.issued_access_tokens("tiktok").last().unwrap().clone();
    crate::helpers::wait_until(
        "the platform expires the token",
        Duration::from_secs(10),
        async || !crate::faults_refresh::simulator_accepts(&app.address, "tiktok", &token).await,
    )
    .await;
    let before = refreshes(&sim, "tiktok");
    let response = proxy_get(&app, "tiktok", "user/info/?fields=open_id", "shop").await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(refreshes(&sim, "tiktok"), before + 1, "exactly one refresh");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("proxy_retries_total{platform=\"tiktok\",reason=\"token_refreshed\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_still_dead_after_the_refresh_is_returned_as_it_came() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("pinterest", format!("{api}/v5/"), vec![]).await;
    connect(&app, "pinterest", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    let before = app
        .simulator
        .token_requests("pinterest")
        .iter()
        .filter(|r| r.grant_type == "refresh_token")
        .count();
    let response = proxy_get(&app, "pinterest", "dead", "shop").await;
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 2, "the platform's own answer: {body}");
    let after = app
        .simulator
        .token_requests("pinterest")
        .iter()
        .filter(|r| r.grant_type == "refresh_token")
        .count();
    assert_eq!(after, before + 1, "one forced refresh");
    assert_eq!(echo.seen().len(), 2, "one retry, no more");
    // The retry carried the new token.
    let tokens = app.simulator.issued_access_tokens("pinterest");
    assert_eq!(
        echo.seen()[1].headers["authorization"],
        format!("Bearer {}", tokens.last().unwrap()).as_str()
    );

    // A missing scope is 401 too, but no refresh can fix it.
    let response = proxy_get(&app, "pinterest", "scope", "shop").await;
    assert_eq!(response.status(), 401);
    assert_eq!(echo.seen().len(), 3, "not retried");
    assert_eq!(
        app.simulator
            .token_requests("pinterest")
            .iter()
            .filter(|r| r.grant_type == "refresh_token")
            .count(),
        after,
        "no refresh for a missing scope"
    );
    app.stop().await;
}

/// Issue 17 item 5: dead-token answers force at most one refresh per connection per window;
/// the calls after it in the window reuse its result, and once the window is over one more
/// forced refresh may happen. The window is read from the connection's row (its last renewal),
/// so it holds whichever replica answers.
#[tokio::test]
async fn dead_token_answers_force_at_most_one_refresh_per_window() {
    let (api, echo) = echo_server().await;
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![(api_url_var("pinterest"), format!("{api}/v5/"))],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    connect(&app, "pinterest", "shop").await;
    echo.clear();
    let rotations = |app: &TestApp| {
        app.simulator
            .token_requests("pinterest")
            .iter()
            .filter(|r| r.grant_type == "refresh_token")
            .count()
    };
    let before = rotations(&app);
    for _ in 0..10 {
        let response = proxy_get(&app, "pinterest", "dead", "shop").await;
        assert_eq!(response.status(), 401, "the platform's answer stands");
    }
    assert_eq!(
        rotations(&app),
        before + 1,
        "ten dead-token answers, one forced refresh"
    );

    // After the window, a dead-token answer may force a refresh again (once).
    clock.advance(chrono::Duration::seconds(31));
    for _ in 0..3 {
        let response = proxy_get(&app, "pinterest", "dead", "shop").await;
        assert_eq!(response.status(), 401);
    }
    assert_eq!(rotations(&app), before + 2, "one more after the window");
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_grant_ends_as_a_reconnect_answer_and_marks_the_connection() {
    let app = spawn_sandboxed(None).await;
    connect(&app, "google", "shop").await;
    sandbox(&app).revoke_all_grants("google");
    let response = proxy_get(&app, "google", "customers:listAccessibleCustomers", "shop").await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["reconnect"], true, "{body}");
    assert_eq!(body["error"]["details"]["status"], "REVOKED", "{body}");
    let connections = app.connections("shop").await;
    assert_eq!(connections["connections"][0]["status"], "REVOKED");

    // Meta has no refresh: its expired token cannot be exchanged, the connection expires.
    connect(&app, "meta", "shop").await;
    sandbox(&app).revoke_all_grants("meta");
    let response = proxy_get(&app, "meta", "me", "shop").await;
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (409, "reconnect_required"), "meta");
    app.stop().await;
}

#[tokio::test]
async fn a_post_is_never_sent_again_after_a_broken_connection_but_a_get_is() {
    let (api, count) = dropping_server().await;
    let app = spawn_with_api("twitter", format!("{api}/2/"), vec![]).await;
    connect(&app, "twitter", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    count.store(0, Ordering::SeqCst);
    let response = proxy_request(&app, reqwest::Method::POST, "twitter", "tweets", "shop")
        .json(&serde_json::json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (502, "platform_unreachable"));
    assert_eq!(count.load(Ordering::SeqCst), 1, "the POST was sent once");

    let response = proxy_get(&app, "twitter", "users/me", "shop").await;
    assert_eq!(response.status(), 502);
    assert_eq!(count.load(Ordering::SeqCst), 3, "the GET was sent twice");
    app.stop().await;
}

#[tokio::test]
async fn a_platform_that_stalls_is_given_up_after_the_timeout_and_not_asked_again() {
    let timeout = ("HTTP_TIMEOUT_SECONDS", "1".to_owned());
    let (api, count) = stalling_server(b"").await;
    let app = spawn_with_api("twitter", format!("{api}/2/"), vec![timeout.clone()]).await;
    connect(&app, "twitter", "shop").await;
    count.store(0, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let response = proxy_get(&app, "twitter", "users/me", "shop").await;
    let waited = started.elapsed();
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (502, "platform_unreachable"));
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "given up after the 1 s timeout: {waited:?}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "a slow platform is not a broken connection: the GET was not sent again"
    );
    app.stop().await;

    // An answer whose body stops midway is cut once nothing has come for the timeout: the caller
    // gets the status and then a broken body, never a hang.
    let (api, _) = stalling_server(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"data\":",
    )
    .await;
    let app = spawn_with_api("twitter", format!("{api}/2/"), vec![timeout]).await;
    connect(&app, "twitter", "shop").await;
    let response = proxy_get(&app, "twitter", "users/me", "shop").await;
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .expect("the stalled body is cut after the platform timeout, not held open");
    assert!(body.is_err(), "a cut body is not a complete one: {body:?}");
    app.stop().await;
}

#[tokio::test]
async fn answers_over_the_size_limit_are_refused_or_cut() {
    let (api, _echo) = echo_server().await;
    let app = spawn_with_api(
        "pinterest",
        format!("{api}/v5/"),
        vec![
            ("PROXY_MAX_RESPONSE_BYTES", "4096".into()),
            ("PROXY_MAX_BODY_BYTES", "2048".into()),
        ],
    )
    .await;
    connect(&app, "pinterest", "shop").await;
    // Announced too large: refused before anything is sent back.
    let response = proxy_get(&app, "pinterest", "big-announced", "shop").await;
    let (status, code) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (502, "platform_response_too_large")
    );
    // Streamed: the status is sent, then the body is cut and the connection aborted.
    let response = proxy_get(&app, "pinterest", "big", "shop").await;
    assert_eq!(response.status(), 200);
    // The abort shows as a broken body, or at most the limit got through.
    let passed = response.bytes().await.map(|b| b.len()).unwrap_or(0);
    assert!(passed <= 4096, "{passed} bytes passed");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("proxy_responses_cut_total{platform=\"pinterest\"} 2"),
        "{metrics}"
    );
    // A request body over its limit never leaves.
    let response = proxy_request(&app, reqwest::Method::POST, "pinterest", "pins", "shop")
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (413, "request_too_large"));
    app.stop().await;
}

#[tokio::test]
async fn a_throttled_answer_comes_back_with_a_retry_after() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api(
        "google",
        format!("{api}/v26/"),
        vec![
            ("GOOGLE_ADS_DEVELOPER_TOKEN", "dev-token-123".into()),
            ("GOOGLE_ADS_LOGIN_CUSTOMER_ID", "123-456-7890".into()),
        ],
    )
    .await;
    connect(&app, "google", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    let response = proxy_get(&app, "google", "customers/1/throttled", "shop").await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["retry-after"],
        "30",
        "from Google's retryDelay"
    );
    assert_eq!(echo.seen().len(), 1, "never retried");
    let call = &echo.seen()[0];
    assert_eq!(call.headers["developer-token"], "dev-token-123");
    assert_eq!(call.headers["login-customer-id"], "1234567890");
    assert_eq!(call.method, "GET");
    app.stop().await;
}

#[tokio::test]
async fn a_meta_page_is_called_with_its_page_token_and_proof() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("meta", format!("{api}/v25.0/"), vec![]).await;
    connect(&app, "meta", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    // The page tokens the simulator handed out, read as a Graph client would.
    let user_token = app.simulator.issued_access_tokens("meta");
    let accounts: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/sandbox/meta/v25.0/me/accounts",
            app.simulator_address
        ))
        .bearer_auth(user_token.last().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = &accounts["data"][0];
    let page_id = page["id"].as_str().expect("a page");
    let page_token = page["access_token"].as_str().unwrap();
    // The stand-in lists those pages, so that discovery records them: the proxy reaches a page
    // only through the connection's assets.
    *echo.accounts.lock().unwrap() = Some(accounts.clone());
    let refreshed = app
        .post("/api/v1/oauth/connections/shop/meta/assets/refresh")
        .await;
    assert_eq!(refreshed.status(), 200);
    echo.clear();

    let response = proxy_request(
        &app,
        reqwest::Method::GET,
        "meta",
        &format!("{page_id}/feed"),
        "shop",
    )
    .header("Growth-Engine-Account", page_id)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let call = &echo.seen()[0];
    assert_eq!(
        call.headers["authorization"],
        format!("Bearer {page_token}").as_str()
    );
    // The proof is of the page token that was sent, keyed with the app secret, as Graph checks it
    // (computed here by Python's standard library).
    let (_, app_secret) = crate::helpers::credentials("meta");
    let query = call.query.clone().unwrap_or_default();
    assert_eq!(
        query,
        format!(
            "appsecret_proof={}",
            crate::helpers::python_hmac_sha256_hex(app_secret.as_bytes(), page_token.as_bytes())
        )
    );

    let response = proxy_request(&app, reqwest::Method::GET, "meta", "me", "shop")
        .header("Growth-Engine-Account", "404404")
        .send()
        .await
        .unwrap();
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (404, "account_not_found"));
    app.stop().await;
}

#[tokio::test]
async fn bad_calls_get_json_errors() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("pinterest", format!("{api}/v5/"), vec![]).await;
    let response = app
        .api
        .get(app.url("/api/v1/proxy/pinterest/user_account"))
        .header("Growth-Engine-Store", "shop")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (401, "unauthorized".into()));
    let response = proxy_get(&app, "myspace", "me", "shop").await;
    assert_eq!(error_code(response).await.0, 404);
    let response = app
        .api
        .get(app.url("/api/v1/proxy/pinterest/user_account"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (400, "store_header_required".into())
    );
    let response = proxy_get(&app, "pinterest", "user_account", "bad store!").await;
    assert_eq!(error_code(response).await, (400, "invalid_store_id".into()));
    let response = proxy_get(&app, "pinterest", "user_account", "nobody").await;
    assert_eq!(
        error_code(response).await,
        (404, "connection_not_found".into())
    );
    assert!(echo.seen().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bodies_beyond_the_apis_own_limit_reach_the_platform_whole() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("tiktok", format!("{api}/v2/"), vec![]).await;
    connect(&app, "tiktok", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    // 200 KiB: kept in memory (it could be sent again); 3 MiB: streamed, with its length.
    for size in [200 * 1024, 3 * 1024 * 1024] {
        let response = proxy_request(
            &app,
            reqwest::Method::PUT,
            "tiktok",
            "post/publish/upload/",
            "shop",
        )
        .body(vec![b'v'; size])
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{size} bytes");
        let seen = echo.seen();
        let call = seen.last().unwrap();
        assert_eq!(call.method, "PUT");
        assert_eq!(call.body_len, size);
    }
    assert_eq!(
        echo.seen()[1].headers["content-length"],
        (3 * 1024 * 1024).to_string().as_str(),
        "a streamed body keeps its announced length"
    );

    // A POST without a body says so (some front ends answer 411 otherwise); a call without an
    // Accept gets an HTTP client's default.
    let response = proxy_request(
        &app,
        reqwest::Method::POST,
        "tiktok",
        "post/publish/status/",
        "shop",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let seen = echo.seen();
    let call = seen.last().unwrap();
    assert_eq!((call.method.as_str(), call.body_len), ("POST", 0));
    assert_eq!(call.headers["content-length"], "0");
    assert_eq!(call.headers["accept"], "*/*");
    app.stop().await;
}

#[tokio::test]
async fn credential_parameters_never_reach_the_platform_however_their_names_are_encoded() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("pinterest", format!("{api}/v5/"), vec![]).await;
    connect(&app, "pinterest", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    // Sent as written: an HTTP client could normalise the escapes.
    let (status, text) = raw_get(
        &app,
        "/api/v1/proxy/pinterest/boards?access%5Ftoken=stolen&appsecret%5fproof=forged\
         &%61ccess_token=a&ACCESS_TOKEN=b&page_size=5",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].query.as_deref(), Some("page_size=5"));
    app.stop().await;
}

#[tokio::test]
async fn our_request_id_stays_behind_and_the_caller_still_gets_it() {
    let (api, echo) = echo_server().await;
    let app = spawn_with_api("pinterest", format!("{api}/v5/"), vec![]).await;
    connect(&app, "pinterest", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    // One id made by the service, one the caller chose (the service adopts it as its own).
    let made = proxy_get(&app, "pinterest", "boards", "shop").await;
    assert_eq!(made.status(), 200);
    assert!(made.headers().contains_key("x-request-id"));
    let chosen = proxy_request(&app, reqwest::Method::GET, "pinterest", "boards", "shop")
        .header("X-Request-Id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 200);
    assert_eq!(chosen.headers()["x-request-id"], "caller-chosen-id");
    let seen = echo.seen();
    assert_eq!(seen.len(), 2);
    for call in &seen {
        assert!(
            call.headers.get("x-request-id").is_none(),
            "our request id was forwarded: {:?}",
            call.headers
        );
    }
    app.stop().await;
}

/// `size` bytes in pieces of `piece` bytes, one every `every`: an upload that keeps moving.
fn paced_body(size: usize, piece: usize, every: Duration) -> reqwest::Body {
    let pieces = size.div_ceil(piece);
    let stream = futures::stream::unfold(0usize, move |n| async move {
        if n == pieces {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(every).await;
        }
        let len = piece.min(size - n * piece);
        Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'u'; len])), n + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn a_slow_but_steady_upload_longer_than_the_timeout_reaches_the_platform() {
    let (api, echo) = echo_server().await;
    let timeout = ("HTTP_TIMEOUT_SECONDS", "1".to_owned());
    let app = spawn_with_api("tiktok", format!("{api}/v2/"), vec![timeout]).await;
    connect(&app, "tiktok", "shop").await;
    // Asset discovery at connect called the stand-in too: count only what follows.
    echo.clear();
    // 1.5 MiB (streamed, not buffered) in 64 KiB pieces every 125 ms: about 3 s in all, three
    // times the platform timeout, never pausing for long.
    let size = 3 * 512 * 1024;
    let started = std::time::Instant::now();
    let response = proxy_request(
        &app,
        reqwest::Method::PUT,
        "tiktok",
        "post/publish/upload/",
        "shop",
    )
    .header("content-length", size.to_string())
    .body(paced_body(size, 64 * 1024, Duration::from_millis(125)))
    .send()
    .await
    .unwrap();
    let took = started.elapsed();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "after {took:?}: {text}");
    assert!(took > Duration::from_secs(2), "the upload took {took:?}");
    let seen = echo.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body_len, size,
        "the whole body reached the platform"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_is_cut_after_the_timeout_as_the_callers_doing() {
    let (api, echo) = echo_server().await;
    let timeout = ("HTTP_TIMEOUT_SECONDS", "1".to_owned());
    let app = spawn_with_api("tiktok", format!("{api}/v2/"), vec![timeout]).await;
    connect(&app, "tiktok", "shop").await;
    echo.clear();
    // Announces 2 MiB, sends 1.25 MiB (streamed on to the platform), then nothing more.
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "PUT /api/v1/proxy/tiktok/post/publish/upload/ HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {API_KEY}\r\nGrowth-Engine-Store: shop\r\n\
         Content-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'u'; 1280 * 1024]).await.unwrap();
    let stalled = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !String::from_utf8_lossy(&answer).contains("request_body_timeout") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(read.is_ok(), "no answer 10 s into the stall: {text:?}");
    let waited = stalled.elapsed();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_body_timeout"), "{text}");
    assert!(
        waited < Duration::from_secs(4),
        "cut {waited:?} into the stall"
    );
    app.stop().await;
}

/// Issue 17 item 8: the proxy's token memo is cleared by a disconnect on every replica, through
/// the listing cache's announcements: the replica that disconnected refuses the next call at once,
/// and another replica (same database and Redis) well before the memo's own 5 s would run out.
#[tokio::test]
async fn a_disconnect_clears_the_proxy_memo_on_every_replica() {
    let (api, _echo) = echo_server().await;
    let key = growth_engine::vault::Key::generate().to_base64();
    let a = spawn_with_api(
        "pinterest",
        api.clone(),
        vec![("TOKEN_ENCRYPTION_KEY", key.clone())],
    )
    .await;
    let b = spawn_with_api(
        "pinterest",
        api,
        vec![
            ("TOKEN_ENCRYPTION_KEY", key),
            ("DATABASE_URL", a.database.as_ref().unwrap().url.clone()),
            ("REDIS_KEY_PREFIX", a.redis_prefix.clone().unwrap()),
        ],
    )
    .await;
    connect(&a, "pinterest", "memo-shop").await;
    // Both replicas proxy a call: each remembers the token.
    assert_eq!(
        proxy_get(&a, "pinterest", "user_account", "memo-shop")
            .await
            .status(),
        200
    );
    assert_eq!(
        proxy_get(&b, "pinterest", "user_account", "memo-shop")
            .await
            .status(),
        200
    );
    let gone = a
        .api
        .delete(a.url("/api/v1/oauth/disconnect/pinterest?store_id=memo-shop&user_id=user-1"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.status());
    // The replica that disconnected: at once.
    let (status, code) =
        error_code(proxy_get(&a, "pinterest", "user_account", "memo-shop").await).await;
    assert!(
        status == 404 || status == 409,
        "the disconnected token was still used: {status} {code}"
    );
    // The other replica: as soon as the announcement arrives, well within the memo's 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let status = proxy_get(&b, "pinterest", "user_account", "memo-shop")
            .await
            .status()
            .as_u16();
        if status == 404 || status == 409 {
            break;
        }
        assert_eq!(status, 200, "unexpected answer");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other replica went on proxying with the disconnected connection's token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_platforms_redirect_is_passed_back_to_the_caller_not_followed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // X's API, answering one path with a redirect to another that counts its callers.
    let followed = Arc::new(AtomicUsize::new(0));
    let counted = followed.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/2/", listener.local_addr().unwrap());
    let target = format!("{api}elsewhere");
    let upstream = axum::Router::new()
        .route(
            "/2/users/me",
            axum::routing::get(|| async {
                axum::Json(
                    serde_json::json!({ "data": { "id": "1", "name": "X", "username": "x" } }),
                )
            }),
        )
        .route(
            "/2/moved",
            axum::routing::get(move || {
                let target = target.clone();
                async move {
                    (
                        axum::http::StatusCode::FOUND,
                        [(axum::http::header::LOCATION, target)],
                        "moved",
                    )
                }
            }),
        )
        .route(
            "/2/elsewhere",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { "followed" }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    let app = spawn_with_api("twitter", api.clone(), vec![]).await;
    connect(&app, "twitter", "shop").await;
    let response = proxy_get(&app, "twitter", "moved", "shop").await;
    assert_eq!(response.status(), 302, "the platform's answer, as it was");
    assert_eq!(
        response.headers()[reqwest::header::LOCATION],
        format!("{api}elsewhere").as_str()
    );
    assert_eq!(response.text().await.unwrap(), "moved");
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the proxy never followed it"
    );
    app.stop().await;
}
