//! The storefront: the web shop the `boxoffice` binary serves at `/`, beside the JSON API.
//!
//! Pages are rendered on the server from [`maud`] templates and work without JavaScript for
//! searching and browsing; small scripts add the seat map, the hold countdown and the live
//! streams. Nothing here decides a booking rule: reads go through the same services as the
//! API (the search index, the store's seat map, the API's response types), and every action
//! (hold, pay, release, resell, transfer, create an event, join a queue) is the JSON API's own
//! route, called in-process through [`api::Api`] with the signed-in person's token — so a
//! form post and a `curl` get the very same answer.
//!
//! - [`session`]: who is signed in (an HttpOnly, SameSite=Strict cookie holding the bearer
//!   token), demo sign-in on loopback, CSRF tokens for forms, and the bridge that lets page
//!   scripts read the JSON API (`GET` only: QR images, SSE streams) with that cookie.
//! - [`assets`]: the stylesheet and scripts, embedded in the binary and served under hashed
//!   names with immutable caching.
//! - [`pages`]: one module per page.
//! - [`api`]: in-process calls to the JSON API router.

// Page helpers return a finished page (`Response`) as their error, to be sent as is; its size
// is beside the point on this path.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod assets;
pub mod format;
pub mod layout;
pub mod pages;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use boxoffice_api::AppState;
use boxoffice_api::auth::Secret;
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::SeatMap;
use tower_http::compression::CompressionLayer;

/// How the storefront may sign people in, decided once from the node's configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// The HS256 secret, only when demo sign-in is allowed: the node runs on the embedded
    /// store, listens on a loopback address only, and no identity provider is configured.
    demo_secret: Option<Secret>,
    /// An identity provider (JWKS) is configured: people paste its bearer token.
    identity_provider: bool,
    /// Mark cookies `Secure` (the node is reachable beyond loopback, so behind TLS).
    secure_cookies: bool,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("demo_signin", &self.demo_secret.is_some())
            .field("identity_provider", &self.identity_provider)
            .field("secure_cookies", &self.secure_cookies)
            .finish()
    }
}

impl WebConfig {
    /// `listen` is the address the node listens on; `embedded` whether it runs on the
    /// embedded SQLite store; `hs256_secret` the secret tokens are signed with, when the node
    /// accepts such tokens; `jwks` whether an identity provider is configured.
    pub fn new(
        listen: SocketAddr,
        embedded: bool,
        hs256_secret: Option<Secret>,
        jwks: bool,
    ) -> Self {
        let loopback = listen.ip().is_loopback();
        let demo = loopback && embedded && !jwks;
        Self {
            demo_secret: hs256_secret.filter(|_| demo),
            identity_provider: jwks,
            secure_cookies: !loopback,
        }
    }

    /// Whether the "sign in as" form is offered (and accepted).
    pub fn demo_signin(&self) -> bool {
        self.demo_secret.is_some()
    }
}

/// What every page handler gets.
#[derive(Debug, Clone)]
pub struct Site {
    pub state: AppState,
    pub config: Arc<WebConfig>,
    pub api: api::Api,
    seat_maps: Arc<SeatMaps>,
}

impl Site {
    /// An event's seat map, read at most once a second per event: the event page and the seat
    /// map its script loads right after (and many buyers opening the same on-sale) share one
    /// read — as fresh as the API's own seat map with its `max-age=1`.
    pub async fn seat_map(
        &self,
        event: &boxoffice_domain::event::Event,
    ) -> Result<Arc<SeatMap>, boxoffice_domain::ports::StoreError> {
        if let Some(m) = self.seat_maps.get(event.id) {
            return Ok(m);
        }
        let now = self.state.clock.now();
        let map = Arc::new(self.state.store.seat_map(event, now).await?);
        self.seat_maps.put(event.id, map.clone());
        Ok(map)
    }
}

/// Seat maps read in the last second, by event.
#[derive(Debug, Default)]
struct SeatMaps {
    map: std::sync::Mutex<HashMap<EventId, (Instant, Arc<SeatMap>)>>,
}

impl SeatMaps {
    const TTL: Duration = Duration::from_secs(1);
    const CAPACITY: usize = 256;

    fn get(&self, id: EventId) -> Option<Arc<SeatMap>> {
        let map = self.map.lock().ok()?;
        let (at, m) = map.get(&id)?;
        (at.elapsed() < Self::TTL).then(|| m.clone())
    }

    fn put(&self, id: EventId, m: Arc<SeatMap>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= Self::CAPACITY {
                map.retain(|_, (at, _)| at.elapsed() < Self::TTL);
                if map.len() >= Self::CAPACITY {
                    map.clear();
                }
            }
            map.insert(id, (Instant::now(), m));
        }
    }
}

/// The whole application: the storefront's pages and assets, and the JSON API (with its own
/// problem+json answers, including its 404s) for everything the pages do not claim.
pub fn router(state: AppState, config: WebConfig) -> Router {
    let api_router = boxoffice_api::router(state.clone());
    let site = Site {
        state,
        config: Arc::new(config),
        api: api::Api::new(api_router.clone()),
        seat_maps: Arc::default(),
    };
    pages_router(site)
        .fallback_service(api_router)
        .layer(axum::middleware::from_fn(html_not_found))
        .layer(axum::middleware::from_fn(session::bearer_from_cookie))
}

/// The storefront's own routes, compressed, with security headers.
fn pages_router(site: Site) -> Router {
    use pages::{checkout, errors, event, organizer, queue, search, signin, tickets};
    Router::new()
        .route("/", get(search::page))
        .route("/assets/{name}", get(assets::serve))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/events/{event_id}", get(event::page))
        .route("/events/{event_id}/seatmap.json", get(event::seatmap_json))
        .route("/events/{event_id}/hold", post(event::hold))
        .route("/events/{event_id}/queue", post(queue::join))
        .route("/events/{event_id}/queue/{queue_id}", get(queue::page))
        .route("/checkout/{booking_id}", get(checkout::page))
        .route("/checkout/{booking_id}/pay", post(checkout::pay))
        .route("/checkout/{booking_id}/release", post(checkout::release))
        .route("/bookings/{booking_id}", get(checkout::booking_page))
        .route("/tickets", get(tickets::page))
        .route("/tickets/{ticket_id}", get(tickets::door))
        .route("/tickets/{ticket_id}/resell", post(tickets::resell))
        .route("/tickets/{ticket_id}/transfer", post(tickets::transfer))
        .route("/listings/{listing_id}/withdraw", post(tickets::withdraw))
        .route("/transfers/{transfer_id}/accept", post(tickets::accept))
        .route(
            "/transfers/{transfer_id}/cancel",
            post(tickets::cancel_transfer),
        )
        .route("/organizer", get(organizer::home))
        .route(
            "/organizer/events/new",
            get(organizer::new_event).post(organizer::create_event),
        )
        .route("/organizer/events/{event_id}", get(organizer::sales))
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(axum::middleware::map_response(security_headers))
        .layer(CompressionLayer::new().gzip(true).br(true))
        .with_state(site)
}

/// Paths that belong to the JSON API and the operational endpoints: their errors stay
/// problem documents.
fn is_api_path(path: &str) -> bool {
    [
        "/v1/",
        "/docs",
        "/openapi.json",
        "/.well-known/",
        "/healthz",
        "/readyz",
        "/metrics",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// A browser asking for a page that does not exist gets an HTML page, not a problem
/// document; API clients keep their problem+json.
async fn html_not_found(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let res = next.run(req).await;
    if res.status() == StatusCode::NOT_FOUND && wants_html && !is_api_path(&path) {
        let is_html = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        if !is_html {
            return pages::errors::not_found_page(None).into_response();
        }
    }
    res
}

/// Headers every page carries: the shop is never framed, forms only post to it, no plugins.
/// (Scripts are not restricted by CSP: every value on a page is escaped by the templates, and
/// accessibility tools inject their checker as an inline script.)
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
