//! Test harness of every platform's publishing client: the sandbox served on a random local port
//! beside a media server (`/media/...`), a sandboxed platform spec from the catalog, a real
//! [`PlatformClient`], tokens obtained the honest way (the sandbox's consent screen and token
//! endpoint, driven over HTTP as a browser and the service would, as the platform's description
//! says), and the three stages run with a [`PublishContext`], one at a time or as the scheduler
//! runs them.

// In tests a failed expectation is a failed test, which is exactly what `expect` reports.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use growth_engine_clock::ManualClock;
use oauth2::PkceCodeChallenge;
use secrecy::SecretString;
use serde_json::{Map, Value};
use url::Url;

use crate::metrics::Metrics;
use crate::platforms::catalog::Catalog;
use crate::platforms::client::PlatformClient;
use crate::platforms::platform::PublishContext;
use crate::platforms::platform::{ClientAuth, Pkce, PlatformSpec, TokenMethod};
use crate::platforms::publish::{
    Confirmation, MediaBytes, MediaKind, MediaRef, MediaSource, PostDraft, PostErrorCode, Prepared,
    PublishFailure, PublishTarget, Sent,
};
use crate::sandbox::Simulator;

/// A small JPEG-looking image.
pub(crate) const IMAGE: &[u8] = b"\xFF\xD8\xFF\xE0sandbox-image\xFF\xD9";

/// The sandbox and its media server on one port, and what the tests reach them with.
pub(crate) struct Harness {
    pub(crate) sim: Simulator,
    pub(crate) clock: ManualClock,
    pub(crate) base: String,
    pub(crate) spec: PlatformSpec,
    pub(crate) client: PlatformClient,
    http: reqwest::Client,
}

impl Harness {
    /// Serves the sandbox for `platform` and its media on a random port.
    pub(crate) async fn start(platform: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Stopped at the wall clock's now rather than a fixed date: the sandbox's answers carry
        // the real `Date` header, and clients measure absolute times against it (X's
        // `x-rate-limit-reset`), which a clock days away from it would turn into nonsense.
        let clock = ManualClock::new(Utc::now());
        let clients = growth_engine_sandbox::PLATFORMS
            .iter()
            .map(|p| Simulator::sandbox_client(p, &base))
            .collect();
        let sim = Simulator::with_clock(clients, Arc::new(clock.clone()));
        let app = growth_engine_sandbox::router(sim.clone()).merge(media_routes());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let base_url = Url::parse(&base).unwrap();
        let catalog = Catalog::resolve(&BTreeMap::new(), &[], Some(&base_url));
        let spec = catalog.find(platform).expect("a built-in platform").clone();
        assert!(spec.sandboxed);
        let client = PlatformClient::new(Duration::from_secs(30), Metrics::new()).unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            sim,
            clock,
            base,
            spec,
            client,
            http,
        }
    }

    /// A URL of the media server.
    pub(crate) fn media(&self, name: &str, kind: MediaKind) -> MediaRef {
        MediaRef {
            url: Url::parse(&format!("{}/media/{name}", self.base)).unwrap(),
            kind,
        }
    }

    /// An access token of the platform granting `scopes`: the sandbox's consent screen approved
    /// and its code exchanged, over HTTP, with the parameter names, scope separator, PKCE, client
    /// authentication and token method the platform's description gives.
    pub(crate) async fn token(&self, scopes: &[&str]) -> String {
        let spec = &self.spec;
        let platform = spec.id.as_str().to_owned();
        let client = Simulator::sandbox_client(&platform, &self.base);
        let redirect = client.redirect_uris[0].clone();
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut query = vec![
            (spec.client_id_param, client.client_id.clone()),
            ("redirect_uri", redirect.clone()),
            ("state", "st-publish".to_owned()),
            ("response_type", "code".to_owned()),
            ("scope", scopes.join(spec.scope_separator)),
        ];
        if spec.pkce == Pkce::S256 {
            query.push(("code_challenge", challenge.as_str().to_owned()));
            query.push((
                "code_challenge_method",
                challenge.method().as_str().to_owned(),
            ));
        }
        let page = self
            .http
            .get(spec.authorize_url.clone())
            .query(&query)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"request_id\" value=\"";
        let start = page.find(marker).expect("a consent form") + marker.len();
        let request_id = &page[start..start + page[start..].find('"').unwrap()];
        let mut form = vec![("request_id", request_id), ("decision", "approve")];
        form.extend(scopes.iter().map(|s| ("scope", *s)));
        let answer = self
            .http
            .post(format!("{}/sandbox/{platform}/consent", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        let code = Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code");
        let mut params = vec![("redirect_uri", redirect), ("code", code)];
        if spec.pkce == Pkce::S256 {
            params.push(("code_verifier", verifier.secret().clone()));
        }
        if spec.client_auth == ClientAuth::RequestBody {
            params.push((spec.client_id_param, client.client_id.clone()));
            params.push(("client_secret", client.client_secret.clone()));
        }
        let token = spec.token_url.clone();
        let request = match spec.token_method {
            TokenMethod::GetQuery => self.http.get(token).query(&params),
            TokenMethod::PostForm => {
                params.push(("grant_type", "authorization_code".to_owned()));
                self.http.post(token).form(&params)
            }
        };
        let request = match spec.client_auth {
            ClientAuth::Basic => request.basic_auth(&client.client_id, Some(&client.client_secret)),
            ClientAuth::RequestBody => request,
        };
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        reply["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {reply}"))
            .to_owned()
    }

    /// A GET of the platform's API with a bearer token.
    pub(crate) async fn api_get(&self, path: &str, token: &str) -> Value {
        let url = self.spec.api_base.as_ref().unwrap().join(path).unwrap();
        self.http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The stages run against `target` for `draft`, with `media` as the caller's bytes.
    pub(crate) fn post<'a>(
        &'a self,
        draft: &'a PostDraft,
        target: &'a PublishTarget,
        media: &'a dyn MediaSource,
    ) -> Post<'a> {
        Post {
            harness: self,
            draft,
            target,
            media,
        }
    }
}

/// One post's stages.
pub(crate) struct Post<'a> {
    harness: &'a Harness,
    draft: &'a PostDraft,
    target: &'a PublishTarget,
    media: &'a dyn MediaSource,
}

impl Post<'_> {
    fn context<'c>(&'c self, checkpoint: &'c Value) -> PublishContext<'c> {
        PublishContext {
            http: &self.harness.client,
            spec: &self.harness.spec,
            draft: self.draft,
            target: self.target,
            media: self.media,
            checkpoint,
        }
    }

    /// The platform's `prepare_post` from `checkpoint`.
    pub(crate) async fn prepare(&self, checkpoint: &Value) -> Result<Prepared, PublishFailure> {
        let behaviour = self.harness.spec.behaviour;
        behaviour.prepare_post(&self.context(checkpoint)).await
    }

    /// Prepares until ready, advancing the sandbox clock by each wait (and a little real time
    /// for the sandbox's background fetches).
    pub(crate) async fn prepare_until_ready(&self) -> Result<Value, PublishFailure> {
        let mut checkpoint = Value::Null;
        for _ in 0..50 {
            match self.prepare(&checkpoint).await? {
                Prepared::Ready(ready) => return Ok(ready),
                Prepared::Wait {
                    checkpoint: next,
                    retry_in,
                } => {
                    self.harness
                        .clock
                        .advance(chrono::Duration::from_std(retry_in).unwrap());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    checkpoint = next;
                }
            }
        }
        panic!("never ready");
    }

    /// The stages as the scheduler runs them: prepares until ready, then sends once. Returns
    /// what was sent and the checkpoint the send was given, or the first stage's failure.
    pub(crate) async fn publish(&self) -> Result<(Sent, Value), PublishFailure> {
        let ready = self.prepare_until_ready().await?;
        let sent = self.send(&ready).await?;
        Ok((sent, ready))
    }

    /// The platform's `send_post` with `checkpoint`.
    pub(crate) async fn send(&self, checkpoint: &Value) -> Result<Sent, PublishFailure> {
        let behaviour = self.harness.spec.behaviour;
        behaviour.send_post(&self.context(checkpoint)).await
    }

    /// The platform's `confirm_post` with `checkpoint`.
    pub(crate) async fn confirm(&self, checkpoint: &Value) -> Result<Confirmation, PublishFailure> {
        let behaviour = self.harness.spec.behaviour;
        behaviour.confirm_post(&self.context(checkpoint)).await
    }
}

/// A target of `kind` acting with `token`.
pub(crate) fn target(kind: &str, id: &str, token: &str) -> PublishTarget {
    PublishTarget {
        kind: kind.to_owned(),
        id: id.to_owned(),
        name: None,
        details: Value::Null,
        token: SecretString::from(token.to_owned()),
    }
}

/// A draft of `text`, `media` and options.
pub(crate) fn draft(text: &str, media: Vec<MediaRef>, options: Value) -> PostDraft {
    PostDraft {
        text: text.to_owned(),
        media,
        link: None,
        options: match options {
            Value::Object(map) => map,
            _ => Map::new(),
        },
    }
}

/// The caller's media as fixed bytes, whatever the URL.
pub(crate) struct FixedMedia {
    pub(crate) content_type: &'static str,
    pub(crate) bytes: bytes::Bytes,
}

#[async_trait]
impl MediaSource for FixedMedia {
    async fn fetch(&self, _url: &Url) -> Result<MediaBytes, PublishFailure> {
        Ok(MediaBytes {
            content_type: self.content_type.to_owned(),
            bytes: self.bytes.clone(),
        })
    }
}

/// The caller's media, gone: every fetch fails as a 404 from the caller's server would.
pub(crate) struct UnavailableMedia;

#[async_trait]
impl MediaSource for UnavailableMedia {
    async fn fetch(&self, _url: &Url) -> Result<MediaBytes, PublishFailure> {
        Err(PublishFailure::permanent(
            PostErrorCode::MediaUnavailable,
            "the media answered 404",
        ))
    }
}

/// `size` bytes of a pretend MP4.
pub(crate) fn video_bytes(size: usize) -> bytes::Bytes {
    let mut bytes = vec![0u8; size];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    bytes::Bytes::from(bytes)
}

/// `/media/image.jpg`, `/media/video.mp4`, `/media/page.html` (served, but not an image); anything
/// else is a 404.
fn media_routes() -> Router {
    Router::new()
        .route(
            "/media/image.jpg",
            get(|| async { ([(CONTENT_TYPE, "image/jpeg")], IMAGE) }),
        )
        .route(
            "/media/video.mp4",
            get(|| async { ([(CONTENT_TYPE, "video/mp4")], video_bytes(64 * 1024)) }),
        )
        .route(
            "/media/page.html",
            get(|| async { ([(CONTENT_TYPE, "text/html")], "<p>not an image</p>") }),
        )
}
