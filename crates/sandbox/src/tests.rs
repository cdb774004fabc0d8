//! Tests of the sandbox simulators: each platform's happy path and each rule it enforces, driven
//! through the router as an HTTP client would.

// In tests a failed expectation is a failed test, which is exactly what `expect` reports.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::*;
use growth_engine_clock::{Clock, ManualClock};

#[cfg(test)]
mod api;
#[cfg(test)]
mod events;
#[cfg(test)]
mod linkedin;
#[cfg(test)]
mod publishing;
mod publishing_boards_posts;
#[cfg(test)]
mod scopes;

const API: &str = "http://localhost:8080";
const VERIFIER: &str = "sandbox-verifier-0123456789abcdefghijklmnopqrstuvwxyz";

struct Sandbox {
    sim: Simulator,
    app: Router,
    clock: ManualClock,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }

    fn location(&self) -> url::Url {
        let location = self
            .headers
            .get(LOCATION)
            .expect("a Location header")
            .to_str()
            .expect("an ASCII Location");
        url::Url::parse(location).expect("an absolute Location")
    }

    fn location_param(&self, name: &str) -> Option<String> {
        self.location()
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

fn redirect_uri(platform: &str) -> String {
    format!("{API}/api/v1/oauth/callback/{platform}")
}

fn client_id(platform: &str) -> String {
    format!("sandbox-{platform}-client")
}

fn client_secret(platform: &str) -> String {
    format!("sandbox-{platform}-secret")
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

type Params = Vec<(String, String)>;

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn with(mut params: Params, key: &str, value: &str) -> Params {
    params.retain(|(k, _)| k != key);
    params.push((key.to_owned(), value.to_owned()));
    params
}

fn without(mut params: Params, key: &str) -> Params {
    params.retain(|(k, _)| k != key);
    params
}

/// A valid authorization request for each platform.
fn authorize_params(platform: &str) -> Params {
    let redirect = redirect_uri(platform);
    let client = client_id(platform);
    let challenge = challenge();
    let pairs: Vec<(&str, &str)> = match platform {
        "meta" => vec![
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("state", "st-meta"),
            ("scope", "pages_show_list,pages_read_engagement"),
        ],
        "tiktok" => vec![
            ("client_key", &client),
            ("redirect_uri", &redirect),
            ("state", "st-tiktok"),
            ("response_type", "code"),
            ("scope", "user.info.basic,video.publish"),
        ],
        "google" => vec![
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("state", "st-google"),
            ("response_type", "code"),
            (
                "scope",
                "openid email profile https://www.googleapis.com/auth/adwords",
            ),
            ("access_type", "offline"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "pinterest" => vec![
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("state", "st-pinterest"),
            ("response_type", "code"),
            ("scope", "boards:read,pins:read,user_accounts:read"),
        ],
        "linkedin" => vec![
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("state", "st-linkedin"),
            ("scope", "openid profile email r_organization_admin r_ads"),
        ],
        _ => vec![
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("state", "st-twitter"),
            ("response_type", "code"),
            ("scope", "tweet.read users.read offline.access"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    };
    params(&pairs)
}

/// A valid code exchange for each platform: the body and the Basic credentials, if any.
fn exchange_params(platform: &str, code: &str) -> (Params, Option<(String, String)>) {
    let redirect = redirect_uri(platform);
    let client = client_id(platform);
    let secret = client_secret(platform);
    let basic = Some((client.clone(), secret.clone()));
    match platform {
        "meta" => (
            params(&[
                ("client_id", &client),
                ("client_secret", &secret),
                ("redirect_uri", &redirect),
                ("code", code),
            ]),
            None,
        ),
        "tiktok" => (
            params(&[
                ("client_key", &client),
                ("client_secret", &secret),
                ("code", code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", &redirect),
            ]),
            None,
        ),
        "google" => (
            params(&[
                ("client_id", &client),
                ("client_secret", &secret),
                ("code", code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", &redirect),
                ("code_verifier", VERIFIER),
            ]),
            None,
        ),
        "pinterest" => (
            params(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect),
            ]),
            basic,
        ),
        "linkedin" => (
            params(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect),
                ("client_id", &client),
                ("client_secret", &secret),
            ]),
            None,
        ),
        _ => (
            params(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect),
                ("code_verifier", VERIFIER),
            ]),
            basic,
        ),
    }
}

impl Sandbox {
    fn new() -> Self {
        let clock = ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                .single()
                .unwrap_or_default(),
        );
        let clients = PLATFORMS
            .iter()
            .map(|p| Simulator::sandbox_client(p, &format!("{API}/")))
            .collect();
        let sim = Simulator::with_clock(clients, Arc::new(clock.clone()));
        Self {
            app: router(sim.clone()),
            sim,
            clock,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn request(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        form: Option<&Params>,
        basic: Option<&(String, String)>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some((id, secret)) = basic {
            let encoded = STANDARD.encode(format!("{id}:{secret}"));
            builder = builder.header(AUTHORIZATION, format!("Basic {encoded}"));
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(form).expect("encodable form"))
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("a valid request"))
            .await
    }

    async fn get(&self, uri: &str, bearer: Option<&str>) -> Reply {
        self.request("GET", uri, bearer, None, None).await
    }

    async fn post(&self, uri: &str, form: &Params, basic: Option<&(String, String)>) -> Reply {
        self.request("POST", uri, None, Some(form), basic).await
    }

    fn endpoints(platform: &str) -> SandboxEndpoints {
        endpoints("", platform).expect("a simulated platform")
    }

    async fn authorize(&self, platform: &str, params: &Params) -> Reply {
        let query = serde_urlencoded::to_string(params).expect("encodable query");
        let uri = format!("{}?{query}", Self::endpoints(platform).authorize);
        self.get(&uri, None).await
    }

    /// Answers a rendered consent page.
    async fn decide(&self, platform: &str, page: &Reply, decision: &str, scopes: &[&str]) -> Reply {
        let marker = "name=\"request_id\" value=\"";
        let start = page.body.find(marker).expect("a request_id field") + marker.len();
        let end = start + page.body[start..].find('"').expect("a closing quote");
        let mut form = params(&[
            ("request_id", &page.body[start..end]),
            ("decision", decision),
        ]);
        form.extend(scopes.iter().map(|s| ("scope".to_owned(), (*s).to_owned())));
        self.post(&format!("/sandbox/{platform}/consent"), &form, None)
            .await
    }

    /// Runs the consent screen with these parameters, approves `scopes` and returns the code.
    async fn code_with(&self, platform: &str, params: &Params, scopes: &[&str]) -> String {
        let page = self.authorize(platform, params).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let answer = self.decide(platform, &page, "approve", scopes).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        answer.location_param("code").expect("a code")
    }

    /// Approves the default request with every requested scope.
    async fn code(&self, platform: &str) -> String {
        let params = authorize_params(platform);
        let scope = params
            .iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let scopes: Vec<&str> = scope.split([',', ' ']).collect();
        self.code_with(platform, &params, &scopes).await
    }

    async fn token(
        &self,
        platform: &str,
        form: &Params,
        basic: Option<&(String, String)>,
    ) -> Reply {
        self.post(&Self::endpoints(platform).token, form, basic)
            .await
    }

    async fn exchange(&self, platform: &str, code: &str) -> Reply {
        let (form, basic) = exchange_params(platform, code);
        self.token(platform, &form, basic.as_ref()).await
    }
}

fn str_field<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

// ---- shared consent screen -------------------------------------------------------------------

#[tokio::test]
async fn consent_page_is_labelled_as_a_sandbox_and_offers_the_requested_scopes() {
    let sandbox = Sandbox::new();
    for platform in PLATFORMS {
        let page = sandbox
            .authorize(platform, &authorize_params(platform))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{platform}: {}", page.body);
        assert_eq!(page.content_type(), "text/html; charset=utf-8");
        assert!(page.body.contains("No real account is involved."));
        assert!(page.body.contains("<html lang=\"en\">"));
        assert!(page.body.contains("name=\"viewport\""));
        assert!(page.body.contains(&client_id(platform)));
        assert!(page
            .body
            .contains(&format!("action=\"/sandbox/{platform}/consent\"")));
        assert!(page.body.contains("type=\"checkbox\" name=\"scope\""));
        assert!(page.body.contains("id=\"approve\">Allow</button>"));
        assert!(page.body.contains("id=\"deny\">Cancel</button>"));
        assert!(!page.body.contains("<script"));
    }
    let meta = sandbox.authorize("meta", &authorize_params("meta")).await;
    assert!(meta
        .body
        .contains("Sandbox — simulated Meta (Facebook) consent screen."));
    assert!(meta
        .body
        .contains("<input type=\"checkbox\" name=\"scope\" value=\"pages_show_list\" checked>"));
}

#[tokio::test]
async fn consent_page_escapes_what_it_renders() {
    let sandbox = Sandbox::new();
    // Pinterest's lenient reading shows a scope it does not know; Meta's strict one names it on
    // its error page.
    let script = "<script>alert(1)</script>";
    let params = with(
        authorize_params("pinterest"),
        "scope",
        &format!("boards:read,{script}"),
    );
    let page = sandbox.authorize("pinterest", &params).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>"));
    assert!(page.body.contains("&lt;script&gt;"));
    sandbox.sim.strict(true);
    let params = with(
        authorize_params("meta"),
        "scope",
        &format!("pages_show_list,{script}"),
    );
    let page = sandbox.authorize("meta", &params).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.body.contains("<script>"));
    assert!(page.body.contains("Invalid Scopes: &lt;script&gt;"));
}

#[tokio::test]
async fn unknown_client_gets_an_html_error_and_no_redirect() {
    let sandbox = Sandbox::new();
    for platform in PLATFORMS {
        let client_param = if platform == "tiktok" {
            "client_key"
        } else {
            "client_id"
        };
        let params = with(authorize_params(platform), client_param, "someone-else");
        let reply = sandbox.authorize(platform, &params).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{platform}");
        assert!(reply.headers.get(LOCATION).is_none());
        assert_eq!(reply.content_type(), "text/html; charset=utf-8");
    }
}

#[tokio::test]
async fn unregistered_redirect_uri_is_never_redirected_to() {
    let sandbox = Sandbox::new();
    for platform in PLATFORMS {
        let params = with(
            authorize_params(platform),
            "redirect_uri",
            "https://attacker.example/callback",
        );
        let reply = sandbox.authorize(platform, &params).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{platform}");
        assert!(reply.headers.get(LOCATION).is_none());
    }
}

#[tokio::test]
async fn missing_state_is_reported_through_the_redirect() {
    let sandbox = Sandbox::new();
    let reply = sandbox
        .authorize("google", &without(authorize_params("google"), "state"))
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn denying_consent_redirects_with_access_denied_and_the_state() {
    let sandbox = Sandbox::new();
    let page = sandbox
        .authorize("google", &authorize_params("google"))
        .await;
    let reply = sandbox.decide("google", &page, "deny", &[]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(reply.location_param("state").as_deref(), Some("st-google"));
    assert!(reply.location_param("code").is_none());
}

#[tokio::test]
async fn meta_denial_carries_user_denied_and_permissions_error() {
    let sandbox = Sandbox::new();
    let page = sandbox.authorize("meta", &authorize_params("meta")).await;
    let reply = sandbox.decide("meta", &page, "deny", &[]).await;
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        reply.location_param("error_reason").as_deref(),
        Some("user_denied")
    );
    assert_eq!(
        reply.location_param("error_description").as_deref(),
        Some("Permissions error")
    );
    assert_eq!(reply.location_param("state").as_deref(), Some("st-meta"));
}

#[tokio::test]
async fn a_consent_screen_can_be_answered_only_once() {
    let sandbox = Sandbox::new();
    let page = sandbox
        .authorize("pinterest", &authorize_params("pinterest"))
        .await;
    let first = sandbox
        .decide("pinterest", &page, "approve", &["pins:read"])
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let second = sandbox
        .decide("pinterest", &page, "approve", &["pins:read"])
        .await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.content_type(), "text/html; charset=utf-8");
}

#[tokio::test]
async fn unchecked_scopes_are_not_granted_and_the_override_wins() {
    let sandbox = Sandbox::new();
    let code = sandbox
        .code_with("google", &authorize_params("google"), &["openid", "email"])
        .await;
    let reply = sandbox.exchange("google", &code).await;
    assert_eq!(str_field(&reply.json(), "/scope"), "openid email");

    sandbox
        .sim
        .set_granted_scopes_override("google", Some(vec!["openid".to_owned()]));
    let code = sandbox.code("google").await;
    let reply = sandbox.exchange("google", &code).await;
    assert_eq!(str_field(&reply.json(), "/scope"), "openid");
}

#[tokio::test]
async fn endpoints_mirror_the_platform_paths_under_the_sandbox_prefix() {
    let tiktok = endpoints("http://127.0.0.1:8003", "tiktok").expect("tiktok is simulated");
    assert_eq!(
        tiktok.authorize,
        "http://127.0.0.1:8003/sandbox/tiktok/v2/auth/authorize/"
    );
    assert_eq!(
        tiktok.token,
        "http://127.0.0.1:8003/sandbox/tiktok/v2/oauth/token/"
    );
    let meta = endpoints("http://h", "meta").expect("meta is simulated");
    assert_eq!(meta.revoke, "http://h/sandbox/meta/v25.0/me/permissions");
    assert!(endpoints("http://h", "myspace").is_none());
}

#[tokio::test]
async fn debug_output_never_shows_client_secrets() {
    let sandbox = Sandbox::new();
    let printed = format!(
        "{:?} {:?}",
        sandbox.sim,
        Simulator::sandbox_client("google", API)
    );
    assert!(!printed.contains("secret\""));
    assert!(!printed.contains("sandbox-google-secret"));
}

// ---- faults and observations -----------------------------------------------------------------

#[tokio::test]
async fn injected_status_fault_answers_in_the_platform_shape_and_is_recorded_as_failed() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("tiktok").await;
    sandbox.sim.set_fault("tiktok", Some(Fault::Status(503)));
    let reply = sandbox.exchange("tiktok", &code).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        str_field(&reply.json(), "/error"),
        "temporarily_unavailable"
    );
    assert!(reply.json().get("log_id").is_some());

    sandbox.sim.set_fault("tiktok", None);
    let reply = sandbox.exchange("tiktok", &code).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a fault does not consume the code"
    );
    assert_eq!(
        sandbox.sim.token_requests("tiktok"),
        vec![
            TokenRequestRecord {
                grant_type: "authorization_code".to_owned(),
                ok: false,
                status: 503
            },
            TokenRequestRecord {
                grant_type: "authorization_code".to_owned(),
                ok: true,
                status: 200
            },
        ]
    );
}

#[tokio::test]
async fn garbage_and_rate_limit_faults_look_like_broken_and_throttled_platforms() {
    let sandbox = Sandbox::new();
    sandbox.sim.set_fault("google", Some(Fault::Garbage));
    let reply = sandbox.exchange("google", "any").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "<html>not json");

    sandbox.sim.set_fault(
        "google",
        Some(Fault::RateLimited {
            retry_after_seconds: 7,
        }),
    );
    let reply = sandbox.exchange("google", "any").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        reply.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let records = sandbox.sim.token_requests("google");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| !r.ok));
    assert_eq!(records[0].status, 200);
}

#[tokio::test]
async fn delay_fault_answers_normally_after_waiting() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("pinterest").await;
    sandbox.sim.set_fault(
        "pinterest",
        Some(Fault::Delay(StdDuration::from_millis(20))),
    );
    let started = std::time::Instant::now();
    let reply = sandbox.exchange("pinterest", &code).await;
    assert!(started.elapsed() >= StdDuration::from_millis(20));
    assert_eq!(reply.status, StatusCode::OK);
    assert!(sandbox.sim.token_requests("pinterest")[0].ok);
}

/// Sends `form` to `platform`'s token endpoint over a real connection to `router` and returns
/// every byte that comes back before the connection ends.
async fn raw_token_call(router: Router, platform: &str, form: &Params) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let body = serde_urlencoded::to_string(form).expect("encodable form");
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        Sandbox::endpoints(platform).token,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the router listens");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    // A reset instead of an orderly close is a lost answer too: whatever arrived is returned.
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

#[tokio::test]
async fn a_lost_answer_rotates_at_the_platform_while_the_caller_gets_not_a_byte() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("tiktok").await;
    let first = sandbox.exchange("tiktok", &code).await.json();
    let old = str_field(&first, "/refresh_token").to_owned();
    let refresh = |token: &str| {
        params(&[
            ("client_key", &client_id("tiktok")),
            ("client_secret", &client_secret("tiktok")),
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
        ])
    };
    sandbox.sim.set_fault("tiktok", Some(Fault::LoseAnswer));
    let answer = raw_token_call(sandbox.app.clone(), "tiktok", &refresh(&old)).await;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "",
        "the connection ends before any byte of the answer"
    );
    assert_eq!(
        sandbox.sim.token_requests("tiktok").last(),
        Some(&TokenRequestRecord {
            grant_type: "refresh_token".to_owned(),
            ok: false,
            status: 200
        }),
        "recorded with the platform's status, never as ok"
    );
    // The platform acted: it minted a successor and retired the presented refresh token.
    let issued = sandbox.sim.issued_refresh_tokens("tiktok");
    assert_eq!(issued.len(), 2);
    sandbox.sim.set_fault("tiktok", None);
    let reuse = sandbox.token("tiktok", &refresh(&old), None).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    let lost = sandbox.token("tiktok", &refresh(&issued[1]), None).await;
    assert_eq!(lost.status, StatusCode::OK, "the lost successor works");
}

#[tokio::test]
async fn a_held_call_waits_for_the_fault_to_change_and_then_goes_on_under_the_new_one() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    sandbox.sim.set_fault("google", Some(Fault::Hold));
    let call = {
        let app = sandbox.app.clone();
        let (form, _) = exchange_params("google", &code);
        tokio::spawn(async move { raw_token_call(app, "google", &form).await })
    };
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    while sandbox.sim.held_token_calls("google") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never arrived"
        );
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    assert!(
        sandbox.sim.token_requests("google").is_empty(),
        "a held call is not answered, so not recorded"
    );
    // Another fault is still no release.
    sandbox.sim.set_fault("google", Some(Fault::Hold));
    assert_eq!(sandbox.sim.held_token_calls("google"), 1);
    sandbox.sim.set_fault("google", None);
    let answer = String::from_utf8_lossy(&call.await.expect("the call ends")).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(sandbox.sim.held_token_calls("google"), 0);
    assert!(sandbox.sim.token_requests("google")[0].ok);
}

#[tokio::test]
async fn access_token_ttl_override_applies_to_new_tokens() {
    let sandbox = Sandbox::new();
    sandbox.sim.set_access_token_ttl("google", 60);
    let code = sandbox.code("google").await;
    let reply = sandbox.exchange("google", &code).await.json();
    assert_eq!(reply["expires_in"], 60);
    let token = str_field(&reply, "/access_token").to_owned();
    sandbox.clock.advance(Duration::seconds(61));
    let info = sandbox
        .get("/sandbox/google/v1/userinfo", Some(&token))
        .await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
}

// ---- Meta ------------------------------------------------------------------------------------

async fn meta_token(sandbox: &Sandbox) -> String {
    let code = sandbox.code("meta").await;
    let (form, _) = exchange_params("meta", &code);
    let query = serde_urlencoded::to_string(&form).expect("encodable");
    let reply = sandbox
        .get(
            &format!("/sandbox/meta/v25.0/oauth/access_token?{query}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    str_field(&reply.json(), "/access_token").to_owned()
}

#[tokio::test]
async fn meta_happy_path_from_dialog_to_pages_and_permission_removal() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("meta").await;
    let (form, _) = exchange_params("meta", &code);
    let query = serde_urlencoded::to_string(&form).expect("encodable");
    let reply = sandbox
        .get(
            &format!("/sandbox/meta/v25.0/oauth/access_token?{query}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    assert!(body.get("refresh_token").is_none() && body.get("scope").is_none());
    let token = str_field(&body, "/access_token").to_owned();

    let me = sandbox
        .get(
            &format!("/sandbox/meta/v25.0/me?fields=id,name,picture&access_token={token}"),
            None,
        )
        .await
        .json();
    assert_eq!(me["id"], "1000000001");
    assert_eq!(me["name"], "Sandbox Merchant");
    assert!(str_field(&me, "/picture/data/url").starts_with("https://"));

    let pages = sandbox
        .get("/sandbox/meta/v25.0/me/accounts", Some(&token))
        .await
        .json();
    let pages = pages["data"].as_array().expect("a list of pages");
    assert_eq!(pages.len(), 2);
    assert!(pages.iter().all(|p| p["access_token"].is_string()));
    assert!(pages
        .iter()
        .any(|p| p["instagram_business_account"]["id"].is_string()));

    let permissions = sandbox
        .get("/sandbox/meta/v25.0/me/permissions", Some(&token))
        .await
        .json();
    assert_eq!(permissions["data"][0]["permission"], "pages_show_list");
    assert_eq!(permissions["data"][0]["status"], "granted");

    let revoke = sandbox
        .request(
            "DELETE",
            &format!("/sandbox/meta/v25.0/me/permissions?access_token={token}"),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(revoke.json()["success"], true);
    assert_eq!(sandbox.sim.revocations("meta"), vec![token.clone()]);
    let after = sandbox.get("/sandbox/meta/v25.0/me", Some(&token)).await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST);
    assert_eq!(after.json()["error"]["code"], 190);
    assert_eq!(after.json()["error"]["type"], "OAuthException");
}

#[tokio::test]
async fn meta_accepts_comma_or_space_separated_permissions() {
    let sandbox = Sandbox::new();
    for scope in ["pages_show_list,ads_read", "pages_show_list ads_read"] {
        let params = with(authorize_params("meta"), "scope", scope);
        let page = sandbox.authorize("meta", &params).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("value=\"ads_read\""));
    }
}

#[tokio::test]
async fn meta_dialog_refuses_app_id_in_place_of_client_id() {
    let sandbox = Sandbox::new();
    let params = without(authorize_params("meta"), "client_id");
    let params = with(params, "app_id", &client_id("meta"));
    let reply = sandbox.authorize("meta", &params).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn meta_ignores_basic_auth_and_wants_the_secret_as_a_parameter() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("meta").await;
    let (form, _) = exchange_params("meta", &code);
    let basic = (client_id("meta"), client_secret("meta"));
    let reply = sandbox
        .token(
            "meta",
            &without(form.clone(), "client_secret"),
            Some(&basic),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], 101);
    let wrong = with(form, "client_secret", "nope");
    let reply = sandbox.token("meta", &wrong, None).await;
    assert_eq!(reply.json()["error"]["code"], 101);
    assert!(reply.json()["error"]["fbtrace_id"].is_string());
}

#[tokio::test]
async fn meta_code_needs_the_dialogs_exact_redirect_uri_and_is_single_use() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("meta").await;
    let (form, _) = exchange_params("meta", &code);
    let slash = with(
        form.clone(),
        "redirect_uri",
        &format!("{}/", redirect_uri("meta")),
    );
    let reply = sandbox.token("meta", &slash, None).await;
    assert_eq!(reply.json()["error"]["code"], 100);
    assert_eq!(reply.json()["error"]["error_subcode"], 36008);

    assert_eq!(
        sandbox.token("meta", &form, None).await.status,
        StatusCode::OK
    );
    let again = sandbox.token("meta", &form, None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"]["error_subcode"], 36009);
}

#[tokio::test]
async fn meta_exchanges_a_valid_token_for_a_new_long_lived_one() {
    let sandbox = Sandbox::new();
    let short = meta_token(&sandbox).await;
    let form = params(&[
        ("grant_type", "fb_exchange_token"),
        ("client_id", &client_id("meta")),
        ("client_secret", &client_secret("meta")),
        ("fb_exchange_token", &short),
    ]);
    let reply = sandbox.token("meta", &form, None).await.json();
    assert_eq!(reply["expires_in"], 5_183_944);
    let long = str_field(&reply, "/access_token");
    assert_ne!(long, short);
    let old = sandbox.get("/sandbox/meta/v25.0/me", Some(&short)).await;
    assert_eq!(old.status, StatusCode::OK, "the old token stays valid");
}

#[tokio::test]
async fn meta_refuses_to_exchange_an_expired_token() {
    let sandbox = Sandbox::new();
    let short = meta_token(&sandbox).await;
    sandbox.clock.advance(Duration::hours(3));
    let form = params(&[
        ("grant_type", "fb_exchange_token"),
        ("client_id", &client_id("meta")),
        ("client_secret", &client_secret("meta")),
        ("fb_exchange_token", &short),
    ]);
    let reply = sandbox.token("meta", &form, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], 190);
    assert!(!sandbox.sim.token_requests("meta")[1].ok);
}

#[tokio::test]
async fn meta_lists_no_pages_without_pages_show_list() {
    let sandbox = Sandbox::new();
    let code = sandbox
        .code_with(
            "meta",
            &authorize_params("meta"),
            &["pages_read_engagement"],
        )
        .await;
    let token = sandbox.exchange("meta", &code).await.json();
    let token = str_field(&token, "/access_token");
    let pages = sandbox
        .get("/sandbox/meta/v25.0/me/accounts", Some(token))
        .await
        .json();
    assert_eq!(pages["data"].as_array().map(Vec::len), Some(0));
    let permissions = sandbox
        .get("/sandbox/meta/v25.0/me/permissions", Some(token))
        .await
        .json();
    assert_eq!(permissions["data"][0]["status"], "declined");
}

/// Calls `debug_token` about `input` with `app_token` as the app access token.
async fn debug_token(sandbox: &Sandbox, input: &str, app_token: Option<&str>) -> Reply {
    let mut query = params(&[("input_token", input)]);
    if let Some(app_token) = app_token {
        query.push(("access_token".to_owned(), app_token.to_owned()));
    }
    let query = serde_urlencoded::to_string(&query).expect("encodable");
    sandbox
        .get(&format!("/sandbox/meta/v25.0/debug_token?{query}"), None)
        .await
}

fn app_token() -> String {
    format!("{}|{}", client_id("meta"), client_secret("meta"))
}

#[tokio::test]
async fn meta_debug_token_reports_the_data_access_window_from_the_grant() {
    let sandbox = Sandbox::new();
    let granted_at = sandbox.clock.now();
    let token = meta_token(&sandbox).await;
    sandbox.clock.advance(Duration::minutes(30));
    let reply = debug_token(&sandbox, &token, Some(&app_token())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let data = &reply.json()["data"];
    assert_eq!(data["is_valid"], true);
    assert_eq!(data["app_id"], client_id("meta"));
    assert_eq!(data["type"], "USER");
    assert_eq!(data["user_id"], "1000000001");
    assert_eq!(
        data["data_access_expires_at"],
        (granted_at + Duration::days(90)).timestamp()
    );
    assert_eq!(
        data["expires_at"],
        (granted_at + Duration::hours(2)).timestamp()
    );
    assert_eq!(
        data["scopes"],
        serde_json::json!(["pages_show_list", "pages_read_engagement"])
    );
    assert_eq!(data["granular_scopes"][1]["scope"], "pages_read_engagement");
    assert_eq!(data["granular_scopes"][1]["target_ids"][0], "2000000001");
    assert!(data.get("error").is_none());
}

#[tokio::test]
async fn meta_debug_token_wants_this_apps_access_token() {
    let sandbox = Sandbox::new();
    let token = meta_token(&sandbox).await;
    let missing = debug_token(&sandbox, &token, None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"]["code"], 104);
    let wrong_secret = format!("{}|nope", client_id("meta"));
    let unknown_app = format!("123456|{}", client_secret("meta"));
    // The user's own token is not the app's.
    for app_token in [wrong_secret.as_str(), unknown_app.as_str(), token.as_str()] {
        let reply = debug_token(&sandbox, &token, Some(app_token)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{app_token}");
        let error = &reply.json()["error"];
        assert_eq!(error["code"], 190);
        assert_eq!(error["type"], "OAuthException");
        assert!(error["fbtrace_id"].is_string());
    }
    let no_input = sandbox
        .get(
            &format!(
                "/sandbox/meta/v25.0/debug_token?access_token={}",
                app_token().replace('|', "%7C")
            ),
            None,
        )
        .await;
    assert_eq!(no_input.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_input.json()["error"]["code"], 100);
}

#[tokio::test]
async fn meta_debug_token_says_invalid_for_expired_revoked_and_unknown_tokens() {
    let sandbox = Sandbox::new();
    let expired = meta_token(&sandbox).await;
    sandbox.clock.advance(Duration::hours(3));
    let data = debug_token(&sandbox, &expired, Some(&app_token()))
        .await
        .json()["data"]
        .clone();
    assert_eq!(data["is_valid"], false);
    assert_eq!(data["error"]["code"], 190);
    assert_eq!(data["error"]["subcode"], 463);
    assert!(data["data_access_expires_at"].is_i64(), "still described");

    let revoked = meta_token(&sandbox).await;
    sandbox.sim.revoke_all_grants("meta");
    let data = debug_token(&sandbox, &revoked, Some(&app_token()))
        .await
        .json()["data"]
        .clone();
    assert_eq!(data["is_valid"], false);
    assert_eq!(data["error"]["subcode"], 458);

    let reply = debug_token(&sandbox, "EAAnotatoken", Some(&app_token())).await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = &reply.json()["data"];
    assert_eq!(data["is_valid"], false);
    assert_eq!(data["error"]["code"], 190);
    assert!(data.get("data_access_expires_at").is_none());
}

// ---- TikTok ----------------------------------------------------------------------------------

#[tokio::test]
async fn tiktok_happy_path_from_consent_to_revocation() {
    let sandbox = Sandbox::new();
    let page = sandbox
        .authorize("tiktok", &authorize_params("tiktok"))
        .await;
    let answer = sandbox
        .decide(
            "tiktok",
            &page,
            "approve",
            &["user.info.basic", "video.publish"],
        )
        .await;
    assert_eq!(
        answer.location_param("scopes").as_deref(),
        Some("user.info.basic,video.publish")
    );
    assert_eq!(answer.location_param("state").as_deref(), Some("st-tiktok"));
    let code = answer.location_param("code").expect("a code");

    let body = sandbox.exchange("tiktok", &code).await.json();
    assert!(str_field(&body, "/access_token").starts_with("act."));
    assert!(str_field(&body, "/refresh_token").starts_with("rft."));
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["refresh_expires_in"], 31_536_000);
    assert_eq!(body["open_id"], "sbx-tiktok-open-id");
    assert_eq!(body["scope"], "user.info.basic,video.publish");
    assert_eq!(body["token_type"], "Bearer");
    let token = str_field(&body, "/access_token").to_owned();

    let info = sandbox
        .get(
            "/sandbox/tiktok/v2/user/info/?fields=open_id,display_name",
            Some(&token),
        )
        .await
        .json();
    assert_eq!(info["data"]["user"]["open_id"], "sbx-tiktok-open-id");
    assert_eq!(info["data"]["user"]["display_name"], "Sandbox Merchant");
    assert!(info["data"]["user"].get("avatar_url").is_none());
    assert_eq!(info["error"]["code"], "ok");

    let revoke = params(&[
        ("client_key", &client_id("tiktok")),
        ("client_secret", &client_secret("tiktok")),
        ("token", &token),
    ]);
    let reply = sandbox
        .post("/sandbox/tiktok/v2/oauth/revoke/", &revoke, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(sandbox.sim.revocations("tiktok"), vec![token.clone()]);
    let after = sandbox
        .get("/sandbox/tiktok/v2/user/info/?fields=open_id", Some(&token))
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json()["error"]["code"], "access_token_invalid");
}

#[tokio::test]
async fn tiktok_rejects_client_id_instead_of_client_key() {
    let sandbox = Sandbox::new();
    let params = without(authorize_params("tiktok"), "client_key");
    let params = with(params, "client_id", &client_id("tiktok"));
    let reply = sandbox.authorize("tiktok", &params).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("client_key"));

    let code = sandbox.code("tiktok").await;
    let (form, _) = exchange_params("tiktok", &code);
    let form = with(
        without(form, "client_key"),
        "client_id",
        &client_id("tiktok"),
    );
    let reply = sandbox.token("tiktok", &form, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert!(reply.json()["log_id"].is_string());
}

#[tokio::test]
async fn tiktok_rejects_basic_auth_in_place_of_body_credentials() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("tiktok").await;
    let (form, _) = exchange_params("tiktok", &code);
    let form = without(without(form, "client_key"), "client_secret");
    let basic = (client_id("tiktok"), client_secret("tiktok"));
    let reply = sandbox.token("tiktok", &form, Some(&basic)).await;
    assert_eq!(reply.json()["error"], "invalid_client");
}

#[tokio::test]
async fn tiktok_rejects_space_separated_scopes() {
    let sandbox = Sandbox::new();
    let params = with(
        authorize_params("tiktok"),
        "scope",
        "user.info.basic video.publish",
    );
    let reply = sandbox.authorize("tiktok", &params).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(reply.location_param("state").as_deref(), Some("st-tiktok"));
}

#[tokio::test]
async fn tiktok_rejects_a_different_redirect_uri_and_a_reused_code() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("tiktok").await;
    let (form, _) = exchange_params("tiktok", &code);
    let other = with(form.clone(), "redirect_uri", "http://localhost:8080/other");
    let reply = sandbox.token("tiktok", &other, None).await;
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(
        reply.json()["error_description"],
        "Redirect_uri is not matched with the uri when requesting code."
    );
    assert_eq!(
        sandbox.token("tiktok", &form, None).await.status,
        StatusCode::OK
    );
    let again = sandbox.token("tiktok", &form, None).await;
    assert_eq!(again.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn tiktok_requires_a_form_encoded_body() {
    let sandbox = Sandbox::new();
    let request = Request::builder()
        .method("POST")
        .uri("/sandbox/tiktok/v2/oauth/token/")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("a valid request");
    let reply = sandbox.send(request).await;
    assert_eq!(reply.json()["error"], "invalid_request");
}

#[tokio::test]
async fn tiktok_refresh_rotates_and_the_old_refresh_token_stops_working() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("tiktok").await;
    let first = sandbox.exchange("tiktok", &code).await.json();
    let old = str_field(&first, "/refresh_token").to_owned();
    let refresh = |token: &str| {
        params(&[
            ("client_key", &client_id("tiktok")),
            ("client_secret", &client_secret("tiktok")),
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
        ])
    };
    let reply = sandbox.token("tiktok", &refresh(&old), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let new = str_field(&reply.json(), "/refresh_token").to_owned();
    assert_ne!(new, old);

    let reuse = sandbox.token("tiktok", &refresh(&old), None).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    let next = sandbox.token("tiktok", &refresh(&new), None).await;
    assert_eq!(
        next.status,
        StatusCode::OK,
        "TikTok does not kill the family"
    );
}

#[tokio::test]
async fn tiktok_user_info_requires_fields() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("tiktok").await;
    let body = sandbox.exchange("tiktok", &code).await.json();
    let token = str_field(&body, "/access_token");
    let reply = sandbox
        .get("/sandbox/tiktok/v2/user/info/", Some(token))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], "invalid_params");
}

// ---- Google ----------------------------------------------------------------------------------

#[tokio::test]
async fn google_happy_path_with_pkce_offline_access_and_revocation() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    assert!(
        code.starts_with("4/"),
        "the callback carried the code URL-encoded"
    );
    let body = sandbox.exchange("google", &code).await.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(
        body["scope"],
        "openid email profile https://www.googleapis.com/auth/adwords"
    );
    let access = str_field(&body, "/access_token").to_owned();
    let refresh = str_field(&body, "/refresh_token").to_owned();
    assert!(!refresh.is_empty());

    let me = sandbox
        .get("/sandbox/google/v1/userinfo", Some(&access))
        .await
        .json();
    assert_eq!(me["sub"], "100000000000000000001");
    assert_eq!(me["email"], "merchant@sandbox.example");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["given_name"], "Sandbox");

    let revoke = sandbox
        .post(
            "/sandbox/google/revoke",
            &params(&[("token", &refresh)]),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    assert_eq!(revoke.json(), serde_json::json!({}));
    assert_eq!(sandbox.sim.revocations("google"), vec![refresh.clone()]);
    let after = sandbox
        .get("/sandbox/google/v1/userinfo", Some(&access))
        .await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "revoking the refresh token kills the grant"
    );
    let again = sandbox
        .post(
            "/sandbox/google/revoke",
            &params(&[("token", &refresh)]),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_token");
}

#[tokio::test]
async fn google_gives_a_refresh_token_only_on_first_offline_consent_or_prompt_consent() {
    let sandbox = Sandbox::new();
    let online = without(authorize_params("google"), "access_type");
    let code = sandbox.code_with("google", &online, &["openid"]).await;
    let body = sandbox.exchange("google", &code).await.json();
    assert!(body.get("refresh_token").is_none(), "online access");

    let code = sandbox.code("google").await;
    let body = sandbox.exchange("google", &code).await.json();
    assert!(body.get("refresh_token").is_none(), "not the first consent");

    let again = with(authorize_params("google"), "prompt", "consent");
    let code = sandbox.code_with("google", &again, &["openid"]).await;
    let body = sandbox.exchange("google", &code).await.json();
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn google_refresh_answers_without_a_refresh_token() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    let body = sandbox.exchange("google", &code).await.json();
    let refresh = str_field(&body, "/refresh_token").to_owned();
    let form = params(&[
        ("client_id", &client_id("google")),
        ("client_secret", &client_secret("google")),
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
    ]);
    for _ in 0..2 {
        let reply = sandbox.token("google", &form, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.json().get("refresh_token").is_none());
        assert!(reply.json()["access_token"].is_string());
    }
    sandbox.sim.revoke_all_grants("google");
    let reply = sandbox.token("google", &form, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn google_rejects_comma_separated_scopes() {
    let sandbox = Sandbox::new();
    let params = with(authorize_params("google"), "scope", "openid,email");
    let reply = sandbox.authorize("google", &params).await;
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_scope")
    );
}

#[tokio::test]
async fn google_rejects_a_missing_or_wrong_pkce_verifier() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    let (form, _) = exchange_params("google", &code);
    let missing = sandbox
        .token("google", &without(form.clone(), "code_verifier"), None)
        .await;
    assert_eq!(missing.json()["error"], "invalid_grant");
    let wrong = with(
        form.clone(),
        "code_verifier",
        "another-verifier-0123456789abcdefghijklmnopqrstuvwxyz",
    );
    assert_eq!(
        sandbox.token("google", &wrong, None).await.json()["error"],
        "invalid_grant"
    );
    assert_eq!(
        sandbox.token("google", &form, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn google_accepts_basic_auth_and_rejects_a_wrong_secret_with_401() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    let (form, _) = exchange_params("google", &code);
    let wrong = with(form.clone(), "client_secret", "nope");
    let reply = sandbox.token("google", &wrong, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");

    let body_only_id = without(without(form, "client_secret"), "client_id");
    let basic = (client_id("google"), client_secret("google"));
    let reply = sandbox.token("google", &body_only_id, Some(&basic)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn google_rejects_client_key_in_place_of_client_id() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    let (form, _) = exchange_params("google", &code);
    let form = with(
        without(form, "client_id"),
        "client_key",
        &client_id("google"),
    );
    let reply = sandbox.token("google", &form, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
}

#[tokio::test]
async fn google_rejects_a_different_redirect_uri_and_a_reused_code() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("google").await;
    let (form, _) = exchange_params("google", &code);
    let other = with(
        form.clone(),
        "redirect_uri",
        "HTTP://localhost:8080/api/v1/oauth/callback/google",
    );
    let reply = sandbox.token("google", &other, None).await;
    assert_eq!(reply.json()["error"], "redirect_uri_mismatch");
    let first = sandbox.token("google", &form, None).await.json();
    let again = sandbox.token("google", &form, None).await;
    assert_eq!(again.json()["error"], "invalid_grant");
    let access = str_field(&first, "/access_token");
    let info = sandbox
        .get("/sandbox/google/v1/userinfo", Some(access))
        .await;
    assert_eq!(
        info.status,
        StatusCode::UNAUTHORIZED,
        "a replayed code revokes what it issued"
    );
}

// ---- Pinterest -------------------------------------------------------------------------------

#[tokio::test]
async fn pinterest_happy_path_ends_with_revocation_refused() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("pinterest").await;
    let body = sandbox.exchange("pinterest", &code).await.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 2_592_000);
    assert_eq!(body["scope"], "boards:read pins:read user_accounts:read");
    assert_eq!(body["response_type"], "authorization_code");
    assert_eq!(body["refresh_token_expires_in"], 5_184_000);
    assert!(body["refresh_token_expires_at"].is_i64());
    assert!(str_field(&body, "/access_token").starts_with("pina"));
    assert!(str_field(&body, "/refresh_token").starts_with("pinr"));
    let access = str_field(&body, "/access_token").to_owned();

    let me = sandbox
        .get("/sandbox/pinterest/v5/user_account", Some(&access))
        .await
        .json();
    assert_eq!(me["account_type"], "BUSINESS");
    assert_eq!(me["username"], "sandboxmerchant");

    let basic = (client_id("pinterest"), client_secret("pinterest"));
    let revoke = sandbox
        .post(
            "/sandbox/pinterest/v5/oauth/token/revoke",
            &params(&[("token", &access), ("token_type_hint", "access_token")]),
            Some(&basic),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::FORBIDDEN);
    assert_eq!(revoke.json()["code"], 29);
    assert!(sandbox.sim.revocations("pinterest").is_empty());
}

#[tokio::test]
async fn pinterest_requires_basic_auth_even_with_credentials_in_the_body() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("pinterest").await;
    let (form, _) = exchange_params("pinterest", &code);
    let form = with(
        with(form, "client_id", &client_id("pinterest")),
        "client_secret",
        &client_secret("pinterest"),
    );
    let reply = sandbox.token("pinterest", &form, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "code": 2, "message": "Authentication failed." })
    );
}

#[tokio::test]
async fn pinterest_rejects_space_separated_scopes() {
    let sandbox = Sandbox::new();
    let params = with(
        authorize_params("pinterest"),
        "scope",
        "boards:read pins:read",
    );
    let reply = sandbox.authorize("pinterest", &params).await;
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_scope")
    );
}

#[tokio::test]
async fn pinterest_rejects_a_misnamed_code_a_different_redirect_uri_and_a_reused_code() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("pinterest").await;
    let (form, basic) = exchange_params("pinterest", &code);
    let misnamed = with(without(form.clone(), "code"), "auth_code", &code);
    let reply = sandbox.token("pinterest", &misnamed, basic.as_ref()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["code"], 1);
    let other = with(
        form.clone(),
        "redirect_uri",
        "http://localhost:8080/elsewhere",
    );
    let reply = sandbox.token("pinterest", &other, basic.as_ref()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        sandbox
            .token("pinterest", &form, basic.as_ref())
            .await
            .status,
        StatusCode::OK
    );
    let again = sandbox.token("pinterest", &form, basic.as_ref()).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.json()["message"].is_string());
}

#[tokio::test]
async fn pinterest_refresh_returns_a_new_refresh_token_with_its_expiry() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("pinterest").await;
    let body = sandbox.exchange("pinterest", &code).await.json();
    let old = str_field(&body, "/refresh_token").to_owned();
    let basic = (client_id("pinterest"), client_secret("pinterest"));
    let form = params(&[("grant_type", "refresh_token"), ("refresh_token", &old)]);
    let reply = sandbox.token("pinterest", &form, Some(&basic)).await.json();
    assert!(str_field(&reply, "/refresh_token").starts_with("pinr"));
    assert_ne!(str_field(&reply, "/refresh_token"), old);
    assert_eq!(reply["refresh_token_expires_in"], 5_184_000);
    assert!(reply["refresh_token_expires_at"].is_i64());

    sandbox.sim.revoke_all_grants("pinterest");
    let dead = sandbox.token("pinterest", &form, Some(&basic)).await;
    assert_eq!(dead.status, StatusCode::BAD_REQUEST);
    assert!(dead.json()["code"].is_u64());
}

// ---- X ---------------------------------------------------------------------------------------

fn twitter_basic() -> (String, String) {
    (client_id("twitter"), client_secret("twitter"))
}

#[tokio::test]
async fn twitter_happy_path_with_pkce_and_revocation() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let body = sandbox.exchange("twitter", &code).await.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["scope"], "tweet.read users.read offline.access");
    assert!(body["refresh_token"].is_string());
    let access = str_field(&body, "/access_token").to_owned();

    let me = sandbox
        .get(
            "/sandbox/twitter/2/users/me?user.fields=profile_image_url",
            Some(&access),
        )
        .await
        .json();
    assert_eq!(me["data"]["id"], "1000000000000000001");
    assert_eq!(me["data"]["username"], "sandboxmerchant");
    assert!(me["data"]["profile_image_url"].is_string());

    let revoke = sandbox
        .post(
            "/sandbox/twitter/2/oauth2/revoke",
            &params(&[("token", &access), ("token_type_hint", "access_token")]),
            Some(&twitter_basic()),
        )
        .await;
    assert_eq!(revoke.json(), serde_json::json!({ "revoked": true }));
    assert_eq!(sandbox.sim.revocations("twitter"), vec![access.clone()]);
    let after = sandbox
        .get("/sandbox/twitter/2/users/me", Some(&access))
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json()["title"], "Unauthorized");
    assert_eq!(after.json()["status"], 401);
}

#[tokio::test]
async fn twitter_requires_a_pkce_challenge() {
    let sandbox = Sandbox::new();
    let params = without(authorize_params("twitter"), "code_challenge");
    let reply = sandbox.authorize("twitter", &params).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(reply.location_param("state").as_deref(), Some("st-twitter"));
}

#[tokio::test]
async fn twitter_rejects_a_missing_or_wrong_code_verifier() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let (form, basic) = exchange_params("twitter", &code);
    let missing = sandbox
        .token(
            "twitter",
            &without(form.clone(), "code_verifier"),
            basic.as_ref(),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"], "invalid_request");
    let wrong = with(
        form,
        "code_verifier",
        "another-verifier-0123456789abcdefghijklmnopqrstuvwxyz",
    );
    let reply = sandbox.token("twitter", &wrong, basic.as_ref()).await;
    assert_eq!(reply.json()["error"], "invalid_request");
}

#[tokio::test]
async fn twitter_rejects_a_code_older_than_thirty_seconds() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    sandbox.clock.advance(Duration::seconds(31));
    let reply = sandbox.exchange("twitter", &code).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json()["error_description"],
        "Value passed for the authorization code was invalid."
    );
}

#[tokio::test]
async fn twitter_rejects_a_token_request_without_basic_auth() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let (form, _) = exchange_params("twitter", &code);
    let form = with(form, "client_id", &client_id("twitter"));
    let reply = sandbox.token("twitter", &form, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "unauthorized_client");
    assert_eq!(
        reply.json()["error_description"],
        "Missing valid authorization header"
    );
    let both = sandbox
        .token("twitter", &form, Some(&twitter_basic()))
        .await;
    assert_eq!(
        both.status,
        StatusCode::OK,
        "client_id beside Basic is accepted"
    );
}

#[tokio::test]
async fn twitter_rejects_the_verifier_under_another_name() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let (form, basic) = exchange_params("twitter", &code);
    let form = with(without(form, "code_verifier"), "verifier", VERIFIER);
    let reply = sandbox.token("twitter", &form, basic.as_ref()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json()["error_description"],
        "Missing required parameter [code_verifier]."
    );
}

#[tokio::test]
async fn twitter_does_not_revoke_another_clients_token() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let body = sandbox.exchange("twitter", &code).await.json();
    let access = str_field(&body, "/access_token").to_owned();
    let other = ("sandbox-twitter-client".to_owned(), "wrong".to_owned());
    let refused = sandbox
        .post(
            "/sandbox/twitter/2/oauth2/revoke",
            &params(&[("token", &access)]),
            Some(&other),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(sandbox.sim.revocations("twitter").is_empty());
    let me = sandbox
        .get("/sandbox/twitter/2/users/me", Some(&access))
        .await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn twitter_rejects_comma_separated_scopes() {
    let sandbox = Sandbox::new();
    let params = with(
        authorize_params("twitter"),
        "scope",
        "tweet.read,users.read",
    );
    let reply = sandbox.authorize("twitter", &params).await;
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_scope")
    );
}

#[tokio::test]
async fn twitter_rejects_a_different_redirect_uri_and_a_reused_code() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let (form, basic) = exchange_params("twitter", &code);
    let other = with(form.clone(), "redirect_uri", "http://localhost:8080/other");
    let reply = sandbox.token("twitter", &other, basic.as_ref()).await;
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(
        sandbox.token("twitter", &form, basic.as_ref()).await.status,
        StatusCode::OK
    );
    let again = sandbox.token("twitter", &form, basic.as_ref()).await;
    assert_eq!(again.json()["error"], "invalid_request");
}

#[tokio::test]
async fn twitter_issues_no_refresh_token_without_offline_access() {
    let sandbox = Sandbox::new();
    let code = sandbox
        .code_with(
            "twitter",
            &authorize_params("twitter"),
            &["tweet.read", "users.read"],
        )
        .await;
    let body = sandbox.exchange("twitter", &code).await.json();
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn twitter_refresh_rotates_and_reuse_kills_the_whole_family() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("twitter").await;
    let first = sandbox.exchange("twitter", &code).await.json();
    let old = str_field(&first, "/refresh_token").to_owned();
    let refresh =
        |token: &str| params(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
    let basic = twitter_basic();

    let second = sandbox
        .token("twitter", &refresh(&old), Some(&basic))
        .await
        .json();
    let newest = str_field(&second, "/refresh_token").to_owned();
    let newest_access = str_field(&second, "/access_token").to_owned();
    assert_ne!(newest, old);
    assert_eq!(
        sandbox
            .get("/sandbox/twitter/2/users/me", Some(&newest_access))
            .await
            .status,
        StatusCode::OK
    );

    let reuse = sandbox.token("twitter", &refresh(&old), Some(&basic)).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.json()["error"], "invalid_request");
    let family = sandbox
        .token("twitter", &refresh(&newest), Some(&basic))
        .await;
    assert_eq!(
        family.status,
        StatusCode::BAD_REQUEST,
        "the newest token died too"
    );
    assert_eq!(
        sandbox
            .get("/sandbox/twitter/2/users/me", Some(&newest_access))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let grant_types: Vec<String> = sandbox
        .sim
        .token_requests("twitter")
        .into_iter()
        .map(|r| r.grant_type)
        .collect();
    assert_eq!(
        grant_types,
        [
            "authorization_code",
            "refresh_token",
            "refresh_token",
            "refresh_token"
        ]
    );
    assert_eq!(
        sandbox.sim.issued_refresh_tokens("twitter"),
        vec![old, newest]
    );
}

#[tokio::test]
async fn google_include_granted_scopes_adds_what_was_granted_before_and_only_then() {
    let sandbox = Sandbox::new();
    let code = sandbox
        .code_with("google", &authorize_params("google"), &["openid", "email"])
        .await;
    let reply = sandbox.exchange("google", &code).await;
    assert_eq!(str_field(&reply.json(), "/scope"), "openid email");

    // Without include_granted_scopes the new grant holds only what this consent granted.
    let ads = "https://www.googleapis.com/auth/adwords";
    let only_ads = with(authorize_params("google"), "scope", ads);
    let code = sandbox.code_with("google", &only_ads, &[ads]).await;
    let reply = sandbox.exchange("google", &code).await;
    assert_eq!(str_field(&reply.json(), "/scope"), ads);

    // With it, the previously granted scopes come back with the new one.
    let incremental = with(only_ads, "include_granted_scopes", "true");
    let code = sandbox.code_with("google", &incremental, &[ads]).await;
    let reply = sandbox.exchange("google", &code).await;
    assert_eq!(
        str_field(&reply.json(), "/scope"),
        format!("openid email {ads}")
    );
}

#[tokio::test]
async fn meta_asks_again_for_a_declined_permission_only_with_auth_type_rerequest() {
    let sandbox = Sandbox::new();
    // The user declines pages_read_engagement.
    let code = sandbox
        .code_with("meta", &authorize_params("meta"), &["pages_show_list"])
        .await;
    assert_eq!(sandbox.exchange("meta", &code).await.status, StatusCode::OK);

    // A plain re-request does not show it again.
    let page = sandbox.authorize("meta", &authorize_params("meta")).await;
    assert!(
        !page.body.contains("value=\"pages_read_engagement\""),
        "{}",
        page.body
    );

    // auth_type=rerequest does; granting it yields a token with both, and the permission list says so.
    let rerequest = with(
        with(authorize_params("meta"), "scope", "pages_read_engagement"),
        "auth_type",
        "rerequest",
    );
    let page = sandbox.authorize("meta", &rerequest).await;
    assert!(
        page.body.contains("value=\"pages_read_engagement\""),
        "{}",
        page.body
    );
    let answer = sandbox
        .decide("meta", &page, "approve", &["pages_read_engagement"])
        .await;
    let code = answer.location_param("code").expect("a code");
    let reply = sandbox.exchange("meta", &code).await;
    let token = str_field(&reply.json(), "/access_token").to_owned();
    let permissions = sandbox
        .get("/sandbox/meta/v25.0/me/permissions", Some(&token))
        .await
        .json();
    let mut granted: Vec<&str> = permissions["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|p| p["status"] == "granted")
        .filter_map(|p| p["permission"].as_str())
        .collect();
    granted.sort_unstable();
    assert_eq!(granted, vec!["pages_read_engagement", "pages_show_list"]);
}

#[tokio::test]
async fn another_signed_in_account_has_its_own_identity() {
    let sandbox = Sandbox::new();
    sandbox.sim.set_signed_in_account("meta", 2);
    let code = sandbox.code("meta").await;
    let reply = sandbox.exchange("meta", &code).await;
    let token = str_field(&reply.json(), "/access_token").to_owned();
    let me = sandbox
        .get("/sandbox/meta/v25.0/me?fields=id,name", Some(&token))
        .await
        .json();
    assert_eq!(me["name"], "Other Merchant 2");
    assert_ne!(me["id"], "1000000001");
}
