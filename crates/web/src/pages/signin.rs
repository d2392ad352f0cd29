//! Signing in and out.
//!
//! In embedded mode on a loopback address (and with no identity provider), "sign in as"
//! mints a demo token for a name and role, exactly as `boxoffice token` does. Anywhere else
//! the page takes a bearer token from the identity provider (or from `boxoffice token`, for
//! nodes that accept the shared secret): it is verified like any API request's before it is
//! kept.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_api::auth::Role;
use boxoffice_domain::ids::CustomerId;
use maud::html;
use serde::Deserialize;

use crate::Site;
use crate::layout::{Notice, Page, notice};
use crate::pages::{Fields, errors, see_other};
use crate::session::{self, Session};

/// Demo tokens last a working day.
const DEMO_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

pub async fn page(
    State(site): State<Site>,
    session: Session,
    q: Result<Query<SignInQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return errors::bad_form(&session, "That address is malformed.");
    };
    render(&site, &session, q.next.as_deref(), None, StatusCode::OK)
}

fn render(
    site: &Site,
    session: &Session,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let next = session::safe_next(next);
    Page::new("Sign in", session).status(status).render(html! {
        h1 { "Sign in" }
        @if let Some(e) = error { (notice(Notice::Error, e)) }
        @if let Some(who) = &session.who {
            (notice(Notice::Info, &format!("You are signed in as {}.", who.sub.as_str())))
        }
        @if site.config.demo_signin() {
            section.card aria-labelledby="demo-h" {
                h2 #demo-h { "Sign in as anyone (demo)" }
                p {
                    "This node runs on the embedded store on a loopback address, so you can try the shop "
                    "as any customer or organizer. No password: this is for trying things out."
                }
                form method="post" action="/signin" {
                    input type="hidden" name="mode" value="demo";
                    input type="hidden" name="next" value=(next);
                    p {
                        label for="signin-name" { "Name" }
                        input #signin-name type="text" name="name" required autocomplete="username"
                            maxlength="64" pattern="[A-Za-z0-9._@-]+"
                            aria-describedby="signin-name-hint";
                        span.hint #signin-name-hint { "Letters, digits, dots, dashes, @ or underscores." }
                    }
                    p {
                        label for="signin-role" { "Role" }
                        select #signin-role name="role" aria-describedby="signin-role-hint" {
                            option value="customer" selected { "Customer" }
                            option value="organizer" { "Organizer" }
                        }
                        span.hint #signin-role-hint { "Organizers can also buy tickets." }
                    }
                    button type="submit" { "Sign in" }
                }
            }
        } @else {
            section.card aria-labelledby="token-h" {
                h2 #token-h { "Sign in with your access token" }
                @if site.config.identity_provider {
                    p { "Paste the bearer token your identity provider issued to you." }
                } @else {
                    p { "Paste a bearer token for this service (an operator can print one with " code { "boxoffice token" } ")." }
                }
                form method="post" action="/signin" {
                    input type="hidden" name="mode" value="token";
                    input type="hidden" name="next" value=(next);
                    p {
                        label for="signin-token" { "Access token" }
                        textarea #signin-token name="token" rows="4" required autocomplete="off" spellcheck="false" {}
                    }
                    button type="submit" { "Sign in" }
                }
            }
        }
    })
}

pub async fn submit(
    State(site): State<Site>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = Fields::parse(&body) else {
        return errors::bad_form(&session, "The sign-in form could not be read.");
    };
    if !session::same_origin(&headers) {
        return errors::forbidden_form(&session);
    }
    let next = fields.get("next");
    match fields.get("mode") {
        Some("demo") => demo(&site, &session, &fields, next),
        Some("token") => token(&site, &session, &fields, next).await,
        _ => errors::bad_form(&session, "Choose how to sign in."),
    }
}

fn demo(site: &Site, session: &Session, fields: &Fields, next: Option<&str>) -> Response {
    let Some(secret) = &site.config.demo_secret else {
        return errors::error_page(
            session,
            StatusCode::FORBIDDEN,
            "Demo sign-in is off",
            "This node does not offer demo sign-in: it listens beyond loopback, runs on PostgreSQL, or uses an identity provider. Sign in with an access token instead.",
        );
    };
    let name = fields.get("name").unwrap_or("");
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        && CustomerId::parse(name).is_ok();
    if !valid {
        return render(
            site,
            session,
            next,
            Some("Enter a name of letters, digits, dots, dashes, @ or underscores (at most 64)."),
            StatusCode::BAD_REQUEST,
        );
    }
    let roles = match fields.get("role") {
        Some("customer") | None => vec![Role::Customer],
        Some("organizer") => vec![Role::Customer, Role::Organizer],
        Some(_) => {
            return render(
                site,
                session,
                next,
                Some("Choose a role: customer or organizer."),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    match boxoffice_api::auth::mint_hs256(secret, name, &roles, DEMO_TTL) {
        Ok(token) => {
            tracing::info!(customer = name, "demo sign-in");
            signed_in(site, &token, DEMO_TTL.as_secs() as i64, next)
        }
        Err(_) => errors::error_page(
            session,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not sign you in",
            "The token could not be made. Try again.",
        ),
    }
}

async fn token(site: &Site, session: &Session, fields: &Fields, next: Option<&str>) -> Response {
    let raw: String = fields
        .get("token")
        .unwrap_or("")
        .trim()
        .trim_start_matches("Bearer ")
        .trim()
        .to_owned();
    if raw.is_empty() || raw.len() > 8192 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return render(
            site,
            session,
            next,
            Some("Paste the whole access token."),
            StatusCode::BAD_REQUEST,
        );
    }
    match site.state.auth.verify(&raw).await {
        Ok(who) => {
            tracing::info!(customer = who.sub.as_str(), "signed in with a bearer token");
            // The cookie lives as long as the token; the exact expiry is the token's own
            // business (an expired token verifies no more, and counts as signed out).
            signed_in(site, &raw, 24 * 3600, next)
        }
        Err(e) => render(
            site,
            session,
            next,
            Some(&format!("That token was not accepted ({e}).")),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

fn signed_in(site: &Site, token: &str, max_age: i64, next: Option<&str>) -> Response {
    let mut res = see_other(&session::safe_next(next));
    res.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie(site, token, max_age),
    );
    res
}

pub async fn signout(
    State(site): State<Site>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body).unwrap_or_default();
    if session.token.is_some() && !crate::pages::form_ok(&session, &headers, &fields) {
        return errors::forbidden_form(&session);
    }
    let mut res = see_other("/");
    res.headers_mut()
        .append(header::SET_COOKIE, session::clear_session_cookie(&site));
    res.into_response()
}
