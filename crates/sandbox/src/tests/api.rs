//! Tests of the simulated platform APIs: per platform the identity call, the listings and the
//! publishing call, each token rejection with its exact status and body, throttling with its
//! headers, Meta's `appsecret_proof` and a Page's `subscribed_apps`, and the test controls and
//! observations.

use axum::http::header::WWW_AUTHENTICATE;
use hmac::{Hmac, Mac};
use serde_json::json;

use super::*;

/// The scopes each platform's default consent grants for these tests (the platform's separator
/// is applied by [`token_with`]).
fn full_scopes(platform: &str) -> Vec<&'static str> {
    match platform {
        "meta" => vec![
            "pages_show_list",
            "pages_read_engagement",
            "pages_manage_posts",
            "instagram_basic",
            "instagram_content_publish",
            "ads_read",
        ],
        "tiktok" => vec!["user.info.basic", "video.publish"],
        "google" => vec!["openid", "https://www.googleapis.com/auth/adwords"],
        "pinterest" => vec![
            "user_accounts:read",
            "boards:read",
            "boards:write",
            "pins:read",
            "pins:write",
            "ads:read",
        ],
        "linkedin" => vec!["openid", "profile", "r_organization_admin", "r_ads"],
        _ => vec!["tweet.read", "tweet.write", "users.read", "offline.access"],
    }
}

/// An access token of `platform` granting exactly `scopes`.
pub(super) async fn token_with(sandbox: &Sandbox, platform: &str, scopes: &[&str]) -> String {
    let separator = if matches!(platform, "google" | "twitter") {
        " "
    } else {
        ","
    };
    let request = with(authorize_params(platform), "scope", &scopes.join(separator));
    let code = sandbox.code_with(platform, &request, scopes).await;
    let reply = sandbox.exchange(platform, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    str_field(&reply.json(), "/access_token").to_owned()
}

async fn full_token(sandbox: &Sandbox, platform: &str) -> String {
    token_with(sandbox, platform, &full_scopes(platform)).await
}

/// A path under `platform`'s simulated API root.
pub(super) fn at(platform: &str, rest: &str) -> String {
    format!(
        "{}{rest}",
        api_base("", platform).expect("a simulated platform")
    )
}

impl Sandbox {
    /// Calls an API route with an optional bearer token, extra headers and an optional JSON body.
    pub(super) async fn api(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, "application/json; charset=UTF-8");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("a valid request"))
            .await
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The identity route of each platform, as the API's probe of a token.
fn identity(platform: &str) -> String {
    match platform {
        "meta" => at("meta", "me"),
        "tiktok" => at("tiktok", "user/info/?fields=open_id,display_name"),
        "google" => at("google", "customers:listAccessibleCustomers"),
        "pinterest" => at("pinterest", "user_account"),
        // The OpenID user info, outside `/rest/`, needs no version headers.
        "linkedin" => endpoints("", "linkedin").expect("simulated").userinfo,
        _ => at("twitter", "users/me"),
    }
}

/// Asserts the platform's answer to a refused token: status, the error's identifying field, and
/// for Meta the subcode and `WWW-Authenticate`.
fn assert_refused(platform: &str, reply: &Reply, meta_subcode: Option<u64>, google_reason: &str) {
    let body = reply.json();
    match platform {
        "meta" => {
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
            assert_eq!(body["error"]["code"], 190);
            assert_eq!(body["error"]["type"], "OAuthException");
            assert_eq!(body["error"]["error_subcode"].as_u64(), meta_subcode);
            assert!(header(reply, WWW_AUTHENTICATE.as_str()).contains("invalid_token"));
        }
        "tiktok" => {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
            assert_eq!(body["error"]["code"], "access_token_invalid");
            assert_eq!(body["data"], json!({}));
        }
        "google" => {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
            assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
            assert_eq!(body["error"]["code"], 401);
            let reason =
                &body["error"]["details"][0]["errors"][0]["errorCode"]["authenticationError"];
            assert_eq!(reason, google_reason);
        }
        "pinterest" => {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
            assert_eq!(
                body,
                json!({ "code": 2, "message": "Authentication failed." })
            );
        }
        "linkedin" => {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
            let code = match google_reason {
                "OAUTH_TOKEN_HEADER_INVALID" => 401,
                "OAUTH_TOKEN_EXPIRED" => 65602,
                "OAUTH_TOKEN_REVOKED" => 65601,
                _ => 65600,
            };
            assert_eq!(body["serviceErrorCode"], code, "{}", reply.body);
            assert_eq!(body["status"], 401);
        }
        _ => {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
            assert_eq!(reply.content_type(), "application/problem+json");
            assert_eq!(body["title"], "Unauthorized");
            assert_eq!(body["status"], 401);
        }
    }
}

// ---- shared ----------------------------------------------------------------------------------

#[tokio::test]
async fn api_base_is_the_versioned_root_under_the_sandbox_prefix() {
    let bases: Vec<Option<String>> = PLATFORMS
        .iter()
        .map(|p| api_base("http://127.0.0.1:8003/", p))
        .collect();
    let expected = [
        "http://127.0.0.1:8003/sandbox/meta/api/v25.0/",
        "http://127.0.0.1:8003/sandbox/tiktok/api/v2/",
        "http://127.0.0.1:8003/sandbox/google/api/v26/",
        "http://127.0.0.1:8003/sandbox/pinterest/api/v5/",
        "http://127.0.0.1:8003/sandbox/twitter/api/2/",
        "http://127.0.0.1:8003/sandbox/linkedin/api/rest/",
    ];
    assert_eq!(bases, expected.map(|b| Some(b.to_owned())));
    assert_eq!(api_base("http://x", "myspace"), None);
}

#[tokio::test]
async fn every_api_refuses_a_missing_an_unknown_an_expired_and_a_revoked_token() {
    let sandbox = Sandbox::new();
    for platform in PLATFORMS {
        let uri = identity(platform);
        let missing = sandbox.api("GET", &uri, None, &[], None).await;
        if platform == "meta" {
            assert_eq!(missing.status, StatusCode::BAD_REQUEST);
            assert_eq!(missing.json()["error"]["code"], 2500);
        } else {
            assert_refused(platform, &missing, None, "OAUTH_TOKEN_HEADER_INVALID");
        }
        let unknown = sandbox
            .api("GET", &uri, Some("not-a-token"), &[], None)
            .await;
        assert_refused(platform, &unknown, Some(467), "OAUTH_TOKEN_INVALID");

        sandbox.sim.set_access_token_ttl(platform, 60);
        let token = full_token(&sandbox, platform).await;
        let live = sandbox.api("GET", &uri, Some(&token), &[], None).await;
        assert_eq!(live.status, StatusCode::OK, "{platform}: {}", live.body);
        sandbox.clock.advance(Duration::seconds(61));
        let expired = sandbox.api("GET", &uri, Some(&token), &[], None).await;
        assert_refused(platform, &expired, Some(463), "OAUTH_TOKEN_EXPIRED");

        sandbox.sim.set_access_token_ttl(platform, 3600);
        let token = full_token(&sandbox, platform).await;
        sandbox.sim.revoke_all_grants(platform);
        let revoked = sandbox.api("GET", &uri, Some(&token), &[], None).await;
        assert_refused(platform, &revoked, Some(458), "OAUTH_TOKEN_REVOKED");
    }
}

#[tokio::test]
async fn forced_invalid_token_answers_fail_the_next_calls_then_stop() {
    let sandbox = Sandbox::new();
    for platform in PLATFORMS {
        let token = full_token(&sandbox, platform).await;
        let uri = identity(platform);
        sandbox
            .sim
            .fail_next_api_calls_with_invalid_token(platform, 2);
        for _ in 0..2 {
            let forced = sandbox.api("GET", &uri, Some(&token), &[], None).await;
            assert_refused(platform, &forced, Some(467), "OAUTH_TOKEN_INVALID");
        }
        let after = sandbox.api("GET", &uri, Some(&token), &[], None).await;
        assert_eq!(after.status, StatusCode::OK, "{platform}: {}", after.body);
    }
}

#[tokio::test]
async fn api_requests_are_recorded_with_method_path_token_and_status_and_debug_hides_tokens() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "pinterest").await;
    sandbox
        .api(
            "GET",
            &at("pinterest", "boards?page_size=10"),
            Some(&token),
            &[],
            None,
        )
        .await;
    sandbox
        .api("GET", &at("pinterest", "boards"), None, &[], None)
        .await;
    let records = sandbox.sim.api_requests("pinterest");
    assert_eq!(
        records,
        vec![
            ApiRequestRecord {
                method: "GET".to_owned(),
                path: "/sandbox/pinterest/api/v5/boards".to_owned(),
                token: Some(token.clone()),
                status: 200,
            },
            ApiRequestRecord {
                method: "GET".to_owned(),
                path: "/sandbox/pinterest/api/v5/boards".to_owned(),
                token: None,
                status: 401,
            },
        ]
    );
    assert!(!format!("{records:?}").contains(&token));
    assert!(sandbox.sim.api_requests("tiktok").is_empty());
}

// ---- Meta ------------------------------------------------------------------------------------

/// The Page token and id of the first Page `/me/accounts` lists.
async fn meta_page(sandbox: &Sandbox, user_token: &str) -> (String, String, Value) {
    let reply = sandbox
        .api(
            "GET",
            &at("meta", "me/accounts"),
            Some(user_token),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let page = reply.json()["data"][0].clone();
    (
        str_field(&page, "/access_token").to_owned(),
        str_field(&page, "/id").to_owned(),
        page,
    )
}

#[tokio::test]
async fn meta_lists_pages_with_their_tokens_instagram_accounts_and_ad_accounts() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "meta").await;
    let me = sandbox
        .api(
            "GET",
            &format!("{}?access_token={token}", at("meta", "me")),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["name"], "Sandbox Merchant");
    let usage: Value = serde_json::from_str(header(&me, "x-app-usage")).expect("JSON usage");
    assert_eq!(usage["call_count"], 1);

    let (page_token, page_id, page) = meta_page(&sandbox, &token).await;
    assert!(page_token.starts_with("EAAP"));
    let ig_id = str_field(&page, "/instagram_business_account/id").to_owned();
    assert!(!ig_id.is_empty());

    let node = sandbox
        .api(
            "GET",
            &at(
                "meta",
                &format!("{page_id}?fields=instagram_business_account"),
            ),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(node.status, StatusCode::OK, "{}", node.body);
    assert_eq!(
        node.json(),
        json!({ "instagram_business_account": { "id": ig_id }, "id": page_id })
    );

    let ads = sandbox
        .api(
            "GET",
            &at(
                "meta",
                "me/adaccounts?fields=id,account_id,name,account_status,currency",
            ),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(ads.status, StatusCode::OK, "{}", ads.body);
    let account = &ads.json()["data"][0];
    assert_eq!(account["id"], "act_3000000001");
    assert_eq!(account["account_status"], 1);
    assert_eq!(account["currency"], "EUR");
}

#[tokio::test]
async fn meta_ad_accounts_and_instagram_need_their_permissions() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "meta", &["pages_show_list"]).await;
    let ads = sandbox
        .api("GET", &at("meta", "me/adaccounts"), Some(&token), &[], None)
        .await;
    assert_eq!(ads.status, StatusCode::FORBIDDEN, "{}", ads.body);
    assert_eq!(ads.json()["error"]["code"], 200);
    assert_eq!(ads.json()["error"]["type"], "OAuthException");

    let (_, page_id, _) = meta_page(&sandbox, &token).await;
    let node = sandbox
        .api(
            "GET",
            &at(
                "meta",
                &format!("{page_id}?fields=instagram_business_account"),
            ),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(node.status, StatusCode::FORBIDDEN, "{}", node.body);
    assert_eq!(node.json()["error"]["code"], 10);
}

#[tokio::test]
async fn meta_page_post_needs_that_pages_own_token() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "meta").await;
    let (page_token, page_id, _) = meta_page(&sandbox, &token).await;
    let feed = at("meta", &format!("{page_id}/feed"));
    let message = json!({ "message": "New arrivals" });

    let as_user = sandbox
        .api("POST", &feed, Some(&token), &[], Some(message.clone()))
        .await;
    assert_eq!(as_user.status, StatusCode::FORBIDDEN, "{}", as_user.body);
    assert_eq!(as_user.json()["error"]["code"], 200);

    let other_page = sandbox
        .api(
            "POST",
            &at("meta", "2000000002/feed"),
            Some(&page_token),
            &[],
            Some(message.clone()),
        )
        .await;
    assert_eq!(
        other_page.status,
        StatusCode::FORBIDDEN,
        "{}",
        other_page.body
    );

    let empty = sandbox
        .api("POST", &feed, Some(&page_token), &[], Some(json!({})))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.json()["error"]["code"], 100);

    let posted = sandbox
        .api("POST", &feed, Some(&page_token), &[], Some(message))
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    let id = str_field(&posted.json(), "/id").to_owned();
    assert!(id.starts_with(&format!("{page_id}_")), "{id}");
    let usage: Value =
        serde_json::from_str(header(&posted, "x-business-use-case-usage")).expect("JSON usage");
    assert_eq!(usage[&page_id][0]["type"], "pages");

    let published = sandbox.sim.published("meta");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kind, "facebook_post");
    assert_eq!(published[0].id, id);
    assert_eq!(published[0].target, page_id);
    assert_eq!(published[0].fields["message"], "New arrivals");
}

#[tokio::test]
async fn meta_instagram_publishes_a_container_once() {
    let sandbox = Sandbox::new();
    let image_url = super::publishing::media_server().await + "/image.jpg";
    let token = full_token(&sandbox, "meta").await;
    let (_, _, page) = meta_page(&sandbox, &token).await;
    let ig_id = str_field(&page, "/instagram_business_account/id").to_owned();
    let media = at("meta", &format!("{ig_id}/media"));

    let no_image = sandbox
        .api(
            "POST",
            &format!("{media}?caption=Hi"),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(no_image.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_image.json()["error"]["code"], 100);

    let created = sandbox
        .api(
            "POST",
            &format!(
                "{media}?{}",
                serde_urlencoded::to_string([("image_url", image_url.as_str()), ("caption", "Hi")])
                    .expect("a query")
            ),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let container = str_field(&created.json(), "/id").to_owned();
    assert!(sandbox.sim.published("meta").is_empty());

    let status = sandbox
        .api(
            "GET",
            &at("meta", &format!("{container}?fields=status_code")),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(
        status.json(),
        json!({ "status_code": "FINISHED", "id": container })
    );
    assert_eq!(sandbox.sim.published("meta").len(), 0);

    let publish = format!(
        "{}?creation_id={container}",
        at("meta", &format!("{ig_id}/media_publish"))
    );
    let published = sandbox.api("POST", &publish, Some(&token), &[], None).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.body);
    let media_id = str_field(&published.json(), "/id").to_owned();
    let again = sandbox.api("POST", &publish, Some(&token), &[], None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"]["code"], 9007);

    let items = sandbox.sim.published("meta");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, "instagram_media");
    assert_eq!(items[0].id, media_id);
    assert_eq!(items[0].target, ig_id);
    assert_eq!(items[0].fields["caption"], "Hi");
}

#[tokio::test]
async fn meta_instagram_publishing_needs_instagram_content_publish() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "meta", &["pages_show_list", "instagram_basic"]).await;
    let (_, _, page) = meta_page(&sandbox, &token).await;
    let ig_id = str_field(&page, "/instagram_business_account/id").to_owned();
    let reply = sandbox
        .api(
            "POST",
            &at(
                "meta",
                &format!("{ig_id}/media?image_url=https%3A%2F%2Fcdn.example%2Fa.jpg"),
            ),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], 10);
}

fn appsecret_proof(token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(client_secret("meta").as_bytes()).expect("any key");
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn meta_checks_appsecret_proof_when_sent_or_required() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "meta").await;
    let me = at("meta", "me");
    let good = format!(
        "{me}?access_token={token}&appsecret_proof={}",
        appsecret_proof(&token)
    );
    assert_eq!(
        sandbox.api("GET", &good, None, &[], None).await.status,
        StatusCode::OK
    );

    let wrong = format!(
        "{me}?access_token={token}&appsecret_proof={}",
        appsecret_proof("other")
    );
    let reply = sandbox.api("GET", &wrong, None, &[], None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], 100);
    assert_eq!(reply.json()["error"]["type"], "GraphMethodException");
    assert!(str_field(&reply.json(), "/error/message").contains("appsecret_proof"));

    sandbox.sim.set_meta_requires_appsecret_proof(true);
    let without = sandbox.api("GET", &me, Some(&token), &[], None).await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST);
    assert_eq!(without.json()["error"]["code"], 100);
    assert_eq!(
        sandbox.api("GET", &good, None, &[], None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn meta_throttles_user_tokens_with_code_4_and_page_tokens_with_80001() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "meta").await;
    let (page_token, page_id, _) = meta_page(&sandbox, &token).await;
    sandbox.sim.set_api_rate_limited(
        "meta",
        Some(ApiRateLimit {
            retry_after_seconds: 90,
        }),
    );
    let user = sandbox
        .api("GET", &at("meta", "me"), Some(&token), &[], None)
        .await;
    assert_eq!(user.json()["error"]["code"], 4);
    let usage: Value = serde_json::from_str(header(&user, "x-app-usage")).expect("JSON usage");
    assert_eq!(usage["call_count"], 100);

    let feed = at("meta", &format!("{page_id}/feed"));
    let page = sandbox
        .api(
            "POST",
            &feed,
            Some(&page_token),
            &[],
            Some(json!({ "message": "x" })),
        )
        .await;
    assert_eq!(page.json()["error"]["code"], 80001);
    let usage: Value =
        serde_json::from_str(header(&page, "x-business-use-case-usage")).expect("JSON usage");
    assert_eq!(usage[&page_id][0]["estimated_time_to_regain_access"], 2);
    assert!(sandbox.sim.published("meta").is_empty());

    sandbox.sim.set_api_rate_limited("meta", None);
    let after = sandbox
        .api("GET", &at("meta", "me"), Some(&token), &[], None)
        .await;
    assert_eq!(after.status, StatusCode::OK);
}

#[tokio::test]
async fn meta_page_tokens_die_with_the_users_grant() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "meta").await;
    let (page_token, page_id, _) = meta_page(&sandbox, &token).await;
    sandbox.sim.revoke_all_grants("meta");
    let reply = sandbox
        .api(
            "POST",
            &at("meta", &format!("{page_id}/feed")),
            Some(&page_token),
            &[],
            Some(json!({ "message": "x" })),
        )
        .await;
    assert_refused("meta", &reply, Some(458), "");
}

/// The token of the Page `2000000001` from `/me/accounts`.
async fn page_token(sandbox: &Sandbox, user_token: &str) -> String {
    let pages = sandbox
        .get("/sandbox/meta/v25.0/me/accounts", Some(user_token))
        .await
        .json();
    str_field(&pages, "/data/0/access_token").to_owned()
}

#[tokio::test]
async fn meta_subscribed_apps_needs_the_pages_own_token_with_pages_manage_metadata() {
    let sandbox = Sandbox::new();
    let path = at("meta", "2000000001/subscribed_apps?subscribed_fields=feed");
    let without = token_with(&sandbox, "meta", &["pages_show_list"]).await;
    let page_without = page_token(&sandbox, &without).await;

    let refused = sandbox
        .api("POST", &path, Some(&page_without), &[], None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], 200);

    let user = token_with(
        &sandbox,
        "meta",
        &["pages_show_list", "pages_manage_metadata"],
    )
    .await;
    let with_user_token = sandbox.api("POST", &path, Some(&user), &[], None).await;
    assert_eq!(with_user_token.status, StatusCode::BAD_REQUEST);
    assert_eq!(with_user_token.json()["error"]["code"], 210);
    assert_eq!(with_user_token.json()["error"]["type"], "OAuthException");
    assert!(sandbox.sim.meta_page_subscriptions().is_empty());
}

#[tokio::test]
async fn meta_subscribed_apps_subscribes_lists_and_unsubscribes_a_page() {
    let sandbox = Sandbox::new();
    let user = token_with(
        &sandbox,
        "meta",
        &["pages_show_list", "pages_manage_metadata"],
    )
    .await;
    let page = page_token(&sandbox, &user).await;
    let path = at("meta", "2000000001/subscribed_apps");

    let unknown = sandbox
        .api(
            "POST",
            &format!("{path}?subscribed_fields=feed,bogus"),
            Some(&page),
            &[],
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["error"]["code"], 100);
    let subscribed = sandbox
        .api(
            "POST",
            &path,
            Some(&page),
            &[],
            Some(json!({ "subscribed_fields": "feed,mention" })),
        )
        .await;
    assert_eq!(subscribed.status, StatusCode::OK, "{}", subscribed.body);
    assert_eq!(subscribed.json(), json!({ "success": true }));
    assert_eq!(
        sandbox.sim.meta_page_subscriptions(),
        [(
            "2000000001".to_owned(),
            vec!["feed".to_owned(), "mention".to_owned()]
        )]
    );

    let listed = sandbox
        .api("GET", &path, Some(&page), &[], None)
        .await
        .json();
    assert_eq!(listed["data"][0]["id"], "sandbox-meta-client");
    assert_eq!(
        listed["data"][0]["subscribed_fields"],
        json!(["feed", "mention"])
    );
    let deleted = sandbox.api("DELETE", &path, Some(&page), &[], None).await;
    assert_eq!(deleted.json(), json!({ "success": true }));
    let listed = sandbox
        .api("GET", &path, Some(&page), &[], None)
        .await
        .json();
    assert_eq!(listed["data"], json!([]));
    assert!(sandbox.sim.meta_page_subscriptions().is_empty());
}

// ---- TikTok ----------------------------------------------------------------------------------

#[tokio::test]
async fn tiktok_serves_creator_info_and_direct_posts() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "tiktok").await;
    let info = sandbox
        .api(
            "POST",
            &at("tiktok", "post/publish/creator_info/query/"),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    let body = info.json();
    assert_eq!(body["error"]["code"], "ok");
    assert!(body["data"]["privacy_level_options"]
        .as_array()
        .expect("options")
        .contains(&json!("SELF_ONLY")));
    assert!(body["data"]["max_video_post_duration_sec"].is_u64());

    let init = at("tiktok", "post/publish/video/init/");
    let upload = json!({
        "post_info": { "title": "New arrivals", "privacy_level": "SELF_ONLY" },
        "source_info": { "source": "FILE_UPLOAD", "video_size": 1000, "chunk_size": 1000, "total_chunk_count": 1 },
    });
    let reply = sandbox
        .api("POST", &init, Some(&token), &[], Some(upload.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(str_field(&reply.json(), "/data/publish_id").starts_with("v_pub_file~"));
    // The upload URL is the sandbox's own (see `publishing.rs` for the upload itself).
    assert!(str_field(&reply.json(), "/data/upload_url")
        .starts_with("http://localhost/sandbox/tiktok/upload/video/?upload_id="));
    // Nothing is posted before the upload is complete.
    assert!(sandbox.sim.published("tiktok").is_empty());
}

#[tokio::test]
async fn tiktok_video_init_validates_its_json_body() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "tiktok").await;
    let init = at("tiktok", "post/publish/video/init/");
    let form = sandbox
        .request(
            "POST",
            &init,
            Some(&token),
            Some(&params(&[("a", "b")])),
            None,
        )
        .await;
    assert_eq!(form.status, StatusCode::BAD_REQUEST);
    assert_eq!(form.json()["error"]["code"], "invalid_params");
    let bodies = [
        json!({ "source_info": { "source": "PULL_FROM_URL", "video_url": "https://a/b" } }),
        json!({ "post_info": { "privacy_level": "EVERYONE" }, "source_info": { "source": "PULL_FROM_URL", "video_url": "https://a/b" } }),
        json!({ "post_info": { "privacy_level": "SELF_ONLY" }, "source_info": { "source": "FILE_UPLOAD", "video_size": 10 } }),
        json!({ "post_info": { "privacy_level": "SELF_ONLY" }, "source_info": { "source": "PULL_FROM_URL" } }),
    ];
    for body in bodies {
        let reply = sandbox
            .api("POST", &init, Some(&token), &[], Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "invalid_params");
    }
    assert!(sandbox.sim.published("tiktok").is_empty());
}

#[tokio::test]
async fn tiktok_answers_a_missing_scope_with_401_and_throttles_with_429() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "tiktok", &["user.info.basic"]).await;
    let reply = sandbox
        .api(
            "POST",
            &at("tiktok", "post/publish/creator_info/query/"),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"]["code"], "scope_not_authorized");

    sandbox.sim.set_api_rate_limited(
        "tiktok",
        Some(ApiRateLimit {
            retry_after_seconds: 60,
        }),
    );
    let throttled = sandbox
        .api("GET", &identity("tiktok"), Some(&token), &[], None)
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(throttled.json()["data"], json!({}));
}

// ---- Google ----------------------------------------------------------------------------------

#[tokio::test]
async fn google_lists_accessible_customers_with_or_without_a_developer_token() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "google").await;
    let uri = identity("google");
    let expected = json!({ "resourceNames": ["customers/1234567890", "customers/2345678901"] });
    for headers in [
        vec![],
        vec![("developer-token", "sbx-dev-token")],
        vec![("login-customer-id", "1234567890")],
    ] {
        let reply = sandbox.api("GET", &uri, Some(&token), &headers, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.json(), expected);
    }
    let dashed = sandbox
        .api(
            "GET",
            &uri,
            Some(&token),
            &[("login-customer-id", "123-456-7890")],
            None,
        )
        .await;
    assert_eq!(dashed.status, StatusCode::BAD_REQUEST);
    assert_eq!(dashed.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        dashed.json()["error"]["details"][0]["errors"][0]["errorCode"]["headerError"],
        "INVALID_LOGIN_CUSTOMER_ID"
    );
}

#[tokio::test]
async fn google_refuses_a_token_without_the_ads_scope_and_throttles_in_the_body() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "google", &["openid", "email"]).await;
    let uri = identity("google");
    let reply = sandbox.api("GET", &uri, Some(&token), &[], None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        reply.json()["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    );

    sandbox.sim.set_api_rate_limited(
        "google",
        Some(ApiRateLimit {
            retry_after_seconds: 30,
        }),
    );
    let throttled = sandbox.api("GET", &uri, Some(&token), &[], None).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    let error = &throttled.json()["error"];
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    let detail = &error["details"][0]["errors"][0];
    assert_eq!(detail["errorCode"]["quotaError"], "RESOURCE_EXHAUSTED");
    assert_eq!(detail["details"]["quotaErrorDetails"]["retryDelay"], "30s");
    assert!(throttled.headers.get(RETRY_AFTER).is_none());
}

// ---- Pinterest -------------------------------------------------------------------------------

#[tokio::test]
async fn pinterest_lists_the_account_boards_and_ad_accounts_and_creates_a_pin() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "pinterest").await;
    let account = sandbox
        .api("GET", &identity("pinterest"), Some(&token), &[], None)
        .await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert_eq!(account.json()["username"], "sandboxmerchant");

    let boards = sandbox
        .api("GET", &at("pinterest", "boards"), Some(&token), &[], None)
        .await;
    let items = boards.json()["items"].as_array().expect("items").clone();
    // The secret board needs boards:read_secret.
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["privacy"], "PUBLIC");
    let board_id = str_field(&items[0], "/id").to_owned();

    let ads = sandbox
        .api(
            "GET",
            &at("pinterest", "ad_accounts"),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(ads.status, StatusCode::OK);
    assert_eq!(ads.json()["items"][0]["currency"], "EUR");

    // Pinterest fetches the image itself: it must be there.
    let media = super::publishing::media_server().await;
    let pin = json!({
        "board_id": board_id,
        "title": "New arrivals",
        "media_source": { "source_type": "image_url", "url": format!("{media}/image.jpg") },
    });
    let created = sandbox
        .api(
            "POST",
            &at("pinterest", "pins"),
            Some(&token),
            &[],
            Some(pin.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["board_id"], board_id.as_str());
    let published = sandbox.sim.published("pinterest");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, str_field(&created.json(), "/id"));
    assert_eq!(published[0].target, board_id);
    assert_eq!(published[0].fields, pin);
}

#[tokio::test]
async fn pinterest_validates_pins_and_answers_scopes_with_code_3_and_throttles_with_code_8() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "pinterest").await;
    let pins = at("pinterest", "pins");
    let image = json!({ "source_type": "image_url", "url": "https://cdn.example/a.jpg" });
    let cases = [
        (json!({ "media_source": image }), 400, 1),
        (json!({ "board_id": "1", "media_source": image }), 404, 40),
        (
            json!({ "board_id": "900000000000000001", "title": "x".repeat(101), "media_source": image }),
            400,
            1,
        ),
        (
            json!({ "board_id": "900000000000000001", "media_source": { "source_type": "image_url" } }),
            400,
            1,
        ),
    ];
    for (body, status, code) in cases {
        let reply = sandbox
            .api("POST", &pins, Some(&token), &[], Some(body))
            .await;
        assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
        assert_eq!(reply.json()["code"], code);
    }
    assert!(sandbox.sim.published("pinterest").is_empty());

    let reader = token_with(&sandbox, "pinterest", &["boards:read"]).await;
    let reply = sandbox
        .api(
            "POST",
            &pins,
            Some(&reader),
            &[],
            Some(json!({ "board_id": "900000000000000001" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["code"], 3);

    sandbox.sim.set_api_rate_limited(
        "pinterest",
        Some(ApiRateLimit {
            retry_after_seconds: 5,
        }),
    );
    let throttled = sandbox
        .api("GET", &at("pinterest", "boards"), Some(&token), &[], None)
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.json()["code"], 8);
}

// ---- X ---------------------------------------------------------------------------------------

#[tokio::test]
async fn twitter_serves_the_user_and_posts_with_rate_limit_headers() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "twitter").await;
    let me = sandbox
        .api("GET", &identity("twitter"), Some(&token), &[], None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["data"]["username"], "sandboxmerchant");
    assert_eq!(header(&me, "x-rate-limit-limit"), "75");
    assert_eq!(header(&me, "x-rate-limit-remaining"), "74");
    let reset = sandbox.sim.now().timestamp() + 900;
    assert_eq!(header(&me, "x-rate-limit-reset"), reset.to_string());

    let tweets = at("twitter", "tweets");
    let empty = sandbox
        .api("POST", &tweets, Some(&token), &[], Some(json!({})))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.content_type(), "application/problem+json");

    let posted = sandbox
        .api(
            "POST",
            &tweets,
            Some(&token),
            &[],
            Some(json!({ "text": "New arrivals" })),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.body);
    assert_eq!(posted.json()["data"]["text"], "New arrivals");
    assert_eq!(header(&posted, "x-rate-limit-limit"), "100");
    let published = sandbox.sim.published("twitter");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kind, "tweet");
    assert_eq!(published[0].id, str_field(&posted.json(), "/data/id"));
}

#[tokio::test]
async fn twitter_answers_a_missing_scope_with_403_and_throttles_with_its_headers() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "twitter", &["tweet.read", "users.read"]).await;
    let tweets = at("twitter", "tweets");
    let reply = sandbox
        .api(
            "POST",
            &tweets,
            Some(&token),
            &[],
            Some(json!({ "text": "x" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["title"], "Forbidden");

    sandbox.sim.set_api_rate_limited(
        "twitter",
        Some(ApiRateLimit {
            retry_after_seconds: 60,
        }),
    );
    let throttled = sandbox
        .api("GET", &identity("twitter"), Some(&token), &[], None)
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.json()["title"], "Too Many Requests");
    assert_eq!(header(&throttled, "x-rate-limit-remaining"), "0");
    let reset = sandbox.sim.now().timestamp() + 60;
    assert_eq!(header(&throttled, "x-rate-limit-reset"), reset.to_string());
    assert!(!header(&throttled, "x-rate-limit-limit").is_empty());
}

#[tokio::test]
async fn meta_reads_the_token_and_its_proof_from_a_form_body_and_me_is_the_page_for_a_page_token() {
    let sandbox = Sandbox::new();
    let token = full_token(&sandbox, "meta").await;
    let (page_token, page_id, _) = meta_page(&sandbox, &token).await;
    let me = sandbox
        .api("GET", &at("meta", "me"), Some(&page_token), &[], None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["id"], page_id.as_str());

    let feed = at("meta", &format!("{page_id}/feed"));
    let proof = appsecret_proof(&page_token);
    let form = params(&[
        ("message", "From a form"),
        ("access_token", &page_token),
        ("appsecret_proof", &proof),
    ]);
    let posted = sandbox
        .request("POST", &feed, None, Some(&form), None)
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    let published = sandbox.sim.published("meta");
    assert_eq!(published[0].fields, json!({ "message": "From a form" }));

    let wrong = with(form, "appsecret_proof", &appsecret_proof(&token));
    let refused = sandbox
        .request("POST", &feed, None, Some(&wrong), None)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["type"], "GraphMethodException");
    assert_eq!(sandbox.sim.published("meta").len(), 1);
}
