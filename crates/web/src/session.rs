//! Who is signed in, and how the browser holds their token.
//!
//! The bearer token lives in one cookie, `bo_session`: `HttpOnly` (page scripts never see
//! it), `SameSite=Strict` (no other site's page can make the browser send it), `Secure` when
//! the node is reachable beyond loopback. Pages read it on the server; form posts are also
//! checked for a CSRF token derived from it and for a same-origin `Origin`. Page scripts only
//! ever *read* the JSON API with it ([`bearer_from_cookie`]: `GET` for QR images and the SSE
//! streams, which browsers cannot send headers with); every change goes through a form post.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use boxoffice_api::auth::Principal;
use sha2::{Digest, Sha256};

use crate::Site;

pub const SESSION_COOKIE: &str = "bo_session";
/// Admission tokens from a waiting room, one cookie per event.
pub const ADMISSION_COOKIE_PREFIX: &str = "bo_adm_";

/// The signed-in person, if any, with the token that proved it.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub token: Option<String>,
    pub who: Option<Principal>,
    /// The request's cookies, for the admission tokens.
    cookies: Vec<(String, String)>,
}

impl Session {
    /// The signed-in person's token and identity, when signed in.
    pub fn signed_in(&self) -> Option<(&str, &Principal)> {
        Some((self.token.as_deref()?, self.who.as_ref()?))
    }

    /// The CSRF token forms carry: a digest of the session token, so it is worthless
    /// without the (HttpOnly) cookie and changes with every sign-in.
    pub fn csrf(&self) -> String {
        csrf_for(self.token.as_deref().unwrap_or(""))
    }

    /// Whether a submitted CSRF token belongs to this session.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        self.token.is_some() && constant_time_eq(submitted.as_bytes(), self.csrf().as_bytes())
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_organizer(&self) -> bool {
        self.who.as_ref().is_some_and(|w| {
            w.has(boxoffice_api::auth::Role::Organizer) || w.has(boxoffice_api::auth::Role::Admin)
        })
    }
}

fn csrf_for(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"boxoffice-csrf\0")
        .chain_update(token.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `name=value` pairs of the `Cookie` headers.
pub fn parse_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

impl FromRequestParts<Site> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, site: &Site) -> Result<Self, Self::Rejection> {
        let cookies = parse_cookies(&parts.headers);
        let token = cookies
            .iter()
            .find(|(k, _)| k == SESSION_COOKIE)
            .map(|(_, v)| v.clone())
            .filter(|t| !t.is_empty());
        let who = match &token {
            Some(t) => site.state.auth.verify(t).await.ok(),
            None => None,
        };
        // A cookie whose token no longer verifies (expired, another secret) counts as none.
        let token = token.filter(|_| who.is_some());
        Ok(Session {
            token,
            who,
            cookies,
        })
    }
}

/// `Set-Cookie` for a session holding `token`, kept `max_age_secs`.
pub fn session_cookie(site: &Site, token: &str, max_age_secs: i64) -> HeaderValue {
    cookie(site, SESSION_COOKIE, token, max_age_secs)
}

/// `Set-Cookie` that ends the session.
pub fn clear_session_cookie(site: &Site) -> HeaderValue {
    cookie(site, SESSION_COOKIE, "", 0)
}

/// An HttpOnly, SameSite=Strict cookie for the whole site.
pub fn cookie(site: &Site, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if site.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let v = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age_secs.max(0)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("bo_invalid=1"))
}

/// Whether a form post comes from one of our own pages: browsers send `Origin` with every
/// POST, and it must name this host. (Non-browser clients without `Origin` cannot be tricked
/// into posting, so they pass.)
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get(header::REFERER).and_then(|v| v.to_str().ok()));
    match (origin, host) {
        (None, _) => true,
        (Some("null"), _) => false,
        (Some(o), Some(host)) => {
            let rest = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .unwrap_or("");
            let authority = rest.split('/').next().unwrap_or("");
            authority.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => false,
    }
}

/// Lets page scripts *read* the JSON API as the signed-in person: a `GET` under `/v1/`
/// without an `Authorization` header gets the session cookie's token as its bearer token
/// (QR images, the booking and queue streams — an `<img>` or `EventSource` cannot send
/// headers). Requests that change anything never do: they need a real `Authorization`
/// header, or go through a page's form (with its CSRF token).
pub async fn bearer_from_cookie(mut req: Request, next: Next) -> Response {
    let eligible = matches!(*req.method(), Method::GET | Method::HEAD)
        && req.uri().path().starts_with("/v1/")
        && !req.headers().contains_key(header::AUTHORIZATION);
    if eligible
        && let Some((_, token)) = parse_cookies(req.headers())
            .into_iter()
            .find(|(k, v)| k == SESSION_COOKIE && !v.is_empty())
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    next.run(req).await
}

/// A local path to return to after signing in: only paths on this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_stay_on_site() {
        assert_eq!(safe_next(Some("/tickets")), "/tickets");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn csrf_tokens_depend_on_the_session() {
        let a = Session {
            token: Some("a".into()),
            ..Session::default()
        };
        let b = Session {
            token: Some("b".into()),
            ..Session::default()
        };
        assert!(a.csrf_ok(&a.csrf()));
        assert!(!a.csrf_ok(&b.csrf()));
        assert!(!Session::default().csrf_ok(&Session::default().csrf()));
    }
}
