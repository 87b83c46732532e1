-- Seed data (DESIGN.md section 4), idempotent: re-running changes nothing.
-- admin@example.com / admin123, stored as an argon2id hash (m=19456, t=2, p=1: argon2's defaults).
insert into users (id, email, name, password_hash)
values (1, 'admin@example.com', 'Admin',
        '$argon2id$v=19$m=19456,t=2,p=1$iFhZrM+1ia/glPFA0rln0w$t98OQQd306CfRrpCoay6jY2/TwftFSRceHElD2Vq/sc')
on conflict (id) do nothing;

insert into products (id, name, price)
values (1, 'Mechanical keyboard', 89.90),
       (2, 'USB-C cable', 9.99),
       (3, '27" monitor', 249.00),
       (4, 'Noise-cancelling headphones', 199.50)
on conflict (id) do nothing;

-- Explicit ids above do not advance the identity sequences; move them past the seeds.
select setval(pg_get_serial_sequence('users', 'id'), greatest((select max(id) from users), 1));
select setval(pg_get_serial_sequence('products', 'id'), greatest((select max(id) from products), 1));
