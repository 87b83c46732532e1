-- no-transaction
-- Replaced by outbox_relay_idx, which leaves parked rows out.
drop index concurrently if exists outbox_unsent_idx;
