//! Who a token's user is now. A token outlives changes to its user, so every request checks the
//! user's current state (disabled, demoted, still on the published demo password), remembered
//! for [`REMEMBER`] at most: a change made on any replica takes effect within that time.

use std::time::Duration;

use moka::sync::Cache;
use shared::db::users::{self, AccountState};
use sqlx::PgPool;

use super::{ApiError, AuthUser};

/// How long a user's state is trusted without reading it again.
pub const REMEMBER: Duration = Duration::from_secs(2);

/// Most users remembered at once (a few dozen bytes each).
const CAPACITY: u64 = 100_000;

/// Each user's current state, briefly cached, and whether this process accepts the demo password.
#[derive(Clone)]
pub struct Accounts {
    states: Cache<i64, Option<AccountState>>,
    demo_password_allowed: bool,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("demo_password_allowed", &self.demo_password_allowed).finish_non_exhaustive()
    }
}

impl Accounts {
    /// Accounts for a process that accepts the demo password or not (see
    /// [`crate::accounts::listens_on_loopback_only`]).
    pub fn new(demo_password_allowed: bool) -> Self {
        Accounts {
            states: Cache::builder().max_capacity(CAPACITY).time_to_live(REMEMBER).build(),
            demo_password_allowed,
        }
    }

    /// Whether this process accepts the seeded demo password.
    pub fn demo_password_allowed(&self) -> bool {
        self.demo_password_allowed
    }

    /// Whether a user in `state` may log in or use a token here.
    ///
    /// # Errors
    /// 401 `account_disabled`, or 401 `demo_password_refused` for a user still on the demo
    /// password when this process listens beyond loopback.
    pub fn admit(&self, state: AccountState) -> Result<(), ApiError> {
        if state.disabled {
            return Err(ApiError::unauthorized("account_disabled", "this account is disabled"));
        }
        if state.password_is_demo && !self.demo_password_allowed {
            return Err(ApiError::unauthorized(
                "demo_password_refused",
                "the demo password works only while orderflow listens on loopback; set a real password \
                 (ADMIN_PASSWORD, or `orderflow users set-password`)",
            ));
        }
        Ok(())
    }

    /// The caller behind a valid token for `user_id`, with the admin rights the user has now.
    ///
    /// # Errors
    /// 401 `invalid_token` for a user that no longer exists, [`Accounts::admit`]'s refusals, or
    /// 503 when the database is down.
    pub async fn caller(&self, pool: &PgPool, user_id: i64) -> Result<AuthUser, ApiError> {
        let state = match self.states.get(&user_id) {
            Some(state) => state,
            None => {
                let state = users::account_state(pool, user_id).await?;
                self.states.insert(user_id, state);
                state
            }
        };
        let state = state.ok_or_else(|| ApiError::unauthorized("invalid_token", "the token's user does not exist"))?;
        self.admit(state)?;
        Ok(AuthUser { user_id, is_admin: state.is_admin })
    }

    /// Drops what is remembered about a user, after a change made here.
    pub fn forget(&self, user_id: i64) {
        self.states.invalidate(&user_id);
    }
}
