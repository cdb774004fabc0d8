//! The scheduler every replica runs: it claims due posts (a batch in one statement; replicas
//! claiming together get different posts) and takes each one step further, several at once.
//!
//! A claim gives the post a new `lease_owner` and makes it due again at the lease's end, so a
//! replica that dies mid-step leaves its posts to another. Every write is fenced by the owner: a
//! replica whose claim was taken over, or whose post was cancelled, writes nothing more.
//!
//! Never twice: `sent_at` is written (fenced) before the platform's send, and a post with
//! `sent_at` set is only ever confirmed. A send whose answer was lost, or one that was under way
//! when its replica died, is confirmed with the platform where it can tell (TikTok's publish
//! status, an Instagram container's status) and otherwise recorded `unknown` and reported with
//! `post.unknown`. An outcome the platform gave while PostgreSQL was away is held and written
//! again until it lands, for as long as the process lives.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::model::{post_event, read_draft, PostStatus};
use super::service::Posts;
use crate::audit::{Actor, AuditEvent};
use crate::domain::StoreId;
use crate::error::OAuthError;
use crate::platforms::platform::PublishContext;
use crate::platforms::publish::{
    Confirmation, PostDraft, PostErrorCode, Prepared, PublishFailure, PublishTarget, PublishedPost,
    Sent,
};
use crate::platforms::PlatformSpec;
use crate::store::{NewEvent, PostRow};

/// How long after its send a post that the platform still processes (or that cannot be
/// confirmed for a while) is asked about before it is recorded `unknown`.
const CONFIRM_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// How long after a send a platform's "it is not there" is believed (before, the platform may
/// still be taking the post whose answer was lost).
const SETTLE: chrono::Duration = chrono::Duration::seconds(60);

/// How long an outcome the database refused is written again.
const OUTCOME_PERSISTENCE: Duration = Duration::from_secs(600);

/// The loop of one replica.
#[derive(Debug, Clone)]
pub struct PostScheduler {
    posts: Posts,
}

/// What one step ended with, for the metrics and the log.
enum Step {
    /// The post's row was written; nothing more to do now.
    Saved,
    /// Another replica or the API took the post over: nothing was written.
    Fenced,
    /// The database failed before the post was sent: it becomes due again at the lease's end.
    Abandoned,
}

impl PostScheduler {
    /// The scheduler of `posts`.
    pub fn new(posts: Posts) -> Self {
        Self { posts }
    }

    /// Claims and steps posts until `stop` resolves; the steps under way finish first (the app's
    /// shutdown grace bounds the wait).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let parts = self.posts.parts();
        let permits = Arc::new(Semaphore::new(parts.settings.concurrency));
        let mut steps = JoinSet::new();
        let mut warned_at: Option<tokio::time::Instant> = None;
        loop {
            if futures::FutureExt::now_or_never(&mut stop).is_some() {
                break;
            }
            while steps.try_join_next().is_some() {}
            let free = permits.available_permits();
            let mut claimed = 0;
            if free > 0 {
                match self.claim(free).await {
                    Ok(posts) => {
                        claimed = posts.len();
                        for post in posts {
                            let Ok(permit) = permits.clone().acquire_owned().await else {
                                break;
                            };
                            let scheduler = self.clone();
                            steps.spawn(async move {
                                scheduler.step(post).await;
                                drop(permit);
                            });
                        }
                    }
                    // Once a minute at most: an outage would otherwise log four times a second.
                    Err(error)
                        if warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) =>
                    {
                        warned_at = Some(tokio::time::Instant::now());
                        tracing::warn!(error = %error, "posts: claiming failed; trying again");
                    }
                    Err(_) => {}
                }
            }
            if free > 0 && claimed == free {
                continue;
            }
            tokio::select! {
                () = &mut stop => break,
                () = parts.wake.notified() => {}
                () = tokio::time::sleep(parts.settings.poll) => {}
                Some(_) = steps.join_next(), if free == 0 => {}
            }
        }
        while steps.join_next().await.is_some() {}
    }

    async fn claim(&self, limit: usize) -> Result<Vec<PostRow>, OAuthError> {
        let parts = self.posts.parts();
        let now = parts.core.clock().now();
        let lease = chrono::Duration::from_std(parts.settings.lease)
            .unwrap_or(chrono::Duration::minutes(2));
        Ok(parts
            .core
            .store()
            .claim_due_posts(now, now + lease, i64::try_from(limit).unwrap_or(64))
            .await?)
    }

    /// Claims and steps every post due now, once (tests drive the scheduler with it).
    pub async fn run_once(&self) -> Result<usize, OAuthError> {
        let posts = self.claim(1000).await?;
        let count = posts.len();
        for post in posts {
            self.step(post).await;
        }
        Ok(count)
    }

    /// Takes one claimed post as far as it goes now.
    async fn step(&self, post: PostRow) {
        let id = post.id;
        let Some(owner) = post.lease_owner else {
            return;
        };
        match self.advance(post, owner).await {
            Step::Saved => {}
            Step::Fenced => {
                tracing::info!(post = %id, "post taken over (cancelled, or claimed again after its lease); this replica stops");
            }
            Step::Abandoned => {
                tracing::warn!(post = %id, "post left for a later claim: the database failed");
            }
        }
    }

    async fn advance(&self, post: PostRow, owner: Uuid) -> Step {
        let now = self.now();
        match PostStatus::parse(&post.status) {
            Some(PostStatus::PendingApproval) => {
                if post.approval_expires_at.is_some_and(|at| at <= now) {
                    let hours = self.posts.parts().settings.approval_ttl.as_secs() / 3600;
                    let failure = PublishFailure::permanent(
                        PostErrorCode::NotApproved,
                        format!("The merchant did not answer within {hours} hours."),
                    );
                    return self.fail(post, owner, &failure).await;
                }
                let due = post.approval_expires_at;
                return self
                    .save(
                        PostRow {
                            due_at: due,
                            ..post
                        },
                        owner,
                        None,
                    )
                    .await;
            }
            Some(PostStatus::Scheduled | PostStatus::Publishing) => {}
            _ => {
                return self
                    .save(
                        PostRow {
                            due_at: None,
                            ..post
                        },
                        owner,
                        None,
                    )
                    .await;
            }
        }
        let post = PostRow {
            status: PostStatus::Publishing.as_str().to_owned(),
            ..post
        };
        if post.sent_at.is_none() && now > post.deadline_at {
            let last = post.error_message.clone().unwrap_or_default();
            let failure = PublishFailure::permanent(
                PostErrorCode::PlatformUnavailable,
                format!("The platform did not take the post before its deadline. {last}")
                    .trim()
                    .to_owned(),
            );
            return self.fail(post, owner, &failure).await;
        }
        let spec = match self.posts.parts().core.catalog().find(&post.platform) {
            Some(spec) => spec.clone(),
            None => {
                let failure = PublishFailure::permanent(
                    PostErrorCode::NotSupported,
                    format!("{} is not configured on this service", post.platform),
                );
                return self.settle_unsent_or_unknown(post, owner, failure).await;
            }
        };
        let target = match self.target(&spec, &post).await {
            Ok(target) => target,
            Err(failure) => return self.settle_unsent_or_unknown(post, owner, failure).await,
        };
        // A send that began (this replica or one that died) is only ever confirmed.
        if post.sent_at.is_some() {
            return self.confirm(&spec, &target, post, owner).await;
        }
        self.prepare_and_send(&spec, &target, post, owner).await
    }

    /// A failure before anything could be asked of the platform: the post fails if it was never
    /// sent, and is left to confirmation (then `unknown`) if it was.
    async fn settle_unsent_or_unknown(
        &self,
        post: PostRow,
        owner: Uuid,
        failure: PublishFailure,
    ) -> Step {
        if post.sent_at.is_none() {
            return self.retry_or_fail(post, owner, failure).await;
        }
        if failure.transient && self.now() < post.sent_at.unwrap_or_default() + CONFIRM_WINDOW {
            let due = self.now() + retry_delay(post.attempts, failure.retry_after);
            return self
                .save(
                    PostRow {
                        due_at: Some(due),
                        ..post
                    },
                    owner,
                    None,
                )
                .await;
        }
        self.unknown(post, &failure.message).await
    }

    async fn prepare_and_send(
        &self,
        spec: &PlatformSpec,
        target: &PublishTarget,
        post: PostRow,
        owner: Uuid,
    ) -> Step {
        let draft = read_draft(&post.draft);
        let prepared = {
            let context = self.context(spec, &draft, target, &post.checkpoint);
            self.kept(&post, owner, spec.behaviour.prepare_post(&context))
                .await
        };
        let checkpoint = match prepared {
            Ok(Prepared::Ready(checkpoint)) => checkpoint,
            Ok(Prepared::Wait {
                checkpoint,
                retry_in,
            }) => {
                let due = self.now() + to_chrono(retry_in);
                if due > post.deadline_at {
                    let failure = PublishFailure::permanent(
                        PostErrorCode::PlatformUnavailable,
                        "The platform was still processing the media at the post's deadline.",
                    );
                    return self.fail(post, owner, &failure).await;
                }
                return self
                    .save(
                        PostRow {
                            checkpoint,
                            stage: "prepare".to_owned(),
                            due_at: Some(due),
                            ..post
                        },
                        owner,
                        None,
                    )
                    .await;
            }
            Err(failure) => return self.retry_or_fail(post, owner, failure).await,
        };
        self.send(spec, target, &draft, post, owner, checkpoint)
            .await
    }

    /// Records the send, then makes it, once.
    async fn send(
        &self,
        spec: &PlatformSpec,
        target: &PublishTarget,
        draft: &PostDraft,
        post: PostRow,
        owner: Uuid,
        checkpoint: Value,
    ) -> Step {
        let parts = self.posts.parts();
        // The point of no return, written before the send: if this replica dies from here on,
        // the post is confirmed, never sent again.
        let lease = to_chrono(parts.settings.lease);
        // Microseconds, as PostgreSQL keeps them: the outcome's write is matched on it.
        let now = micros(self.now());
        let sending = PostRow {
            stage: "send".to_owned(),
            checkpoint,
            sent_at: Some(now),
            due_at: Some(now + lease),
            updated_at: now,
            ..post
        };
        match parts
            .core
            .store()
            .save_claimed_post(&sending, owner, None)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Step::Fenced,
            // The write may have landed and only its answer been lost: read it back, since
            // a send recorded and then abandoned would be called unknown for nothing.
            Err(_) => match parts.core.store().post(sending.id).await {
                Ok(Some(row)) if row.sent_at == Some(now) && row.lease_owner == Some(owner) => {}
                _ => return Step::Abandoned,
            },
        }
        let sent = {
            let context = self.context(spec, draft, target, &sending.checkpoint);
            self.kept(&sending, owner, spec.behaviour.send_post(&context))
                .await
        };
        match sent {
            Ok(Sent::Published(published)) => self.published(sending, published).await,
            Ok(Sent::Accepted {
                checkpoint,
                check_in,
            }) => {
                let due = self.now() + to_chrono(check_in);
                let accepted = PostRow {
                    stage: "confirm".to_owned(),
                    checkpoint,
                    due_at: Some(due),
                    ..sending
                };
                self.save_outcome(accepted, None).await
            }
            Err(failure) if failure.answer_lost => {
                tracing::warn!(post = %sending.id, platform = %sending.platform, "the platform's answer to a post was lost; confirming");
                let confirming = PostRow {
                    stage: "confirm".to_owned(),
                    due_at: Some(self.now() + chrono::Duration::seconds(2)),
                    error_message: Some(format!("Confirming: {}", failure.message)),
                    ..sending
                };
                self.save_outcome(confirming, None).await
            }
            Err(failure) if failure.transient => {
                // The platform certainly did not take it (a throttle, a connection never made):
                // the send may be tried again.
                let unsent = PostRow {
                    sent_at: None,
                    stage: "prepare".to_owned(),
                    ..sending
                };
                self.unsent_retry_or_fail(unsent, now, failure).await
            }
            Err(failure) => self.fail(sending, owner, &failure).await,
        }
    }

    async fn confirm(
        &self,
        spec: &PlatformSpec,
        target: &PublishTarget,
        post: PostRow,
        owner: Uuid,
    ) -> Step {
        let draft = read_draft(&post.draft);
        let confirmation = {
            let context = self.context(spec, &draft, target, &post.checkpoint);
            self.kept(&post, owner, spec.behaviour.confirm_post(&context))
                .await
        };
        let sent_at = post.sent_at.unwrap_or_default();
        let window_open = self.now() < sent_at + CONFIRM_WINDOW;
        // Right after a lost answer the platform may still be taking the post: "not there" is
        // believed only once it had time to be.
        let settled = self.now() >= sent_at + SETTLE;
        match confirmation {
            Ok(Confirmation::Failed(_)) if !settled => {
                let due = self.now() + chrono::Duration::seconds(10);
                self.save(
                    PostRow {
                        due_at: Some(due),
                        ..post
                    },
                    owner,
                    None,
                )
                .await
            }
            Ok(Confirmation::Published(published)) => self.published(post, published).await,
            Ok(Confirmation::Processing(after)) if window_open => {
                let due = self.now() + to_chrono(after);
                self.save(
                    PostRow {
                        due_at: Some(due),
                        ..post
                    },
                    owner,
                    None,
                )
                .await
            }
            Ok(Confirmation::Processing(_)) => {
                self.unknown(
                    post,
                    "The platform was still processing the post an hour after it was sent.",
                )
                .await
            }
            Ok(Confirmation::Failed(failure)) => self.fail(post, owner, &failure).await,
            Ok(Confirmation::Unknowable) => {
                let why = post
                    .error_message
                    .clone()
                    .unwrap_or_else(|| "The send was under way when its replica stopped.".into());
                self.unknown(post,
                    &format!("{why} The platform offers no way to confirm it; check the account before posting again."),
                )
                .await
            }
            Err(failure) if failure.transient && window_open => {
                let due = self.now() + retry_delay(post.attempts, failure.retry_after);
                self.save(
                    PostRow {
                        due_at: Some(due),
                        ..post
                    },
                    owner,
                    None,
                )
                .await
            }
            Err(failure) => self.unknown(post, &failure.message).await,
        }
    }

    /// The asset's token and facts.
    async fn target(
        &self,
        spec: &PlatformSpec,
        post: &PostRow,
    ) -> Result<PublishTarget, PublishFailure> {
        let parts = self.posts.parts();
        let store_id = StoreId::parse(&post.store_id).map_err(|_| {
            PublishFailure::permanent(PostErrorCode::InvalidPost, "the post's store id is invalid")
        })?;
        let issued = parts
            .assets
            .token_for_account(spec, &store_id, Some(&post.account_id))
            .await
            .map_err(token_failure)?;
        let details = parts
            .core
            .store()
            .list_assets(&store_id)
            .await
            .map_err(|e| token_failure(e.into()))?
            .into_iter()
            .find(|asset| asset.platform == spec.id && asset.id == post.account_id)
            .map(|asset| asset.details)
            .unwrap_or(Value::Null);
        Ok(PublishTarget {
            kind: post.account_kind.clone(),
            id: post.account_id.clone(),
            name: issued.account.and_then(|account| account.name),
            details,
            token: issued.token.access_token,
        })
    }

    async fn published(&self, post: PostRow, published: PublishedPost) -> Step {
        let now = self.now();
        let done = PostRow {
            status: PostStatus::Published.as_str().to_owned(),
            stage: "confirm".to_owned(),
            due_at: None,
            platform_post_id: published.id,
            platform_url: published.url,
            published_at: Some(now),
            error_code: None,
            error_message: None,
            lease_owner: None,
            updated_at: now,
            ..post
        };
        let event = post_event("post.published", &done, None, now);
        self.record(&done, "success", None);
        self.save_outcome(done, Some(event)).await
    }

    async fn unknown(&self, post: PostRow, why: &str) -> Step {
        let now = self.now();
        let done = PostRow {
            status: PostStatus::Unknown.as_str().to_owned(),
            due_at: None,
            error_code: Some("answer_lost".to_owned()),
            error_message: Some(why.to_owned()),
            lease_owner: None,
            updated_at: now,
            ..post
        };
        let event = post_event("post.unknown", &done, None, now);
        self.record(&done, "unknown", Some("answer_lost"));
        self.save_outcome(done, Some(event)).await
    }

    /// The post, failed for `failure` (and recorded so).
    fn failed(&self, post: PostRow, failure: &PublishFailure) -> PostRow {
        let done = PostRow {
            status: PostStatus::Failed.as_str().to_owned(),
            due_at: None,
            error_code: Some(failure.code.as_str().to_owned()),
            error_message: Some(failure.message.clone()),
            lease_owner: None,
            updated_at: self.now(),
            ..post
        };
        self.record(&done, "failure", Some(failure.code.as_str()));
        done
    }

    async fn fail(&self, post: PostRow, owner: Uuid, failure: &PublishFailure) -> Step {
        let now = self.now();
        let done = self.failed(post, failure);
        let event = post_event("post.failed", &done, None, now);
        if done.sent_at.is_some() {
            self.save_outcome(done, Some(event)).await
        } else {
            self.save(done, owner, Some(event)).await
        }
    }

    /// A failure before the platform accepted the post: tried again with back-off until the
    /// post's deadline, then failed.
    async fn retry_or_fail(&self, post: PostRow, owner: Uuid, failure: PublishFailure) -> Step {
        let due = self.now() + retry_delay(post.attempts, failure.retry_after);
        if !failure.transient || due > post.deadline_at {
            return self.fail(post, owner, &failure).await;
        }
        tracing::info!(post = %post.id, platform = %post.platform, code = failure.code.as_str(), "post not accepted yet; trying again later");
        let retry = PostRow {
            due_at: Some(due),
            error_code: None,
            error_message: Some(format!("Retrying: {}", failure.message)),
            updated_at: self.now(),
            ..post
        };
        self.save(retry, owner, None).await
    }

    /// Writes a step's result once (a failure leaves the post to its next claim).
    async fn save(&self, post: PostRow, owner: Uuid, event: Option<NewEvent>) -> Step {
        let store = self.posts.parts().core.store();
        match store.save_claimed_post(&post, owner, event.as_ref()).await {
            Ok(true) => Step::Saved,
            Ok(false) => Step::Fenced,
            Err(_) => Step::Abandoned,
        }
    }

    /// Writes what the platform answered to a send: it exists nowhere else, so it is written
    /// again until the database takes it. It is matched on the send (`sent_at`), not on the
    /// lease: when an outage outlasted the lease and another replica claimed the post meanwhile,
    /// the answer of the send still wins over what that replica could only guess.
    async fn save_outcome(&self, post: PostRow, event: Option<NewEvent>) -> Step {
        let Some(sent_at) = post.sent_at else {
            return Step::Abandoned;
        };
        let store = self.posts.parts().core.store();
        self.persist(post.id, || {
            store.save_sent_post(&post, sent_at, event.as_ref())
        })
        .await
    }

    /// A send the platform refused without taking the post: `sent_at` is cleared (matched on the
    /// send, written again until it lands: a send left recorded would later be called unknown),
    /// and the post retried or failed.
    async fn unsent_retry_or_fail(
        &self,
        post: PostRow,
        sent_at: DateTime<Utc>,
        failure: PublishFailure,
    ) -> Step {
        let due = self.now() + retry_delay(post.attempts, failure.retry_after);
        let (post, event) = if !failure.transient || due > post.deadline_at {
            let done = self.failed(post, &failure);
            let event = post_event("post.failed", &done, None, self.now());
            (done, Some(event))
        } else {
            let retry = PostRow {
                due_at: Some(due),
                error_message: Some(format!("Retrying: {}", failure.message)),
                updated_at: self.now(),
                ..post
            };
            (retry, None)
        };
        let store = self.posts.parts().core.store();
        self.persist(post.id, || {
            store.save_sent_post(&post, sent_at, event.as_ref())
        })
        .await
    }

    /// Runs `write` until the database answers (for up to ten minutes).
    async fn persist<F, Fut>(&self, id: Uuid, write: F) -> Step
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, crate::store::StoreError>>,
    {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match write().await {
                Ok(true) => return Step::Saved,
                Ok(false) => return Step::Fenced,
                Err(error) if started.elapsed() < OUTCOME_PERSISTENCE => {
                    tracing::warn!(post = %id, error = %error, "a post's outcome could not be written; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(error) => {
                    tracing::error!(post = %id, error = %error, "a post's outcome could not be written for 10 minutes; its next claim will confirm it");
                    return Step::Abandoned;
                }
            }
        }
    }

    /// What a platform's publishing stage is handed.
    fn context<'a>(
        &'a self,
        spec: &'a PlatformSpec,
        draft: &'a PostDraft,
        target: &'a PublishTarget,
        checkpoint: &'a Value,
    ) -> PublishContext<'a> {
        let parts = self.posts.parts();
        PublishContext {
            http: &parts.client,
            spec,
            draft,
            target,
            media: &parts.media,
            checkpoint,
        }
    }

    /// Runs a platform stage while keeping the post's lease: a stage that outlasts the lease
    /// (a large upload) is not taken over meanwhile.
    async fn kept<T>(&self, post: &PostRow, owner: Uuid, stage: impl Future<Output = T>) -> T {
        let parts = self.posts.parts();
        let lease = parts.settings.lease;
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = self.now() + to_chrono(lease);
                if let Ok(false) = parts
                    .core
                    .store()
                    .renew_post_lease(post.id, owner, until)
                    .await
                {
                    // Taken over: the stage's own writes are fenced; nothing more to keep.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            out = stage => out,
            () = heartbeat => unreachable!("the heartbeat never ends"),
        }
    }

    fn record(&self, post: &PostRow, outcome: &str, code: Option<&str>) {
        let parts = self.posts.parts();
        parts.metrics.post(&post.platform, post.status.as_str());
        let mut event = AuditEvent::new(Actor::System("scheduler".into()), "post.publish", outcome)
            .with_platform(&post.platform)
            .with_detail(match code {
                Some(code) => format!("{} {code}", post.id),
                None => post.id.to_string(),
            });
        if let Ok(store) = StoreId::parse(&post.store_id) {
            event = event.with_store(&store);
        }
        parts.audit.record(event);
        tracing::info!(post = %post.id, platform = %post.platform, status = %post.status, "post settled");
    }

    fn now(&self) -> DateTime<Utc> {
        self.posts.parts().core.clock().now()
    }
}

/// A token that cannot be had: a dead connection fails the post (reconnect first); a database
/// or platform outage is worth another try.
fn token_failure(error: OAuthError) -> PublishFailure {
    match error {
        OAuthError::NotUsable(status) => PublishFailure::permanent(
            PostErrorCode::ReconnectRequired,
            format!("The connection is {status}; the merchant must reconnect it."),
        ),
        OAuthError::NotFound => PublishFailure::permanent(
            PostErrorCode::ReconnectRequired,
            "The store has no connection to this platform any more.",
        ),
        OAuthError::AssetNotFound => PublishFailure::permanent(
            PostErrorCode::AccountNotEligible,
            "The connection no longer has the account this post was for.",
        ),
        other => PublishFailure::transient(
            PostErrorCode::PlatformUnavailable,
            format!("No valid token could be had: {}", other.reason()),
        ),
    }
}

/// The wait before another try: 2 s doubling to 5 minutes, or what the platform asked for.
fn retry_delay(attempts: i32, asked: Option<Duration>) -> chrono::Duration {
    let doubling = 2_i64
        .saturating_mul(1_i64 << attempts.clamp(0, 10))
        .min(300);
    let asked = asked.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(300).min(3600));
    chrono::Duration::seconds(doubling.max(asked))
}

/// A wait as chrono's, at most an hour: platforms name some of them (a processing estimate, a
/// throttle), and no answer may push a post beyond its deadline's reach or overflow a date.
fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration.min(Duration::from_secs(3600)))
        .unwrap_or(chrono::Duration::hours(1))
}

/// A time cut to microseconds, as PostgreSQL keeps it.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
