-- Fewer and cheaper index writes on the two hottest tables (measured by the pipeline benchmark).
--
-- outbox: outbox_sent_at_idx only served pruning, which walks the primary key instead (old rows
-- have small ids); every relay update paid for it.
drop index if exists outbox_sent_at_idx;

-- job_journal: a job's row is updated two or three times (Running, then Done/Failed/Killed). With
-- no index on a column those updates change, PostgreSQL updates in place (HOT: no index writes at
-- all), so the journal indexes only columns fixed at insert, and leaves room on each page for the
-- updated versions. The board's "jobs of this queue in this status" walks the queue's jobs newest
-- first and filters; pruning walks enqueue times.
drop index if exists job_journal_status_idx;
drop index if exists job_journal_queue_status_idx;
drop index if exists job_journal_finished_at_idx;
create index job_journal_queue_enqueued_at_idx on job_journal (queue, enqueued_at desc);
create index job_journal_enqueued_at_idx on job_journal (enqueued_at);
alter table job_journal set (fillfactor = 70);
