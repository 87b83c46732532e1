-- Values orderflow generates once and every replica shares: the token signing secret when
-- JWT_SECRET is unset. Written with `insert … on conflict do nothing` and then read, so
-- processes starting at the same time all use the first value written.
create table settings (
    name  text not null,
    value text not null,
    constraint settings_pkey primary key (name)
);
