//! The connections page over HTTP: links and sessions, the session's store only, CSRF and origin
//! checks, the cards, and the perimeter (security headers, CORS, HSTS, rate limits).

use growth_engine::domain::{StoreId, UserId};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{
    location, query_of, spawn_app, spawn_app_with, Browser, TestApp, TestAppOptions, API_KEY,
};

pub const DASHBOARD_SECRET: &str = "test-dashboard-secret-0123456789-abcdef";

/// A merchant's browser with an open dashboard session.
pub struct Merchant {
    pub browser: Browser,
    pub csrf: String,
    pub origin: String,
}

/// The link the main dashboard would mint.
pub fn link(app: &TestApp, store: &str, user: &str) -> String {
    app.services
        .dashboard
        .mint_link(
            &StoreId::parse(store).unwrap(),
            &UserId::parse(user).unwrap(),
            15,
        )
        .unwrap()
        .to_string()
}

fn csrf_of(html: &str) -> String {
    html.split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries a CSRF value")
        .to_owned()
}

impl Merchant {
    pub async fn open(app: &TestApp, store: &str, user: &str) -> Self {
        let browser = Browser::new();
        let exchanged = browser
            .client
            .get(link(app, store, user))
            .send()
            .await
            .unwrap();
        assert_eq!(exchanged.status(), 303);
        assert_eq!(location(&exchanged), "/dashboard/marketing");
        let page = browser
            .client
            .get(app.url("/dashboard/marketing"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csrf = csrf_of(&page.text().await.unwrap());
        Self {
            browser,
            csrf,
            origin: app.address.clone(),
        }
    }

    pub async fn cards(&self, app: &TestApp) -> Value {
        let response = self
            .browser
            .client
            .get(app.url("/dashboard/api/connections"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn post(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.browser
            .client
            .post(app.url(path))
            .header("x-csrf-token", &self.csrf)
            .header("origin", &self.origin)
            .send()
            .await
            .unwrap()
    }

    /// Connects a platform from the page: the page's connect call, then the browser's flow.
    pub async fn connect(&self, app: &TestApp, platform: &str, approve: bool) -> Value {
        let response = self
            .post(app, &format!("/dashboard/api/connect/{platform}"))
            .await;
        assert_eq!(response.status(), 200, "connect {platform}");
        let body: Value = response.json().await.unwrap();
        let url = body["url"].as_str().unwrap().to_owned();
        let outcome = self.browser.complete_flow(&url, approve).await;
        serde_json::to_value(outcome).unwrap()
    }
}

fn card<'a>(cards: &'a Value, platform: &str) -> &'a Value {
    cards["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == platform)
        .unwrap_or_else(|| panic!("a card for {platform}"))
}

fn with_secret() -> TestAppOptions {
    TestAppOptions {
        extra_env: vec![("DASHBOARD_JWT_SECRET", DASHBOARD_SECRET.into())],
        ..Default::default()
    }
}

fn sign(claims: Value, secret: &str, algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_dashboard_link_becomes_an_httponly_session_cookie_and_leaves_the_url() {
    let app = spawn_app().await;
    let browser = Browser::new();
    let response = browser
        .client
        .get(link(&app, "store-1", "user-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/dashboard/marketing");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("ge_dashboard="), "{cookie}");
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "http API_URL: {cookie}");

    let page = browser
        .client
        .get(app.url("/dashboard/marketing"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("store-1"));
    assert!(!csrf_of(&html).is_empty());
    for platform in ["meta", "tiktok", "google", "pinterest", "twitter"] {
        assert!(
            html.contains(&format!("id=\"card-{platform}\"")),
            "{platform}"
        );
    }
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline code"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_session_the_page_is_a_401_page_and_the_calls_are_401_json() {
    let app = spawn_app().await;
    let page = app
        .api
        .get(app.url("/dashboard/marketing"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("main dashboard"), "{html}");

    for (method, path) in [
        (reqwest::Method::GET, "/dashboard/api/connections"),
        (reqwest::Method::POST, "/dashboard/api/connect/meta"),
        (reqwest::Method::POST, "/dashboard/api/disconnect/meta"),
    ] {
        let response = app
            .api
            .request(method, app.url(path))
            .header("x-csrf-token", "anything")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert!(response.headers().get("www-authenticate").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "session_required", "{path}");
    }
    // The API key is not a dashboard session.
    let response = app
        .api
        .get(app.url("/dashboard/api/connections"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn expired_forged_too_long_or_misused_tokens_are_refused() {
    let app = spawn_app_with(with_secret()).await;
    let good = json!({"sub": "user-1", "store_id": "store-1", "iat": now(), "exp": now() + 600});
    let opened = app
        .api
        .get(app.url(&format!(
            "/dashboard/marketing?token={}",
            sign(good.clone(), DASHBOARD_SECRET, Algorithm::HS256)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.status(),
        303,
        "a link signed by the main dashboard is accepted"
    );
    let session_cookie = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ge_dashboard=")
        .to_owned();

    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(good.to_string())
        )
    };
    let cases = [
        (
            "expired",
            sign(
                json!({"sub": "u", "store_id": "s", "iat": now() - 1200, "exp": now() - 600}),
                DASHBOARD_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "lives two hours",
            sign(
                json!({"sub": "u", "store_id": "s", "iat": now(), "exp": now() + 7200}),
                DASHBOARD_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "no iat, lives two hours",
            sign(
                json!({"sub": "u", "store_id": "s", "exp": now() + 7200}),
                DASHBOARD_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "no exp",
            sign(
                json!({"sub": "u", "store_id": "s", "iat": now()}),
                DASHBOARD_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "no store",
            sign(
                json!({"sub": "u", "iat": now(), "exp": now() + 600}),
                DASHBOARD_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "a store id that is not an id",
            sign(
                json!({"sub": "u", "store_id": "<script>", "iat": now(), "exp": now() + 600}),
                DASHBOARD_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "another secret",
            sign(
                good.clone(),
                "another-secret-0123456789-0123456789",
                Algorithm::HS256,
            ),
        ),
        (
            "HS512",
            sign(good.clone(), DASHBOARD_SECRET, Algorithm::HS512),
        ),
        ("alg none", unsigned),
        ("our own session token", session_cookie.clone()),
        ("garbage", "not-a-jwt".into()),
    ];
    for (case, token) in cases {
        let response = app
            .api
            .get(app.url(&format!("/dashboard/marketing?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{case}");
        let html = response.text().await.unwrap();
        assert!(!html.contains(&token), "{case}: the token is not echoed");
    }

    // A link is not a session cookie either.
    let link_token = sign(good, DASHBOARD_SECRET, Algorithm::HS256);
    let response = app
        .api
        .get(app.url("/dashboard/api/connections"))
        .header("cookie", format!("ge_dashboard={link_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .api
        .get(app.url("/dashboard/api/connections"))
        .header("cookie", format!("ge_dashboard={session_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the real session cookie works");
    app.stop().await;
}

#[tokio::test]
async fn a_session_for_one_store_cannot_read_or_change_another_stores_connections() {
    let app = spawn_app().await;
    app.run_flow("google", "store-b", true).await;
    app.run_flow("meta", "store-b", true).await;
    let merchant_a = Merchant::open(&app, "store-a", "user-a").await;

    // Reading: only store-a, whatever the request says.
    for path in [
        "/dashboard/api/connections",
        "/dashboard/api/connections?store_id=store-b",
        "/dashboard/api/connections/store-b",
    ] {
        let response = merchant_a
            .browser
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["store_id"], "store-a", "{path}");
            for card in body["platforms"].as_array().unwrap() {
                assert!(card["status"].is_null(), "{path}: {card}");
            }
        } else {
            assert_eq!(response.status(), 404, "{path}");
        }
    }
    let page = merchant_a
        .browser
        .client
        .get(app.url("/dashboard/marketing?store_id=store-b"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("store-a") && !page.contains("store-b"));

    // Changing: store-a has no Google connection, and store-b's is untouched.
    let response = merchant_a
        .post(&app, "/dashboard/api/disconnect/google?store_id=store-b")
        .await;
    assert_eq!(response.status(), 404);
    let response = merchant_a
        .browser
        .client
        .post(app.url("/dashboard/api/disconnect/google"))
        .header("x-csrf-token", &merchant_a.csrf)
        .header("content-type", "application/json")
        .body(r#"{"store_id":"store-b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // A connect started by store-a's session lands in store-a.
    let outcome = merchant_a.connect(&app, "pinterest", true).await;
    assert_eq!(outcome["connection"], "success");
    let b = app.connections("store-b").await;
    let platforms: Vec<&str> = b["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms.len(), 2, "{b}");
    assert!(platforms.contains(&"google") && platforms.contains(&"meta"));
    let a = app.connections("store-a").await;
    assert_eq!(a["connections"][0]["platform"], "pinterest");
    assert_eq!(a["connections"][0]["user_id"], "user-a");

    // And store-b's own session sees and changes store-b.
    let merchant_b = Merchant::open(&app, "store-b", "user-b").await;
    let cards = merchant_b.cards(&app).await;
    assert_eq!(card(&cards, "google")["state"], "connected");
    assert_eq!(card(&cards, "pinterest")["state"], "not_connected");
    let response = merchant_b
        .post(&app, "/dashboard/api/disconnect/google")
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["store_id"], "store-b");
    assert_eq!(body["success"], true);
    let cards = merchant_a.cards(&app).await;
    assert_eq!(card(&cards, "pinterest")["state"], "connected");
    app.stop().await;
}

#[tokio::test]
async fn state_changing_calls_need_the_csrf_value_and_our_origin() {
    let app = spawn_app().await;
    let merchant = Merchant::open(&app, "store-1", "user-1").await;
    let client = &merchant.browser.client;
    let path = app.url("/dashboard/api/connect/google");
    let refused = [
        ("no CSRF header", None, None, None),
        ("a wrong CSRF value", Some("wrong"), None, None),
        (
            "another origin",
            Some(merchant.csrf.as_str()),
            Some("https://evil.example"),
            None,
        ),
        (
            "an opaque origin",
            Some(merchant.csrf.as_str()),
            Some("null"),
            None,
        ),
        (
            "a cross-site fetch",
            Some(merchant.csrf.as_str()),
            None,
            Some("cross-site"),
        ),
    ];
    for (case, csrf, origin, site) in refused {
        let mut request = client.post(&path);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_site_request", "{case}");
    }
    let response = merchant.post(&app, "/dashboard/api/connect/google").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["url"]
        .as_str()
        .unwrap()
        .starts_with(&app.url("/dashboard/authorize?ticket=")));
    assert_eq!(
        client.get(&path).send().await.unwrap().status(),
        405,
        "GET cannot start a flow"
    );
    let response = merchant.post(&app, "/dashboard/api/connect/myspace").await;
    assert_eq!(response.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_cards_show_status_account_expiry_and_missing_permissions() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec!["google", "twitter"],
        extra_env: vec![("SANDBOX", "false".into())],
        ..Default::default()
    })
    .await;
    let merchant = Merchant::open(&app, "store-1", "user-1").await;
    let cards = merchant.cards(&app).await;
    assert_eq!(cards["store_id"], "store-1");
    let states: Vec<(&str, &str)> = cards["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["platform"].as_str().unwrap(),
                c["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("meta", "not_configured"),
            ("tiktok", "not_configured"),
            ("google", "not_connected"),
            ("pinterest", "not_configured"),
            ("twitter", "not_connected"),
            ("linkedin", "not_configured"),
        ]
    );
    assert_eq!(
        merchant
            .post(&app, "/dashboard/api/connect/meta")
            .await
            .status(),
        409
    );

    app.simulator.set_granted_scopes_override(
        "google",
        Some(vec!["openid".into(), "email".into(), "profile".into()]),
    );
    assert_eq!(
        merchant.connect(&app, "google", true).await["connection"],
        "success"
    );
    assert_eq!(
        merchant.connect(&app, "twitter", true).await["connection"],
        "success"
    );
    let cards = merchant.cards(&app).await;
    let google = card(&cards, "google");
    assert_eq!(google["state"], "connected");
    assert_eq!(google["status"], "CONNECTED");
    assert!(google["account_name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    assert!(google["connected_at"].is_string());
    assert!(google["expires_at"].is_string());
    assert_eq!(
        google["missing_scopes"],
        json!(["https://www.googleapis.com/auth/adwords"]),
        "{google}"
    );
    let twitter = card(&cards, "twitter");
    assert_eq!(twitter["state"], "connected");
    assert_eq!(twitter["missing_scopes"], json!([]));
    let text = cards.to_string();
    assert!(
        !text.contains("access_token") && !text.contains("sealed"),
        "{text}"
    );

    // The platform revokes the grant and a refresh finds out: the card asks for attention.
    app.simulator.revoke_all_grants("twitter");
    let refresh = app
        .post("/api/v1/oauth/refresh/twitter?store_id=store-1")
        .await;
    assert!(refresh.status().is_client_error(), "{}", refresh.status());
    let cards = merchant.cards(&app).await;
    let twitter = card(&cards, "twitter");
    // X's answer says the token is invalid, not revoked: the grant expired (see lifecycle.rs).
    assert_eq!(twitter["state"], "expired", "{twitter}");
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_the_sandbox_only_its_inline_styles() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        extra_env: vec![(
            "ALLOWED_ORIGINS",
            "https://admin.example.com,https://shop.example.com".into(),
        )],
        ..Default::default()
    })
    .await;
    let strict =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
                  connect-src 'self'; form-action 'self'; base-uri 'none'; \
                  frame-ancestors 'self' https://admin.example.com https://shop.example.com";
    for path in [
        "/health",
        "/api/v1/oauth/platforms",
        "/dashboard/marketing",
        "/dashboard/static/dashboard.js",
        "/no/such/route",
    ] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], strict, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(headers.get("x-request-id").is_some(), "{path}");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS in development"
        );
    }
    let start = app.connect_url("google", "store-1").await;
    let consent_url = Browser::new().first_hop(&start).await;
    let consent = app.api.get(&consent_url).send().await.unwrap();
    assert_eq!(consent.status(), 200);
    assert_eq!(
        consent.headers()["content-security-policy"],
        strict.replace("style-src 'self'", "style-src 'unsafe-inline'")
    );
    let script = app.get("/dashboard/static/dashboard.js").await;
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    app.stop().await;
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origins_and_nothing_when_none_are_set() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("ALLOWED_ORIGINS", "https://admin.example.com".into())],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.api
            .request(
                reqwest::Method::OPTIONS,
                app.url("/api/v1/oauth/connections/store-1"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://admin.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://admin.example.com"
    );
    assert!(allowed
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    app.stop().await;

    let app = spawn_app().await;
    let response = app
        .api
        .get(app.url("/health"))
        .header("origin", "https://admin.example.com")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-")));
    app.stop().await;
}

#[tokio::test]
async fn production_sends_hsts_and_secure_cookies() {
    let app = spawn_app_with(TestAppOptions {
        // Production refuses the simulators' plain-http endpoints; this test calls no platform.
        simulated: Vec::new(),
        extra_env: vec![
            ("ENVIRONMENT", "production".into()),
            ("SANDBOX", "false".into()),
            ("API_URL", "https://growth.example.test".into()),
            ("DASHBOARD_JWT_SECRET", DASHBOARD_SECRET.into()),
        ],
        ..Default::default()
    })
    .await;
    let response = app.get("/health").await;
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let token = link(&app, "store-1", "user-1")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let response = app
        .api
        .get(app.url(&format!("/dashboard/marketing?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn flow_routes_are_rate_limited_per_client_with_retry_after() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("RATE_LIMIT_PER_MINUTE", "3".into())],
        ..Default::default()
    })
    .await;
    let connect = "/api/v1/oauth/connect/google?user_id=u&store_id=s";
    for _ in 0..3 {
        assert_eq!(app.get(connect).await.status(), 200);
    }
    // The API's connect counts per store: another merchant is not held back by this one.
    assert_eq!(
        app.get("/api/v1/oauth/connect/google?user_id=u&store_id=other-store")
            .await
            .status(),
        200
    );
    let limited = app.get(connect).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // The browser's routes count per client address, together.
    for path in [
        "/api/v1/oauth/authorize?ticket=x",
        "/api/v1/oauth/callback/google?state=x",
        "/dashboard/authorize?ticket=x",
    ] {
        assert_eq!(app.get(path).await.status(), 303, "{path}");
    }
    for path in [
        "/api/v1/oauth/authorize?ticket=x",
        "/api/v1/oauth/callback/google?state=x",
    ] {
        assert_eq!(app.get(path).await.status(), 429, "{path}");
    }
    // Reading is not limited.
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/api/v1/oauth/connections/s").await.status(), 200);
    app.stop().await;

    // Behind a trusted proxy each forwarded client has its own allowance.
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("RATE_LIMIT_PER_MINUTE", "1".into()),
            ("TRUST_PROXY", "true".into()),
        ],
        ..Default::default()
    })
    .await;
    let from = |ip: &'static str| {
        app.api
            .get(app.url("/api/v1/oauth/authorize?ticket=unknown"))
            .header("x-forwarded-for", format!("203.0.113.99, {ip}"))
            .send()
    };
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 303);
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(from("198.51.100.2").await.unwrap().status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn a_flow_started_from_the_page_cannot_be_finished_by_another_merchant() {
    // The attack: a merchant starts a flow from their own page and sends its link to another merchant,
    // whose consent would attach their account to the first merchant's store.
    let app = spawn_app().await;
    let attacker = Merchant::open(&app, "attacker-store", "mallory").await;
    let victim = Merchant::open(&app, "victim-store", "victor").await;
    let stranger = Browser::new();
    for browser in [&victim.browser, &stranger] {
        let response = attacker.post(&app, "/dashboard/api/connect/meta").await;
        let url = response.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(url.contains("/dashboard/authorize?ticket="), "{url}");
        let hop = browser.client.get(&url).send().await.unwrap();
        assert_eq!(hop.status(), 303);
        let outcome = query_of(&location(&hop));
        assert_eq!(outcome["connection"], "error");
        assert_eq!(outcome["reason"], "browser_mismatch");
    }
    assert_eq!(
        app.connections("attacker-store").await["connections"],
        serde_json::json!([])
    );
    // The merchant's own browser gets through.
    let outcome = attacker.connect(&app, "meta", true).await;
    assert_eq!(outcome["connection"], "success");
    app.stop().await;
}

#[tokio::test]
async fn a_dashboard_link_opens_one_session_only() {
    let app = spawn_app().await;
    let link = link(&app, "once-store", "u");
    let first = Browser::new().client.get(&link).send().await.unwrap();
    assert_eq!(first.status(), 303);
    let second = Browser::new().client.get(&link).send().await.unwrap();
    assert_eq!(second.status(), 401);
    assert!(second.text().await.unwrap().contains("already used"));
    app.stop().await;
}
