//! Publishing a Pin to a board: `POST /v5/pins` with the post's text as `description`, its
//! images as a `media_source` Pinterest fetches itself, and Pinterest's `{code, message}` errors
//! read into the stable codes. Sources: `shared/platform-apis.md` §4 [P1, P9, P10],
//! <https://developers.pinterest.com/docs/api/v5/pins-create>.
//!
//! Nothing is uploaded (Pinterest pulls `image_url`s), so there is no preparation; the send is
//! the one call. A lost answer stays unknown: Pinterest takes no idempotency key and accepts the
//! same Pin twice, so a Pin found on the board afterwards with the same title and description
//! could as well be an earlier one; `confirm_post` keeps the default (`Unknowable`).

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::platforms::error::scrub;
use crate::platforms::platform::PublishContext;
use crate::platforms::publish::{
    refuse_unknown_options, ApiAnswer, ApiBody, ApiRequest, MediaKind, PostDraft, PostErrorCode,
    PublishFailure, PublishedPost, Sent,
};

/// The one kind of target: a board (`target.id` is the board id).
pub(super) const KINDS: &[&str] = &["pinterest_board"];

/// The options a Pin reads: its `title` and the image's `alt_text` [P1].
const OPTIONS: &[&str] = &["title", "alt_text"];

/// P1's length limits, in characters.
const MAX_TITLE: usize = 100;
const MAX_DESCRIPTION: usize = 800;
const MAX_LINK: usize = 2048;
const MAX_ALT_TEXT: usize = 500;

/// A carousel (`multiple_image_urls`) holds two to five images (Pinterest's carousel rule; the
/// sandbox enforces the same bounds).
const MAX_IMAGES: usize = 5;

fn invalid(message: String) -> PublishFailure {
    PublishFailure::permanent(PostErrorCode::InvalidPost, message)
}

/// Refuses what `POST /v5/pins` would refuse [P1].
pub(super) fn check_draft(kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
    if !KINDS.contains(&kind) {
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!("Pinterest publishes to a board, not to a {kind}"),
        ));
    }
    refuse_unknown_options(draft, OPTIONS)?;
    for name in OPTIONS {
        if draft.options.get(*name).is_some_and(|v| !v.is_string()) {
            return Err(invalid(format!("option {name} must be text")));
        }
    }
    let too_long = |text: &str, max: usize| text.chars().count() > max;
    let option = |name: &str| draft.options.get(name).and_then(Value::as_str);
    if too_long(&draft.text, MAX_DESCRIPTION) {
        return Err(invalid(format!(
            "a Pin's description holds at most {MAX_DESCRIPTION} characters"
        )));
    }
    if option("title").is_some_and(|t| too_long(t, MAX_TITLE)) {
        return Err(invalid(format!(
            "a Pin's title holds at most {MAX_TITLE} characters"
        )));
    }
    if option("alt_text").is_some_and(|t| too_long(t, MAX_ALT_TEXT)) {
        return Err(invalid(format!(
            "a Pin's alt_text holds at most {MAX_ALT_TEXT} characters"
        )));
    }
    if draft
        .link
        .as_ref()
        .is_some_and(|l| too_long(l.as_str(), MAX_LINK))
    {
        return Err(invalid(format!(
            "a Pin's link holds at most {MAX_LINK} characters"
        )));
    }
    if draft.media.iter().any(|m| m.kind == MediaKind::Video) {
        // A video Pin needs the media upload flow (`POST /v5/media`, then `video_id`), which
        // Growth Engine does not drive.
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            "video Pins are not supported through Growth Engine; post an image",
        ));
    }
    match draft.media.len() {
        0 => Err(invalid("a Pin needs an image".to_owned())),
        n if n > MAX_IMAGES => Err(invalid(format!(
            "a Pin carries at most {MAX_IMAGES} images"
        ))),
        _ => Ok(()),
    }
}

/// The Pin's JSON body [P1].
fn pin_body(context: &PublishContext<'_>) -> Value {
    let draft = context.draft;
    let media_source = match draft.media.as_slice() {
        [one] => json!({ "source_type": "image_url", "url": one.url.as_str() }),
        many => json!({
            "source_type": "multiple_image_urls",
            "items": many.iter().map(|m| json!({ "url": m.url.as_str() })).collect::<Vec<_>>(),
        }),
    };
    let mut body = Map::new();
    body.insert("board_id".to_owned(), json!(context.target.id));
    body.insert("media_source".to_owned(), media_source);
    if !draft.text.is_empty() {
        body.insert("description".to_owned(), json!(draft.text));
    }
    if let Some(link) = &draft.link {
        body.insert("link".to_owned(), json!(link.as_str()));
    }
    for name in OPTIONS {
        if let Some(value) = context.option_str(name) {
            body.insert((*name).to_owned(), json!(value));
        }
    }
    Value::Object(body)
}

/// `POST /v5/pins`: 201 with the Pin.
pub(super) async fn send_post(context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
    let request = ApiRequest::new(Method::POST, context.api_url("pins")?)
        .body(ApiBody::Json(pin_body(context)));
    let answer = context.call(request).await?;
    if !answer.is_success() {
        return Err(failure(&answer));
    }
    let id = answer
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Sent::Published(PublishedPost {
        url: id
            .as_ref()
            .map(|id| format!("https://www.pinterest.com/pin/{id}/")),
        id,
    }))
}

/// Reads Pinterest's `{code, message}` error [P1, P10].
pub(super) fn failure(answer: &ApiAnswer) -> PublishFailure {
    let message = answer
        .body
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| format!("Pinterest answered {}", answer.status), scrub);
    let code = answer.body.get("code").and_then(Value::as_i64);
    let lower = message.to_lowercase();
    match (answer.status, code) {
        // P10: a 429 may be a spam block; trying again would only repeat it.
        (429, _) if lower.contains("spam") => {
            PublishFailure::permanent(PostErrorCode::InvalidPost, message)
        }
        (429, _) | (_, Some(8)) => PublishFailure::transient(PostErrorCode::RateLimited, message)
            .after(answer.retry_after()),
        // P1: only code 2 says the token is dead; 3 and 29 are missing scopes or access.
        (_, Some(2)) => PublishFailure::permanent(PostErrorCode::ReconnectRequired, message),
        (_, Some(3 | 29)) => PublishFailure::permanent(PostErrorCode::PermissionMissing, message),
        // P1: the account is disapproved (2625) or under review (2626).
        (_, Some(2625 | 2626)) => {
            PublishFailure::permanent(PostErrorCode::AccountNotEligible, message)
        }
        // A 5xx answer to the publishing call does not say the Pin was not created.
        (500.., _) => PublishFailure {
            answer_lost: true,
            ..PublishFailure::transient(PostErrorCode::PlatformUnavailable, message)
        },
        (400..=499, _) if ["image", "media"].iter().any(|word| lower.contains(word)) => {
            PublishFailure::permanent(PostErrorCode::MediaRejected, message)
        }
        _ => PublishFailure::permanent(PostErrorCode::InvalidPost, message),
    }
}

#[cfg(test)]
#[cfg(feature = "sandbox")]
mod tests {
    use reqwest::header::HeaderMap;
    use url::Url;

    use super::*;
    use crate::platforms::builtin::publish_harness::{draft, target, FixedMedia, Harness, IMAGE};
    use crate::platforms::publish::{Confirmation, MediaRef, PublishTarget};

    const BOARD: &str = "900000000000000001";
    const SCOPES: [&str; 4] = ["boards:read", "boards:write", "pins:read", "pins:write"];

    /// The sandbox, and the board acting with a token granting [`SCOPES`].
    async fn pinterest() -> (Harness, PublishTarget) {
        let harness = Harness::start("pinterest").await;
        let board = target("pinterest_board", BOARD, &harness.token(&SCOPES).await);
        (harness, board)
    }

    /// The caller's bytes. Pinterest fetches each image from its URL itself, so the client never
    /// reads these; what the sandbox fetches is the harness's media server.
    fn image_bytes() -> FixedMedia {
        FixedMedia {
            content_type: "image/jpeg",
            bytes: bytes::Bytes::from_static(IMAGE),
        }
    }

    fn images(harness: &Harness, names: &[&str]) -> Vec<MediaRef> {
        names
            .iter()
            .map(|name| harness.media(name, MediaKind::Image))
            .collect()
    }

    #[tokio::test]
    async fn a_pin_with_an_image_is_published_with_its_title_and_url() {
        let (harness, board) = pinterest().await;
        let mut draft = draft(
            "Our new mug",
            images(&harness, &["image.jpg"]),
            json!({ "title": "The mug" }),
        );
        draft.link = Some(Url::parse("https://shop.example/mug").expect("a URL"));
        check_draft("pinterest_board", &draft).expect("a valid draft");
        let media = image_bytes();
        let post = harness.post(&draft, &board, &media);
        let (sent, _) = post.publish().await.expect("sent");
        let Sent::Published(pin) = sent else {
            panic!("not published: {sent:?}");
        };
        let id = pin.id.expect("an id");
        assert_eq!(
            pin.url,
            Some(format!("https://www.pinterest.com/pin/{id}/"))
        );
        let published = harness.sim.published("pinterest");
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].target, BOARD);
        assert_eq!(published[0].fields["title"], "The mug");
        assert_eq!(published[0].fields["description"], "Our new mug");
        // No honest confirmation exists (see the module's doc): a lost answer stays unknown.
        assert_eq!(
            post.confirm(&Value::Null).await,
            Ok(Confirmation::Unknowable)
        );
    }

    #[tokio::test]
    async fn several_images_make_a_carousel() {
        let (harness, board) = pinterest().await;
        let draft = draft(
            "Two views",
            images(&harness, &["image.jpg", "image.jpg"]),
            json!({}),
        );
        let media = image_bytes();
        let (sent, _) = harness
            .post(&draft, &board, &media)
            .publish()
            .await
            .expect("sent");
        assert!(matches!(sent, Sent::Published(_)), "{sent:?}");
        let published = harness.sim.published("pinterest");
        assert_eq!(
            published[0].fields["media_source"]["source_type"],
            "multiple_image_urls"
        );
    }

    #[tokio::test]
    async fn an_image_pinterest_cannot_fetch_is_media_rejected() {
        let (harness, board) = pinterest().await;
        // Served, but as HTML: not something Pinterest can read as an image.
        let draft = draft("Broken", images(&harness, &["page.html"]), json!({}));
        let media = image_bytes();
        let failure = harness
            .post(&draft, &board, &media)
            .publish()
            .await
            .expect_err("rejected");
        assert_eq!(failure.code, PostErrorCode::MediaRejected);
        assert!(harness.sim.published("pinterest").is_empty());
    }

    #[tokio::test]
    async fn pinterest_refusals_map_to_stable_codes() {
        let (harness, board) = pinterest().await;
        let draft = draft("A pin", images(&harness, &["image.jpg"]), json!({}));
        let media = image_bytes();
        // Without pins:write: code 3.
        let weak = target(
            "pinterest_board",
            BOARD,
            &harness.token(&["boards:read"]).await,
        );
        let sent = harness.post(&draft, &weak, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::PermissionMissing
        );
        // A token the sandbox never issued: code 2.
        let dead = target("pinterest_board", BOARD, "pina_dead");
        let sent = harness.post(&draft, &dead, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::ReconnectRequired
        );
        // A throttle: code 8, worth another try.
        harness.sim.set_api_rate_limited(
            "pinterest",
            Some(crate::sandbox::ApiRateLimit {
                retry_after_seconds: 30,
            }),
        );
        let sent = harness.post(&draft, &board, &media).publish().await;
        let failure = sent.expect_err("throttled");
        assert_eq!(failure.code, PostErrorCode::RateLimited);
        assert!(failure.transient);
        harness.sim.set_api_rate_limited("pinterest", None);
        // A link on the spam list: a 429 that is not retried.
        let mut spam = draft.clone();
        spam.link = Some(Url::parse("https://spam.sandbox.example/x").expect("a URL"));
        let sent = harness.post(&spam, &board, &media).publish().await;
        let failure = sent.expect_err("blocked");
        assert_eq!(failure.code, PostErrorCode::InvalidPost);
        assert!(!failure.transient);
    }

    fn answer(status: u16, body: Value) -> ApiAnswer {
        ApiAnswer {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    #[test]
    fn account_codes_and_server_errors_read_as_pinterest_means_them() {
        let disapproved = answer(403, json!({"code": 2625, "message": "account disapproved"}));
        assert_eq!(
            failure(&disapproved).code,
            PostErrorCode::AccountNotEligible
        );
        let review = answer(403, json!({"code": 2626, "message": "under review"}));
        assert_eq!(failure(&review).code, PostErrorCode::AccountNotEligible);
        let denied = answer(403, json!({"code": 29, "message": "You are not permitted"}));
        assert_eq!(failure(&denied).code, PostErrorCode::PermissionMissing);
        let broken = failure(&answer(503, Value::Null));
        assert!(broken.answer_lost && broken.code == PostErrorCode::PlatformUnavailable);
    }

    #[test]
    fn drafts_pinterest_would_refuse_are_refused() {
        let image = MediaRef {
            url: Url::parse("https://cdn.example/a.png").expect("a URL"),
            kind: MediaKind::Image,
        };
        let ok = PostDraft {
            text: "fine".to_owned(),
            media: vec![image.clone()],
            ..PostDraft::default()
        };
        assert!(check_draft("pinterest_board", &ok).is_ok());
        let code = |draft: &PostDraft| check_draft("pinterest_board", draft).map_err(|f| f.code);
        assert_eq!(
            code(&PostDraft {
                text: "x".repeat(801),
                ..ok.clone()
            }),
            Err(PostErrorCode::InvalidPost)
        );
        let mut titled = ok.clone();
        titled
            .options
            .insert("title".to_owned(), json!("t".repeat(101)));
        assert_eq!(code(&titled), Err(PostErrorCode::InvalidPost));
        let mut unknown = ok.clone();
        unknown
            .options
            .insert("privacy_level".to_owned(), json!("x"));
        assert_eq!(code(&unknown), Err(PostErrorCode::InvalidPost));
        let video = PostDraft {
            media: vec![MediaRef {
                kind: MediaKind::Video,
                ..image.clone()
            }],
            ..ok.clone()
        };
        assert_eq!(code(&video), Err(PostErrorCode::NotSupported));
        assert_eq!(
            code(&PostDraft {
                media: Vec::new(),
                ..ok.clone()
            }),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            code(&PostDraft {
                media: vec![image; 6],
                ..ok.clone()
            }),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(
            check_draft("x_user", &ok).map_err(|f| f.code),
            Err(PostErrorCode::NotSupported)
        );
    }
}
