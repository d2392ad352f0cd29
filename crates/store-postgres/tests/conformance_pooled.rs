//! The shared store suite again, through pgbouncer in transaction pooling mode with fewer
//! server connections than the store opens: proves the store keeps nothing in the database
//! session (no prepared statement, session lock or `LISTEN` it relies on), as a node behind
//! a transaction pooler must. Migrations run directly on the database first, as an operator
//! runs `boxoffice migrate` against the primary; notifications are listened for directly.

use std::sync::Arc;

use boxoffice_conformance::Harness;
use boxoffice_store_postgres::testing::{TestDatabase, TransactionPooler};
use boxoffice_store_postgres::{PgOptions, PgStore, Pooler};

async fn fresh_store() -> Harness {
    let db = TestDatabase::create().await;
    // The schema, directly (a migration takes a session lock).
    PgStore::connect(&db.url, PgOptions::default())
        .await
        .expect("migrate the test database");
    let pooler = TransactionPooler::start(&db.name, 2);
    let store = PgStore::connect(
        &pooler.url,
        PgOptions {
            pool_size: 4,
            pooler: Pooler::Transaction,
            listen_url: Some(db.url.clone()),
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect through pgbouncer");
    Harness {
        store: Arc::new(store.clone()),
        feed: Arc::new(store),
        // The pooler goes before the database is dropped.
        guard: Box::new((pooler, db)),
    }
}

boxoffice_conformance::store_suite!(fresh_store);

#[tokio::test]
async fn behind_a_transaction_pooler_the_store_refuses_an_unmigrated_schema() {
    let db = TestDatabase::create().await;
    let pooler = TransactionPooler::start(&db.name, 2);
    let err = PgStore::connect(
        &pooler.url,
        PgOptions {
            pooler: Pooler::Transaction,
            ..PgOptions::default()
        },
    )
    .await
    .expect_err("an empty database is not a schema");
    assert!(
        err.to_string().contains("boxoffice migrate"),
        "the error says what to do: {err}"
    );
    drop(pooler);
}
