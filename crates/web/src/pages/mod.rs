//! One module per page (or group of pages sharing their data).

pub mod checkout;
pub mod errors;
pub mod event;
pub mod organizer;
pub mod queue;
pub mod search;
pub mod signin;
pub mod tickets;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// 303 See Other to `to`: after a form post, the browser loads the result with a GET.
pub fn see_other(to: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, v);
    }
    (StatusCode::SEE_OTHER, headers).into_response()
}

/// Percent-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// A submitted form's fields, in order (a field may repeat: `seat=1-A-1&seat=1-A-2`).
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses an `application/x-www-form-urlencoded` body; `None` if it is not one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(Fields)
    }

    /// The first value of `name`, trimmed; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`, empty ones included (trimmed), so that columns of repeated
    /// fields stay aligned.
    pub fn all_raw(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// Checks a form post: same origin, and (for a signed-in person) the CSRF token.
pub fn form_ok(session: &crate::session::Session, headers: &HeaderMap, fields: &Fields) -> bool {
    crate::session::same_origin(headers) && session.csrf_ok(fields.get("csrf").unwrap_or(""))
}
