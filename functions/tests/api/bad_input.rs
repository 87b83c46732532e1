//! Each bad input gets a clear 4xx JSON error naming the problem, and writes nothing.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

struct Case {
    name: &'static str,
    body: String,
    status: StatusCode,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(name: &'static str, body: &str, status: StatusCode, code: &'static str, field: Option<&'static str>) -> Case {
    Case { name, body: body.to_owned(), status, code, field }
}

async fn assert_nothing_written(app: &TestApp, what: &str) {
    for table in ["orders", "outbox", "idempotency_keys"] {
        assert_eq!(app.count(table).await, 0, "{what} wrote to {table}");
    }
}

#[tokio::test]
async fn each_bad_create_request_gets_a_named_error_and_writes_nothing() {
    use StatusCode as S;
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let cases = [
        case("malformed JSON", r#"{"userId": 1, "productId""#, S::BAD_REQUEST, "malformed_json", None),
        case("not JSON at all", "userId=1", S::BAD_REQUEST, "malformed_json", None),
        case(
            "trailing garbage",
            r#"{"userId":1,"productId":1,"quantity":1,"price":1} x"#,
            S::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        case("empty body", "", S::BAD_REQUEST, "malformed_json", None),
        case("a JSON array", "[1, 2]", S::BAD_REQUEST, "validation_failed", None),
        case(
            "quantity as a string",
            r#"{"userId":1,"productId":1,"quantity":"3","price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("quantity"),
        ),
        case(
            "userId as a float",
            r#"{"userId":1.5,"productId":1,"quantity":3,"price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("userId"),
        ),
        case(
            "price as a string",
            r#"{"userId":1,"productId":1,"quantity":3,"price":"9.99"}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "price null",
            r#"{"userId":1,"productId":1,"quantity":3,"price":null}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "missing productId",
            r#"{"userId":1,"quantity":3,"price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("productId"),
        ),
        case(
            "missing price",
            r#"{"userId":1,"productId":1,"quantity":3}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "quantity zero",
            r#"{"userId":1,"productId":1,"quantity":0,"price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("quantity"),
        ),
        case(
            "quantity negative",
            r#"{"userId":1,"productId":1,"quantity":-2,"price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("quantity"),
        ),
        case(
            "quantity absurd",
            r#"{"userId":1,"productId":1,"quantity":1000000,"price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("quantity"),
        ),
        case(
            "quantity beyond i64",
            r#"{"userId":1,"productId":1,"quantity":99999999999999999999,"price":1}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("quantity"),
        ),
        case(
            "price zero",
            r#"{"userId":1,"productId":1,"quantity":1,"price":0}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "price negative",
            r#"{"userId":1,"productId":1,"quantity":1,"price":-9.99}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "price with 3 decimals",
            r#"{"userId":1,"productId":1,"quantity":1,"price":9.999}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "price absurd",
            r#"{"userId":1,"productId":1,"quantity":1,"price":1e30}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("price"),
        ),
        case(
            "status other than Pending",
            r#"{"userId":1,"productId":1,"quantity":1,"price":1,"status":"Completed"}"#,
            S::BAD_REQUEST,
            "validation_failed",
            Some("status"),
        ),
        case(
            "unknown user",
            r#"{"userId":999,"productId":1,"quantity":1,"price":1}"#,
            S::UNPROCESSABLE_ENTITY,
            "unknown_reference",
            Some("userId"),
        ),
        case(
            "unknown product",
            r#"{"userId":1,"productId":999,"quantity":1,"price":1}"#,
            S::UNPROCESSABLE_ENTITY,
            "unknown_reference",
            Some("productId"),
        ),
        case(
            "body over the limit",
            &format!(r#"{{"userId":1,"productId":1,"quantity":1,"price":1,"pad":"{}"}}"#, "x".repeat(100 * 1024)),
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
    ];

    for case in cases {
        let response = app
            .client
            .post(app.url("/api/orders"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(case.body)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), case.status, "{}", case.name);
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", case.name));
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.name);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: no message", case.name);
        assert_eq!(body["error"]["field"].as_str(), case.field, "{}: {body}", case.name);
        assert_nothing_written(&app, case.name).await;
    }
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let response = app
        .client
        .post(app.url("/api/orders"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"userId":1,"productId":1,"quantity":1,"price":1}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "unsupported_media_type");
    assert_nothing_written(&app, "text/plain").await;
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_named() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let cases = [
        ("/api/orders/abc", "id"),
        ("/api/orders/99999999999999999999", "id"),
        ("/api/orders?status=Shipped", "status"),
        ("/api/orders?page=0", "page"),
        ("/api/orders?page=x", "page"),
        ("/api/orders?pageSize=1000", "pageSize"),
        ("/api/orders?pageSize=0", "pageSize"),
        ("/api/orders?page=10002", "page"),
        ("/api/orders?page=9223372036854775807&pageSize=100", "page"),
        ("/api/orders?page=102&pageSize=100", "page"),
        ("/api/orders?page=102", "page"),
        ("/api/orders?status=", "status"),
        ("/api/orders?after=0", "after"),
        ("/api/orders?after=x", "after"),
        ("/api/notifications?orderId=abc", "orderId"),
        ("/api/notifications?type=Nope", "type"),
    ];

    for (path, field) in cases {
        let response = app.get(&token, path).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let missing = app.get(&token, "/api/nothing-here").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");

    let wrong_method = app.client.delete(app.url("/api/orders")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json::<Value>().await.unwrap()["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_json_array_for_a_body_object_is_refused_though_serde_would_read_it_as_the_fields() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    // serde reads `[null, null]` as an UpdateUserRequest's first two fields (both left as they are).
    let response = app
        .client
        .patch(app.url("/api/users/1"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("[null, null]")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
}
