//! Reconnecting: "Grant missing permissions" asks each platform for what is missing in the way it
//! supports (incremental at Google and Meta, a full consent elsewhere), a reconnect keeps the
//! connection's identity, selection and history, and a different account is not swapped in
//! without the merchant's word.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{query_of, spawn_app, Browser, TestApp, API_KEY};

/// Starts a "grant missing permissions" flow through the API; returns the platform's
/// authorization URL and the browser that opened the first hop.
async fn grant_missing_authorize(app: &TestApp, platform: &str, store: &str) -> (Browser, String) {
    let response = app
        .get(&format!(
            "/api/v1/oauth/connect/{platform}?user_id=user-1&store_id={store}&grant=missing"
        ))
        .await;
    assert_eq!(response.status(), 200, "connect {platform} grant=missing");
    let body: Value = response.json().await.unwrap();
    let browser = Browser::new();
    let authorize = browser
        .first_hop(body["authorization_url"].as_str().unwrap())
        .await;
    (browser, authorize)
}

fn connection<'a>(listing: &'a Value, platform: &str) -> &'a Value {
    listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == platform)
        .unwrap_or_else(|| panic!("a {platform} connection in {listing}"))
}

/// Connects with only `granted` approved, checks what is missing, then grants the rest with
/// "grant missing" and checks the authorization request with `check`; nothing is missing after.
async fn decline_then_grant_missing(
    platform: &str,
    granted: &[&str],
    check: impl FnOnce(&std::collections::HashMap<String, String>),
) {
    let app = spawn_app().await;
    let store = format!("{platform}-shop");
    app.simulator.set_granted_scopes_override(
        platform,
        Some(granted.iter().map(|s| (*s).to_owned()).collect()),
    );
    assert_eq!(
        app.run_flow(platform, &store, true).await["connection"],
        "success"
    );
    app.simulator.set_granted_scopes_override(platform, None);
    let listing = app.connections(&store).await;
    let before = connection(&listing, platform).clone();
    assert!(
        !before["missing_scopes"].as_array().unwrap().is_empty(),
        "{before}"
    );

    let (browser, authorize) = grant_missing_authorize(&app, platform, &store).await;
    check(&query_of(&authorize));
    let callback = browser.consent(&authorize, true).await;
    let dashboard = query_of(&browser.callback(&callback).await);
    assert_eq!(dashboard["connection"], "success", "{dashboard:?}");

    let listing = app.connections(&store).await;
    let after = connection(&listing, platform);
    assert_eq!(after["missing_scopes"], json!([]), "{after}");
    for scope in granted {
        assert!(
            after["scopes"].as_array().unwrap().contains(&json!(scope)),
            "{scope} kept in {after}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn google_grant_missing_asks_only_for_the_missing_scopes_and_ends_with_all() {
    let ads = "https://www.googleapis.com/auth/adwords";
    decline_then_grant_missing("google", &["openid", "email", "profile"], |query| {
        assert_eq!(query["scope"], ads);
        assert_eq!(query["include_granted_scopes"], "true");
        assert_eq!(query["prompt"], "consent");
    })
    .await;
}

#[tokio::test]
async fn meta_grant_missing_rerequests_only_the_declined_permissions() {
    decline_then_grant_missing(
        "meta",
        &[
            "pages_show_list",
            "pages_read_engagement",
            "pages_manage_posts",
        ],
        |query| {
            assert_eq!(query["auth_type"], "rerequest");
            let asked: Vec<&str> = query["scope"].split(',').collect();
            assert!(!asked.contains(&"pages_show_list"), "{asked:?}");
            assert!(asked.contains(&"ads_management"), "{asked:?}");
            let all = growth_engine::platforms::built_in("meta")
                .unwrap()
                .scopes
                .len();
            assert_eq!(
                asked.len(),
                all - 3,
                "only the declined three are left out: {asked:?}"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn tiktok_grant_missing_is_a_full_consent_that_always_shows_the_screen() {
    decline_then_grant_missing("tiktok", &["user.info.basic", "video.list"], |query| {
        assert_eq!(
            query["scope"],
            "user.info.basic,user.info.profile,user.info.stats,video.list,video.publish,video.upload"
        );
        assert_eq!(query["disable_auto_auth"], "1");
        assert!(!query.contains_key("auth_type"));
    })
    .await;
}

#[tokio::test]
async fn without_grant_missing_a_reconnect_asks_for_every_scope_and_meta_not_again_for_declined() {
    let app = spawn_app().await;
    app.simulator
        .set_granted_scopes_override("meta", Some(vec!["pages_show_list".to_owned()]));
    assert_eq!(
        app.run_flow("meta", "shop", true).await["connection"],
        "success"
    );
    app.simulator.set_granted_scopes_override("meta", None);
    let url = app.connect_url("meta", "shop").await;
    let browser = Browser::new();
    let authorize = browser.first_hop(&url).await;
    let query = query_of(&authorize);
    assert!(!query.contains_key("auth_type"));
    assert_eq!(
        query["scope"].split(',').count(),
        growth_engine::platforms::built_in("meta")
            .unwrap()
            .scopes
            .len()
    );
    // Meta does not ask again for what was declined without auth_type=rerequest: still missing.
    let callback = browser.consent(&authorize, true).await;
    assert_eq!(
        query_of(&browser.callback(&callback).await)["connection"],
        "success"
    );
    let listing = app.connections("shop").await;
    assert_eq!(
        connection(&listing, "meta")["missing_scopes"]
            .as_array()
            .unwrap()
            .len(),
        growth_engine::platforms::built_in("meta")
            .unwrap()
            .scopes
            .len()
            - 1,
        "all but the one granted"
    );
    app.stop().await;
}

async fn row_id(
    app: &TestApp,
    store: &str,
    platform: &str,
) -> (uuid::Uuid, chrono::DateTime<chrono::Utc>) {
    use sqlx::Connection as _;
    let url = &app.database.as_ref().expect("a PostgreSQL app").url;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_as(
        "select id, created_at from platform_connections where store_id = $1 and platform = $2",
    )
    .bind(store)
    .bind(platform)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

async fn audit_entries(app: &TestApp, store: &str, at_least: usize) -> Vec<Value> {
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
        if entries.len() >= at_least {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the audit trail of {store} never reached {at_least} rows");
}

#[tokio::test]
async fn a_reconnect_keeps_the_connections_id_selection_and_history() {
    let app = spawn_app().await;
    assert_eq!(
        app.run_flow("meta", "shop", true).await["connection"],
        "success"
    );
    let (id, created_at) = row_id(&app, "shop", "meta").await;
    let selected = app
        .api
        .put(app.url("/api/v1/oauth/connections/shop/meta/selection"))
        .bearer_auth(API_KEY)
        .json(&json!({ "kind": "facebook_page", "id": "2000000002" }))
        .send()
        .await
        .unwrap();
    assert_eq!(selected.status(), 200);
    let history = audit_entries(&app, "shop", 3).await;

    assert_eq!(
        app.run_flow("meta", "shop", true).await["connection"],
        "success"
    );
    assert_eq!(
        row_id(&app, "shop", "meta").await,
        (id, created_at),
        "same row"
    );
    let listing = app.connections("shop").await;
    let meta = connection(&listing, "meta");
    let page = |page_id: &str| {
        meta["assets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == page_id)
            .unwrap_or_else(|| panic!("page {page_id} in {meta}"))["selected"]
            .clone()
    };
    assert_eq!(
        page("2000000002"),
        json!(true),
        "the chosen page stays the default"
    );
    assert_eq!(page("2000000001"), json!(false));
    let after = audit_entries(&app, "shop", history.len() + 2).await;
    for entry in &history {
        assert!(after.contains(entry), "{entry} kept");
    }
    app.stop().await;
}

fn page_app_options() -> crate::helpers::TestAppOptions {
    crate::helpers::TestAppOptions {
        extra_env: vec![(
            "DASHBOARD_JWT_SECRET",
            crate::dashboard::DASHBOARD_SECRET.into(),
        )],
        ..Default::default()
    }
}

/// Reconnects Meta from the page with another account than the connected one: the grant is
/// parked for the merchant's answer; returns its id.
async fn reconnect_awaiting_an_answer(
    app: &TestApp,
    merchant: &crate::dashboard::Merchant,
) -> String {
    let outcome = merchant.connect(app, "meta", true).await;
    assert_eq!(outcome["connection"], "confirm", "{outcome}");
    assert_eq!(outcome["platform"], "meta");
    outcome["pending"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_page_reconnect_with_another_account_waits_for_the_merchants_word() {
    use crate::dashboard::Merchant;
    let app = crate::helpers::spawn_app_with(page_app_options()).await;
    let merchant = Merchant::open(&app, "shop", "owner").await;
    assert_eq!(
        merchant.connect(&app, "meta", true).await["connection"],
        "success"
    );
    let (id, _) = row_id(&app, "shop", "meta").await;
    let account = |listing: &Value| connection(listing, "meta")["account_name"].clone();
    assert_eq!(account(&app.connections("shop").await), "Sandbox Merchant");

    // The same account again replaces nothing: no question.
    assert_eq!(
        merchant.connect(&app, "meta", true).await["connection"],
        "success"
    );

    // Another account: parked, the old one still in place.
    app.simulator.set_signed_in_account("meta", 2);
    let pending = reconnect_awaiting_an_answer(&app, &merchant).await;
    assert_eq!(account(&app.connections("shop").await), "Sandbox Merchant");
    let shown: Value = merchant
        .browser
        .client
        .get(app.url(&format!("/dashboard/api/replacement/{pending}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["new_account_name"], "Other Merchant 2", "{shown}");
    assert_eq!(shown["old_account_name"], "Sandbox Merchant", "{shown}");

    // Another store's session can neither see nor settle it.
    let stranger = Merchant::open(&app, "other-shop", "owner").await;
    let refused = stranger
        .post(
            &app,
            &format!("/dashboard/api/replacement/{pending}/confirm"),
        )
        .await;
    assert_eq!(refused.status(), 400);

    // Keep: the new grant is revoked at Meta, the old account stays.
    let revocations = app.simulator.revocations("meta").len();
    let kept = merchant
        .post(
            &app,
            &format!("/dashboard/api/replacement/{pending}/cancel"),
        )
        .await;
    assert_eq!(kept.status(), 200);
    assert_eq!(app.simulator.revocations("meta").len(), revocations + 1);
    assert_eq!(account(&app.connections("shop").await), "Sandbox Merchant");
    let again = merchant
        .post(
            &app,
            &format!("/dashboard/api/replacement/{pending}/confirm"),
        )
        .await;
    assert_eq!(again.status(), 400, "single use");

    // Replace: the new account takes the same connection.
    let pending = reconnect_awaiting_an_answer(&app, &merchant).await;
    let replaced = merchant
        .post(
            &app,
            &format!("/dashboard/api/replacement/{pending}/confirm"),
        )
        .await;
    assert_eq!(replaced.status(), 200);
    let body: Value = replaced.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("replaced Sandbox Merchant"),
        "{body}"
    );
    assert_eq!(account(&app.connections("shop").await), "Other Merchant 2");
    assert_eq!(row_id(&app, "shop", "meta").await.0, id, "same row");
    // The history tells the story: parked twice, kept once, replaced once.
    let entries = audit_entries(&app, "shop", 8).await;
    let outcomes = |outcome: &str| {
        entries
            .iter()
            .filter(|e| e["operation"] == "connect" && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(outcomes("pending"), 2, "{entries:#?}");
    assert_eq!(outcomes("cancelled"), 1, "{entries:#?}");
    assert!(entries.iter().any(|e| e["detail"]
        .as_str()
        .is_some_and(|d| d.contains("replaced account Sandbox Merchant"))));
    app.stop().await;
}

/// A parked grant nobody answers (the tab closed) is revoked at the platform once its offer ends,
/// by the reaper every replica runs, and recorded as kept by the service.
async fn an_unanswered_parked_grant_is_revoked_when_its_offer_ends(
    backend: crate::helpers::Backend,
) {
    use crate::dashboard::Merchant;
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        backend,
        clock: Some(clock.clone()),
        ..page_app_options()
    })
    .await;
    let replacements = &app.services.replacements;
    let merchant = Merchant::open(&app, "shop", "owner").await;
    assert_eq!(
        merchant.connect(&app, "meta", true).await["connection"],
        "success"
    );
    app.simulator.set_signed_in_account("meta", 2);
    let pending = reconnect_awaiting_an_answer(&app, &merchant).await;
    let shown = |merchant: &Merchant| {
        let request = merchant
            .browser
            .client
            .get(app.url(&format!("/dashboard/api/replacement/{pending}")));
        async move { request.send().await.unwrap().status() }
    };
    let revocations = app.simulator.revocations("meta").len();

    // While the offer stands, the reaper leaves it alone.
    clock.advance(chrono::Duration::minutes(9));
    assert_eq!(replacements.reap_unanswered().await.unwrap(), 0);
    assert_eq!(shown(&merchant).await, 200);
    assert_eq!(app.simulator.revocations("meta").len(), revocations);

    // Past it: the page can no longer settle it, and the reaper revokes it, once.
    clock.advance(chrono::Duration::minutes(2));
    let merchant = Merchant::open(&app, "shop", "owner").await;
    assert_eq!(shown(&merchant).await, 400, "the offer has ended");
    // The app's own reaper (every minute) may be the one that takes it: either way, once.
    let reaped = replacements.reap_unanswered().await.unwrap();
    assert!(reaped <= 1);
    for _ in 0..100 {
        if app.simulator.revocations("meta").len() > revocations {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        replacements.reap_unanswered().await.unwrap(),
        0,
        "taken once"
    );
    assert_eq!(app.simulator.revocations("meta").len(), revocations + 1);
    let confirm = merchant
        .post(
            &app,
            &format!("/dashboard/api/replacement/{pending}/confirm"),
        )
        .await;
    assert_eq!(confirm.status(), 400);
    assert_eq!(
        connection(&app.connections("shop").await, "meta")["account_name"],
        "Sandbox Merchant",
        "the old account stays"
    );
    let entries = audit_entries(&app, "shop", 4).await;
    assert!(
        entries.iter().any(|e| e["operation"] == "connect"
            && e["outcome"] == "cancelled"
            && e["actor_kind"] == "system"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no answer") && d.contains("revoked"))),
        "{entries:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unanswered_parked_grant_is_revoked_in_redis() {
    an_unanswered_parked_grant_is_revoked_when_its_offer_ends(crate::helpers::Backend::Shared)
        .await;
}

#[tokio::test]
async fn an_unanswered_parked_grant_is_revoked_in_process() {
    an_unanswered_parked_grant_is_revoked_when_its_offer_ends(crate::helpers::Backend::Embedded)
        .await;
}

#[tokio::test]
async fn an_api_reconnect_with_another_account_replaces_it_at_once() {
    let app = spawn_app().await;
    assert_eq!(
        app.run_flow("meta", "shop", true).await["connection"],
        "success"
    );
    app.simulator.set_signed_in_account("meta", 3);
    assert_eq!(
        app.run_flow("meta", "shop", true).await["connection"],
        "success"
    );
    let listing = app.connections("shop").await;
    assert_eq!(
        connection(&listing, "meta")["account_name"],
        "Other Merchant 3"
    );
    app.stop().await;
}
