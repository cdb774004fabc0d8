//! Google (Google Ads): the definition and asset discovery (the customers the user can access).
//! No OAuth quirk: offline access and consent are plain authorization parameters. Sources:
//! `shared/providers.md` §3, `shared/platform-apis.md` §3.

use crate::platforms::budget::CountedBudget;
use secrecy::SecretString;
use serde_json::{json, Value};

use async_trait::async_trait;

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{
    ApiHeaderSetting, BuiltInPlatform, Endpoints, EventDefinition, Mark, Protocol,
};
use crate::platforms::discovery;
use crate::platforms::error::PlatformError;
use crate::platforms::events::{
    unix_time, EventKeys, EventRejection, InboundRequest, Notice, NoticeAccount, NoticeKind,
    Receipt,
};
use crate::platforms::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform, PlatformHttp,
    PlatformSpec, ReconnectRule, Renewal, Revocation, TokenMethod,
};

// providers.md §3: offline access and consent, or there is no refresh token.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "google",
    env_prefix: "GOOGLE",
    client_id_var: "GOOGLE_CLIENT_ID",
    client_secret_var: "GOOGLE_CLIENT_SECRET",
    display_name: "Google Ads",
    mark: Mark {
        letter: "G",
        class: "mark--google",
    },
    endpoints: Endpoints {
        authorize: "https://accounts.google.com/o/oauth2/v2/auth",
        token: "https://oauth2.googleapis.com/token",
        revoke: Some("https://oauth2.googleapis.com/revoke"),
        userinfo: Some("https://openidconnect.googleapis.com/v1/userinfo"),
    },
    scopes: &[
        "openid",
        "email",
        "profile",
        "https://www.googleapis.com/auth/adwords",
    ],
    renewal: Renewal::RefreshToken,
    // providers.md §3: refresh tokens do not expire by time, except `refresh_token_expires_in`
    // "only for time-based access" [G1, G4] and "Testing" consent screens (7 days) [G2], which the
    // token response then reports; they also die "unused 6 months" [G2], which the refresher's
    // regular use prevents. So `reconnect_by` only when Google reported a lifetime.
    reconnect: ReconnectRule::RefreshTokenExpiry,
    behaviour: &GoogleAds,
    // platform-apis.md §3: v26 is "the latest active version" in the late-2026 docs.
    api_base: "https://googleads.googleapis.com/v26/",
    // platform-apis.md G7, G14: the developer token with every call, and the manager account as
    // the default `login-customer-id` (a caller may address another).
    api_settings: &[
        ApiHeaderSetting {
            var: "GOOGLE_ADS_DEVELOPER_TOKEN",
            header: "developer-token",
            secret: true,
            default: None,
            parse: crate::platforms::definition::as_written,
        },
        ApiHeaderSetting {
            var: "GOOGLE_ADS_LOGIN_CUSTOMER_ID",
            header: "login-customer-id",
            secret: false,
            default: None,
            parse: customer_id,
        },
    ],
    fixed_api_headers: &[],
    asset_kinds: &[ADS_CUSTOMER],
    // Google's client libraries' own settings, set beside ours in the same environment.
    foreign_vars: &["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"],
    // platform-events.md §3 [G15]: the RISC configuration names the issuer and the JWKS.
    events: EventDefinition {
        keys_url: Some("https://accounts.google.com/.well-known/risc-configuration"),
        sandbox_keys_path: Some("/sandbox/google/.well-known/risc-configuration"),
        subscribe_fields: "",
    },
    simulated: true,
    protocol: Protocol {
        scope_separator: " ",
        client_id_param: "client_id",
        client_auth: ClientAuth::RequestBody,
        token_method: TokenMethod::PostForm,
        pkce: Pkce::S256,
        authorize_params: &[
            ("response_type", "code"),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("include_granted_scopes", "true"),
        ],
        // providers.md §3 / platform-apis.md "Incremental authorization": include_granted_scopes
        // asks for the new scopes only, and the token response's `scope` lists all granted.
        missing_consent: ConsentMode::Incremental {
            params: &[("include_granted_scopes", "true")],
        },
        refresh_rotates: false,
        revocation: Revocation::Form {
            authenticate: false,
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

/// A Google Ads customer the user can access.
const ADS_CUSTOMER: AssetKind = AssetKind {
    key: "google_ads_customer",
    label: "Default Google Ads customer",
    selectable: true,
    token: AssetToken::Connection,
};

/// A customer id of ten digits, dashes allowed (`123-456-7890`), as Google Ads wants it: digits only.
fn customer_id(text: &str) -> Result<String, &'static str> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 10 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("must be a customer id of ten digits");
    }
    Ok(digits)
}

/// Google's behaviour: the retry delay in a throttled answer's body, Ads customers as assets.
#[derive(Debug)]
pub(super) struct GoogleAds;

#[async_trait]
impl Platform for GoogleAds {
    fn event_receivers(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "risc",
            "Cross-Account Protection (RISC) receiver: tokens-revoked, token-revoked, account-disabled, sessions-revoked",
        )]
    }

    /// [G15]: a valid token is answered 202.
    fn event_ack_status(&self, _receiver: &str) -> u16 {
        202
    }

    async fn receive_events(
        &self,
        spec: &PlatformSpec,
        keys: &dyn EventKeys,
        request: &InboundRequest<'_>,
    ) -> Result<Receipt, EventRejection> {
        match (request.receiver, request.method == http::Method::POST) {
            ("risc", true) => risc_notices(spec, keys, request).await,
            ("risc", false) => Err(EventRejection::MethodNotAllowed),
            _ => Err(EventRejection::NoSuchReceiver),
        }
    }
    /// The developer token's daily operations (G8: 15,000 at the Test and Basic levels); Google
    /// reports no usage in its answers.
    fn counted_app_budget(&self) -> Option<CountedBudget> {
        Some(CountedBudget {
            calls: 15_000,
            window: std::time::Duration::from_secs(24 * 3600),
        })
    }

    /// `QuotaErrorDetails.retryDelay` (like `"30s"`), in whole seconds, found anywhere in the error
    /// body: Google sends no `Retry-After` [G12].
    fn retry_hint(&self, body: &[u8]) -> Option<u64> {
        retry_delay(&serde_json::from_slice(body).ok()?)
    }

    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        discover_assets(http, spec, access_token).await
    }
}

fn retry_delay(value: &Value) -> Option<u64> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, v)| {
            if key == "retryDelay" || key == "retry_delay" {
                let text = v.as_str()?;
                let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
                // Rounded up: retrying early only earns another 429.
                Some(seconds.max(0.0).ceil() as u64)
            } else {
                retry_delay(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(retry_delay),
        _ => None,
    }
}

/// Google Ads' assets: the customers the user reaches directly
/// (`customers:listAccessibleCustomers`, answered as resource names `customers/<id>`). Names need
/// a query per customer (and a developer token), so none are read here: the id is the name.
/// <https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers/listAccessibleCustomers>
async fn discover_assets(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, PlatformError> {
    // "./": without it, `customers:` would parse as a URL scheme.
    let url = discovery::api_url(spec, "./customers:listAccessibleCustomers")?;
    let body = client.get_api(spec, url, access_token, &[]).await?;
    let assets = discovery::items(&body, "resourceNames")
        .filter_map(Value::as_str)
        .filter_map(|name| {
            let id = name.strip_prefix("customers/")?;
            Some(Asset {
                kind: ADS_CUSTOMER,
                id: id.to_owned(),
                name: Some(id.to_owned()),
                details: json!({ "resource_name": name }),
            })
        })
        .collect();
    Ok(AssetSet {
        assets,
        ..AssetSet::default()
    })
}

/// The claims of a security event token [G15].
#[derive(serde::Deserialize)]
struct SecurityEvent {
    jti: String,
    iat: Option<i64>,
    events: serde_json::Map<String, Value>,
}

/// [G15]: a security event token (a JWT, RS256) whose key is found by `kid` in the JWKS that the
/// RISC configuration names; `iss` is the configuration's issuer and `aud` our client id; `exp`
/// is not checked (the events are historical). One token carries one event, named by its URI.
async fn risc_notices(
    spec: &PlatformSpec,
    keys: &dyn EventKeys,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let client_id = &spec
        .credentials
        .as_ref()
        .ok_or(EventRejection::NotConfigured("GOOGLE_CLIENT_ID"))?
        .client_id;
    let discovery = spec
        .events
        .keys_url
        .as_ref()
        .ok_or(EventRejection::NotConfigured("GOOGLE_EVENT_KEYS_URL"))?;
    let token = std::str::from_utf8(request.body)
        .map_err(|_| EventRejection::Malformed("the body is not a token"))?
        .trim();
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| EventRejection::BadSignature("the body is not a signed token"))?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(EventRejection::BadSignature(
            "the token is not signed with RS256",
        ));
    }
    let kid = header
        .kid
        .ok_or(EventRejection::BadSignature("the token names no key"))?;
    let (issuer, jwk) = keys
        .key(discovery, &kid)
        .await?
        .ok_or(EventRejection::BadSignature(
            "no published key has the token's kid",
        ))?;
    let key =
        jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|_| EventRejection::KeysUnavailable)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[issuer]);
    validation.validate_exp = false;
    validation.required_spec_claims = ["iss", "aud"].iter().map(|c| (*c).to_owned()).collect();
    let claims = jsonwebtoken::decode::<SecurityEvent>(token, &key, &validation)
        .map_err(|_| {
            EventRejection::BadSignature("the token's signature, issuer or audience is wrong")
        })?
        .claims;
    let notices = claims
        .events
        .iter()
        .map(|(uri, event)| risc_notice(&claims, uri, event))
        .collect();
    Ok(Receipt::Notices(notices))
}

/// One event of a security event token: `tokens-revoked` and `account-disabled` end the grant
/// (the account's tokens no longer work); `token-revoked` names one refresh token by a prefix or
/// a hash, not the account, and is matched only when it also carries the account's `sub`;
/// `sessions-revoked`, `verification` and the rest are stored and counted (we hold no Google
/// sign-in session).
fn risc_notice(claims: &SecurityEvent, uri: &str, event: &Value) -> Notice {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    let kind = match name {
        "tokens-revoked" | "account-disabled" | "token-revoked" => NoticeKind::Removal,
        _ => NoticeKind::Other,
    };
    let subject = &event["subject"];
    let mut payload = json!({ "event": uri, "reason": event.get("reason") });
    if name == "token-revoked" {
        payload["token_type"] = subject["token_type"].clone();
        payload["token_identifier_alg"] = subject["token_identifier_alg"].clone();
    }
    Notice {
        kind,
        event_type: name.to_owned(),
        account: discovery::text(subject, "sub").map(NoticeAccount::User),
        platform_id: Some(format!("{}#{name}", claims.jti)),
        occurred_at: claims.iat.and_then(unix_time),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_is_found_in_the_error_details() {
        let body = br#"{"error":{"code":429,"details":[{"errors":[{"details":{"quotaErrorDetails":{"retryDelay":"29.2s"}}}]}]}}"#;
        assert_eq!(GoogleAds.retry_hint(body), Some(30));
        assert_eq!(GoogleAds.retry_hint(b"{}"), None);
    }

    #[test]
    fn a_login_customer_id_is_ten_digits_with_dashes_allowed() {
        assert_eq!(customer_id("123-456-7890").as_deref(), Ok("1234567890"));
        assert!(customer_id("12345").is_err());
        assert!(customer_id("123456789a").is_err());
    }
}
