-- The relay claims outbox rows with a lease instead of holding row locks across broker I/O
-- (issue 17), and parks rows the broker keeps refusing. Adding columns with constant defaults
-- only changes the catalog: instant however large the table. The indexes that go with the
-- columns are built concurrently, one migration each (outside a transaction, so that orders
-- keep being created while they build).
--
-- available_at: a claimed row is leased until then (another relay takes it over only after the
-- lease, if the claiming one died); a refused row waits until then before its next attempt.
-- rejections: publishes refused for this row alone (unroutable, nacked, an unknown event type);
-- a broker outage or alarm fails whole batches and does not count, so it never parks anything.
-- parked_at: set after OUTBOX_MAX_ATTEMPTS rejections; the row leaves the relay's work list
-- until it is replayed (`orderflow dlq replay`, `POST /api/dead-letters/replay`).
alter table outbox
    add column available_at timestamptz not null default now(),
    add column rejections   integer     not null default 0,
    add column parked_at    timestamptz;
