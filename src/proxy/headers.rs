//! Which headers cross the proxy, both ways, and the credentials it adds on the way out.
//!
//! Out: the caller's headers minus hop-by-hop ones (RFC 9110 §7.6.1, plus any the `Connection`
//! header names), cookies, `Authorization` (the caller's API key), `Host`, `Proxy-*`, forwarding
//! headers and our own `Growth-Engine-*`; then the platform's credentials. Back: the platform's
//! headers minus hop-by-hop ones and `Set-Cookie`.

use hmac::{Hmac, Mac};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH,
};
use http::Method;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::platforms::catalog::PlatformSpec;
use crate::platforms::ProxyAuth;

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the ones it retired) and `Expect`, answered by our own
/// server, never by the platform.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "expect",
];

/// Request headers that describe our edge or carry the caller's own credentials. `x-request-id`
/// is our own request's id (made by the edge, or the caller's adopted as ours): it names a request
/// to us, not the platform's, and forwarded it would hand our internal ids to every platform.
const REQUEST_DROPPED: [&str; 8] = [
    "host",
    "authorization",
    "cookie",
    "forwarded",
    "x-real-ip",
    "developer-token",
    "content-length",
    "x-request-id",
];

/// The prefixes of request headers never forwarded.
const REQUEST_DROPPED_PREFIXES: [&str; 3] = ["growth-engine-", "proxy-", "x-forwarded-"];

/// Response headers never passed back: cookies would land on our domain.
const RESPONSE_DROPPED: [&str; 2] = ["set-cookie", "set-cookie2"];

/// The names the `Connection` header lists (each is hop-by-hop too).
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The caller's headers that may go to the platform. `keep_length` keeps `Content-Length` for a
/// streamed body (the client computes it for a buffered one).
pub(crate) fn outgoing(caller: &HeaderMap, keep_length: bool) -> HeaderMap {
    let named = connection_named(caller);
    let mut out = HeaderMap::with_capacity(caller.len());
    for (name, value) in caller {
        let lower = name.as_str();
        let dropped = HOP_BY_HOP.contains(&lower)
            || (REQUEST_DROPPED.contains(&lower) && !(keep_length && lower == "content-length"))
            || REQUEST_DROPPED_PREFIXES
                .iter()
                .any(|p| lower.starts_with(p))
            || named.iter().any(|n| n == lower);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The platform's headers that may go back to the caller.
pub(crate) fn incoming(platform: &HeaderMap) -> HeaderMap {
    let named = connection_named(platform);
    let mut out = HeaderMap::with_capacity(platform.len());
    for (name, value) in platform {
        let lower = name.as_str();
        let dropped = HOP_BY_HOP.contains(&lower)
            || RESPONSE_DROPPED.contains(&lower)
            || lower.starts_with("proxy-")
            || named.iter().any(|n| n == lower);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// What an HTTP client adds when the caller did not say: `Accept: */*`, and `Content-Length: 0` on
/// a POST, PUT or PATCH without a body (Google's front ends answer 411 to one without it).
pub(crate) fn defaults(headers: &mut HeaderMap, method: &Method, empty_body: bool) {
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    if empty_body && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
}

/// The settings-side values some platforms want besides the token and the spec's secret API
/// headers.
#[derive(Clone, Debug, Default)]
pub struct ExtraCredentials {
    /// `GOOGLE_ADS_LOGIN_CUSTOMER_ID`.
    pub google_ads_login_customer_id: Option<String>,
}

/// The token one proxied call is made with, and the Meta proof computed for it.
pub(crate) struct Credential {
    /// The access token (the user's, or a Meta Page's).
    pub token: SecretString,
    /// Meta's `appsecret_proof` for that token.
    pub proof: Option<SecretString>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

impl Credential {
    /// The credential for `token`, with `appsecret_proof` when the platform takes one.
    pub fn new(auth: ProxyAuth, token: SecretString, app_secret: Option<&SecretString>) -> Self {
        let proof = match (auth, app_secret) {
            (ProxyAuth::MetaGraph, Some(secret)) => Some(appsecret_proof(secret, &token)),
            _ => None,
        };
        Self { token, proof }
    }
}

/// hex HMAC-SHA256(key = app secret, message = access token) [M17].
fn appsecret_proof(secret: &SecretString, token: &SecretString) -> SecretString {
    // HMAC takes keys of any length: the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return SecretString::from(String::new());
    };
    mac.update(token.expose_secret().as_bytes());
    SecretString::from(hex::encode(mac.finalize().into_bytes()))
}

/// Adds the platform's credentials to outgoing headers (the Meta proof goes in the URL): the token,
/// the spec's secret API headers (Google Ads' `developer-token`, when set) and Google Ads' default
/// `login-customer-id`.
pub(crate) fn inject(
    headers: &mut HeaderMap,
    spec: &PlatformSpec,
    credential: &Credential,
    extra: &ExtraCredentials,
) {
    if let Ok(mut value) =
        HeaderValue::from_str(&format!("Bearer {}", credential.token.expose_secret()))
    {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    for (name, secret) in &spec.api_headers {
        if let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(secret.expose_secret()),
        ) {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    if spec.proxy_auth != ProxyAuth::GoogleAds {
        return;
    }
    // The caller may address another manager account; ours is only the default.
    let login = HeaderName::from_static("login-customer-id");
    if !headers.contains_key(&login) {
        if let Some(Ok(value)) = extra
            .google_ads_login_customer_id
            .as_deref()
            .map(HeaderValue::from_str)
        {
            headers.insert(login, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_cookies_and_our_headers_stay_behind() {
        let mut caller = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer api-key"),
            ("cookie", "session=1"),
            ("connection", "close, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("growth-engine-store", "shop"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("accept", "application/json"),
            ("content-length", "12"),
            ("x-request-id", "3f1c"),
        ] {
            caller.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let out = outgoing(&caller, false);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
        assert!(outgoing(&caller, true).contains_key("content-length"));
    }

    #[test]
    fn meta_gets_a_proof_per_token_and_google_its_headers() {
        let secret = SecretString::from("app-secret".to_owned());
        let a = Credential::new(
            ProxyAuth::MetaGraph,
            "token-a".to_owned().into(),
            Some(&secret),
        );
        let b = Credential::new(
            ProxyAuth::MetaGraph,
            "token-b".to_owned().into(),
            Some(&secret),
        );
        let proof = |c: &Credential| c.proof.as_ref().map(|p| p.expose_secret().to_owned());
        assert_ne!(proof(&a), proof(&b));
        assert_eq!(proof(&a).map(|p| p.len()), Some(64));

        let extra = ExtraCredentials {
            google_ads_login_customer_id: Some("1234567890".into()),
        };
        let catalog = crate::platforms::catalog::Catalog::resolve(
            &std::collections::BTreeMap::new(),
            &[],
            None,
        );
        let mut spec = catalog.find("google").expect("built in").clone();
        spec.api_headers
            .push(("developer-token", "dev-token".to_owned().into()));
        let mut headers = HeaderMap::new();
        let google = Credential::new(ProxyAuth::GoogleAds, "tok".to_owned().into(), None);
        inject(&mut headers, &spec, &google, &extra);
        assert_eq!(headers["authorization"], "Bearer tok");
        assert_eq!(headers["developer-token"], "dev-token");
        assert!(headers["developer-token"].is_sensitive());
        assert_eq!(headers["login-customer-id"], "1234567890");
    }
}
