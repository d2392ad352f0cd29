//! Holding and paying: `/checkout/{bookingId}` shows the held seats, a countdown driven by
//! the server's `expiresAt`, the payment method and the Pay button; `/bookings/{bookingId}`
//! shows the outcome (tickets with their QR codes, or a payment still settling, followed live
//! through `GET /v1/booking/{id}/events`).
//!
//! Paying is `POST /v1/commit` with an `Idempotency-Key` the page generated once for this
//! checkout: submitting twice (a double click, a reload, a retry after a lost answer) sends the
//! same key and the same body, which the API answers with the first outcome — never a second
//! charge. Only after a decline does the page offer a new key, as a new attempt.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use boxoffice_api::booking::BookingResponse;
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::Site;
use crate::format::{money, rfc3339, seat_label, when};
use crate::layout::{Notice, Page, notice};
use crate::pages::{Fields, errors, form_ok, see_other};
use crate::session::Session;

/// The sandbox's test cards, as people would pick them.
pub const TEST_CARDS: &[(&str, &str)] = &[
    ("pm_card_visa", "Visa •••• 4242 (test card, succeeds)"),
    (
        "pm_card_mastercard",
        "Mastercard •••• 4444 (test card, succeeds)",
    ),
    (
        "pm_card_chargeDeclined",
        "Visa •••• 0002 (test card, declined)",
    ),
    (
        "pm_card_insufficientFunds",
        "Visa •••• 9995 (test card, insufficient funds)",
    ),
    (
        "pm_card_timeout",
        "Visa •••• 0119 (test card, the bank does not answer)",
    ),
];

/// The booking as its owner may see it, through `GET /v1/booking/{id}`.
async fn booking(
    site: &Site,
    token: &str,
    raw: &str,
) -> Result<BookingResponse, (StatusCode, String)> {
    if raw.parse::<boxoffice_domain::ids::BookingId>().is_err() {
        return Err((StatusCode::NOT_FOUND, "No such booking.".into()));
    }
    let a = site
        .api
        .get(&format!("/v1/booking/{raw}"), Some(token))
        .await;
    if a.is_success() {
        a.parse::<BookingResponse>().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "The booking could not be read.".into(),
        ))
    } else {
        Err((a.status, a.message()))
    }
}

fn booking_error(session: &Session, (status, message): (StatusCode, String)) -> Response {
    if status == StatusCode::NOT_FOUND {
        return errors::not_found_page(Some(session));
    }
    errors::error_page(session, status, "Could not show this booking", &message)
}

#[derive(Debug, serde::Deserialize)]
pub struct CheckoutQuery {
    /// Set when a queued payment was declined (the booking stream said so).
    declined: Option<String>,
}

pub async fn page(
    State(site): State<Site>,
    session: Session,
    Path(booking_id): Path<String>,
    q: Result<Query<CheckoutQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return errors::bad_form(&session, "That address is malformed.");
    };
    let here = format!("/checkout/{booking_id}");
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&here);
    };
    let message = q.declined.map(|_| {
        (
            Notice::Error,
            "Payment declined. You were not charged and your seats are still held: choose another payment method and press Pay.".to_owned(),
        )
    });
    match booking(&site, token, &booking_id).await {
        Ok(b) => checkout(&site, &session, &b, message, StatusCode::OK).await,
        Err(e) => booking_error(&session, e),
    }
}

/// The checkout for a booking in whatever state it is: a HOLD gets the payment form; a
/// paid, settling or lapsed booking gets the page that says so.
async fn checkout(
    site: &Site,
    session: &Session,
    b: &BookingResponse,
    message: Option<(Notice, String)>,
    status: StatusCode,
) -> Response {
    match b.status.as_str() {
        "HOLD" => {}
        "CONFIRMED" | "PENDING" => return see_other(&format!("/bookings/{}", b.booking_id)),
        _ => return expired(site, session, b, StatusCode::GONE).await,
    }
    let event_name = event_name(site, b).await;
    let now = site.state.clock.now();
    let sandbox = site.state.booking.payments.name() == "sandbox";
    let key = uuid::Uuid::new_v4().to_string();
    let mut res = Page::new("Checkout", session)
        .status(status)
        .scripts(&["countdown.js"])
        .render(html! {
            h1 { "Checkout" }
            p.lead { (event_name) }
            @if let Some((kind, text)) = &message { (notice(*kind, text)) }
            div.checkout-grid {
                section.card aria-labelledby="held-h" {
                    h2 #held-h { "Your seats" }
                    div.countdown-box {
                        p #countdown-label { "Your seats are held for" }
                        p #countdown.countdown role="timer" aria-labelledby="countdown-label"
                            data-expires-at=(rfc3339(b.expires_at)) data-server-now=(rfc3339(now)) {
                            (remaining(b.expires_at - now))
                        }
                        p #countdown-warning.warning role="status" aria-live="polite" {}
                    }
                    (seat_list(b))
                    p.total { "Total " strong { (money(b.total_cents, &b.currency)) } }
                }
                section.card aria-labelledby="pay-h" {
                    h2 #pay-h { "Payment" }
                    form #pay-form method="post" action={ "/checkout/" (b.booking_id) "/pay" } {
                        input type="hidden" name="csrf" value=(session.csrf());
                        input type="hidden" name="idempotencyKey" value=(key);
                        p {
                            label for="payment-method" { "Payment method" }
                            @if sandbox {
                                select #payment-method name="paymentMethod" aria-describedby="pm-hint" {
                                    @for (value, label) in TEST_CARDS {
                                        option value=(value) { (label) }
                                    }
                                }
                                span.hint #pm-hint { "This shop runs on the payment sandbox: these test cards behave like Stripe's." }
                            } @else {
                                input #payment-method type="text" name="paymentMethod" required
                                    autocomplete="off" placeholder="pm_…" aria-describedby="pm-hint";
                                span.hint #pm-hint { "A payment method id from the payment provider." }
                            }
                        }
                        p.actions {
                            button #pay-button.primary type="submit" { "Pay" }
                        }
                        p.hint { "You are charged " (money(b.total_cents, &b.currency)) " once, however often you press Pay." }
                    }
                    p { a #choose-again hidden href={ "/events/" (b.event_id) } { "Choose seats again" } }
                    form method="post" action={ "/checkout/" (b.booking_id) "/release" } {
                        input type="hidden" name="csrf" value=(session.csrf());
                        button.link type="submit" { "Release these seats" }
                    }
                }
            }
        });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn event_name(site: &Site, b: &BookingResponse) -> String {
    match site.state.event(b.event_id).await {
        Ok(Some(e)) => format!("{} — {}", e.spec.name, when(e.spec.starts_at)),
        _ => String::new(),
    }
}

/// `4:59`.
fn remaining(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    format!("{}:{:02}", secs / 60, secs % 60)
}

fn seat_list(b: &BookingResponse) -> Markup {
    html! {
        ul.seat-list {
            @for s in &b.seats {
                li {
                    (seat_label(&s.section, s.row.as_deref(), s.number))
                    " — " (money(s.price_cents, &b.currency))
                }
            }
        }
    }
}

/// The hold ran out (or was released): 410, with the way back to the event.
async fn expired(
    site: &Site,
    session: &Session,
    b: &BookingResponse,
    status: StatusCode,
) -> Response {
    let event_name = event_name(site, b).await;
    let cancelled = b.status == "CANCELLED";
    Page::new("Hold expired", session).status(status).render(html! {
        h1 { @if cancelled { "Booking cancelled" } @else { "Your hold has expired" } }
        div.notice.error role="alert" {
            p {
                @if cancelled {
                    "This booking was cancelled and its seats released."
                } @else {
                    "The time to pay for these seats ran out, so they went back on sale. You were not charged."
                }
            }
        }
        p { (event_name) }
        p { a.button href={ "/events/" (b.event_id) } { "Choose seats again" } }
    })
}

/// `POST /checkout/{id}/pay`: `POST /v1/commit` with the checkout's idempotency key.
pub async fn pay(
    State(site): State<Site>,
    session: Session,
    Path(booking_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let here = format!("/checkout/{booking_id}");
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&here);
    };
    let Some(fields) = Fields::parse(&body) else {
        return errors::bad_form(&session, "The payment form could not be read.");
    };
    if !form_ok(&session, &headers, &fields) {
        return errors::forbidden_form(&session);
    }
    let (Some(key), Some(method)) = (fields.get("idempotencyKey"), fields.get("paymentMethod"))
    else {
        return errors::bad_form(&session, "Choose a payment method and press Pay again.");
    };
    let answer = site
        .api
        .call(
            Method::POST,
            "/v1/commit",
            Some(token),
            &[("idempotency-key", key)],
            Some(&json!({"bookingId": booking_id, "paymentMethod": method})),
        )
        .await;
    match (answer.status, answer.code()) {
        (StatusCode::OK, _) => see_other(&format!("/bookings/{booking_id}")),
        // Queued (on-sale) or the provider's answer is late: follow it live.
        (StatusCode::ACCEPTED, _) => see_other(&format!("/bookings/{booking_id}?paying=1")),
        // This very payment is being processed (a second click): its outcome is on the
        // booking's page.
        (
            StatusCode::CONFLICT,
            "request-in-progress" | "payment-in-progress" | "already-confirmed",
        ) => see_other(&format!("/bookings/{booking_id}?paying=1")),
        (StatusCode::UNAUTHORIZED, _) => errors::sign_in_first(&here),
        (StatusCode::NOT_FOUND, _) => errors::not_found_page(Some(&session)),
        (StatusCode::GONE, _) => match booking(&site, token, &booking_id).await {
            Ok(b) => expired(&site, &session, &b, StatusCode::GONE).await,
            Err(e) => booking_error(&session, e),
        },
        (status, code) => {
            let text = match (status, code) {
                (StatusCode::PAYMENT_REQUIRED, _) => format!(
                    "Payment declined — {}. You were not charged and your seats are still held: choose another payment method and press Pay.",
                    answer
                        .body
                        .get("detail")
                        .and_then(Value::as_str)
                        .unwrap_or("the card was declined")
                ),
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused") => {
                    "That payment attempt was already used with another payment method. Press Pay again to start a new attempt.".to_owned()
                }
                _ => answer.message(),
            };
            let status = if status.is_client_error() {
                status
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            match booking(&site, token, &booking_id).await {
                Ok(b) => checkout(&site, &session, &b, Some((Notice::Error, text)), status).await,
                Err(e) => booking_error(&session, e),
            }
        }
    }
}

/// `POST /checkout/{id}/release`: `DELETE /v1/booking/{id}` for a hold, back to the event.
pub async fn release(
    State(site): State<Site>,
    session: Session,
    Path(booking_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&format!("/checkout/{booking_id}"));
    };
    let fields = Fields::parse(&body).unwrap_or_default();
    if !form_ok(&session, &headers, &fields) {
        return errors::forbidden_form(&session);
    }
    let b = match booking(&site, token, &booking_id).await {
        Ok(b) => b,
        Err(e) => return booking_error(&session, e),
    };
    if b.status != "HOLD" {
        return see_other(&format!("/bookings/{booking_id}"));
    }
    let a = site
        .api
        .delete(&format!("/v1/booking/{booking_id}"), Some(token))
        .await;
    if a.is_success() {
        see_other(&format!("/events/{}", b.event_id))
    } else {
        checkout(
            &site,
            &session,
            &b,
            Some((Notice::Error, a.message())),
            a.status,
        )
        .await
    }
}

/// `/bookings/{id}`: the outcome of a checkout. CONFIRMED shows the tickets; PENDING shows a
/// live status (the booking's SSE stream; without scripts the page reloads itself).
#[derive(Debug, serde::Deserialize)]
pub struct BookingQuery {
    /// Set when the page follows a payment that was in flight.
    paying: Option<String>,
}

pub async fn booking_page(
    State(site): State<Site>,
    session: Session,
    Path(booking_id): Path<String>,
    q: Result<Query<BookingQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return errors::bad_form(&session, "That address is malformed.");
    };
    let here = format!("/bookings/{booking_id}");
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&here);
    };
    let b = match booking(&site, token, &booking_id).await {
        Ok(b) => b,
        Err(e) => return booking_error(&session, e),
    };
    let event_name = event_name(&site, &b).await;
    let mut page = Page::new("Your booking", &session);
    if b.status == "PENDING" {
        page = page.scripts(&["stream.js"]).refresh_without_js(3);
    }
    if b.status == "HOLD" {
        // Back on hold after a payment was in flight: that payment was declined.
        return if q.paying.is_some() {
            see_other(&format!("/checkout/{booking_id}?declined=1"))
        } else {
            see_other(&format!("/checkout/{booking_id}"))
        };
    }
    let mut res = page.render(html! {
        @match b.status.as_str() {
            "CONFIRMED" => {
                h1 { "You're going!" }
                (notice(Notice::Success, &format!("Payment received: {}. Your tickets are below and in My tickets.", money(b.total_cents, &b.currency))))
                p.lead { (event_name) }
                (seat_list(&b))
                h2 { "Your tickets" }
                ul.tickets {
                    @for t in &b.tickets {
                        li.ticket-card {
                            (crate::pages::tickets::qr_image(&t.ticket_id.to_string()))
                            p { (seat_of(&b, &t.seat_id)) }
                            p { a href={ "/tickets/" (t.ticket_id) } { "Show at the door" } }
                        }
                    }
                }
                p { a.button href="/tickets" { "Go to My tickets" } }
            }
            "PENDING" => {
                h1 { "Confirming your payment" }
                p.lead { (event_name) }
                div #booking-status.card data-stream={ "/v1/booking/" (b.booking_id) "/events" }
                    data-done={ "/bookings/" (b.booking_id) "?paying=1" } data-checkout={ "/checkout/" (b.booking_id) } {
                    p #booking-status-text role="status" aria-live="polite" {
                        "Your payment is being processed. This page updates by itself — you will not be charged twice."
                    }
                }
                (seat_list(&b))
            }
            _ => {
                h1 { "Booking " (b.status.to_lowercase()) }
                div.notice.error role="alert" {
                    p {
                        @match b.status_reason.as_deref() {
                            Some("event-cancelled") => "The event was cancelled; your payment is refunded.",
                            Some("payment-refunded") => "The payment was refunded; the tickets are void.",
                            Some("payment-disputed") => "The payment was disputed; the tickets are void.",
                            Some("payment-capture-failed") => "The payment could not be completed; the tickets are void.",
                            _ => "This booking is no longer active. If you paid, the money goes back to you.",
                        }
                    }
                }
                p { a.button href={ "/events/" (b.event_id) } { "Back to the event" } }
            }
        }
    });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn seat_of(b: &BookingResponse, seat_id: &str) -> String {
    b.seats
        .iter()
        .find(|s| s.seat_id == seat_id)
        .map(|s| seat_label(&s.section, s.row.as_deref(), s.number))
        .unwrap_or_else(|| seat_id.to_owned())
}
