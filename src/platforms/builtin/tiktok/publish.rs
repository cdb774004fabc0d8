//! TikTok's publishing client (platform-apis.md §2a "Publishing", T18, T19, T23): a video
//! (direct post or, `mode: inbox`, a draft in the creator's inbox) from the caller's bytes
//! (`FILE_UPLOAD`, chunked) or pulled by TikTok (`PULL_FROM_URL`), or photos (pulled).
//!
//! Options: `privacy_level` (one of the creator's `privacy_level_options`; when none is given,
//! `SELF_ONLY` if the creator offers it, the one level that shows the post to nobody else: a
//! merchant who wants it public says so), `disable_comment`, `disable_duet`, `disable_stitch`
//! (a choice the creator's settings already made for them stays made), `mode` (`direct`, the
//! default, or `inbox`), `source` (`file_upload`, the default for a video, since `PULL_FROM_URL`
//! needs the media's domain verified in the developer portal; `pull_from_url`, the only source
//! for photos).
//!
//! The stages, and which call is the send:
//! - `prepare_post`: `creator_info` (always, as TikTok asks: the levels are read fresh before each
//!   post) and, for `FILE_UPLOAD`, the init and every chunk **but the last**: TikTok posts
//!   nothing until the upload is complete, so these are safe to repeat (a repeat starts a new
//!   upload; the abandoned one expires), and the publish id is known before the send.
//! - `send_post`: for `FILE_UPLOAD` the last chunk, after which the post is out; for
//!   `PULL_FROM_URL` (videos, photos) the init, after which TikTok fetches and posts. Either
//!   answers `Accepted` with the publish id: TikTok publishes after processing.
//! - `confirm_post`: `status/fetch`. After a lost last chunk the publish id is in the checkpoint,
//!   so the outcome can be asked; after a lost pull init TikTok never named the post: unknowable.
//!   (Doing the init in the send as well would lose that: hence the init in prepare.)
//!
//! The video's duration is not known here (the bytes are not decoded), so the creator's
//! `max_video_post_duration_sec` is left to TikTok, which fails such a post in processing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::platforms::error::scrub;
use crate::platforms::platform::PublishContext;
use crate::platforms::publish::{
    refuse_unknown_options, ApiAnswer, ApiBody, ApiRequest, Confirmation, MediaKind, PostDraft,
    PostErrorCode, Prepared, PublishFailure, PublishedPost, Sent,
};

/// The asset kind TikTok publishes to.
pub(super) const KINDS: &[&str] = &["tiktok_creator"];

const OPTIONS: &[&str] = &[
    "privacy_level",
    "disable_comment",
    "disable_duet",
    "disable_stitch",
    "mode",
    "source",
];

const PRIVACY_LEVELS: [&str; 4] = [
    "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR",
    "SELF_ONLY",
];

/// A video title's and a photo description's longest (T19).
const VIDEO_TITLE_CHARS: usize = 2200;
const PHOTO_DESCRIPTION_CHARS: usize = 4000;
/// The most photos in one post (T19).
const MAX_PHOTOS: usize = 35;

const MB: u64 = 1024 * 1024;
/// Below this a video is uploaded as one chunk (T19, media transfer guide).
const MIN_CHUNK: u64 = 5 * MB;
/// The chunk size used above it: inside TikTok's 5 to 64 MB; the last chunk takes the
/// remainder (under 2 chunk sizes, within the 128 MB a last chunk may have).
const CHUNK: u64 = 10_000_000;
/// The most chunks (T19).
const MAX_CHUNKS: u64 = 1000;

/// When to ask TikTok about a post it is processing.
const CHECK_IN: Duration = Duration::from_secs(5);

/// Checks a post for the TikTok creator before it is accepted.
pub(super) fn check_draft(kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
    if !KINDS.contains(&kind) {
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!("TikTok publishes to the creator, not a {kind}"),
        ));
    }
    refuse_unknown_options(draft, OPTIONS)?;
    let options = Options::read(&draft.options)?;
    let invalid = |message: String| {
        Err(PublishFailure::permanent(
            PostErrorCode::InvalidPost,
            message,
        ))
    };
    if draft.link.is_some() {
        return invalid("a TikTok post cannot carry a link".to_owned());
    }
    let videos = draft
        .media
        .iter()
        .filter(|m| m.kind == MediaKind::Video)
        .count();
    let images = draft.media.len() - videos;
    match (videos, images) {
        (1, 0) => {
            if draft.text.chars().count() > VIDEO_TITLE_CHARS {
                return invalid(format!(
                    "a TikTok video's title holds at most {VIDEO_TITLE_CHARS} characters"
                ));
            }
        }
        (0, 1..=MAX_PHOTOS) => {
            if draft.text.chars().count() > PHOTO_DESCRIPTION_CHARS {
                return invalid(format!(
                    "a TikTok photo post's description holds at most {PHOTO_DESCRIPTION_CHARS} characters"
                ));
            }
            if options.source == Some(Source::FileUpload) {
                return invalid(
                    "TikTok takes photos from URLs only: use source pull_from_url".to_owned(),
                );
            }
        }
        (0, 0) => return invalid("a TikTok post needs a video or photos".to_owned()),
        _ => {
            return invalid(format!(
                "a TikTok post is one video, or 1 to {MAX_PHOTOS} photos, not both"
            ))
        }
    }
    if options.inbox
        && (options.privacy_level.is_some()
            || options.disable_comment
            || options.disable_duet
            || options.disable_stitch)
    {
        return invalid(
            "in inbox mode the creator chooses privacy and interactions in the TikTok app"
                .to_owned(),
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    FileUpload,
    PullFromUrl,
}

/// The post's options, read.
struct Options {
    privacy_level: Option<String>,
    disable_comment: bool,
    disable_duet: bool,
    disable_stitch: bool,
    inbox: bool,
    source: Option<Source>,
}

impl Options {
    fn read(options: &Map<String, Value>) -> Result<Self, PublishFailure> {
        let invalid =
            |message: String| PublishFailure::permanent(PostErrorCode::InvalidPost, message);
        let flag = |name: &str| match options.get(name) {
            None => Ok(false),
            Some(Value::Bool(on)) => Ok(*on),
            Some(_) => Err(invalid(format!("option {name} must be true or false"))),
        };
        let privacy_level = match options.get("privacy_level") {
            None => None,
            Some(Value::String(level)) if PRIVACY_LEVELS.contains(&level.as_str()) => {
                Some(level.clone())
            }
            Some(_) => {
                return Err(invalid(format!(
                    "option privacy_level must be one of {}",
                    PRIVACY_LEVELS.join(", ")
                )))
            }
        };
        let inbox = match options.get("mode").map(|m| m.as_str()) {
            None | Some(Some("direct")) => false,
            Some(Some("inbox")) => true,
            Some(_) => return Err(invalid("option mode must be direct or inbox".to_owned())),
        };
        let source = match options.get("source").map(|s| s.as_str()) {
            None => None,
            Some(Some("file_upload")) => Some(Source::FileUpload),
            Some(Some("pull_from_url")) => Some(Source::PullFromUrl),
            Some(_) => {
                return Err(invalid(
                    "option source must be file_upload or pull_from_url".to_owned(),
                ))
            }
        };
        Ok(Self {
            privacy_level,
            disable_comment: flag("disable_comment")?,
            disable_duet: flag("disable_duet")?,
            disable_stitch: flag("disable_stitch")?,
            inbox,
            source,
        })
    }
}

fn is_photo_post(draft: &PostDraft) -> bool {
    draft.media.iter().all(|m| m.kind == MediaKind::Image)
}

/// The post's source: photos are always pulled; a video is uploaded unless told otherwise.
fn source_of(draft: &PostDraft, options: &Options) -> Source {
    if is_photo_post(draft) {
        Source::PullFromUrl
    } else {
        options.source.unwrap_or(Source::FileUpload)
    }
}

/// `prepare_post`: creator_info, then for a file upload its init and all chunks but the last.
pub(super) async fn prepare(context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
    if context.checkpoint.get("ready").and_then(Value::as_bool) == Some(true) {
        return Ok(Prepared::Ready(context.checkpoint.clone()));
    }
    let options = Options::read(&context.draft.options)?;
    let mut checkpoint = creator_check(context, &options).await?;
    if source_of(context.draft, &options) == Source::FileUpload {
        let medium = context.media.fetch(&first_url(context)?).await?;
        let plan = ChunkPlan::new(medium.bytes.len() as u64)?;
        let init = if options.inbox {
            "post/publish/inbox/video/init/"
        } else {
            "post/publish/video/init/"
        };
        let mut body = json!({ "source_info": {
            "source": "FILE_UPLOAD",
            "video_size": plan.size,
            "chunk_size": plan.chunk,
            "total_chunk_count": plan.count,
        } });
        if !options.inbox {
            body["post_info"] = post_info(context.draft, &checkpoint);
        }
        let data = init_call(context, init, body, false).await?;
        let (Some(publish_id), Some(upload_url)) =
            (data["publish_id"].as_str(), data["upload_url"].as_str())
        else {
            return Err(PublishFailure::transient(
                PostErrorCode::PlatformUnavailable,
                "TikTok answered the upload's init without a publish_id or upload_url",
            ));
        };
        let content_type = video_type(&medium.content_type);
        for index in 0..plan.count - 1 {
            upload_chunk(
                context,
                upload_url,
                &plan,
                index,
                &medium.bytes,
                &content_type,
                false,
            )
            .await?;
        }
        checkpoint["publish_id"] = json!(publish_id);
        checkpoint["upload_url"] = json!(upload_url);
        checkpoint["video_size"] = json!(plan.size);
        checkpoint["chunk_size"] = json!(plan.chunk);
        checkpoint["total_chunk_count"] = json!(plan.count);
    }
    checkpoint["ready"] = json!(true);
    Ok(Prepared::Ready(checkpoint))
}

/// `creator_info` (T18): the creator's privacy levels and settings, checked against the post's
/// options; answers the checkpoint's choices. In inbox mode (scope `video.upload` may be all the
/// grant has) a refused scope is not an error: the creator chooses in the app.
async fn creator_check(
    context: &PublishContext<'_>,
    options: &Options,
) -> Result<Value, PublishFailure> {
    let url = context.api_url("post/publish/creator_info/query/")?;
    let answer = context
        .call(ApiRequest::new(Method::POST, url).body(ApiBody::Json(json!({}))))
        .await?;
    let data = match envelope(&answer) {
        Ok(data) => data,
        Err(code) if options.inbox && code == "scope_not_authorized" => Value::Null,
        Err(_) => return Err(tiktok_failure(&answer, false)),
    };
    let mut checkpoint = json!({
        "mode": if options.inbox { "inbox" } else { "direct" },
        "username": data.get("creator_username"),
    });
    if options.inbox {
        return Ok(checkpoint);
    }
    let offered: Vec<&str> = data["privacy_level_options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let privacy = match &options.privacy_level {
        Some(level) if offered.contains(&level.as_str()) => level.clone(),
        Some(level) => {
            return Err(PublishFailure::permanent(
                PostErrorCode::InvalidPost,
                format!(
                    "this TikTok creator cannot post with privacy_level {level}: choose one of {}",
                    offered.join(", ")
                ),
            ))
        }
        None if offered.contains(&"SELF_ONLY") => "SELF_ONLY".to_owned(),
        None => {
            return Err(PublishFailure::permanent(
                PostErrorCode::InvalidPost,
                format!(
                    "choose a privacy_level for this TikTok creator: one of {}",
                    offered.join(", ")
                ),
            ))
        }
    };
    checkpoint["privacy_level"] = json!(privacy);
    // A setting the creator turned off in the app stays off (T18: render it disabled).
    for (option, setting, wanted) in [
        (
            "disable_comment",
            "comment_disabled",
            options.disable_comment,
        ),
        ("disable_duet", "duet_disabled", options.disable_duet),
        ("disable_stitch", "stitch_disabled", options.disable_stitch),
    ] {
        checkpoint[option] = json!(wanted || data[setting].as_bool() == Some(true));
    }
    Ok(checkpoint)
}

/// `post_info` of a direct video post.
fn post_info(draft: &PostDraft, checkpoint: &Value) -> Value {
    json!({
        "title": draft.text,
        "privacy_level": checkpoint["privacy_level"],
        "disable_comment": checkpoint["disable_comment"],
        "disable_duet": checkpoint["disable_duet"],
        "disable_stitch": checkpoint["disable_stitch"],
    })
}

/// `send_post`: the last chunk of an upload, or the init of a pull.
pub(super) async fn send(context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
    let options = Options::read(&context.draft.options)?;
    let checkpoint = context.checkpoint;
    let mut accepted = checkpoint.clone();
    if let Some(upload_url) = context.checkpoint_str("upload_url") {
        let plan = ChunkPlan {
            size: checkpoint["video_size"].as_u64().unwrap_or(0),
            chunk: checkpoint["chunk_size"].as_u64().unwrap_or(0),
            count: checkpoint["total_chunk_count"].as_u64().unwrap_or(0),
        };
        let medium = context.media.fetch(&first_url(context)?).await?;
        if medium.bytes.len() as u64 != plan.size {
            return Err(PublishFailure::transient(
                PostErrorCode::MediaUnavailable,
                "the video changed since its upload began: it will be uploaded again",
            ));
        }
        let content_type = video_type(&medium.content_type);
        upload_chunk(
            context,
            upload_url,
            &plan,
            plan.count - 1,
            &medium.bytes,
            &content_type,
            true,
        )
        .await?;
    } else if is_photo_post(context.draft) {
        let images: Vec<String> = context
            .draft
            .media
            .iter()
            .map(|m| m.url.to_string())
            .collect();
        let mut post_info = json!({ "description": context.draft.text });
        if !options.inbox {
            post_info["privacy_level"] = checkpoint["privacy_level"].clone();
            post_info["disable_comment"] = checkpoint["disable_comment"].clone();
        }
        let body = json!({
            "media_type": "PHOTO",
            "post_mode": if options.inbox { "MEDIA_UPLOAD" } else { "DIRECT_POST" },
            "post_info": post_info,
            "source_info": {
                "source": "PULL_FROM_URL",
                "photo_images": images,
                "photo_cover_index": 0,
            },
        });
        let data = init_call(context, "post/publish/content/init/", body, true).await?;
        accepted["publish_id"] = data["publish_id"].clone();
    } else {
        let mut body = json!({ "source_info": {
            "source": "PULL_FROM_URL",
            "video_url": first_url(context)?.to_string(),
        } });
        let init = if options.inbox {
            "post/publish/inbox/video/init/"
        } else {
            body["post_info"] = post_info(context.draft, checkpoint);
            "post/publish/video/init/"
        };
        let data = init_call(context, init, body, true).await?;
        accepted["publish_id"] = data["publish_id"].clone();
    }
    Ok(Sent::Accepted {
        checkpoint: accepted,
        check_in: CHECK_IN,
    })
}

/// `confirm_post`: `status/fetch` of the publish id (T19).
pub(super) async fn confirm(context: &PublishContext<'_>) -> Result<Confirmation, PublishFailure> {
    let Some(publish_id) = context.checkpoint_str("publish_id") else {
        // A pull whose init answer was lost: TikTok never named the post.
        return Ok(Confirmation::Unknowable);
    };
    let url = context.api_url("post/publish/status/fetch/")?;
    let answer = context
        .call(
            ApiRequest::new(Method::POST, url)
                .body(ApiBody::Json(json!({ "publish_id": publish_id }))),
        )
        .await?;
    let data = envelope(&answer).map_err(|_| tiktok_failure(&answer, false))?;
    Ok(match data["status"].as_str() {
        Some("PUBLISH_COMPLETE") => {
            let id = match &data["publicaly_available_post_id"][0] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            let path = if is_photo_post(context.draft) {
                "photo"
            } else {
                "video"
            };
            let url = match (context.checkpoint_str("username"), &id) {
                (Some(user), Some(id)) => {
                    Some(format!("https://www.tiktok.com/@{user}/{path}/{id}"))
                }
                _ => None,
            };
            Confirmation::Published(PublishedPost { id, url })
        }
        // Inbox mode: it is in the creator's inbox, where they finish it in the app.
        Some("SEND_TO_USER_INBOX") => Confirmation::Published(PublishedPost {
            id: None,
            url: None,
        }),
        Some("FAILED") => {
            let reason = data["fail_reason"].as_str().unwrap_or("unknown");
            Confirmation::Failed(PublishFailure::permanent(
                fail_reason_code(reason),
                format!("TikTok did not publish the post: {}", scrub(reason)),
            ))
        }
        // A file upload whose last chunk never landed (its answer was an ambiguous 5xx, or lost
        // before it arrived): TikTok will not post it.
        Some("PROCESSING_UPLOAD") if upload_incomplete(context.checkpoint, &data) => {
            Confirmation::Failed(PublishFailure::permanent(
                PostErrorCode::PlatformUnavailable,
                "TikTok did not receive the whole video, so it was not posted: post it again",
            ))
        }
        _ => Confirmation::Processing(CHECK_IN),
    })
}

/// Whether TikTok's `uploaded_bytes` (T19) is short of the video's size.
fn upload_incomplete(checkpoint: &Value, status: &Value) -> bool {
    match (
        checkpoint["video_size"].as_u64(),
        status["uploaded_bytes"].as_u64(),
    ) {
        (Some(size), Some(uploaded)) => uploaded < size,
        _ => false,
    }
}

/// The post's (only) video, or its first medium.
fn first_url(context: &PublishContext<'_>) -> Result<url::Url, PublishFailure> {
    context
        .draft
        .media
        .first()
        .map(|m| m.url.clone())
        .ok_or_else(|| {
            PublishFailure::permanent(PostErrorCode::InvalidPost, "the post has no media")
        })
}

/// The upload's `Content-Type`: the caller's when it names a video, else MP4.
fn video_type(named: &str) -> String {
    let named = named.split(';').next().unwrap_or_default().trim();
    if ["video/mp4", "video/quicktime", "video/webm"].contains(&named) {
        named.to_owned()
    } else {
        "video/mp4".to_owned()
    }
}

/// How a video is cut (T19, media transfer guide): whole below 5 MB; else 10 MB chunks, as many
/// as fit whole (`video_size / chunk_size` rounded down), the last taking the remainder.
struct ChunkPlan {
    size: u64,
    chunk: u64,
    count: u64,
}

impl ChunkPlan {
    fn new(size: u64) -> Result<Self, PublishFailure> {
        if size == 0 {
            return Err(PublishFailure::permanent(
                PostErrorCode::MediaUnavailable,
                "the video is empty",
            ));
        }
        let chunk = if size < MIN_CHUNK {
            size
        } else {
            CHUNK.min(size)
        };
        let count = size / chunk;
        if count > MAX_CHUNKS {
            return Err(PublishFailure::permanent(
                PostErrorCode::MediaRejected,
                "the video is too large for TikTok's upload",
            ));
        }
        Ok(Self { size, chunk, count })
    }

    /// The byte range of chunk `index`.
    fn range(&self, index: u64) -> (u64, u64) {
        let first = index * self.chunk;
        let last = if index + 1 == self.count {
            self.size - 1
        } else {
            first + self.chunk - 1
        };
        (first, last)
    }
}

/// `PUT {upload_url}` of chunk `index`, without the token (the URL is its credential).
async fn upload_chunk(
    context: &PublishContext<'_>,
    upload_url: &str,
    plan: &ChunkPlan,
    index: u64,
    bytes: &bytes::Bytes,
    content_type: &str,
    final_send: bool,
) -> Result<(), PublishFailure> {
    let url = url::Url::parse(upload_url).map_err(|_| {
        PublishFailure::transient(
            PostErrorCode::PlatformUnavailable,
            "TikTok answered an unusable upload_url",
        )
    })?;
    let (first, last) = plan.range(index);
    let (Ok(start), Ok(end)) = (usize::try_from(first), usize::try_from(last + 1)) else {
        return Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            "the video is too large",
        ));
    };
    let request = ApiRequest::new(Method::PUT, url)
        .without_token()
        .header(
            "Content-Range",
            format!("bytes {first}-{last}/{}", plan.size),
        )
        .body(ApiBody::Bytes {
            content_type: content_type.to_owned(),
            bytes: bytes.slice(start..end),
        });
    let answer = context.call(request).await?;
    if answer.is_success() {
        return Ok(());
    }
    if answer.status >= 500 {
        return Err(PublishFailure {
            answer_lost: final_send,
            ..PublishFailure::transient(
                PostErrorCode::PlatformUnavailable,
                format!("TikTok's upload answered HTTP {}", answer.status),
            )
        });
    }
    Err(tiktok_failure(&answer, final_send))
}

/// A posting init: its `data`, or the failure.
async fn init_call(
    context: &PublishContext<'_>,
    path: &str,
    body: Value,
    final_send: bool,
) -> Result<Value, PublishFailure> {
    let url = context.api_url(path)?;
    let answer = context
        .call(ApiRequest::new(Method::POST, url).body(ApiBody::Json(body)))
        .await?;
    let data = envelope(&answer).map_err(|_| tiktok_failure(&answer, final_send))?;
    if data["publish_id"].as_str().is_none() {
        return Err(PublishFailure {
            // Accepted, but unnamed: the outcome cannot be asked.
            answer_lost: final_send,
            ..PublishFailure::transient(
                PostErrorCode::PlatformUnavailable,
                "TikTok answered the init without a publish_id",
            )
        });
    }
    Ok(data)
}

/// The `data` of a successful answer (`error.code` `ok`, T6), or the error code.
fn envelope(answer: &ApiAnswer) -> Result<Value, String> {
    let code = answer.body["error"]["code"].as_str();
    match code {
        Some("ok") | None if answer.is_success() => Ok(answer.body["data"].clone()),
        Some(code) => Err(code.to_owned()),
        None => Err(String::new()),
    }
}

/// A TikTok error answer as a stage's failure (T6, T17, T19, T20, T23). `final_send`: the call
/// after which the post may be out, where a 5xx is ambiguous and so reported as a lost answer.
pub(super) fn tiktok_failure(answer: &ApiAnswer, final_send: bool) -> PublishFailure {
    let code = answer.body["error"]["code"].as_str().unwrap_or_default();
    let message = answer.body["error"]["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(scrub)
        .unwrap_or_else(|| format!("TikTok answered HTTP {} ({code})", answer.status));
    let permanent = |code| PublishFailure::permanent(code, message.clone());
    match code {
        "access_token_invalid" => permanent(PostErrorCode::ReconnectRequired),
        "scope_not_authorized" | "scope_permission_missed" => {
            permanent(PostErrorCode::PermissionMissing)
        }
        "rate_limit_exceeded" => PublishFailure::transient(PostErrorCode::RateLimited, message.clone())
            .after(answer.retry_after()),
        "spam_risk_too_many_posts" | "spam_risk_too_many_pending_share" => {
            permanent(PostErrorCode::LimitReached)
        }
        "spam_risk_user_banned_from_posting"
        | "unaudited_client_can_only_post_to_private_accounts"
        | "reached_active_user_cap" => permanent(PostErrorCode::AccountNotEligible),
        "url_ownership_unverified" => PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            format!(
                "TikTok pulls media only from a domain verified for this app in the TikTok developer portal: verify the media's domain, or post the video with source file_upload ({message})"
            ),
        ),
        "invalid_params" | "invalid_file_upload" | "privacy_level_option_mismatch" => {
            permanent(PostErrorCode::InvalidPost)
        }
        _ if answer.status >= 500 || code == "internal_error" => PublishFailure {
            answer_lost: final_send,
            ..PublishFailure::transient(PostErrorCode::PlatformUnavailable, message.clone())
        },
        _ => permanent(PostErrorCode::InvalidPost),
    }
}

/// The code of a publish status's `fail_reason` (T19).
fn fail_reason_code(reason: &str) -> PostErrorCode {
    match reason {
        "auth_removed" => PostErrorCode::ReconnectRequired,
        "spam_risk_too_many_posts" | "spam_risk" => PostErrorCode::LimitReached,
        "spam_risk_user_banned_from_posting" => PostErrorCode::AccountNotEligible,
        "internal" => PostErrorCode::PlatformUnavailable,
        "privacy_level_option_mismatch" => PostErrorCode::InvalidPost,
        _ => PostErrorCode::MediaRejected,
    }
}

#[cfg(test)]
#[cfg(feature = "sandbox")]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use serde_json::json;

    use super::*;
    use crate::platforms::builtin::publish_harness::{
        draft, target, video_bytes, FixedMedia, Harness,
    };
    use crate::platforms::publish::{MediaRef, PublishTarget};

    async fn tiktok(scopes: &[&str]) -> (Harness, PublishTarget) {
        let harness = Harness::start("tiktok").await;
        let token = harness.token(scopes).await;
        let creator = target("tiktok_creator", "sbx-tiktok-open-id", &token);
        (harness, creator)
    }

    const SCOPES: &[&str] = &["user.info.basic", "video.publish", "video.upload"];

    fn video(size: usize) -> FixedMedia {
        FixedMedia {
            content_type: "video/mp4",
            bytes: video_bytes(size),
        }
    }

    fn accepted(sent: Sent) -> Value {
        match sent {
            Sent::Accepted { checkpoint, .. } => checkpoint,
            other => panic!("not accepted: {other:?}"),
        }
    }

    /// Confirms until TikTok says something else than processing, advancing the sandbox clock.
    async fn confirmed(
        harness: &Harness,
        post: &crate::platforms::builtin::publish_harness::Post<'_>,
        checkpoint: &Value,
    ) -> Confirmation {
        for _ in 0..50 {
            match post.confirm(checkpoint).await.unwrap() {
                Confirmation::Processing(after) => {
                    harness
                        .clock
                        .advance(chrono::Duration::from_std(after).unwrap());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
        panic!("still processing");
    }

    #[tokio::test]
    async fn a_large_file_is_uploaded_in_chunks_and_the_last_one_publishes_it() {
        let (harness, creator) = tiktok(SCOPES).await;
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("Behind the scenes", vec![clip], json!({}));
        let media = video(21_000_000);
        let post = harness.post(&draft, &creator, &media);

        let ready = post.prepare_until_ready().await.unwrap();
        assert_eq!(ready["total_chunk_count"], 2);
        assert_eq!(ready["chunk_size"], CHUNK);
        assert_eq!(ready["privacy_level"], "SELF_ONLY");
        assert_eq!(ready["username"], "sandboxmerchant");
        // Everything but the last chunk is up; nothing is posted yet.
        assert!(harness.sim.published("tiktok").is_empty());

        let checkpoint = accepted(post.send(&ready).await.unwrap());
        assert!(checkpoint["publish_id"].is_string());
        let items = harness.sim.published("tiktok");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].fields["post_info"]["title"], "Behind the scenes");
        assert_eq!(items[0].fields["post_info"]["privacy_level"], "SELF_ONLY");
        assert_eq!(items[0].fields["source_info"]["video_size"], 21_000_000);

        assert!(matches!(
            post.confirm(&checkpoint).await.unwrap(),
            Confirmation::Processing(_)
        ));
        let Confirmation::Published(published) = confirmed(&harness, &post, &checkpoint).await
        else {
            panic!("not published");
        };
        let id = published.id.unwrap();
        assert_eq!(id, items[0].id);
        assert_eq!(
            published.url.as_deref(),
            Some(format!("https://www.tiktok.com/@sandboxmerchant/video/{id}").as_str())
        );
    }

    #[test]
    fn chunks_follow_tiktoks_rules() {
        let plan = ChunkPlan::new(4_000_000).unwrap();
        assert_eq!((plan.chunk, plan.count), (4_000_000, 1));
        let plan = ChunkPlan::new(7_000_000).unwrap();
        assert_eq!((plan.chunk, plan.count), (7_000_000, 1));
        let plan = ChunkPlan::new(25_500_000).unwrap();
        assert_eq!((plan.chunk, plan.count), (CHUNK, 2));
        assert_eq!(plan.range(0), (0, 9_999_999));
        assert_eq!(plan.range(1), (10_000_000, 25_499_999));
        assert!(ChunkPlan::new(0).is_err());
        assert!(ChunkPlan::new(CHUNK * 1001).is_err());
    }

    #[tokio::test]
    async fn a_pull_from_an_unverified_domain_is_refused_and_works_once_verified() {
        let (harness, creator) = tiktok(SCOPES).await;
        let clip = harness.media("video.mp4", MediaKind::Video);
        let draft = draft(
            "Pulled",
            vec![clip],
            json!({ "source": "pull_from_url", "privacy_level": "PUBLIC_TO_EVERYONE" }),
        );
        let media = video(10);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();
        assert!(ready.get("publish_id").is_none());

        let refused = post.send(&ready).await.unwrap_err();
        assert_eq!(refused.code, PostErrorCode::MediaRejected);
        assert!(refused.message.contains("verified"), "{}", refused.message);
        assert!(!refused.transient && !refused.answer_lost);

        harness.sim.verify_tiktok_domain("127.0.0.1");
        let checkpoint = accepted(post.send(&ready).await.unwrap());
        let Confirmation::Published(published) = confirmed(&harness, &post, &checkpoint).await
        else {
            panic!("not published");
        };
        assert!(published.url.is_some());
        let items = harness.sim.published("tiktok");
        assert_eq!(
            items[0].fields["post_info"]["privacy_level"],
            "PUBLIC_TO_EVERYONE"
        );
    }

    #[tokio::test]
    async fn a_lost_last_chunk_is_confirmed_by_the_publish_status() {
        let (harness, creator) = tiktok(SCOPES).await;
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("Lost", vec![clip], json!({}));
        let media = video(2_000_000);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();

        harness
            .sim
            .lose_next_api_answers("tiktok", "/upload/video/", 1);
        let lost = post.send(&ready).await.unwrap_err();
        assert!(lost.answer_lost, "{lost:?}");
        // The engine confirms with the Ready checkpoint, which already names the publish id.
        let Confirmation::Published(published) = confirmed(&harness, &post, &ready).await else {
            panic!("the last chunk landed");
        };
        assert!(published.id.is_some());
    }

    #[tokio::test]
    async fn a_5xx_to_the_last_chunk_is_ambiguous_and_confirmed_as_not_posted() {
        let (harness, creator) = tiktok(SCOPES).await;
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("Failed", vec![clip], json!({}));
        let media = video(2_000_000);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();

        harness
            .sim
            .fail_next_api_calls("tiktok", "/upload/video/", 502, 1);
        let failed = post.send(&ready).await.unwrap_err();
        assert!(failed.answer_lost, "{failed:?}");
        let Confirmation::Failed(failure) = post.confirm(&ready).await.unwrap() else {
            panic!("the upload is incomplete");
        };
        assert_eq!(failure.code, PostErrorCode::PlatformUnavailable);
        assert!(harness.sim.published("tiktok").is_empty());
    }

    #[tokio::test]
    async fn an_unaudited_client_is_an_account_not_eligible() {
        let (harness, creator) = tiktok(SCOPES).await;
        harness.sim.set_tiktok_unaudited(true);
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("x", vec![clip], json!({}));
        let media = video(100);
        let failure = harness
            .post(&draft, &creator, &media)
            .prepare(&Value::Null)
            .await
            .unwrap_err();
        assert_eq!(failure.code, PostErrorCode::AccountNotEligible);
    }

    #[tokio::test]
    async fn inbox_mode_sends_a_draft_to_the_creator() {
        let (harness, creator) = tiktok(SCOPES).await;
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("For later", vec![clip], json!({ "mode": "inbox" }));
        let media = video(1_000_000);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();
        assert_eq!(ready["total_chunk_count"], 1);
        let checkpoint = accepted(post.send(&ready).await.unwrap());
        assert_eq!(
            confirmed(&harness, &post, &checkpoint).await,
            Confirmation::Published(PublishedPost {
                id: None,
                url: None
            })
        );
        let items = harness.sim.published("tiktok");
        assert_eq!(items[0].kind, "tiktok_video_inbox_draft");
        assert!(items[0].fields.get("post_info").is_none());
    }

    #[tokio::test]
    async fn photos_are_pulled_from_a_verified_domain() {
        let (harness, creator) = tiktok(SCOPES).await;
        harness.sim.verify_tiktok_domain("127.0.0.1");
        let photos: Vec<MediaRef> = (0..2)
            .map(|_| harness.media("image.jpg", MediaKind::Image))
            .collect();
        let draft = draft("Lookbook", photos, json!({}));
        let media = video(10);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();
        let checkpoint = accepted(post.send(&ready).await.unwrap());
        let Confirmation::Published(published) = confirmed(&harness, &post, &checkpoint).await
        else {
            panic!("not published");
        };
        assert!(published.url.unwrap().contains("/photo/"));
        let items = harness.sim.published("tiktok");
        assert_eq!(items[0].kind, "tiktok_photo");
        assert_eq!(items[0].fields["post_mode"], "DIRECT_POST");
    }

    #[tokio::test]
    async fn a_failed_pull_is_confirmed_as_failed() {
        let (harness, creator) = tiktok(SCOPES).await;
        harness.sim.verify_tiktok_domain("127.0.0.1");
        let clip = harness.media("missing.mp4", MediaKind::Video);
        let draft = draft("Gone", vec![clip], json!({ "source": "pull_from_url" }));
        let media = video(10);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();
        let checkpoint = accepted(post.send(&ready).await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Confirmation::Failed(failure) = confirmed(&harness, &post, &checkpoint).await else {
            panic!("not failed");
        };
        assert_eq!(failure.code, PostErrorCode::MediaRejected);
        assert!(failure.message.contains("video_pull_failed"));
    }

    #[tokio::test]
    async fn a_lost_pull_init_answer_leaves_the_outcome_unknowable() {
        let (harness, creator) = tiktok(SCOPES).await;
        harness.sim.verify_tiktok_domain("127.0.0.1");
        let clip = harness.media("video.mp4", MediaKind::Video);
        let draft = draft("Lost", vec![clip], json!({ "source": "pull_from_url" }));
        let media = video(10);
        let post = harness.post(&draft, &creator, &media);
        let ready = post.prepare_until_ready().await.unwrap();
        harness
            .sim
            .lose_next_api_answers("tiktok", "/post/publish/video/init/", 1);
        let lost = post.send(&ready).await.unwrap_err();
        assert!(lost.answer_lost);
        assert_eq!(
            post.confirm(&ready).await.unwrap(),
            Confirmation::Unknowable
        );
    }

    #[tokio::test]
    async fn a_privacy_level_the_creator_does_not_offer_and_a_missing_scope_are_refused() {
        let (harness, creator) = tiktok(&["user.info.basic"]).await;
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("x", vec![clip], json!({}));
        let media = video(10);
        let failure = harness
            .post(&draft, &creator, &media)
            .prepare(&Value::Null)
            .await
            .unwrap_err();
        assert_eq!(failure.code, PostErrorCode::PermissionMissing);
    }

    #[test]
    fn drafts_tiktok_would_refuse_are_refused_at_once() {
        let medium = |kind| MediaRef {
            url: url::Url::parse("https://cdn.example/a").unwrap(),
            kind,
        };
        let code = |d: PostDraft| check_draft("tiktok_creator", &d).map_err(|f| f.code);
        let video = || vec![medium(MediaKind::Video)];
        assert_eq!(code(draft("x", video(), json!({}))), Ok(()));
        assert_eq!(
            code(draft("x", vec![], json!({}))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft(
                "x",
                vec![medium(MediaKind::Video), medium(MediaKind::Image)],
                json!({})
            )),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft("x", video(), json!({ "privacy_level": "EVERYONE" }))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft("x", video(), json!({ "mode": "later" }))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft("x", video(), json!({ "colour": "red" }))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft(
                "x",
                video(),
                json!({ "mode": "inbox", "privacy_level": "SELF_ONLY" })
            )),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft(
                "x",
                vec![medium(MediaKind::Image)],
                json!({ "source": "file_upload" })
            )),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(draft(&"a".repeat(2201), video(), json!({}))),
            Err(PostErrorCode::InvalidPost)
        );
        assert!(check_draft("board", &draft("x", video(), json!({}))).is_err());
    }

    #[test]
    fn tiktok_errors_map_to_stable_codes() {
        let answer = |status: u16, code: &str| ApiAnswer {
            status,
            headers: Default::default(),
            body: json!({ "data": {}, "error": { "code": code, "message": "m" } }),
        };
        let code = |a: ApiAnswer| tiktok_failure(&a, false).code;
        assert_eq!(
            code(answer(401, "access_token_invalid")),
            PostErrorCode::ReconnectRequired
        );
        assert_eq!(
            code(answer(401, "scope_not_authorized")),
            PostErrorCode::PermissionMissing
        );
        assert_eq!(
            code(answer(429, "rate_limit_exceeded")),
            PostErrorCode::RateLimited
        );
        assert_eq!(
            code(answer(403, "spam_risk_too_many_posts")),
            PostErrorCode::LimitReached
        );
        assert_eq!(
            code(answer(400, "invalid_params")),
            PostErrorCode::InvalidPost
        );
        assert_eq!(
            code(answer(403, "url_ownership_unverified")),
            PostErrorCode::MediaRejected
        );
        assert_eq!(
            code(answer(
                403,
                "unaudited_client_can_only_post_to_private_accounts"
            )),
            PostErrorCode::AccountNotEligible
        );
        assert!(tiktok_failure(&answer(500, "internal_error"), true).answer_lost);
        assert!(tiktok_failure(&answer(429, "rate_limit_exceeded"), true).transient);
    }
}
