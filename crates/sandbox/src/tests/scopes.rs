//! Tests of the scopes each platform's consent screen takes: an unknown one is refused with the
//! platform's own answer (always, or in the strict reading where the platform's docs leave it
//! open), and every scope the service asks for by default is known.

use super::*;

/// A scope no platform has.
const UNKNOWN: &str = "everything.manage";

/// The request of `authorize_params`, asking for [`UNKNOWN`] too (joined as the platform joins).
fn with_unknown_scope(platform: &str) -> Params {
    let request = authorize_params(platform);
    let scope = request
        .iter()
        .find(|(key, _)| key == "scope")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let separator = if scope.contains(',') { ',' } else { ' ' };
    with(request, "scope", &format!("{scope}{separator}{UNKNOWN}"))
}

/// The service's default scopes, as `src/platforms/builtin/*` define them (the sandbox crate cannot
/// read the service's table; `tests/api/strict.rs` checks the table itself against the simulators).
fn service_defaults(platform: &str) -> &'static [&'static str] {
    match platform {
        "meta" => &[
            "pages_show_list",
            "pages_read_engagement",
            "pages_manage_posts",
            "pages_manage_metadata",
            "read_insights",
            "instagram_basic",
            "instagram_content_publish",
            "instagram_manage_insights",
            "ads_management",
            "ads_read",
            "business_management",
        ],
        "tiktok" => &[
            "user.info.basic",
            "user.info.profile",
            "user.info.stats",
            "video.list",
            "video.publish",
            "video.upload",
        ],
        "google" => &[
            "openid",
            "email",
            "profile",
            "https://www.googleapis.com/auth/adwords",
        ],
        "pinterest" => &[
            "user_accounts:read",
            "boards:read",
            "boards:write",
            "pins:read",
            "pins:write",
            "ads:read",
            "ads:write",
        ],
        "linkedin" => &[
            "openid",
            "profile",
            "email",
            "w_member_social",
            "r_organization_admin",
            "rw_organization_admin",
            "w_organization_social",
            "r_organization_social",
            "r_ads",
            "rw_ads",
            "r_ads_reporting",
        ],
        _ => &[
            "tweet.read",
            "tweet.write",
            "users.read",
            "media.write",
            "offline.access",
        ],
    }
}

/// The separator the platform's authorization request joins scopes with.
fn separator(platform: &str) -> &'static str {
    match platform {
        "tiktok" | "pinterest" | "meta" => ",",
        _ => " ",
    }
}

impl Reply {
    /// Where a refusal redirected, or the message of the error page it showed.
    fn location_or_message(&self) -> String {
        if self.headers.contains_key(LOCATION) {
            return self.location().to_string();
        }
        self.body
            .split("<p>")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or(&self.body)
            .to_owned()
    }
}

/// Asserts that the platform showed its own error page, which names `expected`, and told the app
/// nothing.
fn assert_error_page(platform: &str, reply: &Reply, expected: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{platform}");
    assert!(
        reply.headers.get(LOCATION).is_none(),
        "{platform} redirected"
    );
    assert!(
        reply.content_type().starts_with("text/html"),
        "{platform}: {}",
        reply.content_type()
    );
    assert!(
        reply.body.contains(expected),
        "{platform}: {expected:?} not in {}",
        reply.body
    );
}

/// Asserts that the app was sent back with this error and its state.
fn assert_redirected_error(platform: &str, reply: &Reply, error: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FOUND,
        "{platform}: {}",
        reply.body
    );
    assert_eq!(
        reply.location_param("error").as_deref(),
        Some(error),
        "{platform}"
    );
    let description = reply
        .location_param("error_description")
        .unwrap_or_default();
    assert!(description.contains(UNKNOWN), "{platform}: {description}");
    assert_eq!(
        reply.location_param("state"),
        Some(format!("st-{platform}")),
        "{platform}"
    );
}

#[tokio::test]
async fn in_the_strict_reading_an_unknown_scope_is_refused_with_each_platforms_answer() {
    let sandbox = Sandbox::new();
    sandbox.sim.strict(true);
    for platform in PLATFORMS {
        let reply = sandbox
            .authorize(platform, &with_unknown_scope(platform))
            .await;
        match platform {
            "meta" => assert_error_page(platform, &reply, &format!("Invalid Scopes: {UNKNOWN}.")),
            "google" => {
                assert_error_page(platform, &reply, "Error 400: invalid_scope");
                assert_error_page(platform, &reply, &format!("invalid=[{UNKNOWN}]"));
            }
            "tiktok" => {
                assert_error_page(
                    platform,
                    &reply,
                    "correct the following and try again: scope",
                );
                assert_error_page(platform, &reply, UNKNOWN);
            }
            "linkedin" => assert_redirected_error(platform, &reply, "unauthorized_scope_error"),
            _ => assert_redirected_error(platform, &reply, "invalid_scope"),
        }
        assert!(
            !reply.body.contains("name=\"request_id\""),
            "{platform} rendered a consent screen"
        );
    }
}

#[tokio::test]
async fn outside_the_strict_reading_only_the_platforms_that_always_refuse_refuse() {
    let sandbox = Sandbox::new();
    for platform in PLATFORMS {
        let reply = sandbox
            .authorize(platform, &with_unknown_scope(platform))
            .await;
        match platform {
            // Google, TikTok and LinkedIn refuse whoever asks.
            "google" => assert_error_page(platform, &reply, "Error 400: invalid_scope"),
            "tiktok" => assert_error_page(platform, &reply, "try again: scope"),
            "linkedin" => assert_redirected_error(platform, &reply, "unauthorized_scope_error"),
            // Meta's users never see the unknown permission: the dialog asks for the others.
            "meta" => {
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                assert!(!reply.body.contains(UNKNOWN), "{}", reply.body);
                assert!(reply.body.contains("value=\"pages_show_list\""));
            }
            // Pinterest and X leave it open: the lenient reading asks for it.
            _ => {
                assert_eq!(reply.status, StatusCode::OK, "{platform}: {}", reply.body);
                assert!(
                    reply.body.contains(&format!("value=\"{UNKNOWN}\"")),
                    "{platform}"
                );
            }
        }
    }
}

#[tokio::test]
async fn meta_grants_no_permission_it_does_not_know_outside_the_strict_reading() {
    let sandbox = Sandbox::new();
    let request = with_unknown_scope("meta");
    // The form carries the unknown permission too; only what the dialog asked for counts.
    let code = sandbox
        .code_with("meta", &request, &["pages_show_list", UNKNOWN])
        .await;
    let reply = sandbox.exchange("meta", &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let token = str_field(&reply.json(), "/access_token").to_owned();
    let debug = debug_token(&sandbox, &token, Some(&app_token())).await;
    assert_eq!(debug.status, StatusCode::OK, "{}", debug.body);
    assert_eq!(
        debug.json()["data"]["scopes"],
        serde_json::json!(["pages_show_list"])
    );
}

#[tokio::test]
async fn every_scope_the_service_asks_for_by_default_passes_the_strict_consent_screen() {
    let sandbox = Sandbox::new();
    sandbox.sim.strict(true);
    for platform in PLATFORMS {
        let defaults = service_defaults(platform);
        let request = with(
            authorize_params(platform),
            "scope",
            &defaults.join(separator(platform)),
        );
        let page = sandbox.authorize(platform, &request).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{platform}: {:?}",
            page.location_or_message()
        );
        for scope in defaults {
            assert!(
                page.body
                    .contains(&format!("name=\"scope\" value=\"{scope}\"")),
                "{platform}: {scope} not offered"
            );
        }
    }
}
