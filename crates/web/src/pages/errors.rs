//! Error pages: what went wrong, in words, with the way back.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::layout::Page;
use crate::pages::{enc, see_other};
use crate::session::Session;

/// 404 as a page.
pub fn not_found_page(session: Option<&Session>) -> Response {
    let anon = Session::default();
    error_page(
        session.unwrap_or(&anon),
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing here. The event may have been removed, or the link is mistyped.",
    )
}

/// Any error as a page with a status, a heading and an explanation.
pub fn error_page(session: &Session, status: StatusCode, title: &str, message: &str) -> Response {
    Page::new(title, session).status(status).render(html! {
        h1 { (title) }
        div.notice.error role="alert" { p { (message) } }
        p { a href="/" { "Back to the events" } }
    })
}

pub async fn method_not_allowed() -> Response {
    error_page(
        &Session::default(),
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "This page cannot be used that way.",
    )
}

/// Pages that need a signed-in person send others to sign in first, and back afterwards.
pub fn sign_in_first(next: &str) -> Response {
    see_other(&format!("/signin?next={}", enc(next)))
}

/// A form post whose CSRF token or origin does not check out.
pub fn forbidden_form(session: &Session) -> Response {
    error_page(
        session,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not sent from this site, or your session changed. Go back, reload the page and try again.",
    )
}

/// A malformed form.
pub fn bad_form(session: &Session, message: &str) -> Response {
    error_page(
        session,
        StatusCode::BAD_REQUEST,
        "Something is missing",
        message,
    )
}
