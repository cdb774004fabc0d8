//! Rules the service relies on where a platform's documentation leaves the platform free, checked
//! against the simulators' strict reading (on in every test): each fails if the service breaks it.

use crate::helpers::{location, query_of, spawn_app, spawn_app_with, Browser, TestAppOptions};

#[tokio::test]
async fn each_refresh_uses_the_newest_refresh_token_even_where_the_old_one_might_live_on() {
    let app = spawn_app().await;
    let result = app.run_flow("pinterest", "strict-rt", true).await;
    assert_eq!(result["connection"], "success", "{result:?}");
    // Pinterest sends a new refresh token on every refresh and leaves the old one's fate open: the
    // strict simulator retires it, so a service that kept the first would fail the second refresh.
    for n in 0..3 {
        let response = app
            .post("/api/v1/oauth/refresh/pinterest?store_id=strict-rt")
            .await;
        assert_eq!(response.status(), 200, "refresh {n}");
    }
    let refreshes: Vec<(String, bool)> = app
        .simulator
        .token_requests("pinterest")
        .into_iter()
        .map(|r| (r.grant_type, r.ok))
        .collect();
    assert_eq!(
        refreshes,
        [
            ("authorization_code".to_owned(), true),
            ("refresh_token".to_owned(), true),
            ("refresh_token".to_owned(), true),
            ("refresh_token".to_owned(), true),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_platform_that_makes_pkce_optional_still_gets_an_s256_challenge() {
    let app = spawn_app().await;
    // Google takes PKCE optionally and would accept `plain`; the strict simulator refuses an
    // authorization request without an S256 challenge.
    let result = app.run_flow("google", "strict-pkce", true).await;
    assert_eq!(result["connection"], "success", "{result:?}");
    assert!(
        !app.simulator.code_verifiers("google").is_empty(),
        "the code was redeemed with its verifier"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_scope_the_service_asks_for_by_default_passes_each_strict_consent_screen() {
    let app = spawn_app().await;
    // The service's own definitions, not a copy: a scope the platform does not know (a typo in a
    // definition) is refused, where the platform leaves that open, only by the strict reading.
    for platform in growth_engine::sandbox::PLATFORMS {
        let browser = Browser::new();
        let start = app.connect_url(platform, "strict-scopes").await;
        let authorize = browser.first_hop(&start).await;
        let page = browser.client.get(&authorize).send().await.unwrap();
        let status = page.status();
        let html = page.text().await.unwrap();
        // The error page's one paragraph is the platform's message.
        let refusal = html
            .split("<p>")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or(&html);
        assert_eq!(
            status, 200,
            "{platform} refused its default scopes: {refusal}"
        );
        let definition = growth_engine::platforms::built_in(platform).unwrap();
        for scope in definition.scopes {
            assert!(
                html.contains(&format!("name=\"scope\" value=\"{scope}\"")),
                "{platform} did not offer {scope}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_misconfigured_meta_permission_stops_the_flow_on_metas_error_page_and_connects_nothing() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![(
            "META_SCOPES",
            "pages_show_list,pages_manage_everything".into(),
        )],
        ..TestAppOptions::default()
    })
    .await;
    let browser = Browser::new();
    let start = app.connect_url("meta", "strict-meta-scope").await;
    let authorize = browser.first_hop(&start).await;
    // Meta shows a developer its "Invalid Scopes" error in the dialog and sends nothing back (a
    // user would be asked for the other permissions): the strict reading is the developer's.
    let page = browser.client.get(&authorize).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.headers().get("location").is_none());
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Invalid Scopes: pages_manage_everything."),
        "{html}"
    );
    assert!(app.simulator.token_requests("meta").is_empty());
    assert_eq!(
        app.connections("strict-meta-scope").await["connections"],
        serde_json::json!([])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_misconfigured_scope_a_platform_refuses_by_redirect_ends_on_the_error_redirect() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![(
            "PINTEREST_SCOPES",
            "boards:read,boards:manage_everything".into(),
        )],
        ..TestAppOptions::default()
    })
    .await;
    let browser = Browser::new();
    let start = app.connect_url("pinterest", "strict-pin-scope").await;
    let authorize = browser.first_hop(&start).await;
    // Pinterest's docs leave an unknown scope open; the strict reading refuses it as RFC 6749
    // does, by redirecting with `error=invalid_scope`.
    let refusal = browser.client.get(&authorize).send().await.unwrap();
    assert_eq!(refusal.status(), 302);
    let callback = location(&refusal);
    assert_eq!(query_of(&callback)["error"], "invalid_scope", "{callback}");
    let outcome = query_of(&browser.callback(&callback).await);
    assert_eq!(outcome["connection"], "error", "{outcome:?}");
    assert_eq!(outcome["platform"], "pinterest");
    assert_eq!(outcome["reason"], "invalid_scope", "{outcome:?}");
    assert!(app.simulator.token_requests("pinterest").is_empty());
    assert_eq!(
        app.connections("strict-pin-scope").await["connections"],
        serde_json::json!([])
    );
    app.stop().await;
}
