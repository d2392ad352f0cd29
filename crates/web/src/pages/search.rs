//! `/`: event search. A plain GET form, so it works without JavaScript; "near me" fills the
//! coordinates from the browser's location when scripts run. Answered by the node's search
//! index through the very request parser and renderer of `GET /v1/events`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use boxoffice_domain::event::Category;
use boxoffice_search::query::SearchRequest;
use maud::{Markup, html};
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};

use crate::Site;
use crate::format::{group, money, parse_money, when};
use crate::layout::{Notice, Page, notice};
use crate::pages::enc;
use crate::session::Session;

/// The form's fields, as typed (all optional).
#[derive(Debug, Default, Clone)]
struct Form {
    q: String,
    zip: String,
    lat: String,
    lon: String,
    radius: String,
    from: String,
    to: String,
    min: String,
    max: String,
    category: String,
    sort: String,
    available: bool,
    cursor: String,
}

const FIELDS: [&str; 13] = [
    "q",
    "zip",
    "lat",
    "lon",
    "radius",
    "from",
    "to",
    "min",
    "max",
    "category",
    "sort",
    "available",
    "cursor",
];

impl Form {
    fn parse(raw: Option<&str>) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| "The search address is not valid.".to_owned())?;
        let mut f = Form::default();
        for (k, v) in pairs {
            let v = v.trim().to_owned();
            match k.as_str() {
                "q" => f.q = v,
                "zip" => f.zip = v,
                "lat" => f.lat = v,
                "lon" => f.lon = v,
                "radius" => f.radius = v,
                "from" => f.from = v,
                "to" => f.to = v,
                "min" => f.min = v,
                "max" => f.max = v,
                "category" => f.category = v,
                "sort" => f.sort = v,
                "available" => f.available = !v.is_empty() && v != "0" && v != "false",
                "cursor" => f.cursor = v,
                // Anything else (tracking parameters, old bookmarks) is ignored.
                _ => {}
            }
        }
        Ok(f)
    }

    /// The search API's parameters for these fields, or which field is wrong and why.
    fn to_api(&self) -> Result<Vec<(String, String)>, (&'static str, &'static str)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: String| p.push((k.to_owned(), v));
        if !self.q.is_empty() {
            push("q", self.q.clone());
        }
        if !self.zip.is_empty() {
            push("zipCode", self.zip.clone());
        }
        if !self.lat.is_empty() || !self.lon.is_empty() {
            push("lat", self.lat.clone());
            push("lon", self.lon.clone());
            if !self.radius.is_empty() {
                push("radiusKm", self.radius.clone());
            }
        }
        if !self.from.is_empty() {
            let d = date(&self.from).ok_or(("from", "Enter the first date as YYYY-MM-DD."))?;
            push(
                "startsAfter",
                rfc3339(d.with_time(Time::MIDNIGHT).assume_utc()),
            );
        }
        if !self.to.is_empty() {
            let d = date(&self.to).ok_or(("to", "Enter the last date as YYYY-MM-DD."))?;
            let end = Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT);
            push("startsBefore", rfc3339(d.with_time(end).assume_utc()));
        }
        if !self.min.is_empty() {
            let c = parse_money(&self.min).ok_or((
                "min",
                "Enter the lowest price as a number, like 25 or 25.50.",
            ))?;
            push("priceMin", c.to_string());
        }
        if !self.max.is_empty() {
            let c = parse_money(&self.max)
                .ok_or(("max", "Enter the highest price as a number, like 200."))?;
            push("priceMax", c.to_string());
        }
        if !self.category.is_empty() {
            push("category", self.category.clone());
        }
        if !self.sort.is_empty() {
            push("sort", self.sort.clone());
        }
        if self.available {
            push("availableOnly", "true".into());
        }
        if !self.cursor.is_empty() {
            push("cursor", self.cursor.clone());
        }
        Ok(p)
    }

    /// This search as a query string, with one field replaced (or removed when `None`).
    fn link_with(&self, field: &str, value: Option<&str>) -> String {
        let mut parts = Vec::new();
        for name in FIELDS {
            let current = match name {
                "q" => self.q.as_str(),
                "zip" => &self.zip,
                "lat" => &self.lat,
                "lon" => &self.lon,
                "radius" => &self.radius,
                "from" => &self.from,
                "to" => &self.to,
                "min" => &self.min,
                "max" => &self.max,
                "category" => &self.category,
                "sort" => &self.sort,
                "available" if self.available => "1",
                _ => "",
            };
            // A changed search starts again from its first page.
            let v = if name == field {
                value.unwrap_or("")
            } else if name == "cursor" {
                ""
            } else {
                current
            };
            if !v.is_empty() {
                parts.push(format!("{name}={}", enc(v)));
            }
        }
        format!("/?{}", parts.join("&"))
    }
}

fn date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::format::rfc3339(t)
}

/// Which API parameter maps back to which form field, for error messages.
fn field_of(api_param: &str) -> &'static str {
    match api_param {
        "q" => "q",
        "zipCode" => "zip",
        "lat" | "lon" => "lat",
        "radiusKm" => "radius",
        "startsAfter" => "from",
        "startsBefore" => "to",
        "priceMin" => "min",
        "priceMax" => "max",
        "category" => "category",
        "sort" => "sort",
        "cursor" => "cursor",
        _ => "q",
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    events: Vec<Hit>,
    next_cursor: Option<String>,
    total: u64,
    facets: Facets,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hit {
    event_id: String,
    name: String,
    #[serde(default)]
    performers: Vec<String>,
    category: String,
    starts_at: String,
    venue: HitVenue,
    min_price_cents: i64,
    max_price_cents: i64,
    currency: String,
    capacity: u32,
    seats_left: u32,
    distance_km: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HitVenue {
    name: String,
    city: String,
    zip_code: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Facets {
    category: serde_json::Map<String, serde_json::Value>,
    price_band: Vec<PriceBand>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceBand {
    min_cents: i64,
    max_cents: Option<i64>,
    count: u64,
}

pub async fn page(State(site): State<Site>, session: Session, RawQuery(raw): RawQuery) -> Response {
    let form = match Form::parse(raw.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            return render(
                &session,
                &Form::default(),
                Err((None, e)),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let pairs = match form.to_api() {
        Ok(p) => p,
        Err((field, msg)) => {
            return render(
                &session,
                &form,
                Err((Some(field), msg.to_owned())),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let request = match SearchRequest::parse(&pairs) {
        Ok(r) => r,
        Err(e) => {
            let field = field_of(&e.parameter);
            let msg = match field {
                "cursor" => {
                    "That page of results is out of date. Start the search again.".to_owned()
                }
                _ => format!("Check this field: {}", e.message),
            };
            return render(
                &session,
                &form,
                Err((Some(field), msg)),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    match site.state.search.search(request).await {
        Ok(body) => match serde_json::from_slice::<Answer>(&body) {
            Ok(answer) => render(&session, &form, Ok(answer), StatusCode::OK),
            Err(e) => {
                tracing::error!(error = %e, "search answer did not parse");
                render(
                    &session,
                    &form,
                    Err((None, "Search failed. Try again.".into())),
                    StatusCode::INTERNAL_SERVER_ERROR,
                )
            }
        },
        Err(boxoffice_search::SearchError::Overloaded) => render(
            &session,
            &form,
            Err((
                None,
                "Search is busy right now. Try again in a moment.".into(),
            )),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Err(e) => {
            tracing::error!(error = %e, "search failed");
            render(
                &session,
                &form,
                Err((
                    None,
                    "Search is not available right now. Try again in a moment.".into(),
                )),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
}

type Outcome = Result<Answer, (Option<&'static str>, String)>;

fn render(session: &Session, form: &Form, outcome: Outcome, status: StatusCode) -> Response {
    let title = if form.q.is_empty() {
        "Find events".to_owned()
    } else {
        format!("“{}” — events", form.q)
    };
    let (answer, error) = match outcome {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e)),
    };
    let bad = |f: &str| error.as_ref().is_some_and(|(field, _)| *field == Some(f));
    let err_id = |f: &str| if bad(f) { Some("search-error") } else { None };
    Page::new(title, session)
        .status(status)
        .render(html! {
        h1 { "Find events" }
        form.search-form method="get" action="/" role="search" aria-label="Events" {
            div.search-main {
                label for="q" { "Search events" }
                input #q type="search" name="q" value=(form.q)
                    placeholder="Artist, team, show, venue or city" autocomplete="off"
                    aria-invalid=[bad("q").then_some("true")] aria-describedby=[err_id("q")];
                button type="submit" { "Search" }
            }
            details.filters open[has_filters(form)] {
                summary { "Filters" }
                div.filter-grid {
                    p {
                        label for="zip" { "ZIP code" }
                        input #zip type="text" name="zip" value=(form.zip) inputmode="numeric"
                            autocomplete="postal-code" maxlength="16"
                            aria-invalid=[bad("zip").then_some("true")] aria-describedby=[err_id("zip")];
                    }
                    p.near-me {
                        input #lat type="hidden" name="lat" value=(form.lat);
                        input #lon type="hidden" name="lon" value=(form.lon);
                        label for="radius" { "Distance" }
                        select #radius name="radius" {
                            @for (v, label) in [("", "Any distance"), ("25", "Within 25 km"), ("50", "Within 50 km"), ("100", "Within 100 km"), ("250", "Within 250 km")] {
                                option value=(v) selected[form.radius == v] { (label) }
                            }
                        }
                        button #near-me type="button" hidden { "Near me" }
                        span #near-me-status role="status" {
                            @if !form.lat.is_empty() { "Searching near your location." }
                        }
                    }
                    p {
                        label for="from" { "From date" }
                        input #from type="date" name="from" value=(form.from)
                            aria-invalid=[bad("from").then_some("true")] aria-describedby=[err_id("from")];
                    }
                    p {
                        label for="to" { "To date" }
                        input #to type="date" name="to" value=(form.to)
                            aria-invalid=[bad("to").then_some("true")] aria-describedby=[err_id("to")];
                    }
                    p {
                        label for="min" { "Lowest price ($)" }
                        input #min type="text" name="min" value=(form.min) inputmode="decimal" size="6"
                            aria-invalid=[bad("min").then_some("true")] aria-describedby=[err_id("min")];
                    }
                    p {
                        label for="max" { "Highest price ($)" }
                        input #max type="text" name="max" value=(form.max) inputmode="decimal" size="6"
                            aria-invalid=[bad("max").then_some("true")] aria-describedby=[err_id("max")];
                    }
                    p {
                        label for="category" { "Category" }
                        select #category name="category" {
                            option value="" selected[form.category.is_empty()] { "Any category" }
                            @for c in Category::ALL {
                                option value=(c.as_str()) selected[form.category == c.as_str()] { (title_case(c.as_str())) }
                            }
                        }
                    }
                    p {
                        label for="sort" { "Sort by" }
                        select #sort name="sort" {
                            @for (v, label) in [("", "Best match"), ("date", "Date"), ("price", "Price"), ("distance", "Distance")] {
                                option value=(v) selected[form.sort == v] { (label) }
                            }
                        }
                    }
                    p.check {
                        input #available type="checkbox" name="available" value="1" checked[form.available];
                        label for="available" { "Only events with tickets left" }
                    }
                }
            }
        }
        @if let Some((_, msg)) = &error {
            div #search-error.notice.error role="alert" { p { (msg) } }
        }
        @if let Some(a) = &answer {
            div.results-layout {
                (facets(form, a))
                section.results aria-labelledby="results-h" {
                    h2 #results-h {
                        @if a.total == 0 { "No events found" }
                        @else if a.total == 1 { "1 event" }
                        @else { (group(a.total)) " events" }
                    }
                    @if a.events.is_empty() {
                        p { "Nothing matches. Try fewer words, another spelling or fewer filters." }
                    } @else {
                        ol.event-list {
                            @for hit in &a.events { li { (card(hit)) } }
                        }
                    }
                    nav.pager aria-label="Pages" {
                        @if !form.cursor.is_empty() {
                            a href=(form.link_with("cursor", None)) { "First page" }
                        }
                        @if let Some(next) = &a.next_cursor {
                            a rel="next" href=(form.link_with("cursor", Some(next))) { "Next page" }
                        }
                    }
                }
            }
        }
        @if answer.is_none() && error.is_none() {
            (notice(Notice::Info, "Search for an event."))
        }
    })
}

fn has_filters(f: &Form) -> bool {
    !(f.zip.is_empty()
        && f.lat.is_empty()
        && f.from.is_empty()
        && f.to.is_empty()
        && f.min.is_empty()
        && f.max.is_empty()
        && f.category.is_empty()
        && f.sort.is_empty()
        && !f.available)
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn facets(form: &Form, a: &Answer) -> Markup {
    let mut cats: Vec<(&String, u64)> = a
        .facets
        .category
        .iter()
        .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    cats.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    html! {
        aside.facets aria-labelledby="facets-h" {
            h2 #facets-h { "Refine" }
            h3 { "Category" }
            ul {
                @if !form.category.is_empty() {
                    li { a href=(form.link_with("category", None)) { "Any category" } }
                }
                @for (name, n) in &cats {
                    li {
                        @if form.category == **name {
                            span aria-current="true" { strong { (title_case(name)) } " (" (group(*n)) ")" }
                        } @else {
                            a href=(form.link_with("category", Some(name))) {
                                (title_case(name)) " (" (group(*n)) ")"
                            }
                        }
                    }
                }
            }
            h3 { "Price" }
            ul {
                @if !form.min.is_empty() || !form.max.is_empty() {
                    li { a href=(any_price(form)) { "Any price" } }
                }
                @for band in a.facets.price_band.iter().filter(|b| b.count > 0) {
                    li {
                        a href=(price_link(form, band)) {
                            (band_label(band)) " (" (group(band.count)) ")"
                        }
                    }
                }
            }
        }
    }
}

fn any_price(form: &Form) -> String {
    let mut f = form.clone();
    f.min.clear();
    f.max.clear();
    f.link_with("cursor", None)
}

fn band_label(b: &PriceBand) -> String {
    match b.max_cents {
        Some(max) if b.min_cents == 0 => format!("Under {}", money(max, "USD")),
        Some(max) => format!("{} – {}", money(b.min_cents, "USD"), money(max, "USD")),
        None => format!("{} and up", money(b.min_cents, "USD")),
    }
}

fn price_link(form: &Form, b: &PriceBand) -> String {
    let mut f = form.clone();
    f.min = if b.min_cents == 0 {
        String::new()
    } else {
        (b.min_cents / 100).to_string()
    };
    f.max = b
        .max_cents
        .map(|m| format!("{:.2}", (m - 1).max(0) as f64 / 100.0))
        .unwrap_or_default();
    f.link_with("cursor", None)
}

fn card(hit: &Hit) -> Markup {
    let starts = OffsetDateTime::parse(
        &hit.starts_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok();
    let (badge_class, badge) = availability(hit.seats_left, hit.capacity);
    let heading_id = format!("ev-{}", hit.event_id);
    html! {
        article.event-card aria-labelledby=(heading_id) {
            h3 #(heading_id) { a href={ "/events/" (hit.event_id) } { (hit.name) } }
            @if !hit.performers.is_empty() && hit.performers.join(", ") != hit.name {
                p.performers { (hit.performers.join(", ")) }
            }
            p.when {
                @if let Some(t) = starts { time datetime=(hit.starts_at) { (when(t)) } }
                " · " (hit.venue.name) ", " (hit.venue.city) " " (hit.venue.zip_code)
                @if let Some(d) = hit.distance_km { " · " (format!("{d:.0}")) " km away" }
            }
            p.meta {
                span.category { (title_case(&hit.category)) }
                " · "
                @if hit.min_price_cents == hit.max_price_cents {
                    (money(hit.min_price_cents, &hit.currency))
                } @else {
                    "From " (money(hit.min_price_cents, &hit.currency))
                }
                " "
                span class={ "badge " (badge_class) } { (badge) }
            }
        }
    }
}

/// The badge a result shows: sold out, few left, or available, with the count.
pub fn availability(left: u32, capacity: u32) -> (&'static str, String) {
    if left == 0 {
        ("sold-out", "Sold out".to_owned())
    } else if u64::from(left) * 10 <= u64::from(capacity) || left <= 20 {
        ("few-left", format!("Only {} left", group(u64::from(left))))
    } else {
        (
            "available",
            format!("{} tickets left", group(u64::from(left))),
        )
    }
}
