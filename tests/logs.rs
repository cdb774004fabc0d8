//! No secret reaches the logs: every flow, a refresh, a refresh the platform fails, a proxied call to
//! each platform, a token read, signed webhook deliveries, the connections page and a disconnect run
//! with logging at debug level (JSON, as in production) into a buffer, which must then hold none of
//! the tokens the simulators issued, the authorization codes, PKCE verifiers, states and tickets, the
//! client secrets (also as HTTP Basic credentials), the API key, the encryption key, the webhook
//! secret, the dashboard secret, link or session, nor any of them URL- or base64-encoded.
//!
//! Its own test binary, so that the global subscriber sees this test's logs and no other test's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use growth_engine::domain::{StoreId, UserId};
use growth_engine::sandbox::{Fault, PLATFORMS};
use helpers::{credentials, query_of, spawn_app_with, Browser, TestAppOptions, API_KEY};
use tracing_subscriber::fmt::MakeWriter;

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CapturedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(self.0.clone())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const DASHBOARD_SECRET: &str = "logs-test-dashboard-secret-0123456789abcdef";
const VERIFY_TOKEN: &str = "meta-verify-token-6a1f39e2";
const WEBHOOK_SECRET: &str = "logs-test-webhook-secret-0123456789";

#[tokio::test]
async fn no_token_code_secret_or_key_reaches_the_debug_logs() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        // Everything at debug, except the cookie jar of the test's own "browser" (the service keeps
        // no cookie jar): it logs every cookie it stores, which is its business, not the service's.
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,cookie_store=off"))
        .with_writer(captured.clone())
        .try_init()
        .expect("the only subscriber in this binary");

    let key = growth_engine::vault::Key::generate();
    // A receiver that takes every webhook, so that signed deliveries run too.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}/hooks", receiver.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/hooks", axum::routing::post(|| async { "ok" }));
        let _ = axum::serve(receiver, app).await;
    });
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
            ("DASHBOARD_JWT_SECRET", DASHBOARD_SECRET.into()),
            ("WEBHOOK_URL", hooks),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ("META_WEBHOOK_VERIFY_TOKEN", VERIFY_TOKEN.into()),
        ],
        ..Default::default()
    })
    .await;
    let mut secrets: Vec<(String, String)> = vec![
        ("the API key".into(), API_KEY.into()),
        ("the encryption key".into(), key.to_base64()),
        (
            "the encryption key".into(),
            key.to_base64().trim_end_matches('=').into(),
        ),
        ("the dashboard secret".into(), DASHBOARD_SECRET.into()),
        ("the webhook secret".into(), WEBHOOK_SECRET.into()),
        ("Meta's webhook verify token".into(), VERIFY_TOKEN.into()),
    ];
    let store = "log-store";

    for platform in PLATFORMS {
        let browser = Browser::new();
        let start = app.connect_url(platform, store).await;
        let ticket = query_of(&start)["ticket"].clone();
        let authorize = browser.first_hop(&start).await;
        let callback = browser.consent(&authorize, true).await;
        let params = query_of(&callback);
        let outcome = query_of(&browser.callback(&callback).await);
        assert_eq!(outcome["connection"], "success", "{platform}: {outcome:?}");
        secrets.push((format!("{platform} ticket"), ticket));
        secrets.push((format!("{platform} state"), params["state"].clone()));
        secrets.push((format!("{platform} code"), params["code"].clone()));
        let (client_id, client_secret) = credentials(platform);
        secrets.push((format!("{platform} client secret"), client_secret.clone()));
        // HTTP Basic's form of the pair (RFC 6749 §2.3.1: each half form-encoded first).
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        secrets.push((
            format!("{platform} Basic credentials"),
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                encode(&client_id),
                encode(&client_secret)
            )),
        ));
    }
    for platform in PLATFORMS {
        let refresh = app
            .post(&format!(
                "/api/v1/oauth/refresh/{platform}?store_id={store}"
            ))
            .await;
        assert!(
            refresh.status() == 200 || refresh.status() == 409,
            "{platform}: {}",
            refresh.status()
        );
        let token = app
            .get(&format!("/api/v1/oauth/token/{platform}?store_id={store}"))
            .await;
        assert_eq!(token.status(), 200, "{platform}");
    }

    // Faults: a refresh the platform fails (503, then an unreadable answer), then a proxied call
    // to every platform's API with each connection's token.
    for fault in [Fault::Status(503), Fault::Garbage] {
        app.simulator.set_fault("pinterest", Some(fault));
        let failed = app
            .post(&format!("/api/v1/oauth/refresh/pinterest?store_id={store}"))
            .await;
        assert!(failed.status().as_u16() < 500 || failed.status() == 502 || failed.status() == 503);
    }
    app.simulator.set_fault("pinterest", None);
    for platform in PLATFORMS {
        let proxied = app
            .api
            .get(app.url(&format!("/api/v1/proxy/{platform}/me")))
            .bearer_auth(API_KEY)
            .header("Growth-Engine-Store", store)
            .send()
            .await
            .unwrap();
        assert!(
            proxied.status().as_u16() != 500,
            "{platform}: {}",
            proxied.status()
        );
    }

    // Assets: an on-demand discovery, and the Meta page tokens it keeps in the sealed set.
    let refreshed = app
        .post(&format!(
            "/api/v1/oauth/connections/{store}/meta/assets/refresh"
        ))
        .await;
    assert_eq!(refreshed.status(), 200);
    for page in ["2000000001", "2000000002"] {
        let answer: serde_json::Value = app
            .get(&format!(
                "/api/v1/oauth/token/meta?store_id={store}&account={page}"
            ))
            .await
            .json()
            .await
            .unwrap();
        let page_token = answer["access_token"].as_str().unwrap().to_owned();
        secrets.push((format!("meta page {page} token"), page_token));
    }

    // The connections page: a link, its session, the CSRF value, a connect and a disconnect.
    let link = app
        .services
        .dashboard
        .mint_link(
            &StoreId::parse(store).unwrap(),
            &UserId::parse("log-user").unwrap(),
            15,
        )
        .unwrap();
    let link_token = query_of(link.as_str())["token"].clone();
    let browser = Browser::new();
    let opened = browser.client.get(link.as_str()).send().await.unwrap();
    assert_eq!(opened.status(), 303);
    let session = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ge_dashboard=")
        .to_owned();
    let page = browser
        .client
        .get(app.url("/dashboard/marketing"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let listed = browser
        .client
        .get(app.url("/dashboard/api/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let disconnected = browser
        .client
        .post(app.url("/dashboard/api/disconnect/google"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(disconnected.status(), 200);
    let delete = app
        .delete(&format!(
            "/api/v1/oauth/disconnect/tiktok?store_id={store}&user_id=u"
        ))
        .await;
    assert_eq!(delete.status(), 200);
    // The platforms' notices: a handshake with the verify token, a removal signed with the app
    // secret, a forged one refused.
    assert_eq!(
        app.simulator.verify_meta_webhook(VERIFY_TOKEN).await,
        Ok(true)
    );
    let meta: serde_json::Value = app.connections(store).await["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "meta")
        .cloned()
        .unwrap();
    assert!(app
        .simulator
        .remove_app("meta", meta["account_id"].as_str().unwrap()));
    let forged = app
        .api
        .post(app.url("/api/v1/platform-events/meta/deauthorize"))
        .form(&[("signed_request", "c2lnbmF0dXJl.eyJ1c2VyX2lkIjoiMSJ9")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    for _ in 0..200 {
        let deliveries = app.simulator.event_deliveries("meta");
        if deliveries.iter().any(|d| d.status == Some(200)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    secrets.push(("the dashboard link".into(), link_token));
    secrets.push(("the dashboard session".into(), session));
    secrets.push(("the CSRF value".into(), csrf));

    for platform in PLATFORMS {
        for verifier in app.simulator.code_verifiers(platform) {
            secrets.push((format!("{platform} PKCE verifier"), verifier));
        }
        for token in app.simulator.issued_access_tokens(platform) {
            secrets.push((format!("{platform} access token"), token));
        }
        for token in app.simulator.issued_refresh_tokens(platform) {
            secrets.push((format!("{platform} refresh token"), token));
        }
    }
    let issued = secrets
        .iter()
        .filter(|(what, _)| what.ends_with("token"))
        .count();
    assert!(issued >= 10, "the simulators issued tokens: {issued}");
    app.stop().await;

    let logs = captured.text();
    assert!(
        logs.matches("connection authorized").count() >= 5,
        "the logs hold the flows"
    );
    assert!(logs.contains("request_id"), "lines carry the request id");
    assert!(logs.contains("\"level\":\"DEBUG\""), "debug level is on");
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is long enough to search for");
        if let Some(at) = logs.find(secret.as_str()) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!(
                "{what} is in the logs:\n{}",
                logs[line_start..line_end].replace(secret.as_str(), "[THE SECRET]")
            );
        }
    }
    // Also URL-encoded and base64-encoded, the two ways a value is most often re-encoded.
    for (what, secret) in &secrets {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        assert!(
            !logs.contains(&encoded),
            "{what} (URL-encoded) is in the logs"
        );
        assert!(!logs.contains(&b64), "{what} (base64) is in the logs");
    }
}
