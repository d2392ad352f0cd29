//! The organizer's pages: their events, a form that creates one (`POST /v1/events`,
//! in-process, so the API's validation is the only one), and a sales page per event — sold,
//! held and open per section from the seat map, money and resales from the store — with a
//! chart that updates itself.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use boxoffice_api::routes::events::EventResponse;
use boxoffice_domain::event::{Category, SaleState};
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use time::PrimitiveDateTime;

use crate::Site;
use crate::format::{group, money, parse_money, when};
use crate::layout::{Notice, Page, notice};
use crate::pages::event::load;
use crate::pages::{Fields, errors, form_ok, see_other};
use crate::session::Session;

/// Section rows the form offers without scripts (a script adds more).
const SECTION_ROWS: usize = 4;

fn organizer_only(session: &Session, next: &str) -> Result<(), Response> {
    if session.who.is_none() {
        return Err(errors::sign_in_first(next));
    }
    if !session.is_organizer() {
        return Err(errors::error_page(
            session,
            StatusCode::FORBIDDEN,
            "Organizers only",
            "This page is for event organizers. Sign in with an organizer account.",
        ));
    }
    Ok(())
}

pub async fn home(State(site): State<Site>, session: Session) -> Response {
    if let Err(res) = organizer_only(&session, "/organizer") {
        return res;
    }
    let Some(who) = &session.who else {
        return errors::sign_in_first("/organizer");
    };
    let ids = match site.state.store.organizer_events(&who.sub, 200).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "reading an organizer's events");
            return errors::error_page(
                &session,
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "Your events could not be read just now.",
            );
        }
    };
    let mut events = Vec::new();
    for id in ids {
        if let Ok(Some(e)) = site.state.event(id).await {
            events.push(e);
        }
    }
    let now = site.state.clock.now();
    Page::new("Organizer", &session).render(html! {
        h1 { "Your events" }
        p { a.button href="/organizer/events/new" { "Create an event" } }
        @if events.is_empty() {
            p { "You have not created any events yet." }
        } @else {
            table.sections {
                caption.visually-hidden { "Your events" }
                thead { tr { th scope="col" { "Event" } th scope="col" { "Starts" } th scope="col" { "Status" } th scope="col" { "Capacity" } } }
                tbody {
                    @for e in &events {
                        tr {
                            th scope="row" { a href={ "/organizer/events/" (e.id) } { (e.spec.name) } }
                            td { (when(e.spec.starts_at)) }
                            td { (sale_text(e.sale_state(now))) }
                            td { (group(u64::from(e.spec.capacity()))) }
                        }
                    }
                }
            }
        }
    })
}

fn sale_text(s: SaleState) -> &'static str {
    match s {
        SaleState::OnSale => "On sale",
        SaleState::NotYetOnSale => "Not on sale yet",
        SaleState::Started => "Started",
        SaleState::Cancelled => "Cancelled",
    }
}

pub async fn new_event(State(_site): State<Site>, session: Session) -> Response {
    if let Err(res) = organizer_only(&session, "/organizer/events/new") {
        return res;
    }
    form_page(&session, &Fields::default(), None, StatusCode::OK)
}

fn form_page(session: &Session, f: &Fields, error: Option<&str>, status: StatusCode) -> Response {
    let v = |name: &str| f.get(name).unwrap_or("").to_owned();
    let rows = f.all_raw("sectionName").len().max(SECTION_ROWS);
    let section_field =
        |name: &str, i: usize| -> String { f.all_raw(name).get(i).cloned().unwrap_or_default() };
    Page::new("Create an event", session)
        .status(status)
        .render(html! {
        h1 { "Create an event" }
        @if let Some(e) = error { (notice(Notice::Error, e)) }
        form.event-form method="post" action="/organizer/events/new" {
            input type="hidden" name="csrf" value=(session.csrf());
            fieldset {
                legend { "The event" }
                p { label for="ev-name" { "Name" } input #ev-name type="text" name="name" required maxlength="200" value=(v("name")); }
                p {
                    label for="ev-performers" { "Performers" }
                    input #ev-performers type="text" name="performers" value=(v("performers")) aria-describedby="ev-performers-hint";
                    span.hint #ev-performers-hint { "Separate several with commas." }
                }
                p {
                    label for="ev-category" { "Category" }
                    select #ev-category name="category" {
                        @for c in Category::ALL {
                            option value=(c.as_str()) selected[v("category") == c.as_str()] { (c.as_str()) }
                        }
                    }
                }
                p { label for="ev-description" { "Description" } textarea #ev-description name="description" rows="3" { (v("description")) } }
                p {
                    label for="ev-starts" { "Starts at (UTC)" }
                    input #ev-starts type="datetime-local" name="startsAt" required value=(v("startsAt"));
                }
                p {
                    label for="ev-onsale" { "On sale from (UTC)" }
                    input #ev-onsale type="datetime-local" name="onSaleAt" value=(v("onSaleAt")) aria-describedby="ev-onsale-hint";
                    span.hint #ev-onsale-hint { "Leave empty to start selling now." }
                }
                p {
                    label for="ev-currency" { "Currency" }
                    select #ev-currency name="currency" {
                        @for c in ["USD", "EUR", "GBP", "CAD", "AUD"] {
                            option value=(c) selected[v("currency") == c] { (c) }
                        }
                    }
                }
            }
            fieldset {
                legend { "Venue" }
                p { label for="ve-name" { "Venue name" } input #ve-name type="text" name="venueName" required value=(v("venueName")); }
                p { label for="ve-address" { "Address" } input #ve-address type="text" name="venueAddress" value=(v("venueAddress")); }
                p { label for="ve-city" { "City" } input #ve-city type="text" name="venueCity" required value=(v("venueCity")); }
                p { label for="ve-zip" { "ZIP or postal code" } input #ve-zip type="text" name="venueZip" required value=(v("venueZip")); }
                p {
                    label for="ve-country" { "Country code" }
                    input #ve-country type="text" name="venueCountry" required maxlength="2" size="3"
                        value=(if v("venueCountry").is_empty() { "US".to_owned() } else { v("venueCountry") })
                        aria-describedby="ve-country-hint";
                    span.hint #ve-country-hint { "Two letters, like US or GB." }
                }
                p { label for="ve-lat" { "Latitude" } input #ve-lat type="text" name="venueLat" required inputmode="decimal" value=(v("venueLat")); }
                p { label for="ve-lon" { "Longitude" } input #ve-lon type="text" name="venueLon" required inputmode="decimal" value=(v("venueLon")); }
            }
            fieldset #sections {
                legend { "Sections" }
                p.hint { "A seated section has rows and seats per row; a general-admission section has standing places. Leave unused rows empty." }
                @for i in 0..rows {
                    @let n = i + 1;
                    div.section-row data-section-row {
                        p { label for={ "s-name-" (n) } { "Section " (n) " name" } input id={ "s-name-" (n) } type="text" name="sectionName" value=(section_field("sectionName", i)); }
                        p {
                            label for={ "s-kind-" (n) } { "Section " (n) " type" }
                            select id={ "s-kind-" (n) } name="sectionKind" {
                                option value="seated" selected[section_field("sectionKind", i) != "ga"] { "Seated" }
                                option value="ga" selected[section_field("sectionKind", i) == "ga"] { "General admission" }
                            }
                        }
                        p { label for={ "s-rows-" (n) } { "Section " (n) " rows" } input id={ "s-rows-" (n) } type="number" min="1" name="sectionRows" value=(section_field("sectionRows", i)); }
                        p { label for={ "s-per-" (n) } { "Section " (n) " seats per row" } input id={ "s-per-" (n) } type="number" min="1" name="sectionSeatsPerRow" value=(section_field("sectionSeatsPerRow", i)); }
                        p { label for={ "s-cap-" (n) } { "Section " (n) " standing places" } input id={ "s-cap-" (n) } type="number" min="1" name="sectionCapacity" value=(section_field("sectionCapacity", i)); }
                        p { label for={ "s-price-" (n) } { "Section " (n) " price" } input id={ "s-price-" (n) } type="text" inputmode="decimal" name="sectionPrice" value=(section_field("sectionPrice", i)); }
                    }
                }
                button #add-section type="button" hidden { "Add a section" }
            }
            fieldset {
                legend { "Policies" }
                p { label for="po-max" { "Tickets per customer at most" } input #po-max type="number" min="1" name="maxTicketsPerCustomer" value=(if v("maxTicketsPerCustomer").is_empty() { "8".to_owned() } else { v("maxTicketsPerCustomer") }); }
                p { label for="po-refund" { "Refund window (hours)" } input #po-refund type="number" min="0" name="refundWindowHours" value=(if v("refundWindowHours").is_empty() { "48".to_owned() } else { v("refundWindowHours") }); }
                p { label for="po-resale" { "Resale price cap (% of face value, 0 = no resale)" } input #po-resale type="number" min="0" name="resaleMaxPricePercent" value=(if v("resaleMaxPricePercent").is_empty() { "120".to_owned() } else { v("resaleMaxPricePercent") }); }
            }
            fieldset {
                legend { "Waiting room (for a big on-sale)" }
                p.check {
                    input #wr-on type="checkbox" name="waitingRoom" value="1" checked[f.get("waitingRoom").is_some()];
                    label for="wr-on" { "Use a waiting room" }
                }
                p { label for="wr-opens" { "Room opens at (UTC)" } input #wr-opens type="datetime-local" name="waitingRoomOpensAt" value=(v("waitingRoomOpensAt")); }
                p { label for="wr-rate" { "Buyers let in per minute" } input #wr-rate type="number" min="1" name="admitPerMinute" value=(if v("admitPerMinute").is_empty() { "100".to_owned() } else { v("admitPerMinute") }); }
                p { label for="wr-minutes" { "Minutes each admitted buyer has" } input #wr-minutes type="number" min="1" name="admissionMinutes" value=(if v("admissionMinutes").is_empty() { "10".to_owned() } else { v("admissionMinutes") }); }
            }
            p.actions { button.primary type="submit" { "Create event" } }
        }
    })
}

/// `2027-06-01T19:30` (a datetime-local field, read as UTC) → RFC 3339.
fn utc(raw: &str) -> Option<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let fmt_secs =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(raw, &fmt)
        .or_else(|_| PrimitiveDateTime::parse(raw, &fmt_secs))
        .ok()?;
    Some(crate::format::rfc3339(t.assume_utc()))
}

fn number(f: &Fields, name: &str, what: &str) -> Result<Option<u32>, String> {
    match f.get(name) {
        None => Ok(None),
        Some(raw) => raw
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{what} must be a whole number.")),
    }
}

/// The form as the API's create-event body; what is wrong otherwise, in words.
fn event_body(f: &Fields) -> Result<Value, String> {
    let starts = f.get("startsAt").ok_or("Enter when the event starts.")?;
    let starts = utc(starts).ok_or("Enter the start as a date and time.")?;
    let lat: f64 = f
        .get("venueLat")
        .and_then(|s| s.parse().ok())
        .ok_or("Enter the venue's latitude as a number, like 47.5952.")?;
    let lon: f64 = f
        .get("venueLon")
        .and_then(|s| s.parse().ok())
        .ok_or("Enter the venue's longitude as a number, like -122.3316.")?;
    let names = f.all_raw("sectionName");
    let kinds = f.all_raw("sectionKind");
    let rows = f.all_raw("sectionRows");
    let per_row = f.all_raw("sectionSeatsPerRow");
    let capacity = f.all_raw("sectionCapacity");
    let price = f.all_raw("sectionPrice");
    let at = |v: &Vec<String>, i: usize| v.get(i).cloned().unwrap_or_default();
    let mut sections = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let n = i + 1;
        let cents = parse_money(&at(&price, i)).ok_or(format!(
            "Enter a price for section {n}, like 50 or 49.99 (0 for free)."
        ))?;
        let whole = |v: &Vec<String>, what: &str| -> Result<u32, String> {
            at(v, i)
                .parse::<u32>()
                .map_err(|_| format!("Section {n}: {what} must be a whole number."))
        };
        let section = if at(&kinds, i) == "ga" {
            json!({"name": name, "capacity": whole(&capacity, "the standing places")?, "priceCents": cents})
        } else {
            json!({
                "name": name,
                "rows": whole(&rows, "the number of rows")?,
                "seatsPerRow": whole(&per_row, "the seats per row")?,
                "priceCents": cents,
            })
        };
        sections.push(section);
    }
    if sections.is_empty() {
        return Err("Add at least one section with a name.".into());
    }
    let mut policies = Map::new();
    if let Some(n) = number(f, "maxTicketsPerCustomer", "Tickets per customer")? {
        policies.insert("maxTicketsPerCustomer".into(), n.into());
    }
    if let Some(n) = number(f, "refundWindowHours", "The refund window")? {
        policies.insert("refundWindowHours".into(), n.into());
    }
    if let Some(n) = number(f, "resaleMaxPricePercent", "The resale price cap")? {
        policies.insert("resaleMaxPricePercent".into(), n.into());
    }
    if f.get("waitingRoom").is_some() {
        let opens = match f.get("waitingRoomOpensAt") {
            Some(raw) => utc(raw).ok_or("Enter when the waiting room opens as a date and time.")?,
            None => f
                .get("onSaleAt")
                .and_then(utc)
                .ok_or("Enter when the waiting room opens.")?,
        };
        policies.insert(
            "waitingRoom".into(),
            json!({
                "opensAt": opens,
                "admitPerMinute": number(f, "admitPerMinute", "Buyers let in per minute")?.unwrap_or(100),
                "admissionMinutes": number(f, "admissionMinutes", "Minutes per buyer")?.unwrap_or(10),
            }),
        );
    }
    let performers: Vec<String> = f
        .get("performers")
        .unwrap_or("")
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let mut body = json!({
        "name": f.get("name").unwrap_or(""),
        "performers": performers,
        "category": f.get("category").unwrap_or("other"),
        "description": f.get("description").unwrap_or(""),
        "startsAt": starts,
        "currency": f.get("currency").unwrap_or("USD"),
        "venue": {
            "name": f.get("venueName").unwrap_or(""),
            "address": f.get("venueAddress").unwrap_or(""),
            "city": f.get("venueCity").unwrap_or(""),
            "zipCode": f.get("venueZip").unwrap_or(""),
            "country": f.get("venueCountry").unwrap_or("").to_uppercase(),
            "lat": lat,
            "lon": lon,
        },
        "sections": sections,
        "policies": Value::Object(policies),
    });
    if let Some(raw) = f.get("onSaleAt") {
        body["onSaleAt"] =
            Value::String(utc(raw).ok_or("Enter the on-sale time as a date and time.")?);
    }
    Ok(body)
}

pub async fn create_event(
    State(site): State<Site>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(res) = organizer_only(&session, "/organizer/events/new") {
        return res;
    }
    let Some((token, _)) = session.signed_in() else {
        return errors::sign_in_first("/organizer/events/new");
    };
    let Some(fields) = Fields::parse(&body) else {
        return errors::bad_form(&session, "The form could not be read.");
    };
    if !form_ok(&session, &headers, &fields) {
        return errors::forbidden_form(&session);
    }
    let request = match event_body(&fields) {
        Ok(b) => b,
        Err(e) => return form_page(&session, &fields, Some(&e), StatusCode::BAD_REQUEST),
    };
    let a = site.api.post("/v1/events", Some(token), &request).await;
    if a.status == StatusCode::CREATED
        && let Some(id) = a.body.get("eventId").and_then(Value::as_str)
    {
        return see_other(&format!("/organizer/events/{id}"));
    }
    let mut text = a.message();
    if let Some(field) = a.body.get("field").and_then(Value::as_str) {
        text = format!("{text} (field: {field})");
    }
    let status = if a.status.is_client_error() {
        a.status
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    form_page(&session, &fields, Some(&text), status)
}

/// `/organizer/events/{id}`: the sales page of one of the organizer's events.
pub async fn sales(
    State(site): State<Site>,
    session: Session,
    Path(event_id): Path<String>,
) -> Response {
    let here = format!("/organizer/events/{event_id}");
    if let Err(res) = organizer_only(&session, &here) {
        return res;
    }
    let event = match load(&site, &session, &event_id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let Some(who) = &session.who else {
        return errors::sign_in_first(&here);
    };
    // Another organizer's sales are nobody else's business: as if the page did not exist.
    if event.organizer != who.sub && !who.is_admin() {
        return errors::not_found_page(Some(&session));
    }
    let now = site.state.clock.now();
    let (map, sales) = match (
        site.seat_map(&event).await,
        site.state.store.event_sales(event.id).await,
    ) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "reading sales");
            return errors::error_page(
                &session,
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "The sales could not be read just now.",
            );
        }
    };
    let info = EventResponse::new(&event, now);
    let cur = info.currency.clone();
    let rows: Vec<SectionRow> = map
        .sections
        .iter()
        .filter_map(|a| {
            let s = event.spec.section(a.section)?;
            Some(SectionRow {
                name: s.name.clone(),
                price: s.price.cents(),
                capacity: a.capacity,
                sold: a.sold,
                held: a.held,
                open: a.available,
                resale: a.resale,
            })
        })
        .collect();
    let sold: u64 = rows.iter().map(|r| u64::from(r.sold)).sum();
    let held: u64 = rows.iter().map(|r| u64::from(r.held)).sum();
    let open: u64 = rows.iter().map(|r| u64::from(r.open)).sum();
    let mut res = Page::new(format!("Sales: {}", info.name), &session).render(html! {
        h1 { "Sales: " (info.name) }
        p.lead { (when(info.starts_at)) " · " (info.venue.name) ", " (info.venue.city) " · " (sale_text(event.sale_state(now))) }
        p { a href={ "/events/" (info.event_id) } { "View the event page" } }
        div #sales data-refresh-every="3" {
            dl.stats {
                div { dt { "Tickets sold" } dd #stat-sold { (group(sold)) } }
                div { dt { "Held right now" } dd #stat-held { (group(held)) } }
                div { dt { "Still open" } dd #stat-open { (group(open)) } }
                div { dt { "Revenue" } dd #stat-revenue { (money(sales.revenue_cents, &cur)) } }
                div { dt { "Bookings" } dd #stat-bookings { (group(sales.bookings)) } }
                div {
                    dt { "Resale volume" }
                    dd #stat-resale { (money(sales.resale_volume_cents, &cur)) }
                    dd.hint { (group(sales.resales)) " resold · " (money(sales.resale_fees_cents, &cur)) " in fees" }
                }
            }
            h2 #chart-h { "Per section" }
            (chart(&rows))
            table.sections {
                caption.visually-hidden { "Sold, held and open seats per section" }
                thead { tr {
                    th scope="col" { "Section" } th scope="col" { "Price" } th scope="col" { "Capacity" }
                    th scope="col" { "Sold" } th scope="col" { "Held" } th scope="col" { "Open" }
                    th scope="col" { "On resale" } th scope="col" { "Sold at face value" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            th scope="row" { (r.name) }
                            td { (money(r.price, &cur)) }
                            td { (group(u64::from(r.capacity))) }
                            td { (group(u64::from(r.sold))) }
                            td { (group(u64::from(r.held))) }
                            td { (group(u64::from(r.open))) }
                            td { (group(u64::from(r.resale))) }
                            td { (money(r.price * i64::from(r.sold), &cur)) }
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

struct SectionRow {
    name: String,
    price: i64,
    capacity: u32,
    sold: u32,
    held: u32,
    open: u32,
    resale: u32,
}

/// Stacked bars, one per section: sold, held, open — inline SVG, no script needed.
fn chart(rows: &[SectionRow]) -> Markup {
    let bar_h = 28u32;
    let gap = 12u32;
    let label_w = 160u32;
    let width = 640u32;
    let plot = width - label_w - 10;
    let height = (rows.len() as u32) * (bar_h + gap) + 30;
    let summary: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}: {} sold, {} held, {} open",
                r.name, r.sold, r.held, r.open
            )
        })
        .collect();
    html! {
        svg.chart role="img" aria-labelledby="chart-title" viewBox={ "0 0 " (width) " " (height) } width="100%" {
            title #chart-title { "Seats per section — " (summary.join("; ")) }
            @for (i, r) in rows.iter().enumerate() {
                @let y = (i as u32) * (bar_h + gap);
                @let cap = r.capacity.max(1) as f64;
                @let w_sold = f64::from(plot) * f64::from(r.sold) / cap;
                @let w_held = f64::from(plot) * f64::from(r.held) / cap;
                @let w_open = f64::from(plot) * f64::from(r.open) / cap;
                text x="0" y=(y + bar_h / 2 + 5) class="chart-label" { (r.name) }
                rect x=(label_w) y=(y) width=(format!("{w_sold:.1}")) height=(bar_h) class="bar-sold" {}
                rect x=(format!("{:.1}", f64::from(label_w) + w_sold)) y=(y) width=(format!("{w_held:.1}")) height=(bar_h) class="bar-held" {}
                rect x=(format!("{:.1}", f64::from(label_w) + w_sold + w_held)) y=(y) width=(format!("{w_open:.1}")) height=(bar_h) class="bar-open" {}
            }
            @let ly = (rows.len() as u32) * (bar_h + gap) + 10;
            rect x=(label_w) y=(ly) width="12" height="12" class="bar-sold" {}
            text x=(label_w + 16) y=(ly + 11) class="chart-label" { "Sold" }
            rect x=(label_w + 70) y=(ly) width="12" height="12" class="bar-held" {}
            text x=(label_w + 86) y=(ly + 11) class="chart-label" { "Held" }
            rect x=(label_w + 140) y=(ly) width="12" height="12" class="bar-open" {}
            text x=(label_w + 156) y=(ly + 11) class="chart-label" { "Open" }
        }
    }
}
