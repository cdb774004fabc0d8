-- The audit trail: append-only (the service only inserts and prunes by age). Never a token, code,
-- state, secret or key: `detail` is a short outcome text.
create table audit (
    id uuid primary key,
    at timestamptz not null,
    actor_kind text not null check (actor_kind in ('api_key', 'page_user', 'system')),
    actor text not null,
    store_id text,
    platform text,
    operation text not null,
    outcome text not null,
    detail text
);

-- `GET /api/v1/audit?store_id=..` pages newest first by (at, id); pruning reads by age.
create index audit_store_at_idx on audit (store_id, at desc, id desc);
create index audit_at_idx on audit (at);
