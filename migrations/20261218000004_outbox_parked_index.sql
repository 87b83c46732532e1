-- no-transaction
-- Parked rows, listed as dead letters and counted for readiness and metrics: a handful at any time.
create index concurrently if not exists outbox_parked_idx on outbox (parked_at) where parked_at is not null;
