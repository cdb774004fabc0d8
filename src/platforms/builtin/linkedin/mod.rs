//! LinkedIn: the definition and asset discovery (the organizations the member administers, the ad
//! accounts it holds a role on). Sources: the keys [L1]…[L33] of `shared/linkedin.md`.
//!
//! Its OAuth is plain and all data: credentials in the body, space-separated scopes (the answer's
//! `scope` may come comma-separated, which every platform's parsing accepts), no PKCE on the web
//! flow, 60-day access tokens, and refresh tokens only for approved partners, with a lifetime fixed
//! at the first grant ([`ReconnectRule::GrantExpiry`]). Every call under `/rest/` carries the
//! pinned `LinkedIn-Version` (from `LINKEDIN_API_VERSION`) and the Rest.li protocol header.
//! Publishing as an organization (image upload, then the post) is `publish`'s.

mod publish;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{
    ApiHeaderSetting, BuiltInPlatform, Endpoints, EventDefinition, Mark, Protocol,
};
use crate::platforms::discovery;
use crate::platforms::error::PlatformError;
use crate::platforms::events::{
    hmac_matches, hmac_sha256, EventKeys, EventRejection, InboundRequest, Notice, NoticeAccount,
    NoticeKind, Receipt,
};
use crate::platforms::platform::PublishContext;
use crate::platforms::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform, PlatformHttp,
    PlatformSpec, ReconnectRule, Renewal, Revocation, TokenMethod,
};
use crate::platforms::publish::{PostDraft, Prepared, PublishFailure, Sent};

// linkedin.md §1-§2, §5, §10.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "linkedin",
    env_prefix: "LINKEDIN",
    client_id_var: "LINKEDIN_CLIENT_ID",
    client_secret_var: "LINKEDIN_CLIENT_SECRET",
    display_name: "LinkedIn",
    mark: Mark {
        letter: "in",
        class: "mark--linkedin",
    },
    endpoints: Endpoints {
        authorize: "https://www.linkedin.com/oauth/v2/authorization",
        token: "https://www.linkedin.com/oauth/v2/accessToken",
        // [L28]: no LinkedIn page documents it; integrations call it with the client's credentials
        // and the token in a form. A failure leaves the grant to the member's privacy settings.
        revoke: Some("https://www.linkedin.com/oauth/v2/revoke"),
        // [L5, L31]: OpenID Connect's userinfo (`sub` is the member id).
        userinfo: Some("https://api.linkedin.com/v2/userinfo"),
    },
    // [L7, L8, L33, L35]: sign-in, posting as the member and as its organizations, the pages it
    // administers, and its ad accounts with their reporting.
    scopes: &[
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
    renewal: Renewal::RefreshToken,
    // [L2], §10: a partner's refresh token keeps the lifetime of the first grant (365 days) however
    // often it refreshes; without one, the 60-day access token is the end [L1].
    reconnect: ReconnectRule::GrantExpiry,
    behaviour: &LinkedIn,
    api_base: "https://api.linkedin.com/rest/",
    api_settings: &[ApiHeaderSetting {
        var: "LINKEDIN_API_VERSION",
        header: "LinkedIn-Version",
        secret: false,
        // [L9, L38]: versions live about a year; 202603 is active until March 2027. A sunset
        // version answers 426, so the operator moves it forward with the setting.
        default: Some("202603"),
        parse: api_version,
    }],
    // [L12, L37]: without it a call defaults to Rest.li 1.0.
    fixed_api_headers: &[("X-Restli-Protocol-Version", "2.0.0")],
    asset_kinds: &[ORGANIZATION, AD_ACCOUNT],
    foreign_vars: &[],
    events: EventDefinition::NONE,
    simulated: true,
    protocol: Protocol {
        scope_separator: " ",
        client_id_param: "client_id",
        // [L1, L33]: client credentials in the body; Basic on the code grant is unverified.
        client_auth: ClientAuth::RequestBody,
        token_method: TokenMethod::PostForm,
        // [L1, L23]: the web flow documents no PKCE (only native clients, on request [L4]).
        pkce: Pkce::None,
        authorize_params: &[("response_type", "code")],
        // [L1]: the member consents to every requested scope at once, and a different scope set
        // invalidates earlier tokens: always ask for the whole set.
        missing_consent: ConsentMode::Full { params: &[] },
        // [L2]: no source says a refresh invalidates the old refresh token; what comes back is kept.
        refresh_rotates: false,
        revocation: Revocation::Form {
            authenticate: true,
            hint: false,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[],
            wrapper: &[],
            id: &[&["sub"]],
            name: &[&["name"], &["email"]],
            picture: &[&["picture"]],
        },
    },
};

/// An organization (company page) the member administers; the connection's token acts for it.
const ORGANIZATION: AssetKind = AssetKind {
    key: "linkedin_organization",
    label: "Default LinkedIn page",
    selectable: true,
    token: AssetToken::Connection,
};

/// An ad account the member holds a role on.
const AD_ACCOUNT: AssetKind = AssetKind {
    key: "linkedin_ad_account",
    label: "Default ad account",
    selectable: true,
    token: AssetToken::Connection,
};

/// `YYYYMM` or `YYYYMM.RR` [L37].
fn api_version(text: &str) -> Result<String, &'static str> {
    let (month, revision) = text.split_once('.').unwrap_or((text, "00"));
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if digits(month, 6) && digits(revision, 2) {
        Ok(text.to_owned())
    } else {
        Err("must be a LinkedIn API version, YYYYMM or YYYYMM.RR")
    }
}

/// LinkedIn's behaviour: its assets. Everything else is data.
#[derive(Debug)]
pub(super) struct LinkedIn;

#[async_trait]
impl Platform for LinkedIn {
    fn event_receivers(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "webhooks",
            "Webhook endpoint (challenge-validated; approved use cases only): organization social actions",
        )]
    }

    async fn receive_events(
        &self,
        spec: &PlatformSpec,
        _keys: &dyn EventKeys,
        request: &InboundRequest<'_>,
    ) -> Result<Receipt, EventRejection> {
        if request.receiver != "webhooks" {
            return Err(EventRejection::NoSuchReceiver);
        }
        let secret = spec
            .event_signing_key()
            .ok_or(EventRejection::NotConfigured("LINKEDIN_CLIENT_SECRET"))?;
        if request.method == http::Method::GET {
            return challenge_answer(secret, request);
        }
        webhook_notices(secret, request)
    }
    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        let mut set = AssetSet::default();
        let acls = readable(
            listing(
                http,
                spec,
                access_token,
                "organizationAcls",
                &[
                    ("q", "roleAssignee"),
                    ("role", "ADMINISTRATOR"),
                    ("state", "APPROVED"),
                ],
            )
            .await,
        )?;
        for acl in &acls {
            let Some(id) = urn_id(acl, "organization", "urn:li:organization:") else {
                continue;
            };
            let url = discovery::api_url(spec, &format!("organizations/{id}"))?;
            let organization = http.get_api(spec, url, access_token, &[]).await?;
            set.assets.push(Asset {
                kind: ORGANIZATION,
                name: discovery::text(&organization, "localizedName"),
                details: json!({
                    "urn": format!("urn:li:organization:{id}"),
                    "vanity_name": organization.get("vanityName"),
                }),
                id,
            });
        }
        let users = readable(
            listing(
                http,
                spec,
                access_token,
                "adAccountUsers",
                &[("q", "authenticatedUser")],
            )
            .await,
        )?;
        for user in &users {
            let Some(id) = urn_id(user, "account", "urn:li:sponsoredAccount:") else {
                continue;
            };
            let url = discovery::api_url(spec, &format!("adAccounts/{id}"))?;
            let account = http.get_api(spec, url, access_token, &[]).await?;
            set.assets.push(Asset {
                kind: AD_ACCOUNT,
                name: discovery::text(&account, "name"),
                details: json!({
                    "role": user.get("role"),
                    "status": account.get("status"),
                    "currency": account.get("currency"),
                }),
                id,
            });
        }
        Ok(set)
    }

    fn publish_kinds(&self) -> &'static [&'static str] {
        publish::KINDS
    }

    fn check_draft(&self, kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
        publish::check_draft(kind, draft)
    }

    async fn prepare_post(&self, context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
        publish::prepare_post(context).await
    }

    async fn send_post(&self, context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
        publish::send_post(context).await
    }
}

/// The id at the end of a URN field (`urn:li:organization:123` → `123`).
fn urn_id(element: &Value, field: &str, prefix: &str) -> Option<String> {
    let id = element.get(field)?.as_str()?.strip_prefix(prefix)?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// A listing the grant may not cover: a 403 (a scope the app's products do not give, or a member
/// without the role [L10, L56]) is the merchant's situation, not a failure, and finds nothing.
fn readable(listing: Result<Vec<Value>, PlatformError>) -> Result<Vec<Value>, PlatformError> {
    match listing {
        Err(PlatformError::Rejected { code, .. }) if code == "http_403" => {
            tracing::info!("LinkedIn listing not readable with this grant");
            Ok(Vec::new())
        }
        other => other,
    }
}

/// The most pages of one listing followed, so that a listing cannot run for ever.
const MAX_PAGES: usize = 10;

/// The page size asked for (Rest.li's default is 10 [L40]).
const PAGE_SIZE: usize = 100;

/// Reads a Rest.li finder's `elements`, page by page (`start`, `count`, `paging.total`) [L40].
async fn listing(
    http: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
    resource: &str,
    finder: &[(&str, &str)],
) -> Result<Vec<Value>, PlatformError> {
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let start = (page * PAGE_SIZE).to_string();
        let count = PAGE_SIZE.to_string();
        let mut query = finder.to_vec();
        query.push(("start", &start));
        query.push(("count", &count));
        let url = discovery::api_url(spec, resource)?;
        let body = http.get_api(spec, url, access_token, &query).await?;
        let before = all.len();
        all.extend(discovery::items(&body, "elements").cloned());
        let total = body
            .pointer("/paging/total")
            .and_then(Value::as_u64)
            .and_then(|t| usize::try_from(t).ok());
        let got = all.len() - before;
        if got < PAGE_SIZE || total.is_some_and(|t| all.len() >= t) {
            break;
        }
    }
    Ok(all)
}

/// [L18]: `GET ?challengeCode=...` is answered with `{"challengeCode", "challengeResponse": hex
/// HMAC-SHA256(client secret, challengeCode)}`.
fn challenge_answer(
    secret: &SecretString,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let code = request
        .query("challengeCode")
        .ok_or(EventRejection::Malformed("no challengeCode"))?;
    let mac = hmac_sha256(secret, &[code.as_bytes()]);
    Ok(Receipt::Challenge {
        content_type: "application/json",
        body: json!({ "challengeCode": code, "challengeResponse": hex::encode(mac) }).to_string(),
    })
}

/// [L18, L29]: `X-LI-Signature` = hex HMAC-SHA256(client secret, "hmacsha256=" + raw body); the
/// notifications are content for the services, by organization.
fn webhook_notices(
    secret: &SecretString,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let signature = request
        .header("x-li-signature")
        .and_then(|text| hex::decode(text).ok())
        .ok_or(EventRejection::BadSignature("no X-LI-Signature of hex"))?;
    if !hmac_matches(secret, &[b"hmacsha256=", request.body], &signature) {
        return Err(EventRejection::BadSignature(
            "X-LI-Signature does not match",
        ));
    }
    let body = request.json()?;
    let items = match body["notifications"].as_array() {
        Some(items) => items.clone(),
        None => vec![body.clone()],
    };
    let notices = items
        .iter()
        .map(|item| Notice {
            kind: NoticeKind::Content,
            event_type: discovery::text(item, "action")
                .or_else(|| discovery::text(item, "type"))
                .unwrap_or_else(|| "notification".into()),
            account: discovery::text(item, "organizationalEntity").map(NoticeAccount::Asset),
            platform_id: discovery::text(item, "notificationId"),
            occurred_at: item["lastModifiedAt"]
                .as_i64()
                .and_then(chrono::DateTime::from_timestamp_millis),
            payload: item.clone(),
        })
        .collect();
    Ok(Receipt::Notices(notices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_version_is_a_month_with_an_optional_revision() {
        assert_eq!(api_version("202603").as_deref(), Ok("202603"));
        assert_eq!(api_version("202603.01").as_deref(), Ok("202603.01"));
        for bad in ["2026-03", "20263", "202603.1", "v202603", ""] {
            assert!(api_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urns_give_their_ids() {
        let element =
            json!({ "organization": "urn:li:organization:42", "account": "urn:li:person:7" });
        assert_eq!(
            urn_id(&element, "organization", "urn:li:organization:"),
            Some("42".to_owned())
        );
        assert_eq!(
            urn_id(&element, "account", "urn:li:sponsoredAccount:"),
            None
        );
        assert_eq!(urn_id(&element, "missing", "urn:li:organization:"), None);
    }
}
