//! Serving the router: the accept loop, one HTTP/1.1 connection per task with a header-read
//! timeout, each request tagged with the peer's address (`ConnectInfo<SocketAddr>`, which the rate
//! limiter keys on), and graceful shutdown, bounded: connections still open when the caller's cut
//! comes are closed ([`serve_until`]).
//!
//! It owns the connection-level limits only; the per-request timeout and everything else a request
//! passes through are the router's layers ([`super::router`]).
//!
//! `axum::serve` is not used because it does not expose hyper's `header_read_timeout`: without it
//! a client that sends its headers one byte a minute holds a connection (and its buffer) forever.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The connection-level timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ServerTimeouts {
    /// How long a client may take to send a request's headers, counted from the first read of a
    /// request (and while a kept-alive connection sits idle); the connection is closed after it.
    /// `HTTP_HEADER_READ_TIMEOUT_SECONDS`.
    pub header_read: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header_read: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// The header-read timeout when none is configured.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// connections finish their requests in flight and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ServerTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_until(listener, router, timeouts, shutdown, std::future::pending()).await
}

/// [`serve`], with an end to the graceful part: once `shutdown` has resolved, the connections
/// are let finish until `cut` resolves; those still open then (a streaming answer, a slow reader)
/// are closed, their requests dropped, and the function returns.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    timeouts: ServerTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
    cut: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // `stop` tells connections to shut down gracefully; each connection is a task of `open`, so
    // that the ones still running at the cut can be aborted (closing their sockets).
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut open = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Ended connections are reaped as they go, so the set holds only open ones.
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Without it, a response written in two parts (a streamed body: the proxy's)
                // waits for the client's delayed ACK of the first (Nagle), up to 40 ms on Linux.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "could not set TCP_NODELAY");
                }
                open.spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    timeouts,
                    stop_rx.clone(),
                ));
            }
            Err(error) => accept_failed(&error).await,
        }
    }
    let _ = stop_tx.send(true);
    drop(listener);
    let mut cut = pin!(cut);
    loop {
        tokio::select! {
            ended = open.join_next() => if ended.is_none() { break },
            () = &mut cut => {
                if !open.is_empty() {
                    tracing::warn!(
                        connections = open.len(),
                        "connections still open at the end of the shutdown grace: closed"
                    );
                }
                open.shutdown().await;
                break;
            }
        }
    }
    Ok(())
}

/// Serves one connection until the client closes it, a timeout ends it, or `stop` turns true
/// (then the request in flight is finished first).
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: ServerTimeouts,
    mut stop: watch::Receiver<bool>,
) {
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The watch guard is dropped at once (`map`): it must not be held across the await.
        _ = stop.wait_for(|stop| *stop).map(|_| ()) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // A client that went away or was too slow: normal on the internet, not our fault.
        tracing::debug!(%error, "connection ended");
    }
}

/// Per-connection errors (the peer reset before we accepted) are skipped; anything else (out of
/// file descriptors) is logged and waited out, rather than spinning on a failing `accept`.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
