//! Extractors whose rejections are our own JSON errors, naming the field at fault, instead of
//! axum's plain-text ones; and the client's address, which never rejects.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::PathRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::credentials;

/// The client's IP address, as the connection shows it (see [`credentials::client_address`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(credentials::client_address(&parts.extensions)))
    }
}

/// A JSON object body. Malformed JSON is a 400 `malformed_json`; a missing field or a wrong type,
/// or an array for the object, is a 400 `validation_failed` naming the field when there is one; a
/// body over the limit is a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A missing Content-Type is read as JSON (friendly to curl); a different one is refused.
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let is_json = content_type.to_str().ok().and_then(|v| v.split(';').next()).is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
            if !is_json {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::MalformedJson(rejection.body_text())
            }
        })?;
        // serde reads a struct from a JSON array too (its fields in order); every body of this
        // API is an object, as the OpenAPI document says.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::Validation { field: None, message: "the body must be a JSON object".into() });
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// The body limit in force, recorded so the 413 message can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Parses a JSON document into `T`, mapping serde's errors onto [`ApiError`].
///
/// # Errors
/// `malformed_json` for syntax errors, `validation_failed` (with the field) for data errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { missing_field(&message) } else { Some(path) };
                ApiError::Validation { field, message }
            }
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    deserializer.end().map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 20"; the field name says more to a client.
fn strip_position(message: &str) -> String {
    message.split(" at line ").next().unwrap_or(message).to_owned()
}

/// The field named in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// Path parameters. A segment that does not parse (`/api/orders/abc`) is a 400
/// `invalid_parameter` naming the parameter, not axum's plain-text error.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
                    | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    _ => "path".to_owned(),
                };
                Err(ApiError::invalid_parameter(field, e.body_text()))
            }
            Err(other) => Err(ApiError::Internal(anyhow::anyhow!("path extraction failed: {other}"))),
        }
    }
}

/// Query parameters. An unparsable value is a 400 `invalid_parameter` naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = if path == "." { missing_field(&message).unwrap_or_else(|| "query".into()) } else { path };
            ApiError::invalid_parameter(field, message)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[expect(dead_code, reason = "the fields are only deserialised")]
    struct Body {
        user_id: i64,
        quantity: i64,
    }

    fn field_of(result: Result<Body, ApiError>) -> Option<String> {
        match result {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        assert_eq!(field_of(parse_json(br#"{"userId": "one", "quantity": 1}"#)).as_deref(), Some("userId"));
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(field_of(parse_json(br#"{"userId": 1}"#)).as_deref(), Some("quantity"));
    }

    #[test]
    fn broken_json_is_malformed_not_invalid() {
        assert!(matches!(parse_json::<Body>(br#"{"userId": 1,"#), Err(ApiError::MalformedJson(_))));
        assert!(matches!(
            parse_json::<Body>(br#"{"userId":1,"quantity":1} trailing"#),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
