//! The on-sale waiting room: join, see where you stand (JSON or a server-sent event stream),
//! and get the admission token that `POST /v1/attempt` asks for.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use boxoffice_domain::event::{Event, SaleState};
use boxoffice_domain::ids::QueueId;
use boxoffice_domain::queue::QueueStatus;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::routes::booking::{event_cancelled, load_event};
use crate::waiting_room::{JoinError, Standing, WaitingRooms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join_queue))
        .routes(routes!(queue_status))
        .routes(routes!(queue_events))
}

/// How often a status stream says it is alive when nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// A buyer's place in a waiting room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueResponse {
    #[schema(value_type = String, format = Uuid)]
    pub queue_id: QueueId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: boxoffice_domain::ids::EventId,
    /// WAITING, ADMITTED, SOLD_OUT (nothing left to wait for) or EXPIRED (the admission lapsed;
    /// join again to queue at the back).
    pub status: String,
    /// While waiting: 1 for the next buyer in.
    pub position: Option<u64>,
    pub estimated_wait_seconds: Option<u64>,
    /// When admitted: send it as the `Admission-Token` header of `POST /v1/attempt`.
    pub admission_token: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub admission_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// Where the status streams: `GET` it for server-sent events.
    pub events_url: String,
}

impl QueueResponse {
    fn new(s: Standing) -> Self {
        Self {
            queue_id: s.entry.id,
            event_id: s.entry.event_id,
            status: s.status.as_str().to_owned(),
            position: s.position,
            estimated_wait_seconds: s.estimated_wait_seconds,
            admission_token: s.admission_token,
            admission_expires_at: s.admission_expires_at,
            joined_at: s.entry.joined_at,
            events_url: format!("/v1/queue/{}/events", s.entry.id),
        }
    }
}

fn customer(who: &Principal) -> ApiResult<()> {
    who.require(&[Role::Customer])
}

/// Join an event's waiting room. Everyone who joins before the sale opens gets a random place
/// when it opens; later arrivals queue in order. Joining again returns the same place.
#[utoipa::path(
    post,
    path = "/v1/events/{eventId}/queue",
    tag = "waiting room",
    params(("eventId" = String, Path, format = Uuid)),
    responses(
        (status = 201, description = "Joined", body = QueueResponse),
        (status = 200, description = "Already in the room: the same place", body = QueueResponse),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No waiting room, not open yet, or the event was cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The event has started", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn join_queue(
    State(state): State<AppState>,
    who: Principal,
    Path(event_id): Path<String>,
) -> ApiResult<Response> {
    customer(&who)?;
    let event = load_event(&state, &event_id).await?;
    match event.sale_state(state.clock.now()) {
        SaleState::Cancelled => return Err(event_cancelled()),
        SaleState::Started => {
            return Err(Problem::new(
                StatusCode::GONE,
                "event-started",
                "The event has already started",
            )
            .into());
        }
        SaleState::OnSale | SaleState::NotYetOnSale => {}
    }
    let (entry, fresh) = match state.rooms.join(&event, &who.sub).await {
        Ok(r) => r,
        Err(JoinError::NoWaitingRoom) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "no-waiting-room",
                "This event has no waiting room",
            )
            .detail("hold seats with POST /v1/attempt directly")
            .into());
        }
        Err(JoinError::NotOpen(at)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "waiting-room-not-open",
                "The waiting room is not open yet",
            )
            .with("opensAt", rfc3339(at))
            .into());
        }
        Err(JoinError::Store(e)) => return Err(e.into()),
    };
    let snap = state.rooms.snapshot(&event).await?;
    let id = entry.id;
    let standing = state.rooms.standing(&event, entry, &snap);
    tracing::info!(queue_id = %id, event_id = %event.id, fresh, "joined the waiting room");
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/queue/{id}")) {
        headers.insert(header::LOCATION, v);
    }
    Ok((status, headers, Json(QueueResponse::new(standing))).into_response())
}

/// The place and the event, if the caller owns the place; everyone else gets 404.
async fn own_place(
    state: &AppState,
    who: &Principal,
    raw: &str,
) -> ApiResult<(Arc<Event>, boxoffice_domain::queue::QueueEntry)> {
    let id: QueueId = raw.parse().map_err(|_| ApiError::not_found("queue"))?;
    let entry = state
        .rooms
        .entry(id)
        .await?
        .filter(|e| e.customer == who.sub || who.is_admin())
        .ok_or_else(|| ApiError::not_found("queue"))?;
    let event = state
        .event(entry.event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("queue"))?;
    Ok((event, entry))
}

/// Where you stand in the waiting room (for polling).
#[utoipa::path(
    get,
    path = "/v1/queue/{queueId}",
    tag = "waiting room",
    params(("queueId" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Your place", body = QueueResponse),
        (status = 404, description = "No such place of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn queue_status(
    State(state): State<AppState>,
    who: Principal,
    Path(queue_id): Path<String>,
) -> ApiResult<Response> {
    let (event, entry) = own_place(&state, &who, &queue_id).await?;
    let snap = state.rooms.snapshot(&event).await?;
    let standing = state.rooms.standing(&event, entry, &snap);
    let mut res = Json(QueueResponse::new(standing)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Where you stand, as server-sent events: `position` whenever it changes, then `admitted`
/// (with the admission token), `soldout` or `expired`, and the stream ends. A comment line every
/// 15 s keeps proxies from closing it; `Last-Event-ID` is accepted (the stream resumes with the
/// current standing).
#[utoipa::path(
    get,
    path = "/v1/queue/{queueId}/events",
    tag = "waiting room",
    params(("queueId" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "A text/event-stream of `position`, then `admitted`, `soldout` or `expired`", content_type = "text/event-stream"),
        (status = 404, description = "No such place of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn queue_events(
    State(state): State<AppState>,
    who: Principal,
    Path(queue_id): Path<String>,
) -> ApiResult<Response> {
    let (event, entry) = own_place(&state, &who, &queue_id).await?;
    let state_for_close = state.clone();
    let rx = state.rooms.subscribe(event.clone());
    let first = state.rooms.snapshot(&event).await?;
    let stream = standing_stream(state, event, entry, rx, first);
    Ok(sse_response(&state_for_close, stream))
}

/// A server-sent event stream with the headers that keep proxies from buffering or caching it;
/// it ends when the node shuts down.
pub fn sse_response<S>(state: &AppState, stream: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    use futures_util::StreamExt;
    let stream = stream.take_until(state.streams_closed());
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response();
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

struct Follow {
    state: AppState,
    event: Arc<Event>,
    entry: boxoffice_domain::queue::QueueEntry,
    rx: tokio::sync::watch::Receiver<Arc<crate::waiting_room::RoomSnapshot>>,
    next: Option<Arc<crate::waiting_room::RoomSnapshot>>,
    last_position: Option<u64>,
    seq: u64,
    done: bool,
}

fn standing_stream(
    state: AppState,
    event: Arc<Event>,
    entry: boxoffice_domain::queue::QueueEntry,
    rx: tokio::sync::watch::Receiver<Arc<crate::waiting_room::RoomSnapshot>>,
    first: Arc<crate::waiting_room::RoomSnapshot>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let follow = Follow {
        state,
        event,
        entry,
        rx,
        next: Some(first),
        last_position: None,
        seq: 0,
        done: false,
    };
    stream::unfold(follow, |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            let snap = match f.next.take() {
                Some(s) => s,
                None => {
                    if f.rx.changed().await.is_err() {
                        return None;
                    }
                    f.rx.borrow_and_update().clone()
                }
            };
            if snap.at.is_none() {
                continue;
            }
            if !WaitingRooms::still_waiting(&snap, &f.entry) {
                // Let in, queued again, or lapsed: read the place afresh.
                match f.state.rooms.entry(f.entry.id).await {
                    Ok(Some(e)) => f.entry = e,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting room stream: reading the place failed");
                        continue;
                    }
                }
            }
            let standing = f.state.rooms.standing(&f.event, f.entry.clone(), &snap);
            f.seq += 1;
            let (name, last) = match standing.status {
                QueueStatus::Waiting { .. } => {
                    if f.last_position == standing.position {
                        continue;
                    }
                    f.last_position = standing.position;
                    ("position", false)
                }
                QueueStatus::Admitted { .. } => ("admitted", true),
                QueueStatus::SoldOut => ("soldout", true),
                QueueStatus::Expired => ("expired", true),
            };
            f.done = last;
            let body = QueueResponse::new(standing);
            let ev = SseEvent::default()
                .event(name)
                .id(format!("{}-{}", snap.counts.admitted, f.seq))
                .json_data(&body)
                .unwrap_or_else(|_| SseEvent::default().comment("unserialisable"));
            return Some((Ok(ev), f));
        }
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
