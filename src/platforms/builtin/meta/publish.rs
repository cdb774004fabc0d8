//! Meta's publishing client (platform-apis.md §1 "Publishing", M19, M20): Instagram's two steps
//! (containers, then `media_publish`) and a Facebook Page's `feed` and `photos`, both with the
//! Page's token (for an Instagram account, the token of the Page it is linked to).
//!
//! The stages:
//! - Instagram `prepare_post`: the publishing limit (`content_publishing_limit`, 50 posts a
//!   moving 24 h: refused as `limit_reached` before anything is created), then the containers
//!   (an image, a reel, or 2 to 10 carousel items and the carousel once they are `FINISHED`),
//!   then their `status_code` until `FINISHED` (Meta: poll "once per minute, for no more than 5
//!   minutes"). Creating a container publishes nothing, so a repeated prepare is safe (an
//!   abandoned container expires after 24 h).
//! - Instagram `send_post`: `media_publish` of the container, then its `permalink`.
//! - Instagram `confirm_post` (after a lost answer): the container's `status_code` says whether
//!   it was published.
//! - Facebook: no preparation; the send is `feed` (text, link) or `photos` (one image); Graph
//!   offers no way to find a post whose answer was lost: confirmation is unknowable.
//!
//! It owns the mapping of Graph's errors (`{"error":{code,error_subcode,message}}`, M4, M16) to
//! [`PostErrorCode`]s; messages are Graph's, scrubbed.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::platforms::error::scrub;
use crate::platforms::platform::PublishContext;
use crate::platforms::publish::{
    refuse_unknown_options, ApiAnswer, ApiBody, ApiRequest, Confirmation, MediaKind, PostDraft,
    PostErrorCode, Prepared, PublishFailure, PublishedPost, Sent,
};

/// The asset kinds Meta publishes to, in the order a post without an account tries them.
pub(super) const KINDS: &[&str] = &[INSTAGRAM, FACEBOOK];

const INSTAGRAM: &str = "instagram_account";
const FACEBOOK: &str = "facebook_page";

/// Instagram's caption limits (M20, the IG Media reference): 2,200 characters, 30 hashtags, 20
/// @-mentions.
const CAPTION_CHARS: usize = 2200;
const CAPTION_HASHTAGS: usize = 30;
const CAPTION_MENTIONS: usize = 20;

/// A carousel's items (M20).
const CAROUSEL_ITEMS: std::ops::RangeInclusive<usize> = 2..=10;

/// A Page post's longest message.
const PAGE_MESSAGE_CHARS: usize = 63_206;

/// How often a processing container is looked at again: Meta asks for "once per minute" (M20).
const CONTAINER_POLL: Duration = Duration::from_secs(60);

/// Instagram's daily limit when the answer does not say (M20).
const DEFAULT_DAILY_LIMIT: u64 = 50;

/// Checks a post for an Instagram account or a Facebook Page before it is accepted.
pub(super) fn check_draft(kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
    refuse_unknown_options(draft, &[])?;
    let invalid = |message: &str| {
        Err(PublishFailure::permanent(
            PostErrorCode::InvalidPost,
            message,
        ))
    };
    match kind {
        INSTAGRAM => {
            if draft.text.chars().count() > CAPTION_CHARS {
                return invalid("an Instagram caption holds at most 2,200 characters");
            }
            if words_starting_with(&draft.text, '#') > CAPTION_HASHTAGS {
                return invalid("an Instagram caption holds at most 30 hashtags");
            }
            if words_starting_with(&draft.text, '@') > CAPTION_MENTIONS {
                return invalid("an Instagram caption holds at most 20 @-mentions");
            }
            if draft.link.is_some() {
                return invalid("an Instagram post cannot carry a link: put it in the caption");
            }
            match draft.media.len() {
                0 => invalid("an Instagram post needs an image, a video or a carousel of 2 to 10"),
                1 => Ok(()),
                n if CAROUSEL_ITEMS.contains(&n) => Ok(()),
                _ => invalid("an Instagram carousel holds 2 to 10 images or videos"),
            }
        }
        FACEBOOK => {
            if draft.text.chars().count() > PAGE_MESSAGE_CHARS {
                return invalid("a Facebook post holds at most 63,206 characters");
            }
            match draft.media.as_slice() {
                [] if draft.text.trim().is_empty() && draft.link.is_none() => {
                    invalid("a Facebook post needs a text, a link or an image")
                }
                [] => Ok(()),
                [medium] if medium.kind == MediaKind::Image => {
                    if draft.link.is_some() {
                        return invalid(
                            "a Facebook photo post cannot carry a link: put it in the text",
                        );
                    }
                    Ok(())
                }
                [_] => Err(PublishFailure::permanent(
                    PostErrorCode::NotSupported,
                    "videos on a Facebook Page are not published through Growth Engine",
                )),
                _ => Err(PublishFailure::permanent(
                    PostErrorCode::NotSupported,
                    "a Facebook post is published with at most one image",
                )),
            }
        }
        _ => Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!("Meta publishes to an Instagram account or a Facebook Page, not a {kind}"),
        )),
    }
}

fn words_starting_with(text: &str, mark: char) -> usize {
    text.split_whitespace()
        .filter(|word| word.starts_with(mark) && word.len() > 1)
        .count()
}

/// `prepare_post`: Instagram's limit check and containers; nothing for a Page.
pub(super) async fn prepare(context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
    if context.target.kind != INSTAGRAM {
        return Ok(Prepared::Ready(context.checkpoint.clone()));
    }
    let mut checkpoint = match context.checkpoint {
        Value::Object(_) => context.checkpoint.clone(),
        _ => json!({}),
    };
    if checkpoint.get("container").is_none() {
        if checkpoint.get("children").is_none() {
            check_publishing_limit(context).await?;
        }
        match context.draft.media.as_slice() {
            [medium] => {
                let id = create_container(context, Some(medium), false, None).await?;
                checkpoint["container"] = json!(id);
            }
            media => {
                let children = match checkpoint.get("children").and_then(Value::as_array) {
                    Some(children) => children
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    None => {
                        let mut children = Vec::with_capacity(media.len());
                        for medium in media {
                            children
                                .push(create_container(context, Some(medium), true, None).await?);
                        }
                        checkpoint["children"] = json!(children);
                        children
                    }
                };
                // Meta builds a carousel from finished items only.
                for child in &children {
                    match container_status(context, child).await? {
                        Status::Finished => {}
                        Status::InProgress => {
                            return Ok(Prepared::Wait {
                                checkpoint,
                                retry_in: CONTAINER_POLL,
                            })
                        }
                        Status::Published | Status::Failed(_) => {
                            return Err(rejected_container(context, child).await)
                        }
                    }
                }
                let id = create_container(context, None, false, Some(&children)).await?;
                checkpoint["container"] = json!(id);
            }
        }
    }
    let container = checkpoint["container"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match container_status(context, &container).await? {
        Status::Finished | Status::Published => Ok(Prepared::Ready(checkpoint)),
        Status::InProgress => Ok(Prepared::Wait {
            checkpoint,
            retry_in: CONTAINER_POLL,
        }),
        Status::Failed(words) => Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            format!("Instagram could not process the media: {words}"),
        )),
    }
}

/// `send_post`: `media_publish` (Instagram) or `feed` / `photos` (a Page).
pub(super) async fn send(context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
    if context.target.kind == INSTAGRAM {
        return send_instagram(context).await;
    }
    let page = &context.target.id;
    let draft = context.draft;
    let answer = match draft.media.first() {
        Some(image) => {
            let mut form = vec![("url".to_owned(), image.url.to_string())];
            if !draft.text.is_empty() {
                form.push(("caption".to_owned(), draft.text.clone()));
            }
            let url = context.api_url(&format!("{page}/photos"))?;
            context
                .call(ApiRequest::new(Method::POST, url).body(ApiBody::Form(form)))
                .await?
        }
        None => {
            let mut form = Vec::new();
            if !draft.text.is_empty() {
                form.push(("message".to_owned(), draft.text.clone()));
            }
            if let Some(link) = &draft.link {
                form.push(("link".to_owned(), link.to_string()));
            }
            let url = context.api_url(&format!("{page}/feed"))?;
            context
                .call(ApiRequest::new(Method::POST, url).body(ApiBody::Form(form)))
                .await?
        }
    };
    if !answer.is_success() {
        return Err(graph_failure(&answer, true));
    }
    // `/photos` answers the photo's id and its feed post's `post_id`; `/feed` the post's `id`.
    let id = ["post_id", "id"]
        .into_iter()
        .find_map(|field| answer.body.get(field).and_then(Value::as_str))
        .map(str::to_owned);
    Ok(Sent::Published(PublishedPost {
        url: id
            .as_ref()
            .map(|id| format!("https://www.facebook.com/{id}")),
        id,
    }))
}

async fn send_instagram(context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
    let Some(container) = context.checkpoint_str("container") else {
        return Err(PublishFailure::permanent(
            PostErrorCode::PlatformUnavailable,
            "the Instagram container was not prepared",
        ));
    };
    let url = context.api_url(&format!("{}/media_publish", context.target.id))?;
    let form = vec![("creation_id".to_owned(), container.to_owned())];
    let answer = context
        .call(ApiRequest::new(Method::POST, url).body(ApiBody::Form(form)))
        .await?;
    if !answer.is_success() {
        return Err(graph_failure(&answer, true));
    }
    let id = answer
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let url = match &id {
        Some(id) => permalink(context, id).await,
        None => None,
    };
    Ok(Sent::Published(PublishedPost { id, url }))
}

/// The medium's `permalink`; the post is out either way, so a failure only loses the URL.
async fn permalink(context: &PublishContext<'_>, media_id: &str) -> Option<String> {
    let url = context.api_url(media_id).ok()?;
    let answer = context
        .call(ApiRequest::new(Method::GET, url).query("fields", "permalink"))
        .await
        .ok()?;
    answer
        .body
        .get("permalink")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `confirm_post` after a lost `media_publish` answer: the container's `status_code`.
pub(super) async fn confirm(context: &PublishContext<'_>) -> Result<Confirmation, PublishFailure> {
    if context.target.kind != INSTAGRAM {
        // Graph has no way to find a Page post whose answer was lost.
        return Ok(Confirmation::Unknowable);
    }
    let Some(container) = context.checkpoint_str("container") else {
        return Ok(Confirmation::Unknowable);
    };
    Ok(match container_status(context, container).await? {
        // The container does not name the medium it became: the post is out, its id unknown.
        Status::Published => Confirmation::Published(PublishedPost { id: None, url: None }),
        Status::Finished => Confirmation::Failed(PublishFailure::permanent(
            PostErrorCode::PlatformUnavailable,
            "Instagram did not publish the post (its container is still unpublished): post it again",
        )),
        Status::InProgress => Confirmation::Processing(CONTAINER_POLL),
        Status::Failed(words) => Confirmation::Failed(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            format!("Instagram could not process the media: {words}"),
        )),
    })
}

/// `GET /{ig-user-id}/content_publishing_limit`: refuses with `limit_reached` when the moving
/// day's quota is used up.
async fn check_publishing_limit(context: &PublishContext<'_>) -> Result<(), PublishFailure> {
    let url = context.api_url(&format!("{}/content_publishing_limit", context.target.id))?;
    let answer = context
        .call(ApiRequest::new(Method::GET, url).query("fields", "quota_usage,config"))
        .await?;
    if !answer.is_success() {
        return Err(graph_failure(&answer, false));
    }
    let quota = &answer.body["data"][0];
    let used = quota["quota_usage"].as_u64().unwrap_or(0);
    let total = quota["config"]["quota_total"]
        .as_u64()
        .unwrap_or(DEFAULT_DAILY_LIMIT);
    if used >= total {
        return Err(PublishFailure::permanent(
            PostErrorCode::LimitReached,
            format!("this Instagram account has published {used} of its {total} posts allowed in 24 hours"),
        ));
    }
    Ok(())
}

/// `POST /{ig-user-id}/media`: an image or reel (`medium`), a carousel item, or the carousel of
/// `children`; the caption goes on the post's own container only.
async fn create_container(
    context: &PublishContext<'_>,
    medium: Option<&crate::platforms::publish::MediaRef>,
    carousel_item: bool,
    children: Option<&[String]>,
) -> Result<String, PublishFailure> {
    let mut form: Vec<(String, String)> = Vec::new();
    let mut field = |name: &str, value: String| form.push((name.to_owned(), value));
    match (medium, children) {
        (Some(medium), _) => match medium.kind {
            MediaKind::Image => field("image_url", medium.url.to_string()),
            MediaKind::Video => {
                field(
                    "media_type",
                    if carousel_item { "VIDEO" } else { "REELS" }.to_owned(),
                );
                field("video_url", medium.url.to_string());
            }
        },
        (None, Some(children)) => {
            field("media_type", "CAROUSEL".to_owned());
            field("children", children.join(","));
        }
        (None, None) => {}
    }
    if carousel_item {
        field("is_carousel_item", "true".to_owned());
    } else if !context.draft.text.is_empty() {
        field("caption", context.draft.text.clone());
    }
    let url = context.api_url(&format!("{}/media", context.target.id))?;
    let answer = context
        .call(ApiRequest::new(Method::POST, url).body(ApiBody::Form(form)))
        .await?;
    if !answer.is_success() {
        return Err(graph_failure(&answer, false));
    }
    answer
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            PublishFailure::transient(
                PostErrorCode::PlatformUnavailable,
                "Instagram answered a container without an id",
            )
        })
}

/// A container's `status_code` (M20).
enum Status {
    InProgress,
    Finished,
    Published,
    /// `ERROR` or `EXPIRED`, with Meta's words.
    Failed(String),
}

async fn container_status(
    context: &PublishContext<'_>,
    container: &str,
) -> Result<Status, PublishFailure> {
    let url = context.api_url(container)?;
    let answer = context
        .call(ApiRequest::new(Method::GET, url).query("fields", "status_code,status"))
        .await?;
    if !answer.is_success() {
        return Err(graph_failure(&answer, false));
    }
    let words = || {
        scrub(
            answer.body["status"]
                .as_str()
                .unwrap_or("the container failed"),
        )
    };
    Ok(match answer.body["status_code"].as_str() {
        Some("FINISHED") => Status::Finished,
        Some("PUBLISHED") => Status::Published,
        Some("IN_PROGRESS") => Status::InProgress,
        Some("EXPIRED") => Status::Failed(format!("the container expired ({})", words())),
        Some(_) => Status::Failed(words()),
        None => {
            return Err(PublishFailure::transient(
                PostErrorCode::PlatformUnavailable,
                "Instagram answered a container without a status_code",
            ))
        }
    })
}

async fn rejected_container(context: &PublishContext<'_>, container: &str) -> PublishFailure {
    let words = match container_status(context, container).await {
        Ok(Status::Failed(words)) => words,
        _ => "a carousel item could not be processed".to_owned(),
    };
    PublishFailure::permanent(
        PostErrorCode::MediaRejected,
        format!("Instagram could not process a carousel item: {words}"),
    )
}

/// A Graph error answer as a stage's failure (M4, M16, M20). `final_send`: the call that
/// publishes, where a 5xx is ambiguous (the post may be out) and so reported as a lost answer.
pub(super) fn graph_failure(answer: &ApiAnswer, final_send: bool) -> PublishFailure {
    let error = &answer.body["error"];
    let code = error["code"].as_u64();
    let subcode = error["error_subcode"].as_u64();
    let message = error["message"]
        .as_str()
        .map(scrub)
        .unwrap_or_else(|| format!("Meta answered HTTP {}", answer.status));
    if answer.status >= 500 {
        let failure = PublishFailure::transient(PostErrorCode::PlatformUnavailable, message);
        return PublishFailure {
            answer_lost: final_send,
            ..failure
        };
    }
    let permanent = |code| PublishFailure::permanent(code, message.clone());
    match (code, subcode) {
        (Some(190), _) | (Some(102), _) => permanent(PostErrorCode::ReconnectRequired),
        (Some(10), _) | (Some(200..=299), _) => permanent(PostErrorCode::PermissionMissing),
        (Some(9), Some(2_207_042)) => permanent(PostErrorCode::LimitReached),
        (Some(4 | 9 | 17 | 32 | 341 | 613 | 80_000..=80_014), _) => {
            PublishFailure::transient(PostErrorCode::RateLimited, message.clone())
                .after(regain_access(answer))
        }
        // "Unknown" and "service" errors (M4) are transient, but on the final send Meta may have
        // published all the same: confirmed then, never sent again.
        (Some(1 | 2), _) => PublishFailure {
            answer_lost: final_send,
            ..PublishFailure::transient(PostErrorCode::PlatformUnavailable, message)
        },
        (Some(506), _) => permanent(PostErrorCode::InvalidPost),
        (Some(368), _) => permanent(PostErrorCode::AccountNotEligible),
        (Some(324 | 9004 | 36_003), _) | (_, Some(2_207_000..=2_207_999)) => {
            permanent(PostErrorCode::MediaRejected)
        }
        _ => permanent(PostErrorCode::InvalidPost),
    }
}

/// The wait Meta names in `X-Business-Use-Case-Usage` (`estimated_time_to_regain_access`, in
/// minutes, M16).
fn regain_access(answer: &ApiAnswer) -> Option<Duration> {
    let usage: Value = serde_json::from_str(answer.header("x-business-use-case-usage")?).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|entry| entry["estimated_time_to_regain_access"].as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)))
}

#[cfg(test)]
#[cfg(feature = "sandbox")]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use serde_json::json;

    use super::*;
    use crate::platforms::builtin::publish_harness::{draft, target, FixedMedia, Harness, IMAGE};
    use crate::platforms::publish::PublishTarget;

    const SCOPES: &[&str] = &[
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_posts",
        "instagram_basic",
        "instagram_content_publish",
    ];

    /// The sandbox, the first Page's token, and targets for its Instagram account and itself.
    async fn meta() -> (Harness, PublishTarget, PublishTarget) {
        let harness = Harness::start("meta").await;
        let user = harness.token(SCOPES).await;
        let accounts = harness.api_get("me/accounts", &user).await;
        let page = &accounts["data"][0];
        let page_token = page["access_token"].as_str().unwrap();
        let ig = page["instagram_business_account"]["id"].as_str().unwrap();
        let instagram = target(INSTAGRAM, ig, page_token);
        let facebook = target(FACEBOOK, page["id"].as_str().unwrap(), page_token);
        (harness, instagram, facebook)
    }

    fn no_bytes() -> FixedMedia {
        FixedMedia {
            content_type: "image/jpeg",
            bytes: bytes::Bytes::from_static(IMAGE),
        }
    }

    fn published(sent: Sent) -> PublishedPost {
        match sent {
            Sent::Published(post) => post,
            other => panic!("not published: {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_instagram_image_is_published_with_its_permalink() {
        let (harness, instagram, _) = meta().await;
        let image = harness.media("image.jpg", MediaKind::Image);
        let draft = draft("New arrivals #shop", vec![image], json!({}));
        let media = no_bytes();
        let post = harness.post(&draft, &instagram, &media);

        let ready = post.prepare_until_ready().await.unwrap();
        assert!(ready["container"].is_string(), "{ready}");
        assert!(harness.sim.published("meta").is_empty());
        let sent = published(post.send(&ready).await.unwrap());
        assert!(sent
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://www.instagram.com/p/"));
        let items = harness.sim.published("meta");
        assert_eq!(items.len(), 1);
        assert_eq!(Some(items[0].id.clone()), sent.id);
        assert_eq!(items[0].fields["caption"], "New arrivals #shop");
    }

    #[tokio::test]
    async fn a_reel_waits_while_its_container_is_in_progress() {
        let (harness, instagram, _) = meta().await;
        let video = harness.media("video.mp4", MediaKind::Video);
        let draft = draft("A reel", vec![video], json!({}));
        let media = no_bytes();
        let post = harness.post(&draft, &instagram, &media);

        let Prepared::Wait {
            checkpoint,
            retry_in,
        } = post.prepare(&Value::Null).await.unwrap()
        else {
            panic!("a video container starts IN_PROGRESS");
        };
        assert_eq!(retry_in, CONTAINER_POLL);
        // Still processing: the same container is looked at again, none is created.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = post.prepare(&checkpoint).await.unwrap();
        assert!(matches!(&again, Prepared::Wait { checkpoint: c, .. } if c == &checkpoint));
        harness.clock.advance(chrono::Duration::seconds(60));
        let Prepared::Ready(ready) = post.prepare(&checkpoint).await.unwrap() else {
            panic!("FINISHED after processing");
        };
        assert_eq!(ready["container"], checkpoint["container"]);
        published(post.send(&ready).await.unwrap());
        assert_eq!(
            harness.sim.published("meta")[0].fields["media_type"],
            "REELS"
        );
    }

    #[tokio::test]
    async fn a_carousel_is_built_from_finished_items_and_published_once() {
        let (harness, instagram, _) = meta().await;
        let media = vec![
            harness.media("image.jpg", MediaKind::Image),
            harness.media("video.mp4", MediaKind::Video),
            harness.media("image.jpg", MediaKind::Image),
        ];
        let draft = draft("Three looks", media, json!({}));
        let bytes = no_bytes();
        let post = harness.post(&draft, &instagram, &bytes);
        let ready = post.prepare_until_ready().await.unwrap();
        assert_eq!(ready["children"].as_array().unwrap().len(), 3);
        published(post.send(&ready).await.unwrap());
        let items = harness.sim.published("meta");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].fields["media_type"], "CAROUSEL");
        assert_eq!(items[0].fields["caption"], "Three looks");
        assert_eq!(items[0].fields["children"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_fifty_first_post_of_a_day_is_refused_before_anything_is_created() {
        let (harness, instagram, _) = meta().await;
        let image = harness.media("image.jpg", MediaKind::Image);
        let draft = draft("Daily", vec![image], json!({}));
        let media = no_bytes();
        let post = harness.post(&draft, &instagram, &media);
        for _ in 0..50 {
            let ready = post.prepare_until_ready().await.unwrap();
            published(post.send(&ready).await.unwrap());
        }
        let calls = harness.sim.api_requests("meta").len();
        let refused = post.prepare(&Value::Null).await.unwrap_err();
        assert_eq!(refused.code, PostErrorCode::LimitReached);
        assert!(!refused.transient);
        let after: Vec<_> = harness.sim.api_requests("meta").split_off(calls);
        assert_eq!(after.len(), 1, "only the limit was read: {after:?}");
        assert!(after[0].path.ends_with("/content_publishing_limit"));

        // A moving window: a day later the account may post again.
        harness.clock.advance(chrono::Duration::hours(25));
        assert!(post.prepare_until_ready().await.is_ok());
    }

    #[tokio::test]
    async fn an_image_meta_cannot_fetch_is_rejected_at_preparation() {
        let (harness, instagram, _) = meta().await;
        let missing = harness.media("missing.jpg", MediaKind::Image);
        let draft = draft("Gone", vec![missing], json!({}));
        let media = no_bytes();
        let failure = harness
            .post(&draft, &instagram, &media)
            .prepare(&Value::Null)
            .await
            .unwrap_err();
        assert_eq!(failure.code, PostErrorCode::MediaRejected, "{failure:?}");
    }

    #[tokio::test]
    async fn a_video_meta_cannot_fetch_fails_its_container() {
        let (harness, instagram, _) = meta().await;
        let missing = harness.media("missing.mp4", MediaKind::Video);
        let draft = draft("Gone", vec![missing], json!({}));
        let media = no_bytes();
        let failure = harness
            .post(&draft, &instagram, &media)
            .prepare_until_ready()
            .await
            .unwrap_err();
        assert_eq!(failure.code, PostErrorCode::MediaRejected, "{failure:?}");
    }

    #[tokio::test]
    async fn a_lost_media_publish_answer_is_confirmed_by_the_container_status() {
        let (harness, instagram, _) = meta().await;
        let image = harness.media("image.jpg", MediaKind::Image);
        let draft = draft("Lost", vec![image], json!({}));
        let media = no_bytes();
        let post = harness.post(&draft, &instagram, &media);
        let ready = post.prepare_until_ready().await.unwrap();

        harness
            .sim
            .lose_next_api_answers("meta", "/media_publish", 1);
        let lost = post.send(&ready).await.unwrap_err();
        assert!(lost.answer_lost, "{lost:?}");
        assert_eq!(harness.sim.published("meta").len(), 1);
        assert!(matches!(
            post.confirm(&ready).await.unwrap(),
            Confirmation::Published(_)
        ));
    }

    #[tokio::test]
    async fn a_5xx_to_media_publish_is_ambiguous_and_confirmed_as_not_published() {
        let (harness, instagram, _) = meta().await;
        let image = harness.media("image.jpg", MediaKind::Image);
        let draft = draft("Failed", vec![image], json!({}));
        let media = no_bytes();
        let post = harness.post(&draft, &instagram, &media);
        let ready = post.prepare_until_ready().await.unwrap();

        harness
            .sim
            .fail_next_api_calls("meta", "/media_publish", 500, 1);
        let failed = post.send(&ready).await.unwrap_err();
        assert!(failed.answer_lost, "{failed:?}");
        assert!(harness.sim.published("meta").is_empty());
        let Confirmation::Failed(failure) = post.confirm(&ready).await.unwrap() else {
            panic!("a FINISHED container was not published");
        };
        assert_eq!(failure.code, PostErrorCode::PlatformUnavailable);
    }

    #[tokio::test]
    async fn a_page_gets_a_text_post_with_a_link_and_a_photo_post() {
        let (harness, _, facebook) = meta().await;
        let mut text = draft("Summer sale", vec![], json!({}));
        text.link = Some(url::Url::parse("https://shop.example/sale").unwrap());
        let media = no_bytes();
        let post = harness.post(&text, &facebook, &media);
        let ready = post.prepare_until_ready().await.unwrap();
        let sent = published(post.send(&ready).await.unwrap());
        let id = sent.id.unwrap();
        assert!(id.starts_with(&format!("{}_", facebook.id)), "{id}");
        assert_eq!(
            sent.url.as_deref(),
            Some(format!("https://www.facebook.com/{id}").as_str())
        );
        assert!(matches!(
            post.confirm(&ready).await.unwrap(),
            Confirmation::Unknowable
        ));

        let image = harness.media("image.jpg", MediaKind::Image);
        let photo = draft("New in", vec![image], json!({}));
        let post = harness.post(&photo, &facebook, &media);
        let sent = published(post.send(&Value::Null).await.unwrap());
        assert!(sent.id.unwrap().starts_with(&format!("{}_", facebook.id)));
        let items = harness.sim.published("meta");
        assert_eq!(items[0].kind, "facebook_post");
        assert_eq!(items[0].fields["link"], "https://shop.example/sale");
        assert_eq!(items[1].kind, "facebook_photo");
        assert_eq!(items[1].fields["caption"], "New in");
    }

    #[tokio::test]
    async fn instagram_without_instagram_content_publish_is_a_missing_permission() {
        let harness = Harness::start("meta").await;
        let user = harness
            .token(&[
                "pages_show_list",
                "pages_read_engagement",
                "instagram_basic",
            ])
            .await;
        let accounts = harness.api_get("me/accounts", &user).await;
        let page = &accounts["data"][0];
        let instagram = target(
            INSTAGRAM,
            page["instagram_business_account"]["id"].as_str().unwrap(),
            page["access_token"].as_str().unwrap(),
        );
        let image = harness.media("image.jpg", MediaKind::Image);
        let draft = draft("Hi", vec![image], json!({}));
        let media = no_bytes();
        let failure = harness
            .post(&draft, &instagram, &media)
            .prepare(&Value::Null)
            .await
            .unwrap_err();
        assert_eq!(failure.code, PostErrorCode::PermissionMissing);
    }

    #[test]
    fn drafts_instagram_or_a_page_would_refuse_are_refused_at_once() {
        let image = || crate::platforms::publish::MediaRef {
            url: url::Url::parse("https://cdn.example/a.jpg").unwrap(),
            kind: MediaKind::Image,
        };
        let code = |kind: &str, draft: PostDraft| check_draft(kind, &draft).map_err(|f| f.code);
        assert_eq!(
            code(INSTAGRAM, draft("x", vec![], json!({}))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(
                INSTAGRAM,
                draft("x", (0..11).map(|_| image()).collect(), json!({}))
            ),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(
                INSTAGRAM,
                draft(&"a".repeat(2201), vec![image()], json!({}))
            ),
            Err(PostErrorCode::InvalidPost)
        );
        let tags = (0..31)
            .map(|i| format!("#t{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            code(INSTAGRAM, draft(&tags, vec![image()], json!({}))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(
                INSTAGRAM,
                draft("x", vec![image()], json!({ "privacy": "x" }))
            ),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(INSTAGRAM, draft("x", vec![image(), image()], json!({}))),
            Ok(())
        );
        assert_eq!(
            code(FACEBOOK, draft("", vec![], json!({}))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(FACEBOOK, draft("x", vec![image(), image()], json!({}))),
            Err(PostErrorCode::NotSupported)
        );
        assert_eq!(code(FACEBOOK, draft("x", vec![image()], json!({}))), Ok(()));
        assert_eq!(
            code("ad_account", draft("x", vec![], json!({}))),
            Err(PostErrorCode::NotSupported)
        );
    }

    #[test]
    fn graph_errors_map_to_stable_codes() {
        let answer = |status: u16, body: Value| ApiAnswer {
            status,
            headers: Default::default(),
            body,
        };
        let error = |code: u64, subcode: Option<u64>| {
            let mut e = json!({ "message": "m", "code": code });
            if let Some(s) = subcode {
                e["error_subcode"] = json!(s);
            }
            answer(400, json!({ "error": e }))
        };
        let code = |a: &ApiAnswer| graph_failure(a, false).code;
        assert_eq!(
            code(&error(190, Some(463))),
            PostErrorCode::ReconnectRequired
        );
        assert_eq!(code(&error(200, None)), PostErrorCode::PermissionMissing);
        assert_eq!(code(&error(10, None)), PostErrorCode::PermissionMissing);
        assert_eq!(
            code(&error(9, Some(2_207_042))),
            PostErrorCode::LimitReached
        );
        assert_eq!(code(&error(506, None)), PostErrorCode::InvalidPost);
        assert_eq!(code(&error(36_003, None)), PostErrorCode::MediaRejected);
        assert_eq!(
            code(&error(9004, Some(2_207_052))),
            PostErrorCode::MediaRejected
        );
        for throttle in [4, 17, 32, 613, 80_001, 80_002] {
            let failure = graph_failure(&error(throttle, None), true);
            assert_eq!(failure.code, PostErrorCode::RateLimited);
            assert!(failure.transient && !failure.answer_lost);
        }
        let server = answer(503, json!({ "error": { "code": 2, "message": "m" } }));
        assert!(graph_failure(&server, true).answer_lost);
        assert!(!graph_failure(&server, false).answer_lost);
    }
}
