//! Publishing a post on X: the media uploaded in `prepare_post` with the v2 chunked upload
//! (initialize, append, finalize, and the upload's status while X processes a video), then
//! `POST /2/tweets` with the text and the media ids, and X's problem-JSON errors read into the
//! stable codes. Sources: `shared/platform-apis.md` §5 [X2, X5, X10, X11, X12, X13]; the upload:
//! <https://docs.x.com/x-api/media/initialize-media-upload> (a JSON body of `media_type`,
//! `total_bytes`, `media_category`; "Do not send `command=INIT`"), `.../append-media-upload`
//! (`segment_index` from 0 and the file part `media`, "at or below 5 MB"),
//! `.../finalize-media-upload` ("If `processing_info` is present, poll `GET /2/media/upload`
//! until `state` is `succeeded`"), `.../get-media-upload-status` (`command=STATUS&media_id=`),
//! `.../quickstart/best-practices` ("up to 4 photos, 1 animated GIF or 1 video in a Post") and
//! `.../introduction` (5 MB an image, 15 MB a GIF).
//!
//! A lost answer stays unknown (`confirm_post` keeps the default, `Unknowable`): `POST /2/tweets`
//! takes no idempotency key, and reading the user's timeline for the text would need
//! `GET /2/users/{id}/tweets` reads that the sandbox does not serve yet and that a media-only
//! post could not be matched by.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::platforms::error::scrub;
use crate::platforms::platform::PublishContext;
use crate::platforms::publish::{
    refuse_unknown_options, ApiAnswer, ApiBody, ApiRequest, MediaKind, MediaRef, PostDraft,
    PostErrorCode, Prepared, PublishFailure, PublishedPost, Sent,
};

/// The one kind of target: the connected user.
pub(super) const KINDS: &[&str] = &["x_user"];

/// The most weighted characters a post holds.
const MAX_WEIGHTED_LENGTH: usize = 280;

/// What a URL weighs, whatever its length (X wraps every link in a t.co link).
const URL_WEIGHT: usize = 23;

/// The most images a post carries; a video (or GIF) goes alone.
const MAX_IMAGES: usize = 4;

/// The size of an append's segment: the docs' "at or below 5 MB", with room to spare.
const SEGMENT: usize = 4 * 1024 * 1024;

/// Size limits of the upload (introduction): images 5 MB, GIFs 15 MB.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
const MAX_GIF_BYTES: usize = 15 * 1024 * 1024;

/// How long to wait for a video whose status names no wait.
const DEFAULT_PROCESSING_WAIT: Duration = Duration::from_secs(5);

fn invalid(message: impl Into<String>) -> PublishFailure {
    PublishFailure::permanent(PostErrorCode::InvalidPost, message)
}

/// The post's text: the text, and the link after it (X has no separate link field).
fn post_text(draft: &PostDraft) -> String {
    match &draft.link {
        Some(link) if draft.text.is_empty() => link.to_string(),
        Some(link) => format!("{} {link}", draft.text),
        None => draft.text.clone(),
    }
}

/// A text's length as X counts it, as far as is reasonable here: twitter-text's v3 weights
/// (<https://docs.x.com/fundamentals/counting-characters>; code points U+0000–U+10FF,
/// U+2000–U+200D, U+2010–U+201F and U+2032–U+2037 weigh 1, every other weighs 2) and every
/// `http(s)://` word 23. Emoji sequences joined with U+200D count per code point, a little more
/// than X counts them, so a post near the limit may be refused here that X would take, never the
/// other way round.
pub(super) fn weighted_length(text: &str) -> usize {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let bare = word.trim_end();
            if bare.starts_with("https://") || bare.starts_with("http://") {
                URL_WEIGHT + word[bare.len()..].chars().map(weight).sum::<usize>()
            } else {
                word.chars().map(weight).sum()
            }
        })
        .sum()
}

fn weight(c: char) -> usize {
    match u32::from(c) {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}

/// Refuses what `POST /2/tweets` would refuse [X11, X12]: no text nor media, a text over 280
/// weighted characters, more than four images or a video with anything else, any option.
pub(super) fn check_draft(kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
    if !KINDS.contains(&kind) {
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!("X publishes as the connected user, not to a {kind}"),
        ));
    }
    refuse_unknown_options(draft, &[])?;
    let text = post_text(draft);
    if text.trim().is_empty() && draft.media.is_empty() {
        return Err(invalid("a post on X needs text or media"));
    }
    let length = weighted_length(&text);
    if length > MAX_WEIGHTED_LENGTH {
        return Err(invalid(format!(
            "the text weighs {length} characters as X counts them; at most {MAX_WEIGHTED_LENGTH}"
        )));
    }
    let videos = draft
        .media
        .iter()
        .filter(|m| m.kind == MediaKind::Video)
        .count();
    if videos > 0 && draft.media.len() > 1 {
        return Err(invalid("a post on X carries one video alone"));
    }
    if draft.media.len() > MAX_IMAGES {
        return Err(invalid(format!(
            "a post on X carries at most {MAX_IMAGES} images"
        )));
    }
    Ok(())
}

/// One medium's upload, as the checkpoint keeps it.
fn uploaded(id: &str, processing: bool) -> Value {
    json!({ "id": id, "processing": processing })
}

/// Uploads the media not uploaded yet, in order, and waits for a video X is processing. The
/// checkpoint is `{"media": [{"id", "processing"}]}`, one entry per medium done or started.
pub(super) async fn prepare_post(context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
    let mut done: Vec<Value> = context
        .checkpoint
        .get("media")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, medium) in context.draft.media.iter().enumerate() {
        if let Some(entry) = done.get(index) {
            if entry["processing"] == true {
                let id = entry["id"].as_str().unwrap_or_default().to_owned();
                if let Some(wait) = processing_wait(context, &id).await? {
                    return Ok(Prepared::Wait {
                        checkpoint: json!({ "media": done }),
                        retry_in: wait,
                    });
                }
                done[index] = uploaded(&id, false);
            }
            continue;
        }
        let (id, wait) = upload(context, medium).await?;
        done.push(uploaded(&id, wait.is_some()));
        if let Some(wait) = wait {
            return Ok(Prepared::Wait {
                checkpoint: json!({ "media": done }),
                retry_in: wait,
            });
        }
    }
    Ok(Prepared::Ready(json!({ "media": done })))
}

/// Uploads one medium: its id, and how long to wait when X processes it.
async fn upload(
    context: &PublishContext<'_>,
    medium: &MediaRef,
) -> Result<(String, Option<Duration>), PublishFailure> {
    let fetched = context.media.fetch(&medium.url).await?;
    let (category, limit) = match medium.kind {
        MediaKind::Video => ("tweet_video", usize::MAX),
        MediaKind::Image if fetched.content_type == "image/gif" => ("tweet_gif", MAX_GIF_BYTES),
        MediaKind::Image => ("tweet_image", MAX_IMAGE_BYTES),
    };
    if fetched.bytes.len() > limit {
        return Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            format!("X takes at most {limit} bytes for {category}"),
        ));
    }
    let initialize = ApiRequest::new(Method::POST, context.api_url("media/upload/initialize")?)
        .body(ApiBody::Json(json!({
            "media_type": fetched.content_type,
            "total_bytes": fetched.bytes.len(),
            "media_category": category,
        })));
    let answer = expect_success(context, initialize).await?;
    let Some(id) = answer.body.pointer("/data/id").and_then(Value::as_str) else {
        return Err(PublishFailure::transient(
            PostErrorCode::PlatformUnavailable,
            "X's upload answer named no media id",
        ));
    };
    let id = id.to_owned();
    for (index, start) in (0..fetched.bytes.len()).step_by(SEGMENT).enumerate() {
        let end = (start + SEGMENT).min(fetched.bytes.len());
        let append = ApiRequest::new(
            Method::POST,
            context.api_url(&format!("media/upload/{id}/append"))?,
        )
        .body(ApiBody::Multipart {
            fields: vec![("segment_index".to_owned(), index.to_string())],
            file: (
                "media".to_owned(),
                "media".to_owned(),
                fetched.content_type.clone(),
                fetched.bytes.slice(start..end),
            ),
        });
        expect_success(context, append).await?;
    }
    let finalize = ApiRequest::new(
        Method::POST,
        context.api_url(&format!("media/upload/{id}/finalize"))?,
    );
    let answer = expect_success(context, finalize).await?;
    let wait = processing(&answer)?;
    Ok((id, wait))
}

/// Asks X about an upload it is processing: `None` once it succeeded.
async fn processing_wait(
    context: &PublishContext<'_>,
    id: &str,
) -> Result<Option<Duration>, PublishFailure> {
    let status = ApiRequest::new(Method::GET, context.api_url("media/upload")?)
        .query("command", "STATUS")
        .query("media_id", id);
    let answer = expect_success(context, status).await?;
    processing(&answer)
}

/// Reads `processing_info`: nothing or `succeeded` is ready, `failed` is refused media, anything
/// else a wait of `check_after_secs`.
fn processing(answer: &ApiAnswer) -> Result<Option<Duration>, PublishFailure> {
    let Some(info) = answer.body.pointer("/data/processing_info") else {
        return Ok(None);
    };
    match info.get("state").and_then(Value::as_str) {
        Some("succeeded") => Ok(None),
        Some("failed") => Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            info.pointer("/error/message")
                .and_then(Value::as_str)
                .map_or_else(|| "X could not process the media".to_owned(), scrub),
        )),
        _ => Ok(Some(
            info.get("check_after_secs")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_PROCESSING_WAIT, Duration::from_secs),
        )),
    }
}

/// A preparation call's answer when it succeeded, else its failure (never `answer_lost`: nothing
/// is published before the send).
async fn expect_success(
    context: &PublishContext<'_>,
    request: ApiRequest,
) -> Result<ApiAnswer, PublishFailure> {
    let answer = context.call(request).await.map_err(|mut failure| {
        failure.answer_lost = false;
        failure
    })?;
    if answer.is_success() {
        Ok(answer)
    } else {
        Err(failure(&answer, Stage::Upload))
    }
}

/// `POST /2/tweets` [X12]: 201 `{"data":{"id","text"}}`.
pub(super) async fn send_post(context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
    let media_ids: Vec<&str> = context
        .checkpoint
        .get("media")
        .and_then(Value::as_array)
        .map(|media| media.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    if media_ids.len() != context.draft.media.len() {
        return Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            "the media were not all uploaded before the send",
        ));
    }
    let mut body = json!({});
    let text = post_text(context.draft);
    if !text.is_empty() {
        body["text"] = json!(text);
    }
    if !media_ids.is_empty() {
        body["media"] = json!({ "media_ids": media_ids });
    }
    let request =
        ApiRequest::new(Method::POST, context.api_url("tweets")?).body(ApiBody::Json(body));
    let answer = context.call(request).await?;
    if !answer.is_success() {
        return Err(failure(&answer, Stage::Send));
    }
    let id = answer
        .body
        .pointer("/data/id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let url = id.as_ref().map(|id| match &context.target.name {
        Some(username) if !username.is_empty() => format!("https://x.com/{username}/status/{id}"),
        _ => format!("https://x.com/i/web/status/{id}"),
    });
    Ok(Sent::Published(PublishedPost { id, url }))
}

/// Which call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// A media upload call: its 4xx refuses the media.
    Upload,
    /// `POST /2/tweets`: its 4xx refuses the post, its 5xx may hide a post that went out.
    Send,
}

/// Reads X's problem JSON [X5, X10, X13].
pub(super) fn failure(answer: &ApiAnswer, stage: Stage) -> PublishFailure {
    let body = &answer.body;
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let message = text("/errors/0/message")
        .or_else(|| text("/detail"))
        .or_else(|| text("/title"))
        .map_or_else(|| format!("X answered {}", answer.status), scrub);
    let kind = text("/type").unwrap_or_default();
    let lower = message.to_lowercase();
    match answer.status {
        // X5: the plan's cap is reached; trying again before it resets does not help.
        _ if kind.ends_with("usage-capped") => {
            PublishFailure::permanent(PostErrorCode::LimitReached, message)
        }
        401 => PublishFailure::permanent(PostErrorCode::ReconnectRequired, message),
        429 => {
            PublishFailure::transient(PostErrorCode::RateLimited, message).after(reset_wait(answer))
        }
        // The answer X gives a repeated text.
        403 if lower.contains("duplicate") => {
            PublishFailure::permanent(PostErrorCode::InvalidPost, message)
        }
        403 => PublishFailure::permanent(PostErrorCode::PermissionMissing, message),
        500.. if stage == Stage::Send => PublishFailure {
            answer_lost: true,
            ..PublishFailure::transient(PostErrorCode::PlatformUnavailable, message)
        },
        500.. => PublishFailure::transient(PostErrorCode::PlatformUnavailable, message),
        _ if stage == Stage::Upload || lower.contains("media") => {
            PublishFailure::permanent(PostErrorCode::MediaRejected, message)
        }
        _ => PublishFailure::permanent(PostErrorCode::InvalidPost, message),
    }
}

/// X10: `x-rate-limit-reset` is the Unix time the window reopens; the wait is measured from the
/// answer's own `Date`, so that no clock of ours is involved.
fn reset_wait(answer: &ApiAnswer) -> Option<Duration> {
    let until_reset = || {
        let reset: i64 = answer.header("x-rate-limit-reset")?.trim().parse().ok()?;
        let now = chrono::DateTime::parse_from_rfc2822(answer.header("date")?).ok()?;
        u64::try_from(reset - now.timestamp())
            .ok()
            .map(Duration::from_secs)
    };
    until_reset().or_else(|| answer.retry_after())
}

#[cfg(test)]
#[cfg(feature = "sandbox")]
mod tests {
    use reqwest::header::HeaderMap;
    use url::Url;

    use super::*;
    use crate::platforms::builtin::publish_harness::{
        draft, target, video_bytes, FixedMedia, Harness, UnavailableMedia, IMAGE,
    };
    use crate::platforms::publish::{Confirmation, PublishTarget};
    use crate::sandbox::ApiRateLimit;

    const USER: &str = "1000000000000000001";
    const SCOPES: [&str; 4] = ["tweet.read", "tweet.write", "users.read", "media.write"];

    /// The sandbox, and the user acting with a token granting [`SCOPES`] (no username known).
    async fn twitter() -> (Harness, PublishTarget) {
        let harness = Harness::start("twitter").await;
        let user = target("x_user", USER, &harness.token(&SCOPES).await);
        (harness, user)
    }

    fn image_bytes() -> FixedMedia {
        FixedMedia {
            content_type: "image/jpeg",
            bytes: bytes::Bytes::from_static(IMAGE),
        }
    }

    /// A text-only draft.
    fn text(text: &str) -> PostDraft {
        draft(text, Vec::new(), json!({}))
    }

    #[tokio::test]
    async fn a_text_post_is_published_with_the_users_url() {
        let (harness, anonymous) = twitter().await;
        let draft = text("Hello from the shop");
        check_draft("x_user", &draft).expect("a valid draft");
        let mut user = target("x_user", USER, &harness.token(&SCOPES).await);
        user.name = Some("sandboxmerchant".to_owned());
        let media = image_bytes();
        let post = harness.post(&draft, &user, &media);
        let (sent, _) = post.publish().await.expect("sent");
        let Sent::Published(tweet) = sent else {
            panic!("not published: {sent:?}");
        };
        let id = tweet.id.expect("an id");
        assert_eq!(
            tweet.url,
            Some(format!("https://x.com/sandboxmerchant/status/{id}"))
        );
        let confirmed = post.confirm(&json!({ "media": [] })).await;
        assert_eq!(confirmed, Ok(Confirmation::Unknowable));
        // Without a username, X's own redirecting URL.
        let other = text("Another one");
        let (sent, _) = harness
            .post(&other, &anonymous, &media)
            .publish()
            .await
            .expect("sent");
        let Sent::Published(tweet) = sent else {
            panic!("not published: {sent:?}");
        };
        assert!(tweet
            .url
            .is_some_and(|url| url.starts_with("https://x.com/i/web/status/")));
    }

    #[tokio::test]
    async fn images_are_uploaded_first_and_carried_by_the_post() {
        let (harness, user) = twitter().await;
        let photos = vec![
            harness.media("a.jpg", MediaKind::Image),
            harness.media("b.jpg", MediaKind::Image),
        ];
        let draft = draft("Two photos", photos, json!({}));
        let media = image_bytes();
        let (sent, checkpoint) = harness
            .post(&draft, &user, &media)
            .publish()
            .await
            .expect("sent");
        assert!(matches!(sent, Sent::Published(_)), "{sent:?}");
        let published = harness.sim.published("twitter");
        let ids = &published[0].fields["media"]["media_ids"];
        assert_eq!(ids.as_array().map(Vec::len), Some(2));
        assert_eq!(ids[0], checkpoint["media"][0]["id"]);
    }

    #[tokio::test]
    async fn a_video_is_waited_for_while_x_processes_it() {
        let (harness, user) = twitter().await;
        let clip = harness.media("clip.mp4", MediaKind::Video);
        let draft = draft("A clip", vec![clip], json!({}));
        let media = FixedMedia {
            content_type: "video/mp4",
            bytes: video_bytes(64 * 1024),
        };
        let post = harness.post(&draft, &user, &media);
        let first = post.prepare(&Value::Null).await;
        let Ok(Prepared::Wait { checkpoint, .. }) = first else {
            panic!("expected a wait: {first:?}");
        };
        let (sent, _) = post.publish().await.expect("sent");
        assert!(matches!(sent, Sent::Published(_)), "{sent:?}");
        assert_eq!(checkpoint["media"][0]["processing"], true);
    }

    #[tokio::test]
    async fn x_refusals_map_to_stable_codes() {
        let (harness, user) = twitter().await;
        let media = image_bytes();
        let once = text("Once only");
        let sent = harness.post(&once, &user, &media).publish().await;
        assert!(sent.is_ok(), "{sent:?}");
        // The same text again: X's duplicate 403, not a missing permission.
        let sent = harness.post(&once, &user, &media).publish().await;
        assert_eq!(sent.expect_err("refused").code, PostErrorCode::InvalidPost);
        // Media without media.write: refused at the upload.
        let weak = target(
            "x_user",
            USER,
            &harness
                .token(&["tweet.read", "tweet.write", "users.read"])
                .await,
        );
        let photo = draft(
            "A photo",
            vec![harness.media("a.jpg", MediaKind::Image)],
            json!({}),
        );
        let sent = harness.post(&photo, &weak, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::PermissionMissing
        );
        // Media the caller's server does not have.
        let gone = draft(
            "Gone",
            vec![harness.media("missing", MediaKind::Image)],
            json!({}),
        );
        let sent = harness
            .post(&gone, &user, &UnavailableMedia)
            .publish()
            .await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::MediaUnavailable
        );
        // A token X does not know.
        let dead = target("x_user", USER, "dead-token");
        let sent = harness.post(&text("x"), &dead, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::ReconnectRequired
        );
        // Throttled: retried after the reset X names.
        harness.sim.set_api_rate_limited(
            "twitter",
            Some(ApiRateLimit {
                retry_after_seconds: 120,
            }),
        );
        let sent = harness.post(&text("later"), &user, &media).publish().await;
        let failure = sent.expect_err("throttled");
        assert_eq!(failure.code, PostErrorCode::RateLimited);
        assert!(failure.transient);
        let wait = failure.retry_after.expect("a wait").as_secs();
        assert!((100..=121).contains(&wait), "{wait}");
    }

    #[tokio::test]
    async fn the_hundredth_post_in_fifteen_minutes_is_the_last() {
        let (harness, user) = twitter().await;
        let media = image_bytes();
        for n in 0..100 {
            let draft = text(&format!("post {n}"));
            let sent = harness.post(&draft, &user, &media).publish().await;
            assert!(sent.is_ok(), "{n}: {sent:?}");
        }
        let sent = harness
            .post(&text("one more"), &user, &media)
            .publish()
            .await;
        let failure = sent.expect_err("over the limit");
        assert_eq!(failure.code, PostErrorCode::RateLimited);
        assert!(failure.retry_after.is_some());
    }

    fn answer(status: u16, body: Value) -> ApiAnswer {
        ApiAnswer {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    #[test]
    fn caps_and_server_errors_read_as_x_means_them() {
        let capped = answer(
            429,
            json!({"title": "Usage capped", "type": "https://api.twitter.com/2/problems/usage-capped", "status": 429}),
        );
        assert_eq!(
            failure(&capped, Stage::Send).code,
            PostErrorCode::LimitReached
        );
        let broken = failure(&answer(503, Value::Null), Stage::Send);
        assert!(broken.answer_lost && broken.transient);
        let upload_broken = failure(&answer(503, Value::Null), Stage::Upload);
        assert!(!upload_broken.answer_lost && upload_broken.transient);
        let forbidden = answer(403, json!({"title": "Forbidden", "detail": "Forbidden"}));
        assert_eq!(
            failure(&forbidden, Stage::Send).code,
            PostErrorCode::PermissionMissing
        );
    }

    #[test]
    fn text_is_weighed_as_x_weighs_it() {
        assert_eq!(weighted_length("hello"), 5);
        assert_eq!(weighted_length("日本"), 4);
        assert_eq!(
            weighted_length("see https://example.com/a/very/long/path/indeed"),
            27
        );
    }

    #[test]
    fn drafts_x_would_refuse_are_refused() {
        let image = MediaRef {
            url: Url::parse("https://cdn.example/a.png").expect("a URL"),
            kind: MediaKind::Image,
        };
        let video = MediaRef {
            kind: MediaKind::Video,
            ..image.clone()
        };
        let code = |draft: PostDraft| check_draft("x_user", &draft).map_err(|f| f.code);
        let text = |t: String| PostDraft {
            text: t,
            ..PostDraft::default()
        };
        assert_eq!(code(text("a".repeat(280))), Ok(()));
        assert_eq!(code(text("a".repeat(281))), Err(PostErrorCode::InvalidPost));
        assert_eq!(
            code(text("日".repeat(141))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(code(text(String::new())), Err(PostErrorCode::InvalidPost));
        let with = |media: Vec<MediaRef>| PostDraft {
            text: "x".to_owned(),
            media,
            ..PostDraft::default()
        };
        assert_eq!(code(with(vec![image.clone(); 4])), Ok(()));
        assert_eq!(
            code(with(vec![image.clone(); 5])),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(code(with(vec![video.clone()])), Ok(()));
        assert_eq!(
            code(with(vec![video, image])),
            Err(PostErrorCode::InvalidPost)
        );
        let mut optioned = text("x".to_owned());
        optioned.options.insert("title".to_owned(), json!("t"));
        assert_eq!(code(optioned), Err(PostErrorCode::InvalidPost));
    }
}
