-- A user who is not an admin lists only their own orders, newest first (GET /api/orders): without
-- this index every such list, and its count, would walk every user's orders.
create index orders_user_id_id_idx on orders (user_id, id);
