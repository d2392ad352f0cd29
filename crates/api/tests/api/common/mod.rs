//! A real server on a loopback port, over a fresh store of either kind, for API tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use boxoffice_api::auth::{AuthConfig, Authenticator, Role, Secret, mint_hs256};
use boxoffice_api::{ApiConfig, AppState};
use boxoffice_domain::feed::ChangeFeed;
use boxoffice_domain::ports::{Clock, Store, SystemClock};
use boxoffice_search::{SearchConfig, SearchIndex};
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, PgStore};
use boxoffice_store_sqlite::SqliteStore;
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-that-is-long-enough";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub search: SearchIndex,
    pub _guards: (Option<tempfile::TempDir>, Option<TestDatabase>),
    _index_dir: tempfile::TempDir,
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
        let (store, feed, guards): (Arc<dyn Store>, Arc<dyn ChangeFeed>, _) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&dir.path().join("boxoffice.db")).expect("sqlite");
                (Arc::new(store.clone()), Arc::new(store), (Some(dir), None))
            }
            Backend::Postgres => {
                let db = TestDatabase::create().await;
                let store = PgStore::connect(
                    &db.url,
                    PgOptions {
                        pool_size: 4,
                        ..PgOptions::default()
                    },
                )
                .await
                .expect("postgres");
                (Arc::new(store.clone()), Arc::new(store), (None, Some(db)))
            }
        };
        let index_dir = tempfile::tempdir().expect("tempdir");
        let search = SearchIndex::open(&SearchConfig::new(index_dir.path().to_owned()), feed)
            .expect("search index");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = AppState::new(
            store.clone(),
            Arc::new(Authenticator::new(&auth)),
            clock,
            ApiConfig {
                body_limit: 256 * 1024,
                ..ApiConfig::default()
            },
            search.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = boxoffice_api::router(state);
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
            search,
            _guards: guards,
            _index_dir: index_dir,
            _server: server,
        }
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
