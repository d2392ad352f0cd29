//! The scaled-out store: PostgreSQL as the source of truth, shared by every node.
//!
//! Connections come from a deadpool pool and statements are prepared once per connection
//! (`prepare_cached`). Each store method is one transaction. Migrations live in
//! `migrations/` and are applied at start while holding a PostgreSQL advisory lock, so nodes
//! starting together apply them exactly once.

mod catalog;
mod feed;
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::EventId;
use boxoffice_domain::ports::{SeatMap, Store, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use time::OffsetDateTime;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary but fixed: the advisory lock every node takes while migrating.
const MIGRATION_LOCK: i64 = 0x626f_786f_6666_6963; // "boxoffic"

/// How to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections per node. PostgreSQL does best with a few busy connections per core.
    pub pool_size: usize,
    /// How long a request may wait for a free connection before it is told to come back.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    feed: std::sync::Arc<feed::Listener>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("PgStore")
            .field("pool_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, applies pending migrations under the advisory lock, and builds the pool.
    pub async fn connect(url: &str, opts: PgOptions) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Internal("the PostgreSQL URL is malformed".into()))?;
        migrate(&config).await?;
        let feed = std::sync::Arc::new(feed::Listener::new(config.clone()));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .wait_timeout(Some(opts.acquire_timeout))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("building pool: {e}")))?;
        Ok(Self { pool, feed })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
    }
}

/// Applies pending migrations, holding an advisory lock for the duration.
pub async fn migrate(config: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
    let conn_task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "migration connection closed with an error");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    let result = embedded::migrations::runner()
        .set_grouped(true)
        .run_async(&mut client)
        .await;
    // Unlock even when the migration failed; closing the session would release it too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = conn_task.await;
    let report =
        result.map_err(|e| StoreError::Internal(format!("postgres migration failed: {e}")))?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied postgres migration");
    }
    Ok(())
}

pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() || e.as_db_error().is_none() && e.to_string().contains("connect") {
        StoreError::Unavailable(format!("postgres: {e}"))
    } else {
        StoreError::Internal(format!("postgres: {e}"))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map_err(pg_error)?;
        Ok(())
    }

    async fn create_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        catalog::insert_events(&tx, std::slice::from_ref(event), true).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn create_events_bulk(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        catalog::insert_events(&tx, events, false).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let c = self.client().await?;
        catalog::load_event(&c, id).await
    }

    async fn seat_map(&self, event: &Event, now: OffsetDateTime) -> Result<SeatMap, StoreError> {
        let c = self.client().await?;
        catalog::seat_map(&c, event, now).await
    }
}
