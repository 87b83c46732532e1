-- Transactional outbox (DESIGN.md section 6.1): a state change and the event it causes commit
-- together; the relay publishes unsent rows with publisher confirms and then marks them sent.
create table outbox (
    id             bigint generated always as identity,
    message_id     uuid        not null,
    event_type     text        not null,
    order_id       bigint,
    payload        json        not null,
    correlation_id text        not null,
    created_at     timestamptz not null default now(),
    sent_at        timestamptz,
    attempts       integer     not null default 0,
    last_error     text,
    constraint outbox_pkey primary key (id),
    constraint outbox_message_id_key unique (message_id),
    constraint outbox_event_type_valid check (event_type in ('OrderCreated', 'OrderCompleted', 'OrderExpired'))
);

-- The relay's work list: only unsent rows, in id order. Stays tiny when the relay keeps up.
create index outbox_unsent_idx on outbox (id) where sent_at is null;
-- An order's timeline reads its events.
create index outbox_order_id_idx on outbox (order_id);
