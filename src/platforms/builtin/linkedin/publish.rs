//! Publishing a post as a LinkedIn organization: an image uploaded in `prepare_post` with the
//! Images API (initialize the upload, PUT the bytes to the URL it hands out, look at the image
//! until it is AVAILABLE), then `POST /rest/posts` with the commentary escaped in LinkedIn's
//! "little" text format, and LinkedIn's `{message, serviceErrorCode, status}` errors read into
//! the stable codes. Sources: `shared/linkedin.md` facts 35, 37–39, 45–56.
//!
//! The version and Rest.li headers go with every call as the platform's API headers
//! (`LINKEDIN_API_VERSION`, fixed `X-Restli-Protocol-Version`), as they do for discovery.
//!
//! A lost answer stays unknown (`confirm_post` keeps the default, `Unknowable`): the Posts API
//! takes no idempotency key and the post's URN came only in the lost answer's `x-restli-id`
//! (fact 47); finding it again would mean reading the organization's posts
//! (`r_organization_social`, not always granted) and matching a text the organization may have
//! posted before.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::platforms::error::scrub;
use crate::platforms::platform::PublishContext;
use crate::platforms::publish::{
    refuse_unknown_options, ApiAnswer, ApiBody, ApiRequest, MediaKind, PostDraft, PostErrorCode,
    Prepared, PublishFailure, PublishedPost, Sent,
};

/// The one kind of target: an organization the member administers (`target.id` is its id).
pub(super) const KINDS: &[&str] = &["linkedin_organization"];

/// The options a post reads: the image's `alt_text` (`content.media.altText`, fact 45).
const OPTIONS: &[&str] = &["alt_text"];

/// The longest commentary, counted as sent (escapes included): LinkedIn's 3,000 characters (its
/// share box's limit; the stored docs give none, the sandbox enforces the same).
const MAX_COMMENTARY: usize = 3000;

/// The characters LinkedIn's "little" text format reserves; each must be escaped with a
/// backslash, or the rendered post is cut at it while the API answers 201 (fact 48).
const RESERVED: &str = "\\|{}@[]()<>#*_~";

/// How long to wait for an image LinkedIn is processing (facts 49, 50 name no figure).
const PROCESSING_WAIT: Duration = Duration::from_secs(3);

/// The commentary in the "little" format: every reserved character escaped (fact 48).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if RESERVED.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The post's commentary, escaped: the text, and the link after it.
fn commentary(draft: &PostDraft) -> String {
    let text = match &draft.link {
        Some(link) if draft.text.is_empty() => link.to_string(),
        Some(link) => format!("{} {link}", draft.text),
        None => draft.text.clone(),
    };
    escape(&text)
}

fn author(context: &PublishContext<'_>) -> String {
    format!("urn:li:organization:{}", context.target.id)
}

/// Refuses what `POST /rest/posts` would refuse, and what Growth Engine does not send through it
/// (several images, which need `multiImage`; videos, which need the Videos API).
pub(super) fn check_draft(kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
    if !KINDS.contains(&kind) {
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!("LinkedIn publishes as an organization, not to a {kind}"),
        ));
    }
    refuse_unknown_options(draft, OPTIONS)?;
    if draft
        .options
        .get("alt_text")
        .is_some_and(|v| !v.is_string())
    {
        return Err(PublishFailure::permanent(
            PostErrorCode::InvalidPost,
            "option alt_text must be text",
        ));
    }
    let text = commentary(draft);
    if text.is_empty() && draft.media.is_empty() {
        return Err(PublishFailure::permanent(
            PostErrorCode::InvalidPost,
            "a LinkedIn post needs text or an image",
        ));
    }
    let length = text.chars().count();
    if length > MAX_COMMENTARY {
        return Err(PublishFailure::permanent(
            PostErrorCode::InvalidPost,
            format!(
                "the commentary holds {length} characters once escaped; at most {MAX_COMMENTARY}"
            ),
        ));
    }
    if draft.media.iter().any(|m| m.kind == MediaKind::Video) {
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            "video posts to LinkedIn are not supported through Growth Engine",
        ));
    }
    if draft.media.len() > 1 {
        return Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            "LinkedIn posts carry one image through Growth Engine",
        ));
    }
    Ok(())
}

/// Uploads the image, if any, and waits until LinkedIn says it is AVAILABLE (fact 50: a post
/// made before that may never be shown). The checkpoint is `{"image": urn}` once uploaded.
pub(super) async fn prepare_post(context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
    let Some(medium) = context.draft.media.first() else {
        return Ok(Prepared::Ready(json!({})));
    };
    let image = match context.checkpoint_str("image") {
        Some(urn) => urn.to_owned(),
        None => {
            let fetched = context.media.fetch(&medium.url).await?;
            let initialize = ApiRequest::new(Method::POST, context.api_url("images")?)
                .query("action", "initializeUpload")
                .body(ApiBody::Json(json!({
                    "initializeUploadRequest": { "owner": author(context) },
                })));
            let answer = expect_success(context, initialize).await?;
            let value = &answer.body["value"];
            let (Some(upload_url), Some(urn)) = (
                value.get("uploadUrl").and_then(Value::as_str),
                value.get("image").and_then(Value::as_str),
            ) else {
                return Err(PublishFailure::transient(
                    PostErrorCode::PlatformUnavailable,
                    "LinkedIn's initializeUpload answer named no upload URL or image",
                ));
            };
            let upload_url = url::Url::parse(upload_url).map_err(|_| {
                PublishFailure::transient(
                    PostErrorCode::PlatformUnavailable,
                    "LinkedIn's upload URL is not a URL",
                )
            })?;
            // [L16]: the upload is a PUT of the raw bytes, with the member's token.
            let put = ApiRequest::new(Method::PUT, upload_url).body(ApiBody::Bytes {
                content_type: fetched.content_type.clone(),
                bytes: fetched.bytes.clone(),
            });
            expect_success(context, put).await?;
            urn.to_owned()
        }
    };
    let encoded: String = url::form_urlencoded::byte_serialize(image.as_bytes()).collect();
    let look = ApiRequest::new(Method::GET, context.api_url(&format!("images/{encoded}"))?);
    let answer = expect_success(context, look).await?;
    match answer.body.get("status").and_then(Value::as_str) {
        Some("AVAILABLE") => Ok(Prepared::Ready(json!({ "image": image }))),
        Some("PROCESSING_FAILED") => Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            "LinkedIn could not process the image",
        )),
        _ => Ok(Prepared::Wait {
            checkpoint: json!({ "image": image }),
            retry_in: PROCESSING_WAIT,
        }),
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
        Err(failure(&answer, false))
    }
}

/// `POST /rest/posts` (fact 45): 201, the post's URN in `x-restli-id`, no body (fact 47).
pub(super) async fn send_post(context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
    let mut body = json!({
        "author": author(context),
        "commentary": commentary(context.draft),
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
    });
    if let Some(image) = context.checkpoint_str("image") {
        let mut media = json!({ "id": image });
        if let Some(alt) = context.option_str("alt_text") {
            media["altText"] = json!(alt);
        }
        body["content"] = json!({ "media": media });
    } else if !context.draft.media.is_empty() {
        return Err(PublishFailure::permanent(
            PostErrorCode::MediaRejected,
            "the image was not uploaded before the send",
        ));
    }
    let request =
        ApiRequest::new(Method::POST, context.api_url("posts")?).body(ApiBody::Json(body));
    let answer = context.call(request).await?;
    if !answer.is_success() {
        return Err(failure(&answer, true));
    }
    let id = answer.header("x-restli-id").map(str::to_owned);
    Ok(Sent::Published(PublishedPost {
        url: id
            .as_ref()
            .map(|urn| format!("https://www.linkedin.com/feed/update/{urn}/")),
        id,
    }))
}

/// Reads LinkedIn's error body (facts 39, 52–56); `send` when it answers the publishing call.
pub(super) fn failure(answer: &ApiAnswer, send: bool) -> PublishFailure {
    let message = answer
        .body
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| format!("LinkedIn answered {}", answer.status), scrub);
    let code = answer.body.get("code").and_then(Value::as_str);
    match answer.status {
        // Facts 54, 55: expired, revoked or invalid. (A 65601 right after connecting may be
        // LinkedIn's lag; a post that fails so is the merchant's to retry after reconnecting.)
        401 => PublishFailure::permanent(PostErrorCode::ReconnectRequired, message),
        403 => PublishFailure::permanent(PostErrorCode::PermissionMissing, message),
        // Fact 52: no Retry-After is sent; the scheduler's back-off decides.
        429 => PublishFailure::transient(PostErrorCode::RateLimited, message),
        // Fact 39: the pinned version was sunset.
        426 => PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!(
                "LinkedIn no longer serves the API version Growth Engine sends ({message}); \
                 the operator must set LINKEDIN_API_VERSION to a current month"
            ),
        ),
        _ if code == Some("NONEXISTENT_VERSION") => PublishFailure::permanent(
            PostErrorCode::NotSupported,
            format!("LinkedIn API version not served: {message}"),
        ),
        // A 5xx answer to the publishing call does not say the post was not created.
        500.. if send => PublishFailure {
            answer_lost: true,
            ..PublishFailure::transient(PostErrorCode::PlatformUnavailable, message)
        },
        500.. => PublishFailure::transient(PostErrorCode::PlatformUnavailable, message),
        _ if !send || message.to_lowercase().contains("media") => {
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
    use crate::platforms::builtin::publish_harness::{
        draft, target, FixedMedia, Harness, UnavailableMedia, IMAGE,
    };
    use crate::platforms::publish::{Confirmation, MediaRef, PublishTarget};
    use crate::sandbox::ApiRateLimit;

    const ORGANIZATION: &str = "2000001";
    const SCOPES: [&str; 2] = ["w_organization_social", "r_organization_admin"];

    /// The sandbox, and the organization acting with a token granting [`SCOPES`].
    async fn linkedin() -> (Harness, PublishTarget) {
        let harness = Harness::start("linkedin").await;
        let page = target(
            "linkedin_organization",
            ORGANIZATION,
            &harness.token(&SCOPES).await,
        );
        (harness, page)
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
    async fn a_text_post_is_published_escaped_as_the_organization() {
        let (harness, page) = linkedin().await;
        let draft = text("Sale (today only) #deals");
        check_draft("linkedin_organization", &draft).expect("a valid draft");
        let media = image_bytes();
        let post = harness.post(&draft, &page, &media);
        let (sent, _) = post.publish().await.expect("sent");
        let Sent::Published(published) = sent else {
            panic!("not published: {sent:?}");
        };
        let urn = published.id.expect("the x-restli-id");
        assert!(urn.starts_with("urn:li:share:"), "{urn}");
        assert_eq!(
            published.url,
            Some(format!("https://www.linkedin.com/feed/update/{urn}/"))
        );
        let confirmed = post.confirm(&json!({})).await;
        assert_eq!(confirmed, Ok(Confirmation::Unknowable));
        let items = harness.sim.published("linkedin");
        assert_eq!(
            items[0].target,
            format!("urn:li:organization:{ORGANIZATION}")
        );
        // Rendered whole: nothing cut at a reserved character.
        assert_eq!(
            items[0].fields["rendered_commentary"],
            "Sale (today only) #deals"
        );
    }

    #[tokio::test]
    async fn an_image_is_uploaded_and_waited_for_before_the_post() {
        let (harness, page) = linkedin().await;
        let photo = harness.media("image.jpg", MediaKind::Image);
        let draft = draft("New in", vec![photo], json!({ "alt_text": "A mug" }));
        let media = image_bytes();
        let (sent, checkpoint) = harness
            .post(&draft, &page, &media)
            .publish()
            .await
            .expect("sent");
        assert!(matches!(sent, Sent::Published(_)), "{sent:?}");
        let image = checkpoint["image"].as_str().expect("an image URN");
        let items = harness.sim.published("linkedin");
        assert_eq!(items[0].fields["content"]["media"]["id"], image);
        assert_eq!(items[0].fields["content"]["media"]["altText"], "A mug");
    }

    #[tokio::test]
    async fn linkedin_refusals_map_to_stable_codes() {
        let harness = Harness::start("linkedin").await;
        let hello = text("Hello");
        let media = image_bytes();
        // Without w_organization_social: 403. Asked for first: a grant of other scopes
        // invalidates every earlier token (the sandbox's LinkedIn keeps that rule, fact 12).
        let weak = target(
            "linkedin_organization",
            ORGANIZATION,
            &harness.token(&["r_organization_admin"]).await,
        );
        let sent = harness.post(&hello, &weak, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::PermissionMissing
        );
        // An organization the member has no role on: 403 too.
        let foreign = target(
            "linkedin_organization",
            "9999999",
            &harness.token(&SCOPES).await,
        );
        let sent = harness.post(&hello, &foreign, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::PermissionMissing
        );
        let page = target(
            "linkedin_organization",
            ORGANIZATION,
            &harness.token(&SCOPES).await,
        );
        // A dead token: 401.
        let dead = target("linkedin_organization", ORGANIZATION, "AQVdead");
        let sent = harness.post(&hello, &dead, &media).publish().await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::ReconnectRequired
        );
        // Throttled: 429, retried.
        harness.sim.set_api_rate_limited(
            "linkedin",
            Some(ApiRateLimit {
                retry_after_seconds: 60,
            }),
        );
        let sent = harness.post(&hello, &page, &media).publish().await;
        let failure = sent.expect_err("throttled");
        assert_eq!(failure.code, PostErrorCode::RateLimited);
        assert!(failure.transient);
        harness.sim.set_api_rate_limited("linkedin", None);
        // The image's server has nothing.
        let gone = draft(
            "Gone",
            vec![harness.media("missing", MediaKind::Image)],
            json!({}),
        );
        let sent = harness
            .post(&gone, &page, &UnavailableMedia)
            .publish()
            .await;
        assert_eq!(
            sent.expect_err("refused").code,
            PostErrorCode::MediaUnavailable
        );
    }

    #[tokio::test]
    async fn a_sunset_api_version_is_not_supported_with_a_clear_message() {
        let (mut harness, page) = linkedin().await;
        for header in &mut harness.spec.api_headers {
            if header.name.eq_ignore_ascii_case("LinkedIn-Version") {
                header.value = "202001".to_owned().into();
            }
        }
        let draft = text("Hello");
        let media = image_bytes();
        let failure = harness
            .post(&draft, &page, &media)
            .send(&json!({}))
            .await
            .expect_err("426");
        assert_eq!(failure.code, PostErrorCode::NotSupported);
        assert!(
            failure.message.contains("LINKEDIN_API_VERSION"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn server_errors_on_the_post_may_hide_a_published_one() {
        let answer = ApiAnswer {
            status: 500,
            headers: HeaderMap::new(),
            body: json!({"message": "Internal Server Error", "status": 500}),
        };
        let failure = failure(&answer, true);
        assert!(failure.answer_lost && failure.transient);
    }

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(escape("a (b) #c @d"), r"a \(b\) \#c \@d");
        assert_eq!(escape(r"x\y_z*~|{}[]<>"), r"x\\y\_z\*\~\|\{\}\[\]\<\>");
    }

    #[test]
    fn drafts_linkedin_would_refuse_are_refused() {
        let image = MediaRef {
            url: Url::parse("https://cdn.example/a.png").expect("a URL"),
            kind: MediaKind::Image,
        };
        let code =
            |draft: PostDraft| check_draft("linkedin_organization", &draft).map_err(|f| f.code);
        let text = |t: String| PostDraft {
            text: t,
            ..PostDraft::default()
        };
        assert_eq!(code(text("a".repeat(3000))), Ok(()));
        assert_eq!(
            code(text("(".repeat(1501))),
            Err(PostErrorCode::InvalidPost)
        );
        assert_eq!(code(text(String::new())), Err(PostErrorCode::InvalidPost));
        let with = |media: Vec<MediaRef>| PostDraft {
            text: "x".to_owned(),
            media,
            ..PostDraft::default()
        };
        assert_eq!(code(with(vec![image.clone()])), Ok(()));
        assert_eq!(
            code(with(vec![image.clone(); 2])),
            Err(PostErrorCode::NotSupported)
        );
        let video = MediaRef {
            kind: MediaKind::Video,
            ..image
        };
        assert_eq!(code(with(vec![video])), Err(PostErrorCode::NotSupported));
        let mut optioned = text("x".to_owned());
        optioned.options.insert("title".to_owned(), json!("t"));
        assert_eq!(code(optioned), Err(PostErrorCode::InvalidPost));
        assert_eq!(
            check_draft("linkedin_ad_account", &text("x".to_owned())).map_err(|f| f.code),
            Err(PostErrorCode::NotSupported)
        );
    }
}
