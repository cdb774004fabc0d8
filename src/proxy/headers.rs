//! Which headers cross the proxy, both ways, and the credentials it adds on the way out.
//!
//! Out: the caller's headers minus hop-by-hop ones (RFC 9110 §7.6.1, plus any the `Connection`
//! header names), cookies, `Authorization` (the caller's API key), `Host`, `Proxy-*`, forwarding
//! headers and our own `Growth-Engine-*`; then the platform's credentials. Back: the platform's
//! headers minus hop-by-hop ones and `Set-Cookie`.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH,
};
use http::Method;
use secrecy::{ExposeSecret, SecretString};

use crate::platforms::PlatformSpec;

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

/// Request headers that describe our edge or carry the caller's own credentials.
const REQUEST_DROPPED: [&str; 7] = [
    "host",
    "authorization",
    "cookie",
    "forwarded",
    "x-real-ip",
    "developer-token",
    "content-length",
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

/// The token one proxied call is made with, and the proof of possession the platform wants with
/// it.
pub(crate) struct Credential {
    /// The access token (the user's, or a page's).
    pub token: SecretString,
    /// The platform's proof for that token (a query parameter's name and value).
    pub proof: Option<(&'static str, SecretString)>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

impl Credential {
    /// The credential for `token`, with the platform's proof when it takes one.
    pub fn new(spec: &PlatformSpec, token: SecretString) -> Self {
        let proof = spec.behaviour.token_proof(spec, &token);
        Self { token, proof }
    }
}

/// Adds the platform's credentials to outgoing headers (a token proof goes in the URL): the token,
/// the platform's secret API headers, and its other API headers where the caller sent none (the
/// caller may address another account, or pin another version).
pub(crate) fn inject(headers: &mut HeaderMap, spec: &PlatformSpec, credential: &Credential) {
    if let Ok(mut value) =
        HeaderValue::from_str(&format!("Bearer {}", credential.token.expose_secret()))
    {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    for header in &spec.api_headers {
        let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_str(header.value.expose_secret()),
        ) else {
            continue;
        };
        if header.secret {
            value.set_sensitive(true);
            headers.insert(name, value);
        } else if !headers.contains_key(&name) {
            headers.insert(name, value);
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
    fn a_proof_is_computed_per_token_and_api_headers_are_added() {
        let catalog =
            crate::platforms::Catalog::resolve(&std::collections::BTreeMap::new(), &[], None);
        // A spec whose platform proves tokens (HMAC-SHA256 keyed with the client secret), with a
        // client secret set: the vector is Python's hmac.new(b"app-secret", b"token-a", sha256).
        let mut spec = catalog
            .all()
            .find(|spec| {
                let mut with_secret = (*spec).clone();
                with_secret.credentials = Some(crate::platforms::settings::ClientCredentials {
                    client_id: "id".into(),
                    client_secret: "app-secret".to_owned().into(),
                });
                spec.behaviour
                    .token_proof(&with_secret, &"t".to_owned().into())
                    .is_some()
            })
            .expect("a platform that proves its tokens")
            .clone();
        spec.credentials = Some(crate::platforms::settings::ClientCredentials {
            client_id: "id".into(),
            client_secret: "app-secret".to_owned().into(),
        });
        let a = Credential::new(&spec, "token-a".to_owned().into());
        let b = Credential::new(&spec, "token-b".to_owned().into());
        let proof = |c: &Credential| {
            c.proof
                .as_ref()
                .map(|(n, p)| (*n, p.expose_secret().to_owned()))
        };
        assert_eq!(
            proof(&a),
            Some((
                "appsecret_proof",
                "7bb5dc22898e2601eb36529e66b944a5f6960ef348212b8fe55752de6eb2bdc0".to_owned()
            ))
        );
        assert_ne!(proof(&a), proof(&b));

        spec.api_headers = vec![
            crate::platforms::settings::ApiHeader {
                name: "developer-token",
                value: "dev-token".to_owned().into(),
                secret: true,
            },
            crate::platforms::settings::ApiHeader {
                name: "login-customer-id",
                value: "1234567890".to_owned().into(),
                secret: false,
            },
        ];
        let mut headers = HeaderMap::new();
        headers.insert("developer-token", HeaderValue::from_static("callers"));
        inject(&mut headers, &spec, &a);
        assert_eq!(headers["authorization"], "Bearer token-a");
        assert_eq!(headers["developer-token"], "dev-token");
        assert!(headers["developer-token"].is_sensitive());
        assert_eq!(headers["login-customer-id"], "1234567890");
        let mut chosen = HeaderMap::new();
        chosen.insert("login-customer-id", HeaderValue::from_static("9999999999"));
        inject(&mut chosen, &spec, &a);
        assert_eq!(chosen["login-customer-id"], "9999999999");
    }
}
