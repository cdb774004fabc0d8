-- SQLite form of the PostgreSQL migration (uuids as blobs, JSON and timestamps as text).
-- Posts the services ask us to publish, and the state of each on its way out. A post is claimed
-- by one replica at a time: a claim sets a new lease_owner (the fencing token every later write
-- must match) and pushes due_at to the end of its lease, so that a replica that dies leaves the
-- post due again for another. sent_at is written before the one call after which a post may be
-- out; once set, the post is only ever confirmed, never sent again.
create table posts (
    id blob primary key,
    store_id text not null,
    platform text not null,
    account_kind text not null,
    account_id text not null,
    idempotency_key text not null,
    request_digest text not null,
    created_by text not null,
    draft text not null,
    -- scheduled, pending_approval, publishing, published, failed, cancelled, unknown
    status text not null,
    publish_at text not null,
    deadline_at text not null,
    -- When the scheduler acts next (null once the post is final): the publish time, a retry, a
    -- lease's end, an approval's expiry.
    due_at text,
    -- prepare, send, confirm
    stage text not null,
    checkpoint text not null,
    sent_at text,
    lease_owner blob,
    attempts integer not null default 0,
    platform_post_id text,
    platform_url text,
    error_code text,
    error_message text,
    approval_digest text,
    approval_expires_at text,
    decided_by text,
    decided_at text,
    published_at text,
    created_at text not null,
    updated_at text not null,
    constraint posts_idempotency unique (store_id, idempotency_key)
);

-- Claiming reads only the posts due: final posts leave this index, so a claim costs the same
-- with a million posts stored as with ten thousand.
create index posts_due_idx on posts (due_at) where due_at is not null;
create index posts_store_idx on posts (store_id, created_at);

-- A store's publishing policy, set on the connections page.
create table store_settings (
    store_id text primary key,
    require_post_approval integer not null,
    updated_at text not null
);
