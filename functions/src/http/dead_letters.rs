//! `GET /api/dead-letters?queue=&limit=` and `POST /api/dead-letters/replay`: what sits in the
//! `<queue>_error` queues (with the journal's attempts and last error) and the outbox rows
//! parked after repeated refusals (error queue `outbox`), and moving it back. Admins only.

use axum::{Extension, Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::messaging::{DeadLetter, DeadLetters};

use super::{ApiError, ApiJson, ApiQuery, AppState, AuthUser, ErrorBody};
use crate::dead_letters::{self, JournaledLetter, Source};

/// Query parameters of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this queue (its error queue and its parked outbox rows), or `outbox` for parked
    /// outbox rows only; default: everything. A queue is also accepted with QUEUE_PREFIX in
    /// front, or as its `_error` queue with the prefix.
    #[serde(default)]
    #[param(inline, value_type = Option<QueueName>)]
    queue: Option<String>,
    /// Most messages per queue, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// An event queue, by its name without QUEUE_PREFIX, or `outbox`: the outbox rows parked after
/// OUTBOX_MAX_ATTEMPTS refusals by the broker.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "only its schema is used, for the names `queue` takes")]
enum QueueName {
    #[serde(rename = "order-created-event")]
    Created,
    #[serde(rename = "order-completed-event")]
    Completed,
    #[serde(rename = "order-expired-event")]
    Expired,
    #[serde(rename = "outbox")]
    Outbox,
}

/// A dead letter with what the journal knows about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    #[serde(flatten)]
    letter: DeadLetter,
    /// Attempts the job took.
    attempts: Option<i32>,
    /// Its last error.
    last_error: Option<String>,
}

impl From<JournaledLetter> for DeadLetterView {
    fn from(JournaledLetter { letter, attempts, last_error }: JournaledLetter) -> Self {
        DeadLetterView { letter, attempts, last_error }
    }
}

/// Largest list.
pub const MAX_LIMIT: usize = 1000;

/// Lists dead letters (they stay where they are): the error queues' messages, then the parked
/// outbox rows.
#[utoipa::path(
    get, path = "/api/dead-letters", tag = "operations",
    params(ListQuery),
    responses(
        (status = 200, description = "The messages in the error queues, then the parked outbox rows", body = [DeadLetterView]),
        (status = 400, description = "`invalid_parameter`: unknown queue, or limit out of range", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Broker or database unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 403 for non-admins, 400 for an unknown queue, 503 when the broker (or the database) is down.
pub async fn list_dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    caller.require_admin()?;
    let source = query.queue.as_deref().map(|q| source_of(&state, q, "queue")).transpose()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_parameter("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let mut listed = Vec::new();
    if source != Some(Source::Outbox) {
        let error_queues = connect(&state).await?;
        let letters = error_queues.list(source.and_then(Source::event), limit).await;
        error_queues.close().await;
        let letters = letters.map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
        let summaries = dead_letters::summaries(&state.pool, &letters).await?;
        listed = dead_letters::with_journal(letters, &summaries);
    }
    listed.extend(dead_letters::parked(&state.pool, &state.dead_letters.topology, source, limit).await?);
    Ok(Json(listed.into_iter().map(DeadLetterView::from).collect()))
}

/// What to replay: `{"id": …}` (optionally with `queue`), or `{"queue": …, "all": true}`;
/// `queue` may be `outbox` (parked outbox rows). The document describes the two shapes as
/// [`ReplayShape`]'s alternatives.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// The message id of one dead letter.
    #[serde(default)]
    id: Option<String>,
    /// The queue to replay (with `all`) or to look for `id` in.
    #[serde(default)]
    #[schema(example = "order-created-event")]
    queue: Option<String>,
    /// Replay every message of `queue`.
    #[serde(default)]
    all: bool,
}

// The two shapes of `ReplayRequest`, for the OpenAPI document's `oneOf`: the handler reads
// `ReplayRequest`, whose single shape gives clearer errors than an untagged enum would.
/// What to replay: one dead letter by its message id, or every dead letter of a queue.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "only its schema is used")]
enum ReplayShape {
    One(ReplayOne),
    All(ReplayAll),
}

/// One dead letter, by its message id.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[expect(dead_code, reason = "only its schema is used")]
struct ReplayOne {
    /// The message id of the dead letter.
    id: String,
    /// The queue to look for it in (default: every queue).
    #[serde(default)]
    #[schema(value_type = Option<QueueName>)]
    queue: Option<String>,
    /// Absent, or false.
    #[serde(default)]
    #[schema(schema_with = only_false)]
    all: bool,
}

/// Every dead letter of one queue.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[expect(dead_code, reason = "only its schema is used")]
struct ReplayAll {
    /// The queue to replay.
    #[schema(value_type = QueueName)]
    queue: String,
    /// True: every message of the queue.
    #[schema(schema_with = only_true)]
    all: bool,
    /// Absent, or null.
    #[serde(default)]
    #[schema(schema_with = only_null)]
    id: Option<String>,
}

fn only_false() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([false]))
        .build()
}

fn only_true() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

fn only_null() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null).build()
}

/// What was replayed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResponse {
    replayed: usize,
    messages: Vec<DeadLetter>,
}

/// Moves dead letters back into their queues (published with a confirm before they leave the
/// error queue), and parked outbox rows back into the relay's work list.
#[utoipa::path(
    post, path = "/api/dead-letters/replay", tag = "operations",
    request_body = ReplayShape,
    responses(
        (status = 200, description = "Replayed", body = ReplayResponse),
        (status = 400, description = "`malformed_json`, `validation_failed` (neither an id nor a queue with `all`) or `invalid_parameter` (an unknown queue)", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No dead letter has that id", body = ErrorBody),
        (status = 413, description = "Body over MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "Body not declared as JSON", body = ErrorBody),
        (status = 503, description = "Broker or database unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 403 for non-admins, 400 for a request that names neither an id nor a queue with `all`,
/// 404 when the id is in no error queue, 503 when the broker is down.
pub async fn replay_dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<ReplayResponse>, ApiError> {
    caller.require_admin()?;
    let source = request.queue.as_deref().map(|q| source_of(&state, q, "queue")).transpose()?;
    let Some(selection) = dead_letters::replay_selection(request.id, source, request.all) else {
        return Err(ApiError::Validation {
            field: None,
            message: "send {\"id\": \"<message id>\"} or {\"queue\": \"<queue>\", \"all\": true}".into(),
        });
    };
    let mut replayed = dead_letters::unpark(&state.pool, &state.dead_letters.topology, &selection).await?;
    if !replayed.is_empty() {
        state.outbox.notify();
    }
    if let Some(in_error_queues) = selection.in_error_queues(&replayed) {
        let error_queues = connect(&state).await?;
        let moved = error_queues.replay(&in_error_queues).await;
        error_queues.close().await;
        replayed.extend(moved.map_err(|e| ApiError::Unavailable(format!("{e:#}")))?);
    }
    if let Some(message_id) = selection.not_found(&replayed) {
        return Err(ApiError::NotFound(format!("no dead letter has message id {message_id}")));
    }
    tracing::info!(replayed = replayed.len(), user.id = caller.user_id, "dead letters replayed");
    Ok(Json(ReplayResponse { replayed: replayed.len(), messages: replayed }))
}

/// What the queue name `queue` selects, or a 400 naming `field` and the known names.
fn source_of(state: &AppState, queue: &str, field: &str) -> Result<Source, ApiError> {
    dead_letters::source_of(&state.dead_letters.topology, queue).map_err(|unknown| {
        ApiError::invalid_parameter(field, format!("unknown queue `{}`; known: {}", unknown.queue, unknown.known))
    })
}

async fn connect(state: &AppState) -> Result<DeadLetters, ApiError> {
    let settings = &state.dead_letters;
    DeadLetters::connect(&settings.amqp_url, settings.topology.clone(), settings.broker_timeout)
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e:#}")))
}
