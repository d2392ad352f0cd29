//! The catalog as organizers build it: create an event, read it back, read its seat map.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use boxoffice_domain::ValidationError;
use boxoffice_domain::event::{
    Category, Event, EventParts, EventSpec, Policies, SectionKind, SectionSpec, Venue, WaitingRoom,
    to_micros,
};
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::SeatMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Organizer;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event))
        .routes(routes!(get_event))
        .routes(routes!(get_seats))
        .routes(routes!(seat_events))
}

/// An event as an organizer describes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEventRequest {
    #[schema(example = "Taylor Swift | The Eras Tour")]
    pub name: String,
    #[serde(default)]
    pub performers: Vec<String>,
    /// One of concert, sports, theater, comedy, festival, family, conference, arts, other.
    #[schema(example = "concert")]
    pub category: String,
    #[serde(default)]
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// When tickets go on sale; omitted means now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub on_sale_at: Option<OffsetDateTime>,
    #[schema(example = "USD")]
    pub currency: String,
    pub venue: VenueBody,
    pub sections: Vec<SectionBody>,
    #[serde(default)]
    pub policies: Option<PoliciesBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VenueBody {
    pub name: String,
    #[serde(default)]
    pub address: String,
    pub city: String,
    pub zip_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub lat: f64,
    pub lon: f64,
}

/// Seated (`rows` × `seatsPerRow`) or general admission (`capacity`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SectionBody {
    pub name: String,
    pub rows: Option<u32>,
    pub seats_per_row: Option<u32>,
    pub capacity: Option<u32>,
    pub price_cents: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoliciesBody {
    pub max_tickets_per_customer: Option<u32>,
    /// Hours after confirmation during which a booking can be cancelled for a refund.
    pub refund_window_hours: Option<u32>,
    /// Resale price cap as a percentage of face value.
    pub resale_max_price_percent: Option<u32>,
    /// A waiting room in front of the on-sale.
    pub waiting_room: Option<WaitingRoomBody>,
}

/// An on-sale's waiting room: buyers join from `opensAt`; those who join before `onSaleAt` get a
/// random place at `onSaleAt`, later ones queue behind in order; `admitPerMinute` buyers are let
/// in per minute, each for `admissionMinutes`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitingRoomBody {
    #[serde(with = "time::serde::rfc3339")]
    pub opens_at: OffsetDateTime,
    pub admit_per_minute: u32,
    pub admission_minutes: u32,
}

impl CreateEventRequest {
    fn into_spec(self, now: OffsetDateTime) -> Result<EventSpec, ValidationError> {
        let v = self.venue;
        let venue = Venue::new(
            &v.name,
            &v.address,
            &v.city,
            &v.zip_code,
            &v.country,
            v.lat,
            v.lon,
        )
        .map_err(|e| e.within("venue"))?;
        let sections = self
            .sections
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.into_spec()
                    .map_err(|e| e.within(&format!("sections[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let p = self.policies.unwrap_or(PoliciesBody {
            max_tickets_per_customer: None,
            refund_window_hours: None,
            resale_max_price_percent: None,
            waiting_room: None,
        });
        let mut policies = Policies::new(
            p.max_tickets_per_customer,
            p.refund_window_hours,
            p.resale_max_price_percent,
        )
        .map_err(|e| e.within("policies"))?;
        if let Some(r) = p.waiting_room {
            policies.waiting_room = Some(
                WaitingRoom::new(r.opens_at, r.admit_per_minute, r.admission_minutes)
                    .map_err(|e| e.within("policies"))?,
            );
        }
        EventSpec::new(
            EventParts {
                name: self.name,
                performers: self.performers,
                category: Category::parse(&self.category)?,
                description: self.description,
                starts_at: self.starts_at,
                on_sale_at: self.on_sale_at,
                currency: self.currency.parse()?,
                venue,
                sections,
                policies,
            },
            now,
        )
    }
}

impl SectionBody {
    fn into_spec(self) -> Result<SectionSpec, ValidationError> {
        match (self.rows, self.seats_per_row, self.capacity) {
            (Some(rows), Some(per_row), None) => {
                SectionSpec::seated(&self.name, rows, per_row, self.price_cents)
            }
            (None, None, Some(capacity)) => {
                SectionSpec::general_admission(&self.name, capacity, self.price_cents)
            }
            _ => Err(ValidationError::new(
                "",
                "give either rows and seatsPerRow (seated) or capacity (general admission)",
            )),
        }
    }
}

/// An event as everyone sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    pub name: String,
    pub performers: Vec<String>,
    pub category: String,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub on_sale_at: OffsetDateTime,
    /// NOT_YET_ON_SALE, ON_SALE or STARTED.
    pub sale_status: String,
    pub currency: String,
    pub venue: VenueBody,
    pub sections: Vec<SectionResponse>,
    pub policies: PoliciesResponse,
    pub capacity: u32,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub organizer_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SectionResponse {
    /// Position of the section in the event, from 1; the first part of its seat ids.
    pub section_no: u16,
    pub name: String,
    /// `seated` or `generalAdmission`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats_per_row: Option<u32>,
    pub capacity: u32,
    pub price_cents: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoliciesResponse {
    pub max_tickets_per_customer: u32,
    pub refund_window_hours: u32,
    pub resale_max_price_percent: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoomBody>,
}

impl EventResponse {
    pub fn new(e: &Event, now: OffsetDateTime) -> Self {
        let s = &e.spec;
        let v = &s.venue;
        Self {
            event_id: e.id,
            name: s.name.clone(),
            performers: s.performers.clone(),
            category: s.category.as_str().to_owned(),
            description: s.description.clone(),
            starts_at: s.starts_at,
            on_sale_at: s.on_sale_at,
            sale_status: e.sale_state(now).as_str().to_owned(),
            currency: s.currency.to_string(),
            venue: VenueBody {
                name: v.name.clone(),
                address: v.address.clone(),
                city: v.city.clone(),
                zip_code: v.zip_code.clone(),
                country: v.country.clone(),
                lat: v.lat,
                lon: v.lon,
            },
            sections: s
                .sections
                .iter()
                .map(|sec| {
                    let (kind, rows, per_row) = match sec.kind {
                        SectionKind::Seated {
                            rows,
                            seats_per_row,
                        } => ("seated", Some(rows), Some(seats_per_row)),
                        SectionKind::GeneralAdmission { .. } => ("generalAdmission", None, None),
                    };
                    SectionResponse {
                        section_no: sec.number,
                        name: sec.name.clone(),
                        kind: kind.to_owned(),
                        rows,
                        seats_per_row: per_row,
                        capacity: sec.kind.capacity(),
                        price_cents: sec.price.cents(),
                    }
                })
                .collect(),
            policies: PoliciesResponse {
                max_tickets_per_customer: s.policies.max_tickets_per_customer,
                refund_window_hours: s.policies.refund_window_hours,
                resale_max_price_percent: s.policies.resale_max_price_percent,
                waiting_room: s.policies.waiting_room.map(|r| WaitingRoomBody {
                    opens_at: r.opens_at,
                    admit_per_minute: r.admit_per_minute,
                    admission_minutes: r.admission_minutes,
                }),
            },
            capacity: s.capacity(),
            min_price_cents: s.min_price().cents(),
            max_price_cents: s.max_price().cents(),
            organizer_id: e.organizer.to_string(),
            created_at: e.created_at,
        }
    }
}

/// Create an event with its venue, sections and policies. Every seat is laid out at once.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body = CreateEventRequest,
    responses(
        (status = 201, description = "Created", body = EventResponse),
        (status = 400, description = "Invalid event", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an organizer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(organizer = %who.sub))]
pub async fn create_event(
    State(state): State<AppState>,
    Organizer(who): Organizer,
    Json(body): Json<CreateEventRequest>,
) -> ApiResult<impl IntoResponse> {
    let now = state.clock.now();
    let spec = body.into_spec(now)?;
    let event = Event {
        id: EventId::new(),
        organizer: who.sub.clone(),
        created_at: to_micros(now),
        spec,
        cancelled_at: None,
    };
    state.store.create_event(&event).await?;
    tracing::info!(event_id = %event.id, seats = event.spec.capacity(), "event created");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/events/{}", event.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(EventResponse::new(&event, now)),
    ))
}

pub(crate) fn parse_event_id(raw: &str) -> Result<EventId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("event"))
}

/// One event.
#[utoipa::path(
    get,
    path = "/v1/events/{eventId}",
    tag = "events",
    params(("eventId" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event", body = EventResponse),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_event(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
) -> ApiResult<Json<EventResponse>> {
    let id = parse_event_id(&event_id)?;
    let event = state
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok(Json(EventResponse::new(&event, state.clock.now())))
}

/// The seat map: every numbered seat with its availability, and per-section counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatMapResponse {
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    pub sections: Vec<SectionAvailabilityResponse>,
    pub seats: Vec<SeatResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SectionAvailabilityResponse {
    pub section_no: u16,
    pub name: String,
    pub kind: String,
    pub price_cents: i64,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    /// Sold places offered for resale right now (see `GET /v1/events/{eventId}/listings`).
    pub resale: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatResponse {
    pub seat_id: String,
    /// The section's name.
    pub section: String,
    pub row: Option<String>,
    pub number: u32,
    /// The face value; for a RESALE seat, the listing's price.
    pub price_cents: i64,
    /// OPEN, HOLD, PENDING, SOLD, or RESALE (sold, and offered for resale: buy it with
    /// `listingId`).
    pub status: String,
    /// The listing to buy, for a RESALE seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub listing_id: Option<boxoffice_domain::ids::ListingId>,
}

impl SeatMapResponse {
    pub fn new(event: &Event, map: SeatMap) -> Self {
        let name_of = |n: u16| {
            event
                .spec
                .section(n)
                .map(|s| s.name.clone())
                .unwrap_or_default()
        };
        Self {
            event_id: map.event_id,
            sections: map
                .sections
                .iter()
                .filter_map(|a| {
                    let s = event.spec.section(a.section)?;
                    Some(SectionAvailabilityResponse {
                        section_no: a.section,
                        name: s.name.clone(),
                        kind: if s.kind.is_seated() {
                            "seated"
                        } else {
                            "generalAdmission"
                        }
                        .to_owned(),
                        price_cents: s.price.cents(),
                        capacity: a.capacity,
                        available: a.available,
                        held: a.held,
                        sold: a.sold,
                        resale: a.resale,
                    })
                })
                .collect(),
            seats: map
                .seats
                .into_iter()
                .map(|s| SeatResponse {
                    status: seat_status(&s).to_owned(),
                    section: name_of(s.section),
                    seat_id: s.id.to_string(),
                    row: s.row,
                    number: s.number,
                    price_cents: s.resale.map_or(s.price.cents(), |(_, p)| p),
                    listing_id: s.resale.map(|(l, _)| l),
                })
                .collect(),
        }
    }
}

/// A seat's status as clients see it: its state, or RESALE for a sold seat on offer.
pub fn seat_status(s: &boxoffice_domain::ports::SeatView) -> &'static str {
    if s.resale.is_some() {
        "RESALE"
    } else {
        s.state.as_str()
    }
}

/// The seat map of an event.
#[utoipa::path(
    get,
    path = "/v1/events/{eventId}/seats",
    tag = "events",
    params(("eventId" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "Seat map", body = SeatMapResponse),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_seats(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
) -> ApiResult<Json<SeatMapResponse>> {
    let id = parse_event_id(&event_id)?;
    let event = state
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let map = state.store.seat_map(&event, state.clock.now()).await?;
    Ok(Json(SeatMapResponse::new(&event, map)))
}

/// The seat map live, as server-sent events: `seats` with every section's counts at once, then
/// a `seats` event whenever availability changes (the seats whose status changed, and every
/// section's counts). A client too slow to keep up is dropped: reconnect and read the map again.
#[utoipa::path(
    get,
    path = "/v1/events/{eventId}/seats/events",
    tag = "events",
    params(("eventId" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "A text/event-stream of `seats` events", content_type = "text/event-stream"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This node follows no change feed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn seat_events(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
) -> ApiResult<axum::response::Response> {
    use futures_util::StreamExt;
    let id = parse_event_id(&event_id)?;
    let event = state
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let Some((first, rx)) = state.seats.watch(event).await? else {
        return Err(Problem::from_status(StatusCode::SERVICE_UNAVAILABLE).into());
    };
    let event = |u: &crate::seat_stream::SeatUpdate| {
        axum::response::sse::Event::default()
            .event("seats")
            .id(u.seq.to_string())
            .json_data(u)
            .unwrap_or_else(|_| axum::response::sse::Event::default().comment("unserialisable"))
    };
    let first = futures_util::stream::once({
        let ev = event(&first);
        async move { ev }
    });
    // A watcher that lags is dropped: the stream ends at the first gap.
    let rest = crate::seat_stream::updates(rx).map(move |u| event(&u));
    let stream = first.chain(rest).map(Ok::<_, std::convert::Infallible>);
    Ok(crate::routes::queue::sse_response(&state, stream))
}
