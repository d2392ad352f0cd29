//! The boxoffice HTTP API as a library: an axum [`Router`] over an [`AppState`], and
//! [`serve`], which the binary and the end-to-end tests both call.
//!
//! - [`routes`]: one module per resource, each with its documented handlers.
//! - [`commit_queue`]: queued commits: 202 at once, charged by a worker, streamed to the buyer.
//! - [`hold_gate`]: the (Redis) gate in front of the store's holds, when scaled out.
//! - [`qr`]: ticket tokens drawn as QR codes.
//! - [`waiting_room`]: the on-sale waiting room: admission rounds, standings, admission tokens.
//! - [`auth`]: JWT verification and the [`auth::Principal`] extractor.
//! - [`extract`]: JSON and query extractors whose rejections are problem documents.
//! - [`error`]: [`error::ApiError`], mapped to RFC 9457 problems in one place.
//! - [`middleware`]: metrics by route, HTTP caching (ETag, Cache-Control, 304) of the public
//!   read routes, and problem documents for every error response.
//! - [`retention`]: the background loop that prunes the change feed's outbox.

pub mod auth;
pub mod booking;
pub mod commit_queue;
pub mod error;
pub mod extract;
pub mod group_commit;
pub mod hold_gate;
pub mod middleware;
pub mod openapi;
pub mod qr;
pub mod retention;
pub mod routes;
pub mod seat_stream;
pub mod tickets;
pub mod waiting_room;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::{Clock, Store, StoreError};
use boxoffice_search::SearchIndex;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Authenticator;
use crate::booking::BookingService;
use crate::error::Problem;

/// Tunables of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body.
    pub body_limit: usize,
    /// A request that has not produced a response by then gets a 503.
    pub request_timeout: Duration,
    /// Signing secret of Stripe webhook deliveries; `None` disables the webhook route.
    pub stripe_webhook_secret: Option<auth::Secret>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            stripe_webhook_secret: None,
        }
    }
}

/// Everything a handler may use, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppInner>);

#[derive(Debug)]
pub struct AppInner {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
    pub booking: BookingService,
    pub metrics: PrometheusHandle,
    events: EventCache,
    /// Event search, answered from the node's own index.
    pub search: SearchIndex,
    /// On-sale waiting rooms.
    pub rooms: Arc<waiting_room::WaitingRooms>,
    /// Commits taken now and charged by a worker (on-sales).
    pub commits: commit_queue::CommitQueue,
    /// Live seat maps, fed by the change feed (see [`AppState::follow_changes`]).
    pub seats: seat_stream::SeatStreams,
    /// Set when the node shuts down: open event streams end, so that draining finishes.
    closing: tokio::sync::watch::Sender<bool>,
    /// The hold gate in front of the store (none unless installed).
    pub holds: hold_gate::Gate,
}

impl AppState {
    /// The booking service brings the store, clock, payment provider and ticket key; the
    /// search index is this node's own.
    pub fn new(
        auth: Arc<Authenticator>,
        config: ApiConfig,
        booking: BookingService,
        search: SearchIndex,
    ) -> Self {
        let rooms = Arc::new(waiting_room::WaitingRooms::new(
            booking.store.clone(),
            booking.clock.clone(),
            booking.tickets.clone(),
        ));
        Self(Arc::new(AppInner {
            rooms,
            commits: commit_queue::CommitQueue::default(),
            seats: seat_stream::SeatStreams::new(booking.store.clone()),
            closing: tokio::sync::watch::Sender::new(false),
            holds: booking.holds.clone(),
            store: booking.store.clone(),
            clock: booking.clock.clone(),
            auth,
            config,
            booking,
            metrics: middleware::metrics_handle(),
            events: EventCache::default(),
            search,
        }))
    }

    /// Ends every open event stream (the node is shutting down; clients reconnect elsewhere).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`AppState::close_streams`] was called.
    pub fn streams_closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// The store's change feed, which live seat maps follow (one follower per node).
    pub fn follow_changes(&self, feed: Arc<dyn boxoffice_domain::feed::ChangeFeed>) {
        self.seats.follow(feed);
    }

    /// An event, from memory when it was read before. Events do not change once created, so
    /// the booking path reads each from the database once.
    /// Drops an event from this node's cache (it changed: cancelled).
    pub fn forget_event(&self, id: EventId) {
        self.events.forget(id);
    }

    pub async fn event(&self, id: EventId) -> Result<Option<Arc<Event>>, StoreError> {
        if let Some(e) = self.events.get(id) {
            return Ok(Some(e));
        }
        let Some(e) = self.store.event(id).await? else {
            return Ok(None);
        };
        let e = Arc::new(e);
        self.events.put(e.clone());
        Ok(Some(e))
    }
}

/// A bounded map of events read recently.
#[derive(Debug, Default)]
struct EventCache {
    map: std::sync::RwLock<std::collections::HashMap<EventId, (Arc<Event>, std::time::Instant)>>,
}

impl EventCache {
    const CAPACITY: usize = 10_000;
    /// An organizer can cancel an event on any node: every node sees it within this long.
    const TTL: std::time::Duration = std::time::Duration::from_secs(5);

    fn get(&self, id: EventId) -> Option<Arc<Event>> {
        let map = self.map.read().ok()?;
        let (e, at) = map.get(&id)?;
        (at.elapsed() < Self::TTL).then(|| e.clone())
    }

    fn put(&self, e: Arc<Event>) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= Self::CAPACITY {
                // Crude but bounded: popular events come straight back.
                map.clear();
            }
            map.insert(e.id, (e, std::time::Instant::now()));
        }
    }

    fn forget(&self, id: EventId) {
        if let Ok(mut map) = self.map.write() {
            map.remove(&id);
        }
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The routes and their OpenAPI description, before state and layers are applied.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::events::router())
        .merge(routes::booking::router())
        .merge(routes::queue::router())
        .merge(routes::resale::router())
        .merge(routes::tickets::router())
        .merge(routes::webhooks::router())
        .merge(routes::search::router())
        .merge(routes::ops::router())
        .split_for_parts()
}

/// The complete application: routes, API docs, and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api_routes();
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = state.config.request_timeout;
    let body_limit = state.config.body_limit;
    routes
        .route_layer(axum::middleware::from_fn(middleware::http_cache))
        .route_layer(axum::middleware::from_fn(middleware::track_metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { Problem::from_status(StatusCode::NOT_FOUND).into_response() })
        .method_not_allowed_fallback(|| async {
            Problem::from_status(StatusCode::METHOD_NOT_ALLOWED).into_response()
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }))
        .layer(axum::middleware::map_response(middleware::www_authenticate))
        .layer(axum::middleware::map_response(middleware::problem_fallback))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            },
        ))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
