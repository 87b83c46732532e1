-- One row per scheduled cron tick and process. The partial unique index lets exactly one
-- process claim a tick (DESIGN.md section 6.5); every other claimant records a 'Skipped' row, so
-- a person can see that duplicate ticks were recognised.
create table cron_runs (
    id            bigint generated always as identity,
    job           text        not null,
    scheduled_at  timestamptz not null,
    worker        text        not null,
    outcome       text        not null default 'Running',
    started_at    timestamptz not null default now(),
    finished_at   timestamptz,
    affected      bigint,
    error         text,
    constraint cron_runs_pkey primary key (id),
    constraint cron_runs_outcome_valid check (outcome in ('Running', 'Done', 'Failed', 'Skipped'))
);

create unique index cron_runs_one_claim_per_tick on cron_runs (job, scheduled_at) where outcome <> 'Skipped';
create index cron_runs_job_scheduled_at_idx on cron_runs (job, scheduled_at desc);
