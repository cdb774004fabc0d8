-- The audit trail (SQLite form): append-only, never a token, code, state, secret or key.
create table audit (
    id blob primary key,
    at text not null,
    actor_kind text not null check (actor_kind in ('api_key', 'page_user', 'system')),
    actor text not null,
    store_id text,
    platform text,
    operation text not null,
    outcome text not null,
    detail text
);

create index audit_store_at_idx on audit (store_id, at desc, id desc);
create index audit_at_idx on audit (at);
