//! A real server on a loopback port, over a fresh store of either kind, for API tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use boxoffice_api::auth::{AuthConfig, Authenticator, Role, Secret, mint_hs256};
use boxoffice_api::booking::{BookingConfig, BookingService};
use boxoffice_api::tickets::TicketSigner;
use boxoffice_api::{ApiConfig, AppState};
use boxoffice_domain::feed::ChangeFeed;
use boxoffice_domain::ports::{Clock, Store};
use boxoffice_payments::{Sandbox, SandboxOptions};
use boxoffice_search::{SearchConfig, SearchIndex};
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, PgStore};
use boxoffice_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub const SECRET: &str = "test-secret-that-is-long-enough";
pub const WEBHOOK_SECRET: &str = "whsec_test_webhook_secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The wall clock plus an offset that tests move forward, so that holds can expire and
/// refund windows close without waiting.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_micros: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, by: time::Duration) {
        self.offset_micros
            .fetch_add(by.whole_microseconds() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        boxoffice_domain::event::to_micros(OffsetDateTime::now_utc())
            + time::Duration::microseconds(self.offset_micros.load(Ordering::SeqCst))
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub state: AppState,
    pub clock: Arc<TestClock>,
    pub search: SearchIndex,
    /// The data directory (SQLite database, sandbox ledger, search index).
    pub dir: tempfile::TempDir,
    pub db: Option<TestDatabase>,
    _server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(
            backend,
            AuthConfig {
                hs256_secret: Some(Secret::new(SECRET)),
                ..AuthConfig::default()
            },
        )
        .await
    }

    pub async fn start_with(backend: Backend, auth: AuthConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SandboxOptions {
            hang: Duration::from_secs(5),
            ..SandboxOptions::default()
        };
        let (store, feed, sandbox, db): (Arc<dyn Store>, Arc<dyn ChangeFeed>, Sandbox, _) =
            match backend {
                Backend::Sqlite => {
                    let store =
                        SqliteStore::open(&dir.path().join("boxoffice.db")).expect("sqlite");
                    let sandbox = Sandbox::sqlite_with(dir.path().join("psp.db"), options)
                        .await
                        .expect("sandbox");
                    (Arc::new(store.clone()), Arc::new(store), sandbox, None)
                }
                Backend::Postgres => {
                    let db = TestDatabase::create().await;
                    let store = PgStore::connect(
                        &db.url,
                        PgOptions {
                            pool_size: 8,
                            ..PgOptions::default()
                        },
                    )
                    .await
                    .expect("postgres");
                    let sandbox = Sandbox::postgres_with(&db.url, options)
                        .await
                        .expect("sandbox");
                    (Arc::new(store.clone()), Arc::new(store), sandbox, Some(db))
                }
            };
        let feed_for_seats = feed.clone();
        let search = SearchIndex::open(&SearchConfig::new(dir.path().join("search-index")), feed)
            .expect("search index");
        let clock = Arc::new(TestClock::default());
        let booking = BookingService {
            store: store.clone(),
            payments: Arc::new(sandbox),
            tickets: Arc::new(TicketSigner::generate().0),
            clock: clock.clone(),
            config: BookingConfig {
                hold_ttl: Duration::from_secs(300),
                provider_timeout: Duration::from_millis(500),
                reconcile_after: Duration::from_secs(30),
                ..BookingConfig::default()
            },
            in_flight: Default::default(),
            captures: Default::default(),
            holds: Default::default(),
        };
        let state = AppState::new(
            Arc::new(Authenticator::new(&auth)),
            ApiConfig {
                body_limit: 256 * 1024,
                stripe_webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
                ..ApiConfig::default()
            },
            booking,
            search.clone(),
        );
        state.follow_changes(feed_for_seats);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = boxoffice_api::router(state.clone());
        let server = tokio::spawn(async move {
            boxoffice_api::serve(listener, app, std::future::pending())
                .await
                .expect("serve");
        });
        Self {
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            store,
            state,
            clock,
            search,
            dir,
            db,
            _server: server,
        }
    }

    /// The app's clock now.
    pub fn clock_now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        mint_hs256(&Secret::new(SECRET), sub, roles, Duration::from_secs(600)).expect("token")
    }

    pub fn organizer(&self) -> String {
        self.token("org-1", &[Role::Organizer])
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        status_json(res).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(self.url(path)).send().await.expect("request");
        status_json(res).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        status_json(res).await
    }

    /// Creates an event (the DESIGN.md one unless `body` says otherwise); returns its id.
    pub async fn event(&self, body: &Value) -> String {
        let (status, e) = self.post("/v1/events", &self.organizer(), body).await;
        assert_eq!(status, 201, "{e}");
        e["eventId"].as_str().expect("id").to_owned()
    }
}

/// The status and JSON body; asserts that errors are problem documents.
pub async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = res.bytes().await.expect("body");
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(ctype, "application/problem+json", "status {status}: {json}");
        assert!(json["code"].is_string(), "problem without code: {json}");
        assert_eq!(json["status"], status, "{json}");
    }
    (status, json)
}

/// The event from DESIGN.md, starting a year from now.
pub fn eras_tour() -> Value {
    let starts = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    json!({
        "name": "Taylor Swift | The Eras Tour",
        "performers": ["Taylor Swift"],
        "category": "concert",
        "description": "The Eras Tour in Seattle",
        "startsAt": starts.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "onSaleAt": "2026-01-01T00:00:00Z",
        "currency": "USD",
        "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                  "zipCode": "98134", "country": "US", "lat": 47.5952, "lon": -122.3316},
        "sections": [{"name": "Floor", "rows": 10, "seatsPerRow": 20, "priceCents": 25000},
                     {"name": "Lawn", "capacity": 100, "priceCents": 5000}],
        "policies": {"maxTicketsPerCustomer": 8, "refundWindowHours": 48, "resaleMaxPricePercent": 120}
    })
}

/// Runs each listed `async fn name(Backend)` once per storage backend.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
