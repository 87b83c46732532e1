-- The relay claims outbox rows with a lease instead of holding row locks across broker I/O
-- (issue 17), and parks rows the broker keeps refusing.
--
-- available_at: a claimed row is leased until then (another relay takes it over only after the
-- lease, if the claiming one died); a refused row waits until then before its next attempt.
-- rejections: publishes the broker refused for this row alone (unroutable, nacked); a broker
-- outage or alarm fails whole batches and does not count, so it never parks anything.
-- parked_at: set after OUTBOX_MAX_ATTEMPTS rejections; the row leaves the relay's work list
-- until it is replayed (`orderflow dlq replay`, `POST /api/dead-letters/replay`).
alter table outbox
    add column available_at timestamptz not null default now(),
    add column rejections   integer     not null default 0,
    add column parked_at    timestamptz;

-- The relay's work list: unsent rows that are not parked, in id order.
drop index if exists outbox_unsent_idx;
create index outbox_unsent_idx on outbox (id) where sent_at is null and parked_at is null;
-- Parked rows, listed as dead letters: a handful at any time.
create index outbox_parked_idx on outbox (parked_at) where parked_at is not null;
