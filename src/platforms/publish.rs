//! Publishing, as the platform layer sees it: the post a platform's client is handed
//! ([`PostDraft`], [`PublishTarget`]), the raw calls it makes ([`PublishHttp`], [`ApiRequest`],
//! [`ApiAnswer`]), the media it may need as bytes ([`MediaSource`]), and the answers of its three
//! stages ([`Prepared`], [`Sent`], [`Confirmation`]) or their failure ([`PublishFailure`]).
//!
//! The calls themselves ([`PublishHttp`](super::platform::PublishHttp)) and what a stage is handed
//! ([`PublishContext`](super::platform::PublishContext)) stand in `platform.rs`, beside the
//! platform's spec they need; this file names nothing of it.
//!
//! A post goes out in three stages, each a [`Platform`](super::Platform) method with a default
//! that publishes nothing:
//! 1. `prepare_post`: everything that can be done again without posting twice (a creator check,
//!    an upload, an Instagram container and its status). Its checkpoint is stored between calls.
//! 2. `send_post`: the one call after which the post may be out. The scheduler records that it
//!    is about to make it before making it, so this runs at most once per post.
//! 3. `confirm_post`: after a send whose answer was lost, or whose platform publishes later
//!    (TikTok's publish status), what the platform says became of it.
//!
//! The scheduler, the store and the API stand above (`crate::publish`); nothing here knows them.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

/// What a medium is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A still image.
    Image,
    /// A video.
    Video,
}

/// One medium of a post: where the caller keeps it, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// The caller's URL (http or https); fetched only through [`MediaSource`], or handed to a
    /// platform that pulls it itself.
    pub url: Url,
    /// Image or video.
    pub kind: MediaKind,
}

/// A post as the caller asked for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostDraft {
    /// The text (caption, message, commentary).
    pub text: String,
    /// The media, in order.
    pub media: Vec<MediaRef>,
    /// A link the post carries.
    pub link: Option<Url>,
    /// Platform options (`privacy_level`, `mode`, `title`, `board_id`...), read by the platform's
    /// client; unknown ones are refused by its `check_draft`.
    pub options: Map<String, Value>,
}

/// Where a post goes: one of the connection's assets, and the token that acts for it.
pub struct PublishTarget {
    /// The asset's kind (`instagram_account`, `facebook_page`, `creator`, `board`, ...).
    pub kind: String,
    /// The platform's id of it.
    pub id: String,
    /// Its display name or handle, for building a post's URL where the platform needs it.
    pub name: Option<String>,
    /// Non-secret facts discovery recorded of it (`details`).
    pub details: Value,
    /// The token that acts for it: a page token for a page or its linked account, else the
    /// connection's access token.
    pub token: SecretString,
}

impl fmt::Debug for PublishTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishTarget")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// A post published: the platform's id of it and its public URL, where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPost {
    /// The platform's id of the post (media id, post id, pin id, share URN...).
    pub id: Option<String>,
    /// Where people see it.
    pub url: Option<String>,
}

/// The stable reasons a post fails, as the API and the webhooks name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostErrorCode {
    /// The platform's publishing limit is reached (Instagram's 50 a day, X's per-user cap).
    LimitReached,
    /// The platform is throttling calls; retried while the deadline allows.
    RateLimited,
    /// The platform refused the media (format, size, duration, unreachable for it).
    MediaRejected,
    /// The media could not be fetched from the caller's URL (or is too large, or internal).
    MediaUnavailable,
    /// The grant lacks a permission publishing needs.
    PermissionMissing,
    /// The account cannot publish (not a business account, no role on the page, unaudited app).
    AccountNotEligible,
    /// The platform refused the post's content (too long, duplicate, bad option).
    InvalidPost,
    /// The connection's token is dead: the merchant must reconnect.
    ReconnectRequired,
    /// The platform failed or could not be reached until the post's deadline.
    PlatformUnavailable,
    /// The platform does not publish this (a kind of media or target it has no API for).
    NotSupported,
    /// The merchant rejected it, or it waited for approval too long.
    NotApproved,
}

impl PostErrorCode {
    /// The code's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LimitReached => "limit_reached",
            Self::RateLimited => "rate_limited",
            Self::MediaRejected => "media_rejected",
            Self::MediaUnavailable => "media_unavailable",
            Self::PermissionMissing => "permission_missing",
            Self::AccountNotEligible => "account_not_eligible",
            Self::InvalidPost => "invalid_post",
            Self::ReconnectRequired => "reconnect_required",
            Self::PlatformUnavailable => "platform_unavailable",
            Self::NotSupported => "not_supported",
            Self::NotApproved => "not_approved",
        }
    }

    /// Reads a code's text.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::LimitReached,
            Self::RateLimited,
            Self::MediaRejected,
            Self::MediaUnavailable,
            Self::PermissionMissing,
            Self::AccountNotEligible,
            Self::InvalidPost,
            Self::ReconnectRequired,
            Self::PlatformUnavailable,
            Self::NotSupported,
            Self::NotApproved,
        ]
        .into_iter()
        .find(|code| code.as_str() == text)
    }
}

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    /// The stable code.
    pub code: PostErrorCode,
    /// The platform's own message (scrubbed of anything token-like), or ours.
    pub message: String,
    /// Whether trying the stage again later may succeed (a throttle, a 5xx, a timeout before the
    /// platform accepted anything). The scheduler retries with back-off until the post's deadline.
    pub transient: bool,
    /// How long the platform asked us to wait.
    pub retry_after: Option<Duration>,
    /// The request may have reached the platform and its answer was lost (a timeout or a cut
    /// connection after the request was written). Only meaningful for `send_post`: the post is
    /// then confirmed, never sent again.
    pub answer_lost: bool,
}

impl PublishFailure {
    /// A failure that trying again cannot fix.
    pub fn permanent(code: PostErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            transient: false,
            retry_after: None,
            answer_lost: false,
        }
    }

    /// A failure worth another try later.
    pub fn transient(code: PostErrorCode, message: impl Into<String>) -> Self {
        Self {
            transient: true,
            ..Self::permanent(code, message)
        }
    }

    /// The same failure, with the wait the platform asked for.
    pub fn after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }
}

/// What `prepare_post` achieved.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Ready for the send; the checkpoint carries what the send needs (ids of containers,
    /// uploads, the creator's privacy options).
    Ready(Value),
    /// Not ready yet (a video container still processing): prepare again after `retry_in`, from
    /// this checkpoint.
    Wait {
        /// What was done so far.
        checkpoint: Value,
        /// When to look again.
        retry_in: Duration,
    },
}

/// What `send_post` achieved.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// The platform says it is out.
    Published(PublishedPost),
    /// The platform accepted it and publishes it later (TikTok): confirm after `check_in`, with
    /// this checkpoint (its publish id).
    Accepted {
        /// What confirmation needs.
        checkpoint: Value,
        /// When to ask.
        check_in: Duration,
    },
}

/// What `confirm_post` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmation {
    /// It is out.
    Published(PublishedPost),
    /// Still being processed: ask again after the duration.
    Processing(Duration),
    /// The platform says it did not go out, and why.
    Failed(PublishFailure),
    /// The platform offers no way to tell (or the send's answer was lost before it named the
    /// post): the outcome stays unknown.
    Unknowable,
}

/// The body of an [`ApiRequest`].
#[derive(Debug, Clone, Default)]
pub enum ApiBody {
    /// No body.
    #[default]
    Empty,
    /// A JSON body (`Content-Type: application/json; charset=UTF-8`).
    Json(Value),
    /// A form body.
    Form(Vec<(String, String)>),
    /// Raw bytes (an upload's chunk), with its content type.
    Bytes {
        /// The media type.
        content_type: String,
        /// The bytes.
        bytes: bytes::Bytes,
    },
    /// A `multipart/form-data` body: text fields, and one file part.
    Multipart {
        /// Text fields.
        fields: Vec<(String, String)>,
        /// The file part's field name, file name, media type and bytes.
        file: (String, String, String, bytes::Bytes),
    },
}

/// Whether a request carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAuth {
    /// The target's token (with the platform's proof where it takes one) and its API headers.
    Token,
    /// Nothing: an upload URL that carries its own credential (TikTok's `upload_url`).
    None,
}

/// One call a platform's publishing client makes.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The method.
    pub method: Method,
    /// The absolute URL (usually `spec.api_base` joined with the platform's path).
    pub url: Url,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// Further headers (`Content-Range`, `X-Restli-Protocol-Version`...).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: ApiBody,
    /// Whether the token goes with it.
    pub auth: ApiAuth,
}

impl ApiRequest {
    /// A request of `method` to `url`, with the token, and nothing else yet.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            query: Vec::new(),
            headers: Vec::new(),
            body: ApiBody::Empty,
            auth: ApiAuth::Token,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: ApiBody) -> Self {
        self.body = body;
        self
    }

    /// Sends no token.
    pub fn without_token(mut self) -> Self {
        self.auth = ApiAuth::None;
        self
    }
}

/// A platform's answer, whatever its status: the client reads its own error shapes.
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
}

impl ApiAnswer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Retry-After` the platform sent, in seconds.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")?
            .trim()
            .parse()
            .ok()
            .map(Duration::from_secs)
    }
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The request never reached the platform (no connection could be made): nothing happened.
    NotSent(String),
    /// The request may have reached the platform, and its answer was lost (a timeout, a cut
    /// connection, an unreadable body).
    AnswerLost(String),
}

impl CallFailure {
    /// The failure as a publishing stage's: transient, and `answer_lost` where the request may
    /// have arrived.
    pub fn into_failure(self) -> PublishFailure {
        match self {
            Self::NotSent(detail) => {
                PublishFailure::transient(PostErrorCode::PlatformUnavailable, detail)
            }
            Self::AnswerLost(detail) => PublishFailure {
                answer_lost: true,
                ..PublishFailure::transient(PostErrorCode::PlatformUnavailable, detail)
            },
        }
    }
}

/// A medium fetched from the caller's URL.
#[derive(Debug, Clone)]
pub struct MediaBytes {
    /// The media type the caller's server named.
    pub content_type: String,
    /// The bytes.
    pub bytes: bytes::Bytes,
}

/// Fetches the caller's media for a platform that takes bytes rather than a URL: bounded in size
/// and time, never from an internal address. Implemented above this layer.
#[async_trait]
pub trait MediaSource: Send + Sync {
    /// The medium at `url`.
    async fn fetch(&self, url: &Url) -> Result<MediaBytes, PublishFailure>;
}

/// Refuses options a platform does not read, naming them.
pub fn refuse_unknown_options(draft: &PostDraft, known: &[&str]) -> Result<(), PublishFailure> {
    let unknown: Vec<&str> = draft
        .options
        .keys()
        .map(String::as_str)
        .filter(|name| !known.contains(name))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(PublishFailure::permanent(
            PostErrorCode::InvalidPost,
            format!(
                "unknown option(s) {} (known here: {})",
                unknown.join(", "),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ))
    }
}
