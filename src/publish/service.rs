//! [`Posts`]: the verbs of publishing. Creating a post checks it against its platform's rules
//! at once and stores it idempotently (the store's unique `(store_id, idempotency_key)` decides
//! between concurrent retries); cancelling, approving and rejecting are conditional transitions
//! that fence out any replica holding the post, so a cancelled post is never sent and an
//! approved post goes out once.
//!
//! The approval link is a 256-bit random secret: the post keeps only its SHA-256 digest; the link
//! itself travels in the `post.approval_requested` webhook to the services (its outbox row keeps
//! it until delivered and pruned). It is used up by the first decision, and it expires with the
//! request (`POSTS_APPROVAL_TTL_HOURS`).

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use url::Url;
use uuid::Uuid;

use super::error::PostError;
use super::media::MediaFetcher;
use super::model::{post_event, stored_draft, CreatePost, PostStatus};
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::config::PostSettings;
use crate::domain::{ConnectionStatus, PlatformId, StoreId};
use crate::error::OAuthError;
use crate::lifecycle::{Assets, Core};
use crate::metrics::Metrics;
use crate::platforms::publish::PostDraft;
use crate::platforms::publish::{PostErrorCode, PublishFailure};
use crate::platforms::PlatformClient;
use crate::store::{NewEvent, PostQuery, PostRow, PostTransition, StoredAsset};

/// What the publishing services stand on; built once by the app.
#[derive(Debug)]
pub struct PostsParts {
    /// Rows, catalog and clock.
    pub core: Core,
    /// The token for a post's account.
    pub assets: Assets,
    /// Platform calls.
    pub client: PlatformClient,
    /// The callers' media.
    pub media: MediaFetcher,
    /// The audit trail.
    pub audit: AuditLog,
    /// Metrics.
    pub metrics: Metrics,
    /// Approval, retries, the scheduler's pace.
    pub settings: PostSettings,
    /// Our public base URL (approval links).
    pub api_url: Url,
    /// Wakes this replica's scheduler when a post is due now.
    pub wake: Notify,
}

/// The merchant's answer to a post waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// Publish it.
    Approve,
    /// Do not.
    Reject,
}

/// Publishing's verbs; a cheap clone.
#[derive(Debug, Clone)]
pub struct Posts {
    parts: Arc<PostsParts>,
}

/// What a new post is made of.
struct NewPost<'a> {
    actor: &'a Actor,
    idempotency_key: &'a str,
    request: &'a CreatePost,
    store_id: &'a StoreId,
    platform: &'a str,
    asset: &'a StoredAsset,
    draft: &'a PostDraft,
    approval: bool,
    now: DateTime<Utc>,
}

/// The statuses a post can be cancelled in (publishing only before its send began).
const CANCELLABLE: &[&str] = &["scheduled", "pending_approval", "publishing"];

impl Posts {
    /// The service.
    pub fn new(parts: PostsParts) -> Self {
        Self {
            parts: Arc::new(parts),
        }
    }

    /// What it stands on (the scheduler's view).
    pub(crate) fn parts(&self) -> &PostsParts {
        &self.parts
    }

    fn now(&self) -> DateTime<Utc> {
        self.parts.core.clock().now()
    }

    /// Creates a post, or returns the one this store already has under `idempotency_key` when
    /// the request is the same (`false`: not created now); another request under the same key is
    /// refused.
    pub async fn create(
        &self,
        actor: &Actor,
        idempotency_key: &str,
        request: &CreatePost,
    ) -> Result<(PostRow, bool), PostError> {
        let key_ok = !idempotency_key.is_empty()
            && idempotency_key.len() <= 255
            && idempotency_key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(PostError::MissingIdempotencyKey);
        }
        let store_id = StoreId::parse(&request.store_id)
            .map_err(|e| PostError::Invalid(format!("store_id: {e}")))?;
        let core = &self.parts.core;
        // A retry finds its post before anything else is checked: the connection may have
        // changed since, and the post exists all the same.
        if let Some(existing) = core.store().post_by_key(&store_id, idempotency_key).await? {
            return if existing.request_digest == request.digest() {
                Ok((existing, false))
            } else {
                Err(PostError::IdempotencyConflict)
            };
        }
        let now = self.now();
        let draft = request.draft(now)?;
        let spec = core
            .catalog()
            .require(&request.platform)
            .map_err(OAuthError::from)?
            .clone();
        let connection = core.load(&store_id, &spec.id).await?;
        if connection.status != ConnectionStatus::Connected {
            return Err(OAuthError::NotUsable(connection.status).into());
        }
        let asset = self
            .account(&spec.id, spec.behaviour.publish_kinds(), &store_id, request)
            .await?;
        spec.behaviour
            .check_draft(&asset.kind, &draft)
            .map_err(PostError::Refused)?;

        // Microseconds, as PostgreSQL keeps them: a page's cursor then names its last row exactly.
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let approval = match core.store().post_approval_policy(&store_id).await? {
            Some(require) => require,
            None => self.parts.settings.require_approval,
        };
        let (row, event) = self.new_post(NewPost {
            actor,
            idempotency_key,
            request,
            store_id: &store_id,
            platform: spec.id.as_str(),
            asset: &asset,
            draft: &draft,
            approval,
            now,
        });
        if let Some(existing) = core.store().insert_post(&row, event.as_ref()).await? {
            if existing.request_digest != row.request_digest {
                return Err(PostError::IdempotencyConflict);
            }
            return Ok((existing, false));
        }
        self.parts.audit.record(
            AuditEvent::new(actor.clone(), "post.create", "success")
                .with_store(&store_id)
                .with_platform(spec.id.as_str())
                .with_detail(format!("{} {}", row.id, row.status)),
        );
        self.parts
            .metrics
            .post(spec.id.as_str(), row.status.as_str());
        if !approval && row.publish_at <= now {
            self.parts.wake.notify_one();
        }
        Ok((row, true))
    }

    /// The row of a new post and, when it waits for approval, its event with the approval link.
    fn new_post(&self, new: NewPost<'_>) -> (PostRow, Option<NewEvent>) {
        let NewPost {
            actor,
            idempotency_key,
            request,
            store_id,
            platform,
            asset,
            draft,
            approval,
            now,
        } = new;
        let publish_at = request.publish_at.filter(|at| *at > now).unwrap_or(now);
        let retry = chrono::Duration::from_std(self.parts.settings.retry_deadline)
            .unwrap_or(chrono::Duration::hours(1));
        let approval_ttl = chrono::Duration::from_std(self.parts.settings.approval_ttl)
            .unwrap_or(chrono::Duration::hours(24));
        let secret = approval.then(approval_secret);
        let approval_expires_at = approval.then(|| now + approval_ttl);
        let row = PostRow {
            id: Uuid::now_v7(),
            store_id: store_id.to_string(),
            platform: platform.to_owned(),
            account_kind: asset.kind.clone(),
            account_id: asset.id.clone(),
            idempotency_key: idempotency_key.to_owned(),
            request_digest: request.digest(),
            created_by: actor_name(actor),
            draft: stored_draft(draft),
            status: if approval {
                PostStatus::PendingApproval
            } else {
                PostStatus::Scheduled
            }
            .as_str()
            .to_owned(),
            publish_at,
            deadline_at: publish_at + retry,
            due_at: Some(approval_expires_at.unwrap_or(publish_at)),
            stage: "prepare".to_owned(),
            checkpoint: serde_json::Value::Null,
            sent_at: None,
            lease_owner: None,
            attempts: 0,
            platform_post_id: None,
            platform_url: None,
            error_code: None,
            error_message: None,
            approval_digest: secret.as_deref().map(digest),
            approval_expires_at,
            decided_by: None,
            decided_at: None,
            published_at: None,
            created_at: now,
            updated_at: now,
        };
        let event = secret.as_deref().map(|secret| {
            let url = self.approval_url(row.id, secret);
            post_event(
                "post.approval_requested",
                &row,
                Some((
                    "approval",
                    json!({ "url": url, "expires_at": approval_expires_at }),
                )),
                now,
            )
        });
        (row, event)
    }

    /// The asset a post goes to: the one named, which must be of a kind the platform publishes
    /// to, or the connection's selected asset of the first such kind that has one.
    async fn account(
        &self,
        platform: &PlatformId,
        kinds: &[&str],
        store_id: &StoreId,
        request: &CreatePost,
    ) -> Result<StoredAsset, PostError> {
        if kinds.is_empty() {
            return Err(PostError::Refused(PublishFailure::permanent(
                PostErrorCode::NotSupported,
                format!("{platform} publishes nothing through Growth Engine"),
            )));
        }
        let mut assets = self.parts.core.store().list_assets(store_id).await?;
        assets.retain(|asset| &asset.platform == platform && kinds.contains(&asset.kind.as_str()));
        if let Some(named) = &request.account {
            return assets
                .into_iter()
                .find(|asset| &asset.id == named)
                .ok_or_else(|| {
                    PostError::Invalid(format!(
                        "the connection has no account {named:?} to publish to (kinds: {})",
                        kinds.join(", ")
                    ))
                });
        }
        for kind in kinds {
            let of_kind: Vec<&StoredAsset> =
                assets.iter().filter(|asset| asset.kind == *kind).collect();
            if let Some(selected) = of_kind.iter().find(|asset| asset.selected) {
                return Ok((*selected).clone());
            }
            if let [only] = of_kind.as_slice() {
                return Ok((*only).clone());
            }
        }
        Err(PostError::NoAccount)
    }

    /// One post.
    pub async fn get(&self, id: Uuid) -> Result<PostRow, PostError> {
        self.parts
            .core
            .store()
            .post(id)
            .await?
            .ok_or(PostError::NotFound)
    }

    /// A page of a store's posts, newest first.
    pub async fn list(&self, query: &PostQuery<'_>) -> Result<Vec<PostRow>, PostError> {
        Ok(self.parts.core.store().list_posts(query).await?)
    }

    /// Cancels a post not yet sent.
    pub async fn cancel(&self, actor: &Actor, id: Uuid) -> Result<PostRow, PostError> {
        let post = self.get(id).await?;
        let now = self.now();
        let cancelled = PostRow {
            status: PostStatus::Cancelled.as_str().to_owned(),
            due_at: None,
            approval_digest: None,
            updated_at: now,
            ..post.clone()
        };
        let changed = self
            .parts
            .core
            .store()
            .transition_post(
                &PostTransition {
                    from: CANCELLABLE,
                    unsent_only: true,
                    approval_digest: None,
                    unexpired_at: None,
                    post: &cancelled,
                },
                None,
            )
            .await?;
        self.audit(actor, "post.cancel", &post, changed);
        if !changed {
            let now = self.get(id).await?;
            return Err(PostError::WrongState(if now.sent_at.is_some() {
                "already sent".to_owned()
            } else {
                now.status
            }));
        }
        self.parts.metrics.post(&post.platform, "cancelled");
        Ok(cancelled)
    }

    /// The merchant's answer to a post waiting for approval, from the page (`link_secret`
    /// `None`) or through the approval link, which the answer uses up.
    pub async fn decide(
        &self,
        actor: &Actor,
        id: Uuid,
        decision: ApprovalDecision,
        link_secret: Option<&str>,
    ) -> Result<PostRow, PostError> {
        let post = self.get(id).await?;
        let link_digest = link_secret.map(digest);
        if let Some(wanted) = &link_digest {
            let open = post.approval_digest.as_ref() == Some(wanted)
                && post.approval_expires_at.is_some_and(|at| at > self.now());
            if !open {
                return Err(PostError::ApprovalLinkInvalid);
            }
        }
        if post.approval_expires_at.is_some_and(|at| at <= self.now()) {
            return Err(PostError::WrongState(
                "past its approval deadline".to_owned(),
            ));
        }
        let now = self.now();
        let retry = chrono::Duration::from_std(self.parts.settings.retry_deadline)
            .unwrap_or(chrono::Duration::hours(1));
        let decided = match decision {
            ApprovalDecision::Approve => {
                let due = post.publish_at.max(now);
                PostRow {
                    status: PostStatus::Scheduled.as_str().to_owned(),
                    due_at: Some(due),
                    deadline_at: due + retry,
                    ..post.clone()
                }
            }
            ApprovalDecision::Reject => PostRow {
                status: PostStatus::Failed.as_str().to_owned(),
                due_at: None,
                error_code: Some(PostErrorCode::NotApproved.as_str().to_owned()),
                error_message: Some("The merchant rejected the post.".to_owned()),
                ..post.clone()
            },
        };
        let decided = PostRow {
            approval_digest: None,
            decided_by: Some(actor_name(actor)),
            decided_at: Some(now),
            updated_at: now,
            ..decided
        };
        let event = (decision == ApprovalDecision::Reject)
            .then(|| post_event("post.failed", &decided, None, now));
        let changed = self
            .parts
            .core
            .store()
            .transition_post(
                &PostTransition {
                    from: &["pending_approval"],
                    unsent_only: true,
                    approval_digest: link_digest.as_deref(),
                    // An expired request is not answered any more, from the page or a link.
                    unexpired_at: Some(now),
                    post: &decided,
                },
                event.as_ref(),
            )
            .await?;
        let operation = match decision {
            ApprovalDecision::Approve => "post.approve",
            ApprovalDecision::Reject => "post.reject",
        };
        self.audit(actor, operation, &post, changed);
        if !changed {
            if link_secret.is_some() {
                return Err(PostError::ApprovalLinkInvalid);
            }
            return Err(PostError::WrongState(self.get(id).await?.status));
        }
        self.parts.metrics.post(
            &post.platform,
            match decision {
                ApprovalDecision::Approve => "approved",
                ApprovalDecision::Reject => "rejected",
            },
        );
        if decision == ApprovalDecision::Approve && decided.due_at <= Some(now) {
            self.parts.wake.notify_one();
        }
        Ok(decided)
    }

    /// Whether `secret` opens the post's approval link now (unused, unexpired).
    pub fn link_is_open(&self, post: &PostRow, secret: &str) -> bool {
        post.status == PostStatus::PendingApproval.as_str()
            && post.approval_digest.as_deref() == Some(digest(secret).as_str())
            && post.approval_expires_at.is_some_and(|at| at > self.now())
    }

    /// Whether the store's posts wait for approval (its own choice, or the operator's default).
    pub async fn requires_approval(&self, store_id: &StoreId) -> Result<bool, PostError> {
        Ok(self
            .parts
            .core
            .store()
            .post_approval_policy(store_id)
            .await?
            .unwrap_or(self.parts.settings.require_approval))
    }

    /// Sets whether the store's posts wait for approval (from now on: posts already waiting keep
    /// waiting).
    pub async fn set_requires_approval(
        &self,
        actor: &Actor,
        store_id: &StoreId,
        require: bool,
    ) -> Result<(), PostError> {
        self.parts
            .core
            .store()
            .set_post_approval_policy(store_id, require, self.now())
            .await?;
        self.parts.audit.record(
            AuditEvent::new(actor.clone(), "post.approval_policy", "success")
                .with_store(store_id)
                .with_detail(if require { "required" } else { "not_required" }),
        );
        Ok(())
    }

    /// The approval link of a post: opens the approval page.
    fn approval_url(&self, id: Uuid, secret: &str) -> String {
        // Joined, so that a path prefix in API_URL (behind a proxy) is kept.
        let mut base = self.parts.api_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut url = base
            .join(&format!("api/v1/posts/{id}/approval"))
            .unwrap_or_else(|_| self.parts.api_url.clone());
        url.query_pairs_mut().append_pair("token", secret);
        url.to_string()
    }

    fn audit(&self, actor: &Actor, operation: &'static str, post: &PostRow, changed: bool) {
        let event = AuditEvent::new(actor.clone(), operation, "success")
            .with_platform(&post.platform)
            .with_detail(post.id.to_string());
        let event = match StoreId::parse(&post.store_id) {
            Ok(store) => event.with_store(&store),
            Err(_) => event,
        };
        self.parts.audit.record(if changed {
            event
        } else {
            event.failed("post_wrong_state")
        });
    }
}

/// The name an actor is recorded by on a post.
fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::ApiKey(name) => format!("api_key:{name}"),
        Actor::PageUser(name) => format!("page_user:{name}"),
        Actor::System(name) => format!("system:{name}"),
        Actor::Platform(name) => format!("platform:{name}"),
    }
}

/// A fresh approval secret: 256 random bits, base64url.
fn approval_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored digest of an approval secret.
fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
