-- Scoped API keys, stored as SHA-256 hashes of the key (SQLite form: uuids as blobs, times as text).
create table api_keys (
    id blob primary key,
    name text not null,
    hash text not null,
    scopes text not null,
    created_at text not null,
    last_used_at text,
    revoked_at text,
    constraint api_keys_name_key unique (name),
    constraint api_keys_hash_key unique (hash)
);
