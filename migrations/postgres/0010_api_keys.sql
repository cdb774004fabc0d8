-- Scoped API keys, stored as SHA-256 hashes of the key (the key itself is shown once, never stored).
create table api_keys (
    id uuid primary key,
    name text not null,
    hash text not null,
    -- Comma-separated scopes: `tokens:read:meta,connections:read`.
    scopes text not null,
    created_at timestamptz not null,
    last_used_at timestamptz,
    revoked_at timestamptz,
    constraint api_keys_name_key unique (name),
    constraint api_keys_hash_key unique (hash)
);
