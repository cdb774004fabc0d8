//! Bodies through the proxy: the caller's request body (buffered when small enough to be sent
//! twice, streamed otherwise, limited either way), the peek at error answers, and the limit on the
//! platform's answer.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};

use super::client::{self, BodyStream, OutBody};

/// The largest request body kept in memory so that it can be sent again.
///
/// A retry (after a forced refresh, or a broken connection) needs the body a second time. Holding
/// every body up to `PROXY_MAX_BODY_BYTES` (10 MiB by default) in memory would let a few large
/// uploads exhaust the service, so only bodies up to this size are buffered; larger ones are
/// streamed straight to the platform and their calls are never retried.
pub(crate) const RETRY_BUFFER_BYTES: usize = 1024 * 1024;

/// How much of an error answer is read to classify it ("token dead", Google's retry delay).
pub(crate) const PEEK_BYTES: usize = 64 * 1024;

/// The request body, ready to be sent once or more.
pub(crate) enum OutgoingBody {
    /// Small enough to keep: can be sent again.
    Buffered(Bytes),
    /// Streamed (taken by the first attempt); `tripped` says it went over the limit.
    Streamed {
        /// The stream, until an attempt takes it.
        stream: Option<BodyStream>,
        /// Set when the caller sent more than the limit.
        tripped: Arc<AtomicBool>,
    },
}

impl OutgoingBody {
    /// Reads the caller's body: buffered up to [`RETRY_BUFFER_BYTES`], streamed beyond, never
    /// more than `max` bytes in all. `Err` means `Content-Length` already exceeds `max`.
    pub async fn prepare(
        mut body: BodyStream,
        content_length: Option<u64>,
        max: usize,
    ) -> Result<Self, TooLarge> {
        if content_length.is_some_and(|n| n > max as u64) {
            return Err(TooLarge);
        }
        let tripped = Arc::new(AtomicBool::new(false));
        if content_length.is_some_and(|n| n > RETRY_BUFFER_BYTES as u64) {
            return Ok(Self::Streamed {
                stream: Some(limit(body, max, tripped.clone())),
                tripped,
            });
        }
        let mut buffer = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| TooLarge)?;
            buffer.extend_from_slice(&chunk);
            if buffer.len() > max {
                return Err(TooLarge);
            }
            if buffer.len() > RETRY_BUFFER_BYTES {
                // Too big to keep: send what was read, then the rest as it comes.
                let head = stream::once(async move { Ok(buffer.freeze()) });
                return Ok(Self::Streamed {
                    stream: Some(limit(head.chain(body).boxed(), max, tripped.clone())),
                    tripped,
                });
            }
        }
        Ok(Self::Buffered(buffer.freeze()))
    }

    /// Whether the body can be sent again.
    pub(crate) fn replayable(&self) -> bool {
        matches!(self, Self::Buffered(_))
    }

    /// The body for one attempt (empty when there is none, or a stream already taken).
    pub fn attempt(&mut self) -> OutBody {
        match self {
            Self::Buffered(bytes) if bytes.is_empty() => client::empty(),
            Self::Buffered(bytes) => client::full(bytes.clone()),
            Self::Streamed { stream, .. } => {
                stream.take().map_or_else(client::empty, client::streamed)
            }
        }
    }

    /// Whether a streamed body went over the limit.
    pub(crate) fn over_limit(&self) -> bool {
        match self {
            Self::Buffered(_) => false,
            Self::Streamed { tripped, .. } => tripped.load(Ordering::Relaxed),
        }
    }
}

/// The caller's body exceeds `PROXY_MAX_BODY_BYTES`.
#[derive(Debug)]
pub(crate) struct TooLarge;

/// Passes at most `max` bytes, then fails the stream (and sets `tripped`).
fn limit(body: BodyStream, max: usize, tripped: Arc<AtomicBool>) -> BodyStream {
    let mut seen = 0usize;
    body.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > max {
            tripped.store(true, Ordering::Relaxed);
            return Err(io::Error::other("body over the limit"));
        }
        Ok(chunk)
    })
    .boxed()
}

/// Reads up to [`PEEK_BYTES`] of `body`. Returns what was read, whether that was all of it, and the
/// body again (the read part first) to pass on.
pub(crate) async fn peek(mut body: BodyStream) -> (Bytes, bool, BodyStream) {
    let mut buffer = BytesMut::new();
    let mut complete = true;
    while buffer.len() < PEEK_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(error)) => {
                let head = buffer.freeze();
                let again = stream::iter([Ok(head.clone()), Err(error)]).boxed();
                return (head, false, again);
            }
            None => {
                let head = buffer.freeze();
                return (head.clone(), true, stream::once(async { Ok(head) }).boxed());
            }
        }
    }
    if buffer.len() >= PEEK_BYTES {
        complete = false;
    }
    let head = buffer.freeze();
    let again = stream::once({
        let head = head.clone();
        async move { Ok(head) }
    })
    .chain(body)
    .boxed();
    (head, complete, again)
}

/// Passes at most `max` bytes of the platform's answer; past that the stream fails, which aborts
/// the connection (the status is already sent: it cannot become an error any more), and
/// `on_cut` runs once.
pub fn cap(body: BodyStream, max: usize, on_cut: impl FnOnce() + Send + 'static) -> BodyStream {
    let mut seen = 0usize;
    let mut on_cut = Some(on_cut);
    body.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > max {
            if let Some(on_cut) = on_cut.take() {
                on_cut();
            }
            return Err(io::Error::other("platform answer over the limit"));
        }
        Ok(chunk)
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<&'static [u8]>) -> BodyStream {
        stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
    }

    #[tokio::test]
    async fn a_small_body_is_kept_for_a_retry_and_a_big_one_is_refused() {
        let body = OutgoingBody::prepare(chunks(vec![b"ab", b"cd"]), None, 10)
            .await
            .expect("fits");
        assert!(body.replayable());
        assert!(
            OutgoingBody::prepare(chunks(vec![b"abcdef", b"ghijkl"]), None, 10)
                .await
                .is_err()
        );
        assert!(OutgoingBody::prepare(chunks(vec![]), Some(11), 10)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_peeked_body_is_passed_on_whole() {
        let (head, complete, again) = peek(chunks(vec![b"{\"a\":", b"1}"])).await;
        assert!(complete);
        assert_eq!(&head[..], b"{\"a\":1}");
        let all: Vec<Bytes> = again.map(|c| c.expect("chunk")).collect().await;
        assert_eq!(all.concat(), b"{\"a\":1}");
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_fails_its_stream_once() {
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        let capped = cap(chunks(vec![b"1234", b"5678"]), 6, move || {
            flag.store(true, Ordering::Relaxed)
        });
        let results: Vec<Result<Bytes, io::Error>> = capped.collect().await;
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert!(cut.load(Ordering::Relaxed));
    }
}
