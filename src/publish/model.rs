//! A post's shapes: its [`PostStatus`], the API's request ([`CreatePost`]) and view
//! ([`PostView`]), and the webhook events its outcomes send (`post.published`, `post.failed`,
//! `post.unknown`, `post.approval_requested`). None carries a token or media bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::PostError;
use crate::platforms::publish::{MediaKind, MediaRef, PostDraft};
use crate::store::{NewEvent, PostRow};

/// The most media one post carries (Instagram's carousel takes 10, TikTok's photo mode 35).
const MAX_MEDIA: usize = 35;

/// How far ahead a post may be scheduled.
const MAX_SCHEDULE_DAYS: i64 = 365;

/// The longest text accepted before the platform's own rule (LinkedIn's 3000 is the longest).
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Where a post stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    /// Waiting for its time.
    Scheduled,
    /// Waiting for the merchant's approval.
    PendingApproval,
    /// On its way out.
    Publishing,
    /// Out, with the platform's id and URL.
    Published,
    /// Not out, with a stable code and the platform's words.
    Failed,
    /// Cancelled before it was sent.
    Cancelled,
    /// Sent, but the platform's answer was lost and could not be confirmed.
    Unknown,
}

impl PostStatus {
    /// Every status.
    pub const ALL: [Self; 7] = [
        Self::Scheduled,
        Self::PendingApproval,
        Self::Publishing,
        Self::Published,
        Self::Failed,
        Self::Cancelled,
        Self::Unknown,
    ];

    /// The status's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::PendingApproval => "pending_approval",
            Self::Publishing => "publishing",
            Self::Published => "published",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }

    /// Reads a status's text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A medium in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaInput {
    /// Where the medium is (http or https); fetched by us or by the platform.
    #[schema(value_type = String)]
    pub url: Url,
    /// `image` or `video`.
    #[schema(value_type = String)]
    pub kind: MediaKind,
}

/// `POST /api/v1/posts`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    /// The merchant's store.
    pub store_id: String,
    /// The platform's slug.
    pub platform: String,
    /// The asset to post as (a page, an Instagram account, a board, an organization); default:
    /// the connection's selected asset of a kind the platform publishes to.
    #[serde(default)]
    pub account: Option<String>,
    /// The text (caption, message, commentary).
    #[serde(default)]
    pub text: String,
    /// The media, in order.
    #[serde(default)]
    pub media: Vec<MediaInput>,
    /// A link the post carries.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub link: Option<Url>,
    /// Platform options (`privacy_level`, `mode`, `title`, ...).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: Map<String, Value>,
    /// When to publish; now when absent or past.
    #[serde(default)]
    pub publish_at: Option<DateTime<Utc>>,
}

impl CreatePost {
    /// Checks what no platform would accept at `now`, and returns the draft.
    pub(crate) fn draft(&self, now: DateTime<Utc>) -> Result<PostDraft, PostError> {
        // PostgreSQL's text and JSON refuse a NUL character; no platform takes one either.
        let options = serde_json::to_string(&self.options).unwrap_or_default();
        let has_nul = |text: &str| text.contains('\0') || text.contains("\\u0000");
        if self.text.contains('\0')
            || self.account.as_deref().is_some_and(|a| a.contains('\0'))
            || has_nul(&options)
        {
            return Err(PostError::Invalid(
                "text, account and options may not contain NUL characters".into(),
            ));
        }
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(PostError::Invalid(format!(
                "text is longer than {MAX_TEXT_BYTES} bytes"
            )));
        }
        if self.media.len() > MAX_MEDIA {
            return Err(PostError::Invalid(format!(
                "a post carries at most {MAX_MEDIA} media"
            )));
        }
        let web = |url: &Url| matches!(url.scheme(), "http" | "https") && url.host().is_some();
        if let Some(bad) = self.media.iter().find(|m| !web(&m.url)) {
            return Err(PostError::Invalid(format!(
                "media URL {} is not an http(s) URL",
                bad.url.scheme()
            )));
        }
        if self.link.as_ref().is_some_and(|link| !web(link)) {
            return Err(PostError::Invalid("link must be an http(s) URL".into()));
        }
        let horizon = now + chrono::Duration::days(MAX_SCHEDULE_DAYS);
        if self.publish_at.is_some_and(|at| at > horizon) {
            return Err(PostError::Invalid(format!(
                "publish_at is more than {MAX_SCHEDULE_DAYS} days ahead"
            )));
        }
        if self.text.trim().is_empty() && self.media.is_empty() && self.link.is_none() {
            return Err(PostError::Invalid(
                "a post needs text, media or a link".into(),
            ));
        }
        Ok(PostDraft {
            text: self.text.clone(),
            media: self
                .media
                .iter()
                .map(|m| MediaRef {
                    url: m.url.clone(),
                    kind: m.kind,
                })
                .collect(),
            link: self.link.clone(),
            options: self.options.clone(),
        })
    }

    /// A digest of the request, the same for the same post however its JSON was laid out (the
    /// options' keys sorted), to tell a retry from another post under the same key.
    pub(crate) fn digest(&self) -> String {
        let options: BTreeMap<&String, &Value> = self.options.iter().collect();
        let canonical = json!({
            "store_id": self.store_id,
            "platform": self.platform,
            "account": self.account,
            "text": self.text,
            "media": self.media,
            "link": self.link,
            "options": options,
            "publish_at": self.publish_at.map(|at| at.timestamp_millis()),
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The draft as stored.
pub(crate) fn stored_draft(draft: &PostDraft) -> Value {
    json!({
        "text": draft.text,
        "media": draft.media,
        "link": draft.link,
        "options": draft.options,
    })
}

/// The stored draft read back.
pub(crate) fn read_draft(stored: &Value) -> PostDraft {
    PostDraft {
        text: stored
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        media: stored
            .get("media")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok())
            .unwrap_or_default(),
        link: stored
            .get("link")
            .and_then(Value::as_str)
            .and_then(|l| Url::parse(l).ok()),
        options: stored
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    }
}

/// The asset a post goes to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostAccount {
    /// Its kind.
    pub kind: String,
    /// The platform's id of it.
    pub id: String,
}

/// The platform's post.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlatformPost {
    /// The platform's id of it.
    pub id: Option<String>,
    /// Where people see it.
    pub url: Option<String>,
}

/// Why a post failed (or is unknown).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostFailure {
    /// A stable code (`limit_reached`, `media_rejected`, `permission_missing`, ...).
    pub code: String,
    /// The platform's words, or ours.
    pub message: String,
}

/// The merchant's approval of a post.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostApproval {
    /// When an unanswered request expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
}

/// A post as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostView {
    /// Its id.
    pub id: Uuid,
    /// The store.
    pub store_id: String,
    /// The platform.
    pub platform: String,
    /// Where it goes.
    pub account: PostAccount,
    /// Where it stands.
    pub status: PostStatus,
    /// The text.
    pub text: String,
    /// The media.
    pub media: Vec<MediaInput>,
    /// The link.
    #[schema(value_type = Option<String>)]
    pub link: Option<Url>,
    /// The platform options.
    #[schema(value_type = Object)]
    pub options: Map<String, Value>,
    /// When it is to go out.
    pub publish_at: DateTime<Utc>,
    /// When the platform published it.
    pub published_at: Option<DateTime<Utc>>,
    /// The platform's post, once published.
    pub platform_post: Option<PlatformPost>,
    /// Why it failed, or why its outcome is unknown.
    pub error: Option<PostFailure>,
    /// The merchant's approval, where the store asks for it.
    pub approval: Option<PostApproval>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl PostView {
    /// The view of a stored post.
    pub fn of(row: &PostRow) -> Self {
        let draft = read_draft(&row.draft);
        let status = PostStatus::parse(&row.status).unwrap_or(PostStatus::Unknown);
        Self {
            id: row.id,
            store_id: row.store_id.clone(),
            platform: row.platform.clone(),
            account: PostAccount {
                kind: row.account_kind.clone(),
                id: row.account_id.clone(),
            },
            status,
            text: draft.text,
            media: draft
                .media
                .into_iter()
                .map(|m| MediaInput {
                    url: m.url,
                    kind: m.kind,
                })
                .collect(),
            link: draft.link,
            options: draft.options,
            publish_at: row.publish_at,
            published_at: row.published_at,
            platform_post: (status == PostStatus::Published).then(|| PlatformPost {
                id: row.platform_post_id.clone(),
                url: row.platform_url.clone(),
            }),
            error: row.error_code.as_ref().map(|code| PostFailure {
                code: code.clone(),
                message: row.error_message.clone().unwrap_or_default(),
            }),
            approval: (row.approval_expires_at.is_some() || row.decided_at.is_some()).then(|| {
                PostApproval {
                    expires_at: row.approval_expires_at,
                    decided_by: row.decided_by.clone(),
                    decided_at: row.decided_at,
                }
            }),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The webhook event of a post's change: the post's view (no media bytes, no token), plus
/// `extra` fields (the approval link).
pub(crate) fn post_event(
    event_type: &str,
    row: &PostRow,
    extra: Option<(&str, Value)>,
    at: DateTime<Utc>,
) -> NewEvent {
    let mut payload = json!({
        "type": event_type,
        "occurred_at": at,
        "post": PostView::of(row),
    });
    if let Some((name, value)) = extra {
        payload[name] = value;
    }
    NewEvent {
        event_type: event_type.to_owned(),
        payload,
        at,
    }
}
