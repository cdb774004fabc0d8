-- The plan's PlatformConnection, plus what the token lifecycle needs (SQLite form of the
-- PostgreSQL schema: uuids as blobs, JSON and timestamps as text).
create table platform_connections (
    id blob primary key,
    store_id text not null,
    user_id text not null,
    platform text not null,
    status text not null check (status in ('PENDING', 'CONNECTED', 'EXPIRED', 'REVOKED', 'ERROR')),
    account_id text,
    account_name text,
    account_picture text,
    sealed_tokens text,
    key_id text,
    metadata text not null default '{}',
    granted_scopes text not null default '[]',
    missing_scopes text not null default '[]',
    access_token_expires_at text,
    refresh_token_expires_at text,
    last_refreshed_at text,
    next_refresh_at text,
    refresh_failures integer not null default 0,
    last_error text,
    refresh_lease_owner text,
    refresh_lease_until text,
    version integer not null default 1,
    created_at text not null,
    updated_at text not null,
    constraint platform_connections_store_platform_key unique (store_id, platform)
);

create index platform_connections_store_id_idx on platform_connections (store_id);
create index platform_connections_next_refresh_idx on platform_connections (next_refresh_at)
    where next_refresh_at is not null;
create index platform_connections_key_id_idx on platform_connections (key_id);

create table webhook_outbox (
    id blob primary key,
    event_type text not null,
    payload text not null,
    created_at text not null,
    attempts integer not null default 0,
    next_attempt_at text not null,
    delivered_at text,
    last_error text
);

create index webhook_outbox_pending_idx on webhook_outbox (next_attempt_at) where delivered_at is null;
