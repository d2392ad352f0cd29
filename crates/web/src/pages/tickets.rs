//! My tickets: each with its QR code (`GET /v1/tickets/{id}/qr.svg`), a full-screen view for
//! the door, and the resale and transfer actions — each a form that calls the API's own
//! route (`POST /v1/postTicket`, `DELETE /v1/listings/{id}`, `POST /v1/tickets/{id}/transfer`,
//! `POST /v1/transfers/{id}/accept`, `DELETE /v1/transfers/{id}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use boxoffice_api::booking::TicketResponse;
use boxoffice_api::routes::booking::TicketsResponse;
use boxoffice_api::routes::resale::ListingsResponse;
use boxoffice_api::routes::tickets::TransfersResponse;
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{EventId, SeatId};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use crate::Site;
use crate::api::Answer;
use crate::format::{money, parse_money, seat_label, when};
use crate::layout::{Notice, Page, notice};
use crate::pages::{Fields, errors, form_ok, see_other};
use crate::session::Session;

/// The QR code of a ticket, named for people and tests alike.
pub fn qr_image(ticket_id: &str) -> Markup {
    html! {
        img.qr src={ "/v1/tickets/" (ticket_id) "/qr.svg" } alt={ "QR code for ticket " (ticket_id) }
            width="200" height="200";
    }
}

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "listed" => "Your ticket is listed for resale. It still gets you in until it sells.",
        "withdrawn" => "Your listing was withdrawn; the ticket is yours as before.",
        "transfer-offered" => {
            "Transfer offered. The ticket moves once the recipient accepts it; you can cancel until then."
        }
        "transfer-cancelled" => "Transfer cancelled; the ticket stays yours.",
        "accepted" => "Transfer accepted: the ticket is yours, with a new code.",
        _ => return None,
    })
}

/// Everything the page shows, read through the API as the signed-in person.
struct Mine {
    tickets: Vec<TicketResponse>,
    listings: ListingsResponse,
    transfers: TransfersResponse,
    events: HashMap<EventId, Arc<Event>>,
}

async fn read_mine(site: &Site, token: &str) -> Result<Mine, Answer> {
    let t = site.api.get("/v1/tickets", Some(token)).await;
    let tickets = t.parse::<TicketsResponse>().ok_or(t)?.tickets;
    let l = site.api.get("/v1/listings", Some(token)).await;
    let listings = l.parse::<ListingsResponse>().ok_or(l)?;
    let tr = site.api.get("/v1/transfers", Some(token)).await;
    let transfers = tr.parse::<TransfersResponse>().ok_or(tr)?;
    let mut events = HashMap::new();
    let ids = tickets
        .iter()
        .map(|t| t.event_id)
        .chain(transfers.transfers.iter().map(|t| t.event_id));
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = events.entry(id)
            && let Ok(Some(e)) = site.state.event(id).await
        {
            slot.insert(e);
        }
    }
    Ok(Mine {
        tickets,
        listings,
        transfers,
        events,
    })
}

pub async fn page(
    State(site): State<Site>,
    session: Session,
    done: Result<Query<Done>, QueryRejection>,
) -> Response {
    let Ok(Query(done)) = done else {
        return errors::bad_form(&session, "That address is malformed.");
    };
    let message = done
        .done
        .as_deref()
        .and_then(done_message)
        .map(|m| (Notice::Success, m.to_owned()));
    render(&site, &session, message, StatusCode::OK).await
}

async fn render(
    site: &Site,
    session: &Session,
    message: Option<(Notice, String)>,
    status: StatusCode,
) -> Response {
    let Some((token, who)) = session.signed_in() else {
        return errors::sign_in_first("/tickets");
    };
    let mine = match read_mine(site, token).await {
        Ok(m) => m,
        Err(a) => {
            return errors::error_page(
                session,
                StatusCode::SERVICE_UNAVAILABLE,
                "Could not show your tickets",
                &a.message(),
            );
        }
    };
    let me = who.sub.as_str();
    let fee_bps = site.state.booking.config.resale_fee_basis_points;
    let live: Vec<&TicketResponse> = mine
        .tickets
        .iter()
        .filter(|t| matches!(t.status.as_str(), "VALID" | "LISTED" | "USED"))
        .collect();
    let past: Vec<&TicketResponse> = mine
        .tickets
        .iter()
        .filter(|t| !matches!(t.status.as_str(), "VALID" | "LISTED" | "USED"))
        .collect();
    let incoming: Vec<_> = mine
        .transfers
        .transfers
        .iter()
        .filter(|t| t.status == "PENDING" && t.to_customer == me)
        .collect();
    let outgoing: HashMap<String, _> = mine
        .transfers
        .transfers
        .iter()
        .filter(|t| t.status == "PENDING" && t.from_customer == me)
        .map(|t| (t.ticket_id.to_string(), t))
        .collect();
    let open_listing: HashMap<String, _> = mine
        .listings
        .listings
        .iter()
        .filter(|l| matches!(l.status.as_str(), "ACTIVE" | "RESERVED"))
        .map(|l| (l.ticket_id.to_string(), l))
        .collect();
    let mut res = Page::new("My tickets", session).status(status).render(html! {
        h1 { "My tickets" }
        @if let Some((kind, text)) = &message { (notice(*kind, text)) }
        @if !incoming.is_empty() {
            section.card aria-labelledby="incoming-h" {
                h2 #incoming-h { "Tickets offered to you" }
                ul.plain {
                    @for t in &incoming {
                        li {
                            (event_line(mine.events.get(&t.event_id)))
                            " — from " strong { (t.from_customer) }
                            form.inline method="post" action={ "/transfers/" (t.transfer_id) "/accept" } {
                                input type="hidden" name="csrf" value=(session.csrf());
                                button type="submit" { "Accept ticket" }
                            }
                        }
                    }
                }
            }
        }
        @if live.is_empty() {
            p { "You have no tickets yet. " a href="/" { "Find an event" } "." }
        } @else {
            ul.tickets {
                @for t in &live {
                    @let event = mine.events.get(&t.event_id);
                    @let seat = seat_text(event.map(|e| e.as_ref()), &t.seat_id);
                    @let tid = t.ticket_id.to_string();
                    li.ticket-card {
                        h2 { (event_line(event)) }
                        p.seat { (seat) }
                        p { span class={ "badge " (t.status.to_lowercase()) } { (ticket_status(&t.status)) } }
                        (qr_image(&tid))
                        p { a href={ "/tickets/" (tid) } { "Show at the door" } }
                        @if let Some(l) = open_listing.get(&tid) {
                            p {
                                "Listed for " (money(l.price_cents, &l.currency))
                                " (you get " (money(l.seller_proceeds_cents, &l.currency)) " after the event)."
                            }
                            @if l.status == "ACTIVE" {
                                form method="post" action={ "/listings/" (l.listing_id) "/withdraw" } {
                                    input type="hidden" name="csrf" value=(session.csrf());
                                    button type="submit" { "Withdraw listing" }
                                }
                            } @else {
                                p { "A buyer is paying for it right now." }
                            }
                        } @else if let Some(tr) = outgoing.get(&tid) {
                            p { "Offered to " strong { (tr.to_customer) } "; waiting for them to accept." }
                            form method="post" action={ "/transfers/" (tr.transfer_id) "/cancel" } {
                                input type="hidden" name="csrf" value=(session.csrf());
                                button type="submit" { "Cancel transfer" }
                            }
                        } @else if t.status == "VALID" {
                            (actions(session, event.map(|e| e.as_ref()), t, &seat, fee_bps))
                        }
                    }
                }
            }
        }
        @if !past.is_empty() {
            details.past {
                summary { "Past and replaced tickets (" (past.len()) ")" }
                ul.plain {
                    @for t in &past {
                        @let event = mine.events.get(&t.event_id);
                        li {
                            (event_line(event)) " — " (seat_text(event.map(|e| e.as_ref()), &t.seat_id))
                            " — " (ticket_status(&t.status))
                        }
                    }
                }
            }
        }
    });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn ticket_status(s: &str) -> &'static str {
    match s {
        "VALID" => "Valid",
        "LISTED" => "Listed for resale",
        "USED" => "Used",
        "VOID" => "Void (refunded or cancelled)",
        "REISSUED" => "Passed on (resold or transferred)",
        _ => "Unknown",
    }
}

fn event_line(e: Option<&Arc<Event>>) -> Markup {
    match e {
        Some(e) => html! {
            a href={ "/events/" (e.id) } { (e.spec.name) } " · " (when(e.spec.starts_at))
        },
        None => html! { "Event" },
    }
}

fn seat_text(e: Option<&Event>, seat_id: &str) -> String {
    let Ok(id) = SeatId::parse(seat_id) else {
        return seat_id.to_owned();
    };
    let Some((section_no, row, number)) = id.parts() else {
        return seat_id.to_owned();
    };
    let section = e
        .and_then(|e| e.spec.section(section_no))
        .map(|s| s.name.clone())
        .unwrap_or_else(|| format!("Section {section_no}"));
    seat_label(&section, row, number)
}

/// Resale and transfer forms for a VALID ticket.
fn actions(
    session: &Session,
    event: Option<&Event>,
    t: &TicketResponse,
    seat: &str,
    fee_bps: u32,
) -> Markup {
    let tid = t.ticket_id.to_string();
    let cap = event.and_then(|e| {
        let pct = e.spec.policies.resale_max_price_percent;
        let id = SeatId::parse(&t.seat_id).ok()?;
        let face = e.spec.seat(&id)?.price.cents();
        Some((
            face,
            face * i64::from(pct) / 100,
            e.spec.currency.to_string(),
        ))
    });
    html! {
        details.actions {
            summary { "Sell or give away" span.visually-hidden { " " (seat) } }
            @match cap {
                Some((_, 0, _)) => p { "Resale is off for this event." },
                Some((face, max, cur)) => {
                    form method="post" action={ "/tickets/" (tid) "/resell" } {
                        input type="hidden" name="csrf" value=(session.csrf());
                        p {
                            label for={ "price-" (tid) } { "Resale price ($)" }
                            input id={ "price-" (tid) } type="text" name="price" inputmode="decimal" required
                                value=(format!("{:.2}", face as f64 / 100.0))
                                aria-describedby={ "price-hint-" (tid) };
                            span.hint id={ "price-hint-" (tid) } {
                                "At most " (money(max, &cur)) "; a fee of " (format!("{}", f64::from(fee_bps) / 100.0)) "% comes off what you get."
                            }
                        }
                        button type="submit" { "List for resale" }
                    }
                },
                None => {},
            }
            form method="post" action={ "/tickets/" (tid) "/transfer" } {
                input type="hidden" name="csrf" value=(session.csrf());
                p {
                    label for={ "to-" (tid) } { "Give to (their user name)" }
                    input id={ "to-" (tid) } type="text" name="to" required autocomplete="off";
                }
                button type="submit" { "Transfer ticket" }
            }
        }
    }
}

/// `/tickets/{id}`: one ticket, big, for the door.
pub async fn door(
    State(site): State<Site>,
    session: Session,
    Path(ticket_id): Path<String>,
) -> Response {
    let here = format!("/tickets/{ticket_id}");
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first(&here);
    };
    let a = site.api.get("/v1/tickets", Some(token)).await;
    let Some(tickets) = a.parse::<TicketsResponse>() else {
        return errors::error_page(
            &session,
            StatusCode::SERVICE_UNAVAILABLE,
            "Could not show this ticket",
            &a.message(),
        );
    };
    let Some(t) = tickets
        .tickets
        .into_iter()
        .find(|t| t.ticket_id.to_string() == ticket_id)
    else {
        return errors::not_found_page(Some(&session));
    };
    let event = site.state.event(t.event_id).await.ok().flatten();
    let seat = seat_text(event.as_deref(), &t.seat_id);
    let showable = matches!(t.status.as_str(), "VALID" | "LISTED" | "USED");
    let mut res = Page::new("Ticket", &session).render(html! {
        div #door.door {
            h1 { (event_line(event.as_ref())) }
            p.seat { (seat) }
            @if showable {
                (qr_image(&ticket_id))
                p.hint { "Turn your screen brightness up. Ticket " code { (ticket_id) } }
                p { button #fullscreen type="button" hidden { "Full screen" } }
            } @else {
                (notice(Notice::Error, &format!("This ticket no longer admits anyone: {}.", ticket_status(&t.status).to_lowercase())))
            }
            p { a href="/tickets" { "Back to My tickets" } }
        }
    });
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Common start of every action: signed in, a readable form from our own page.
fn start<'a>(
    session: &'a Session,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'a str, Fields), Response> {
    let Some((token, _)) = session.signed_in() else {
        return Err(errors::sign_in_first("/tickets"));
    };
    let Some(fields) = Fields::parse(body) else {
        return Err(errors::bad_form(session, "The form could not be read."));
    };
    if !form_ok(session, headers, &fields) {
        return Err(errors::forbidden_form(session));
    }
    Ok((token, fields))
}

/// The outcome of an action: back to the list with a note, or the list with the problem.
async fn finish(site: &Site, session: &Session, a: Answer, done: &str) -> Response {
    if a.is_success() {
        return see_other(&format!("/tickets?done={done}"));
    }
    if a.status == StatusCode::UNAUTHORIZED {
        return errors::sign_in_first("/tickets");
    }
    let text = match a.code() {
        "resale-price-above-cap" => {
            let max = a
                .body
                .get("maxPriceCents")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            format!(
                "That price is above this event's resale cap. The most you can ask is {}.",
                money(max, "USD")
            )
        }
        "not-found" => "That ticket or transfer is not yours, or no longer exists.".to_owned(),
        _ => a.message(),
    };
    let status = if a.status.is_client_error() {
        a.status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    render(site, session, Some((Notice::Error, text)), status).await
}

pub async fn resell(
    State(site): State<Site>,
    session: Session,
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, fields) = match start(&session, &headers, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let Some(cents) = fields.get("price").and_then(parse_money) else {
        return render(
            &site,
            &session,
            Some((
                Notice::Error,
                "Enter the resale price as a number, like 120 or 120.50.".into(),
            )),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let a = site
        .api
        .post(
            "/v1/postTicket",
            Some(token),
            &json!({"originalTicketId": ticket_id, "resalePriceCents": cents}),
        )
        .await;
    finish(&site, &session, a, "listed").await
}

pub async fn transfer(
    State(site): State<Site>,
    session: Session,
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, fields) = match start(&session, &headers, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let Some(to) = fields.get("to") else {
        return render(
            &site,
            &session,
            Some((
                Notice::Error,
                "Enter the user name of the person to give the ticket to.".into(),
            )),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let a = site
        .api
        .post(
            &format!("/v1/tickets/{}/transfer", path_segment(&ticket_id)),
            Some(token),
            &json!({"toCustomer": to}),
        )
        .await;
    finish(&site, &session, a, "transfer-offered").await
}

pub async fn withdraw(
    State(site): State<Site>,
    session: Session,
    Path(listing_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, _) = match start(&session, &headers, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let a = site
        .api
        .delete(
            &format!("/v1/listings/{}", path_segment(&listing_id)),
            Some(token),
        )
        .await;
    finish(&site, &session, a, "withdrawn").await
}

pub async fn accept(
    State(site): State<Site>,
    session: Session,
    Path(transfer_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, _) = match start(&session, &headers, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let a = site
        .api
        .post(
            &format!("/v1/transfers/{}/accept", path_segment(&transfer_id)),
            Some(token),
            &json!({}),
        )
        .await;
    finish(&site, &session, a, "accepted").await
}

pub async fn cancel_transfer(
    State(site): State<Site>,
    session: Session,
    Path(transfer_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, _) = match start(&session, &headers, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let a = site
        .api
        .delete(
            &format!("/v1/transfers/{}", path_segment(&transfer_id)),
            Some(token),
        )
        .await;
    finish(&site, &session, a, "transfer-cancelled").await
}

/// An id from a URL, safe to put back into an API path (ids are UUIDs; anything else is
/// answered 404 by the API).
fn path_segment(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect()
}
