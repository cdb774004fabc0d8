//! Scoped API keys and the audit trail: every API route enforces its scope (403 naming the missing
//! scope, a pass with it), platform-narrowed scopes, revocation after the cache window, `API_KEYS`
//! as full access, the `api-key` CLI through the real binary, the audit rows of a full run (and no
//! secret in any of them), pagination, retention.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use growth_engine::access::{format_scopes, format_stores, hash_key, parse_scopes, parse_stores};
use growth_engine::clock::ManualClock;
use growth_engine::domain::StoreId;
use growth_engine::store::{ApiKeyRecord, AuditRow};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

use crate::dashboard::Merchant;
use crate::helpers::{
    credentials, query_of, spawn_app, spawn_app_with, Browser, TestApp, TestAppOptions, API_KEY,
};

/// Creates a database key with `scopes` through the store, as `api-key create` does.
async fn create_key(app: &TestApp, name: &str, scopes: &str) -> String {
    create_bound_key(app, name, scopes, None).await
}

/// Creates a database key with `scopes`, bound to `stores` (comma-separated) when given.
pub(crate) async fn create_bound_key(
    app: &TestApp,
    name: &str,
    scopes: &str,
    stores: Option<&str>,
) -> String {
    let stores = stores.map(|s| format_stores(&parse_stores(s).expect("valid stores")));
    let platforms = growth_engine::app::catalog(&app.services.settings).slugs();
    let scopes = parse_scopes(scopes, &platforms).expect("valid scopes");
    let key = growth_engine::access::generate_key();
    let record = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.into(),
        scopes: format_scopes(&scopes),
        stores,
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    app.services
        .store
        .create_api_key(&record, &hash_key(key.expose_secret()))
        .await
        .unwrap();
    key.expose_secret().to_owned()
}

async fn call(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::Response {
    let request = app
        .api
        .request(method.clone(), app.url(path))
        .bearer_auth(key);
    // The selection route reads a JSON body: send a well-formed one, so that only the scope decides.
    let request = if method == Method::PUT {
        request.json(&serde_json::json!({"kind": "facebook_page", "id": "1"}))
    } else {
        request
    };
    request.send().await.unwrap()
}

/// The routes any valid key may call: the platform catalog and the metrics.
const ANY_KEY_ROUTES: [&str; 2] = ["GET /api/v1/oauth/platforms", "GET /metrics"];

/// One API operation as the OpenAPI document describes it: a request to make and the scope it
/// needs (`None`: any valid key).
struct DocumentedRoute {
    method: Method,
    /// The path with its parameters filled in (the platform is `platform`).
    path: String,
    /// The scope, `[:platform]` replaced by `:platform` where the route takes one.
    scope: Option<String>,
    /// Whether the scope can be narrowed to a platform.
    per_platform: bool,
    /// Whether the request names the platform in its path or query (a post names it in its
    /// body: `posts.rs` tests those).
    platform_in_request: bool,
}

/// Every operation the document says needs an API key, on `platform`: the routes come from the
/// service's own document, so a route added there cannot escape the checks below; the scope from
/// its documented 403 (`missing_scope: the key lacks `X``).
async fn documented_routes(app: &TestApp, platform: &str) -> Vec<DocumentedRoute> {
    let document: Value = app
        .api
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (template, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation["security"]
                .as_array()
                .is_none_or(|s| s.is_empty())
            {
                continue;
            }
            let mut path = template.clone();
            let mut query = Vec::new();
            let mut platform_in_request = false;
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let value = match name {
                    "platform" => {
                        platform_in_request = true;
                        platform
                    }
                    "id" => "0190e4a8-8d6a-7000-8000-000000000000",
                    "store_id" => "s1",
                    "user_id" => "u1",
                    "path" => "me",
                    _ if parameter["required"] != true => continue,
                    "Growth-Engine-Store" | "Idempotency-Key" => continue,
                    other => panic!("{template}: no value for the required parameter {other}"),
                };
                match parameter["in"].as_str() {
                    Some("path") => path = path.replace(&format!("{{{name}}}"), value),
                    Some("query") => query.push(format!("{name}={value}")),
                    _ => {}
                }
            }
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let denial = operation["responses"]["403"]["description"]
                .as_str()
                .map(str::to_owned);
            let scope = denial.as_deref().map(|text| {
                let scope = text
                    .split('`')
                    .nth(1)
                    .unwrap_or_else(|| panic!("{template}: a 403 without its scope: {text}"));
                scope.to_owned()
            });
            routes.push(DocumentedRoute {
                method: method.to_uppercase().parse().unwrap(),
                path,
                per_platform: scope.as_deref().is_some_and(|s| s.ends_with("[:platform]")),
                platform_in_request,
                scope: scope.map(|s| s.replace("[:platform]", &format!(":{platform}"))),
            });
        }
    }
    routes.sort_by(|a, b| (&a.path, a.method.as_str()).cmp(&(&b.path, b.method.as_str())));
    routes
}

const ALL_SCOPES: [&str; 9] = [
    "connections:read",
    "connect",
    "disconnect",
    "tokens:read",
    "proxy",
    "selection:write",
    "audit:read",
    "posts:write",
    "posts:read",
];

/// The operation of a scope (`tokens:read:meta` → `tokens:read`).
fn operation_of(scope: &str) -> &'static str {
    ALL_SCOPES
        .iter()
        .copied()
        .filter(|s| scope.starts_with(s))
        .max_by_key(|s| s.len())
        .unwrap_or_else(|| panic!("{scope} names no operation of ALL_SCOPES"))
}

#[tokio::test]
async fn every_api_route_refuses_a_key_without_its_scope_and_accepts_one_with_it() {
    let app = spawn_app().await;
    let routes = documented_routes(&app, "meta").await;
    let any_key: Vec<String> = routes
        .iter()
        .filter(|r| r.scope.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        any_key, ANY_KEY_ROUTES,
        "a secured route that documents no 403 must be meant for any key: document its scope"
    );
    let scoped: Vec<&DocumentedRoute> = routes.iter().filter(|r| r.scope.is_some()).collect();
    assert!(
        scoped.len() >= 13,
        "the document lists the scoped routes: {}",
        scoped.len()
    );
    for (n, route) in scoped.iter().enumerate() {
        let (method, path) = (&route.method, route.path.as_str());
        let scope = route.scope.as_deref().unwrap();
        let operation = operation_of(scope);
        let others: Vec<&str> = ALL_SCOPES
            .iter()
            .copied()
            .filter(|s| *s != operation)
            .collect();
        let without = create_key(&app, &format!("without-{n}"), &others.join(",")).await;
        let response = call(&app, method.clone(), path, &without).await;
        assert_eq!(response.status(), 403, "{method} {path} without {scope}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "missing_scope");
        assert_eq!(body["error"]["details"]["missing_scope"], scope);
        assert!(body["error"]["message"].as_str().unwrap().contains(scope));

        let with = create_key(&app, &format!("with-{n}"), scope).await;
        let response = call(&app, method.clone(), path, &with).await;
        let status = response.status().as_u16();
        assert!(
            ![401, 403].contains(&status) && status < 500,
            "{method} {path} with {scope} passed the check, got {status}"
        );
    }
    // The catalog and the metrics need any valid key; the OpenAPI document is public.
    let minimal = create_key(&app, "minimal", "proxy:tiktok").await;
    for route in ANY_KEY_ROUTES {
        let path = route.split_once(' ').unwrap().1;
        assert_eq!(
            call(&app, Method::GET, path, &minimal).await.status(),
            200,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, path, "ge_unknown").await.status(),
            401
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_scope_narrowed_to_another_platform_is_refused_on_every_route_that_takes_a_platform() {
    let app = spawn_app().await;
    let routes = documented_routes(&app, "meta").await;
    let per_platform: Vec<&DocumentedRoute> = routes
        .iter()
        .filter(|r| r.per_platform && r.platform_in_request)
        .collect();
    assert!(per_platform.len() >= 10, "{}", per_platform.len());
    for (n, route) in per_platform.iter().enumerate() {
        let (method, path) = (&route.method, route.path.as_str());
        let scope = route.scope.as_deref().unwrap();
        let elsewhere = format!("{}:tiktok", operation_of(scope));
        let key = create_key(&app, &format!("elsewhere-{n}"), &elsewhere).await;
        let response = call(&app, method.clone(), path, &key).await;
        assert_eq!(response.status(), 403, "{method} {path} with {elsewhere}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["details"]["missing_scope"], scope,
            "{method} {path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_platform_narrowed_scope_covers_only_its_platform() {
    let app = spawn_app().await;
    app.run_flow("meta", "shop-n", true).await;
    app.run_flow("tiktok", "shop-n", true).await;
    let key = create_key(
        &app,
        "posting-agent",
        "tokens:read:meta,connections:read:meta,connect:tiktok",
    )
    .await;
    let meta = call(
        &app,
        Method::GET,
        "/api/v1/oauth/token/meta?store_id=shop-n",
        &key,
    )
    .await;
    assert_eq!(meta.status(), 200);
    let tiktok = call(
        &app,
        Method::GET,
        "/api/v1/oauth/token/tiktok?store_id=shop-n",
        &key,
    )
    .await;
    assert_eq!(tiktok.status(), 403);
    let body: Value = tiktok.json().await.unwrap();
    assert_eq!(
        body["error"]["details"]["missing_scope"],
        "tokens:read:tiktok"
    );
    let connect_meta = call(
        &app,
        Method::GET,
        "/api/v1/oauth/connect/meta?user_id=u&store_id=shop-n",
        &key,
    )
    .await;
    assert_eq!(connect_meta.status(), 403);
    let connect_tiktok = call(
        &app,
        Method::GET,
        "/api/v1/oauth/connect/tiktok?user_id=u&store_id=shop-n",
        &key,
    )
    .await;
    assert_eq!(connect_tiktok.status(), 200);
    // connections:read:meta lists the meta connection only.
    let list: Value = call(&app, Method::GET, "/api/v1/oauth/connections/shop-n", &key)
        .await
        .json()
        .await
        .unwrap();
    let platforms: Vec<&str> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, vec!["meta"]);
    let all: Value = app.connections("shop-n").await;
    assert_eq!(all["connections"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// A key verified (and so cached) just before its revoke is refused within about a second: every
/// replica checks the database for revocations each second and then forgets its cached keys. The
/// clock never moves, so the 30 s cache window plays no part.
#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second_though_it_was_cached() {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let key = create_key(&app, "short-lived", "connections:read").await;
    let path = "/api/v1/oauth/connections/s1";
    assert_eq!(call(&app, Method::GET, path, &key).await.status(), 200);
    assert_eq!(
        call(&app, Method::GET, path, &key).await.status(),
        200,
        "served from the cache"
    );
    assert!(app
        .services
        .store
        .revoke_api_key("short-lived", Utc::now())
        .await
        .unwrap());
    let revoked_at = std::time::Instant::now();
    let refused = loop {
        let response = call(&app, Method::GET, path, &key).await;
        if response.status() != 200 {
            break response;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "the revoked key still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    // The key's last use was recorded.
    let listed = app.services.store.list_api_keys().await.unwrap();
    assert!(listed[0].last_used_at.is_some());
    app.stop().await;
}

/// The service's count of API keys looked up in the database.
async fn key_lookups(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("growth_engine_api_key_lookups_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no key lookup count in:\n{metrics}"))
}

fn made_up_key() -> String {
    growth_engine::access::generate_key()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn made_up_keys_cost_the_database_a_bounded_number_of_lookups_and_live_keys_still_work() {
    use growth_engine::access::{LOOKUP_BURST, LOOKUP_REFILL};
    // The service's clock stands still: the live key stays in its 30 s cache however long the
    // flood takes on a loaded machine (the lookup limiter refills by real time, counted below).
    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        clock: Some(growth_engine::clock::ManualClock::new(chrono::Utc::now())),
        ..Default::default()
    })
    .await;
    let live = create_key(&app, "live", "connect,connections:read").await;
    let connect = "/api/v1/oauth/connect/google?user_id=u&store_id=s1";
    assert_eq!(call(&app, Method::GET, connect, &live).await.status(), 200);

    // A connect verifies its key once (the rate limiter and the handler share the verdict), and an
    // unknown key presented again within the window is not looked up again.
    let before = key_lookups(&app).await;
    let unknown = made_up_key();
    for _ in 0..3 {
        assert_eq!(
            call(&app, Method::GET, connect, &unknown).await.status(),
            401
        );
    }
    assert_eq!(
        key_lookups(&app).await - before,
        1,
        "one lookup for three requests"
    );

    // A flood of made-up keys from one client: refused, and the database asked a bounded number of
    // times (the burst, plus what came back while the flood ran).
    let started = std::time::Instant::now();
    let mut throttled = 0;
    for n in 0..300 {
        let path = if n % 2 == 0 {
            connect
        } else {
            "/api/v1/oauth/connections/s1"
        };
        let response = call(&app, Method::GET, path, &made_up_key()).await;
        match response.status().as_u16() {
            401 => {}
            429 => {
                throttled += 1;
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limited");
            }
            other => panic!("a made-up key got {other}"),
        }
    }
    let came_back = (started.elapsed().as_secs_f64() / LOOKUP_REFILL.as_secs_f64()).ceil() as u64;
    let lookups = key_lookups(&app).await - before;
    assert!(
        lookups <= 1 + u64::from(LOOKUP_BURST) + came_back,
        "{lookups} lookups for 300 made-up keys"
    );
    assert!(throttled > 250, "{throttled} throttled");
    // The keys that are known keep working for the flooding client too.
    assert_eq!(call(&app, Method::GET, connect, &live).await.status(), 200);
    assert_eq!(
        call(&app, Method::GET, connect, API_KEY).await.status(),
        200
    );
    app.stop().await;
}

/// A key the database did not know is remembered as unknown for `UNKNOWN_WINDOW` (5 s): created
/// meanwhile (by `api-key create`, in another process), it works once that window has passed.
#[tokio::test]
async fn a_key_created_after_it_was_refused_works_within_the_unknown_window() {
    let app = spawn_app().await;
    let path = "/api/v1/oauth/connections/s1";
    let key = made_up_key();
    assert_eq!(call(&app, Method::GET, path, &key).await.status(), 401);
    let record = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: "late".into(),
        scopes: "connections:read".into(),
        stores: None,
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    app.services
        .store
        .create_api_key(&record, &hash_key(&key))
        .await
        .unwrap();
    let created = std::time::Instant::now();
    let window = Duration::from_secs(
        growth_engine::access::UNKNOWN_WINDOW
            .num_seconds()
            .unsigned_abs(),
    );
    loop {
        let status = call(&app, Method::GET, path, &key).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 401);
        assert!(
            created.elapsed() < window + Duration::from_secs(2),
            "the new key still refused after {:?}",
            created.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

/// Waits until the audit trail of `store` holds at least `count` rows, then returns them all.
async fn audit_of(app: &TestApp, store: &str, count: usize) -> Vec<Value> {
    // The audit writer batches under load: what was recorded before now is stored once flushed.
    assert!(app.services.audit.flush(Duration::from_secs(5)).await);
    for _ in 0..100 {
        let body: Value = app
            .get(&format!("/api/v1/audit?store_id={store}&limit=200"))
            .await
            .json()
            .await
            .unwrap();
        let entries = body["entries"].as_array().unwrap().clone();
        if entries.len() >= count {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the audit trail of {store} never reached {count} rows");
}

fn find<'a>(entries: &'a [Value], operation: &str, actor: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["operation"] == operation && e["actor"] == actor && e["platform"] == "meta")
        .unwrap_or_else(|| panic!("no {operation} by {actor} in {entries:#?}"))
}

#[tokio::test]
async fn a_full_run_is_audited_with_actors_and_outcomes_and_no_secret_in_any_row() {
    let app = spawn_app().await;
    let agent = create_key(&app, "posting-agent", "tokens:read,disconnect").await;
    // The flow by hand, so that its code and state are known.
    let browser = Browser::new();
    let start = app.connect_url("meta", "shop-a").await;
    let authorize = browser.first_hop(&start).await;
    let callback = browser.consent(&authorize, true).await;
    let callback_query = query_of(&callback);
    let outcome = query_of(&browser.callback(&callback).await);
    assert_eq!(outcome["connection"], "success");

    let token: Value = call(
        &app,
        Method::GET,
        "/api/v1/oauth/token/meta?store_id=shop-a",
        &agent,
    )
    .await
    .json()
    .await
    .unwrap();
    let refreshed: Value = call(
        &app,
        Method::POST,
        "/api/v1/oauth/refresh/meta?store_id=shop-a",
        &agent,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(token["access_token"], refreshed["access_token"]);
    let missing = call(
        &app,
        Method::GET,
        "/api/v1/oauth/token/tiktok?store_id=shop-a",
        &agent,
    )
    .await;
    assert_eq!(missing.status(), 404);
    let gone = call(
        &app,
        Method::DELETE,
        "/api/v1/oauth/disconnect/meta?user_id=user-1&store_id=shop-a",
        &agent,
    )
    .await;
    assert_eq!(gone.status(), 200);

    let entries = audit_of(&app, "shop-a", 7).await;
    let started = find(&entries, "connect", "env:1");
    assert_eq!(started["actor_kind"], "api_key");
    assert_eq!(started["outcome"], "started");
    assert_eq!(started["platform"], "meta");
    let completed = find(&entries, "connect", "user-1");
    assert_eq!(completed["actor_kind"], "page_user");
    assert_eq!(completed["outcome"], "success");
    assert_eq!(
        find(&entries, "token", "posting-agent")["outcome"],
        "success"
    );
    assert_eq!(
        find(&entries, "refresh", "posting-agent")["outcome"],
        "success"
    );
    // The platform call behind the forced refresh is recorded by the lifecycle itself.
    let renewal = find(&entries, "refresh", "refresher");
    assert_eq!(renewal["actor_kind"], "system");
    assert_eq!(renewal["outcome"], "success");
    let failed = entries
        .iter()
        .find(|e| e["operation"] == "token" && e["platform"] == "tiktok")
        .expect("the failed hand-out is recorded");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["detail"], "connection_not_found");
    let disconnect = find(&entries, "disconnect", "posting-agent");
    assert_eq!(disconnect["outcome"], "success");
    assert!(disconnect["detail"]
        .as_str()
        .unwrap()
        .starts_with("revocation "));
    // Newest first.
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    // Every row, as stored, against every secret of the run.
    let db = app.database.as_ref().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("select row_to_json(a)::text from audit a")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(rows.len() >= 6);
    let all = rows
        .into_iter()
        .map(|(r,)| r)
        .collect::<Vec<_>>()
        .join("\n");
    let secrets = [
        token["access_token"].as_str().unwrap().to_owned(),
        refreshed["access_token"].as_str().unwrap().to_owned(),
        callback_query["code"].clone(),
        callback_query["state"].clone(),
        agent.clone(),
        API_KEY.to_owned(),
        hash_key(&agent),
        credentials("meta").1,
    ];
    for secret in secrets {
        assert!(secret.len() >= 8, "a real secret: {secret}");
        assert!(!all.contains(&secret), "a secret is in the audit trail");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_page_records_its_users_actions_and_shows_only_its_stores_activity() {
    let app = spawn_app().await;
    let merchant = Merchant::open(&app, "shop-p", "alice").await;
    merchant.connect(&app, "tiktok", true).await;
    let response = merchant
        .post(&app, "/dashboard/api/disconnect/tiktok")
        .await;
    assert_eq!(response.status(), 200);
    app.run_flow("meta", "other-shop", true).await;
    let entries = audit_of(&app, "shop-p", 3).await;
    let actions: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["actor"] == "alice")
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(actions.contains(&("connect".into(), "started".into())));
    assert!(actions.contains(&("connect".into(), "success".into())));
    assert!(actions.contains(&("disconnect".into(), "success".into())));

    let activity = merchant
        .browser
        .client
        .get(app.url("/dashboard/api/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(activity.status(), 200);
    let activity: Value = activity.json().await.unwrap();
    let shown = activity["entries"].as_array().unwrap();
    assert_eq!(shown.len(), entries.len());
    assert!(shown.iter().all(|e| e["platform"] == "tiktok"));
    let anonymous = app
        .api
        .get(app.url("/dashboard/api/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn every_proxied_call_refused_or_failed_is_audited_and_the_merchant_never_sees_its_path() {
    let app = spawn_app().await;
    let reader = create_key(&app, "reader", "connections:read").await;
    let proxied = |key: &str, method: Method, path: &str| {
        app.api
            .request(method, app.url(&format!("/api/v1/proxy/twitter/{path}")))
            .bearer_auth(key)
            .header("Growth-Engine-Store", "shop-x")
    };
    // Refused: no proxy scope (403); a path that could leave the API (400). Failed: the store has
    // no connection (404).
    let refused = proxied(
        &reader,
        Method::GET,
        "users/private-path-1?fields=secret-value",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);
    let bad_path = proxied(API_KEY, Method::GET, "users%2f..%2fprivate-path-2")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_path.status(), 400);
    let failed = proxied(API_KEY, Method::POST, "tweets/private-path-3")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 404);

    let entries = audit_of(&app, "shop-x", 3).await;
    let proxy: Vec<&Value> = entries
        .iter()
        .filter(|e| e["operation"] == "proxy")
        .collect();
    assert_eq!(proxy.len(), 3, "{entries:#?}");
    for (actor, prefix) in [
        (
            "reader",
            "missing_scope: GET users/private-path-1?fields - ",
        ),
        (
            "env:1",
            "invalid_proxy_path: GET users%2f..%2fprivate-path-2 - ",
        ),
        (
            "env:1",
            "connection_not_found: POST tweets/private-path-3 - ",
        ),
    ] {
        let row = proxy
            .iter()
            .find(|e| e["detail"].as_str().unwrap_or("").starts_with(prefix))
            .unwrap_or_else(|| panic!("no row for {prefix:?} in {proxy:#?}"));
        assert_eq!(row["actor"], actor);
        assert_eq!(row["outcome"], "failure");
        assert_eq!(row["platform"], "twitter");
    }
    assert!(
        !serde_json::to_string(&entries)
            .unwrap()
            .contains("secret-value"),
        "a query value was recorded"
    );

    // The merchant's page: the calls, in words, without a path.
    let merchant = Merchant::open(&app, "shop-x", "alice").await;
    let activity = merchant
        .browser
        .client
        .get(app.url("/dashboard/api/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(activity.status(), 200);
    let activity: Value = activity.json().await.unwrap();
    let shown: Vec<&Value> = activity["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "proxy")
        .collect();
    assert_eq!(shown.len(), 3, "{activity:#}");
    assert!(
        !activity.to_string().contains("private-path"),
        "the page shows a caller's path: {activity:#}"
    );
    assert!(shown.iter().all(|e| e["detail"].is_null()));
    app.stop().await;
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first_and_validates_its_parameters() {
    let app = spawn_app().await;
    let t0 = Utc::now() - chrono::Duration::hours(1);
    let rows: Vec<AuditRow> = (0..7)
        .map(|n| AuditRow {
            id: Uuid::now_v7(),
            at: t0 + chrono::Duration::seconds(n),
            actor_kind: "system".into(),
            actor: "refresher".into(),
            store_id: Some("paged".into()),
            platform: Some("google".into()),
            operation: "refresh".into(),
            outcome: "success".into(),
            detail: Some(format!("n{n}")),
        })
        .collect();
    app.services.store.insert_audit(&rows).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?store_id=paged&limit=3&cursor={c}"),
            None => "/api/v1/audit?store_id=paged&limit=3".to_owned(),
        };
        let body: Value = app.get(&path).await.json().await.unwrap();
        pages += 1;
        for entry in body["entries"].as_array().unwrap() {
            seen.push(entry["detail"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["n6", "n5", "n4", "n3", "n2", "n1", "n0"]);
    let since =
        (t0 + chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body: Value = app
        .get(&format!("/api/v1/audit?store_id=paged&since={since}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["entries"].as_array().unwrap().len(), 2);
    assert!(body["next_cursor"].is_null());
    for (query, code) in [
        ("store_id=paged&limit=0", "invalid_limit"),
        ("store_id=paged&limit=201", "invalid_limit"),
        ("store_id=paged&cursor=bm90LWEtY3Vyc29y", "invalid_cursor"),
        ("store_id=bad%20store", "invalid_query"),
    ] {
        let response = app.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn pruning_deletes_only_rows_older_than_the_retention() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("AUDIT_RETENTION_DAYS", "30".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(
        app.services.settings.audit_retention,
        Duration::from_secs(30 * 24 * 3600)
    );
    let now = Utc::now();
    let row = |days: i64| AuditRow {
        id: Uuid::now_v7(),
        at: now - chrono::Duration::days(days),
        actor_kind: "system".into(),
        actor: "refresher".into(),
        store_id: Some("old-shop".into()),
        platform: None,
        operation: "refresh".into(),
        outcome: "success".into(),
        detail: Some(format!("{days} days")),
    };
    let rows: Vec<AuditRow> = (0..1500)
        .map(|_| row(40))
        .chain([row(29), row(1)])
        .collect();
    app.services.store.insert_audit(&rows).await.unwrap();
    let pruned = app
        .services
        .audit
        .prune(chrono::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(pruned, 1500, "in batches until none is left");
    let left = app
        .services
        .store
        .list_audit(
            &StoreId::parse("old-shop").unwrap(),
            chrono::DateTime::UNIX_EPOCH,
            None,
            10,
        )
        .await
        .unwrap();
    let details: Vec<&str> = left.iter().filter_map(|r| r.detail.as_deref()).collect();
    assert_eq!(details, vec!["1 days", "29 days"]);
    app.stop().await;
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_growth-engine"))
        .args(args)
        // No .env of the developer's: the test database only.
        .current_dir(dir.path())
        .env("DATABASE_URL", &app.database.as_ref().unwrap().url)
        .env_remove("API_KEYS")
        .env_remove("REDIS_URL")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_keys_that_the_service_honours() {
    let app = spawn_app().await;
    let created = cli(
        &app,
        &[
            "api-key",
            "create",
            "--name",
            "posting-agent",
            "--scopes",
            "tokens:read:meta,connections:read",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8(created.stdout).unwrap();
    let key = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "stdout is the key alone");
    assert!(key.starts_with("ge_") && key.len() > 40);
    assert!(!String::from_utf8_lossy(&created.stderr).contains(key));

    let response = call(&app, Method::GET, "/api/v1/oauth/connections/s1", key).await;
    assert_eq!(response.status(), 200);
    let response = call(&app, Method::GET, "/api/v1/audit?store_id=s1", key).await;
    assert_eq!(response.status(), 403);

    let listed = cli(&app, &["api-key", "list"]);
    assert!(listed.status.success());
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(listing.contains("posting-agent\ttokens:read:meta,connections:read\t"));
    assert!(!listing.contains(key));
    assert!(!listing.contains(&hash_key(key)));

    for (args, needle) in [
        (
            vec![
                "api-key",
                "create",
                "--name",
                "x",
                "--scopes",
                "tokens:write",
            ],
            "unknown scope",
        ),
        (
            vec![
                "api-key",
                "create",
                "--name",
                "x",
                "--scopes",
                "tokens:read:myspace",
            ],
            "unknown platform",
        ),
        (
            vec![
                "api-key", "create", "--name", "Bad Name", "--scopes", "connect",
            ],
            "--name",
        ),
        (
            vec![
                "api-key",
                "create",
                "--name",
                "posting-agent",
                "--scopes",
                "connect",
            ],
            "already exists",
        ),
        (
            vec!["api-key", "revoke", "--name", "nobody"],
            "no active key",
        ),
    ] {
        let refused = cli(&app, &args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(refused.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(refused.stdout.is_empty());
    }

    let revoked = cli(&app, &["api-key", "revoke", "--name", "posting-agent"]);
    assert!(revoked.status.success(), "{revoked:?}");
    let listing = String::from_utf8(cli(&app, &["api-key", "list"]).stdout).unwrap();
    let line = listing
        .lines()
        .find(|l| l.starts_with("posting-agent\t"))
        .unwrap();
    assert!(
        !line.ends_with("\t-"),
        "the revocation date is listed: {line}"
    );
    let record = app.services.store.list_api_keys().await.unwrap();
    assert!(record[0].revoked_at.is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_failed_audit_write_is_counted_and_never_fails_the_request() {
    let app = spawn_app().await;
    app.run_flow("pinterest", "shop-f", true).await;
    let db = app.database.as_ref().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query("drop table audit")
        .execute(&mut conn)
        .await
        .unwrap();
    let token = app
        .get("/api/v1/oauth/token/pinterest?store_id=shop-f")
        .await;
    assert_eq!(
        token.status(),
        200,
        "the hand-out does not wait for the audit"
    );
    for _ in 0..100 {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let failures = metrics
            .lines()
            .find(|l| l.starts_with("growth_engine_audit_write_failures_total "))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if failures >= 1.0 {
            app.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the failed audit write was never counted");
}

#[test]
fn the_audit_retention_is_1_to_3650_days_and_90_by_default() {
    use growth_engine::config::Settings;
    let with = |value: Option<&str>| {
        let map: std::collections::HashMap<String, String> = value
            .map(|v| ("AUDIT_RETENTION_DAYS".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        Settings::from_vars(&map)
    };
    let days = |s: Settings| s.audit_retention.as_secs() / 86_400;
    assert_eq!(days(with(None).unwrap()), 90);
    assert_eq!(days(with(Some("1")).unwrap()), 1);
    assert_eq!(days(with(Some("3650")).unwrap()), 3650);
    for bad in ["0", "3651", "ninety"] {
        let error = with(Some(bad)).unwrap_err();
        assert_eq!(error.variable, "AUDIT_RETENTION_DAYS", "{bad}");
    }
}

/// Every scope, so that only the key's stores decide.
const EVERY_OPERATION: &str = "connections:read,connect,disconnect,tokens:read,proxy,selection:write,audit:read,posts:write,posts:read";

/// Creates a post through the API with `key`, for later (so that it is still cancellable).
async fn post_later(app: &TestApp, key: &str, store: &str, idempotency: &str) -> reqwest::Response {
    let later = Utc::now() + chrono::Duration::hours(2);
    app.api
        .post(app.url("/api/v1/posts"))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency)
        .json(&serde_json::json!({
            "store_id": store, "platform": "twitter", "text": "news", "publish_at": later,
        }))
        .send()
        .await
        .unwrap()
}

/// Asserts a 403 `store_not_allowed` that does not name the key's store.
async fn assert_store_not_allowed(response: reqwest::Response, route: &str) {
    assert_eq!(response.status(), 403, "{route}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "store_not_allowed",
        "{route}: {body}"
    );
    assert!(
        !body.to_string().contains("shop-a"),
        "{route}: the key's stores are echoed: {body}"
    );
}

#[tokio::test]
async fn a_key_bound_to_a_store_acts_for_it_and_is_refused_every_other_store() {
    let app = spawn_app().await;
    crate::faults_refresh::connect(&app, "twitter", "shop-a").await;
    crate::faults_refresh::connect(&app, "twitter", "shop-b").await;
    let key = create_bound_key(&app, "shop-a-agent", EVERY_OPERATION, Some("shop-a")).await;

    // Its own store.
    let listing = call(&app, Method::GET, "/api/v1/oauth/connections/shop-a", &key).await;
    assert_eq!(listing.status(), 200);
    let listing: Value = listing.json().await.unwrap();
    assert_eq!(listing["connections"][0]["platform"], "twitter");
    let own = post_later(&app, &key, "shop-a", "own").await;
    assert_eq!(own.status(), 201);
    let own: Value = own.json().await.unwrap();
    let own_id = own["id"].as_str().unwrap();
    let read = call(&app, Method::GET, &format!("/api/v1/posts/{own_id}"), &key).await;
    assert_eq!(read.status(), 200);

    // Another store, on every route family that names one.
    for (method, path) in [
        (Method::GET, "/api/v1/oauth/connections/shop-b"),
        (
            Method::POST,
            "/api/v1/oauth/connections/shop-b/twitter/assets/refresh",
        ),
        (
            Method::PUT,
            "/api/v1/oauth/connections/shop-b/twitter/selection",
        ),
        (Method::GET, "/api/v1/oauth/token/twitter?store_id=shop-b"),
        (
            Method::POST,
            "/api/v1/oauth/refresh/twitter?store_id=shop-b",
        ),
        (
            Method::GET,
            "/api/v1/oauth/connect/twitter?user_id=u&store_id=shop-b",
        ),
        (
            Method::DELETE,
            "/api/v1/oauth/disconnect/twitter?user_id=u&store_id=shop-b",
        ),
        (Method::GET, "/api/v1/audit?store_id=shop-b"),
        (Method::GET, "/api/v1/posts?store_id=shop-b"),
    ] {
        let route = format!("{method} {path}");
        assert_store_not_allowed(call(&app, method, path, &key).await, &route).await;
    }
    let proxied = app
        .api
        .get(app.url("/api/v1/proxy/twitter/users/me"))
        .bearer_auth(&key)
        .header("Growth-Engine-Store", "shop-b")
        .send()
        .await
        .unwrap();
    assert_store_not_allowed(proxied, "proxy").await;
    assert_store_not_allowed(
        post_later(&app, &key, "shop-b", "other").await,
        "POST posts",
    )
    .await;

    // Another store's post is not there for this key, as another platform's is not.
    let theirs = post_later(&app, API_KEY, "shop-b", "theirs").await;
    assert_eq!(theirs.status(), 201);
    let theirs: Value = theirs.json().await.unwrap();
    let their_path = format!("/api/v1/posts/{}", theirs["id"].as_str().unwrap());
    for method in [Method::GET, Method::DELETE] {
        let response = call(&app, method.clone(), &their_path, &key).await;
        assert_eq!(response.status(), 404, "{method}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "post_not_found");
    }
    let still: Value = app.get(&their_path).await.json().await.unwrap();
    assert_eq!(
        still["status"], "scheduled",
        "the refused cancel did nothing"
    );
    let connections: Value = app.connections("shop-b").await;
    assert_eq!(connections["connections"].as_array().unwrap().len(), 1);

    // Each refusal is in the refused store's trail, under the key's name.
    let entries = audit_of(&app, "shop-b", 11).await;
    let refused: Vec<&str> = entries
        .iter()
        .filter(|e| e["actor"] == "shop-a-agent")
        .inspect(|e| assert_eq!(e["outcome"], "failure", "{e}"))
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("store_not_allowed"))
        })
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    for operation in [
        "connections",
        "assets_refresh",
        "selection",
        "token",
        "refresh",
        "connect",
        "disconnect",
        "audit",
        "post.list",
        "proxy",
        "post.create",
    ] {
        assert!(refused.contains(&operation), "{operation}: {refused:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_cli_binds_a_key_to_stores_lists_them_and_refuses_an_invalid_list() {
    let app = spawn_app().await;
    let created = cli(
        &app,
        &[
            "api-key",
            "create",
            "--name",
            "shop-agent",
            "--scopes",
            "connections:read",
            "--stores",
            "shop-42, shop-43,shop-42",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8(created.stdout).unwrap();
    let key = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "stdout is the key alone");

    let own = call(&app, Method::GET, "/api/v1/oauth/connections/shop-43", key).await;
    assert_eq!(own.status(), 200);
    let other = call(&app, Method::GET, "/api/v1/oauth/connections/shop-44", key).await;
    assert_store_not_allowed(other, "connections of shop-44").await;

    let listing = String::from_utf8(cli(&app, &["api-key", "list"]).stdout).unwrap();
    assert!(listing.starts_with("NAME\tSCOPES\tSTORES\t"), "{listing}");
    assert!(
        listing.contains("shop-agent\tconnections:read\tshop-42,shop-43\t"),
        "{listing}"
    );

    let many: Vec<String> = (0..101).map(|n| format!("s{n}")).collect();
    for stores in ["shop-42,shop 43", "", " , ", "a/b", &many.join(",")] {
        let refused = cli(
            &app,
            &[
                "api-key",
                "create",
                "--name",
                "refused",
                "--scopes",
                "connections:read",
                "--stores",
                stores,
            ],
        );
        assert_eq!(refused.status.code(), Some(2), "{stores:?}");
        let stderr = String::from_utf8(refused.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("--stores"), "{stderr}");
        assert!(refused.stdout.is_empty());
    }
    let names: Vec<String> = app
        .services
        .store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, vec!["shop-agent"], "no refused key was stored");
    app.stop().await;
}
