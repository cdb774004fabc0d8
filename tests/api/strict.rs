//! Rules the service relies on where a platform's documentation leaves the platform free, checked
//! against the simulators' strict reading (on in every test): each fails if the service breaks it.

use crate::helpers::spawn_app;

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
