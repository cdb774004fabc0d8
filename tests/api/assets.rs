//! The merchant's assets, kept with the connection: discovered at connect and on demand through
//! the built-in sandbox's platform APIs (the service's own `/sandbox/{platform}/api/...`), listed
//! with the connections, selected per kind, and used by the token endpoint's `account=`.

use growth_engine::sandbox::{self, ApiRateLimit, Simulator};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp, TestAppOptions, API_KEY};

/// The service with every platform served by its built-in sandbox, so that discovery reaches the
/// sandbox's API (its `api_base` under the service's own URL).
async fn spawn() -> TestApp {
    spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await
}

fn sandbox_of(app: &TestApp) -> &Simulator {
    app.services
        .sandbox
        .as_ref()
        .expect("SANDBOX=true serves the built-in sandbox")
}

async fn connect(app: &TestApp, platform: &str, store: &str) {
    let result = app.run_flow(platform, store, true).await;
    assert_eq!(result["connection"], "success", "{platform}: {result:?}");
}

async fn connection(app: &TestApp, store: &str, platform: &str) -> Value {
    let all = app.connections(store).await;
    all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == platform)
        .cloned()
        .unwrap_or_else(|| panic!("no {platform} connection in {all}"))
}

/// `(id, selected)` of a connection's assets of `kind`, in the listed order.
fn of_kind(connection: &Value, kind: &str) -> Vec<(String, bool)> {
    connection["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["selected"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn ids(list: &[(String, bool)]) -> Vec<&str> {
    list.iter().map(|(id, _)| id.as_str()).collect()
}

async fn put_selection(
    app: &TestApp,
    store: &str,
    platform: &str,
    body: Value,
) -> reqwest::Response {
    app.api
        .put(app.url(&format!(
            "/api/v1/oauth/connections/{store}/{platform}/selection"
        )))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn token(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(&format!("/api/v1/oauth/token/meta?{query}")).await
}

#[tokio::test]
async fn each_platforms_assets_are_listed_after_connect_with_a_lone_asset_selected() {
    let app = spawn().await;
    for platform in sandbox::PLATFORMS {
        connect(&app, platform, "shop-1").await;
    }
    let meta = connection(&app, "shop-1", "meta").await;
    assert_eq!(meta["status"], "CONNECTED");
    let pages = of_kind(&meta, "facebook_page");
    assert_eq!(ids(&pages).len(), 2, "{meta}");
    assert!(ids(&pages).contains(&"2000000001") && ids(&pages).contains(&"2000000002"));
    assert!(
        pages.iter().all(|(_, selected)| !selected),
        "two pages: no default"
    );
    assert_eq!(
        of_kind(&meta, "instagram_account"),
        [("17841400000000001".to_owned(), true)]
    );
    assert_eq!(
        of_kind(&meta, "ad_account"),
        [("act_3000000001".to_owned(), true)]
    );
    let page = meta["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "2000000001")
        .unwrap();
    assert_eq!(page["name"], "Sandbox Merchant Shop");
    assert_eq!(
        page.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "kind", "name", "selected"]
    );

    let tiktok = connection(&app, "shop-1", "tiktok").await;
    let creator = of_kind(&tiktok, "tiktok_creator");
    assert_eq!(creator.len(), 1, "{tiktok}");
    assert_eq!(creator[0].0, tiktok["account_id"].as_str().unwrap());
    assert!(creator[0].1);

    let google = connection(&app, "shop-1", "google").await;
    let customers = of_kind(&google, "google_ads_customer");
    assert_eq!(ids(&customers), ["1234567890", "2345678901"]);
    assert!(customers.iter().all(|(_, selected)| !selected));

    let pinterest = connection(&app, "shop-1", "pinterest").await;
    // Without boards:read_secret the secret board is not listed.
    assert_eq!(
        of_kind(&pinterest, "pinterest_board"),
        [("900000000000000001".to_owned(), true)]
    );
    assert_eq!(
        of_kind(&pinterest, "pinterest_ad_account"),
        [("549755885175".to_owned(), true)]
    );

    let x = connection(&app, "shop-1", "twitter").await;
    let user = of_kind(&x, "x_user");
    assert_eq!(user.len(), 1, "{x}");
    assert_eq!(user[0].0, x["account_id"].as_str().unwrap());
    app.stop().await;
}

#[tokio::test]
async fn a_selection_persists_and_survives_an_on_demand_refresh() {
    let app = spawn().await;
    connect(&app, "meta", "shop-1").await;
    let response = put_selection(
        &app,
        "shop-1",
        "meta",
        json!({ "kind": "facebook_page", "id": "2000000002" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["platform"], "meta");
    let pages = of_kind(&view, "facebook_page");
    assert!(pages.contains(&("2000000002".to_owned(), true)), "{view}");
    assert!(pages.contains(&("2000000001".to_owned(), false)), "{view}");

    let calls_before = sandbox_of(&app).api_requests("meta").len();
    let refreshed = app
        .post("/api/v1/oauth/connections/shop-1/meta/assets/refresh")
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert!(
        sandbox_of(&app).api_requests("meta").len() > calls_before,
        "the refresh asked the platform again"
    );
    assert_eq!(
        refreshed["assets"], view["assets"],
        "same assets, same selection"
    );
    let listed = connection(&app, "shop-1", "meta").await;
    assert_eq!(listed["assets"], view["assets"]);
    app.stop().await;
}

#[tokio::test]
async fn selection_errors_are_json_with_stable_codes() {
    let app = spawn().await;
    connect(&app, "meta", "shop-1").await;
    let cases = [
        (
            "meta",
            "shop-1",
            json!({ "kind": "facebook_page", "id": "999" }),
            404,
            "asset_not_found",
        ),
        (
            "meta",
            "shop-1",
            json!({ "kind": "ad_account", "id": "2000000001" }),
            404,
            "asset_not_found",
        ),
        (
            "meta",
            "shop-1",
            json!({ "kind": "planet", "id": "2000000001" }),
            400,
            "invalid_kind",
        ),
        (
            "meta",
            "shop-2",
            json!({ "kind": "facebook_page", "id": "2000000001" }),
            404,
            "connection_not_found",
        ),
        (
            "myspace",
            "shop-1",
            json!({ "kind": "facebook_page", "id": "1" }),
            404,
            "unknown_platform",
        ),
    ];
    for (platform, store, body, status, code) in cases {
        let response = put_selection(&app, store, platform, body.clone()).await;
        assert_eq!(response.status(), status, "{platform} {store} {body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let malformed = app
        .api
        .put(app.url("/api/v1/oauth/connections/shop-1/meta/selection"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let error: Value = malformed.json().await.unwrap();
    assert!(error["error"]["code"].is_string(), "{error}");
    let anonymous = app
        .api
        .put(app.url("/api/v1/oauth/connections/shop-1/meta/selection"))
        .json(&json!({ "kind": "facebook_page", "id": "2000000001" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn account_on_the_token_endpoint_gives_the_stores_own_page_token_which_the_page_endpoint_accepts(
) {
    let app = spawn().await;
    connect(&app, "meta", "shop-1").await;
    connect(&app, "meta", "shop-2").await;

    // Two pages, no default page yet: the answer describes the lone (so selected) Instagram
    // account.
    let user: Value = token(&app, "store_id=shop-1").await.json().await.unwrap();
    assert_eq!(user["account"]["kind"], "instagram_account", "{user}");
    let page: Value = token(&app, "store_id=shop-1&account=2000000001")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["account"]["kind"], "facebook_page");
    assert_eq!(page["account"]["id"], "2000000001");
    let page_token = page["access_token"].as_str().unwrap().to_owned();
    assert_ne!(page_token, user["access_token"].as_str().unwrap());

    // The page token works at the page's own endpoint of the simulated Graph API (which, like an
    // app that requires it, wants the token's appsecret_proof).
    let base = sandbox::api_base(&app.address, "meta").unwrap();
    let secret = Simulator::sandbox_client("meta", &app.address).client_secret;
    let proof = [(
        "appsecret_proof",
        crate::helpers::python_hmac_sha256_hex(secret.as_bytes(), page_token.as_bytes()),
    )];
    let node = app
        .api
        .get(format!("{base}2000000001"))
        .query(&proof)
        .bearer_auth(&page_token)
        .send()
        .await
        .unwrap();
    assert_eq!(node.status(), 200);
    let node: Value = node.json().await.unwrap();
    assert_eq!(node["id"], "2000000001");
    let me: Value = app
        .api
        .get(format!("{base}me"))
        .query(&proof)
        .bearer_auth(&page_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], "2000000001", "a page token speaks as the page");

    // The Instagram account's token is its page's.
    let ig: Value = token(&app, "store_id=shop-1&account=17841400000000001")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ig["access_token"], page["access_token"]);
    assert_eq!(ig["account"]["kind"], "instagram_account");

    // The other store's page token for the same page id is its own grant's, never shop-1's.
    let other: Value = token(&app, "store_id=shop-2&account=2000000001")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["access_token"], page["access_token"]);
    let unknown = token(&app, "store_id=shop-1&account=2999999999").await;
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "asset_not_found");
    let nobody = token(&app, "store_id=shop-3&account=2000000001").await;
    assert_eq!(nobody.status(), 404);

    // Without `account`, the user token, described by the selected page once there is one.
    put_selection(
        &app,
        "shop-1",
        "meta",
        json!({ "kind": "facebook_page", "id": "2000000002" }),
    )
    .await;
    let selected: Value = token(&app, "store_id=shop-1").await.json().await.unwrap();
    assert_eq!(selected["access_token"], user["access_token"]);
    assert_eq!(selected["account"]["id"], "2000000002");
    assert_eq!(selected["account"]["name"], "Sandbox Merchant Outlet");
    app.stop().await;
}

#[tokio::test]
async fn a_throttled_discovery_leaves_the_connection_connected_and_a_later_refresh_finds_the_assets(
) {
    let app = spawn().await;
    let limit = Some(ApiRateLimit {
        retry_after_seconds: 60,
    });
    sandbox_of(&app).set_api_rate_limited("meta", limit);
    sandbox_of(&app).set_api_rate_limited("google", limit);
    connect(&app, "meta", "shop-1").await;
    connect(&app, "google", "shop-1").await;
    for platform in ["meta", "google"] {
        let listed = connection(&app, "shop-1", platform).await;
        assert_eq!(listed["status"], "CONNECTED", "{listed}");
        assert_eq!(listed["assets"], json!([]), "{listed}");
        let refused = app
            .post(&format!(
                "/api/v1/oauth/connections/shop-1/{platform}/assets/refresh"
            ))
            .await;
        assert_eq!(refused.status(), 502, "{platform}");
        let error: Value = refused.json().await.unwrap();
        assert!(error["error"]["code"].is_string(), "{error}");
    }
    sandbox_of(&app).set_api_rate_limited("meta", None);
    let found = app
        .post("/api/v1/oauth/connections/shop-1/meta/assets/refresh")
        .await;
    assert_eq!(found.status(), 200);
    let found: Value = found.json().await.unwrap();
    assert_eq!(found["status"], "CONNECTED");
    assert_eq!(of_kind(&found, "facebook_page").len(), 2, "{found}");
    let missing = app
        .post("/api/v1/oauth/connections/shop-9/meta/assets/refresh")
        .await;
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn no_page_token_appears_in_the_connections_api_or_the_database() {
    let app = spawn().await;
    connect(&app, "meta", "shop-1").await;
    let mut page_tokens = Vec::new();
    for page in ["2000000001", "2000000002"] {
        let answer: Value = token(&app, &format!("store_id=shop-1&account={page}"))
            .await
            .json()
            .await
            .unwrap();
        page_tokens.push(answer["access_token"].as_str().unwrap().to_owned());
    }
    let listed = app
        .get("/api/v1/oauth/connections/shop-1")
        .await
        .text()
        .await
        .unwrap();
    let mut stored = app.everything_stored().await;
    let db = app.database.as_ref().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("select row_to_json(a)::text from connection_assets a")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(!rows.is_empty(), "assets are stored");
    for (row,) in rows {
        stored.push_str(&row);
    }
    for secret in &page_tokens {
        assert!(
            !listed.contains(secret.as_str()),
            "page token in the connections API"
        );
        assert!(
            !stored.contains(secret.as_str()),
            "page token stored in clear"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_platform_api_url_setting_sends_discovery_to_that_api() {
    // Credentials of a standalone simulator and `<PLATFORM>_API_URL` pointing at its API.
    let app = crate::helpers::spawn_app().await;
    connect(&app, "pinterest", "shop-1").await;
    let pinterest = connection(&app, "shop-1", "pinterest").await;
    assert_eq!(
        of_kind(&pinterest, "pinterest_board"),
        [("900000000000000001".to_owned(), true)]
    );
    let calls = app.simulator.api_requests("pinterest");
    assert!(
        calls
            .iter()
            .any(|c| c.path.ends_with("/v5/boards") && c.status == 200),
        "{calls:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_page_lists_selects_and_saves_a_choice_only_with_csrf_for_its_own_store() {
    use crate::dashboard::Merchant;
    let app = spawn().await;
    let merchant = Merchant::open(&app, "shop-1", "owner-1").await;
    merchant.connect(&app, "meta", true).await;
    let cards = merchant.cards(&app).await;
    let meta = cards["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "meta")
        .unwrap();
    let kinds: Vec<&str> = meta["selections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["facebook_page", "instagram_account", "ad_account"]);
    assert_eq!(meta["selections"][0]["label"], "Default Facebook Page");

    let path = app.url("/dashboard/api/selection/meta");
    let body = json!({ "kind": "facebook_page", "id": "2000000001" });
    let without_csrf = merchant
        .browser
        .client
        .post(&path)
        .header("origin", &merchant.origin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without_csrf.status(), 403);
    let saved = merchant
        .browser
        .client
        .post(&path)
        .header("x-csrf-token", &merchant.csrf)
        .header("origin", &merchant.origin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    let listed = connection(&app, "shop-1", "meta").await;
    assert!(of_kind(&listed, "facebook_page").contains(&("2000000001".to_owned(), true)));

    // Another store's session cannot choose for shop-1: it has no such connection.
    let other = Merchant::open(&app, "shop-2", "owner-2").await;
    let refused = other
        .browser
        .client
        .post(&path)
        .header("x-csrf-token", &other.csrf)
        .header("origin", &other.origin)
        .json(&json!({ "kind": "facebook_page", "id": "2000000002" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let listed = connection(&app, "shop-1", "meta").await;
    assert!(of_kind(&listed, "facebook_page").contains(&("2000000001".to_owned(), true)));
    app.stop().await;
}

#[tokio::test]
async fn google_ads_discovery_sends_the_developer_token_header_when_it_is_set() {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    // A stand-in for the Google Ads API that records the header and answers one customer.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = seen.clone();
    let api = axum::Router::new().route(
        "/v26/customers:listAccessibleCustomers",
        axum::routing::get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let token = headers
                    .get("developer-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                record.lock().unwrap().push(token);
                axum::Json(json!({ "resourceNames": ["customers/1112223334"] }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}/v26/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, api).await;
    });
    let app = spawn_app_with(TestAppOptions {
        simulated: vec!["google"],
        extra_env: vec![
            ("GOOGLE_API_URL", api_url),
            ("GOOGLE_ADS_DEVELOPER_TOKEN", "dev-token-7c1e9a".into()),
        ],
        ..Default::default()
    })
    .await;
    connect(&app, "google", "shop-1").await;
    assert_eq!(*seen.lock().unwrap(), [Some("dev-token-7c1e9a".to_owned())]);
    let google = connection(&app, "shop-1", "google").await;
    assert_eq!(
        of_kind(&google, "google_ads_customer"),
        [("1112223334".to_owned(), true)]
    );
    let catalog = format!("{:?}", app.services.core.catalog());
    assert!(
        catalog.contains("developer-token"),
        "the header is configured"
    );
    assert!(
        !catalog.contains("dev-token-7c1e9a"),
        "the Debug output hides its value"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_on_demand_refresh_picks_up_added_and_removed_assets_and_keeps_the_selection() {
    use std::sync::{Arc, Mutex};
    // A Google Ads API stand-in whose list of customers the test changes.
    let customers: Arc<Mutex<Vec<&'static str>>> =
        Arc::new(Mutex::new(vec!["1000000001", "1000000002"]));
    let answer = customers.clone();
    let api = axum::Router::new().route(
        "/v26/customers:listAccessibleCustomers",
        axum::routing::get(move || {
            let answer = answer.clone();
            async move {
                let names: Vec<String> = answer
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|id| format!("customers/{id}"))
                    .collect();
                axum::Json(json!({ "resourceNames": names }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}/v26/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, api).await;
    });
    let app = spawn_app_with(TestAppOptions {
        simulated: vec!["google"],
        extra_env: vec![("GOOGLE_API_URL", api_url)],
        ..Default::default()
    })
    .await;
    connect(&app, "google", "shop-1").await;
    let listed = connection(&app, "shop-1", "google").await;
    assert_eq!(
        of_kind(&listed, "google_ads_customer"),
        [
            ("1000000001".to_owned(), false),
            ("1000000002".to_owned(), false)
        ]
    );
    let chosen = put_selection(
        &app,
        "shop-1",
        "google",
        json!({ "kind": "google_ads_customer", "id": "1000000002" }),
    )
    .await;
    assert_eq!(chosen.status(), 200);

    *customers.lock().unwrap() = vec!["1000000002", "1000000003"];
    let refresh = "/api/v1/oauth/connections/shop-1/google/assets/refresh";
    let view: Value = app.post(refresh).await.json().await.unwrap();
    assert_eq!(
        of_kind(&view, "google_ads_customer"),
        [
            ("1000000002".to_owned(), true),
            ("1000000003".to_owned(), false)
        ],
        "the gone customer is removed, the new one added, the choice kept"
    );

    *customers.lock().unwrap() = vec!["1000000003"];
    let view: Value = app.post(refresh).await.json().await.unwrap();
    assert_eq!(
        of_kind(&view, "google_ads_customer"),
        [("1000000003".to_owned(), true)],
        "the chosen customer is gone: the only one left becomes the default"
    );
    let token: Value = app
        .get("/api/v1/oauth/token/google?store_id=shop-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(token["account"]["id"], "1000000003");
    app.stop().await;
}

/// Issue 17 item 7: assets and page tokens are one truth. A rediscovery that finds no Pages leaves
/// no page token behind, and the proxy resolves an account through the asset rows as the token
/// endpoint does: the old page is unknown to both.
#[tokio::test]
async fn a_page_gone_from_discovery_is_unknown_to_the_proxy_as_to_the_token_endpoint() {
    let app = spawn().await;
    connect(&app, "meta", "shop-1").await;
    let proxied = |page: &'static str| {
        app.api
            .get(app.url(&format!("/api/v1/proxy/meta/{page}")))
            .bearer_auth(API_KEY)
            .header("Growth-Engine-Store", "shop-1")
            .header("Growth-Engine-Account", page)
            .send()
    };
    // While the page is there, the proxy calls it with its page token.
    let before = proxied("2000000001").await.unwrap();
    assert_eq!(before.status(), 200, "{:?}", before.text().await);

    sandbox_of(&app).set_meta_pages_gone(true);
    let refreshed = app
        .post("/api/v1/oauth/connections/shop-1/meta/assets/refresh")
        .await;
    assert_eq!(refreshed.status(), 200);
    let listed = connection(&app, "shop-1", "meta").await;
    assert!(of_kind(&listed, "facebook_page").is_empty(), "{listed}");

    let from_token_endpoint = token(&app, "store_id=shop-1&account=2000000001").await;
    assert_eq!(from_token_endpoint.status(), 404);
    let error: Value = from_token_endpoint.json().await.unwrap();
    assert_eq!(error["error"]["code"], "asset_not_found");
    let through_proxy = proxied("2000000001").await.unwrap();
    assert_eq!(through_proxy.status(), 404);
    let error: Value = through_proxy.json().await.unwrap();
    assert_eq!(error["error"]["code"], "account_not_found", "{error}");
    app.stop().await;
}
