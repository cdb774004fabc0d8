-- SQLite form of the PostgreSQL migration (uuids as blobs, JSON and timestamps as text).
-- The platforms' own notices (a merchant removing the app, a data deletion request, a post's
-- outcome), stored once verified and before they are acknowledged, then processed by whichever
-- replica claims them. A notice the platform sends again finds its row (same platform, same
-- dedupe key: the platform's own event id, or a digest of what it sent) and is not stored twice.
create table platform_events (
    id blob primary key,
    platform text not null,
    dedupe_key text not null,
    receiver text not null,
    -- removal, data_deletion, permissions, content, other
    kind text not null,
    event_type text not null,
    -- user (an account id the connection rows hold) or asset (a page, an Instagram account)
    account_kind text,
    account_id text,
    payload text not null,
    occurred_at text,
    received_at text not null,
    attempts integer not null default 0,
    next_attempt_at text not null,
    processed_at text,
    outcome text,
    constraint platform_events_dedupe_key unique (platform, dedupe_key)
);

create index platform_events_pending_idx on platform_events (next_attempt_at)
    where processed_at is null;
create index platform_events_processed_idx on platform_events (processed_at)
    where processed_at is not null;

-- A data deletion request and its confirmation code (Meta's status page reads it). It keeps no
-- account id, only its digest, so the record outlives the data it had deleted.
create table data_deletion_requests (
    confirmation_code text primary key,
    platform text not null,
    account_digest text not null,
    status text not null check (status in ('pending', 'completed')),
    requested_at text not null,
    completed_at text,
    connections_deleted integer not null default 0
);

-- Attribution: a notice names the platform's account (or asset), never our store.
create index platform_connections_account_idx on platform_connections (platform, account_id);
create index connection_assets_asset_idx on connection_assets (asset_id);

-- A platform's own notice acts on a connection: the audit trail names the platform as the actor.
-- SQLite cannot change a check constraint: the table is rebuilt.
create table audit_new (
    id blob primary key,
    at text not null,
    actor_kind text not null check (actor_kind in ('api_key', 'page_user', 'system', 'platform')),
    actor text not null,
    store_id text,
    platform text,
    operation text not null,
    outcome text not null,
    detail text
);
insert into audit_new select id, at, actor_kind, actor, store_id, platform, operation, outcome, detail from audit;
drop table audit;
alter table audit_new rename to audit;
create index audit_store_at_idx on audit (store_id, at desc, id desc);
create index audit_at_idx on audit (at);
