-- Connection health (issue 11): the liveness probe's schedule, the refresh-failure episode, and the
-- alerts already sent, so that each warning goes out once per episode whatever the replicas.
alter table platform_connections add column failing_since timestamptz;
alter table platform_connections add column health_since timestamptz;
alter table platform_connections add column last_checked_at timestamptz;
alter table platform_connections add column next_check_at timestamptz;
-- The reconnect_by of the last expiry-warning episode, and the smallest threshold (days) sent in it.
alter table platform_connections add column expiry_warned_for timestamptz;
alter table platform_connections add column expiry_warned_days integer;
-- When the refresh_failing alert of the current failure episode was sent.
alter table platform_connections add column failing_alerted_at timestamptz;

-- Rows connected before this release are checked at the probe's first passes, in batches.
update platform_connections set next_check_at = created_at where status = 'CONNECTED';

-- The probe's claim reads due rows by next_check_at; the health sweep reads failing rows and rows
-- whose renewal credential runs out.
create index platform_connections_next_check_idx on platform_connections (next_check_at)
    where next_check_at is not null;
create index platform_connections_failing_idx on platform_connections (failing_since)
    where failing_since is not null;
create index platform_connections_refresh_expiry_idx on platform_connections (refresh_token_expires_at)
    where refresh_token_expires_at is not null;
