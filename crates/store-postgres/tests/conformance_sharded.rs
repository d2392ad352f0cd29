//! The shared store suite against events sharded over two PostgreSQL databases: every rule
//! holds when events (and everything that belongs to them) are spread over shards, customer
//! pages and the sweeper fan out, and the change feed follows both shards.

use std::sync::Arc;

use boxoffice_conformance::Harness;
use boxoffice_store_postgres::testing::TestDatabase;
use boxoffice_store_postgres::{PgOptions, ShardedStore};

async fn fresh_store() -> Harness {
    let (a, b) = tokio::join!(TestDatabase::create(), TestDatabase::create());
    let store = ShardedStore::connect(
        &[a.url.clone(), b.url.clone()],
        PgOptions {
            pool_size: 4,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect to both shards");
    Harness {
        store: Arc::new(store.clone()),
        feed: Arc::new(store),
        guard: Box::new((a, b)),
    }
}

boxoffice_conformance::store_suite!(fresh_store);
