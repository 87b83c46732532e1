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
    /// Only this queue (e.g. `order-created-event`: its error queue and its parked outbox rows),
    /// or `outbox` for parked outbox rows only; default: everything.
    #[serde(default)]
    queue: Option<String>,
    /// Most messages per queue, 1 to 1000 (default 100).
    #[serde(default)]
    limit: Option<usize>,
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
const MAX_LIMIT: usize = 1000;

/// Lists dead letters (they stay where they are): the error queues' messages, then the parked
/// outbox rows.
#[utoipa::path(
    get, path = "/api/dead-letters", tag = "operations",
    params(ListQuery),
    responses(
        (status = 200, description = "The messages in the error queues", body = [DeadLetterView]),
        (status = 400, description = "`invalid_parameter`: unknown queue", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Broker unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
///
/// # Errors
/// 403 for non-admins, 400 for an unknown queue, 503 when the broker is down.
pub async fn list_dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<AuthUser>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    caller.require_admin()?;
    let source = query.queue.as_deref().map(|q| source_of(&state, q, "queue")).transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
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
/// `queue` may be `outbox` (parked outbox rows).
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

/// What was replayed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResponse {
    replayed: usize,
    messages: Vec<DeadLetter>,
}

/// Moves dead letters back into their queues (published with a confirm before they leave the
/// error queue).
#[utoipa::path(
    post, path = "/api/dead-letters/replay", tag = "operations",
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "Replayed", body = ReplayResponse),
        (status = 400, description = "Neither an id nor a queue with `all`, or an unknown queue", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No dead letter has that id", body = ErrorBody),
        (status = 503, description = "Broker unreachable", body = ErrorBody),
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
