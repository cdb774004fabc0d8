-- The platforms' own notices (a merchant removing the app, a data deletion request, a post's
-- outcome), stored once verified and before they are acknowledged, then processed by whichever
-- replica claims them. A notice the platform sends again finds its row (same platform, same
-- dedupe key: the platform's own event id, or a digest of what it sent) and is not stored twice.
create table platform_events (
    id uuid primary key,
    platform text not null,
    dedupe_key text not null,
    receiver text not null,
    -- removal, data_deletion, permissions, content, other
    kind text not null,
    event_type text not null,
    -- user (an account id the connection rows hold) or asset (a page, an Instagram account)
    account_kind text,
    account_id text,
    payload jsonb not null,
    occurred_at timestamptz,
    received_at timestamptz not null,
    attempts integer not null default 0,
    next_attempt_at timestamptz not null,
    processed_at timestamptz,
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
    requested_at timestamptz not null,
    completed_at timestamptz,
    connections_deleted integer not null default 0
);

-- Attribution: a notice names the platform's account (or asset), never our store.
create index platform_connections_account_idx on platform_connections (platform, account_id);
create index connection_assets_asset_idx on connection_assets (asset_id);

-- A platform's own notice acts on a connection: the audit trail names the platform as the actor.
alter table audit drop constraint audit_actor_kind_check;
alter table audit add constraint audit_actor_kind_check
    check (actor_kind in ('api_key', 'page_user', 'system', 'platform'));
