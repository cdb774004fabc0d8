//! Junk at the perimeter: unauthenticated and malformed requests must not cost memory nor spend a
//! store's allowance, the rate-limit tables stay under their cap, slow clients are cut off, and a
//! platform cannot make us buffer an unbounded answer.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use growth_engine::http::extract::ApiKeys;
use growth_engine::http::perimeter::{self, FlowRateLimit, Perimeter, RequestLimits};
use growth_engine::http::{serve, ServerTimeouts};
use secrecy::SecretString;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{spawn_app, spawn_app_with, Browser, TestAppOptions, API_KEY};

/// An id of 60,000 characters: as long as an id can be and still fit in a URL hyper accepts (it
/// answers 414 by itself past 64 KB), so it reaches our code.
fn long_id() -> String {
    "a".repeat(60_000)
}

async fn json_error(response: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body: Value = response.json().await.expect("a JSON error body");
    (status, body)
}

#[tokio::test]
async fn unauthenticated_connects_never_spend_a_stores_allowance() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("RATE_LIMIT_PER_MINUTE", "3".into())],
        ..Default::default()
    })
    .await;
    let connect = "/api/v1/oauth/connect/google?user_id=u&store_id=shop-1";
    for i in 0..1_000 {
        let mut request = app.api.get(app.url(connect));
        if i % 2 == 1 {
            request = request.bearer_auth("not-the-key");
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "request {i}");
        if i % 100 == 0 {
            let (_, body) = json_error(response).await;
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    // The store's whole allowance is still there for its real caller, and then it runs out.
    for _ in 0..3 {
        assert_eq!(app.get(connect).await.status(), 200);
    }
    assert_eq!(app.get(connect).await.status(), 429);
    app.stop().await;
}

#[tokio::test]
async fn long_or_invalid_ids_are_a_400_naming_them_and_a_401_without_a_key() {
    let app = spawn_app().await;
    let long = long_id();
    let cases = [
        (
            format!("/api/v1/oauth/connect/google?user_id=u&store_id={long}"),
            "store_id",
        ),
        (
            format!("/api/v1/oauth/connect/google?user_id={long}&store_id=s"),
            "user_id",
        ),
        (
            "/api/v1/oauth/connect/google?user_id=u&store_id=a%0Ab".to_owned(),
            "store_id",
        ),
        (
            format!("/api/v1/oauth/connect/{long}?user_id=u&store_id=s"),
            "platform",
        ),
        (
            "/api/v1/oauth/connect/g%C3%B6ogle?user_id=u&store_id=s".to_owned(),
            "platform",
        ),
        (format!("/api/v1/oauth/connections/{long}"), "store_id"),
        (
            format!("/api/v1/oauth/token/google?store_id={long}"),
            "store_id",
        ),
    ];
    for (path, named) in &cases {
        let shown = &path[..path.len().min(60)];
        let (status, body) = json_error(app.get(path).await).await;
        assert_eq!(status, 400, "{shown}: {body}");
        let code = body["error"]["code"].as_str().unwrap();
        assert!(code.starts_with("invalid_"), "{shown}: {code}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{shown}: {message}");
        assert!(message.len() < 300, "the id is not echoed back: {shown}");

        let unauthenticated = app.api.get(app.url(path)).send().await.unwrap();
        let (status, body) = json_error(unauthenticated).await;
        assert_eq!(status, 401, "{shown}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    app.stop().await;
}

/// A perimeter as the service builds it, with the given limit and trust in the proxy.
fn perimeter(per_minute: u32, trust_proxy: bool) -> Perimeter {
    Perimeter {
        production: false,
        allowed_origins: vec![],
        rate_limit_per_minute: per_minute,
        trust_proxy,
        request_timeout: Duration::from_secs(30),
    }
}

/// Serves `router` through the service's own server loop; returns its base URL.
async fn serve_on_loopback(router: Router, timeouts: ServerTimeouts) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, router, timeouts, std::future::pending()));
    address
}

#[tokio::test]
async fn the_rate_limit_tables_stay_under_their_cap_whatever_the_keys() {
    const CAP: usize = 50;
    let keys = ApiKeys::new(&[SecretString::from(API_KEY)]);
    let limit = FlowRateLimit::with_capacity(&perimeter(5, true), keys, CAP);
    let ok = || async { "ok" };
    let limits = RequestLimits {
        flow: limit.clone(),
        timeout: Duration::from_secs(30),
    };
    let router = Router::new()
        .route("/api/v1/oauth/authorize", get(ok))
        .route("/api/v1/oauth/connect/{platform}", get(ok))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            perimeter::limit_requests,
        ));
    let base = serve_on_loopback(router, ServerTimeouts::default()).await;
    let client = reqwest::Client::new();
    let from = |address: String| {
        client
            .get(format!("{base}/api/v1/oauth/authorize"))
            .header("x-forwarded-for", address)
            .send()
    };

    // Browser routes: as many addresses as there is room for get through, then new ones wait.
    let mut statuses = Vec::new();
    for i in 0..500u32 {
        let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        statuses.push(from(address).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), CAP);
    assert!(statuses[CAP..].iter().all(|s| *s == 429));
    // Every IPv6 address of one /64 is one client.
    for i in 0..200u32 {
        let _ = from(format!("2001:db8:0:1::{i:x}")).await.unwrap();
    }
    let (stores, addresses) = limit.len();
    assert!(addresses <= CAP, "{addresses} addresses tracked");
    assert_eq!(stores, 0);
    // A client already known keeps its allowance while the table is full.
    assert_eq!(from("10.0.0.7".into()).await.unwrap().status(), 200);

    // The API's connect: strangers and malformed ids never reach the store table.
    for i in 0..300 {
        let url = format!("{base}/api/v1/oauth/connect/google?user_id=u&store_id=shop-{i}");
        let _ = client.get(&url).send().await.unwrap();
        let _ = client
            .get(format!(
                "{base}/api/v1/oauth/connect/google?user_id=u&store_id=bad%20{i}"
            ))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(limit.len().0, 0, "no store was counted");
    for i in 0..300 {
        let url = format!("{base}/api/v1/oauth/connect/google?user_id=u&store_id=shop-{i}");
        let _ = client.get(&url).bearer_auth(API_KEY).send().await.unwrap();
    }
    let (stores, _) = limit.len();
    assert!(
        (1..=CAP).contains(&stores),
        "{stores} stores tracked (cap {CAP})"
    );
}

/// Opens a connection, sends the start of a request and then one header line every 300 ms; returns
/// how long the server kept the connection open.
async fn trickle_headers(address: &str, give_up_after: Duration) -> Duration {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    while started.elapsed() < give_up_after {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                // Closed (perhaps after a 408): the server gave up on us.
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            },
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                if stream.write_all(b"X-Slow: y\r\n").await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
    panic!("the server kept a client that never finished its headers for {give_up_after:?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected_at_the_timeout() {
    let router = Router::new().route("/health", get(|| async { "ok" }));
    let base = serve_on_loopback(
        router,
        ServerTimeouts {
            header_read: Duration::from_secs(1),
        },
    )
    .await;
    let address = base.trim_start_matches("http://");
    let held = trickle_headers(address, Duration::from_secs(10)).await;
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(3),
        "held for {held:?}"
    );
    // A client that sends nothing at all is dropped too.
    let mut idle = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buffer)).await;
    assert!(read.is_ok(), "an idle connection was kept for 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Well-behaved clients are served.
    let response = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_service_cuts_slow_header_clients_at_its_default_header_timeout() {
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let held = trickle_headers(&address, Duration::from_secs(20)).await;
    let default = growth_engine::http::serve::DEFAULT_HEADER_READ_TIMEOUT;
    assert!(
        held >= default - Duration::from_millis(100) && held < default + Duration::from_secs(3),
        "held for {held:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_longer_than_the_request_timeout_is_a_json_503() {
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/fast", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            RequestLimits {
                flow: FlowRateLimit::new(&perimeter(5, true), ApiKeys::new(&[])),
                timeout: Duration::from_millis(300),
            },
            perimeter::limit_requests,
        ));
    let base = serve_on_loopback(router, ServerTimeouts::default()).await;
    let started = Instant::now();
    let (status, body) = json_error(reqwest::get(format!("{base}/slow")).await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    let fast = reqwest::get(format!("{base}/fast")).await.unwrap();
    assert_eq!(fast.status(), 200);
}

/// How the padding proxy answers.
#[derive(Clone, Copy)]
enum Padding {
    /// The upstream answer followed by this many spaces, with a Content-Length.
    Sized(usize),
    /// The same, streamed in 16 KB chunks without a length.
    Streamed(usize),
}

/// A token endpoint in front of the simulator's that pads its (still valid) JSON with spaces.
#[derive(Clone)]
struct PaddingProxy {
    upstream: Arc<OnceLock<String>>,
    padding: Arc<AtomicUsize>,
    streamed: Arc<AtomicUsize>,
}

impl PaddingProxy {
    fn set(&self, padding: Padding) {
        let (bytes, streamed) = match padding {
            Padding::Sized(bytes) => (bytes, 0),
            Padding::Streamed(bytes) => (bytes, 1),
        };
        self.padding.store(bytes, Ordering::SeqCst);
        self.streamed.store(streamed, Ordering::SeqCst);
    }

    async fn answer(&self, headers: HeaderMap, body: Bytes) -> axum::response::Response {
        let upstream = self.upstream.get().expect("upstream set").clone();
        let mut request = reqwest::Client::new().post(upstream).body(body);
        for name in ["authorization", "content-type", "accept"] {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.as_bytes());
            }
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let mut padded = answer.bytes().await.unwrap().to_vec();
        padded.resize(padded.len() + self.padding.load(Ordering::SeqCst), b' ');
        let body = if self.streamed.load(Ordering::SeqCst) == 1 {
            let chunks: Vec<Result<Vec<u8>, Infallible>> =
                padded.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
            Body::from_stream(futures::stream::iter(chunks))
        } else {
            Body::from(padded)
        };
        axum::response::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    }
}

#[tokio::test]
async fn a_platform_answer_larger_than_the_cap_is_refused() {
    let proxy = PaddingProxy {
        upstream: Arc::new(OnceLock::new()),
        padding: Arc::new(AtomicUsize::new(0)),
        streamed: Arc::new(AtomicUsize::new(0)),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}/token", listener.local_addr().unwrap());
    let handler = proxy.clone();
    let router = Router::new().route(
        "/token",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let handler = handler.clone();
            async move { handler.answer(headers, body).await }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("GOOGLE_TOKEN_URL", proxy_url)],
        ..Default::default()
    })
    .await;
    let token_url = growth_engine::sandbox::endpoints(&app.simulator_address, "google")
        .unwrap()
        .token;
    proxy.upstream.set(token_url).unwrap();

    let cap = growth_engine::platforms::client::DEFAULT_MAX_RESPONSE_BYTES;
    for (padding, store) in [
        (Padding::Sized(2 * cap), "sized-store"),
        (Padding::Streamed(2 * cap), "streamed-store"),
    ] {
        proxy.set(padding);
        let start = app.connect_url("google", store).await;
        let outcome = Browser::new().complete_flow(&start, true).await;
        assert_eq!(outcome["connection"], "error", "{outcome:?}");
        assert_eq!(outcome["reason"], "platform_bad_response", "{outcome:?}");
        assert_eq!(
            app.connections(store).await["connections"],
            serde_json::json!([])
        );
    }
    // The same answer under the cap is accepted: the size, not the padding, was refused.
    proxy.set(Padding::Streamed(cap / 2));
    let start = app.connect_url("google", "fitting-store").await;
    let outcome = Browser::new().complete_flow(&start, true).await;
    assert_eq!(outcome["connection"], "success", "{outcome:?}");
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_closes_idle_connections() {
    // `/slow` says it has arrived, then answers only once `finish` is notified.
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let finish = std::sync::Arc::new(tokio::sync::Notify::new());
    let (arrive, gate) = (arrived.clone(), finish.clone());
    let router = Router::new().route(
        "/slow",
        get(move || async move {
            arrive.notify_one();
            gate.notified().await;
            "finished"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router,
        ServerTimeouts::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    // An idle connection must not hold the shutdown for the header-read timeout.
    let _idle = TcpStream::connect(address).await.unwrap();
    let in_flight = tokio::spawn(reqwest::get(format!("http://{address}/slow")));
    arrived.notified().await;
    let started = Instant::now();
    stop.send(()).unwrap();
    // The shutdown has begun while the request is in flight; now it may finish.
    tokio::task::yield_now().await;
    finish.notify_one();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("the server stopped without waiting for the idle connection")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        TcpStream::connect(address).await.is_err(),
        "no longer accepting"
    );
}
