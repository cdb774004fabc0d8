//! What the simulated token and revocation endpoints share: reading the request (form body, query,
//! HTTP Basic, bearer header), checking HTTP Basic client credentials, and the small JSON helpers
//! every platform module answers with.
//!
//! The platform modules decide which of these a platform accepts and how a refusal is worded;
//! nothing here writes an error body.

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::state::{random_string, ClientCheck, Simulator};

/// A request to a token or revocation endpoint, parsed once.
pub(crate) struct TokenCall {
    /// Whether the body was declared `application/x-www-form-urlencoded`.
    pub(crate) form_encoded: bool,
    /// Credentials from an `Authorization: Basic` header that decoded cleanly.
    pub(crate) basic: Option<BasicCredentials>,
    /// Whether any `Authorization` header was present (even an undecodable one).
    pub(crate) has_authorization_header: bool,
    body: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

// Parameters carry secrets, codes and tokens: only their names are printed.
impl std::fmt::Debug for TokenCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("TokenCall")
            .field("form_encoded", &self.form_encoded)
            .field("basic", &self.basic)
            .field("has_authorization_header", &self.has_authorization_header)
            .field("body_params", &names(&self.body))
            .field("query_params", &names(&self.query))
            .finish()
    }
}

impl TokenCall {
    /// Parses headers, the raw query and the body; the body counts only when it is form-encoded.
    pub(crate) fn parse(headers: &HeaderMap, query: Option<&str>, body: &Bytes) -> Self {
        let form_encoded = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let body = if form_encoded {
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
        } else {
            Vec::new()
        };
        let query = query
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .unwrap_or_default();
        Self {
            form_encoded,
            basic: basic_credentials(headers),
            has_authorization_header: headers.contains_key(AUTHORIZATION),
            body,
            query,
        }
    }

    /// A parameter of the form body.
    pub(crate) fn body(&self, name: &str) -> Option<&str> {
        find(&self.body, name)
    }

    /// A parameter of the form body or, failing that, of the query string.
    pub(crate) fn body_or_query(&self, name: &str) -> Option<&str> {
        self.body(name).or_else(|| find(&self.query, name))
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A client id and secret from an HTTP Basic header.
#[derive(Clone)]
pub(crate) struct BasicCredentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<BasicCredentials> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (client_id, client_secret) = decoded.split_once(':')?;
    Some(BasicCredentials {
        client_id: client_id.to_owned(),
        client_secret: client_secret.to_owned(),
    })
}

/// Undoes the `application/x-www-form-urlencoded` encoding RFC 6749 §2.3.1 asks clients to apply to
/// both halves of Basic credentials; `None` when the value is not validly encoded.
fn form_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The bearer token of an `Authorization: Bearer` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Checks HTTP Basic credentials, read raw or form-decoded: RFC 6749 §2.3.1 asks clients to
/// form-encode both halves, most do not, and either reading is accepted.
pub(crate) fn check_basic(
    sim: &Simulator,
    platform: &str,
    basic: &BasicCredentials,
) -> ClientCheck {
    let raw = sim.check_client(platform, &basic.client_id, &basic.client_secret);
    if raw == ClientCheck::Valid {
        return raw;
    }
    match (
        form_decode(&basic.client_id),
        form_decode(&basic.client_secret),
    ) {
        (Some(id), Some(secret)) => sim.check_client(platform, &id, &secret),
        _ => raw,
    }
}

/// Refuses a request with `response`. Boxed because a `Response` is large and these errors are the
/// cold path of every validation helper.
pub(crate) fn reject<T>(response: Response) -> Result<T, Box<Response>> {
    Err(Box::new(response))
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// A random request identifier, as platforms put in error bodies for support requests.
pub(crate) fn trace_id() -> String {
    random_string(24)
}

/// Joins scopes for a token response.
pub(crate) fn join_scopes(scopes: &[String], separator: &str) -> String {
    scopes.join(separator)
}

/// A response whose body fails before its first byte. hyper buffers a response's head until the
/// body yields, and a body error ends the connection with the buffer unsent: the caller sees the
/// connection close with no answer at all (`connection closed before message completed`), as the
/// sandbox's own test checks on a real socket.
pub(crate) fn lost_answer() -> Response {
    let body = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("the answer is lost"))
    });
    Response::new(axum::body::Body::from_stream(body))
}
