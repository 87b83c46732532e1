-- The job journal (DESIGN.md section 7): one row per message (per cron run), written by a
-- middleware on every worker, so the board can show every job: arguments, status, attempts,
-- last error, timings, worker, and the order it concerns. apalis-amqp keeps none of this.
create table job_journal (
    message_id     text        not null,
    queue          text        not null,
    function       text        not null,
    args           jsonb       not null default '{}'::jsonb,
    status         text        not null,
    attempts       integer     not null default 0,
    max_attempts   integer     not null,
    last_error     text,
    result         text,
    enqueued_at    timestamptz not null default now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    worker         text,
    order_id       bigint,
    correlation_id text,
    constraint job_journal_pkey primary key (message_id),
    constraint job_journal_status_valid check (status in ('Pending', 'Running', 'Done', 'Failed', 'Killed'))
);

-- The board lists a queue's jobs by status, newest first.
create index job_journal_queue_status_idx on job_journal (queue, status, enqueued_at desc);
create index job_journal_status_idx on job_journal (status, enqueued_at desc);
-- An order's timeline.
create index job_journal_order_id_idx on job_journal (order_id) where order_id is not null;
-- Pruning finished entries past the retention period.
create index job_journal_finished_at_idx on job_journal (finished_at) where finished_at is not null;

-- Live workers: each process upserts a heartbeat per worker; the board lists recent ones.
create table workers (
    name           text        not null,
    queue          text        not null,
    function       text        not null,
    process        text        not null,
    started_at     timestamptz not null default now(),
    last_heartbeat timestamptz not null default now(),
    layers         text        not null default '',
    constraint workers_pkey primary key (name)
);

-- Admins may list and replay dead letters.
alter table users add column is_admin boolean not null default false;
update users set is_admin = true where id = 1;

-- Sent outbox rows are pruned with the journal; this serves that.
create index outbox_sent_at_idx on outbox (sent_at) where sent_at is not null;
