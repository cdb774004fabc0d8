-- The refresher revives ERROR rows parked because their key was unknown, once the key is known:
-- a small partial index keeps that per-round query off the full table.
create index if not exists platform_connections_error_key_idx on platform_connections (key_id)
    where status = 'ERROR';
