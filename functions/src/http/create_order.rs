//! `POST /api/orders`: validates, writes the order and its `OrderCreated` outbox row in one
//! statement, wakes the relay, answers 201. Publishing happens later, in the relay, so a
//! broker outage never fails an order. A user orders for themselves; only an admin may order
//! for another user.

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::{
    db::{
        self,
        orders::{self, IdempotencyKey, constraints},
    },
    domain::{Money, NewOrder, Order},
};
use uuid::Uuid;

use super::{ApiError, ApiJson, AppState, AuthUser, ErrorBody, RequestId, integral};

// Types are checked here; ranges by `NewOrder::parse`.
/// The body of a create request. The ids and the quantity take any integral JSON number (`3.0`
/// too), as a JSON Schema `integer` does.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    /// Whose order; default (absent or null): the caller. Only an admin may name another user
    /// (403 otherwise); an unknown user is a 422.
    #[serde(default, deserialize_with = "integral::optional_integer")]
    #[schema(example = 1, minimum = 1, maximum = 9223372036854775807_i64)]
    user_id: Option<i64>,
    /// An existing product (422 otherwise).
    #[serde(deserialize_with = "integral::integer")]
    #[schema(example = 2, minimum = 1, maximum = 9223372036854775807_i64)]
    product_id: i64,
    /// 1 to 10,000.
    #[serde(deserialize_with = "integral::integer")]
    #[schema(example = 3, minimum = 1, maximum = 10000)]
    quantity: i64,
    /// Unit price: greater than 0, at most 1,000,000.00, at most two decimals.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 1000000, multiple_of = 0.01, example = 19.99)]
    price: Money,
    /// Only `Pending` is accepted (absent or null: `Pending`): orders always start there.
    #[serde(default)]
    #[schema(value_type = Option<OrderStatusPending>)]
    status: Option<String>,
}

/// The only status a new order may be given.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "only its schema is used: the `status` a create request may carry")]
enum OrderStatusPending {
    Pending,
}

/// The header that makes a create safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Creates an order and its `OrderCreated` event; answers at once (processing is asynchronous).
#[utoipa::path(
    post, path = "/api/orders", tag = "orders",
    request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Retries with the same key return the same order, for IDEMPOTENCY_TTL_HOURS (default 24): \
                       1 to 255 printable ASCII characters, no space at either end",
        min_length = 1, max_length = 255, pattern = r"^[!-~]([ -~]*[!-~])?$")),
    responses(
        (status = 201, description = "Created (or replayed for a known Idempotency-Key, with `Idempotent-Replayed: true`)", body = Order,
            headers(("Location" = String, description = "/api/orders/{id}"))),
        (status = 400, description = "`malformed_json`, `validation_failed` (with `field`) or `invalid_parameter`", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`forbidden`: userId names another user and the caller is not an admin", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused` for a different order", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 422, description = "`unknown_reference`: unknown userId or productId", body = ErrorBody),
        (status = 503, description = "Database unreachable; retry later", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 400 invalid body or header, 403 another user's userId from a caller who is not an admin,
/// 409 idempotency key reused for another request, 422 unknown user or product, 503 database down.
pub async fn create_order(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let user_id = request.user_id.unwrap_or(caller.user_id);
    if !caller.may_access(user_id) {
        return Err(ApiError::Forbidden("only an admin may create an order for another user".into()));
    }
    let order =
        NewOrder::parse(user_id, request.product_id, request.quantity, request.price, request.status.as_deref())?;
    let fingerprint = fingerprint(&order);

    if let Some(key) = key
        && let Some(replay) = replay(&state, caller, key, &fingerprint).await?
    {
        return Ok(created(replay, true));
    }

    let idempotency = key.map(|key| IdempotencyKey { user_id: caller.user_id, key, request_fingerprint: &fingerprint });
    let trace = shared::telemetry::TraceHeaders::current();
    match orders::insert_order(&state.pool, &order, Uuid::now_v7(), &request_id.0, trace.pair(), idempotency).await {
        Ok(created_order) => {
            state.outbox.notify();
            tracing::info!(order.id = created_order.id, order.total = %created_order.total, "order created");
            Ok(created(created_order, false))
        }
        Err(e) => match db::violated_constraint(&e) {
            Some(constraints::UNKNOWN_USER) => Err(ApiError::UnknownReference {
                field: "userId",
                message: format!("no user has id {}", order.user_id()),
            }),
            Some(constraints::UNKNOWN_PRODUCT) => Err(ApiError::UnknownReference {
                field: "productId",
                message: format!("no product has id {}", order.product_id()),
            }),
            // A concurrent request with the same key won the race: answer with its order.
            Some(constraints::IDEMPOTENCY_KEY_TAKEN) => {
                let key = key.expect("the key constraint is only touched with a key");
                let replayed = replay(&state, caller, key, &fingerprint)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("idempotency key vanished after a conflict"))?;
                Ok(created(replayed, true))
            }
            _ => Err(e.into()),
        },
    }
}

fn created(order: Order, replayed: bool) -> Response {
    let location =
        HeaderValue::from_str(&format!("/api/orders/{}", order.id)).expect("a path of digits is a valid header");
    let mut response = (StatusCode::CREATED, [(header::LOCATION, location)], Json(order)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The order an earlier request with this key created, or a 409 if that request was different.
async fn replay(state: &AppState, caller: AuthUser, key: &str, fingerprint: &str) -> Result<Option<Order>, ApiError> {
    let Some(earlier) = orders::find_idempotent_replay(&state.pool, caller.user_id, key, state.idempotency_ttl).await?
    else {
        return Ok(None);
    };
    if earlier.request_fingerprint != fingerprint {
        return Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was already used for a different order".into(),
        });
    }
    let order = orders::get_order(&state.pool, earlier.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {} of an idempotency key is missing", earlier.order_id))?;
    Ok(Some(order))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    // `to_str` also lets tabs through; the document's pattern is printable ASCII alone.
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| (b' '..=b'~').contains(&b)))
        .ok_or_else(|| ApiError::invalid_parameter("Idempotency-Key", "must be 1 to 255 printable ASCII characters"))?;
    Ok(Some(key))
}

/// What makes two create requests "the same request" for an idempotency key.
fn fingerprint(order: &NewOrder) -> String {
    format!("{}:{}:{}:{}", order.user_id(), order.product_id(), order.quantity(), order.price())
}
