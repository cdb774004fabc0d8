//! What the publishing clients' tests share: the sandbox served on a random local port (with a
//! few media files beside it), a catalog pointed at it as `SANDBOX=true` points the service, tokens
//! the sandbox issued for the sandbox client, a [`MediaSource`] of fixed bytes, and a runner of
//! the stages as the scheduler runs them. Test-only.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::metrics::Metrics;
use crate::platforms::catalog::Catalog;
use crate::platforms::client::PlatformClient;
use crate::platforms::platform::PlatformSpec;
use crate::platforms::publish::{
    Confirmation, MediaBytes, MediaSource, PostDraft, PostErrorCode, Prepared, PublishContext,
    PublishFailure, PublishTarget, Sent,
};
use crate::sandbox::{self, Simulator};

/// The bytes every test image is made of (a PNG signature and a little more).
pub(crate) const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\nsandbox-image-bytes";

/// The sandbox on a local port, and what a client needs to talk to it.
pub(crate) struct Bench {
    pub(crate) sim: Simulator,
    pub(crate) catalog: Catalog,
    pub(crate) client: PlatformClient,
    /// `http://127.0.0.1:{port}`.
    pub(crate) base: String,
}

impl Bench {
    /// Serves the sandbox, and `/media/photo.png` (an image) and `/media/page.html` (not one).
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let sim = Simulator::new(
            sandbox::PLATFORMS
                .iter()
                .map(|p| Simulator::sandbox_client(p, &base))
                .collect(),
        );
        let router = sandbox::router(sim.clone())
            .route(
                "/media/photo.png",
                get(|| async { ([(CONTENT_TYPE, "image/png")], IMAGE) }),
            )
            .route(
                "/media/page.html",
                get(|| async { ([(CONTENT_TYPE, "text/html")], "<p>not an image</p>") }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let url = Url::parse(&base).expect("a URL");
        let catalog = Catalog::resolve(&BTreeMap::new(), &[], Some(&url));
        let client =
            PlatformClient::new(Duration::from_secs(10), Metrics::new()).expect("a client");
        Self {
            sim,
            catalog,
            client,
            base,
        }
    }

    /// The platform, as the catalog resolves it against the sandbox.
    pub(crate) fn spec(&self, slug: &str) -> &PlatformSpec {
        self.catalog.find(slug).expect("a built-in platform")
    }

    /// A token of `slug`'s sandbox client granting `scopes`.
    pub(crate) fn token(&self, slug: &str, scopes: &[&str]) -> SecretString {
        let client_id = format!("sandbox-{slug}-client");
        SecretString::from(
            sandbox::grant_for_tests(&self.sim, slug, &client_id, scopes).expect("simulated"),
        )
    }

    /// A URL served beside the sandbox.
    pub(crate) fn media_url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.base)).expect("a URL")
    }

    /// Runs `prepare_post` until it is ready (as the scheduler would, without waiting), then
    /// `send_post` once; returns the send's outcome and the checkpoint it was given.
    pub(crate) async fn publish(
        &self,
        slug: &str,
        draft: &PostDraft,
        target: &PublishTarget,
    ) -> (Result<Sent, PublishFailure>, Value) {
        let spec = self.spec(slug);
        let media = FixedMedia;
        let mut checkpoint = Value::Null;
        for _ in 0..10 {
            let context = self.context(spec, draft, target, &media, &checkpoint);
            match spec.behaviour.prepare_post(&context).await {
                Ok(Prepared::Ready(ready)) => {
                    let context = self.context(spec, draft, target, &media, &ready);
                    return (spec.behaviour.send_post(&context).await, ready);
                }
                Ok(Prepared::Wait {
                    checkpoint: next, ..
                }) => checkpoint = next,
                Err(failure) => return (Err(failure), checkpoint),
            }
        }
        panic!("prepare_post never got ready");
    }

    /// `confirm_post` with the checkpoint the send had.
    pub(crate) async fn confirm(
        &self,
        slug: &str,
        draft: &PostDraft,
        target: &PublishTarget,
        checkpoint: &Value,
    ) -> Result<Confirmation, PublishFailure> {
        let spec = self.spec(slug);
        let context = self.context(spec, draft, target, &FixedMedia, checkpoint);
        spec.behaviour.confirm_post(&context).await
    }

    fn context<'a>(
        &'a self,
        spec: &'a PlatformSpec,
        draft: &'a PostDraft,
        target: &'a PublishTarget,
        media: &'a FixedMedia,
        checkpoint: &'a Value,
    ) -> PublishContext<'a> {
        PublishContext {
            http: &self.client,
            spec,
            draft,
            target,
            media,
            checkpoint,
        }
    }
}

/// A target of `kind` with `id` and `token`.
pub(crate) fn target(
    kind: &str,
    id: &str,
    name: Option<&str>,
    token: SecretString,
) -> PublishTarget {
    PublishTarget {
        kind: kind.to_owned(),
        id: id.to_owned(),
        name: name.map(str::to_owned),
        details: Value::Null,
        token,
    }
}

/// Serves [`IMAGE`] for any URL but one whose path ends in `missing`, which is unavailable; a
/// URL ending in `.mp4` is served as a video.
pub(crate) struct FixedMedia;

#[async_trait]
impl MediaSource for FixedMedia {
    async fn fetch(&self, url: &Url) -> Result<MediaBytes, PublishFailure> {
        if url.path().ends_with("missing") {
            return Err(PublishFailure::permanent(
                PostErrorCode::MediaUnavailable,
                "the media answered 404",
            ));
        }
        let content_type = if url.path().ends_with(".mp4") {
            "video/mp4"
        } else {
            "image/png"
        };
        Ok(MediaBytes {
            content_type: content_type.to_owned(),
            bytes: bytes::Bytes::from_static(IMAGE),
        })
    }
}

/// The failure's code, or a panic naming what came instead.
pub(crate) fn failure_code(outcome: &Result<Sent, PublishFailure>) -> PostErrorCode {
    match outcome {
        Err(failure) => failure.code,
        Ok(sent) => panic!("expected a failure, got {sent:?}"),
    }
}
