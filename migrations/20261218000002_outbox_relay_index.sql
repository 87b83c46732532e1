-- no-transaction
-- The relay's work list: unsent rows that are not parked, in id order. Built concurrently (see
-- the previous migration) before the index it replaces is dropped, so the relay always has one.
create index concurrently if not exists outbox_relay_idx on outbox (id) where sent_at is null and parked_at is null;
