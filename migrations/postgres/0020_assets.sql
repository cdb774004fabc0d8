-- The merchant's assets on each platform (pages, Instagram accounts, ad accounts, boards...), kept
-- with their connection and gone with it. Never a token: Meta's page tokens stay in the sealed set.
create table connection_assets (
    connection_id uuid not null references platform_connections (id) on delete cascade,
    kind text not null,
    asset_id text not null,
    name text,
    details jsonb not null default '{}',
    selected boolean not null default false,
    discovered_at timestamptz not null,
    constraint connection_assets_key unique (connection_id, kind, asset_id)
);

-- At most one default per kind and connection.
create unique index connection_assets_one_selected_idx on connection_assets (connection_id, kind)
    where selected;
