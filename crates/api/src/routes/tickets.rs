//! Tickets people carry: a ticket's token as a QR code for its owner; giving a ticket away
//! (a transfer the recipient accepts, getting a reissued ticket); and the revocations list that
//! offline scanners follow.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use boxoffice_domain::booking::{NewTicket, Ticket, TicketStatus};
use boxoffice_domain::ids::{CustomerId, EventId, TicketId, TransferId};
use boxoffice_domain::resale::{Transfer, TransferStatus};
use boxoffice_domain::transfers::{
    self, AcceptRequest, OfferRequest, RevocationCursor, TransferError,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Principal, Scanner};
use crate::booking::TicketResponse;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::qr;
use crate::tickets::TicketClaims;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ticket_qr_svg))
        .routes(routes!(ticket_qr_png))
        .routes(routes!(offer_transfer))
        .routes(routes!(accept_transfer))
        .routes(routes!(cancel_transfer))
        .routes(routes!(my_transfers))
        .routes(routes!(revocations))
}

/// A QR code is the owner's alone: browsers may keep it, shared caches never. Short, because
/// a ticket that is transferred, resold or refunded stops admitting anyone.
const QR_CACHE_CONTROL: &str = "private, max-age=300";

/// The caller's own ticket; anyone else's, or a malformed id, is 404.
async fn own_ticket(state: &AppState, who: &Principal, raw: &str) -> ApiResult<Ticket> {
    let id: TicketId = raw.parse().map_err(|_| ApiError::not_found("ticket"))?;
    state
        .store
        .tickets_of(&who.sub)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::not_found("ticket"))
}

/// The token of a ticket whose code may still be shown: a void or reissued ticket's is dead.
fn showable_token(t: Ticket) -> ApiResult<String> {
    match t.status {
        TicketStatus::Void | TicketStatus::Reissued => Err(Problem::new(
            StatusCode::GONE,
            "ticket-revoked",
            "This ticket no longer admits anyone",
        )
        .detail(
            "the ticket was refunded, cancelled, resold or transferred; its code is refused at \
             the door",
        )
        .with("ticketStatus", t.status.as_str())
        .into()),
        _ => Ok(t.token),
    }
}

/// Renders off the async worker threads: QR encoding is CPU work.
async fn render<T: Send + 'static>(
    token: String,
    f: fn(&str) -> Result<T, qr::QrError>,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&token))
        .await
        .map_err(|e| ApiError::Internal(format!("QR rendering task failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(QR_CACHE_CONTROL),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// My ticket's token as a QR code, in SVG (owner only).
#[utoipa::path(
    get,
    path = "/v1/tickets/{ticketId}/qr.svg",
    tag = "tickets",
    params(("ticketId" = String, Path, format = Uuid, description = "The ticket")),
    responses(
        (status = 200, description = "The ticket's token as a QR code", body = String, content_type = "image/svg+xml"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket of yours", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The ticket was voided or reissued; its code admits no one", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, ticket_id = %ticket_id))]
pub async fn ticket_qr_svg(
    State(state): State<AppState>,
    who: Principal,
    Path(ticket_id): Path<String>,
) -> ApiResult<Response> {
    let token = showable_token(own_ticket(&state, &who, &ticket_id).await?)?;
    let svg = render(token, qr::svg).await?;
    Ok(image("image/svg+xml", svg))
}

/// My ticket's token as a QR code, in PNG (owner only).
#[utoipa::path(
    get,
    path = "/v1/tickets/{ticketId}/qr.png",
    tag = "tickets",
    params(("ticketId" = String, Path, format = Uuid, description = "The ticket")),
    responses(
        (status = 200, description = "The ticket's token as a QR code, 8 pixels per module", body = [u8], content_type = "image/png"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket of yours", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The ticket was voided or reissued; its code admits no one", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, ticket_id = %ticket_id))]
pub async fn ticket_qr_png(
    State(state): State<AppState>,
    who: Principal,
    Path(ticket_id): Path<String>,
) -> ApiResult<Response> {
    let token = showable_token(own_ticket(&state, &who, &ticket_id).await?)?;
    let png = render(token, qr::png).await?;
    Ok(image("image/png", png))
}

// ---- transfers -------------------------------------------------------------------------------

/// Give a ticket to another customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferRequest {
    /// The recipient's customer id (the `sub` of their token).
    pub to_customer: String,
}

/// A transfer, as its sender and recipient see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferResponse {
    #[schema(value_type = String, format = Uuid)]
    pub transfer_id: TransferId,
    /// The ticket given away.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    pub from_customer: String,
    pub to_customer: String,
    /// PENDING, ACCEPTED, CANCELLED or EXPIRED (a pending transfer lapses when the event
    /// starts or is cancelled).
    pub status: String,
    /// The recipient's new ticket, once accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub new_ticket_id: Option<TicketId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TransferResponse {
    fn new(t: &Transfer, status: TransferStatus) -> Self {
        Self {
            transfer_id: t.id,
            ticket_id: t.ticket_id,
            event_id: t.event_id,
            from_customer: t.from.as_str().to_owned(),
            to_customer: t.to.as_str().to_owned(),
            status: status.as_str().to_owned(),
            new_ticket_id: t.new_ticket_id,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// The recipient's ticket: a new id and token for the same seat, replacing the sender's.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferredTicket {
    #[serde(flatten)]
    pub ticket: TicketResponse,
    /// The ticket this one replaces (now REISSUED).
    #[schema(value_type = String, format = Uuid)]
    pub replaces: TicketId,
}

/// An accepted transfer and the recipient's new ticket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedTransfer {
    pub transfer: TransferResponse,
    pub ticket: TransferredTicket,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransfersResponse {
    /// Sent and received, newest first.
    pub transfers: Vec<TransferResponse>,
}

fn transfer_error(e: TransferError) -> ApiError {
    let p = match e {
        TransferError::NotFound => return ApiError::not_found("ticket or transfer"),
        TransferError::ToSelf => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "transfer-to-self",
            "A ticket cannot be transferred to its own owner",
        ),
        TransferError::NotTransferable(s) => Problem::new(
            StatusCode::CONFLICT,
            "ticket-not-transferable",
            "Only a valid ticket that is not listed for resale can be transferred",
        )
        .with("ticketStatus", s.as_str()),
        TransferError::AlreadyPending => Problem::new(
            StatusCode::CONFLICT,
            "transfer-pending",
            "A transfer of this ticket is pending; cancel it first",
        ),
        TransferError::EventStarted => Problem::new(
            StatusCode::CONFLICT,
            "event-started",
            "The event has started; its tickets can no longer be transferred",
        ),
        TransferError::EventCancelled => Problem::new(
            StatusCode::CONFLICT,
            "event-cancelled",
            "The event was cancelled by its organizer",
        ),
        TransferError::NotPending(s) => Problem::new(
            StatusCode::CONFLICT,
            "transfer-not-pending",
            "This transfer is no longer pending",
        )
        .with("transferStatus", s.as_str()),
    };
    p.into()
}

fn parse_transfer_id(raw: &str) -> ApiResult<TransferId> {
    raw.parse()
        .map_err(|_| ApiError::not_found("ticket or transfer"))
}

/// The transfer's status at `now`, from its event's schedule.
async fn effective(
    state: &AppState,
    t: &Transfer,
    now: OffsetDateTime,
) -> ApiResult<TransferStatus> {
    Ok(match state.event(t.event_id).await? {
        Some(e) => {
            transfers::effective_status(t.status, e.spec.starts_at, e.cancelled_at.is_some(), now)
        }
        None => t.status,
    })
}

/// Offer one of your tickets to another customer. The ticket stays yours (and valid) until
/// they accept; then it is REISSUED and they get a new ticket with a new token. One pending
/// transfer per ticket; a transfer lapses when the event starts.
#[utoipa::path(
    post,
    path = "/v1/tickets/{ticketId}/transfer",
    tag = "tickets",
    params(("ticketId" = String, Path, format = Uuid, description = "Your ticket")),
    request_body = TransferRequest,
    responses(
        (status = 201, description = "Offered: PENDING until the recipient accepts", body = TransferResponse),
        (status = 400, description = "Invalid recipient", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket not transferable (listed, used, void, reissued), a transfer already pending, or the event started or was cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Transfer to yourself", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, ticket_id = %ticket_id))]
pub async fn offer_transfer(
    State(state): State<AppState>,
    who: Principal,
    Path(ticket_id): Path<String>,
    Json(body): Json<TransferRequest>,
) -> ApiResult<Response> {
    let ticket: TicketId = ticket_id
        .parse()
        .map_err(|_| ApiError::not_found("ticket or transfer"))?;
    let to = CustomerId::parse(body.to_customer.trim()).map_err(|e| {
        ApiError::invalid(boxoffice_domain::ValidationError::new(
            "toCustomer",
            e.to_string(),
        ))
    })?;
    let now = state.clock.now();
    let t = state
        .store
        .offer_transfer(&OfferRequest {
            transfer_id: TransferId::new_in(ticket.slot()),
            ticket_id: ticket,
            from: who.sub.clone(),
            to,
            now,
        })
        .await?
        .map_err(transfer_error)?;
    Ok((
        StatusCode::CREATED,
        Json(TransferResponse::new(&t, t.status)),
    )
        .into_response())
}

/// Accept a transfer offered to you: the sender's ticket is REISSUED and you get a new one
/// (new id, new token) for the same seat.
#[utoipa::path(
    post,
    path = "/v1/transfers/{transferId}/accept",
    tag = "tickets",
    params(("transferId" = String, Path, format = Uuid, description = "A transfer offered to you")),
    responses(
        (status = 200, description = "Accepted, with your new ticket", body = AcceptedTransfer),
        (status = 404, description = "No such transfer offered to you", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending any more (accepted, cancelled, expired), the ticket can no longer pass, or the event started or was cancelled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, transfer_id = %transfer_id))]
pub async fn accept_transfer(
    State(state): State<AppState>,
    who: Principal,
    Path(transfer_id): Path<String>,
) -> ApiResult<Json<AcceptedTransfer>> {
    let id = parse_transfer_id(&transfer_id)?;
    let not_found = || ApiError::not_found("ticket or transfer");
    // The new token names the seat and booking of the ticket it replaces; the store checks,
    // under its locks, that the transfer is still pending and the ticket still valid.
    let t = state.store.transfer(id).await?.ok_or_else(not_found)?;
    if t.to != who.sub {
        return Err(not_found());
    }
    let old = state
        .store
        .ticket(t.ticket_id)
        .await?
        .ok_or_else(not_found)?;
    let event = state.event(t.event_id).await?.ok_or_else(not_found)?;
    let now = state.clock.now();
    let new_id = TicketId::new_in(t.event_id.slot());
    let token = state.booking.tickets.sign(&TicketClaims::new(
        new_id,
        &event,
        old.booking_id,
        old.seat_id.clone(),
        now,
    ));
    let (t, ticket) = state
        .store
        .accept_transfer(&AcceptRequest {
            transfer_id: id,
            recipient: who.sub.clone(),
            new_ticket: NewTicket {
                id: new_id,
                seat_id: old.seat_id.clone(),
                token,
            },
            now,
        })
        .await?
        .map_err(transfer_error)?;
    Ok(Json(AcceptedTransfer {
        transfer: TransferResponse::new(&t, t.status),
        ticket: TransferredTicket {
            ticket: TicketResponse::from(&ticket),
            replaces: old.id,
        },
    }))
}

/// Cancel a transfer you offered, while it is pending.
#[utoipa::path(
    delete,
    path = "/v1/transfers/{transferId}",
    tag = "tickets",
    params(("transferId" = String, Path, format = Uuid, description = "A transfer you offered")),
    responses(
        (status = 200, description = "Cancelled", body = TransferResponse),
        (status = 404, description = "No such transfer of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending any more (accepted, cancelled, expired)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub, transfer_id = %transfer_id))]
pub async fn cancel_transfer(
    State(state): State<AppState>,
    who: Principal,
    Path(transfer_id): Path<String>,
) -> ApiResult<Json<TransferResponse>> {
    let id = parse_transfer_id(&transfer_id)?;
    let t = state
        .store
        .cancel_transfer(id, &who.sub, state.clock.now())
        .await?
        .map_err(transfer_error)?;
    Ok(Json(TransferResponse::new(&t, t.status)))
}

/// Transfers I sent or received, newest first.
#[utoipa::path(
    get,
    path = "/v1/transfers",
    tag = "tickets",
    responses((status = 200, description = "My transfers", body = TransfersResponse)),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer = %who.sub))]
pub async fn my_transfers(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<Json<TransfersResponse>> {
    let now = state.clock.now();
    let mut out = Vec::new();
    for t in state.store.transfers_of(&who.sub).await? {
        let status = effective(&state, &t, now).await?;
        out.push(TransferResponse::new(&t, status));
    }
    Ok(Json(TransfersResponse { transfers: out }))
}

// ---- revocations ---------------------------------------------------------------------------

/// How long a revocation may take to become visible after its time: a transaction that read
/// the clock, then waited for a lock, commits with an earlier time than one already seen. A
/// cursor never moves past this window, so a scanner sees such late ones on its next poll
/// (and, harmlessly, the last few seconds' revocations again).
const REVOCATION_SETTLE: time::Duration = time::Duration::seconds(30);

const REVOCATIONS_DEFAULT_LIMIT: u32 = 500;
const REVOCATIONS_MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevocationsQuery {
    /// `nextCursor` of the previous answer; none for everything.
    pub since: Option<String>,
    /// At most this many (1–1000, default 500).
    pub limit: Option<u32>,
}

/// A ticket that no longer admits anyone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationResponse {
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// VOID or REISSUED.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationsResponse {
    /// Oldest first.
    pub revocations: Vec<RevocationResponse>,
    /// Where to continue (pass as `since`); poll with it later for new revocations.
    pub next_cursor: Option<String>,
    /// Whether more are waiting right now.
    pub has_more: bool,
}

fn encode_cursor(c: RevocationCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "r1:{}:{}",
        c.at.unix_timestamp_nanos() / 1_000,
        c.ticket_id
    ))
}

fn decode_cursor(raw: &str) -> Option<RevocationCursor> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let mut parts = text.strip_prefix("r1:")?.splitn(2, ':');
    let micros: i64 = parts.next()?.parse().ok()?;
    let ticket_id = parts.next()?.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
    Some(RevocationCursor { at, ticket_id })
}

/// Tickets of an event voided or reissued since a cursor, so that scanners working offline
/// refuse them too (scanner or admin).
#[utoipa::path(
    get,
    path = "/v1/events/{eventId}/revocations",
    tag = "tickets",
    params(("eventId" = String, Path, format = Uuid, description = "The event"), RevocationsQuery),
    responses(
        (status = 200, description = "Revoked tickets, oldest first", body = RevocationsResponse),
        (status = 400, description = "Malformed cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a scanner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(event_id = %event_id))]
pub async fn revocations(
    State(state): State<AppState>,
    Scanner(_who): Scanner,
    Path(event_id): Path<String>,
    Query(q): Query<RevocationsQuery>,
) -> ApiResult<Json<RevocationsResponse>> {
    let event: EventId = event_id.parse().map_err(|_| ApiError::not_found("event"))?;
    state
        .event(event)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(decode_cursor(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid-cursor",
                "`since` is not a cursor this API gave out",
            )
        })?),
    };
    let limit = q.limit.unwrap_or(REVOCATIONS_DEFAULT_LIMIT);
    if !(1..=REVOCATIONS_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(boxoffice_domain::ValidationError::new(
            "limit",
            format!("must be between 1 and {REVOCATIONS_MAX_LIMIT}"),
        )));
    }
    let rows = state.store.revocations(event, since, limit).await?;
    let has_more = rows.len() == limit as usize;
    let last = rows.last().map(|r| RevocationCursor {
        at: r.at,
        ticket_id: r.ticket_id,
    });
    // A full page continues right after its last row; otherwise the cursor stays behind the
    // settle window, so late commits are not skipped.
    let settled = RevocationCursor {
        at: state.clock.now() - REVOCATION_SETTLE,
        ticket_id: TicketId(uuid::Uuid::nil()),
    };
    let next = match (last, since) {
        (Some(l), _) if has_more => Some(l),
        (Some(l), _) => Some(if (l.at, l.ticket_id) < (settled.at, settled.ticket_id) {
            l
        } else {
            settled
        }),
        (None, s) => s,
    };
    // Never step backwards past where the caller already was.
    let next = match (next, since) {
        (Some(n), Some(s)) if (n.at, n.ticket_id) < (s.at, s.ticket_id) => Some(s),
        (n, _) => n,
    };
    Ok(Json(RevocationsResponse {
        revocations: rows
            .iter()
            .map(|r| RevocationResponse {
                ticket_id: r.ticket_id,
                status: r.status.as_str().to_owned(),
                at: r.at,
            })
            .collect(),
        next_cursor: next.map(encode_cursor),
        has_more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = RevocationCursor {
            at: boxoffice_domain::event::to_micros(OffsetDateTime::now_utc()),
            ticket_id: TicketId::new(),
        };
        assert_eq!(decode_cursor(&encode_cursor(c)), Some(c));
        for bad in [
            "",
            "x",
            "cjE6",
            "r1:1:2",
            &URL_SAFE_NO_PAD.encode("r1:abc:def"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
