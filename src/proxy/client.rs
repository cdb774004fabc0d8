//! The proxy's HTTP client: hyper's pooled client over rustls, with the platform timeout on
//! connecting, on the answer's head, and between the frames of its body.
//!
//! Not reqwest, which the rest of the service uses for token and asset calls: a forwarded call
//! needs none of its layers (redirects, which the proxy never follows; its retry policy; a second
//! parse of every URL), and on a proxied call they cost about a tenth of the service's CPU
//! (`scripts/bench-proxy`). Both are hyper's client underneath, with the same pool.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::BodyStream;

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
    /// What happened, with its causes.
    pub message: String,
}

impl SendFailure {
    fn timeout(after: Duration) -> Self {
        Self {
            timed_out: true,
            message: format!("no answer within {} s", after.as_secs_f64()),
        }
    }

    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            timed_out: false,
            message,
        }
    }
}

/// The client: a cheap-clone handle on one pool of kept-alive connections per platform host.
#[derive(Debug, Clone)]
pub(crate) struct PlatformClient {
    client: Client<HttpsConnector<HttpConnector>, OutBody>,
    timeout: Duration,
}

impl PlatformClient {
    /// HTTP/1.1 over TLS (the Mozilla roots, ring) or plain HTTP (the sandbox, tests); never a
    /// redirect followed (hyper's client follows none: a redirect could carry the token elsewhere).
    pub fn new(timeout: Duration) -> Result<Self, rustls::Error> {
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
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // Calls reuse kept-alive connections: a new TCP and TLS handshake per call would cost more
        // than everything else the proxy does. Idle ones are kept a while per platform host, for
        // bursts of up to that many concurrent calls.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(Self { client, timeout })
    }

    /// Sends `request`; the answer's head must come within the timeout, and each piece of its body
    /// within the timeout of the last (the whole answer may stream for longer).
    pub async fn send(
        &self,
        request: Request<OutBody>,
    ) -> Result<Response<BodyStream>, SendFailure> {
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| SendFailure::timeout(self.timeout))?
            .map_err(|error| SendFailure::of(&error))?;
        let timeout = self.timeout;
        Ok(response.map(|body| {
            tower_http::timeout::TimeoutBody::new(timeout, body)
                .into_data_stream()
                .map_err(io::Error::other)
                .boxed()
        }))
    }
}
