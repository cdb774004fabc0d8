//! Posts in storage: the [`PostStore`] half of the store (a supertrait of
//! [`Store`](super::Store)), its record ([`PostRow`]) and the SQL both backends share
//! (`impl_post_store!`, stamped onto each backend as `impl_store!` is).
//!
//! The store knows nothing of platforms or of what a draft holds: the draft and the checkpoint
//! are JSON the publishing layer reads. It guarantees three things the scheduler stands on: a
//! claim hands a post to one replica (a new `lease_owner`, the fencing token every later write
//! must match), a write by an owner whose lease was taken over changes nothing, and a transition
//! the API makes (approve, reject, cancel) fences every worker out in the same statement.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::shared::{NewEvent, StoreError};
use crate::domain::StoreId;

/// One stored post.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRow {
    /// Its id.
    pub id: Uuid,
    /// The merchant's store.
    pub store_id: String,
    /// The platform's slug.
    pub platform: String,
    /// The asset kind it goes to.
    pub account_kind: String,
    /// The asset's id.
    pub account_id: String,
    /// The caller's `Idempotency-Key`.
    pub idempotency_key: String,
    /// A digest of the request body, to tell a retry from another post under the same key.
    pub request_digest: String,
    /// Who asked (an API key's name).
    pub created_by: String,
    /// The post (text, media, link, options) as JSON.
    pub draft: Value,
    /// `scheduled`, `pending_approval`, `publishing`, `published`, `failed`, `cancelled`,
    /// `unknown`.
    pub status: String,
    /// When it should go out.
    pub publish_at: DateTime<Utc>,
    /// After this, a post not yet sent fails instead of being retried.
    pub deadline_at: DateTime<Utc>,
    /// When the scheduler acts on it next (`None` once final).
    pub due_at: Option<DateTime<Utc>>,
    /// `prepare`, `send` or `confirm`.
    pub stage: String,
    /// What the platform's last stage left.
    pub checkpoint: Value,
    /// When the send began: from then on the post is confirmed, never sent again.
    pub sent_at: Option<DateTime<Utc>>,
    /// The claim holding it.
    pub lease_owner: Option<Uuid>,
    /// Claims so far.
    pub attempts: i32,
    /// The platform's id of the published post.
    pub platform_post_id: Option<String>,
    /// Its public URL.
    pub platform_url: Option<String>,
    /// Why it failed (a stable code).
    pub error_code: Option<String>,
    /// The platform's words, or ours.
    pub error_message: Option<String>,
    /// A digest of the single-use approval link's secret, while one is open.
    pub approval_digest: Option<String>,
    /// When an unanswered approval request expires.
    pub approval_expires_at: Option<DateTime<Utc>>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// When the platform published it.
    pub published_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A change the API makes to a post outside any claim: applied only while the post is in one of
/// `from` (and, with `unsent_only`, not yet sent; with `approval_digest`, while that approval
/// link is still open), and fencing out whatever worker holds it.
#[derive(Debug, Clone)]
pub struct PostTransition<'a> {
    /// The statuses it may leave.
    pub from: &'a [&'a str],
    /// Only while no send has begun.
    pub unsent_only: bool,
    /// Only while this approval link is open (it is used up by the change).
    pub approval_digest: Option<&'a str>,
    /// Only while its approval request has not expired at this time.
    pub unexpired_at: Option<DateTime<Utc>>,
    /// The post as it becomes.
    pub post: &'a PostRow,
}

/// A page of a store's posts, newest first.
#[derive(Debug, Clone)]
pub struct PostQuery<'a> {
    /// The store.
    pub store_id: &'a StoreId,
    /// Only this status.
    pub status: Option<&'a str>,
    /// Only this platform.
    pub platform: Option<&'a str>,
    /// After this `(created_at, id)` (the previous page's last).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// At most this many.
    pub limit: i64,
}

/// Where posts and the stores' publishing policies live.
#[async_trait]
pub trait PostStore: Send + Sync {
    /// Stores a new post with its event, unless the store already has one under its idempotency
    /// key: then nothing is written and that one is returned.
    async fn insert_post(
        &self,
        post: &PostRow,
        event: Option<&NewEvent>,
    ) -> Result<Option<PostRow>, StoreError>;

    /// One post.
    async fn post(&self, id: Uuid) -> Result<Option<PostRow>, StoreError>;

    /// The store's post under an idempotency key.
    async fn post_by_key(
        &self,
        store_id: &StoreId,
        idempotency_key: &str,
    ) -> Result<Option<PostRow>, StoreError>;

    /// A page of a store's posts, newest first.
    async fn list_posts(&self, query: &PostQuery<'_>) -> Result<Vec<PostRow>, StoreError>;

    /// Claims up to `limit` posts due at `now` (the earliest first) for a new owner, leased until
    /// `lease_until`; replicas claiming together get different posts.
    async fn claim_due_posts(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PostRow>, StoreError>;

    /// Writes a claimed post's progress (every field the scheduler changes) with its event, if
    /// `owner` still holds it; `false` when its claim was taken over or the API fenced it out.
    async fn save_claimed_post(
        &self,
        post: &PostRow,
        owner: Uuid,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError>;

    /// Pushes a claimed post's lease to `until` while `owner` still holds it (a step that runs
    /// long keeps its post); `false` when it was taken over.
    async fn renew_post_lease(
        &self,
        id: Uuid,
        owner: Uuid,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Writes what the platform answered to the send that began at `sent_at`, whoever holds the
    /// post now: the answer of that send is the truth about it (a later claim could only have
    /// confirmed it, or called it unknown). Applies while the post is `publishing` or `unknown`
    /// with that `sent_at`; clears the lease, so a later claim's write changes nothing.
    async fn save_sent_post(
        &self,
        post: &PostRow,
        sent_at: DateTime<Utc>,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError>;

    /// Applies an API change with its event; `false` when the post was not in a state that
    /// allows it.
    async fn transition_post(
        &self,
        transition: &PostTransition<'_>,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError>;

    /// The store's publishing policy: whether its posts wait for the merchant's approval (`None`:
    /// never set, the operator's default applies).
    async fn post_approval_policy(&self, store_id: &StoreId) -> Result<Option<bool>, StoreError>;

    /// Sets the store's publishing policy.
    async fn set_post_approval_policy(
        &self,
        store_id: &StoreId,
        require: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The columns of `posts`, in the order `decode_post` reads them and `insert_post` binds them.
pub(super) const POST_COLUMNS: &str = "id, store_id, platform, account_kind, account_id, \
    idempotency_key, request_digest, created_by, draft, status, publish_at, deadline_at, due_at, \
    stage, checkpoint, sent_at, lease_owner, attempts, platform_post_id, platform_url, error_code, \
    error_message, approval_digest, approval_expires_at, decided_by, decided_at, published_at, \
    created_at, updated_at";

/// The columns a claimed post's progress and an API transition rewrite, bound from `$3` on.
pub(super) const POST_PROGRESS: &str = "status = $3, due_at = $4, stage = $5, checkpoint = $6, \
    sent_at = $7, platform_post_id = $8, platform_url = $9, error_code = $10, \
    error_message = $11, published_at = $12, updated_at = $13, approval_digest = $14, \
    approval_expires_at = $15, decided_by = $16, decided_at = $17, publish_at = $18";

/// Stamps [`PostStore`] onto a backend, as `impl_store!` stamps `Store`: `$skip_locked` ends the
/// claim's subquery.
macro_rules! impl_post_store {
    ($store:ty, $db:ty, $skip_locked:literal) => {
        mod post_store {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::types::Json;
            use sqlx::Row;
            use uuid::Uuid;

            use crate::domain::StoreId;
            use crate::store::shared::{NewEvent, StoreError};
            use crate::store::posts::{
                PostQuery, PostRow, PostStore, PostTransition, POST_COLUMNS, POST_PROGRESS,
            };

            type DbRow = <$db as sqlx::Database>::Row;

            fn decode_post(row: &DbRow) -> Result<PostRow, StoreError> {
                Ok(PostRow {
                    id: row.try_get("id")?,
                    store_id: row.try_get("store_id")?,
                    platform: row.try_get("platform")?,
                    account_kind: row.try_get("account_kind")?,
                    account_id: row.try_get("account_id")?,
                    idempotency_key: row.try_get("idempotency_key")?,
                    request_digest: row.try_get("request_digest")?,
                    created_by: row.try_get("created_by")?,
                    draft: row.try_get::<Json<serde_json::Value>, _>("draft")?.0,
                    status: row.try_get("status")?,
                    publish_at: row.try_get("publish_at")?,
                    deadline_at: row.try_get("deadline_at")?,
                    due_at: row.try_get("due_at")?,
                    stage: row.try_get("stage")?,
                    checkpoint: row.try_get::<Json<serde_json::Value>, _>("checkpoint")?.0,
                    sent_at: row.try_get("sent_at")?,
                    lease_owner: row.try_get("lease_owner")?,
                    attempts: row.try_get("attempts")?,
                    platform_post_id: row.try_get("platform_post_id")?,
                    platform_url: row.try_get("platform_url")?,
                    error_code: row.try_get("error_code")?,
                    error_message: row.try_get("error_message")?,
                    approval_digest: row.try_get("approval_digest")?,
                    approval_expires_at: row.try_get("approval_expires_at")?,
                    decided_by: row.try_get("decided_by")?,
                    decided_at: row.try_get("decided_at")?,
                    published_at: row.try_get("published_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            /// Binds a post's progress columns (`$3` to `$18`, as [`POST_PROGRESS`] names them).
            fn bind_progress<'q>(
                query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                post: &'q PostRow,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                query
                    .bind(post.status.as_str())
                    .bind(post.due_at)
                    .bind(post.stage.as_str())
                    .bind(Json(&post.checkpoint))
                    .bind(post.sent_at)
                    .bind(post.platform_post_id.as_deref())
                    .bind(post.platform_url.as_deref())
                    .bind(post.error_code.as_deref())
                    .bind(post.error_message.as_deref())
                    .bind(post.published_at)
                    .bind(post.updated_at)
                    .bind(post.approval_digest.as_deref())
                    .bind(post.approval_expires_at)
                    .bind(post.decided_by.as_deref())
                    .bind(post.decided_at)
                    .bind(post.publish_at)
            }

            /// What a progress write must still match: the claim that holds the post, or the send
            /// whose answer it records.
            enum Fence {
                Lease(Uuid),
                Send(DateTime<Utc>),
            }

            /// Writes a post's progress (every column the scheduler changes) and its event, if the
            /// fence still holds; `false` when it does not.
            async fn save_progress(
                pool: &sqlx::Pool<$db>,
                post: &PostRow,
                fence: Fence,
                event: Option<&NewEvent>,
            ) -> Result<bool, StoreError> {
                let guard = match fence {
                    Fence::Lease(_) => "lease_owner = $2",
                    Fence::Send(_) => "sent_at = $2 and status in ('publishing', 'unknown')",
                };
                let sql = format!(
                    "update posts set {POST_PROGRESS}, lease_owner = $19 where id = $1 and {guard}"
                );
                let query = sqlx::query(&sql).bind(post.id);
                let query = match fence {
                    Fence::Lease(owner) => query.bind(owner),
                    Fence::Send(sent_at) => query.bind(sent_at),
                };
                let mut tx = pool.begin().await?;
                let saved = bind_progress(query, post)
                    .bind(post.lease_owner)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if saved {
                    outbox(&mut tx, event).await?;
                }
                tx.commit().await?;
                Ok(saved)
            }

            async fn outbox<'c>(
                tx: &mut sqlx::Transaction<'c, $db>,
                event: Option<&NewEvent>,
            ) -> Result<(), StoreError> {
                if let Some(event) = event {
                    sqlx::query(
                        "insert into webhook_outbox (id, event_type, payload, created_at, attempts, next_attempt_at) \
                         values ($1, $2, $3, $4, 0, $4)",
                    )
                    .bind(Uuid::new_v4())
                    .bind(&event.event_type)
                    .bind(Json(&event.payload))
                    .bind(event.at)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            #[async_trait]
            impl PostStore for $store {
                async fn insert_post(
                    &self,
                    post: &PostRow,
                    event: Option<&NewEvent>,
                ) -> Result<Option<PostRow>, StoreError> {
                    let mut tx = self.pool.begin().await?;
                    let sql = format!(
                        "insert into posts ({POST_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, \
                         $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
                         $23, $24, $25, $26, $27, $28, $29) \
                         on conflict (store_id, idempotency_key) do nothing"
                    );
                    let inserted = sqlx::query(&sql)
                        .bind(post.id)
                        .bind(post.store_id.as_str())
                        .bind(post.platform.as_str())
                        .bind(post.account_kind.as_str())
                        .bind(post.account_id.as_str())
                        .bind(post.idempotency_key.as_str())
                        .bind(post.request_digest.as_str())
                        .bind(post.created_by.as_str())
                        .bind(Json(&post.draft))
                        .bind(post.status.as_str())
                        .bind(post.publish_at)
                        .bind(post.deadline_at)
                        .bind(post.due_at)
                        .bind(post.stage.as_str())
                        .bind(Json(&post.checkpoint))
                        .bind(post.sent_at)
                        .bind(post.lease_owner)
                        .bind(post.attempts)
                        .bind(post.platform_post_id.as_deref())
                        .bind(post.platform_url.as_deref())
                        .bind(post.error_code.as_deref())
                        .bind(post.error_message.as_deref())
                        .bind(post.approval_digest.as_deref())
                        .bind(post.approval_expires_at)
                        .bind(post.decided_by.as_deref())
                        .bind(post.decided_at)
                        .bind(post.published_at)
                        .bind(post.created_at)
                        .bind(post.updated_at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if inserted == 0 {
                        let sql = format!(
                            "select {POST_COLUMNS} from posts where store_id = $1 and idempotency_key = $2"
                        );
                        let existing = sqlx::query(&sql)
                            .bind(post.store_id.as_str())
                            .bind(post.idempotency_key.as_str())
                            .fetch_one(&mut *tx)
                            .await?;
                        tx.rollback().await?;
                        return decode_post(&existing).map(Some);
                    }
                    outbox(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(None)
                }

                async fn post(&self, id: Uuid) -> Result<Option<PostRow>, StoreError> {
                    let sql = format!("select {POST_COLUMNS} from posts where id = $1");
                    sqlx::query(&sql)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(decode_post)
                        .transpose()
                }

                async fn post_by_key(
                    &self,
                    store_id: &StoreId,
                    idempotency_key: &str,
                ) -> Result<Option<PostRow>, StoreError> {
                    let sql = format!(
                        "select {POST_COLUMNS} from posts where store_id = $1 and idempotency_key = $2"
                    );
                    sqlx::query(&sql)
                        .bind(store_id.as_str())
                        .bind(idempotency_key)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(decode_post)
                        .transpose()
                }

                async fn renew_post_lease(
                    &self,
                    id: Uuid,
                    owner: Uuid,
                    until: DateTime<Utc>,
                ) -> Result<bool, StoreError> {
                    Ok(sqlx::query(
                        "update posts set due_at = $3 where id = $1 and lease_owner = $2",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(until)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                        == 1)
                }

                async fn save_sent_post(
                    &self,
                    post: &PostRow,
                    sent_at: DateTime<Utc>,
                    event: Option<&NewEvent>,
                ) -> Result<bool, StoreError> {
                    save_progress(&self.pool, post, Fence::Send(sent_at), event).await
                }

                async fn list_posts(
                    &self,
                    query: &PostQuery<'_>,
                ) -> Result<Vec<PostRow>, StoreError> {
                    let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                        "select {POST_COLUMNS} from posts where store_id = "
                    ));
                    sql.push_bind(query.store_id.as_str());
                    if let Some(status) = query.status {
                        sql.push(" and status = ").push_bind(status);
                    }
                    if let Some(platform) = query.platform {
                        sql.push(" and platform = ").push_bind(platform);
                    }
                    if let Some((at, id)) = query.after {
                        sql.push(" and (created_at < ")
                            .push_bind(at)
                            .push(" or (created_at = ")
                            .push_bind(at)
                            .push(" and id < ")
                            .push_bind(id)
                            .push("))");
                    }
                    sql.push(" order by created_at desc, id desc limit ")
                        .push_bind(query.limit);
                    sql.build()
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(decode_post)
                        .collect()
                }

                async fn claim_due_posts(
                    &self,
                    now: DateTime<Utc>,
                    lease_until: DateTime<Utc>,
                    limit: i64,
                ) -> Result<Vec<PostRow>, StoreError> {
                    let sql = format!(
                        "update posts set lease_owner = $1, due_at = $2, attempts = attempts + 1 \
                         where id in (select id from posts where due_at is not null and due_at <= $3 \
                         order by due_at limit $4{}) returning {POST_COLUMNS}",
                        $skip_locked
                    );
                    let mut claimed = sqlx::query(&sql)
                        .bind(Uuid::new_v4())
                        .bind(lease_until)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(decode_post)
                        .collect::<Result<Vec<_>, _>>()?;
                    claimed.sort_by_key(|post| (post.publish_at, post.id));
                    Ok(claimed)
                }

                async fn save_claimed_post(
                    &self,
                    post: &PostRow,
                    owner: Uuid,
                    event: Option<&NewEvent>,
                ) -> Result<bool, StoreError> {
                    save_progress(&self.pool, post, Fence::Lease(owner), event).await
                }

                async fn transition_post(
                    &self,
                    transition: &PostTransition<'_>,
                    event: Option<&NewEvent>,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.pool.begin().await?;
                    let mut sql = sqlx::QueryBuilder::<$db>::new("update posts set status = ");
                    let post = transition.post;
                    sql.push_bind(post.status.as_str())
                        .push(", due_at = ")
                        .push_bind(post.due_at)
                        .push(", error_code = ")
                        .push_bind(post.error_code.as_deref())
                        .push(", error_message = ")
                        .push_bind(post.error_message.as_deref())
                        .push(", updated_at = ")
                        .push_bind(post.updated_at)
                        .push(", approval_digest = ")
                        .push_bind(post.approval_digest.as_deref())
                        .push(", approval_expires_at = ")
                        .push_bind(post.approval_expires_at)
                        .push(", decided_by = ")
                        .push_bind(post.decided_by.as_deref())
                        .push(", decided_at = ")
                        .push_bind(post.decided_at)
                        .push(", deadline_at = ")
                        .push_bind(post.deadline_at)
                        .push(", lease_owner = null where id = ")
                        .push_bind(post.id)
                        .push(" and status in (");
                    let mut statuses = sql.separated(", ");
                    for status in transition.from {
                        statuses.push_bind(*status);
                    }
                    sql.push(")");
                    if transition.unsent_only {
                        sql.push(" and sent_at is null");
                    }
                    if let Some(digest) = transition.approval_digest {
                        sql.push(" and approval_digest = ").push_bind(digest);
                    }
                    if let Some(at) = transition.unexpired_at {
                        sql.push(" and (approval_expires_at is null or approval_expires_at > ")
                            .push_bind(at)
                            .push(")");
                    }
                    let changed = sql.build().execute(&mut *tx).await?.rows_affected() == 1;
                    if changed {
                        outbox(&mut tx, event).await?;
                    }
                    tx.commit().await?;
                    Ok(changed)
                }

                async fn post_approval_policy(
                    &self,
                    store_id: &StoreId,
                ) -> Result<Option<bool>, StoreError> {
                    let row = sqlx::query(
                        "select require_post_approval from store_settings where store_id = $1",
                    )
                    .bind(store_id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|row| row.try_get::<bool, _>("require_post_approval"))
                        .transpose()
                        .map_err(StoreError::from)
                }

                async fn set_post_approval_policy(
                    &self,
                    store_id: &StoreId,
                    require: bool,
                    at: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "insert into store_settings (store_id, require_post_approval, updated_at) \
                         values ($1, $2, $3) on conflict (store_id) do update \
                         set require_post_approval = $2, updated_at = $3",
                    )
                    .bind(store_id.as_str())
                    .bind(require)
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }
        }
    };
}

pub(super) use impl_post_store;
