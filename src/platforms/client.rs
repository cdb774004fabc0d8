//! Calls to a platform: code exchange, refresh, user info and revocation, each shaped by the
//! platform's [`PlatformSpec`], and the [`PlatformHttp`] calls the platforms' behaviours make.
//!
//! These requests are built by hand over one shared `reqwest` client rather than with the `oauth2`
//! crate's client, because the catalog's platforms rename parameters (`client_key`), use `GET` for the
//! token endpoint (Meta) and wrap responses (`data.user`), which `oauth2`'s typed client cannot
//! express without a type per platform. Redirects are never followed (RFC 6749 §5 responses are
//! direct), and every call is bounded by `HTTP_TIMEOUT_SECONDS`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::error::{scrub, PlatformError};
use super::platform::PublishHttp;
use super::platform::{
    AccountInfo, ClientAuth, ErrorShape, PlatformHttp, PlatformSpec, Revocation, TokenGrant,
    TokenMethod,
};
use super::publish::{ApiAnswer, ApiAuth, ApiBody, ApiRequest, CallFailure};
use crate::domain::TokenSet;
use crate::metrics::Metrics;

/// What the platform's identity endpoint said of an access token (the liveness probe's question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The token works.
    Alive,
    /// The platform says the token is dead, as its API says it
    /// ([`Platform::is_dead_token`](super::platform::Platform::is_dead_token)).
    Dead,
    /// The platform refused for another reason (a missing scope, an odd answer): safe text.
    Refused(String),
    /// The platform or the network failed (5xx, 429, timeout): safe text.
    Unavailable(String),
    /// The platform has no identity endpoint to ask.
    Unsupported,
}

/// What revocation achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// The platform confirmed the revocation.
    Revoked,
    /// The platform offers none; the text says what the merchant can do.
    Unsupported(String),
    /// The platform was asked and failed; the reason is safe to show.
    Failed(String),
}

/// What revoking one token achieved: `token` is `access_token` or `refresh_token`, `revoked` whether
/// the platform confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRevocation {
    /// Which token.
    pub token: &'static str,
    /// Whether the platform confirmed its revocation.
    pub revoked: bool,
}

/// The overall outcome and, per token attempted, what the platform said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationReport {
    /// `Revoked` only if every token attempted was revoked.
    pub outcome: RevocationOutcome,
    /// Each token attempted, in order.
    pub tokens: Vec<TokenRevocation>,
}

/// The HTTP client every platform call goes through.
#[derive(Debug, Clone)]
pub struct PlatformClient {
    http: reqwest::Client,
    metrics: Metrics,
    max_response_bytes: usize,
}

/// The largest platform answer read when none is configured: token and account answers are a
/// few kilobytes, Meta's with pages a few hundred at most.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

impl PlatformClient {
    /// A client with the given per-call timeout that never follows redirects.
    pub fn new(timeout: Duration, metrics: Metrics) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("growth-engine/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            metrics,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// Refuses platform answers longer than `bytes` (`PLATFORM_MAX_RESPONSE_BYTES`).
    pub(crate) fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Exchanges an authorization code for tokens (RFC 6749 §4.1.3).
    pub(crate) async fn exchange_code(
        &self,
        spec: &PlatformSpec,
        code: &SecretString,
        redirect_uri: &str,
        pkce_verifier: Option<&SecretString>,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        let mut params = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.expose_secret().to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
        ];
        if let Some(verifier) = pkce_verifier {
            params.push(("code_verifier", verifier.expose_secret().to_owned()));
        }
        if spec.token_method == TokenMethod::GetQuery {
            // Meta's manual flow takes no grant_type on the code exchange.
            params.retain(|(name, _)| *name != "grant_type");
        }
        let body = self.token_call(spec, params).await?;
        parse_grant(spec, &body, now)
    }

    /// Renews an access token with a refresh token (RFC 6749 §6).
    pub async fn refresh(
        &self,
        spec: &PlatformSpec,
        refresh_token: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        let params = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
        ];
        let body = self.token_call(spec, params).await?;
        parse_grant(spec, &body, now)
    }

    /// Calls the token endpoint with the grant's parameters and the platform's client
    /// authentication, and times the call.
    async fn token_call(
        &self,
        spec: &PlatformSpec,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<Value, PlatformError> {
        let credentials = spec
            .credentials
            .as_ref()
            .ok_or_else(|| PlatformError::NotConfigured(spec.id.clone()))?;
        let mut request = match spec.token_method {
            TokenMethod::GetQuery => self.http.get(spec.token_url.clone()),
            TokenMethod::PostForm => self.http.post(spec.token_url.clone()),
        };
        request = authenticate(spec, request, &mut params, credentials);
        let grant_type = params
            .iter()
            .find(|(name, _)| *name == "grant_type")
            .map_or("authorization_code", |(_, value)| value.as_str())
            .to_owned();
        request = match spec.token_method {
            TokenMethod::GetQuery => request.query(&params),
            TokenMethod::PostForm => request.form(&params),
        };
        let started = std::time::Instant::now();
        let result = self
            .send_json(spec, request.header("Accept", "application/json"))
            .await;
        self.metrics.token_call(
            spec.id.as_str(),
            &grant_type,
            started.elapsed().as_secs_f64(),
        );
        result
    }

    /// Sends a request and returns its JSON body, turning transport failures, HTTP errors and the
    /// platform's error shapes into [`PlatformError`].
    async fn send_json(
        &self,
        spec: &PlatformSpec,
        request: RequestBuilder,
    ) -> Result<Value, PlatformError> {
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(spec, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Err(PlatformError::Unavailable {
                platform: spec.id.clone(),
                detail: format!("HTTP {}", status.as_u16()),
                retry_after,
            });
        }
        // Read after the status check, so that an unavailable platform's long error page is not
        // read at all and stays a retryable `PlatformUnavailable`.
        let body = self.read_body(spec, response).await?;
        let text = String::from_utf8_lossy(&body);
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if let Some(error) = body.as_ref().and_then(|b| platform_error(spec, status, b)) {
            return Err(error);
        }
        match body {
            Some(body) if status.is_success() => Ok(body),
            Some(_) => Err(PlatformError::Rejected {
                platform: spec.id.clone(),
                code: format!("http_{}", status.as_u16()),
                description: String::new(),
                permanent: status.is_client_error(),
                revoked: false,
            }),
            None if status.is_success() && text.trim().is_empty() => Ok(Value::Null),
            None => Err(PlatformError::BadResponse {
                platform: spec.id.clone(),
                detail: format!("HTTP {} with a body that is not JSON", status.as_u16()),
            }),
        }
    }

    /// Reads a body chunk by chunk, refusing it as a bad answer once it passes
    /// `max_response_bytes`: a platform (or whatever answers at its URL) cannot make us buffer an
    /// unbounded body.
    async fn read_body(
        &self,
        spec: &PlatformSpec,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, PlatformError> {
        let limit = self.max_response_bytes;
        let status = response.status().as_u16();
        let too_large = || PlatformError::BadResponse {
            platform: spec.id.clone(),
            detail: format!("HTTP {status} with a body larger than {limit} bytes"),
        };
        if response
            .content_length()
            .is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(spec, &e))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Asks the user-info endpoint (the identity call made at connect) whether `access_token`
    /// still works, telling a dead token from an outage and from any other refusal.
    pub(crate) async fn probe_identity(
        &self,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Identity {
        let Some(url) = spec.userinfo_url.clone() else {
            return Identity::Unsupported;
        };
        let request = self.http.get(url).query(spec.account.query);
        let request = with_token(spec, request, access_token).header("Accept", "application/json");
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Identity::Unavailable(transport_error(spec, &error).to_string()),
        };
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Identity::Unavailable(format!("HTTP {}", status.as_u16()));
        }
        let body = match self.read_body(spec, response).await {
            Ok(body) => body,
            Err(error) => return Identity::Refused(error.to_string()),
        };
        if spec.behaviour.is_dead_token(status.as_u16(), &body) {
            return Identity::Dead;
        }
        if !status.is_success() {
            return Identity::Refused(format!("HTTP {}", status.as_u16()));
        }
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            return Identity::Refused("an answer that is not JSON".into());
        };
        // A platform may answer a dead token inside a 200 envelope too.
        match spec.behaviour.check_account_response(spec, &json) {
            Ok(()) => Identity::Alive,
            Err(PlatformError::Rejected {
                permanent: true, ..
            }) => Identity::Dead,
            Err(error) => Identity::Refused(error.to_string()),
        }
    }

    /// Revokes the grant at the platform, where the platform allows it, reporting each token.
    pub async fn revoke(&self, spec: &PlatformSpec, tokens: &TokenSet) -> RevocationReport {
        let unsupported = |text: String| RevocationReport {
            outcome: RevocationOutcome::Unsupported(text),
            tokens: Vec::new(),
        };
        let mut attempted = Vec::new();
        let result = match (&spec.revocation, &spec.revoke_url) {
            (Revocation::Unsupported(text), _) => return unsupported((*text).to_owned()),
            (_, None) => {
                return unsupported(
                    "This platform has no revocation endpoint; the tokens were deleted here."
                        .into(),
                )
            }
            (Revocation::DeleteWithAccessToken, Some(url)) => {
                let request = self.http.request(Method::DELETE, url.clone());
                let request = with_token(spec, request, &tokens.access_token);
                let result = self.send_json(spec, request).await.map(|_| ());
                attempted.push(TokenRevocation {
                    token: "access_token",
                    revoked: result.is_ok(),
                });
                result
            }
            (Revocation::Form { authenticate, hint }, Some(url)) => {
                let form = RevocationForm {
                    url,
                    authenticate: *authenticate,
                    hint: *hint,
                };
                self.revoke_by_form(spec, &form, tokens, &mut attempted)
                    .await
            }
        };
        RevocationReport {
            outcome: match result {
                Ok(()) => RevocationOutcome::Revoked,
                Err(error) => RevocationOutcome::Failed(error.to_string()),
            },
            tokens: attempted,
        }
    }

    /// RFC 7009 revocation. Platforms that take a type hint get the refresh token first, which
    /// ends the whole grant (§2.1), then the access token. The others revoke by access token: some
    /// endpoints take only that, and some revoke the refresh token with it (providers.md T1, G1).
    async fn revoke_by_form(
        &self,
        spec: &PlatformSpec,
        form: &RevocationForm<'_>,
        tokens: &TokenSet,
        attempted: &mut Vec<TokenRevocation>,
    ) -> Result<(), PlatformError> {
        let mut outcome = Ok(());
        let mut targets = vec![("access_token", &tokens.access_token)];
        if let (true, Some(refresh)) = (form.hint, &tokens.refresh_token) {
            targets.insert(0, ("refresh_token", refresh));
        }
        for (kind, token) in targets {
            let mut params = vec![("token", token.expose_secret().to_owned())];
            if form.hint {
                params.push(("token_type_hint", kind.to_owned()));
            }
            let mut request = self.http.post(form.url.clone());
            if let (true, Some(credentials)) = (form.authenticate, &spec.credentials) {
                request = authenticate(spec, request, &mut params, credentials);
            }
            let result = self
                .send_json(spec, request.form(&params))
                .await
                .map(|_| ());
            attempted.push(TokenRevocation {
                token: kind,
                revoked: result.is_ok(),
            });
            match result {
                // One successful revocation of the refresh token ends the grant.
                Ok(()) if kind == "refresh_token" => break,
                Ok(()) => {}
                // The first failure is the one reported: a later success of another token does
                // not make the grant revoked.
                Err(error) => {
                    if outcome.is_ok() {
                        outcome = Err(error);
                    }
                }
            }
        }
        outcome
    }

    /// A request with the token and the JSON `Accept`, sent, its JSON answer read.
    async fn send_with_token(
        &self,
        spec: &PlatformSpec,
        request: RequestBuilder,
        access_token: &SecretString,
        api_headers: bool,
    ) -> Result<Value, PlatformError> {
        let mut request = with_token(spec, request, access_token);
        if api_headers {
            for header in &spec.api_headers {
                request = request.header(header.name, header.value.expose_secret());
            }
        }
        self.send_json(spec, request.header("Accept", "application/json"))
            .await
    }
}

/// The user's token on a request: in the `Authorization` header, with the platform's proof of it
/// in the query where the platform takes one (an app that requires it refuses every call without).
fn with_token(
    spec: &PlatformSpec,
    request: RequestBuilder,
    access_token: &SecretString,
) -> RequestBuilder {
    let request = request.bearer_auth(access_token.expose_secret());
    match spec.behaviour.token_proof(spec, access_token) {
        Some((name, proof)) => request.query(&[(name, proof.expose_secret())]),
        None => request,
    }
}

/// Where and how one platform takes RFC 7009 revocations.
struct RevocationForm<'a> {
    url: &'a Url,
    authenticate: bool,
    hint: bool,
}

/// The platform's client authentication on a request: HTTP Basic, or the id and secret added to
/// `params`.
fn authenticate(
    spec: &PlatformSpec,
    request: RequestBuilder,
    params: &mut Vec<(&'static str, String)>,
    credentials: &super::settings::ClientCredentials,
) -> RequestBuilder {
    match spec.client_auth {
        ClientAuth::Basic => {
            basic_auth(request, &credentials.client_id, &credentials.client_secret)
        }
        ClientAuth::RequestBody => {
            params.push((spec.client_id_param, credentials.client_id.clone()));
            params.push((
                "client_secret",
                credentials.client_secret.expose_secret().to_owned(),
            ));
            request
        }
    }
}

#[async_trait]
impl PlatformHttp for PlatformClient {
    async fn fetch_account(
        &self,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AccountInfo, PlatformError> {
        let Some(url) = spec.userinfo_url.clone() else {
            return Ok(AccountInfo::default());
        };
        let body = self
            .get_with_token(spec, url, access_token, spec.account.query)
            .await?;
        spec.behaviour.check_account_response(spec, &body)?;
        let root = spec
            .account
            .wrapper
            .iter()
            .try_fold(&body, |value, key| value.get(key))
            .unwrap_or(&Value::Null);
        Ok(AccountInfo {
            id: first_string(root, spec.account.id),
            name: first_string(root, spec.account.name),
            picture: first_string(root, spec.account.picture),
        })
    }

    async fn token_grant(
        &self,
        spec: &PlatformSpec,
        params: Vec<(&'static str, String)>,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        let body = self.token_call(spec, params).await?;
        parse_grant(spec, &body, now)
    }

    /// Always in the `Authorization` header, never in the URL, even where the platform also
    /// accepts a query parameter (RFC 6750 §2.1): a URL is one log line away from a leak.
    async fn get_with_token(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
        query: &[(&str, &str)],
    ) -> Result<Value, PlatformError> {
        let request = self.http.get(url).query(query);
        self.send_with_token(spec, request, access_token, false)
            .await
    }

    /// The URL is never logged and never reaches an error: [`transport_error`] describes only the
    /// failure's kind.
    async fn get_with_secret_query(
        &self,
        spec: &PlatformSpec,
        url: Url,
        query: &[(&str, &SecretString)],
    ) -> Result<Value, PlatformError> {
        let query: Vec<(&str, &str)> = query
            .iter()
            .map(|(name, value)| (*name, value.expose_secret()))
            .collect();
        let request = self.http.get(url).query(&query);
        self.send_json(spec, request.header("Accept", "application/json"))
            .await
    }

    async fn get_api(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
        query: &[(&str, &str)],
    ) -> Result<Value, PlatformError> {
        let request = self.http.get(url).query(query);
        self.send_with_token(spec, request, access_token, true)
            .await
    }

    async fn post_api(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
        body: &Value,
    ) -> Result<Value, PlatformError> {
        let request = self.http.post(url).json(body);
        self.send_with_token(spec, request, access_token, true)
            .await
    }

    async fn delete_api(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
    ) -> Result<Value, PlatformError> {
        let request = self.http.delete(url);
        self.send_with_token(spec, request, access_token, true)
            .await
    }
}

/// HTTP Basic with the client id and secret form-encoded first, as RFC 6749 §2.3.1 requires.
fn basic_auth(request: RequestBuilder, client_id: &str, secret: &SecretString) -> RequestBuilder {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    request.basic_auth(encode(client_id), Some(encode(secret.expose_secret())))
}

fn transport_error(spec: &PlatformSpec, error: &reqwest::Error) -> PlatformError {
    // reqwest's Display can include the URL, which for Meta carries tokens in the query: describe the
    // failure's kind only.
    let detail = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "response body unreadable"
    } else {
        "request failed"
    };
    PlatformError::Unavailable {
        platform: spec.id.clone(),
        detail: detail.into(),
        retry_after: None,
    }
}

/// Recognises the platform's error body, whatever the HTTP status.
fn platform_error(spec: &PlatformSpec, status: StatusCode, body: &Value) -> Option<PlatformError> {
    let (code, description) = match spec.errors {
        ErrorShape::ErrorObject => {
            let error = body.get("error")?.as_object()?;
            let code = error.get("code").map(value_text).unwrap_or_default();
            let subcode = error.get("error_subcode").map(value_text);
            let code = match subcode {
                Some(sub) if !sub.is_empty() => format!("{code}/{sub}"),
                _ => code,
            };
            let message = error.get("message").map(value_text).unwrap_or_default();
            (code, message)
        }
        ErrorShape::CodeMessage if !status.is_success() => {
            let code = body.get("code").map(value_text)?;
            (
                code,
                body.get("message").map(value_text).unwrap_or_default(),
            )
        }
        ErrorShape::CodeMessage => return None,
        ErrorShape::Rfc6749 => {
            let code = body.get("error")?.as_str()?.to_owned();
            let description = body
                .get("error_description")
                .map(value_text)
                .unwrap_or_default();
            (code, description)
        }
    };
    let lowered = description.to_ascii_lowercase();
    let revoked = lowered.contains("revoked")
        || lowered.contains("deauthorized")
        || lowered.contains("has not authorized");
    // Permanent means the merchant's grant is dead. A rejected client (bad secret, missing Basic
    // header: `invalid_client`, `unauthorized_client`, Pinterest's 401) is the operator's to fix and
    // must not expire every connection at once, so it counts as transient.
    let permanent = match spec.errors {
        // Graph: 190 is an invalid or expired token, whatever the subcode; 102 a dead session.
        ErrorShape::ErrorObject => code.starts_with("190") || code.starts_with("102"),
        ErrorShape::Rfc6749 => {
            matches!(
                code.as_str(),
                "invalid_grant" | "invalid_token" | "access_denied"
            ) || (code == "invalid_request" && lowered.contains("token"))
        }
        ErrorShape::CodeMessage => status.is_client_error() && status != StatusCode::UNAUTHORIZED,
    };
    Some(PlatformError::Rejected {
        platform: spec.id.clone(),
        code: scrub(&code),
        description: scrub(&description),
        permanent,
        revoked,
    })
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn first_string(root: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| {
        let value = path.iter().try_fold(root, |value, key| value.get(key))?;
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    })
}

/// Reads a number of seconds that some platforms send as a string.
fn seconds(value: Option<&Value>) -> Option<i64> {
    match value? {
        // Some platforms send 3600.0; `as` saturates and NaN becomes 0 (then ignored).
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `now` plus a platform-given number of seconds; nonsense (zero, negative) means "not said", and a
/// lifetime beyond ten years is taken as ten years rather than overflowing the date arithmetic.
fn after(now: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
    const TEN_YEARS: i64 = 10 * 366 * 24 * 3600;
    (seconds > 0).then(|| now + chrono::Duration::seconds(seconds.min(TEN_YEARS)))
}

/// Maps a token response (RFC 6749 §5.1, and each platform's variant of it) onto a [`TokenGrant`].
fn parse_grant(
    spec: &PlatformSpec,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<TokenGrant, PlatformError> {
    let bad = |detail: &str| PlatformError::BadResponse {
        platform: spec.id.clone(),
        detail: detail.into(),
    };
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("token response without access_token"))?;
    let refresh_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|t| SecretString::from(t.to_owned()));
    let expires_at = seconds(body.get("expires_in")).and_then(|s| after(now, s));
    let refresh_expires_at = seconds(
        body.get("refresh_expires_in")
            .or_else(|| body.get("refresh_token_expires_in")),
    )
    .and_then(|s| after(now, s));
    // Requests join scopes with the platform's separator, but responses vary (Pinterest answers with
    // spaces after being asked with commas): accept either.
    let scope_text = body.get("scope").and_then(Value::as_str);
    let scopes: Vec<String> = scope_text
        .map(|text| {
            text.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(TokenGrant {
        tokens: TokenSet {
            access_token: SecretString::from(access_token.to_owned()),
            refresh_token,
            token_type: body
                .get("token_type")
                .and_then(Value::as_str)
                .unwrap_or("Bearer")
                .to_owned(),
            expires_at,
            issued_at: Some(now),
            refresh_expires_at,
            scopes,
            extra: Default::default(),
        },
        scopes_reported: scope_text.is_some(),
        account_hint: body
            .get("open_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[async_trait]
impl PublishHttp for PlatformClient {
    async fn call(
        &self,
        spec: &PlatformSpec,
        request: ApiRequest,
        token: &SecretString,
    ) -> Result<ApiAnswer, CallFailure> {
        let mut builder = self.http.request(request.method, request.url);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if request.auth == ApiAuth::Token {
            builder = with_token(spec, builder, token);
            for header in &spec.api_headers {
                builder = builder.header(header.name, header.value.expose_secret());
            }
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match request.body {
            ApiBody::Empty => builder,
            ApiBody::Json(value) => builder
                .header("Content-Type", "application/json; charset=UTF-8")
                .body(value.to_string()),
            ApiBody::Form(fields) => builder.form(&fields),
            ApiBody::Bytes {
                content_type,
                bytes,
            } => builder.header("Content-Type", content_type).body(bytes),
            ApiBody::Multipart { fields, file } => {
                let (field, file_name, content_type, bytes) = file;
                let part = reqwest::multipart::Part::stream(bytes)
                    .file_name(file_name)
                    .mime_str(&content_type)
                    .map_err(|_| CallFailure::NotSent("unusable media type".to_owned()))?;
                let mut form = reqwest::multipart::Form::new();
                for (name, value) in fields {
                    form = form.text(name, value);
                }
                builder.multipart(form.part(field, part))
            }
        };
        let response = builder
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|error| call_failure(spec, &error))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self.read_body(spec, response).await.map_err(|error| {
            // The platform answered: its status says whether it accepted; only the body is lost.
            CallFailure::AnswerLost(error.to_string())
        })?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(ApiAnswer {
            status,
            headers,
            body,
        })
    }
}

/// A transport failure of a publishing call: a connection that could not be made sent nothing;
/// anything later (a timeout, a reset) may have delivered the request.
fn call_failure(spec: &PlatformSpec, error: &reqwest::Error) -> CallFailure {
    let detail = transport_error(spec, error).to_string();
    if error.is_connect() {
        CallFailure::NotSent(detail)
    } else {
        CallFailure::AnswerLost(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_lifetimes_neither_panic_nor_count() {
        let now = Utc::now();
        assert!(after(now, 0).is_none());
        assert!(after(now, -5).is_none());
        let far = after(now, i64::MAX).expect("clamped");
        assert!(far - now <= chrono::Duration::days(3700));
        assert_eq!(seconds(Some(&serde_json::json!("3600"))), Some(3600));
        assert_eq!(seconds(Some(&serde_json::json!(3600.0))), Some(3600));
        assert!(after(now, seconds(Some(&serde_json::json!(1e300))).unwrap_or(0)).is_some());
    }
}
