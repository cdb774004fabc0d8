//! Tests of LinkedIn's simulator, one per strict rule: the authorization request, the token
//! endpoint's client authentication, codes and refresh-token lifetime, partner mode, revocation,
//! introspection, and the API's version headers, token errors, scopes and asset listings.
//! Facts are cited from `/work/shared/linkedin.md`.

use serde_json::json;

use super::*;

/// A version inside the simulator's window: the sandbox clock starts in January 2026.
const VERSION: &str = "202601";
const DAY: i64 = 86_400;

fn form_client() -> Params {
    params(&[
        ("client_id", &client_id("linkedin")),
        ("client_secret", &client_secret("linkedin")),
    ])
}

fn refresh_form(refresh_token: &str) -> Params {
    let mut form = form_client();
    form.extend(params(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]));
    form
}

impl Sandbox {
    /// A successful code exchange's JSON.
    async fn linkedin_tokens(&self) -> Value {
        let code = self.code("linkedin").await;
        let reply = self.exchange("linkedin", &code).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()
    }

    /// A GET under LinkedIn's API with these headers.
    async fn linkedin_get(&self, uri: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
        let mut builder = Request::builder()
            .method("GET")
            .uri(uri)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Body::empty()).expect("a valid request"))
            .await
    }

    /// A GET of a `/rest/` resource with the required headers.
    async fn rest(&self, rest: &str, token: &str) -> Reply {
        let uri = format!("{}{rest}", api_base("", "linkedin").expect("simulated"));
        self.linkedin_get(
            &uri,
            token,
            &[
                ("LinkedIn-Version", VERSION),
                ("X-Restli-Protocol-Version", "2.0.0"),
            ],
        )
        .await
    }

    async fn introspect(&self, token: &str) -> Reply {
        let mut form = form_client();
        form.extend(params(&[("token", token)]));
        self.post("/sandbox/linkedin/oauth/v2/introspectToken", &form, None)
            .await
    }
}

fn access(tokens: &Value) -> String {
    str_field(tokens, "/access_token").to_owned()
}

#[tokio::test]
async fn linkedin_exchange_gives_sixty_day_tokens_a_year_long_refresh_token_and_comma_scopes() {
    let sandbox = Sandbox::new();
    let tokens = sandbox.linkedin_tokens().await;
    assert_eq!(tokens["expires_in"], 5_184_000);
    assert_eq!(tokens["refresh_token_expires_in"], 31_536_000);
    assert_eq!(
        tokens["scope"],
        "openid,profile,email,r_organization_admin,r_ads"
    );
    assert!(
        tokens.get("token_type").is_none(),
        "LinkedIn sends none (fact 10)"
    );
    assert_eq!(
        sandbox.sim.issued_refresh_tokens("linkedin"),
        vec![str_field(&tokens, "/refresh_token").to_owned()]
    );
}

#[tokio::test]
async fn linkedin_accepts_space_or_comma_scopes_and_refuses_unknown_ones() {
    let sandbox = Sandbox::new();
    for scope in ["openid profile", "openid,profile"] {
        let request = with(authorize_params("linkedin"), "scope", scope);
        let page = sandbox.authorize("linkedin", &request).await;
        assert_eq!(page.status, StatusCode::OK, "{scope}: {}", page.body);
    }
    let request = with(
        authorize_params("linkedin"),
        "scope",
        "openid r_liteprofile",
    );
    let reply = sandbox.authorize("linkedin", &request).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("unauthorized_scope_error")
    );
    assert!(reply
        .location_param("error_description")
        .is_some_and(|d| d.contains("r_liteprofile")));
    assert_eq!(
        reply.location_param("state").as_deref(),
        Some("st-linkedin")
    );
}

#[tokio::test]
async fn linkedin_requires_response_type_code() {
    let sandbox = Sandbox::new();
    let request = without(authorize_params("linkedin"), "response_type");
    let reply = sandbox.authorize("linkedin", &request).await;
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn linkedin_cancel_redirects_with_user_cancelled_authorize_and_the_state() {
    let sandbox = Sandbox::new();
    let page = sandbox
        .authorize("linkedin", &authorize_params("linkedin"))
        .await;
    let reply = sandbox.decide("linkedin", &page, "deny", &[]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some("user_cancelled_authorize")
    );
    assert!(reply.location_param("error_description").is_some());
    assert_eq!(
        reply.location_param("state").as_deref(),
        Some("st-linkedin")
    );
}

#[tokio::test]
async fn linkedin_ignores_basic_auth_and_wants_the_credentials_in_the_body() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("linkedin").await;
    let (form, _) = exchange_params("linkedin", &code);
    let body_without_credentials = without(without(form.clone(), "client_id"), "client_secret");
    let basic = (client_id("linkedin"), client_secret("linkedin"));
    let reply = sandbox
        .token("linkedin", &body_without_credentials, Some(&basic))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({
            "error": "invalid_request",
            "error_description": "A required parameter \"client_id\" is missing",
        })
    );
    let wrong = with(form.clone(), "client_secret", "nope");
    let reply = sandbox.token("linkedin", &wrong, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    let reply = sandbox.token("linkedin", &form, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn linkedin_code_needs_the_exact_redirect_uri() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("linkedin").await;
    let (form, _) = exchange_params("linkedin", &code);
    let slash = with(
        form.clone(),
        "redirect_uri",
        &format!("{}/", redirect_uri("linkedin")),
    );
    let reply = sandbox.token("linkedin", &slash, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_redirect_uri");
    let reply = sandbox
        .token("linkedin", &without(form, "redirect_uri"), None)
        .await;
    assert_eq!(
        reply.json()["error_description"],
        "A required parameter \"redirect_uri\" is missing"
    );
}

#[tokio::test]
async fn linkedin_code_is_single_use() {
    let sandbox = Sandbox::new();
    let code = sandbox.code("linkedin").await;
    assert_eq!(
        sandbox.exchange("linkedin", &code).await.status,
        StatusCode::OK
    );
    let again = sandbox.exchange("linkedin", &code).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json(),
        json!({
            "error": "invalid_request",
            "error_description": "Unable to retrieve access token: authorization code not found",
        })
    );
}

#[tokio::test]
async fn linkedin_code_lives_thirty_minutes() {
    let sandbox = Sandbox::new();
    let fresh = sandbox.code("linkedin").await;
    let stale = sandbox.code("linkedin").await;
    sandbox.clock.advance(Duration::seconds(1799));
    assert_eq!(
        sandbox.exchange("linkedin", &fresh).await.status,
        StatusCode::OK
    );
    sandbox.clock.advance(Duration::seconds(2));
    let reply = sandbox.exchange("linkedin", &stale).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_redirect_uri");
}

#[tokio::test]
async fn linkedin_refresh_never_extends_the_refresh_tokens_year() {
    let sandbox = Sandbox::new();
    let tokens = sandbox.linkedin_tokens().await;
    let refresh_token = str_field(&tokens, "/refresh_token").to_owned();

    // Day 59: a 60-day access token; the refresh token has 306 days left (fact 19).
    sandbox.clock.advance(Duration::seconds(59 * DAY));
    let reply = sandbox
        .token("linkedin", &refresh_form(&refresh_token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["expires_in"], 60 * DAY);
    assert_eq!(body["refresh_token"], refresh_token.as_str());
    assert_eq!(body["refresh_token_expires_in"], 306 * DAY);
    assert_ne!(body["access_token"], tokens["access_token"]);

    // Day 360: both end in five days.
    sandbox.clock.advance(Duration::seconds(301 * DAY));
    let body = sandbox
        .token("linkedin", &refresh_form(&refresh_token), None)
        .await
        .json();
    assert_eq!(body["expires_in"], 5 * DAY);
    assert_eq!(body["refresh_token_expires_in"], 5 * DAY);

    // Past the year the refresh token is dead (fact 23).
    sandbox.clock.advance(Duration::seconds(5 * DAY));
    let reply = sandbox
        .token("linkedin", &refresh_form(&refresh_token), None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({
            "error": "invalid_request",
            "error_description": "The provided authorization grant or refresh token is invalid, expired or revoked",
        })
    );
}

#[tokio::test]
async fn linkedin_without_partner_mode_issues_no_refresh_token_and_refuses_refreshing() {
    let sandbox = Sandbox::new();
    let partner_tokens = sandbox.linkedin_tokens().await;
    sandbox.sim.set_linkedin_partner_mode(false);
    let tokens = sandbox.linkedin_tokens().await;
    assert_eq!(tokens["expires_in"], 5_184_000);
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(tokens.get("refresh_token_expires_in").is_none());
    let reply = sandbox
        .token(
            "linkedin",
            &refresh_form(str_field(&partner_tokens, "/refresh_token")),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "unauthorized_client");

    sandbox.sim.set_linkedin_partner_mode(true);
    let tokens = sandbox.linkedin_tokens().await;
    assert!(tokens["refresh_token"].is_string());
}

#[tokio::test]
async fn linkedin_rest_calls_need_an_active_version_and_the_restli_header() {
    let sandbox = Sandbox::new();
    let token = access(&sandbox.linkedin_tokens().await);
    let uri = format!(
        "{}adAccountUsers?q=authenticatedUser",
        api_base("", "linkedin").expect("simulated")
    );
    let restli = ("X-Restli-Protocol-Version", "2.0.0");

    let missing = sandbox.linkedin_get(&uri, &token, &[restli]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("LinkedIn-Version")));

    // A year and a month old: sunset.
    let sunset = sandbox
        .linkedin_get(&uri, &token, &[("LinkedIn-Version", "202412"), restli])
        .await;
    assert_eq!(sunset.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(
        sunset.json(),
        json!({
            "status": 426,
            "code": "NONEXISTENT_VERSION",
            "message": "Requested version 202412 is not active",
        })
    );
    let future = sandbox
        .linkedin_get(&uri, &token, &[("LinkedIn-Version", "202602"), restli])
        .await;
    assert_eq!(future.status, StatusCode::UPGRADE_REQUIRED);

    let no_restli = sandbox
        .linkedin_get(&uri, &token, &[("LinkedIn-Version", "202502")])
        .await;
    assert_eq!(no_restli.status, StatusCode::BAD_REQUEST);

    let ok = sandbox
        .linkedin_get(&uri, &token, &[("LinkedIn-Version", "202502"), restli])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // The clock moves on: a year later the same version is sunset.
    sandbox.clock.advance(Duration::seconds(365 * DAY));
    let token = access(&sandbox.linkedin_tokens().await);
    let later = sandbox
        .linkedin_get(&uri, &token, &[("LinkedIn-Version", "202502"), restli])
        .await;
    assert_eq!(later.status, StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test]
async fn linkedin_revoked_token_answers_65601_and_is_recorded() {
    let sandbox = Sandbox::new();
    let token = access(&sandbox.linkedin_tokens().await);
    let mut form = form_client();
    form.extend(params(&[("token", &token)]));
    let reply = sandbox
        .post("/sandbox/linkedin/oauth/v2/revoke", &form, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(sandbox.sim.revocations("linkedin"), vec![token.clone()]);
    let after = sandbox
        .rest("adAccountUsers?q=authenticatedUser", &token)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        after.json(),
        json!({
            "message": "The token used in the request has been revoked by the user",
            "serviceErrorCode": 65601,
            "status": 401,
        })
    );
}

#[tokio::test]
async fn linkedin_expired_token_answers_65602_and_an_unknown_one_65600() {
    let sandbox = Sandbox::new();
    let token = access(&sandbox.linkedin_tokens().await);
    sandbox.clock.advance(Duration::seconds(60 * DAY + 1));
    let expired = sandbox
        .rest("adAccountUsers?q=authenticatedUser", &token)
        .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.json()["serviceErrorCode"], 65602);
    let unknown = sandbox
        .rest("adAccountUsers?q=authenticatedUser", "AQVnot-a-token")
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.json()["serviceErrorCode"], 65600);
}

#[tokio::test]
async fn linkedin_introspection_reports_active_expired_and_revoked() {
    let sandbox = Sandbox::new();
    let tokens = sandbox.linkedin_tokens().await;
    let token = access(&tokens);
    let active = sandbox.introspect(&token).await;
    assert_eq!(active.status, StatusCode::OK, "{}", active.body);
    let body = active.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["status"], "active");
    assert_eq!(
        body["scope"],
        "openid,profile,email,r_organization_admin,r_ads"
    );
    assert_eq!(body["client_id"], client_id("linkedin"));
    assert_eq!(body["auth_type"], "3L");
    let now = sandbox.sim.now().timestamp();
    assert_eq!(body["created_at"], now);
    assert_eq!(body["authorized_at"], now);
    assert_eq!(body["expires_at"], now + 60 * DAY);

    sandbox.clock.advance(Duration::seconds(60 * DAY));
    let expired = sandbox.introspect(&token).await.json();
    assert_eq!(
        (&expired["active"], &expired["status"]),
        (&json!(false), &json!("expired"))
    );

    let fresh = access(&sandbox.linkedin_tokens().await);
    sandbox.sim.revoke_all_grants("linkedin");
    let revoked = sandbox.introspect(&fresh).await.json();
    assert_eq!(
        (&revoked["active"], &revoked["status"]),
        (&json!(false), &json!("revoked"))
    );

    assert_eq!(
        sandbox.introspect("AQVunknown").await.status,
        StatusCode::BAD_REQUEST
    );
    let mut wrong_secret = with(form_client(), "client_secret", "nope");
    wrong_secret.extend(params(&[("token", &token)]));
    let reply = sandbox
        .post(
            "/sandbox/linkedin/oauth/v2/introspectToken",
            &wrong_secret,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn linkedin_userinfo_gives_the_members_claims_with_openid_and_profile() {
    let sandbox = Sandbox::new();
    let token = access(&sandbox.linkedin_tokens().await);
    let userinfo = Sandbox::endpoints("linkedin").userinfo;
    assert_eq!(userinfo, "/sandbox/linkedin/api/v2/userinfo");
    let reply = sandbox.linkedin_get(&userinfo, &token, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims = reply.json();
    for claim in [
        "sub",
        "name",
        "given_name",
        "family_name",
        "picture",
        "email",
    ] {
        assert!(claims[claim].is_string(), "{claim}: {claims}");
    }
    assert_eq!(claims["email_verified"], true);
    assert!(claims["locale"]["country"].is_string() && claims["locale"]["language"].is_string());

    let code = sandbox
        .code_with(
            "linkedin",
            &with(authorize_params("linkedin"), "scope", "openid r_ads"),
            &["openid", "r_ads"],
        )
        .await;
    let token = access(&sandbox.exchange("linkedin", &code).await.json());
    let reply = sandbox.linkedin_get(&userinfo, &token, &[]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn linkedin_lists_the_members_two_organizations_and_one_ad_account() {
    let sandbox = Sandbox::new();
    let token = access(&sandbox.linkedin_tokens().await);
    let sub = sandbox
        .linkedin_get("/sandbox/linkedin/api/v2/userinfo", &token, &[])
        .await
        .json()["sub"]
        .as_str()
        .expect("a sub")
        .to_owned();

    let acls = sandbox
        .rest(
            "organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED",
            &token,
        )
        .await;
    assert_eq!(acls.status, StatusCode::OK, "{}", acls.body);
    let acls = acls.json();
    let elements = acls["elements"].as_array().expect("elements");
    assert_eq!(elements.len(), 2);
    assert_eq!(acls["paging"]["total"], 2);
    for element in elements {
        assert_eq!(element["roleAssignee"], format!("urn:li:person:{sub}"));
        assert_eq!(element["role"], "ADMINISTRATOR");
        assert_eq!(element["state"], "APPROVED");
    }
    let organization = str_field(&elements[0], "/organization");
    let id = organization
        .strip_prefix("urn:li:organization:")
        .expect("an organization URN");
    let org = sandbox.rest(&format!("organizations/{id}"), &token).await;
    assert_eq!(org.status, StatusCode::OK, "{}", org.body);
    assert!(org.json()["localizedName"].is_string() && org.json()["vanityName"].is_string());
    let batch = sandbox
        .rest(&format!("organizations?ids=List({id},1)"), &token)
        .await
        .json();
    assert!(batch["results"][id]["localizedName"].is_string());
    assert_eq!(batch["statuses"]["1"], 404);
    let analysts = sandbox
        .rest("organizationAcls?q=roleAssignee&role=ANALYST", &token)
        .await
        .json();
    assert_eq!(analysts["elements"], json!([]));

    let users = sandbox
        .rest("adAccountUsers?q=authenticatedUser", &token)
        .await
        .json();
    let accounts = users["elements"].as_array().expect("elements");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["user"], format!("urn:li:person:{sub}"));
    let account = str_field(&accounts[0], "/account")
        .strip_prefix("urn:li:sponsoredAccount:")
        .expect("an ad account URN")
        .to_owned();
    let ad = sandbox.rest(&format!("adAccounts/{account}"), &token).await;
    assert_eq!(ad.status, StatusCode::OK, "{}", ad.body);
    let ad = ad.json();
    assert_eq!(ad["id"].to_string(), account);
    assert!(ad["name"].is_string() && ad["status"].is_string() && ad["currency"].is_string());
}

#[tokio::test]
async fn linkedin_listings_need_their_scopes() {
    let sandbox = Sandbox::new();
    let code = sandbox
        .code_with(
            "linkedin",
            &with(authorize_params("linkedin"), "scope", "openid profile"),
            &["openid", "profile"],
        )
        .await;
    let token = access(&sandbox.exchange("linkedin", &code).await.json());
    for rest in [
        "organizationAcls?q=roleAssignee",
        "adAccountUsers?q=authenticatedUser",
        "organizations/2000001",
    ] {
        let reply = sandbox.rest(rest, &token).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{rest}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn linkedin_throttle_is_a_429_without_retry_after() {
    let sandbox = Sandbox::new();
    let token = access(&sandbox.linkedin_tokens().await);
    sandbox.sim.set_api_rate_limited(
        "linkedin",
        Some(ApiRateLimit {
            retry_after_seconds: 30,
        }),
    );
    let reply = sandbox
        .rest("adAccountUsers?q=authenticatedUser", &token)
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.headers.get(RETRY_AFTER).is_none());
    assert_eq!(reply.json()["status"], 429);
    assert_eq!(sandbox.sim.api_requests("linkedin").len(), 1);
}

#[tokio::test]
async fn linkedin_a_new_scope_set_ends_the_earlier_tokens_and_the_same_one_does_not() {
    let sandbox = Sandbox::new();
    let first = access(&sandbox.linkedin_tokens().await);
    let same = access(&sandbox.linkedin_tokens().await);
    for token in [&first, &same] {
        assert_eq!(sandbox.introspect(token).await.json()["status"], "active");
    }
    let code = sandbox
        .code_with(
            "linkedin",
            &with(authorize_params("linkedin"), "scope", "openid profile"),
            &["openid", "profile"],
        )
        .await;
    let narrower = access(&sandbox.exchange("linkedin", &code).await.json());
    for token in [&first, &same] {
        assert_eq!(sandbox.introspect(token).await.json()["status"], "revoked");
    }
    assert_eq!(
        sandbox.introspect(&narrower).await.json()["status"],
        "active"
    );
}
