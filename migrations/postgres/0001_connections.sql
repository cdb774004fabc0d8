-- The plan's PlatformConnection, plus what the token lifecycle needs.
create table platform_connections (
    id uuid primary key,
    store_id text not null,
    user_id text not null,
    platform text not null,
    status text not null check (status in ('PENDING', 'CONNECTED', 'EXPIRED', 'REVOKED', 'ERROR')),
    account_id text,
    account_name text,
    account_picture text,
    -- AES-256-GCM sealed token set ("v1.<key_id>.<data>"); null once the tokens are gone.
    sealed_tokens text,
    key_id text,
    metadata jsonb not null default '{}',
    granted_scopes jsonb not null default '[]',
    missing_scopes jsonb not null default '[]',
    access_token_expires_at timestamptz,
    refresh_token_expires_at timestamptz,
    last_refreshed_at timestamptz,
    next_refresh_at timestamptz,
    refresh_failures integer not null default 0,
    last_error text,
    -- A refresh in progress: who holds it and until when (a lease, so a dead holder frees it).
    refresh_lease_owner text,
    refresh_lease_until timestamptz,
    version bigint not null default 1,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint platform_connections_store_platform_key unique (store_id, platform)
);

create index platform_connections_store_id_idx on platform_connections (store_id);
create index platform_connections_next_refresh_idx on platform_connections (next_refresh_at)
    where next_refresh_at is not null;
create index platform_connections_key_id_idx on platform_connections (key_id);

-- Webhook events, written in the same transaction as the change they describe.
create table webhook_outbox (
    id uuid primary key,
    event_type text not null,
    payload jsonb not null,
    created_at timestamptz not null,
    attempts integer not null default 0,
    next_attempt_at timestamptz not null,
    delivered_at timestamptz,
    last_error text
);

create index webhook_outbox_pending_idx on webhook_outbox (next_attempt_at) where delivered_at is null;
