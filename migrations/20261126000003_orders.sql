-- Orders and their state machine (DESIGN.md section 3):
-- Pending -> Processing -> Completed, Processing -> Expired. Transitions are guarded updates.
create table orders (
    id         bigint generated always as identity,
    user_id    bigint        not null,
    product_id bigint        not null,
    quantity   integer       not null,
    price      numeric(12,2) not null,
    total      numeric(14,2) not null,
    status     text          not null default 'Pending',
    created_at timestamptz   not null default now(),
    updated_at timestamptz   not null default now(),
    constraint orders_pkey primary key (id),
    constraint orders_user_id_fkey foreign key (user_id) references users (id),
    constraint orders_product_id_fkey foreign key (product_id) references products (id),
    constraint orders_quantity_positive check (quantity > 0),
    constraint orders_price_positive check (price > 0),
    constraint orders_total_matches check (total = price * quantity),
    constraint orders_status_valid check (status in ('Pending', 'Processing', 'Completed', 'Expired'))
);

-- Serves the expiry sweep: "Processing and updated_at older than the TTL".
-- Partial, so it stays small: only in-flight orders are in it.
create index orders_processing_updated_at_idx on orders (updated_at) where status = 'Processing';
-- Serves GET /api/orders?status=… newest first.
create index orders_status_id_idx on orders (status, id);
