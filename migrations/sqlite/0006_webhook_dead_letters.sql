-- Webhook events given up on after the maximum number of attempts (the dead letters), and the
-- indexes delivery and pruning use (SQLite form of the PostgreSQL migration).
alter table webhook_outbox add column dead_at text;

drop index webhook_outbox_pending_idx;
create index webhook_outbox_pending_idx on webhook_outbox (next_attempt_at)
    where delivered_at is null and dead_at is null;
create index webhook_outbox_delivered_idx on webhook_outbox (delivered_at)
    where delivered_at is not null;
