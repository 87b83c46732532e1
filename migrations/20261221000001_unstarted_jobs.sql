-- The board's Pending jobs (issue 15): an event the relay published whose function has not
-- started it yet is a sent outbox row with no journal row. The relay used to insert a Pending
-- journal row for each message it published, which the worker then updated: two writes per job
-- whenever a queue had a backlog, the largest part of what the journal cost PostgreSQL. The
-- journal now holds only what workers report (and the board's pushes), and the board reads
-- Pending jobs through this view, beside the journal. One still here after the journal's
-- retention gets a Killed journal row from the retention sweep (its message was lost, or waits
-- that long), before the same sweep deletes its outbox row.
create view unstarted_jobs as
    select o.message_id, o.event_type, o.payload::jsonb as args, o.created_at as enqueued_at, o.sent_at,
           o.order_id, o.correlation_id,
           -- The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), if it is one.
           case when o.traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
                then substr(o.traceparent, 4, 32) end as trace_id
    from outbox o
    where o.sent_at is not null
      and not exists (select 1 from job_journal j where j.message_id = o.message_id::text);
