//! The waiting room of a queued on-sale: joining is `POST /v1/events/{id}/queue`; the page
//! follows `GET /v1/queue/{queueId}/events` (SSE) when scripts run, and reloads itself
//! otherwise. Once admitted, the admission token is kept in an HttpOnly cookie for that event
//! and sent as `Admission-Token` with the hold — page scripts never handle it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::html;
use serde_json::{Value, json};

use crate::Site;
use crate::format::when;
use crate::layout::{Notice, Page, notice};
use crate::pages::event::{admission_cookie_name, load};
use crate::pages::{Fields, errors, form_ok, see_other};
use crate::session::{Session, cookie};

/// How long the admission cookie is kept at most; the API decides whether the token is
/// still good.
const ADMISSION_COOKIE_SECS: i64 = 3600;

pub async fn join(
    State(site): State<Site>,
    session: Session,
    Path(event_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let back = format!("/events/{event_id}");
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&back);
    };
    let fields = Fields::parse(&body).unwrap_or_default();
    if !form_ok(&session, &headers, &fields) {
        return errors::forbidden_form(&session);
    }
    let event = match load(&site, &session, &event_id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let a = site
        .api
        .post(
            &format!("/v1/events/{}/queue", event.id),
            Some(token),
            &json!({}),
        )
        .await;
    if a.is_success()
        && let Some(q) = a.body.get("queueId").and_then(Value::as_str)
    {
        return see_other(&format!("/events/{}/queue/{q}", event.id));
    }
    if a.status == StatusCode::UNAUTHORIZED {
        return errors::sign_in_first(&back);
    }
    let status = if a.status.is_client_error() {
        a.status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    crate::pages::event::render(
        &site,
        &session,
        &event_id,
        Some((
            Notice::Error,
            format!("Could not join the queue: {}", a.message()),
        )),
        status,
    )
    .await
}

/// `/events/{eventId}/queue/{queueId}`: where you are in the queue; once admitted, the
/// admission is kept and you go on to choose seats.
pub async fn page(
    State(site): State<Site>,
    session: Session,
    Path((event_id, queue_id)): Path<(String, String)>,
) -> Response {
    let here = format!("/events/{event_id}/queue/{queue_id}");
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&here);
    };
    let event = match load(&site, &session, &event_id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let safe_queue: String = queue_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if safe_queue != queue_id || safe_queue.is_empty() {
        return errors::not_found_page(Some(&session));
    }
    let a = site
        .api
        .get(&format!("/v1/queue/{safe_queue}"), Some(token))
        .await;
    if a.status == StatusCode::NOT_FOUND {
        return errors::not_found_page(Some(&session));
    }
    if !a.is_success() {
        return errors::error_page(
            &session,
            if a.status.is_client_error() {
                a.status
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            "Could not read your place in the queue",
            &a.message(),
        );
    }
    let status = a.body.get("status").and_then(Value::as_str).unwrap_or("");
    if status == "ADMITTED"
        && let Some(t) = a.body.get("admissionToken").and_then(Value::as_str)
    {
        // Kept as long as the admission lasts (the API checks it anyway).
        let secs = a
            .body
            .get("admissionExpiresAt")
            .and_then(Value::as_str)
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| (t - site.state.clock.now()).whole_seconds())
            .filter(|s| *s > 0)
            .unwrap_or(ADMISSION_COOKIE_SECS);
        let mut res = see_other(&format!("/events/{}", event.id));
        res.headers_mut().append(
            header::SET_COOKIE,
            cookie(&site, &admission_cookie_name(event.id), t, secs),
        );
        return res;
    }
    if status == "SOLD_OUT" || status == "EXPIRED" {
        let sold_out = status == "SOLD_OUT";
        return Page::new("Waiting room", &session).render(html! {
            h1 { "Waiting room" }
            p.lead { (event.spec.name) " — " (when(event.spec.starts_at)) }
            @if sold_out {
                (notice(Notice::Error, "Sold out: there is nothing left to wait for. Resale tickets may still appear on the event page."))
                p { a.button href={ "/events/" (event.id) } { "Back to the event" } }
            } @else {
                (notice(Notice::Error, "Your turn to choose seats ran out. You can join the queue again, at the back."))
                form method="post" action={ "/events/" (event.id) "/queue" } {
                    input type="hidden" name="csrf" value=(session.csrf());
                    button type="submit" { "Join the queue" }
                }
            }
        });
    }
    let position = a.body.get("position").and_then(Value::as_u64);
    let wait = a.body.get("estimatedWaitSeconds").and_then(Value::as_u64);
    let mut res = Page::new("Waiting room", &session)
        .scripts(&["stream.js"])
        .refresh_without_js(5)
        .render(html! {
            h1 { "Waiting room" }
            p.lead { (event.spec.name) " — " (when(event.spec.starts_at)) }
            div #queue-status.card data-stream={ "/v1/queue/" (safe_queue) "/events" } data-done=(here) {
                p #queue-position.position role="status" aria-live="polite" {
                    @match (status, position) {
                        ("WAITING", Some(p)) => { "You are number " strong { (p) } " in the queue." }
                        ("WAITING", None) => { "You are in the queue." }
                        _ => { "Your place in the queue: " (status.to_lowercase()) }
                    }
                }
                p #queue-wait {
                    @if let Some(w) = wait {
                        "Estimated wait: " (wait_text(w)) "."
                    }
                }
                (notice(Notice::Info, "Keep this page open: it moves on by itself when it is your turn, and then you can choose your seats."))
            }
        });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn wait_text(secs: u64) -> String {
    match secs {
        0..=59 => "less than a minute".to_owned(),
        60..=119 => "about a minute".to_owned(),
        s => format!("about {} minutes", s.div_ceil(60)),
    }
}
