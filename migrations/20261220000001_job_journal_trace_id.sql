-- The trace each job ran in (issue 13): the W3C trace id its message carried on (or the one a
-- cron run started), for the board's task page and the order timeline. Null for rows written
-- before, and for jobs that ran with tracing filtered off.
alter table job_journal add column trace_id text;
