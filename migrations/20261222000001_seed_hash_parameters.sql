-- The seeded admin's demo password (admin123) hashed again with the argon2id parameters new
-- passwords get (m=7168, t=5, p=1: functions/src/accounts/mod.rs, PASSWORD_M_COST_KIB), so that
-- its login holds 7 MiB rather than argon2's default 19. Only the untouched seed is replaced; it
-- stays the demo password (password_is_demo), refused beyond loopback as before.
update users
set password_hash = '$argon2id$v=19$m=7168,t=5,p=1$gdHBFm1X/BHLygNT4HAorQ$EnwqjH0YE2O+XclZDonZTspZHVG6kwf7OADrpW1hzsM'
where id = 1
  and password_hash = '$argon2id$v=19$m=19456,t=2,p=1$iFhZrM+1ia/glPFA0rln0w$t98OQQd306CfRrpCoay6jY2/TwftFSRceHElD2Vq/sc';
