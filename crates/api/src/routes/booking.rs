//! Holding seats, paying, and managing bookings and tickets.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_domain::booking::{BookingStatus, HoldError, HoldRequest, Selection};
use boxoffice_domain::event::{Event, SaleState};
use boxoffice_domain::ids::{BookingId, EventId, ListingId, SeatId, truncate};
use boxoffice_domain::ports::{CheckIn, CommitBegin, CommitError, CommitRequest, ReleaseError};
use boxoffice_domain::rules;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Principal, Role, Scanner};
use crate::booking::{BookingResponse, CommitReply, TicketResponse, fingerprint, provider_key};
use crate::error::{ApiError, ApiResult, PROBLEM_JSON, Problem};
use crate::extract::Json;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(attempt))
        .routes(routes!(commit))
        .routes(routes!(get_booking, update_booking, delete_booking))
        .routes(routes!(booking_events))
        .routes(routes!(my_tickets))
        .routes(routes!(check_in))
        .routes(routes!(ticket_keys))
}

pub(crate) fn event_cancelled() -> ApiError {
    Problem::new(
        StatusCode::CONFLICT,
        "event-cancelled",
        "The event was cancelled by its organizer",
    )
    .into()
}

/// Most seats one request may hold.
const MAX_SEATS_PER_REQUEST: usize = 100;

/// Hold seats: either `seatIds`, or `section` and `quantity` for the best available.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttemptRequest {
    #[schema(value_type = String, format = Uuid)]
    pub event_id: String,
    /// Exact seats (or general-admission places), all or none.
    pub seat_ids: Option<Vec<String>>,
    /// A section name, for best available.
    pub section: Option<String>,
    pub quantity: Option<u32>,
    /// Resale listings to buy, all or none.
    #[schema(value_type = Option<Vec<String>>)]
    pub listing_ids: Option<Vec<String>>,
    /// One resale listing to buy (the same as `listingIds` with one id).
    #[schema(value_type = Option<String>)]
    pub listing_id: Option<String>,
}

pub(crate) async fn load_event(state: &AppState, raw: &str) -> ApiResult<Arc<Event>> {
    let id: EventId = raw.parse().map_err(|_| ApiError::not_found("event"))?;
    state
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))
}

fn customer(who: &Principal) -> ApiResult<()> {
    who.require(&[Role::Customer])
}

/// Hold seats for a few minutes.
#[utoipa::path(
    post,
    path = "/v1/attempt",
    tag = "booking",
    request_body = AttemptRequest,
    responses(
        (status = 201, description = "Held", body = BookingResponse),
        (status = 400, description = "Invalid request or unknown seats", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A waiting-room event and no valid Admission-Token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Seats unavailable, not enough left, ticket limit, or not on sale", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The event has started", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub))]
pub async fn attempt(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Json(body): Json<AttemptRequest>,
) -> ApiResult<Response> {
    customer(&who)?;
    let event = load_event(&state, &body.event_id).await?;
    if event.spec.policies.waiting_room.is_some() {
        let token = headers
            .get("admission-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        if state.rooms.admitted(token, &who.sub, event.id).is_none() {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admission-required",
                "This on-sale has a waiting room: join it and hold seats once admitted",
            )
            .detail(if token.is_empty() {
                "send the admission token from the waiting room as the Admission-Token header"
            } else {
                "the admission token is not valid for you and this event, or has expired"
            })
            .with("queueUrl", format!("/v1/events/{}/queue", event.id))
            .into());
        }
    }
    let listings = match (body.listing_ids, body.listing_id) {
        (Some(ids), None) => Some(ids),
        (None, Some(id)) => Some(vec![id]),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                "listingId",
                "give either listingIds or listingId",
            )));
        }
    };
    let selection = match (body.seat_ids, body.section, body.quantity, listings) {
        (None, None, None, Some(ids)) => {
            if ids.is_empty() || ids.len() > MAX_SEATS_PER_REQUEST {
                return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                    "listingIds",
                    format!("give 1 to {MAX_SEATS_PER_REQUEST} listings"),
                )));
            }
            let mut listings: Vec<ListingId> = Vec::with_capacity(ids.len());
            for raw in &ids {
                let l: ListingId = raw.parse().map_err(|_| {
                    ApiError::invalid(boxoffice_domain::ValidationError::new(
                        "listingIds",
                        format!("`{}` is not a listing id", truncate(raw, 40)),
                    ))
                })?;
                if listings.contains(&l) {
                    return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                        "listingIds",
                        format!("`{}` is listed twice", truncate(raw, 40)),
                    )));
                }
                listings.push(l);
            }
            Selection::Listings(listings)
        }
        (Some(ids), None, None, None) => {
            if ids.is_empty() || ids.len() > MAX_SEATS_PER_REQUEST {
                return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                    "seatIds",
                    format!("give 1 to {MAX_SEATS_PER_REQUEST} seats"),
                )));
            }
            let mut seats = Vec::with_capacity(ids.len());
            for raw in &ids {
                let seat = SeatId::parse(raw)?;
                if seats.contains(&seat) {
                    return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                        "seatIds",
                        format!("`{}` is listed twice", truncate(raw, 40)),
                    )));
                }
                seats.push(seat);
            }
            let unknown: Vec<_> = seats
                .iter()
                .filter(|s| event.spec.seat(s).is_none())
                .map(|s| s.to_string())
                .collect();
            if !unknown.is_empty() {
                return Err(unknown_seats(unknown));
            }
            Selection::Seats(seats)
        }
        (None, Some(section), Some(quantity), None) => {
            let sec = event.spec.section_named(&section).ok_or_else(|| {
                ApiError::invalid(boxoffice_domain::ValidationError::new(
                    "section",
                    format!("the event has no section `{}`", truncate(&section, 60)),
                ))
            })?;
            if quantity == 0 || quantity as usize > MAX_SEATS_PER_REQUEST {
                return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                    "quantity",
                    format!("must be between 1 and {MAX_SEATS_PER_REQUEST}"),
                )));
            }
            Selection::BestAvailable {
                section: sec.number,
                quantity,
            }
        }
        _ => {
            return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                "",
                "give either seatIds, or section and quantity, or listingIds",
            )));
        }
    };
    let now = boxoffice_domain::event::to_micros(state.clock.now());
    match event.sale_state(now) {
        SaleState::OnSale => {}
        SaleState::Cancelled => return Err(event_cancelled()),
        SaleState::NotYetOnSale => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "not-on-sale",
                "Tickets are not on sale yet",
            )
            .with("onSaleAt", rfc3339(event.spec.on_sale_at))
            .into());
        }
        SaleState::Started => {
            return Err(Problem::new(
                StatusCode::GONE,
                "event-started",
                "The event has already started",
            )
            .into());
        }
    }
    let hold_ttl = time::Duration::try_from(state.booking.config.hold_ttl)
        .unwrap_or(time::Duration::minutes(5));
    let req = HoldRequest {
        booking_id: BookingId::new_in(event.id.slot()),
        event: event.clone(),
        customer: who.sub.clone(),
        selection,
        now,
        expires_at: boxoffice_domain::event::to_micros(now + hold_ttl),
    };
    // Scaled out, the hold gate turns away buyers of seats held elsewhere before the store.
    let passage = state.holds.take(&req, state.booking.config.hold_ttl).await;
    if passage == crate::hold_gate::Passage::Refused {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "seats-unavailable",
            "Some of these seats are taken",
        )
        .detail("none were held; choose other seats")
        .into());
    }
    let held = if passage == crate::hold_gate::Passage::Marked {
        // Marked seats are cleared if the store refuses, even when the buyer has gone (the
        // request dropped mid-way): the hold and its undo run to the end on their own task.
        let (st, rq) = (state.clone(), req.clone());
        tokio::spawn(async move {
            let held = st.store.hold(&rq).await;
            if held.is_err() {
                st.holds.undo(&rq).await;
            }
            held
        })
        .await
        .map_err(|e| ApiError::Internal(format!("hold task: {e}")))?
    } else {
        state.store.hold(&req).await
    };
    let booking = match held {
        Ok(b) => b,
        Err(HoldError::Unavailable(seats)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "seats-unavailable",
                "Some of these seats are taken",
            )
            .detail("none were held; choose other seats")
            .with(
                "seats",
                seats.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .into());
        }
        Err(HoldError::NotEnough {
            requested,
            available,
        }) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "not-enough-seats",
                "Not enough seats left in this section",
            )
            .detail(format!("{available} available, {requested} requested"))
            .with("available", available)
            .into());
        }
        Err(HoldError::Busy) => {
            let mut res = Problem::new(
                StatusCode::CONFLICT,
                "seats-contended",
                "Other buyers took the seats picked for you",
            )
            .detail("seats are still available; try again")
            .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(res);
        }
        Err(HoldError::NoSuchSeats(seats)) => {
            return Err(unknown_seats(seats.iter().map(|s| s.to_string()).collect()));
        }
        Err(HoldError::LimitExceeded { limit, already }) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "ticket-limit",
                "That would exceed the tickets allowed per customer",
            )
            .detail(format!(
                "at most {limit} tickets per customer for this event; you hold or bought {already}"
            ))
            .with("limit", limit)
            .with("held", already)
            .into());
        }
        Err(HoldError::NoSuchListings(ids)) => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "listing-not-found",
                "No such listing for this event",
            )
            .with(
                "listingIds",
                ids.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            )
            .into());
        }
        Err(HoldError::ListingsUnavailable(ids)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "listing-unavailable",
                "Some of these listings are held by another buyer, sold or withdrawn",
            )
            .detail("none were held")
            .with(
                "listingIds",
                ids.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            )
            .into());
        }
        Err(HoldError::OwnListing) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "own-listing",
                "You cannot buy your own listing; withdraw it instead",
            )
            .into());
        }
        Err(HoldError::EventCancelled) => return Err(event_cancelled()),
        Err(HoldError::Store(e)) => return Err(e.into()),
    };
    tracing::info!(booking_id = %booking.id, seats = booking.seats.len(), "seats held");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/booking/{}", booking.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(BookingResponse::new(&booking, &event, now)),
    )
        .into_response())
}

fn unknown_seats(seats: Vec<String>) -> ApiError {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "unknown-seats",
        "The event has no such seats",
    )
    .with("seats", seats)
    .into()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Pay for a held booking.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitRequestBody {
    #[schema(value_type = String, format = Uuid)]
    pub booking_id: String,
    /// A payment method token, e.g. `pm_card_visa`.
    pub payment_method: String,
}

/// The client's idempotency key: `Idempotency-Key`, or the seed design's `idempotentKey`.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let read = |name: &str| -> ApiResult<Option<String>> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => {
                let s = v.to_str().map_err(|_| bad_key())?.trim().to_owned();
                let ok = !s.is_empty()
                    && s.len() <= 255
                    && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
                if ok { Ok(Some(s)) } else { Err(bad_key()) }
            }
        }
    };
    match (read("idempotency-key")?, read("idempotentkey")?) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "idempotency-key-mismatch",
            "Idempotency-Key and idempotentKey differ",
        )),
        (Some(k), _) | (None, Some(k)) => Ok(k),
        (None, None) => Err(ApiError::bad_request(
            "idempotency-key-required",
            "send an Idempotency-Key header so that a retry never pays twice",
        )),
    }
}

fn bad_key() -> ApiError {
    ApiError::bad_request(
        "invalid-idempotency-key",
        "the idempotency key must be 1 to 255 printable ASCII characters",
    )
}

fn stored(status: u16, body: Vec<u8>, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ctype = if status.is_success() {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// Pay and confirm. Repeating a request with the same `Idempotency-Key` replays the first
/// outcome byte for byte and never charges twice.
#[utoipa::path(
    post,
    path = "/v1/commit",
    tag = "booking",
    request_body = CommitRequestBody,
    params(
        ("Idempotency-Key" = String, Header, description = "Unique per purchase attempt; `idempotentKey` is accepted too"),
    ),
    responses(
        (status = 200, description = "Confirmed, with tickets", body = BookingResponse),
        (status = 202, description = "Queued (an on-sale: follow `statusUrl`), or the payment outcome is not known yet; the booking is PENDING", body = QueuedCommitResponse),
        (status = 400, description = "Missing idempotency key or invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Payment declined; the hold remains", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is in progress, or the booking is already paid or being paid", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The hold expired or was released", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key was used with a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub))]
pub async fn commit(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Json(body): Json<CommitRequestBody>,
) -> ApiResult<Response> {
    customer(&who)?;
    let key = idempotency_key(&headers)?;
    let booking_id: BookingId = body
        .booking_id
        .parse()
        .map_err(|_| ApiError::not_found("booking"))?;
    let method = body.payment_method.trim();
    if method.is_empty() || method.len() > 255 || !method.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
            "paymentMethod",
            "must be a payment method token such as pm_card_visa",
        )));
    }
    // On-sales take commits through the queue: every commit on a node told so, and (decided by
    // the store as it records the payment, without a read of its own) every commit of a
    // waiting-room event.
    let node_queued = state.booking.config.queued_commits;
    let req = CommitRequest {
        customer: who.sub.clone(),
        booking_id,
        fingerprint: fingerprint(booking_id, method),
        provider_key: provider_key(who.sub.as_str(), &key),
        idempotency_key: key,
        payment_id: boxoffice_domain::ids::PaymentId::new_in(booking_id.slot()),
        provider: state.booking.payments.name().to_owned(),
        method: method.to_owned(),
        now: state.clock.now(),
        queued: node_queued,
    };
    let (booking, payment) = match state.store.begin_commit(&req).await {
        Ok(CommitBegin::Started { booking, payment }) => (*booking, *payment),
        Ok(CommitBegin::Replay(r)) => return Ok(stored(r.status, r.body, true)),
        // The same purchase, still in the queue: the same answer as the first time.
        Err(CommitError::InFlight) => {
            let booking = state
                .store
                .booking(booking_id)
                .await?
                .filter(|b| b.customer == who.sub)
                .ok_or_else(|| ApiError::not_found("booking"))?;
            let room = state
                .event(booking.event_id)
                .await?
                .is_some_and(|e| e.spec.policies.waiting_room.is_some());
            if node_queued || room {
                return Ok(queued_reply(&booking, true));
            }
            return Err(commit_error(CommitError::InFlight));
        }
        Err(e) => return Err(commit_error(e)),
    };
    let event = state
        .event(booking.event_id)
        .await?
        .ok_or_else(|| ApiError::Internal("booking without event".into()))?;
    if payment.queued {
        let reply = queued_reply(&booking, false);
        state
            .commits
            .push(
                &state.booking,
                crate::commit_queue::Queued {
                    event,
                    booking,
                    payment,
                },
            )
            .await;
        return Ok(reply);
    }
    match state
        .booking
        .charge(event.clone(), booking, payment)
        .await?
    {
        CommitReply::Stored(r) => Ok(stored(r.status, r.body, false)),
        CommitReply::Pending(b) => Ok((
            StatusCode::ACCEPTED,
            Json(BookingResponse::new(&b, &event, state.clock.now())),
        )
            .into_response()),
    }
}

/// A queued purchase, answered at once and the same way until its outcome is final.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedCommitResponse {
    #[schema(value_type = String, format = Uuid)]
    pub booking_id: BookingId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// PENDING until the outcome is known.
    pub status: String,
    pub total_cents: i64,
    /// Server-sent events of the booking's status until it is final.
    pub status_url: String,
}

fn queued_reply(b: &boxoffice_domain::booking::Booking, replayed: bool) -> Response {
    let body = QueuedCommitResponse {
        booking_id: b.id,
        event_id: b.event_id,
        status: "PENDING".into(),
        total_cents: b.total_cents,
        status_url: format!("/v1/booking/{}/events", b.id),
    };
    let mut res = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/booking/{}/events", b.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

fn commit_error(e: CommitError) -> ApiError {
    let p = match e {
        CommitError::KeyReused => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "This idempotency key was used for a different request",
        ),
        CommitError::InFlight => Problem::new(
            StatusCode::CONFLICT,
            "request-in-progress",
            "A request with this idempotency key is still being processed",
        ),
        CommitError::NotFound => return ApiError::not_found("booking"),
        CommitError::Gone => Problem::new(
            StatusCode::GONE,
            "hold-expired",
            "The hold has expired or was released; hold the seats again",
        ),
        CommitError::AlreadyConfirmed => Problem::new(
            StatusCode::CONFLICT,
            "already-confirmed",
            "This booking is already paid",
        ),
        CommitError::PaymentInProgress => Problem::new(
            StatusCode::CONFLICT,
            "payment-in-progress",
            "A payment for this booking is in progress",
        ),
        CommitError::Store(e) => return e.into(),
    };
    p.into()
}

/// Loads a booking the caller may see: its owner, or an admin. Anyone else gets 404, as if it
/// did not exist.
async fn visible_booking(
    state: &AppState,
    who: &Principal,
    raw: &str,
) -> ApiResult<boxoffice_domain::booking::Booking> {
    let id: BookingId = raw.parse().map_err(|_| ApiError::not_found("booking"))?;
    match state.store.booking(id).await? {
        Some(b) if b.customer == who.sub || who.is_admin() => Ok(b),
        _ => Err(ApiError::not_found("booking")),
    }
}

async fn respond(state: &AppState, b: &boxoffice_domain::booking::Booking) -> ApiResult<Response> {
    let event = state
        .event(b.event_id)
        .await?
        .ok_or_else(|| ApiError::Internal("booking without event".into()))?;
    Ok(Json(BookingResponse::new(b, &event, state.clock.now())).into_response())
}

/// A booking and its tickets (owner or admin).
#[utoipa::path(
    get,
    path = "/v1/booking/{bookingId}",
    tag = "booking",
    params(("bookingId" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "The booking", body = BookingResponse),
        (status = 404, description = "No such booking (or not yours)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_booking(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let b = visible_booking(&state, &who, &id).await?;
    respond(&state, &b).await
}

/// Contact details and attendee names.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBookingRequest {
    pub contact_email: Option<String>,
    #[serde(default)]
    pub attendees: Vec<AttendeeBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttendeeBody {
    pub seat_id: String,
    /// `null` clears the name.
    pub name: Option<String>,
}

/// Update contact email and attendee names (owner only).
#[utoipa::path(
    put,
    path = "/v1/booking/{bookingId}",
    tag = "booking",
    params(("bookingId" = String, Path, description = "Booking id")),
    request_body = UpdateBookingRequest,
    responses(
        (status = 200, description = "Updated", body = BookingResponse),
        (status = 400, description = "Invalid details", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking (or not yours)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update_booking(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(body): Json<UpdateBookingRequest>,
) -> ApiResult<Response> {
    let b = visible_booking(&state, &who, &id).await?;
    if b.customer != who.sub {
        return Err(ApiError::not_found("booking"));
    }
    let email = match body.contact_email {
        Some(e) => {
            let e = e.trim().to_owned();
            let valid = e.len() <= 254
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
            if !valid {
                return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                    "contactEmail",
                    "must be an email address",
                )));
            }
            Some(e)
        }
        None => None,
    };
    if body.attendees.len() > b.seats.len() {
        return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
            "attendees",
            "more attendees than seats",
        )));
    }
    let mut attendees = Vec::new();
    for (i, a) in body.attendees.iter().enumerate() {
        let seat = SeatId::parse(&a.seat_id)
            .map_err(|e| ApiError::invalid(e.within(&format!("attendees[{i}]"))))?;
        if !b.seats.iter().any(|s| s.seat_id == seat) {
            return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                format!("attendees[{i}].seatId"),
                "that seat is not part of this booking",
            )));
        }
        let name = match &a.name {
            Some(n) => {
                let n = n.trim();
                if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
                    return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
                        format!("attendees[{i}].name"),
                        "must be 1 to 100 characters",
                    )));
                }
                Some(n.to_owned())
            }
            None => None,
        };
        attendees.push((seat, name));
    }
    let updated = state
        .store
        .update_details(b.id, email, attendees, state.clock.now())
        .await?;
    respond(&state, &updated).await
}

/// Release a hold at once, or cancel a confirmed booking within the refund window (refunded
/// through the payment provider, tickets void, seats back on sale). Owner or admin; deleting
/// twice is harmless.
#[utoipa::path(
    delete,
    path = "/v1/booking/{bookingId}",
    tag = "booking",
    params(("bookingId" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "Released or cancelled", body = BookingResponse),
        (status = 404, description = "No such booking (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Payment in progress, outside the refund window, or a ticket already used at the door", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, booking_id = %id))]
pub async fn delete_booking(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let b = visible_booking(&state, &who, &id).await?;
    let now = state.clock.now();
    let result = match b.status {
        BookingStatus::Confirmed => {
            let event = state
                .event(b.event_id)
                .await?
                .ok_or_else(|| ApiError::Internal("booking without event".into()))?;
            let confirmed = b.confirmed_at.unwrap_or(b.created_at);
            if !boxoffice_domain::rules::refund_window_open(
                confirmed,
                event.spec.policies.refund_window_hours,
                event.spec.starts_at,
                now,
            ) {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "refund-window-closed",
                    "This booking can no longer be cancelled",
                )
                .detail(format!(
                    "bookings for this event can be cancelled within {} hours of purchase, before the event starts",
                    event.spec.policies.refund_window_hours
                ))
                .into());
            }
            match state.store.cancel_confirmed(b.id, now).await {
                Ok((cancelled, payment)) => {
                    if let Some(p) = payment {
                        // Tickets are void already; the money follows. If the provider is
                        // down, the reconciler retries the refund.
                        if let Err(e) = state.booking.refund(&p).await {
                            tracing::warn!(payment_id = %p.id, error = %e, "refund deferred to the reconciler");
                        }
                    }
                    Ok(cancelled)
                }
                Err(e) => Err(e),
            }
        }
        _ => state.store.release(b.id, now).await,
    };
    if let Ok(b) = &result {
        state.holds.released(b).await;
    }
    match result {
        Ok(b) => respond(&state, &b).await,
        Err(ReleaseError::PaymentInProgress) => Err(Problem::new(
            StatusCode::CONFLICT,
            "payment-in-progress",
            "A payment for this booking is in progress; try again shortly",
        )
        .into()),
        Err(ReleaseError::NotFound) => Err(ApiError::not_found("booking")),
        Err(ReleaseError::WrongStatus(s)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "The booking changed meanwhile",
        )
        .with("bookingStatus", s.as_str())
        .into()),
        Err(ReleaseError::TicketListed) => Err(Problem::new(
            StatusCode::CONFLICT,
            "ticket-listed",
            "A ticket of this booking is listed for resale; withdraw the listing first",
        )
        .into()),
        Err(ReleaseError::TicketReissued) => Err(Problem::new(
            StatusCode::CONFLICT,
            "ticket-reissued",
            "A ticket of this booking was resold or transferred; it can no longer be refunded",
        )
        .into()),
        Err(ReleaseError::ResaleFinal) => Err(Problem::new(
            StatusCode::CONFLICT,
            "resale-final",
            "A resale purchase is final; you may list the tickets again",
        )
        .into()),
        Err(ReleaseError::TicketUsed) => Err(Problem::new(
            StatusCode::CONFLICT,
            "ticket-used",
            "A ticket of this booking has been used at the door; it cannot be refunded",
        )
        .into()),
        Err(ReleaseError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketsResponse {
    pub tickets: Vec<TicketResponse>,
}

/// My tickets, newest first.
#[utoipa::path(
    get,
    path = "/v1/tickets",
    tag = "booking",
    responses((status = 200, description = "My tickets", body = TicketsResponse)),
    security(("bearer" = []))
)]
pub async fn my_tickets(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<Json<TicketsResponse>> {
    let tickets = state.store.tickets_of(&who.sub).await?;
    Ok(Json(TicketsResponse {
        tickets: tickets.iter().map(TicketResponse::from).collect(),
    }))
}

/// A ticket scanned at the door of one event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckInRequest {
    /// The ticket's token, as its QR code carries it.
    pub token: String,
    /// The event this door admits to (required); a ticket of another event is refused with
    /// 409 `ticket-wrong-event` and left unchanged.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckInResponse {
    /// ADMITTED.
    pub result: String,
    pub ticket: TicketResponse,
}

fn wrong_event(ticket_event: EventId) -> ApiError {
    Problem::new(
        StatusCode::CONFLICT,
        "ticket-wrong-event",
        "This ticket is for another event",
    )
    .with("ticketEventId", ticket_event.to_string())
    .into()
}

/// Check a ticket in at the door of one event (scanner role): forged, void, already-scanned
/// tickets and tickets of another event are refused and change nothing. A scanner whose token
/// carries an `events` claim may check in only for those events.
#[utoipa::path(
    post,
    path = "/v1/checkin",
    tag = "booking",
    request_body = CheckInRequest,
    responses(
        (status = 200, description = "Admitted", body = CheckInResponse),
        (status = 400, description = "Malformed body (`eventId` and `token` are required)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a scanner, or `event-not-allowed`: the scanner's token is limited to other events", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket, or a malformed event id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already-checked-in`, `ticket-void`, or `ticket-wrong-event` (a genuine ticket of another event; unchanged)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-ticket`: a forged or unreadable token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(scanner = %who.sub))]
pub async fn check_in(
    State(state): State<AppState>,
    Scanner(who): Scanner,
    Json(body): Json<CheckInRequest>,
) -> ApiResult<Json<CheckInResponse>> {
    let event: EventId = body
        .event_id
        .trim()
        .parse()
        .map_err(|_| ApiError::not_found("event"))?;
    if !who.may_act_on(event) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "event-not-allowed",
            "This scanner may not check in for this event",
        )
        .into());
    }
    let claims = state
        .booking
        .tickets
        .verify(body.token.trim())
        .ok_or_else(|| {
            ApiError::from(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-ticket",
                "This is not a genuine ticket",
            ))
        })?;
    if claims.eid != event {
        return Err(wrong_event(claims.eid));
    }
    if claims
        .exp
        .is_some_and(|exp| exp <= state.clock.now().unix_timestamp())
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "ticket-expired",
            "This ticket was for an event that is over",
        )
        .into());
    }
    match state
        .store
        .check_in(claims.tid, event, state.clock.now())
        .await?
    {
        CheckIn::Admitted(t) => Ok(Json(CheckInResponse {
            result: "ADMITTED".into(),
            ticket: TicketResponse::from(&t),
        })),
        CheckIn::AlreadyUsed(t) => Err(Problem::new(
            StatusCode::CONFLICT,
            "already-checked-in",
            "This ticket was already scanned",
        )
        .with("checkedInAt", t.checked_in_at.map(rfc3339))
        .into()),
        CheckIn::Void(_) => Err(Problem::new(
            StatusCode::CONFLICT,
            "ticket-void",
            "This ticket was cancelled",
        )
        .into()),
        CheckIn::Reissued(_) => Err(Problem::new(
            StatusCode::CONFLICT,
            "ticket-reissued",
            "This ticket was resold or transferred; its new owner has a new ticket",
        )
        .into()),
        CheckIn::WrongEvent(t) => Err(wrong_event(t.event_id)),
        CheckIn::Unknown => Err(ApiError::not_found("ticket")),
    }
}

/// The public key that signs ticket tokens, as a JWKS, for scanners that verify offline.
#[utoipa::path(
    get,
    path = "/.well-known/ticket-keys.json",
    tag = "booking",
    responses((status = 200, description = "JWKS with the Ed25519 ticket key"))
)]
pub async fn ticket_keys(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.booking.tickets.jwks()),
    )
}

/// The booking's status as server-sent events until it is final: `status` (the booking) while
/// it is being paid, then `confirmed` (the booking with its tickets) or `problem` (a problem
/// document: declined, expired, cancelled), and the stream ends. A comment line every 15 s
/// keeps proxies from closing it; after `Last-Event-ID` it resumes with the current status.
#[utoipa::path(
    get,
    path = "/v1/booking/{bookingId}/events",
    tag = "booking",
    params(("bookingId" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "A text/event-stream of `status`, then `confirmed` or `problem`", content_type = "text/event-stream"),
        (status = 404, description = "No such booking of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn booking_events(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let b = visible_booking(&state, &who, &id).await?;
    let event = state
        .event(b.event_id)
        .await?
        .ok_or_else(|| ApiError::Internal("booking without event".into()))?;
    let closing = state.clone();
    let follow = BookingFollow {
        rx: state.commits.settled(),
        state,
        event,
        id: b.id,
        first: Some(b),
        last: None,
        seen_pending: false,
        seq: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            let b = match f.first.take() {
                Some(b) => b,
                None => {
                    f.wait().await;
                    match f.state.store.booking(f.id).await {
                        Ok(Some(b)) => b,
                        Ok(None) => return None,
                        Err(e) => {
                            tracing::warn!(error = %e, "booking stream: read failed");
                            continue;
                        }
                    }
                }
            };
            let now = f.state.clock.now();
            let status = boxoffice_domain::rules::effective(b.status, b.expires_at, now);
            let ev = match status {
                BookingStatus::Confirmed => {
                    f.done = true;
                    sse_json("confirmed", &BookingResponse::new(&b, &f.event, now))
                }
                BookingStatus::Pending => {
                    f.seen_pending = true;
                    if f.last == Some(status) {
                        continue;
                    }
                    sse_json("status", &BookingResponse::new(&b, &f.event, now))
                }
                BookingStatus::Hold
                    if f.seen_pending
                        || matches!(
                            b.status_reason.as_deref(),
                            Some(rules::RETURNED_DECLINED | rules::RETURNED_FAILED)
                        ) =>
                {
                    // Paid for and back on hold: the payment was declined (the hold stays).
                    // Seen go by, or recorded on the booking when the stream opened after it.
                    f.done = true;
                    sse_json(
                        "problem",
                        &Problem::new(
                            StatusCode::PAYMENT_REQUIRED,
                            "payment-declined",
                            "The payment was declined",
                        )
                        .detail(
                            "try another payment method; the seats stay held until the hold ends",
                        )
                        .with("bookingId", b.id.to_string()),
                    )
                }
                BookingStatus::Hold => {
                    if f.last == Some(status) {
                        continue;
                    }
                    sse_json("status", &BookingResponse::new(&b, &f.event, now))
                }
                BookingStatus::Expired | BookingStatus::Cancelled => {
                    f.done = true;
                    let (code, title) = if status == BookingStatus::Expired {
                        (
                            "hold-expired",
                            "The hold expired before the booking was paid",
                        )
                    } else {
                        ("booking-cancelled", "The booking was cancelled")
                    };
                    let mut p = Problem::new(StatusCode::GONE, code, title)
                        .with("bookingId", b.id.to_string());
                    if let Some(r) = &b.status_reason {
                        p = p.detail(r.clone());
                    }
                    sse_json("problem", &p)
                }
            };
            f.last = Some(status);
            f.seq += 1;
            return Some((
                Ok::<_, std::convert::Infallible>(ev.id(f.seq.to_string())),
                f,
            ));
        }
    });
    Ok(crate::routes::queue::sse_response(&closing, stream))
}

struct BookingFollow {
    state: AppState,
    event: Arc<Event>,
    id: BookingId,
    rx: tokio::sync::broadcast::Receiver<BookingId>,
    first: Option<boxoffice_domain::booking::Booking>,
    last: Option<BookingStatus>,
    seen_pending: bool,
    seq: u64,
    done: bool,
}

impl BookingFollow {
    /// Until this node settles the booking, or a short while (another node may settle it).
    async fn wait(&mut self) {
        let poll = tokio::time::sleep(std::time::Duration::from_millis(500));
        tokio::pin!(poll);
        loop {
            tokio::select! {
                _ = &mut poll => return,
                r = self.rx.recv() => match r {
                    Ok(id) if id == self.id => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        (&mut poll).await;
                        return;
                    }
                },
            }
        }
    }
}

fn sse_json<T: Serialize>(name: &str, body: &T) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event(name)
        .json_data(body)
        .unwrap_or_else(|_| axum::response::sse::Event::default().comment("unserialisable"))
}
