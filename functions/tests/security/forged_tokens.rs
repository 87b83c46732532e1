//! Tokens that were not issued by this orderflow, or no longer may be used, are refused:
//! unsigned, wrongly signed, of another issuer, expired, tampered with, and those of a disabled
//! user or of an admin since demoted (within seconds, not at their expiry).

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{eventually, spawn_app, spawn_app_with},
    support::{admin_claims, get_status, patch_user, sign, sign_with, unsigned, with_payload},
};

#[tokio::test]
async fn unsigned_foreign_expired_and_tampered_tokens_are_refused() {
    let app = spawn_app().await;
    let secret = app.jwt_secret().await;
    app.create_user("eve@example.com", "eve's own password", false).await;
    let eve = app.token_of("eve@example.com", "eve's own password").await;
    let now = Utc::now().timestamp();
    let mut foreign_issuer = admin_claims();
    foreign_issuer["iss"] = json!("someone-else");
    let expired = json!({ "sub": "1", "iss": "orderflow", "adm": true, "iat": now - 7200, "exp": now - 3600 });
    let not_a_user_id = json!({ "sub": "admin", "iss": "orderflow", "adm": true, "iat": now, "exp": now + 3600 });
    let no_expiry = json!({ "sub": "1", "iss": "orderflow", "adm": true, "iat": now });
    let eve_as_admin = with_payload(&eve, &admin_claims());
    let signature_dropped = format!("{}.", eve.rsplit_once('.').unwrap().0);

    let cases = [
        ("alg none", unsigned(&admin_claims()), "invalid_token"),
        ("HS512 with the right secret", sign_with(Algorithm::HS512, &secret, &admin_claims()), "invalid_token"),
        ("another issuer", sign(&secret, &foreign_issuer), "invalid_token"),
        ("expired", sign(&secret, &expired), "token_expired"),
        ("a subject that is no user id", sign(&secret, &not_a_user_id), "invalid_token"),
        ("no expiry", sign(&secret, &no_expiry), "invalid_token"),
        ("eve's token claiming to be the admin", eve_as_admin, "invalid_token"),
        ("eve's token without its signature", signature_dropped, "invalid_token"),
        (
            "a user that does not exist",
            sign(&secret, &json!({ "sub": "999", "iss": "orderflow", "iat": now, "exp": now + 60 })),
            "invalid_token",
        ),
    ];

    for (what, token, code) in cases {
        for path in ["/api/orders", "/api/dead-letters"] {
            assert_eq!(
                get_status(&app, &token, path).await,
                (StatusCode::UNAUTHORIZED, Some(code.into())),
                "{what} on {path}"
            );
        }
    }
    // The right secret and claims: the harness itself is sound.
    assert_eq!(get_status(&app, &sign(&secret, &admin_claims()), "/api/dead-letters").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_token_claiming_admin_rights_gets_only_the_users_own() {
    let app = spawn_app().await;
    let secret = app.jwt_secret().await;
    let eve = app.create_user("eve@example.com", "eve's own password", false).await;
    let now = Utc::now().timestamp();

    let claims_admin =
        sign(&secret, &json!({ "sub": eve.to_string(), "iss": "orderflow", "adm": true, "iat": now, "exp": now + 60 }));

    assert_eq!(get_status(&app, &claims_admin, "/api/dead-letters").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get_status(&app, &claims_admin, "/api/users").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_disabled_users_token_stops_working_here_at_once_and_on_another_replica_within_seconds() {
    let app = spawn_app().await;
    let replica = spawn_app_with(|c| c.database_url.clone_from(&app.config.database_url)).await;
    let eve = app.create_user("eve@example.com", "eve's own password", false).await;
    let token = app.token_of("eve@example.com", "eve's own password").await;
    // The replica has seen eve as enabled, and may remember it for a moment.
    assert_eq!(get_status(&replica, &token, "/api/orders").await.0, StatusCode::OK);

    let disabled = patch_user(&app, eve, &json!({ "disabled": true })).await;

    assert_eq!(disabled, StatusCode::OK);
    let refused = (StatusCode::UNAUTHORIZED, Some("account_disabled".to_owned()));
    assert_eq!(get_status(&app, &token, "/api/orders").await, refused);
    eventually("the replica to refuse the disabled user's token", Duration::from_secs(5), || async {
        (get_status(&replica, &token, "/api/orders").await == refused).then_some(())
    })
    .await;
    let login = app.login("eve@example.com", "eve's own password").await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(crate::support::error_code(login).await, "account_disabled");
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_rights_with_the_same_token() {
    let app = spawn_app().await;
    let ops = app.create_user("ops@example.com", "ops's own password", true).await;
    let token = app.token_of("ops@example.com", "ops's own password").await;
    assert_eq!(get_status(&app, &token, "/api/users").await.0, StatusCode::OK);

    let demoted = patch_user(&app, ops, &json!({ "isAdmin": false })).await;

    assert_eq!(demoted, StatusCode::OK);
    assert_eq!(get_status(&app, &token, "/api/users").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get_status(&app, &token, "/api/dead-letters").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get_status(&app, &token, "/api/orders").await.0, StatusCode::OK, "still a user");
}
