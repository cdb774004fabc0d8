-- A data-access expiry a platform reported (Meta's `debug_token`, Unix seconds in metadata) also
-- bounds reconnect_by: the health sweep reads it through this expression, the same text as in the
-- store (src/store/pg.rs, sqlite.rs).
create index platform_connections_data_access_expiry_idx on platform_connections ((case when jsonb_typeof(metadata->'data_access_expires_at') = 'number' then (metadata->>'data_access_expires_at')::numeric end));
