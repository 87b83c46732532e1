-- Retention and orphans (issue 17).
--
-- A cron run left Running by a process that died is marked Killed by the retention sweep, as
-- its journal row is; the board shows it as the tick's last run.
alter table cron_runs drop constraint cron_runs_outcome_valid;
alter table cron_runs add constraint cron_runs_outcome_valid
    check (outcome in ('Running', 'Done', 'Failed', 'Skipped', 'Killed'));
-- The sweep looks for runs still Running: a handful at any time, so the index stays tiny.
create index cron_runs_running_idx on cron_runs (started_at) where outcome = 'Running';

-- Idempotency keys expire after IDEMPOTENCY_TTL_HOURS; the sweep deletes the oldest first.
create index idempotency_keys_created_at_idx on idempotency_keys (created_at);
