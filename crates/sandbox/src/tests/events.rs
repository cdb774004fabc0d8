//! Tests of the platforms' notices to the app: each platform's removal notice and events with
//! their exact body, their signature checked by Python's standard library (not by the sandbox's
//! own signing code), Google's tokens against the JWKS the sandbox serves, the delivery task's
//! retries, order and duplicates, the challenges, and the "Apps and websites" page. A tiny axum
//! receiver on 127.0.0.1:0 stands for the app.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Query, Request as ReceivedRequest};
use axum::http::header::HOST;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde_json::json;

use super::api::{at, token_with};
use super::*;

/// Every timestamp the sandbox signs: its manual clock's start (2026-01-01T12:00:00Z).
const NOW: i64 = 1_767_268_800;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// The app's receiver: records every request and answers each with the next scripted answer
/// (200 with an empty body once the script is empty).
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Receiver {
    /// Serves a receiver; returns it and the base to give `set_event_receiver`.
    async fn serve() -> (Self, String) {
        let receiver = Self::default();
        let recorder = receiver.clone();
        let app = Router::new().fallback(move |request: ReceivedRequest| {
            let recorder = recorder.clone();
            async move { recorder.answer(request).await }
        });
        (receiver, serve(app).await)
    }

    async fn answer(&self, request: ReceivedRequest) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a readable body");
        self.received.lock().expect("lock").push(Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            at: Instant::now(),
        });
        let (status, body) = self
            .script
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or((200, String::new()));
        let status = StatusCode::from_u16(status).expect("a status");
        (status, [(CONTENT_TYPE, "application/json")], body).into_response()
    }

    /// Answers the next request with this status and body.
    fn then_answer(&self, status: u16, body: &str) {
        self.script
            .lock()
            .expect("lock")
            .push_back((status, body.to_owned()));
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits (up to 10 s) until `count` requests have arrived.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + StdDuration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() > deadline {
                assert_eq!(received.len(), count, "requests received: {received:?}");
                return received;
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }
}

/// Serves `app` on 127.0.0.1:0; returns the base URL of its events (`http://127.0.0.1:{port}/events`).
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/events")
}

/// Runs a Python 3 script (standard library only) with these arguments; returns its output.
fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Lower-case hex HMAC-SHA256 of `message` keyed with `key`, by Python.
fn python_hmac_hex(key: &str, message: &str) -> String {
    python(
        "import hmac, hashlib, sys\n\
         print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
        &[key, message],
    )
}

/// Standard (padded) base64 HMAC-SHA256 of `message` keyed with `key`, by Python.
fn python_hmac_base64(key: &str, message: &str) -> String {
    python(
        "import base64, hmac, hashlib, sys\n\
         mac = hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).digest()\n\
         print(base64.b64encode(mac).decode())",
        &[key, message],
    )
}

/// Verifies a Meta `signed_request` with the app secret as Meta's SDK does (split on the first
/// `.`, HMAC over the encoded payload, base64url without padding) and returns the decoded payload.
fn python_signed_request(secret: &str, signed_request: &str) -> Value {
    let payload = python(
        "import base64, hmac, hashlib, sys\n\
         raw = sys.argv[2]\n\
         assert '=' not in raw, 'padding sent'\n\
         sig, payload = raw.split('.', 1)\n\
         pad = lambda s: s + '=' * (-len(s) % 4)\n\
         expected = hmac.new(sys.argv[1].encode(), payload.encode(), hashlib.sha256).digest()\n\
         assert hmac.compare_digest(base64.urlsafe_b64decode(pad(sig)), expected), 'bad signature'\n\
         print(base64.urlsafe_b64decode(pad(payload)).decode())",
        &[secret, signed_request],
    );
    serde_json::from_str(&payload).expect("a JSON payload")
}

/// Verifies an RS256 JWT against an RSA key given by its JWK `n` and `e` (RSASSA-PKCS1-v1_5 with
/// SHA-256, RFC 8017 §8.2.2, by modular exponentiation in Python): `valid` or `invalid`.
fn python_rs256(jwt: &str, n: &str, e: &str) -> String {
    python(
        "import base64, hashlib, sys\n\
         d = lambda s: base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))\n\
         header, payload, signature = sys.argv[1].split('.')\n\
         n = int.from_bytes(d(sys.argv[2]), 'big')\n\
         e = int.from_bytes(d(sys.argv[3]), 'big')\n\
         k = (n.bit_length() + 7) // 8\n\
         em = pow(int.from_bytes(d(signature), 'big'), e, n).to_bytes(k, 'big')\n\
         info = bytes.fromhex('3031300d060960864801650304020105000420')\n\
         digest = hashlib.sha256((header + '.' + payload).encode()).digest()\n\
         expected = b'\\x00\\x01' + b'\\xff' * (k - 3 - len(info) - len(digest)) + b'\\x00' + info + digest\n\
         print('valid' if em == expected else 'invalid')",
        &[jwt, n, e],
    )
}

/// A sandbox whose events go to a fresh receiver.
async fn sandbox_with_receiver() -> (Sandbox, Receiver) {
    let sandbox = Sandbox::new();
    let (receiver, base) = Receiver::serve().await;
    sandbox.sim.set_event_receiver(&base);
    (sandbox, receiver)
}

/// An access token of `platform` from the default consent.
async fn token(sandbox: &Sandbox, platform: &str) -> String {
    let code = sandbox.code(platform).await;
    let reply = sandbox.exchange(platform, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    str_field(&reply.json(), "/access_token").to_owned()
}

/// Waits (up to 10 s) until `platform` has recorded `count` delivery attempts.
async fn deliveries(sandbox: &Sandbox, platform: &str, count: usize) -> Vec<EventDelivery> {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        let deliveries = sandbox.sim.event_deliveries(platform);
        if deliveries.len() >= count || Instant::now() > deadline {
            assert_eq!(deliveries.len(), count, "{deliveries:?}");
            return deliveries;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

fn form_field(body: &str, name: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body)
        .expect("a form body")
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .expect("the field")
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

// ---- Meta ------------------------------------------------------------------------------------

#[tokio::test]
async fn removing_the_app_at_meta_posts_a_deauthorize_signed_request_the_app_secret_verifies() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let token = token(&sandbox, "meta").await;

    assert!(sandbox.sim.remove_app("meta", "1000000001"));

    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/events/meta/deauthorize");
    assert_eq!(
        request.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let signed_request = form_field(&request.body, "signed_request");
    let payload = python_signed_request("sandbox-meta-secret", &signed_request);
    assert_eq!(
        payload,
        json!({ "algorithm": "HMAC-SHA256", "issued_at": NOW, "user_id": "1000000001" })
    );
    let recorded = deliveries(&sandbox, "meta", 1).await;
    assert_eq!(recorded[0].receiver, "deauthorize");
    assert_eq!((recorded[0].attempt, recorded[0].status), (1, Some(200)));
    assert_eq!(recorded[0].body, request.body);

    // Meta fails the removed user's tokens with 190 / 458 [M4].
    let me = sandbox.get(&at("meta", "me"), Some(&token)).await;
    assert_eq!(me.status, StatusCode::BAD_REQUEST);
    assert_eq!(me.json()["error"]["code"], 190);
    assert_eq!(me.json()["error"]["error_subcode"], 458);
    // A second removal finds nothing to remove and sends nothing.
    assert!(!sandbox.sim.remove_app("meta", "1000000001"));
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_data_deletion_request_removes_the_app_first_and_keeps_the_apps_confirmation() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    receiver.then_answer(200, "");
    let answer =
        r#"{"url":"https://shop.example/deletion?id=abc123","confirmation_code":"abc123"}"#;
    receiver.then_answer(200, answer);
    token(&sandbox, "meta").await;

    sandbox.sim.request_data_deletion("1000000001");

    let received = receiver.wait_for(2).await;
    assert_eq!(received[0].path, "/events/meta/deauthorize");
    assert_eq!(received[1].path, "/events/meta/data-deletion");
    let signed_request = form_field(&received[1].body, "signed_request");
    let payload = python_signed_request("sandbox-meta-secret", &signed_request);
    assert_eq!(
        payload,
        json!({
            "algorithm": "HMAC-SHA256",
            "expires": NOW + 3600,
            "issued_at": NOW,
            "user_id": "1000000001",
        })
    );
    let recorded = deliveries(&sandbox, "meta", 2).await;
    assert_eq!(recorded[1].receiver, "data-deletion");
    assert_eq!(recorded[1].response.as_deref(), Some(answer));
    assert!(sandbox.sim.live_grants("meta").is_empty());
}

#[tokio::test]
async fn meta_webhooks_carry_the_hex_hmac_of_the_raw_body() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let entries = json!([{
        "id": "2000000001",
        "time": NOW,
        "changes": [{ "field": "feed", "value": { "item": "post", "verb": "add", "post_id": "2000000001_1" } }],
    }]);

    sandbox.sim.send_meta_webhook("page", entries.clone());

    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.path, "/events/meta/webhooks");
    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.body.starts_with(r#"{"object":"page","entry":"#));
    assert_eq!(
        json_of(&request.body),
        json!({ "object": "page", "entry": entries })
    );
    let expected = python_hmac_hex("sandbox-meta-secret", &request.body);
    assert_eq!(
        request.header("x-hub-signature-256"),
        format!("sha256={expected}")
    );
}

#[tokio::test]
async fn a_revoked_meta_permission_is_announced_and_leaves_the_grant() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let token = token(&sandbox, "meta").await;

    sandbox
        .sim
        .send_meta_permissions_change("1000000001", "pages_show_list", "revoked");

    let received = receiver.wait_for(1).await;
    assert_eq!(
        json_of(&received[0].body),
        json!({ "object": "permissions", "entry": [{
            "id": "1000000001",
            "time": NOW,
            "changes": [{ "field": "pages_show_list", "value": { "verb": "revoked" } }],
        }] })
    );
    // Without pages_show_list Graph lists no Pages.
    let pages = sandbox
        .get("/sandbox/meta/v25.0/me/accounts", Some(&token))
        .await;
    assert_eq!(pages.json()["data"], json!([]));
}

// ---- TikTok ----------------------------------------------------------------------------------

#[tokio::test]
async fn tiktok_authorization_removed_is_signed_over_the_timestamp_and_the_body() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let token = token(&sandbox, "tiktok").await;

    assert!(sandbox.sim.remove_app("tiktok", "sbx-tiktok-open-id"));

    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.path, "/events/tiktok/webhooks");
    assert_eq!(
        request.body,
        format!(
            r#"{{"client_key":"sandbox-tiktok-client","event":"authorization.removed","create_time":{NOW},"user_openid":"sbx-tiktok-open-id","content":"{{\"reason\":1}}"}}"#
        )
    );
    let expected = python_hmac_hex("sandbox-tiktok-secret", &format!("{NOW}.{}", request.body));
    assert_eq!(
        request.header("tiktok-signature"),
        format!("t={NOW},s={expected}")
    );
    // The token is already revoked when the event arrives [T25].
    let info = sandbox
        .get(&at("tiktok", "user/info/?fields=open_id"), Some(&token))
        .await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
    assert_eq!(info.json()["error"]["code"], "access_token_invalid");
}

#[tokio::test]
async fn tiktok_publishing_events_carry_their_content_as_a_string() {
    let (sandbox, receiver) = sandbox_with_receiver().await;

    sandbox.sim.send_tiktok_event(
        "sbx-tiktok-open-id",
        "post.publish.complete",
        json!({ "publish_id": "v_pub_123", "publish_type": "DIRECT_POST" }),
    );

    let received = receiver.wait_for(1).await;
    let body = json_of(&received[0].body);
    assert_eq!(body["event"], "post.publish.complete");
    let content = json_of(body["content"].as_str().expect("content is a string"));
    assert_eq!(
        content,
        json!({ "publish_id": "v_pub_123", "publish_type": "DIRECT_POST" })
    );
    let signature = received[0].header("tiktok-signature").to_owned();
    let expected = python_hmac_hex(
        "sandbox-tiktok-secret",
        &format!("{NOW}.{}", received[0].body),
    );
    assert_eq!(signature, format!("t={NOW},s={expected}"));
}

// ---- Google ----------------------------------------------------------------------------------

/// The served JWKS's only key: `kid`, `n`, `e`.
async fn risc_key(sandbox: &Sandbox) -> (String, String, String) {
    let jwks = sandbox.get("/sandbox/google/oauth2/v3/certs", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let keys = jwks.json()["keys"].clone();
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["use"], "sig");
    (
        str_field(&keys, "/0/kid").to_owned(),
        str_field(&keys, "/0/n").to_owned(),
        str_field(&keys, "/0/e").to_owned(),
    )
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).expect("a JWT part");
    json_of(&String::from_utf8(URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("UTF-8"))
}

#[tokio::test]
async fn google_risc_tokens_revoked_verifies_against_the_served_jwks() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    token(&sandbox, "google").await;

    assert!(sandbox.sim.remove_app("google", "100000000000000000001"));

    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.path, "/events/google/risc");
    assert_eq!(request.header("content-type"), "application/secevent+jwt");
    let config = sandbox
        .send(
            Request::builder()
                .uri("/sandbox/google/.well-known/risc-configuration")
                .header(HOST, "sandbox.test:8003")
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .json();
    assert_eq!(config["issuer"], "https://accounts.google.com/");
    assert_eq!(
        config["jwks_uri"],
        "http://sandbox.test:8003/sandbox/google/oauth2/v3/certs"
    );
    let (kid, n, e) = risc_key(&sandbox).await;
    assert_eq!(python_rs256(&request.body, &n, &e), "valid");
    let header = jwt_part(&request.body, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "secevent+jwt");
    assert_eq!(header["kid"], kid.as_str());
    let claims = jwt_part(&request.body, 1);
    assert_eq!(claims["iss"], "https://accounts.google.com/");
    assert_eq!(claims["aud"], "sandbox-google-client");
    assert_eq!(claims["iat"], NOW);
    assert!(str_field(&claims, "/jti").len() >= 16);
    assert_eq!(
        claims["events"],
        json!({ "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked": {
            "subject": { "subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "100000000000000000001" }
        } })
    );
}

#[tokio::test]
async fn a_rotated_risc_key_leaves_the_jwks_and_signs_the_next_tokens() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let event = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
    sandbox.sim.send_google_risc(event, "100000000000000000001");
    let (old_kid, old_n, old_e) = risc_key(&sandbox).await;

    sandbox.sim.rotate_google_risc_key();
    sandbox.sim.send_google_risc(event, "100000000000000000001");

    let received = receiver.wait_for(2).await;
    let (kid, n, e) = risc_key(&sandbox).await;
    assert_ne!(kid, old_kid);
    assert_eq!(python_rs256(&received[0].body, &old_n, &old_e), "valid");
    assert_eq!(python_rs256(&received[0].body, &n, &e), "invalid");
    assert_eq!(python_rs256(&received[1].body, &n, &e), "valid");
    assert_eq!(jwt_part(&received[1].body, 0)["kid"], kid.as_str());
    assert_ne!(
        jwt_part(&received[0].body, 1)["jti"],
        jwt_part(&received[1].body, 1)["jti"]
    );
    // Rotating again gives yet another kid.
    sandbox.sim.rotate_google_risc_key();
    let (third, _, _) = risc_key(&sandbox).await;
    assert!(third != kid && third != old_kid);
}

#[tokio::test]
async fn google_sends_no_risc_event_for_a_grant_without_profile_or_email() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let token = token_with(
        &sandbox,
        "google",
        &["openid", "https://www.googleapis.com/auth/adwords"],
    )
    .await;

    assert!(sandbox.sim.remove_app("google", "100000000000000000001"));

    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert!(receiver.received().is_empty());
    assert!(sandbox.sim.authenticate("google", &token).is_none());
}

// ---- X, Pinterest, LinkedIn --------------------------------------------------------------------

#[tokio::test]
async fn x_oauth_revoke_is_an_xaa_event_signed_with_a_base64_hmac() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let token = token(&sandbox, "twitter").await;

    assert!(sandbox.sim.remove_app("twitter", "1000000000000000001"));

    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.path, "/events/twitter/webhooks");
    let body = json_of(&request.body);
    let data = &body["data"];
    assert_eq!(data["event_type"], "oauth.revoke");
    assert_eq!(data["filter"], json!({}));
    assert_eq!(data["tag"], "");
    assert_eq!(str_field(data, "/event_uuid").len(), 36);
    assert_eq!(data["payload"]["user_id"], "1000000000000000001");
    assert!(data["payload"]["app_id"].is_string());
    assert_eq!(data["payload"]["date_time"], "2026-01-01T12:00:00.000Z");
    let expected = python_hmac_base64("sandbox-twitter-secret", &request.body);
    assert_eq!(
        request.header("x-twitter-webhooks-signature"),
        format!("sha256={expected}")
    );
    assert!(sandbox.sim.authenticate("twitter", &token).is_none());
}

#[tokio::test]
async fn pinterest_and_linkedin_send_nothing_when_the_app_is_removed() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    let pinterest = token(&sandbox, "pinterest").await;
    let linkedin = token(&sandbox, "linkedin").await;

    assert!(sandbox.sim.remove_app("pinterest", "sbx-pin-1"));
    assert!(sandbox.sim.remove_app("linkedin", "sbxLiMember01"));

    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert!(receiver.received().is_empty());
    assert!(sandbox.sim.event_deliveries("pinterest").is_empty());
    let account = sandbox
        .get(&at("pinterest", "user_account"), Some(&pinterest))
        .await;
    assert_eq!(account.status, StatusCode::UNAUTHORIZED);
    assert!(sandbox.sim.authenticate("linkedin", &linkedin).is_none());
}

// ---- Delivery --------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_delivery_is_retried_with_growing_gaps_until_answered() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    sandbox
        .sim
        .set_event_retry(StdDuration::from_millis(100), 8);
    receiver.then_answer(500, "");
    receiver.then_answer(500, "");

    sandbox
        .sim
        .send_tiktok_event("sbx-tiktok-open-id", "post.publish.failed", json!({}));

    let received = receiver.wait_for(3).await;
    let recorded = deliveries(&sandbox, "tiktok", 3).await;
    let attempts: Vec<(u32, Option<u16>)> =
        recorded.iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
    let first_gap = received[1].at - received[0].at;
    let second_gap = received[2].at - received[1].at;
    assert!(first_gap >= StdDuration::from_millis(100), "{first_gap:?}");
    assert!(
        second_gap >= StdDuration::from_millis(200),
        "{second_gap:?}"
    );
    assert!(second_gap > first_gap);
    assert!(received.iter().all(|r| r.body == received[0].body
        && r.header("tiktok-signature") == received[0].header("tiktok-signature")));
    // Nothing more once answered.
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    sandbox.sim.set_event_retry(StdDuration::from_millis(10), 3);
    for _ in 0..5 {
        receiver.then_answer(503, "down");
    }

    sandbox.sim.send_meta_webhook("page", json!([]));

    let recorded = deliveries(&sandbox, "meta", 3).await;
    assert!(recorded.iter().all(|d| d.status == Some(503)));
    assert_eq!(recorded[2].response.as_deref(), Some("down"));
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_transport_error_and_is_retried() {
    let sandbox = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    sandbox
        .sim
        .set_event_receiver(&format!("http://{address}/events"));
    sandbox.sim.set_event_retry(StdDuration::from_millis(10), 2);

    sandbox.sim.send_x_event(
        "profile.update.bio",
        "1000000000000000001",
        json!({ "user_id": "1000000000000000001" }),
    );

    let recorded = deliveries(&sandbox, "twitter", 2).await;
    assert!(recorded
        .iter()
        .all(|d| d.status.is_none() && d.response.is_none()));
    assert_eq!(recorded[1].attempt, 2);
}

#[tokio::test]
async fn a_redelivered_event_is_byte_identical() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    sandbox.sim.send_x_event(
        "oauth.revoke",
        "1000000000000000001",
        json!({ "user_id": "1000000000000000001" }),
    );
    receiver.wait_for(1).await;

    sandbox.sim.redeliver_last_event("twitter");

    let received = receiver.wait_for(2).await;
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(
        received[0].header("x-twitter-webhooks-signature"),
        received[1].header("x-twitter-webhooks-signature")
    );
    let recorded = deliveries(&sandbox, "twitter", 2).await;
    assert_eq!(recorded[1].attempt, 1);
    assert_eq!(recorded[0].body, recorded[1].body);
}

#[tokio::test]
async fn events_of_one_platform_arrive_in_the_order_sent() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    sandbox.sim.set_event_retry(StdDuration::from_millis(30), 4);
    receiver.then_answer(500, "");

    for id in 0..4 {
        sandbox.sim.send_meta_webhook(
            "page",
            json!([{ "id": id.to_string(), "time": NOW, "changes": [] }]),
        );
    }

    let received = receiver.wait_for(5).await;
    let ids: Vec<String> = received
        .iter()
        .map(|r| str_field(&json_of(&r.body), "/entry/0/id").to_owned())
        .collect();
    assert_eq!(ids, ["0", "0", "1", "2", "3"]);
}

#[tokio::test]
async fn without_a_receiver_events_are_recorded_but_not_sent() {
    let sandbox = Sandbox::new();

    sandbox
        .sim
        .send_tiktok_event("sbx-tiktok-open-id", "post.publish.complete", json!({}));

    let recorded = sandbox.sim.event_deliveries("tiktok");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].receiver, "webhooks");
    assert_eq!((recorded[0].attempt, recorded[0].status), (0, None));
    assert!(recorded[0].headers[0].1.starts_with("t="));
    assert!(sandbox.sim.verify_meta_webhook("token").await.is_err());
}

// ---- Challenges ------------------------------------------------------------------------------

type Params = Query<Vec<(String, String)>>;

fn param(query: &[(String, String)], name: &str) -> String {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

fn hmac_bytes(key: &str, message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn meta_webhook_verification_wants_the_challenge_echoed_for_the_right_token() {
    let sandbox = Sandbox::new();
    let app = Router::new().route(
        "/events/meta/webhooks",
        get(|Query(query): Params| async move {
            let right = param(&query, "hub.mode") == "subscribe"
                && param(&query, "hub.verify_token") == "my-verify-token";
            let challenge = param(&query, "hub.challenge");
            assert!(challenge.parse::<u64>().is_ok(), "{challenge}");
            if right {
                (StatusCode::OK, challenge)
            } else {
                (StatusCode::FORBIDDEN, String::new())
            }
        }),
    );
    sandbox.sim.set_event_receiver(&serve(app).await);

    assert_eq!(
        sandbox.sim.verify_meta_webhook("my-verify-token").await,
        Ok(true)
    );
    assert_eq!(
        sandbox.sim.verify_meta_webhook("another-token").await,
        Ok(false)
    );
}

#[tokio::test]
async fn x_crc_wants_the_base64_hmac_of_the_token() {
    for (encode_base64, expected) in [(true, true), (false, false)] {
        let sandbox = Sandbox::new();
        let app = Router::new().route(
            "/events/twitter/webhooks",
            get(move |Query(query): Params| async move {
                let mac = hmac_bytes("sandbox-twitter-secret", &param(&query, "crc_token"));
                let token = if encode_base64 {
                    STANDARD.encode(mac)
                } else {
                    hex::encode(mac)
                };
                axum::Json(json!({ "response_token": format!("sha256={token}") }))
            }),
        );
        sandbox.sim.set_event_receiver(&serve(app).await);

        assert_eq!(sandbox.sim.check_x_crc().await, Ok(expected));
    }
}

#[tokio::test]
async fn linkedin_challenge_wants_the_hex_hmac_of_the_code_as_json() {
    for (content_type, expected) in [("application/json", true), ("text/plain", false)] {
        let sandbox = Sandbox::new();
        let app = Router::new().route(
            "/events/linkedin/webhooks",
            get(move |Query(query): Params| async move {
                let code = param(&query, "challengeCode");
                assert_eq!(code.len(), 36);
                assert_eq!(code.as_bytes()[14], b'4', "a UUID v4: {code}");
                let answer = json!({
                    "challengeCode": code,
                    "challengeResponse": hex::encode(hmac_bytes("sandbox-linkedin-secret", &code)),
                });
                ([(CONTENT_TYPE, content_type)], answer.to_string())
            }),
        );
        sandbox.sim.set_event_receiver(&serve(app).await);

        assert_eq!(sandbox.sim.check_linkedin_challenge().await, Ok(expected));
    }
}

// ---- The "Apps and websites" page ------------------------------------------------------------

#[tokio::test]
async fn the_apps_page_lists_a_granted_account_and_remove_ends_its_grant() {
    let sandbox = Sandbox::new();
    let token = token(&sandbox, "meta").await;

    let page = sandbox.get("/sandbox/meta/apps", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.body.contains("1000000001"), "{}", page.body);
    assert!(page.body.contains("pages_show_list pages_read_engagement"));
    assert!(page.body.contains("Remove and request data deletion"));

    let removed = sandbox
        .post(
            "/sandbox/meta/apps/remove",
            &params(&[("account", "1000000001")]),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let location = removed
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned();
    assert!(
        location.starts_with("/sandbox/meta/apps?message="),
        "{location}"
    );

    let me = sandbox.get(&at("meta", "me"), Some(&token)).await;
    assert_eq!(me.json()["error"]["error_subcode"], 458);
    let after = sandbox.get(&location, None).await;
    assert!(after
        .body
        .contains("The app was removed from account 1000000001."));
    assert!(after.body.contains("No account has granted the app."));
    // No receiver is set: the deauthorize callback is recorded, not sent.
    let recorded = sandbox.sim.event_deliveries("meta");
    assert_eq!(
        (recorded[0].receiver.as_str(), recorded[0].attempt),
        ("deauthorize", 0)
    );
    // A platform without a data deletion request offers no such button.
    let tiktok = sandbox.get("/sandbox/tiktok/apps", None).await;
    assert!(!tiktok.body.contains("request data deletion"));
}

#[tokio::test]
async fn the_data_deletion_button_shows_the_apps_confirmation_code_and_status_link() {
    let (sandbox, receiver) = sandbox_with_receiver().await;
    receiver.then_answer(200, "");
    receiver.then_answer(
        200,
        r#"{"url":"https://shop.example/deletion?id=XYZ789","confirmation_code":"XYZ789"}"#,
    );
    token(&sandbox, "meta").await;

    let answer = sandbox
        .post(
            "/sandbox/meta/apps/delete-data",
            &params(&[("account", "1000000001")]),
            None,
        )
        .await;

    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let location = answer
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned();
    let page = sandbox.get(&location, None).await;
    assert!(
        page.body.contains("Confirmation code: XYZ789."),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<a href="https://shop.example/deletion?id&#x3d;XYZ789">"#)
            || page
                .body
                .contains("href=\"https://shop.example/deletion?id=XYZ789\"")
    );
    assert_eq!(receiver.received().len(), 2);
}
