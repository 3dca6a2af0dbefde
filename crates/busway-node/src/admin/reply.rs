//! The answers of the admin API, in the contract's shapes: JSON values, JSON errors
//! `{"error": "…"}`, plain text, and empty 204s; and a path-parameter extractor whose
//! rejection is such an error rather than axum's plain text.

use axum::extract::{FromRequestParts, Path};
use axum::http::header::{CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` as JSON.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response {
    // Serialising the admin API's own view structs cannot fail (no maps with non-string keys,
    // no failing Serialize impls); an empty body would be the visible symptom if it did.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let json = HeaderValue::from_static("application/json");
    (status, [(CONTENT_TYPE, json)], body).into_response()
}

/// `{"error": msg}`; a 401 also names the scheme it wants (RFC 6750 section 3).
pub fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = json(status, &serde_json::json!({ "error": msg.into() }));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A refusal on its way to becoming an [`error`] answer: what a handler's `?` carries (a
/// `Response` would make every `Result` in the handlers 128 bytes wide).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl Refused {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

/// An error after which the connection is not kept: the request's body was not (or not all)
/// read, so what follows on the connection is not the start of a request.
pub fn error_closing(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = error(status, msg);
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Plain text of the given content type.
pub fn typed(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// Plain UTF-8 text.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    typed(status, "text/plain; charset=utf-8", body.into())
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Path parameters, percent-decoded by axum; a parameter that does not decode to UTF-8 is a
/// JSON 400 like every other bad request.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refused> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Params(t)),
            Err(e) => Err(Refused::new(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}
