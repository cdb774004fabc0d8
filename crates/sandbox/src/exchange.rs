//! What the five simulated token endpoints share: reading the request (form body, query, HTTP
//! Basic), checking client credentials and PKCE verifiers, injecting faults and recording every call.
//!
//! The platform files decide which of these a platform accepts and how a refusal is worded; nothing
//! here writes an error body.

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::spec::Platform;
use super::{
    google, meta, pinterest, tiktok, twitter, CodeRejection, Fault, PkceChallenge, PkceMethod,
    Simulator, TokenRequestRecord,
};

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

/// The outcome of checking a client's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientCheck {
    Valid,
    UnknownClient,
    WrongSecret,
}

impl Simulator {
    /// Checks a client id and secret registered at `platform`, comparing secrets in constant time.
    pub(crate) fn check_client(
        &self,
        platform: Platform,
        client_id: &str,
        client_secret: &str,
    ) -> ClientCheck {
        match self.client(platform, client_id) {
            None => ClientCheck::UnknownClient,
            Some(client) => {
                if bool::from(
                    client
                        .client_secret
                        .as_bytes()
                        .ct_eq(client_secret.as_bytes()),
                ) {
                    ClientCheck::Valid
                } else {
                    ClientCheck::WrongSecret
                }
            }
        }
    }
}

/// Checks HTTP Basic credentials, read raw or form-decoded: RFC 6749 §2.3.1 asks clients to
/// form-encode both halves, most do not, and either reading is accepted.
pub(crate) fn check_basic(
    sim: &Simulator,
    platform: Platform,
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

/// Checks a PKCE verifier against the challenge bound to a code (RFC 7636 §4.6).
pub(crate) fn check_pkce(
    challenge: Option<&PkceChallenge>,
    verifier: Option<&str>,
) -> Result<(), CodeRejection> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(CodeRejection::VerifierUnexpected),
        (Some(_), None) => Err(CodeRejection::VerifierMissing),
        (Some(challenge), Some(verifier)) => {
            // RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            let derived = match challenge.method {
                PkceMethod::Plain => verifier.to_owned(),
                PkceMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            };
            if well_formed && bool::from(derived.as_bytes().ct_eq(challenge.challenge.as_bytes())) {
                Ok(())
            } else {
                Err(CodeRejection::VerifierMismatch)
            }
        }
    }
}

/// Runs a token-endpoint call through the platform's fault (if any), records it, and returns the
/// answer. `answer` holds the platform's rules.
pub(crate) async fn token_endpoint(
    sim: &Simulator,
    platform: Platform,
    call: &TokenCall,
    answer: impl FnOnce(&Simulator, &TokenCall) -> Response,
) -> Response {
    let grant_type = call
        .body_or_query("grant_type")
        .unwrap_or_default()
        .to_owned();
    let (response, faulted) = match sim.fault(platform) {
        None => (answer(sim, call), false),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            (answer(sim, call), false)
        }
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (fault_body(platform, status), true)
        }
        Some(Fault::Garbage) => {
            let response = (
                StatusCode::OK,
                [(CONTENT_TYPE, "text/html; charset=utf-8")],
                "<html>not json",
            )
                .into_response();
            (response, true)
        }
        Some(Fault::RateLimited {
            retry_after_seconds,
        }) => {
            let mut response = fault_body(platform, StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            (response, true)
        }
    };
    let status = response.status();
    sim.record_token_request(
        platform,
        TokenRequestRecord {
            grant_type,
            ok: !faulted && status.is_success(),
            status: status.as_u16(),
        },
    );
    response
}

/// The platform-shaped error body for an injected failure status.
fn fault_body(platform: Platform, status: StatusCode) -> Response {
    match platform {
        Platform::Meta => meta::fault_body(status),
        Platform::TikTok => tiktok::fault_body(status),
        Platform::Google => google::fault_body(status),
        Platform::Pinterest => pinterest::fault_body(status),
        Platform::Twitter => twitter::fault_body(status),
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

/// A random request identifier in the style of TikTok's `log_id` or Meta's `fbtrace_id`.
pub(crate) fn trace_id() -> String {
    super::random_string(24)
}

/// Joins scopes for a token response.
pub(crate) fn join_scopes(scopes: &[String], separator: &str) -> String {
    scopes.join(separator)
}
