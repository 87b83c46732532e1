-- Idempotency-Key on POST /api/orders: the same key from the same caller returns the same order.
-- request_fingerprint detects a key reused for a different request (409).
create table idempotency_keys (
    user_id             bigint      not null,
    key                 text        not null,
    request_fingerprint text        not null,
    order_id            bigint      not null,
    created_at          timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (user_id, key),
    constraint idempotency_keys_order_id_fkey foreign key (order_id) references orders (id),
    constraint idempotency_keys_key_length check (length(key) between 1 and 255)
);
