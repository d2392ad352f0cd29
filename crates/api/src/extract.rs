//! Extractors whose rejections are problem documents, so that no malformed request is ever
//! answered with axum's plain-text defaults.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Problem};

/// A JSON body. Bodies must be `application/json`, within the size limit, and hold exactly the
/// fields the request type knows (request types deny unknown fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let problem = match &r {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
                .detail("send the body as application/json")
        }
        JsonRejection::JsonSyntaxError(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The request body is not valid JSON",
        )
        .detail(clean(r.body_text())),
        JsonRejection::JsonDataError(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "The request body does not have the expected shape",
        )
        .detail(clean(r.body_text())),
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        _ => Problem::from_status(StatusCode::BAD_REQUEST)
            .detail("the request body could not be read"),
    };
    ApiError::problem(problem)
}

/// axum's messages lead with a generic prefix; keep the part that says what is wrong.
fn clean(text: String) -> String {
    let t = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .unwrap_or(&text);
    boxoffice_domain::ids::truncate(t, 300)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters, rejected as a problem naming what failed to parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    let text = r.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::problem(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "A query parameter is invalid",
        )
        .detail(boxoffice_domain::ids::truncate(detail, 300)),
    )
}
