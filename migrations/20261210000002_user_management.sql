-- Users that admins manage (`orderflow users …`, POST/PATCH /api/users).
--
-- A disabled user cannot log in, and their tokens stop working.
alter table users add column disabled boolean not null default false;

-- The seeded admin's password (admin123) is published in the README: it is accepted only by a
-- process that listens on loopback addresses alone. Setting any password clears the flag. A
-- seeded admin whose hash was already changed by hand keeps no flag.
alter table users add column password_is_demo boolean not null default false;
update users set password_is_demo = true
where id = 1
  and password_hash = '$argon2id$v=19$m=19456,t=2,p=1$iFhZrM+1ia/glPFA0rln0w$t98OQQd306CfRrpCoay6jY2/TwftFSRceHElD2Vq/sc';

-- Logins compare e-mails case-insensitively, so two users may not differ by case alone (and the
-- bootstrap admin is upserted on this index).
create unique index users_email_lower_key on users (lower(email));
