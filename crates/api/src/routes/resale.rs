//! Resale: listing a ticket (`POST /v1/postTicket`), the listings of an event and of a seller,
//! withdrawing one, the seller's payouts, and an organizer cancelling a whole event. Buying a
//! listing is `POST /v1/attempt {eventId, listingIds}` then the ordinary `POST /v1/commit`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use boxoffice_domain::ids::{EventId, ListingId, TicketId};
use boxoffice_domain::ports::ListRequest;
use boxoffice_domain::resale::{ListError, Listing, Payout, WithdrawError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::routes::booking::load_event;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_ticket))
        .routes(routes!(event_listings))
        .routes(routes!(my_listings))
        .routes(routes!(withdraw_listing))
        .routes(routes!(my_payouts))
        .routes(routes!(cancel_event))
}

/// List a ticket for resale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostTicketRequest {
    /// The ticket to sell (yours, VALID).
    #[schema(value_type = String, format = Uuid)]
    pub original_ticket_id: String,
    /// What the buyer pays, in minor units of the event's currency; at most the event's
    /// `resaleMaxPricePercent` of the face value you paid.
    pub resale_price_cents: i64,
}

/// A resale listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListingResponse {
    #[schema(value_type = String, format = Uuid)]
    pub listing_id: ListingId,
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    pub seat_id: String,
    /// The section's name.
    pub section: String,
    pub row: Option<String>,
    pub number: u32,
    /// What the buyer pays.
    pub price_cents: i64,
    /// What the platform keeps.
    pub fee_cents: i64,
    /// What the seller is paid (price − fee), after the event.
    pub seller_proceeds_cents: i64,
    pub currency: String,
    /// ACTIVE, RESERVED (a buyer holds it), SOLD, WITHDRAWN or EXPIRED.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl ListingResponse {
    fn new(
        l: &Listing,
        event: Option<&boxoffice_domain::event::Event>,
        now: OffsetDateTime,
    ) -> Self {
        let (_, row, number) = l.seat_id.parts().unwrap_or((l.section, None, 0));
        let status = match l.effective_status(now) {
            // An open listing of an event that has started can no longer sell.
            s if s.is_open() && event.is_some_and(|e| now >= e.spec.starts_at) => "EXPIRED",
            s => s.as_str(),
        };
        Self {
            listing_id: l.id,
            ticket_id: l.ticket_id,
            event_id: l.event_id,
            seat_id: l.seat_id.to_string(),
            section: event
                .and_then(|e| e.spec.section(l.section))
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            row: row.map(str::to_owned),
            number,
            price_cents: l.price_cents,
            fee_cents: l.fee_cents,
            seller_proceeds_cents: l.seller_proceeds_cents(),
            currency: l.currency.to_string(),
            status: status.to_owned(),
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListingsResponse {
    pub listings: Vec<ListingResponse>,
}

/// What one resale earned its seller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayoutResponse {
    #[schema(value_type = String, format = Uuid)]
    pub payout_id: boxoffice_domain::ids::PayoutId,
    #[schema(value_type = String, format = Uuid)]
    pub listing_id: ListingId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    pub amount_cents: i64,
    pub currency: String,
    /// SCHEDULED (paid after the event), PAID, or CLAWED_BACK (the event was cancelled).
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub available_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Payout> for PayoutResponse {
    fn from(p: &Payout) -> Self {
        Self {
            payout_id: p.id,
            listing_id: p.listing_id,
            event_id: p.event_id,
            amount_cents: p.amount_cents,
            currency: p.currency.to_string(),
            status: p.status.as_str().to_owned(),
            available_at: p.available_at,
            created_at: p.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PayoutsResponse {
    pub payouts: Vec<PayoutResponse>,
}

/// An event cancelled by its organizer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelEventResponse {
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// CANCELLED.
    pub sale_status: String,
    /// Confirmed bookings whose refund was started by this request (a repeated request
    /// starts none; refunds the provider could not take yet are retried).
    pub refunds_started: usize,
}

fn list_error(e: ListError) -> ApiError {
    let p = match e {
        ListError::NotFound => return ApiError::not_found("ticket"),
        ListError::AlreadyListed => Problem::new(
            StatusCode::CONFLICT,
            "already-listed",
            "This ticket is already listed for resale",
        ),
        ListError::NotValid(s) => Problem::new(
            StatusCode::CONFLICT,
            "ticket-not-valid",
            "Only a valid, unused ticket can be listed",
        )
        .with("ticketStatus", s.as_str()),
        ListError::TransferPending => Problem::new(
            StatusCode::CONFLICT,
            "transfer-pending",
            "A transfer of this ticket is pending; cancel it first",
        ),
        ListError::EventStarted => Problem::new(
            StatusCode::CONFLICT,
            "event-started",
            "The event has started; its tickets can no longer be resold",
        ),
        ListError::EventCancelled => Problem::new(
            StatusCode::CONFLICT,
            "event-cancelled",
            "The event was cancelled by its organizer",
        ),
        ListError::ResaleOff => Problem::new(
            StatusCode::CONFLICT,
            "resale-off",
            "The organizer does not allow resale for this event",
        ),
        ListError::AboveCap { max_price_cents } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "resale-price-above-cap",
            "The price is above what this event allows for resale",
        )
        .detail(format!("at most {max_price_cents}"))
        .with("maxPriceCents", max_price_cents),
    };
    p.into()
}

/// List one of your tickets for resale, within the event's price cap. The ticket becomes
/// LISTED (it still gets you in until it sells); when it sells, it is REISSUED to the buyer
/// and your payout (price − fee) is scheduled for after the event.
#[utoipa::path(
    post,
    path = "/v1/postTicket",
    tag = "resale",
    request_body = PostTicketRequest,
    responses(
        (status = 201, description = "Listed", body = ListingResponse),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Listed already, not valid, event started or cancelled, resale off", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Above the event's price cap (`maxPriceCents`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub))]
pub async fn post_ticket(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<PostTicketRequest>,
) -> ApiResult<Response> {
    who.require(&[Role::Customer])?;
    let ticket: TicketId = body
        .original_ticket_id
        .parse()
        .map_err(|_| ApiError::not_found("ticket"))?;
    if !(0..=boxoffice_domain::money::MAX_PRICE_CENTS).contains(&body.resale_price_cents) {
        return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
            "resalePriceCents",
            format!(
                "must be between 0 and {}",
                boxoffice_domain::money::MAX_PRICE_CENTS
            ),
        )));
    }
    let now = state.clock.now();
    let listing = state
        .store
        .list_ticket(&ListRequest {
            listing_id: ListingId::new_in(ticket.slot()),
            ticket_id: ticket,
            seller: who.sub.clone(),
            price_cents: body.resale_price_cents,
            fee_basis_points: state.booking.config.resale_fee_basis_points,
            now,
        })
        .await?
        .map_err(list_error)?;
    let event = state.event(listing.event_id).await?;
    tracing::info!(listing_id = %listing.id, "ticket listed for resale");
    Ok((
        StatusCode::CREATED,
        Json(ListingResponse::new(&listing, event.as_deref(), now)),
    )
        .into_response())
}

/// The listings of an event on offer now, cheapest first. Buy with
/// `POST /v1/attempt {eventId, listingIds}`.
#[utoipa::path(
    get,
    path = "/v1/events/{eventId}/listings",
    tag = "resale",
    params(("eventId" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "Listings on offer", body = ListingsResponse),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn event_listings(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
) -> ApiResult<Json<ListingsResponse>> {
    let event = load_event(&state, &event_id).await?;
    let now = state.clock.now();
    let listings = if now >= event.spec.starts_at || event.cancelled_at.is_some() {
        Vec::new()
    } else {
        state.store.event_listings(event.id, now).await?
    };
    Ok(Json(ListingsResponse {
        listings: listings
            .iter()
            .map(|l| ListingResponse::new(l, Some(&event), now))
            .collect(),
    }))
}

/// My listings, newest first, in every state.
#[utoipa::path(
    get,
    path = "/v1/listings",
    tag = "resale",
    responses((status = 200, description = "My listings", body = ListingsResponse)),
    security(("bearer" = []))
)]
pub async fn my_listings(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<Json<ListingsResponse>> {
    let now = state.clock.now();
    let listings = state.store.seller_listings(&who.sub).await?;
    let mut out = Vec::with_capacity(listings.len());
    for l in &listings {
        let event = state.event(l.event_id).await?;
        out.push(ListingResponse::new(l, event.as_deref(), now));
    }
    Ok(Json(ListingsResponse { listings: out }))
}

/// Withdraw one of your ACTIVE listings: the ticket is yours to use again. A listing a buyer
/// holds (RESERVED) cannot be withdrawn until the hold ends.
#[utoipa::path(
    delete,
    path = "/v1/listings/{listingId}",
    tag = "resale",
    params(("listingId" = String, Path, description = "Listing id")),
    responses(
        (status = 200, description = "Withdrawn", body = ListingResponse),
        (status = 404, description = "No such listing (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE (a buyer holds it, or it sold)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, listing_id = %id))]
pub async fn withdraw_listing(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ListingResponse>> {
    let id: ListingId = id.parse().map_err(|_| ApiError::not_found("listing"))?;
    let now = state.clock.now();
    let listing = match state.store.withdraw_listing(id, &who.sub, now).await? {
        Ok(l) => l,
        Err(WithdrawError::NotFound) => return Err(ApiError::not_found("listing")),
        Err(WithdrawError::NotActive(s)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "listing-not-active",
                "Only an ACTIVE listing can be withdrawn",
            )
            .with("listingStatus", s.as_str())
            .into());
        }
    };
    let event = state.event(listing.event_id).await?;
    Ok(Json(ListingResponse::new(&listing, event.as_deref(), now)))
}

/// What each of my resales earned: SCHEDULED until paid after the event, PAID, or
/// CLAWED_BACK when the event was cancelled.
#[utoipa::path(
    get,
    path = "/v1/payouts",
    tag = "resale",
    responses((status = 200, description = "My payouts", body = PayoutsResponse)),
    security(("bearer" = []))
)]
pub async fn my_payouts(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<Json<PayoutsResponse>> {
    let payouts = state.store.payouts_of(&who.sub).await?;
    Ok(Json(PayoutsResponse {
        payouts: payouts.iter().map(PayoutResponse::from).collect(),
    }))
}

/// Cancel an event (its organizer, or an admin): nothing sells any more; every confirmed
/// booking is refunded through the payment provider (retried until done) and its tickets
/// voided; open listings are withdrawn and unpaid payouts clawed back. Repeating it is
/// harmless.
#[utoipa::path(
    post,
    path = "/v1/events/{eventId}/cancel",
    tag = "events",
    params(("eventId" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "Cancelled", body = CancelEventResponse),
        (status = 403, description = "Not an organizer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event (or not yours)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(organizer = %who.sub, event_id = %event_id))]
pub async fn cancel_event(
    State(state): State<AppState>,
    who: Principal,
    Path(event_id): Path<String>,
) -> ApiResult<Json<CancelEventResponse>> {
    who.require(&[Role::Organizer])?;
    let event = load_event(&state, &event_id).await?;
    if event.organizer != who.sub && !who.is_admin() {
        return Err(ApiError::not_found("event"));
    }
    let refunds = state.booking.cancel_event(event.id).await?;
    state.forget_event(event.id);
    Ok(Json(CancelEventResponse {
        event_id: event.id,
        sale_status: "CANCELLED".into(),
        refunds_started: refunds,
    }))
}
