//! Bearer tokens: HS256 JWTs with an expiry (DESIGN.md section 6.7), issued by login and
//! required on every `/api` route except login. A token names its user; what the user may do is
//! read from the user's current state, not from the token.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};

/// Who a valid token belongs to; put into the request's extensions by [`require_auth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    /// The user's id.
    pub user_id: i64,
    /// Whether the user is an admin (now, when put there by [`require_auth`]).
    pub is_admin: bool,
}

impl AuthUser {
    /// Lets only admins through.
    ///
    /// # Errors
    /// 403 `forbidden` for everyone else.
    pub fn require_admin(self) -> Result<Self, ApiError> {
        if self.is_admin { Ok(self) } else { Err(ApiError::Forbidden("this needs an admin".into())) }
    }

    /// The user whose data a request may read: `None` for an admin (everyone's), the caller's
    /// own id otherwise.
    pub fn owner_filter(self) -> Option<i64> {
        (!self.is_admin).then_some(self.user_id)
    }

    /// Whether the caller may read or write data of `owner`: admins everyone's, others their own.
    pub fn may_access(self, owner: i64) -> bool {
        self.is_admin || self.user_id == owner
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    iss: String,
    #[serde(default)]
    adm: bool,
}

const ISSUER: &str = "orderflow";

/// Signs and checks tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl TokenKeys {
    /// Keys for an HS256 secret; tokens live for `ttl`.
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    /// Issues a token for a user, valid from `now` for the configured lifetime.
    ///
    /// # Errors
    /// Signing failed (it does not for HS256 with a valid key).
    pub fn issue(&self, user: AuthUser, now: DateTime<Utc>) -> anyhow::Result<IssuedToken> {
        let expires_at = now + chrono::Duration::from_std(self.ttl)?;
        let claims = Claims {
            sub: user.user_id.to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.into(),
            adm: user.is_admin,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken { token, expires_at })
    }

    /// The user a token belongs to, if it is well-formed, signed with our secret and unexpired;
    /// `is_admin` is what the token claims, which [`require_auth`] replaces by the current state.
    ///
    /// # Errors
    /// 401 `token_expired` or `invalid_token`.
    pub fn verify(&self, token: &str) -> Result<AuthUser, ApiError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the token has expired; log in again")
                }
                _ => ApiError::unauthorized("invalid_token", "the token is not valid"),
            })?;
        let user_id =
            data.claims.sub.parse().map_err(|_| ApiError::unauthorized("invalid_token", "the token is not valid"))?;
        Ok(AuthUser { user_id, is_admin: data.claims.adm })
    }
}

/// Middleware on every protected route: rejects requests without a valid bearer token or whose
/// user may no longer use it, and records who made the request with their current rights.
///
/// # Errors
/// 401 `missing_token`, `invalid_token`, `token_expired`, `account_disabled` or
/// `demo_password_refused`; 503 when the database is down.
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "send `Authorization: Bearer <token>`; get a token from POST /api/auth/login",
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing_token", "the Authorization header must be `Bearer <token>`"))?;
    let claimed = state.tokens.verify(token)?;
    let user = state.accounts.caller(&state.pool, claimed.user_id).await?;
    request.extensions_mut().insert(user);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(secret, Duration::from_secs(60))
    }

    #[test]
    fn an_issued_token_verifies_to_its_user() {
        let keys = keys("a-secret-for-tests-only");
        let user = AuthUser { user_id: 42, is_admin: true };
        let token = keys.issue(user, Utc::now()).unwrap();
        assert_eq!(keys.verify(&token.token).unwrap(), user);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token =
            keys("one-secret-for-tests-only").issue(AuthUser { user_id: 1, is_admin: false }, Utc::now()).unwrap();
        let err = keys("another-secret-for-tests").verify(&token.token).unwrap_err();
        assert!(matches!(err, ApiError::Unauthorized { code: "invalid_token", .. }));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let keys = keys("a-secret-for-tests-only");
        let token =
            keys.issue(AuthUser { user_id: 1, is_admin: false }, Utc::now() - chrono::Duration::hours(2)).unwrap();
        let err = keys.verify(&token.token).unwrap_err();
        assert!(matches!(err, ApiError::Unauthorized { code: "token_expired", .. }));
    }
}
