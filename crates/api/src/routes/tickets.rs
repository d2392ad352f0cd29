//! Tickets people carry: a ticket's token as a QR code for its owner.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxoffice_domain::booking::{Ticket, TicketStatus};
use boxoffice_domain::ids::TicketId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::qr;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ticket_qr_svg))
        .routes(routes!(ticket_qr_png))
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

/// The token of a ticket whose code may still be shown: a void ticket's is dead.
fn showable_token(t: Ticket) -> ApiResult<String> {
    match t.status {
        TicketStatus::Void => Err(Problem::new(
            StatusCode::GONE,
            "ticket-revoked",
            "This ticket no longer admits anyone",
        )
        .detail("the ticket was cancelled or refunded; its code is refused at the door")
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
        (status = 410, description = "The ticket was cancelled; its code admits no one", body = Problem, content_type = "application/problem+json"),
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
        (status = 410, description = "The ticket was cancelled; its code admits no one", body = Problem, content_type = "application/problem+json"),
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
