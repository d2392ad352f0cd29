//! The shared store suite, against a fresh SQLite file per test.

use std::sync::Arc;

use boxoffice_conformance::Harness;
use boxoffice_store_sqlite::SqliteStore;

async fn fresh_store() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("boxoffice.db")).expect("open sqlite");
    Harness {
        store: Arc::new(store.clone()),
        feed: Arc::new(store),
        guard: Box::new(dir),
    }
}

boxoffice_conformance::store_suite!(fresh_store);
