//! The authenticated proxy to each platform's API: a caller names a store and a path under the
//! platform's API base, the proxy sends the call with the store's valid token (refreshed on the
//! platform's "token dead" answer, once), and streams the answer back.
//!
//! It owns: building the target URL without letting the path escape the base ([`target`]), the
//! headers that cross it and the credentials it adds ([`headers`]), bodies, their limits and the
//! peek at error answers ([`body`]), the retry rules, and the record of each call ([`observe`]).
//! Tokens come from the lifecycle (`Tokens::access_token`, the same single-flight refresh as
//! the token endpoint); how each platform takes a token and says it is dead comes from the
//! platform layer (`platforms::api`). It knows nothing of HTTP routing: the edge parses the
//! request into a [`ProxyRequest`] and turns a [`ProxyResponse`] or [`ProxyError`] into HTTP.

pub mod body;
mod client;
pub mod error;
pub mod headers;
pub mod memo;
pub mod observe;
pub mod shares;
pub mod target;

use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use http::{Method, StatusCode, Uri};
use secrecy::ExposeSecret;
use url::Url;

use crate::domain::StoreId;
use crate::error::OAuthError;
use crate::lifecycle::Tokens;
use crate::metrics::Metrics;
use crate::platforms::PlatformSpec;
use body::OutgoingBody;
pub use client::BodyStream;
use client::{SendFailure, UpstreamClient};
pub use error::ProxyError;
use headers::Credential;
use observe::CallRecord;

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `PROXY_MAX_BODY_BYTES` (default 10 MiB): the largest request body forwarded.
    pub max_body_bytes: usize,
    /// `PROXY_MAX_RESPONSE_BYTES` (default 50 MiB): the largest platform answer passed back.
    pub max_response_bytes: usize,
    /// Fair shares of the budgets an app's merchants share ([`shares`]).
    pub fair_share: shares::FairShareSettings,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_response_bytes: 50 * 1024 * 1024,
            fair_share: shares::FairShareSettings::default(),
        }
    }
}

/// A call to proxy, as the edge parsed it.
pub struct ProxyRequest {
    /// The platform (the catalog's slug).
    pub platform: String,
    /// `Growth-Engine-Store`.
    pub store_id: StoreId,
    /// `Growth-Engine-Account`: one of the connection's assets (a Meta Page).
    pub account: Option<String>,
    /// The method.
    pub method: Method,
    /// The path under the API base, as sent (still percent-encoded).
    pub path: String,
    /// The raw query string.
    pub query: Option<String>,
    /// The caller's headers (filtered here).
    pub headers: HeaderMap,
    /// The body.
    pub body: BodyStream,
}

/// The platform's answer, to stream back.
pub struct ProxyResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, filtered.
    pub headers: HeaderMap,
    /// Its body, capped.
    pub body: BodyStream,
}

/// The proxy service: a cheap-clone handle (one reference count: the edge clones it per call).
#[derive(Debug, Clone)]
pub struct Proxy(std::sync::Arc<Shared>);

/// What every clone of a [`Proxy`] shares.
#[derive(Debug)]
struct Shared {
    client: UpstreamClient,
    tokens: Tokens,
    settings: ProxySettings,
    metrics: Metrics,
    memo: memo::TokenMemo,
    shares: shares::FairShares,
}

/// Statuses whose body is peeked: "token dead" answers (Meta's 400, everyone's 401) and 429s
/// (Google's retry delay is in the body).
fn worth_peeking(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 429)
}

/// Methods that may be sent again after a broken connection (RFC 9110 §9.2.2; POST and PATCH may
/// have reached the platform and acted).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// The `Content-Length` a message announces.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Where a call goes: its URL under the API base, and the same as a request URI, checked once.
struct Target {
    url: Url,
    uri: Uri,
}

impl Target {
    /// The URI to send with `credential`: with the platform's token proof added when it has one.
    fn uri_for(&self, credential: &Credential) -> Result<Uri, http::uri::InvalidUri> {
        let Some(proof) = &credential.proof else {
            return Ok(self.uri.clone());
        };
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair(proof.0, proof.1.expose_secret());
        Uri::try_from(url.as_str())
    }
}

/// What one attempt gave.
enum Attempt {
    /// An answer to pass back.
    Answer(ProxyResponse),
    /// The token is dead: refresh and send again.
    TokenDead(ProxyResponse),
    /// The connection broke (or the platform was too slow) before an answer.
    Broken(SendFailure),
}

impl Proxy {
    /// The service, with its own HTTP client ([`client`]): redirects never followed (a redirect
    /// could carry the token elsewhere), the platform timeout.
    pub fn new(
        tokens: Tokens,
        settings: ProxySettings,
        timeout: Duration,
        metrics: Metrics,
        shares: shares::FairShares,
    ) -> Result<Self, rustls::Error> {
        let memo = memo::TokenMemo::watching(tokens.core().listings());
        Ok(Self(std::sync::Arc::new(Shared {
            client: UpstreamClient::new(timeout)?,
            tokens,
            settings,
            metrics,
            memo,
            shares,
        })))
    }

    /// Proxies one call: at most one extra send after a forced refresh, and one after a broken
    /// connection for an idempotent method with a buffered body.
    pub async fn forward(&self, request: ProxyRequest) -> Result<ProxyResponse, ProxyError> {
        let started = Instant::now();
        let ProxyRequest {
            platform,
            store_id,
            account,
            method,
            path,
            query,
            headers: caller_headers,
            body: caller_body,
        } = request;
        let (spec, target) = self.target_of(&platform, &path, query.as_deref())?;
        // Decided on this process's view of the fair shares, with no I/O (see `shares`).
        self.0.shares.admit(spec.id.as_str(), store_id.as_str())?;
        let max_body = self.0.settings.max_body_bytes;
        let mut body =
            OutgoingBody::prepare(caller_body, content_length(&caller_headers), max_body)
                .await
                .map_err(|_| ProxyError::BodyTooLarge(max_body))?;
        let outgoing = headers::outgoing(&caller_headers, !body.replayable());
        let mut credential = self
            .credential(spec, &store_id, account.as_deref(), false)
            .await?;
        let (mut refreshed, mut resent) = (false, false);
        let record = |status: Option<u16>| {
            observe::record(
                &self.0.metrics,
                &CallRecord {
                    store: store_id.as_str(),
                    platform: spec.id.as_str(),
                    method: method.as_str(),
                    path: &path,
                    query: query.as_deref(),
                    status,
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                },
            )
        };
        loop {
            let attempt = self
                .attempt(spec, &target, &method, &outgoing, &credential, &mut body)
                .await;
            match attempt {
                Attempt::TokenDead(answer) if !refreshed && body.replayable() => {
                    refreshed = true;
                    match self
                        .credential(spec, &store_id, account.as_deref(), true)
                        .await
                    {
                        Ok(fresh) => credential = fresh,
                        // The refresh marked the connection (EXPIRED/REVOKED): answer like the
                        // token endpoint.
                        Err(ProxyError::Token(OAuthError::NotUsable(status))) => {
                            record(Some(answer.status.as_u16()));
                            return Err(OAuthError::NotUsable(status).into());
                        }
                        // A transient refresh failure: the platform's answer stands.
                        Err(error) => {
                            tracing::warn!(platform = %spec.id, error = %error, "forced refresh failed");
                            record(Some(answer.status.as_u16()));
                            return self.finish(spec, &store_id, answer);
                        }
                    }
                    self.0
                        .metrics
                        .proxy_retry(spec.id.as_str(), "token_refreshed");
                }
                // A timeout is a slow platform, not a broken connection: waiting twice would
                // only double the caller's wait.
                Attempt::Broken(failure)
                    if !resent
                        && !failure.timed_out
                        && idempotent(&method)
                        && body.replayable() =>
                {
                    resent = true;
                    tracing::debug!(platform = %spec.id, error = %failure.message, "retrying after a broken connection");
                    self.0
                        .metrics
                        .proxy_retry(spec.id.as_str(), "connection_broken");
                }
                Attempt::Answer(answer) | Attempt::TokenDead(answer) => {
                    record(Some(answer.status.as_u16()));
                    return self.finish(spec, &store_id, answer);
                }
                Attempt::Broken(failure) => {
                    record(None);
                    if body.over_limit() {
                        return Err(ProxyError::BodyTooLarge(max_body));
                    }
                    if failure.stalled_body {
                        return Err(ProxyError::BodyStalled);
                    }
                    return Err(ProxyError::Unreachable(failure.message));
                }
            }
        }
    }

    /// The platform's spec and the call's URL under its API base.
    fn target_of(
        &self,
        platform: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<(&PlatformSpec, Target), ProxyError> {
        let spec = self
            .0
            .tokens
            .core()
            .catalog()
            .require(platform)
            .map_err(OAuthError::from)?;
        let base =
            (spec.api_base.as_ref()).ok_or_else(|| ProxyError::NoApi(spec.id.to_string()))?;
        let url = target::build(base, path, query)?;
        // What the URL parser accepts but an HTTP request line may not carry.
        let uri =
            Uri::try_from(url.as_str()).map_err(|_| ProxyError::InvalidPath("not a valid URI"))?;
        Ok((spec, Target { url, uri }))
    }

    /// The token to send: the connection's (refreshed first when `force`, at most once per
    /// connection per window: see `lifecycle::refresh`), or, for an account, its page's token
    /// from the sealed set when the connection's asset rows hold that account.
    async fn credential(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        account: Option<&str>,
        force: bool,
    ) -> Result<Credential, ProxyError> {
        let remembered = if force {
            self.0.memo.forget(store_id, &spec.id);
            None
        } else {
            self.0.memo.get(store_id, &spec.id)
        };
        let token = match remembered {
            Some(token) => token,
            None => {
                let ticket = self.0.memo.ticket();
                let issued = if force {
                    self.0
                        .tokens
                        .access_token_after_dead_answer(spec, store_id)
                        .await?
                } else {
                    self.0.tokens.access_token(spec, store_id, false).await?
                };
                let now = self.0.tokens.core().clock().now();
                self.0.memo.put(ticket, store_id, &spec.id, &issued, now);
                issued.access_token
            }
        };
        let Some(account) = account else {
            return Ok(Credential::new(spec, token));
        };
        // Resolved through the connection's asset rows, as the token endpoint does.
        match self.0.tokens.account_token(spec, store_id, account).await {
            Ok((_, Some(page))) => Ok(Credential::new(spec, page)),
            Ok((_, None)) => Ok(Credential::new(spec, token)),
            Err(OAuthError::AssetNotFound) => Err(ProxyError::AccountNotFound(account.to_owned())),
            Err(error) => Err(error.into()),
        }
    }

    /// Sends once and sorts the outcome; peeks at error answers to classify them.
    async fn attempt(
        &self,
        spec: &PlatformSpec,
        target: &Target,
        method: &Method,
        outgoing: &HeaderMap,
        credential: &Credential,
        body: &mut OutgoingBody,
    ) -> Attempt {
        let mut request = http::Request::new(body.attempt());
        *request.method_mut() = method.clone();
        match target.uri_for(credential) {
            Ok(uri) => *request.uri_mut() = uri,
            // The target was checked when built; a hex proof cannot make it invalid.
            Err(error) => {
                return Attempt::Broken(SendFailure {
                    timed_out: false,
                    stalled_body: false,
                    message: error.to_string(),
                })
            }
        }
        let empty = hyper::body::Body::size_hint(request.body()).exact() == Some(0);
        let headers = request.headers_mut();
        headers.clone_from(outgoing);
        headers::inject(headers, spec, credential);
        headers::defaults(headers, method, empty);
        let (head, stream) = match self.0.client.send(request).await {
            Ok(response) => response.into_parts(),
            Err(failure) => return Attempt::Broken(failure),
        };
        let (status, headers) = (head.status, head.headers);
        if !worth_peeking(status) {
            return Attempt::Answer(ProxyResponse {
                status,
                headers,
                body: stream,
            });
        }
        let (head, complete, stream) = body::peek(stream).await;
        let mut answer = ProxyResponse {
            status,
            headers,
            body: stream,
        };
        if status == StatusCode::TOO_MANY_REQUESTS && !answer.headers.contains_key(RETRY_AFTER) {
            if let Some(seconds) = complete.then(|| spec.behaviour.retry_hint(&head)).flatten() {
                answer
                    .headers
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
        }
        if complete && spec.behaviour.is_dead_token(status.as_u16(), &head) {
            Attempt::TokenDead(answer)
        } else {
            Attempt::Answer(answer)
        }
    }

    /// Filters the answer's headers, reads its rate-limit headers and caps its body. An answer
    /// announced as too large is refused before anything is sent back.
    fn finish(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        answer: ProxyResponse,
    ) -> Result<ProxyResponse, ProxyError> {
        observe::rate_limits(&self.0.metrics, spec.id.as_str(), &answer.headers);
        self.0.shares.spent(
            spec.id.as_str(),
            store_id.as_str(),
            spec.behaviour.app_usage(&answer.headers),
            spec.behaviour.counted_app_budget(),
        );
        let metrics = self.0.metrics.clone();
        let platform = spec.id.to_string();
        let max = self.0.settings.max_response_bytes;
        if content_length(&answer.headers).is_some_and(|n| n > max as u64) {
            metrics.proxy_cut(&platform);
            return Err(ProxyError::ResponseTooLarge(max));
        }
        let body = body::cap(answer.body, max, move || {
            tracing::warn!(platform = %platform, max, "platform answer cut at the size limit");
            metrics.proxy_cut(&platform);
        });
        Ok(ProxyResponse {
            status: answer.status,
            headers: headers::incoming(&answer.headers),
            body,
        })
    }
}
