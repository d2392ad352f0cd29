//! The shared store suite, against a fresh PostgreSQL database per test.

use std::sync::Arc;

use boxoffice_conformance::Harness;
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, PgStore};

async fn fresh_store() -> Harness {
    let db = TestDatabase::create().await;
    let store = PgStore::connect(
        &db.url,
        PgOptions {
            pool_size: 4,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect to test database");
    Harness {
        store: Arc::new(store.clone()),
        feed: Arc::new(store),
        guard: Box::new(db),
    }
}

boxoffice_conformance::store_suite!(fresh_store);
