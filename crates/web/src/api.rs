//! In-process calls to the JSON API: a form post becomes the very request a script or `curl`
//! would send (same route, same token, same idempotency key), answered by the same router
//! without a network hop. The storefront never re-implements what a route decides.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

/// The largest API answer the pages read (a stadium's seat map is read from the store
/// directly, not through here).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The JSON API router, called in-process.
#[derive(Clone)]
pub struct Api {
    router: Router,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api")
    }
}

/// An API answer: its status and JSON body (a problem document for errors).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's stable `code`, if the answer is a problem document.
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    /// What to tell a person: the problem's title, and its detail when there is one.
    pub fn message(&self) -> String {
        let title = self
            .body
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("Something went wrong");
        match self.body.get("detail").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{title}: {d}"),
            _ => title.to_owned(),
        }
    }

    /// The body as one of the API's response types.
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.body.clone()).ok()
    }
}

impl Api {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Sends one request. `token` is the caller's bearer token; `headers` extra headers
    /// (`Idempotency-Key`, `Admission-Token`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&'static str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
        {
            req = req.header(header::AUTHORIZATION, v);
        }
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                req = req.header(HeaderName::from_static(name), v);
            }
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(b).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let Ok(req) = req.body(body) else {
            return internal();
        };
        let Ok(res) = self.router.clone().oneshot(req).await;
        let status = res.status();
        let bytes = match axum::body::to_bytes(res.into_body(), MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return internal(),
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer { status, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, &[], None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.call(Method::POST, path, token, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, token, &[], None).await
    }
}

fn internal() -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({"title": "Something went wrong", "code": "internal"}),
    }
}
