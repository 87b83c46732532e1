//! Per-user data: a user sees and creates only their own orders, timelines and notifications;
//! another user's order answers exactly as a missing one; admins see everything.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app},
    support::get_status,
};

/// Two users and their tokens.
struct People {
    ada: (i64, String),
    bob: (i64, String),
}

async fn people(app: &TestApp) -> People {
    let ada = app.create_user("ada@example.com", "ada's own password", false).await;
    let bob = app.create_user("bob@example.com", "bob's own password", false).await;
    People {
        ada: (ada, app.token_of("ada@example.com", "ada's own password").await),
        bob: (bob, app.token_of("bob@example.com", "bob's own password").await),
    }
}

/// Creates an order without `userId` and returns it.
async fn order_of(app: &TestApp, token: &str) -> Value {
    let response = app.create_order(token, &json!({ "productId": 2, "quantity": 1, "price": 9.99 })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The ids of a page of orders.
async fn listed(app: &TestApp, token: &str) -> (Vec<i64>, i64) {
    let page: Value = app.get(token, "/api/orders").await.json().await.unwrap();
    let ids = page["items"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect();
    (ids, page["total"].as_i64().unwrap())
}

#[tokio::test]
async fn an_order_without_user_id_is_the_callers_and_another_users_id_is_forbidden() {
    let app = spawn_app().await;
    let People { ada: (ada, ada_token), bob: (bob, _) } = people(&app).await;

    let own = order_of(&app, &ada_token).await;
    let explicit =
        app.create_order(&ada_token, &json!({ "userId": ada, "productId": 1, "quantity": 1, "price": 5 })).await;
    let for_bob =
        app.create_order(&ada_token, &json!({ "userId": bob, "productId": 1, "quantity": 1, "price": 5 })).await;

    assert_eq!(own["userId"], ada);
    assert_eq!(explicit.status(), StatusCode::CREATED);
    assert_eq!(for_bob.status(), StatusCode::FORBIDDEN);
    assert_eq!(for_bob.json::<Value>().await.unwrap()["error"]["code"], "forbidden");
    let bobs: i64 = sqlx::query_scalar("select count(*) from orders where user_id = $1")
        .bind(bob)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(bobs, 0, "nothing was written for bob");
}

#[tokio::test]
async fn another_users_order_and_timeline_answer_as_a_missing_one() {
    let app = spawn_app().await;
    let People { ada: (_, ada_token), bob: (_, bob_token) } = people(&app).await;
    let adas = order_of(&app, &ada_token).await["id"].as_i64().unwrap();
    let missing = adas + 1000;

    for path in ["/api/orders/{}", "/api/orders/{}/events"] {
        let theirs = app.get(&bob_token, &path.replace("{}", &adas.to_string())).await;
        let absent = app.get(&bob_token, &path.replace("{}", &missing.to_string())).await;
        assert_eq!((theirs.status(), absent.status()), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{path}");
        let (theirs, absent): (Value, Value) = (theirs.json().await.unwrap(), absent.json().await.unwrap());
        assert_eq!(
            theirs["error"]["message"].as_str().unwrap().replace(&adas.to_string(), "ID"),
            absent["error"]["message"].as_str().unwrap().replace(&missing.to_string(), "ID"),
            "{path}: the two 404s differ"
        );
        assert_eq!(
            app.get(&ada_token, &path.replace("{}", &adas.to_string())).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test]
async fn lists_of_orders_and_notifications_hold_only_the_callers_own_and_everything_for_an_admin() {
    let app = spawn_app().await;
    let People { ada: (_, ada_token), bob: (_, bob_token) } = people(&app).await;
    let adas = order_of(&app, &ada_token).await["id"].as_i64().unwrap();
    let bobs = order_of(&app, &bob_token).await["id"].as_i64().unwrap();
    for order in [adas, bobs] {
        sqlx::query("insert into notifications (order_id, type, message) values ($1, 'OrderCompleted', 'paid')")
            .bind(order)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let admin = app.admin_token().await;
    let notified = async |token: &str, query: String| {
        let list: Value = app.get(token, &format!("/api/notifications{query}")).await.json().await.unwrap();
        list.as_array().unwrap().iter().map(|n| n["orderId"].as_i64().unwrap()).collect::<Vec<_>>()
    };

    assert_eq!(listed(&app, &ada_token).await, (vec![adas], 1));
    assert_eq!(listed(&app, &bob_token).await, (vec![bobs], 1));
    assert_eq!(listed(&app, &admin).await, (vec![bobs, adas], 2));
    assert_eq!(notified(&ada_token, String::new()).await, vec![adas]);
    assert_eq!(notified(&bob_token, String::new()).await, vec![bobs]);
    assert_eq!(notified(&bob_token, format!("?orderId={adas}")).await, Vec::<i64>::new());
    assert_eq!(notified(&admin, String::new()).await, vec![adas, bobs]);
    assert_eq!(get_status(&app, &ada_token, "/api/orders?status=Pending").await.0, StatusCode::OK);
}
