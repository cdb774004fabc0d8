//! TikTok (Login Kit): the definition and its quirk, errors inside a 200 envelope, asset
//! discovery (the creator and what its posting API allows) and publishing (`publish`: videos and
//! photos through the Content Posting API). Sources: `shared/providers.md` §2,
//! `shared/platform-apis.md` §2.

mod publish;

use crate::platforms::budget::CountedBudget;
use secrecy::SecretString;
use serde_json::{json, Value};

use async_trait::async_trait;

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{BuiltInPlatform, Endpoints, EventDefinition, Mark, Protocol};
use crate::platforms::discovery;
use crate::platforms::error::{scrub, PlatformError};
use crate::platforms::events::{
    hmac_matches, timestamp_fresh, unix_time, EventKeys, EventRejection, InboundRequest, Notice,
    NoticeAccount, NoticeKind, Receipt,
};
use crate::platforms::platform::PublishContext;
use crate::platforms::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform, PlatformHttp,
    PlatformSpec, ReconnectRule, Renewal, Revocation, TokenMethod,
};
use crate::platforms::publish::{Confirmation, PostDraft, Prepared, PublishFailure, Sent};

// providers.md §2: client_key, comma scopes, flat token response, data-wrapped user info.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "tiktok",
    env_prefix: "TIKTOK",
    client_id_var: "TIKTOK_CLIENT_KEY",
    client_secret_var: "TIKTOK_CLIENT_SECRET",
    display_name: "TikTok",
    mark: Mark {
        letter: "T",
        class: "mark--tiktok",
    },
    endpoints: Endpoints {
        authorize: "https://www.tiktok.com/v2/auth/authorize/",
        token: "https://open.tiktokapis.com/v2/oauth/token/",
        revoke: Some("https://open.tiktokapis.com/v2/oauth/revoke/"),
        userinfo: Some("https://open.tiktokapis.com/v2/user/info/"),
    },
    scopes: &[
        "user.info.basic",
        "user.info.profile",
        "user.info.stats",
        "video.list",
        "video.publish",
        "video.upload",
    ],
    renewal: Renewal::RefreshToken,
    // providers.md §2: "refresh 365 days" [T1], "refresh 180 days" in the Nov 2026 pages, which say
    // to use `refresh_expires_in` ("remaining lifetime in seconds") rather than hard-coding [T3, T4].
    reconnect: ReconnectRule::RefreshTokenExpiry,
    behaviour: &TikTok,
    api_base: "https://open.tiktokapis.com/v2/",
    api_settings: &[],
    fixed_api_headers: &[],
    asset_kinds: &[CREATOR],
    foreign_vars: &[],
    events: EventDefinition::NONE,
    simulated: true,
    protocol: Protocol {
        scope_separator: ",",
        client_id_param: "client_key",
        client_auth: ClientAuth::RequestBody,
        token_method: TokenMethod::PostForm,
        // The web flow documents no PKCE; desktop PKCE uses hex, not RFC 7636 (providers.md T1, T11).
        pkce: Pkce::None,
        authorize_params: &[("response_type", "code")],
        // platform-apis.md §2: no incremental parameter; all scopes again, and disable_auto_auth=1
        // so a returning merchant sees the consent screen (providers.md T5).
        missing_consent: ConsentMode::Full {
            params: &[("disable_auto_auth", "1")],
        },
        refresh_rotates: true,
        revocation: Revocation::Form {
            authenticate: true,
            hint: false,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[("fields", "open_id,union_id,avatar_url,display_name")],
            wrapper: &["data", "user"],
            id: &[&["open_id"]],
            name: &[&["display_name"]],
            picture: &[&["avatar_url"]],
        },
    },
};

/// The TikTok creator and what its posting API allows: an identity, not a choice.
const CREATOR: AssetKind = AssetKind {
    key: "tiktok_creator",
    label: "TikTok creator",
    selectable: false,
    token: AssetToken::Connection,
};

/// TikTok's behaviour: the error envelope, its dead-token code, the creator as its asset.
#[derive(Debug)]
pub(super) struct TikTok;

#[async_trait]
impl Platform for TikTok {
    fn event_receivers(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "webhooks",
            "Webhook callback URL: authorization.removed, post.publish.*",
        )]
    }

    async fn receive_events(
        &self,
        spec: &PlatformSpec,
        _keys: &dyn EventKeys,
        request: &InboundRequest<'_>,
    ) -> Result<Receipt, EventRejection> {
        match (request.receiver, request.method == http::Method::POST) {
            ("webhooks", true) => webhook_notices(spec, request),
            ("webhooks", false) => Err(EventRejection::MethodNotAllowed),
            _ => Err(EventRejection::NoSuchReceiver),
        }
    }
    fn check_account_response(
        &self,
        spec: &PlatformSpec,
        body: &Value,
    ) -> Result<(), PlatformError> {
        check_envelope(spec, body)
    }

    /// 401 with `error.code` `access_token_invalid` (not `scope_not_authorized`) [T6].
    fn is_dead_token(&self, status: u16, body: &[u8]) -> bool {
        status == 401
            && serde_json::from_slice::<Value>(body)
                .is_ok_and(|b| b["error"]["code"] == "access_token_invalid")
    }

    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        discover_assets(http, spec, access_token).await
    }

    /// The creator (`publish`).
    /// No rate-limit headers are documented; 600 requests per minute (T17) is the budget.
    fn counted_app_budget(&self) -> Option<CountedBudget> {
        Some(CountedBudget {
            calls: 600,
            window: std::time::Duration::from_secs(60),
        })
    }

    fn publish_kinds(&self) -> &'static [&'static str] {
        publish::KINDS
    }

    fn check_draft(&self, kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
        publish::check_draft(kind, draft)
    }

    async fn prepare_post(&self, context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
        publish::prepare(context).await
    }

    async fn send_post(&self, context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
        publish::send(context).await
    }

    async fn confirm_post(
        &self,
        context: &PublishContext<'_>,
    ) -> Result<Confirmation, PublishFailure> {
        publish::confirm(context).await
    }
}

/// TikTok's API answers failures inside an envelope, `error.code` other than `"ok"`, sometimes with
/// HTTP 200. <https://developers.tiktok.com/doc/tiktok-api-v2-error-handling>
fn check_envelope(spec: &PlatformSpec, body: &Value) -> Result<(), PlatformError> {
    let code = body
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str);
    match code {
        None | Some("ok") => Ok(()),
        Some(code) => Err(PlatformError::Rejected {
            platform: spec.id.clone(),
            code: scrub(code),
            description: body
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(scrub)
                .unwrap_or_default(),
            permanent: code == "access_token_invalid",
            revoked: false,
        }),
    }
}

/// TikTok's asset: the creator (its `open_id` from user info) with what the Content Posting API
/// allows it (`post/publish/creator_info/query/`: privacy levels, the longest video, the
/// interactions it may turn off), which a poster must respect (platform-apis.md T18).
/// <https://developers.tiktok.com/doc/content-posting-api-reference-query-creator-info>
async fn discover_assets(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, PlatformError> {
    let account = client.fetch_account(spec, access_token).await?;
    let url = discovery::api_url(spec, "post/publish/creator_info/query/")?;
    let body = client.post_api(spec, url, access_token, &json!({})).await?;
    check_envelope(spec, &body)?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let Some(id) = account.id else {
        return Err(PlatformError::BadResponse {
            platform: spec.id.clone(),
            detail: "user info without open_id".into(),
        });
    };
    Ok(AssetSet {
        assets: vec![Asset {
            kind: CREATOR,
            id,
            name: discovery::text(&data, "creator_nickname").or(account.name),
            details: json!({
                "username": data.get("creator_username"),
                "privacy_level_options": data.get("privacy_level_options"),
                "max_video_post_duration_sec": data.get("max_video_post_duration_sec"),
                "comment_disabled": data.get("comment_disabled"),
                "duet_disabled": data.get("duet_disabled"),
                "stitch_disabled": data.get("stitch_disabled"),
            }),
        }],
        ..AssetSet::default()
    })
}

/// [T25, T26]: `TikTok-Signature: t=<unix>,s=<hex HMAC-SHA256(client secret, "<t>." + raw body)>`,
/// then the timestamp within the tolerance (TikTok sets none: ours is a setting). The envelope
/// carries `user_openid` and `content`, a JSON document serialised as a string.
fn webhook_notices(
    spec: &PlatformSpec,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let secret = spec
        .event_signing_key()
        .ok_or(EventRejection::NotConfigured("TIKTOK_CLIENT_SECRET"))?;
    let header = request
        .header("tiktok-signature")
        .ok_or(EventRejection::BadSignature("no TikTok-Signature"))?;
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value),
            Some(("s", value)) => signature = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(EventRejection::BadSignature(
            "TikTok-Signature is not t=..,s=<hex>",
        ));
    };
    if !hmac_matches(
        secret,
        &[timestamp.as_bytes(), b".", request.body],
        &signature,
    ) {
        return Err(EventRejection::BadSignature(
            "TikTok-Signature does not match",
        ));
    }
    let signed_at: i64 = timestamp
        .parse()
        .map_err(|_| EventRejection::BadSignature("the signature's timestamp is not a number"))?;
    if !timestamp_fresh(signed_at, request.now, spec.events.max_age_seconds) {
        return Err(EventRejection::Stale);
    }
    let body = request.json()?;
    let event = body["event"]
        .as_str()
        .ok_or(EventRejection::Malformed("the event names no type"))?;
    let content = match &body["content"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        other => other.clone(),
    };
    let kind = match event {
        "authorization.removed" => NoticeKind::Removal,
        e if e.starts_with("post.publish.") || e.starts_with("video.") => NoticeKind::Content,
        _ => NoticeKind::Other,
    };
    let create_time = body["create_time"].as_i64();
    Ok(Receipt::Notices(vec![Notice {
        kind,
        event_type: event.to_owned(),
        account: discovery::text(&body, "user_openid").map(NoticeAccount::User),
        platform_id: None,
        occurred_at: create_time.and_then(unix_time),
        payload: json!({ "event": event, "create_time": create_time, "content": content }),
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::Catalog;

    #[test]
    fn the_error_envelope_is_refused_even_with_http_200() {
        let catalog = Catalog::resolve(&std::collections::BTreeMap::new(), &[], None);
        let spec = catalog.find(PLATFORM.slug).expect("built in");
        let body = json!({
            "data": {},
            "error": { "code": "access_token_invalid", "message": "The access token is invalid." }
        });
        match TikTok.check_account_response(spec, &body) {
            Err(PlatformError::Rejected {
                code, permanent, ..
            }) => {
                assert_eq!(code, "access_token_invalid");
                assert!(permanent);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        let ok = json!({ "data": {}, "error": { "code": "ok" } });
        assert!(TikTok.check_account_response(spec, &ok).is_ok());
        assert!(crate::platforms::platform::PlainOAuth
            .check_account_response(spec, &body)
            .is_ok());
    }

    #[test]
    fn a_missing_scope_401_is_not_a_dead_token() {
        let scope = br#"{"data":{},"error":{"code":"scope_not_authorized"}}"#;
        assert!(!TikTok.is_dead_token(401, scope));
        let invalid = br#"{"data":{},"error":{"code":"access_token_invalid"}}"#;
        assert!(TikTok.is_dead_token(401, invalid));
    }
}
