//! The proxy's HTTP client: hyper's pooled client over rustls, with the platform timeout on
//! connecting, between the frames of the request's body as it goes out, on the answer's head
//! (counted from the end of the request's body), and between the frames of the answer's body.
//!
//! The request's body is bounded by progress, not by its total time: a large upload may take as
//! long as it takes, provided no pause (the caller's, or the platform's not reading) lasts longer
//! than the timeout.
//!
//! Not reqwest, which the rest of the service uses for token and asset calls: a forwarded call
//! needs none of its layers (redirects, which the proxy never follows; its retry policy; a second
//! parse of every URL), and on a proxied call they cost about a tenth of the service's CPU
//! (`scripts/bench-proxy`). Both are hyper's client underneath, with the same pool; this one keeps
//! reqwest's TCP keepalive and user timeout, and its use of an egress proxy (`HTTPS_PROXY`).

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// A body as a stream of chunks.
pub type BodyStream = futures::stream::BoxStream<'static, Result<Bytes, io::Error>>;

/// A request body as the client sends it.
pub(crate) type OutBody = UnsyncBoxBody<Bytes, io::Error>;

/// An empty body.
pub(crate) fn empty() -> OutBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body held in memory (hyper sends its `Content-Length`).
pub(crate) fn full(bytes: Bytes) -> OutBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed as it comes.
pub(crate) fn streamed(stream: BodyStream) -> OutBody {
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// Why a call got no answer. Its text names the failure, never the URL (whose query may carry
/// Meta's `appsecret_proof`).
#[derive(Debug)]
pub(crate) struct SendFailure {
    /// The platform took longer than the timeout to answer (not a broken connection: sending
    /// again would only double the wait).
    pub timed_out: bool,
    /// The caller's request body paused for longer than the timeout: the call was cut on its
    /// account, not the platform's.
    pub stalled_body: bool,
    /// What happened, with its causes.
    pub message: String,
}

impl SendFailure {
    fn timeout(message: String) -> Self {
        Self {
            timed_out: true,
            stalled_body: false,
            message,
        }
    }

    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut timed_out = false;
        let mut cause = Some(error);
        while let Some(error) = cause {
            // A connect that timed out (ours, or hyper's per address) is a slow platform too.
            timed_out |= error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
                || error
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
            cause = error.source();
            if let Some(next) = cause {
                message.push_str(": ");
                message.push_str(&next.to_string());
            }
        }
        Self {
            timed_out,
            stalled_body: false,
            message,
        }
    }
}

/// How far a request's body has gone out: when it last moved, whether it ended, and whether the
/// send is waiting on the caller (rather than on the platform to read).
#[derive(Debug)]
struct BodyProgress {
    state: Mutex<ProgressState>,
}

#[derive(Debug, Clone, Copy)]
struct ProgressState {
    /// When a frame last went out (or the send began).
    moved: tokio::time::Instant,
    /// When the body ended, if it has.
    ended: Option<tokio::time::Instant>,
    /// The last poll of the caller's body found nothing yet.
    waiting_on_caller: bool,
}

impl BodyProgress {
    fn new(ended: bool) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            state: Mutex::new(ProgressState {
                moved: now,
                ended: ended.then_some(now),
                waiting_on_caller: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the call is given up unless something happens first: `timeout` after the body ended
    /// (the wait for the answer's head), or after it last moved.
    fn deadline(&self, timeout: Duration) -> tokio::time::Instant {
        let state = *self.state();
        state.ended.unwrap_or(state.moved) + timeout
    }

    /// Why a call whose deadline passed is given up.
    fn failure(&self, timeout: Duration) -> SendFailure {
        let state = *self.state();
        let seconds = timeout.as_secs_f64();
        match state.ended {
            Some(_) => {
                SendFailure::timeout(format!("no answer within {seconds} s of the request's end"))
            }
            None if state.waiting_on_caller => SendFailure {
                stalled_body: true,
                ..SendFailure::timeout(format!(
                    "the caller's request body paused for more than {seconds} s"
                ))
            },
            None => SendFailure::timeout(format!(
                "the platform read none of the request body for {seconds} s"
            )),
        }
    }
}

/// The request's body, reporting each frame that goes out to a [`BodyProgress`].
struct Watched {
    inner: OutBody,
    progress: Arc<BodyProgress>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = self.inner.is_end_stream();
        let mut state = self.progress.state();
        let now = tokio::time::Instant::now();
        match &polled {
            Poll::Pending => state.waiting_on_caller = true,
            Poll::Ready(Some(Ok(_))) => {
                state.moved = now;
                state.waiting_on_caller = false;
                // hyper asks no more of a body that says it has ended.
                if ended && state.ended.is_none() {
                    state.ended = Some(now);
                }
            }
            Poll::Ready(None) => {
                state.waiting_on_caller = false;
                state.ended.get_or_insert(now);
            }
            Poll::Ready(Some(Err(_))) => state.waiting_on_caller = false,
        }
        drop(state);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connector: straight to the platform, or through the egress proxy `HTTPS_PROXY` names (an
/// HTTP `CONNECT` tunnel, TLS to the platform inside it, `NO_PROXY` honoured), as reqwest does for
/// the service's other calls; with the platform timeout on all of connecting: the name lookup, TCP,
/// the tunnel and TLS. (`HttpConnector`'s own timeout covers TCP only, and a connect the pool goes
/// on with in the background after a call took another connection would otherwise have no bound.)
/// Plain `http://` APIs (the sandbox) are always reached directly.
#[derive(Clone)]
struct TimedConnector {
    direct: HttpsConnector<HttpConnector>,
    tcp: HttpConnector,
    tls: Arc<rustls::ClientConfig>,
    egress: Arc<Matcher>,
    timeout: Duration,
}

impl std::fmt::Debug for TimedConnector {
    // The matcher holds the egress proxy's URL, which may carry its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedConnector")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl TimedConnector {
    /// The tunnel to `uri` through the egress proxy, when one applies.
    fn tunnel(&self, uri: &Uri) -> Option<HttpsConnector<Tunnel<HttpConnector>>> {
        if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return None;
        }
        let egress = self.egress.intercept(uri)?;
        let mut tunnel = Tunnel::new(egress.uri().clone(), self.tcp.clone());
        if let Some(auth) = egress.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        Some(
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*self.tls).clone())
                .https_only()
                .enable_http1()
                .wrap_connector(tunnel),
        )
    }
}

impl tower::Service<Uri> for TimedConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = match self.tunnel(&uri) {
            // Always ready, like the direct one: hyper's connector and rustls have no backlog.
            Some(mut tunnel) => tunnel.call(uri),
            None => self.direct.call(uri),
        };
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "connecting timed out").into())
                }
            }
        })
    }
}

/// The client: a cheap-clone handle on one pool of kept-alive connections per platform host.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient {
    client: Client<TimedConnector, OutBody>,
    timeout: Duration,
}

impl UpstreamClient {
    /// HTTP/1.1 over TLS (the Mozilla roots, ring) or plain HTTP (the sandbox, tests); never a
    /// redirect followed (hyper's client follows none: a redirect could carry the token elsewhere).
    pub fn new(timeout: Duration) -> Result<Self, rustls::Error> {
        Self::with_egress(timeout, Matcher::from_env())
    }

    /// The same, with the egress proxy rules given rather than read from the environment.
    fn with_egress(timeout: Duration, egress: Matcher) -> Result<Self, rustls::Error> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        // reqwest's defaults, which the rest of the service has: a pooled connection that a NAT or
        // load balancer dropped without a word is found out, not written to until the timeout.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        #[cfg(target_os = "linux")]
        http.set_tcp_user_timeout(Some(Duration::from_secs(30)));
        let direct = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http.clone());
        let connector = TimedConnector {
            direct,
            tcp: http,
            tls: Arc::new(tls),
            egress: Arc::new(egress),
            timeout,
        };
        // Calls reuse kept-alive connections: a new TCP and TLS handshake per call would cost more
        // than everything else the proxy does. Idle ones are kept a while per platform host, for
        // bursts of up to that many concurrent calls.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// Sends `request`. Each frame of its body must go out within the timeout of the last, and
    /// the answer's head must come within the timeout of the body's end (so a long upload is not
    /// cut for its length); each piece of the answer's body within the timeout of the last (the
    /// whole answer may stream for longer).
    pub async fn send(
        &self,
        request: Request<OutBody>,
    ) -> Result<Response<BodyStream>, SendFailure> {
        let timeout = self.timeout;
        let progress = Arc::new(BodyProgress::new(request.body().is_end_stream()));
        let request = request.map(|inner| {
            Watched {
                inner,
                progress: progress.clone(),
            }
            .boxed_unsync()
        });
        let mut answer = pin!(self.client.request(request));
        // The deadline only ever moves later: sleep until it, look again, give up once it holds.
        let response = loop {
            let deadline = progress.deadline(timeout);
            tokio::select! {
                answered = answer.as_mut() => break answered,
                () = tokio::time::sleep_until(deadline) => {
                    if progress.deadline(timeout) <= tokio::time::Instant::now() {
                        return Err(progress.failure(timeout));
                    }
                }
            }
        }
        .map_err(|error| SendFailure::of(&error))?;
        Ok(response.map(|body| {
            tower_http::timeout::TimeoutBody::new(timeout, body)
                .into_data_stream()
                .map_err(io::Error::other)
                .boxed()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a cause, as hyper-util's client reports a failed connect.
    #[derive(Debug)]
    struct Client(io::Error);

    impl std::fmt::Display for Client {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl std::error::Error for Client {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_connect_that_timed_out_is_a_timeout_and_a_reset_is_not() {
        let timed_out = Client(io::Error::new(
            io::ErrorKind::TimedOut,
            "connecting timed out",
        ));
        assert!(SendFailure::of(&timed_out).timed_out);
        let reset = SendFailure::of(&Client(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert!(!reset.timed_out);
        assert!(
            reset
                .message
                .starts_with("client error (Connect): connection reset"),
            "{}",
            reset.message
        );
    }

    /// Accepts connections on a free port; sends the head of each request received, then answers
    /// `reply`.
    async fn recording_server(
        reply: &'static [u8],
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (heads, received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                let _ = socket.write_all(reply).await;
            }
        });
        (address, received)
    }

    #[tokio::test]
    async fn an_https_api_is_reached_through_the_egress_proxy_and_a_plain_one_directly() {
        let (proxy, mut tunnels) =
            recording_server(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await;
        let (plain, mut calls) = recording_server(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let egress = Matcher::builder()
            .https(format!("http://user:s3cret@{proxy}"))
            .http(format!("http://{proxy}"))
            .build();
        let client = UpstreamClient::with_egress(Duration::from_secs(5), egress).expect("client");

        let request = Request::get("https://graph.facebook.com/v25.0/me")
            .body(empty())
            .expect("request");
        let Err(failure) = client.send(request).await else {
            panic!("the proxy refused the tunnel: the call cannot have an answer");
        };
        assert!(!failure.timed_out);
        assert!(!failure.message.contains("s3cret"), "{}", failure.message);
        let head = tunnels.recv().await.expect("the egress proxy was asked");
        assert!(
            head.starts_with("CONNECT graph.facebook.com:443 HTTP/1.1\r\n"),
            "{head}"
        );
        // base64("user:s3cret")
        assert!(
            head.to_ascii_lowercase()
                .contains("proxy-authorization: basic dxnlcjpzm2nyzxq="),
            "{head}"
        );

        let request = Request::get(format!("http://{plain}/v2/users/me"))
            .body(empty())
            .expect("request");
        let response = client.send(request).await.expect("a direct answer");
        assert_eq!(response.status(), 204);
        let head = calls.recv().await.expect("the API was called");
        assert!(head.starts_with("GET /v2/users/me HTTP/1.1\r\n"), "{head}");
        assert!(
            tunnels.try_recv().is_err(),
            "plain HTTP never goes through the egress proxy"
        );
    }
}
