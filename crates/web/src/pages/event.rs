//! `/events/{id}`: an event, its sections with prices and seats left, the seat map, the
//! best-available and general-admission pickers, and resale tickets on offer. Holding posts
//! the choice to `POST /v1/attempt` (in-process) and goes on to the checkout.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_api::routes::events::EventResponse;
use boxoffice_domain::event::{Event, SaleState};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::SeatMap;
use boxoffice_domain::resale::Listing;
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::Site;
use crate::format::{group, money, seat_label, when};
use crate::layout::{Notice, Page, notice};
use crate::pages::{Fields, errors, form_ok, see_other};
use crate::session::{ADMISSION_COOKIE_PREFIX, Session};

/// The event, or a 404 page.
pub async fn load(site: &Site, session: &Session, raw: &str) -> Result<Arc<Event>, Response> {
    let Ok(id) = raw.parse::<EventId>() else {
        return Err(errors::not_found_page(Some(session)));
    };
    match site.state.event(id).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(errors::not_found_page(Some(session))),
        Err(e) => {
            tracing::warn!(error = %e, "reading an event for its page");
            Err(errors::error_page(
                session,
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "The event could not be read just now.",
            ))
        }
    }
}

/// The waiting-room policy of an event, as the API shows it (`policies.waitingRoom`), if any.
pub fn waiting_room(event: &EventResponse) -> Option<Value> {
    let v = serde_json::to_value(event).ok()?;
    v.get("policies")?
        .get("waitingRoom")
        .filter(|w| !w.is_null())
        .cloned()
}

pub fn admission_cookie_name(event: EventId) -> String {
    format!("{ADMISSION_COOKIE_PREFIX}{event}")
}

pub async fn page(
    State(site): State<Site>,
    session: Session,
    Path(event_id): Path<String>,
) -> Response {
    render(&site, &session, &event_id, None, StatusCode::OK).await
}

/// The event page, optionally with a message (why a hold failed) and another status.
pub async fn render(
    site: &Site,
    session: &Session,
    raw_id: &str,
    message: Option<(Notice, String)>,
    status: StatusCode,
) -> Response {
    let event = match load(site, session, raw_id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let now = site.state.clock.now();
    let map = match site.seat_map(&event).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "reading a seat map for its page");
            return errors::error_page(
                session,
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "Seat availability could not be read just now.",
            );
        }
    };
    let listings = site
        .state
        .store
        .event_listings(event.id, now)
        .await
        .unwrap_or_default();
    let info = EventResponse::new(&event, now);
    let room = waiting_room(&info);
    let admitted = session
        .cookie(&admission_cookie_name(event.id))
        .is_some_and(|t| !t.is_empty());
    let sale = event.sale_state(now);
    let currency = info.currency.clone();
    let seated_total: u32 = info
        .sections
        .iter()
        .filter(|s| s.kind == "seated")
        .map(|s| s.capacity)
        .sum();
    let body = html! {
        article.event {
            header.event-head {
                p.category { (info.category) }
                h1 { (info.name) }
                @if !info.performers.is_empty() && info.performers.join(", ") != info.name {
                    p.performers { (info.performers.join(", ")) }
                }
                p.when { time datetime=(crate::format::rfc3339(info.starts_at)) { (when(info.starts_at)) } }
                p.venue {
                    (info.venue.name) ", " (info.venue.address) ", " (info.venue.city) " "
                    (info.venue.zip_code) ", " (info.venue.country)
                }
                p { (sale_badge(sale, &info)) }
                @if session.who.as_ref().is_some_and(|w| w.sub == event.organizer || w.is_admin()) {
                    p { a href={ "/organizer/events/" (event.id) } { "Sales for this event" } }
                }
            }
            @if let Some((kind, text)) = &message { (notice(*kind, text)) }
            @if !info.description.is_empty() {
                section aria-labelledby="about-h" {
                    h2 #about-h { "About" }
                    p.description { (info.description) }
                }
            }
            section aria-labelledby="prices-h" {
                h2 #prices-h { "Prices and seats left" }
                (sections_table(&map, &event, &currency))
            }
            section.buy aria-labelledby="buy-h" {
                h2 #buy-h { "Choose your tickets" }
                @match sale {
                    SaleState::OnSale if room.is_some() && !admitted => {
                        (queue_form(session, &info, room.as_ref()))
                    }
                    SaleState::OnSale => {
                        (hold_form(session, &event, &map, &currency, seated_total))
                    }
                    SaleState::NotYetOnSale => {
                        @if room.is_some() {
                            (queue_form(session, &info, room.as_ref()))
                        } @else {
                            (notice(Notice::Info, &format!("Tickets go on sale {}.", when(info.on_sale_at))))
                        }
                    }
                    SaleState::Started => { (notice(Notice::Info, "This event has started; tickets are no longer sold.")) }
                    SaleState::Cancelled => { (notice(Notice::Error, "This event was cancelled by its organizer. Ticket holders are refunded.")) }
                }
            }
            section aria-labelledby="resale-h" {
                h2 #resale-h { "Resale tickets" }
                (resale_list(session, &event, &listings, &currency, sale == SaleState::OnSale, now))
            }
        }
    };
    let mut res = Page::new(info.name.clone(), session)
        .status(status)
        .scripts(&["seatmap.js"])
        .render(body);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn sale_badge(sale: SaleState, info: &EventResponse) -> Markup {
    match sale {
        SaleState::OnSale => html! { span.badge.available { "On sale" } },
        SaleState::NotYetOnSale => {
            html! { span.badge.few-left { "On sale " (when(info.on_sale_at)) } }
        }
        SaleState::Started => html! { span.badge.sold-out { "Started" } },
        SaleState::Cancelled => html! { span.badge.sold-out { "Cancelled" } },
    }
}

fn sections_table(map: &SeatMap, event: &Event, currency: &str) -> Markup {
    html! {
        table.sections {
            caption.visually-hidden { "Sections with their prices and seats left" }
            thead { tr { th scope="col" { "Section" } th scope="col" { "Type" } th scope="col" { "Price" } th scope="col" { "Seats left" } } }
            tbody {
                @for a in &map.sections {
                    @if let Some(s) = event.spec.section(a.section) {
                        tr {
                            th scope="row" { (s.name) }
                            td { @if s.kind.is_seated() { "Seated" } @else { "General admission" } }
                            td { (money(s.price.cents(), currency)) }
                            td {
                                @if a.available == 0 { span.badge.sold-out { "Sold out" } }
                                @else { (group(u64::from(a.available))) " of " (group(u64::from(a.capacity))) }
                                @if a.resale > 0 { " · " (a.resale) " on resale" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn queue_form(session: &Session, info: &EventResponse, room: Option<&Value>) -> Markup {
    let opens = room
        .and_then(|r| r.get("opensAt"))
        .and_then(Value::as_str)
        .unwrap_or("");
    html! {
        div.card {
            p {
                "This on-sale uses a waiting room: join the queue and we will let you in to choose seats when it is your turn. "
                @if let Ok(t) = time::OffsetDateTime::parse(opens, &time::format_description::well_known::Rfc3339) {
                    "The room opens " time datetime=(opens) { (when(t)) } ". "
                }
                "Joining early gives you a random place when the sale starts; later arrivals queue in order."
            }
            @if session.who.is_some() {
                form method="post" action={ "/events/" (info.event_id) "/queue" } {
                    input type="hidden" name="csrf" value=(session.csrf());
                    button type="submit" { "Join the queue" }
                }
            } @else {
                p { a href={ "/signin?next=/events/" (info.event_id) } { "Sign in to join the queue" } }
            }
        }
    }
}

fn hold_form(
    session: &Session,
    event: &Event,
    map: &SeatMap,
    currency: &str,
    seated_total: u32,
) -> Markup {
    let max = event.spec.policies.max_tickets_per_customer.min(100);
    let open_sections: Vec<_> = map
        .sections
        .iter()
        .filter_map(|a| Some((event.spec.section(a.section)?, a)))
        .collect();
    html! {
        form #hold-form.hold method="post" action={ "/events/" (event.id) "/hold" } {
            input type="hidden" name="csrf" value=(session.csrf());
            @if seated_total > 0 {
                div.seatmap-wrap {
                    h3 #seatmap-h { "Pick seats on the map" }
                    p.hint #seatmap-hint {
                        "Choose up to " (max) " seats. "
                        "Large venues open section by section: choose a section to see its seats. "
                        "Use the arrow keys to move between seats and Enter or Space to pick one."
                    }
                    div #seatmap.seatmap role="region" aria-labelledby="seatmap-h"
                        data-src={ "/events/" (event.id) "/seatmap.json" }
                        data-stream={ "/v1/events/" (event.id) "/seats/events" }
                        data-currency=(currency) data-max=(max) {
                        p.loading { "Loading the seat map…" }
                    }
                    noscript {
                        p { "The seat map needs JavaScript. You can still get the best available seats below." }
                    }
                    ul.legend aria-label="Legend" {
                        li { span.swatch.open {} "Available" }
                        li { span.swatch.selected {} "Your pick" }
                        li { span.swatch.resale {} "Resale" }
                        li { span.swatch.taken {} "Taken" }
                    }
                    div #seat-picks-inputs {}
                    p #selection-summary.selection role="status" aria-live="polite" { }
                }
            }
            fieldset #best-available.best {
                legend { "Or let us pick the best available" }
                p {
                    label for="hold-section" { "Section" }
                    select #hold-section name="section" {
                        @for (s, a) in &open_sections {
                            option value=(s.name) disabled[a.available == 0] {
                                (s.name) " — " (money(s.price.cents(), currency))
                                @if !s.kind.is_seated() { " (general admission)" }
                                @if a.available == 0 { " — sold out" }
                            }
                        }
                    }
                }
                p {
                    label for="hold-quantity" { "Quantity" }
                    select #hold-quantity name="quantity" {
                        @for n in 1..=max { option value=(n) selected[n == 2.min(max)] { (n) } }
                    }
                }
            }
            p.actions {
                button.primary type="submit" { "Hold seats" }
            }
            p.hint {
                "Seats are held for you for a few minutes while you pay."
                @if session.who.is_none() { " You will be asked to sign in first." }
            }
        }
    }
}

fn resale_list(
    session: &Session,
    event: &Event,
    listings: &[Listing],
    currency: &str,
    on_sale: bool,
    now: time::OffsetDateTime,
) -> Markup {
    let open: Vec<&Listing> = listings
        .iter()
        .filter(|l| l.effective_status(now) == boxoffice_domain::resale::ListingStatus::Active)
        .collect();
    html! {
        @if open.is_empty() {
            p { "No resale tickets are on offer right now." }
        } @else {
            table.resale {
                caption.visually-hidden { "Resale tickets on offer, cheapest first" }
                thead { tr { th scope="col" { "Seat" } th scope="col" { "Price" } th scope="col" { span.visually-hidden { "Action" } } } }
                tbody {
                    @for l in &open {
                        @let label = listing_label(event, l);
                        tr {
                            th scope="row" { (label) }
                            td { (money(l.price_cents, currency)) }
                            td {
                                @if on_sale && session.who.as_ref().is_none_or(|w| w.sub != l.seller) {
                                    form method="post" action={ "/events/" (event.id) "/hold" } {
                                        input type="hidden" name="csrf" value=(session.csrf());
                                        input type="hidden" name="listing" value=(l.id);
                                        button type="submit" aria-label={ "Buy resale ticket " (label) " for " (money(l.price_cents, currency)) } { "Buy" }
                                    }
                                } @else if session.who.as_ref().is_some_and(|w| w.sub == l.seller) {
                                    "Your listing"
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn listing_label(event: &Event, l: &Listing) -> String {
    let section = event
        .spec
        .section(l.section)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let (_, row, number) = l.seat_id.parts().unwrap_or((l.section, None, 0));
    seat_label(&section, row, number)
}

/// `POST /events/{id}/hold`: hold the picked seats, the best available or resale listings
/// through `POST /v1/attempt`, then on to the checkout.
pub async fn hold(
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
    let Some(fields) = Fields::parse(&body) else {
        return errors::bad_form(&session, "The form could not be read.");
    };
    if !form_ok(&session, &headers, &fields) {
        return errors::forbidden_form(&session);
    }
    let event = match load(&site, &session, &event_id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let seats = fields.all("seat");
    let listings = fields.all("listing");
    let request = if !seats.is_empty() && !listings.is_empty() {
        return render(
            &site,
            &session,
            &event_id,
            Some((
                Notice::Error,
                "Choose either new seats or resale tickets, not both at once.".into(),
            )),
            StatusCode::BAD_REQUEST,
        )
        .await;
    } else if !listings.is_empty() {
        json!({"eventId": event.id, "listingIds": listings})
    } else if !seats.is_empty() {
        json!({"eventId": event.id, "seatIds": seats})
    } else {
        let section = fields.get("section").unwrap_or("");
        let quantity = fields.get("quantity").and_then(|q| q.parse::<u32>().ok());
        match quantity {
            Some(q) if !section.is_empty() => {
                json!({"eventId": event.id, "section": section, "quantity": q})
            }
            _ => {
                return render(
                    &site,
                    &session,
                    &event_id,
                    Some((
                        Notice::Error,
                        "Pick seats on the map, or choose a section and how many tickets.".into(),
                    )),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
        }
    };
    let admission = session
        .cookie(&admission_cookie_name(event.id))
        .map(str::to_owned);
    let mut extra: Vec<(&'static str, &str)> = Vec::new();
    if let Some(a) = admission.as_deref() {
        extra.push(("admission-token", a));
    }
    let answer = site
        .api
        .call(
            axum::http::Method::POST,
            "/v1/attempt",
            Some(token),
            &extra,
            Some(&request),
        )
        .await;
    if answer.status == StatusCode::CREATED {
        let id = answer
            .body
            .get("bookingId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return see_other(&format!("/checkout/{id}"));
    }
    if answer.status == StatusCode::UNAUTHORIZED {
        return errors::sign_in_first(&back);
    }
    let text = match answer.code() {
        "seats-unavailable" => "Sorry — some of those seats were just taken by someone else. None were held; please pick other seats.".to_owned(),
        "listing-unavailable" => "Sorry — that resale ticket was just taken by someone else or withdrawn. Nothing was held.".to_owned(),
        "not-enough-seats" => format!("{} Try fewer tickets or another section.", answer.message()),
        "admission-required" => "This on-sale uses a waiting room: join the queue first, and you can choose seats when it is your turn.".to_owned(),
        _ => answer.message(),
    };
    let status = if answer.status.is_client_error() {
        answer.status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    render(
        &site,
        &session,
        &event_id,
        Some((Notice::Error, text)),
        status,
    )
    .await
}

/// `GET /events/{id}/seatmap.json`: the seat map in a compact form for the page's script —
/// per section its counts and, per row, one status letter per seat (`O` open, `H` held,
/// `P` paying, `S` sold, `R` resale) — small enough for a 50,000-seat stadium to arrive at
/// once. Read from the same store call as `GET /v1/events/{id}/seats`.
pub async fn seatmap_json(
    State(site): State<Site>,
    session: Session,
    Path(event_id): Path<String>,
) -> Response {
    let event = match load(&site, &session, &event_id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let map = match site.seat_map(&event).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "reading a seat map");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    };
    let body = compact(&event, &map);
    let mut res = axum::Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// A row label and its seats: (number, status letter).
type Row = (String, Vec<(u32, char)>);

fn compact(event: &Event, map: &SeatMap) -> Value {
    // section → row label → (number, letter)
    let mut rows: BTreeMap<u16, Vec<Row>> = BTreeMap::new();
    let mut resale = serde_json::Map::new();
    for s in &map.seats {
        let letter = match (&s.resale, s.state.as_str()) {
            (Some((listing, price)), _) => {
                resale.insert(s.id.to_string(), json!([price, listing]));
                'R'
            }
            (None, "OPEN") => 'O',
            (None, "HOLD") => 'H',
            (None, "PENDING") => 'P',
            _ => 'S',
        };
        let label = s.row.clone().unwrap_or_default();
        let section_rows = rows.entry(s.section).or_default();
        match section_rows.iter_mut().find(|(l, _)| *l == label) {
            Some((_, seats)) => seats.push((s.number, letter)),
            None => section_rows.push((label, vec![(s.number, letter)])),
        }
    }
    let sections: Vec<Value> = map
        .sections
        .iter()
        .filter_map(|a| {
            let s = event.spec.section(a.section)?;
            let mut section_rows = rows.remove(&a.section).unwrap_or_default();
            section_rows.sort_by_key(|(l, _)| boxoffice_domain::event::row_index(l));
            let rows: Vec<Value> = section_rows
                .into_iter()
                .map(|(label, mut seats)| {
                    seats.sort_by_key(|(n, _)| *n);
                    let first = seats.first().map_or(1, |(n, _)| *n);
                    let mut line = String::new();
                    let mut next = first;
                    for (n, letter) in seats {
                        while next < n {
                            line.push('X');
                            next += 1;
                        }
                        line.push(letter);
                        next = n + 1;
                    }
                    json!([label, first, line])
                })
                .collect();
            Some(json!({
                "no": a.section,
                "name": s.name,
                "kind": if s.kind.is_seated() { "seated" } else { "generalAdmission" },
                "price": s.price.cents(),
                "capacity": a.capacity,
                "available": a.available,
                "held": a.held,
                "sold": a.sold,
                "resale": a.resale,
                "rows": rows,
            }))
        })
        .collect();
    json!({
        "eventId": event.id,
        "currency": event.spec.currency.to_string(),
        "sections": sections,
        "resale": resale,
    })
}
