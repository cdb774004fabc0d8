//! X (Twitter): the definition and its quirk, `offline.access` kept whatever the scope override,
//! and asset discovery (the user). Sources: `shared/providers.md` §5, `shared/platform-apis.md` §5.
//! Publishing a post (media upload, then the post) is `publish`'s.

mod publish;

use crate::platforms::budget::{self, AppUsage};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::SecretString;
use serde_json::json;

use async_trait::async_trait;

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{BuiltInPlatform, Endpoints, EventDefinition, Mark, Protocol};
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

/// The scope without which X issues no refresh token.
const OFFLINE_ACCESS: &str = "offline.access";

// providers.md §5: PKCE mandatory, Basic, offline.access for a refresh token, rotation.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "twitter",
    env_prefix: "TWITTER",
    client_id_var: "TWITTER_CLIENT_ID",
    client_secret_var: "TWITTER_CLIENT_SECRET",
    display_name: "X (Twitter)",
    mark: Mark {
        letter: "X",
        class: "mark--twitter",
    },
    endpoints: Endpoints {
        authorize: "https://x.com/i/oauth2/authorize",
        token: "https://api.x.com/2/oauth2/token",
        revoke: Some("https://api.x.com/2/oauth2/revoke"),
        userinfo: Some("https://api.x.com/2/users/me"),
    },
    scopes: &[
        "tweet.read",
        "tweet.write",
        "users.read",
        "media.write",
        OFFLINE_ACCESS,
    ],
    renewal: Renewal::RefreshToken,
    // providers.md §5: refresh tokens rotate ("always save the newest one" [X3]) and need
    // `offline.access` [X2]; no source gives a lifetime or an idle limit, and the token response
    // carries none, so X has a `reconnect_by` only if it ever reports one.
    reconnect: ReconnectRule::RefreshTokenExpiry,
    behaviour: &Twitter,
    api_base: "https://api.x.com/2/",
    api_settings: &[],
    fixed_api_headers: &[],
    asset_kinds: &[USER],
    foreign_vars: &[],
    events: EventDefinition::NONE,
    simulated: true,
    protocol: Protocol {
        scope_separator: " ",
        client_id_param: "client_id",
        client_auth: ClientAuth::Basic,
        token_method: TokenMethod::PostForm,
        pkce: Pkce::S256,
        authorize_params: &[("response_type", "code")],
        // platform-apis.md §5: no incremental authorization documented, and no parameter that forces
        // the consent screen: all scopes again.
        missing_consent: ConsentMode::Full { params: &[] },
        refresh_rotates: true,
        revocation: Revocation::Form {
            authenticate: true,
            hint: true,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[("user.fields", "profile_image_url")],
            wrapper: &["data"],
            id: &[&["id"]],
            name: &[&["name"], &["username"]],
            picture: &[&["profile_image_url"]],
        },
    },
};

/// The X user: an identity, not a choice.
const USER: AssetKind = AssetKind {
    key: "x_user",
    label: "X user",
    selectable: false,
    token: AssetToken::Connection,
};

/// X's behaviour: `offline.access` kept, the user as its asset.
#[derive(Debug)]
pub(super) struct Twitter;

#[async_trait]
impl Platform for Twitter {
    fn event_receivers(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "webhooks",
            "Webhook URL (CRC checked): oauth.revoke (X Activity API), user_event revoke (Account Activity API)",
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
            .ok_or(EventRejection::NotConfigured("TWITTER_WEBHOOK_SECRET"))?;
        if request.method == http::Method::GET {
            return crc_answer(secret, request);
        }
        webhook_notices(secret, request)
    }

    /// X issues no refresh token without `offline.access` (providers.md X2): an override of
    /// `TWITTER_SCOPES` must not silently lose it.
    fn adjust_scopes(&self, scopes: &mut Vec<String>) {
        if !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
            scopes.push(OFFLINE_ACCESS.into());
        }
    }

    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        discover_assets(http, spec, access_token).await
    }

    /// `x-rate-limit-limit` and `x-rate-limit-remaining` on every answer (X10).
    fn app_usage(&self, headers: &http::HeaderMap) -> AppUsage {
        budget::from_remaining(headers, "x-rate-limit-limit", "x-rate-limit-remaining")
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

/// X's asset: the user (`GET /2/users/me`).
/// <https://docs.x.com/x-api/users/user-lookup-me>
async fn discover_assets(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, PlatformError> {
    let url = discovery::api_url(spec, "users/me")?;
    let body = client.get_api(spec, url, access_token, &[]).await?;
    let data = body.get("data").cloned().unwrap_or_default();
    let Some(id) = discovery::text(&data, "id") else {
        return Err(PlatformError::BadResponse {
            platform: spec.id.clone(),
            detail: "users/me without data.id".into(),
        });
    };
    Ok(AssetSet {
        assets: vec![Asset {
            kind: USER,
            id,
            name: discovery::text(&data, "name"),
            details: json!({ "username": data.get("username") }),
        }],
        ..AssetSet::default()
    })
}

/// [X14]: `GET ?crc_token=...` is answered with `{"response_token": "sha256=" +
/// base64(HMAC-SHA256(consumer secret, crc_token))}`.
fn crc_answer(
    secret: &SecretString,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let token = request
        .query("crc_token")
        .ok_or(EventRejection::Malformed("no crc_token"))?;
    let mac = hmac_sha256(secret, &[token.as_bytes()]);
    Ok(Receipt::Challenge {
        content_type: "application/json",
        body: json!({ "response_token": format!("sha256={}", STANDARD.encode(mac)) }).to_string(),
    })
}

/// [X14, X15, X16]: `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer secret,
/// raw body)>`; the X Activity API's envelope (`event_type`, `event_uuid`, `payload`, possibly
/// under `data`) or the Account Activity API's (`for_user_id` and one `*_events` list, or
/// `user_event.revoke`).
fn webhook_notices(
    secret: &SecretString,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let header =
        request
            .header("x-twitter-webhooks-signature")
            .ok_or(EventRejection::BadSignature(
                "no x-twitter-webhooks-signature",
            ))?;
    let signature = header
        .strip_prefix("sha256=")
        .and_then(|text| STANDARD.decode(text).ok())
        .ok_or(EventRejection::BadSignature(
            "x-twitter-webhooks-signature is not sha256=<base64>",
        ))?;
    if !hmac_matches(secret, &[request.body], &signature) {
        return Err(EventRejection::BadSignature(
            "x-twitter-webhooks-signature does not match",
        ));
    }
    let body = request.json()?;
    let envelope = if body["data"]["event_type"].is_string() {
        &body["data"]
    } else {
        &body
    };
    if let Some(event_type) = envelope["event_type"].as_str() {
        let payload = &envelope["payload"];
        let user = discovery::text(payload, "user_id")
            .or_else(|| discovery::text(&envelope["filter"], "user_id"));
        let kind = match event_type {
            "oauth.revoke" => NoticeKind::Removal,
            _ => NoticeKind::Content,
        };
        return Ok(Receipt::Notices(vec![Notice {
            kind,
            event_type: event_type.to_owned(),
            account: user.map(NoticeAccount::User),
            platform_id: discovery::text(envelope, "event_uuid"),
            occurred_at: payload["date_time"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
            payload: envelope.clone(),
        }]));
    }
    Ok(Receipt::Notices(account_activity_notices(&body)))
}

/// The Account Activity API's notices: a `user_event` revoke, else each `*_events` list.
fn account_activity_notices(body: &serde_json::Value) -> Vec<Notice> {
    if let Some(revoke) = body["user_event"].get("revoke") {
        return vec![Notice {
            kind: NoticeKind::Removal,
            event_type: "user_event.revoke".into(),
            account: discovery::text(&revoke["source"], "user_id").map(NoticeAccount::User),
            platform_id: None,
            occurred_at: None,
            payload: body.clone(),
        }];
    }
    let user = discovery::text(body, "for_user_id");
    body.as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.ends_with("_events"))
        .map(|(key, value)| Notice {
            kind: NoticeKind::Content,
            event_type: key.clone(),
            account: user.clone().map(NoticeAccount::User),
            platform_id: None,
            occurred_at: None,
            payload: json!({ "for_user_id": user, key.as_str(): value }),
        })
        .collect()
}
