-- What the completion and expiry functions record. One notification per order and type:
-- the unique constraint is what makes a redelivered event harmless (insert … on conflict do nothing).
create table notifications (
    id         bigint generated always as identity,
    order_id   bigint      not null,
    type       text        not null,
    message    text        not null,
    metadata   jsonb       not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    constraint notifications_pkey primary key (id),
    constraint notifications_order_id_fkey foreign key (order_id) references orders (id),
    constraint notifications_order_id_type_key unique (order_id, type),
    constraint notifications_type_valid check (type in ('OrderCompleted', 'OrderExpired')),
    constraint notifications_metadata_is_object check (jsonb_typeof(metadata) = 'object')
);
