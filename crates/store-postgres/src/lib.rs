//! The scaled-out store: PostgreSQL as the source of truth, shared by every node.
//!
//! Connections come from a deadpool pool and statements are prepared once per connection
//! (`prepare_cached`). Each store method is one transaction. Migrations live in
//! `migrations/` and are applied at start while holding a PostgreSQL advisory lock, so nodes
//! starting together apply them exactly once.

/// Runs a statement with `$method` (`query`, `query_one`, `query_opt`, `execute`) of
/// [`exec::Exec`] (prepared once per connection, or unnamed behind a transaction pooler),
/// mapping driver errors to [`StoreError`].
macro_rules! q {
    ($c:expr, $method:ident, $sql:expr, $($arg:expr),* $(,)?) => {{
        $c.$method($sql, &[$($arg),*]).await.map_err($crate::pg_error)
    }};
}

mod booking;
mod catalog;
mod exec;
pub use exec::StatementLog;
mod feed;
mod group;
mod holds;
mod queue;
mod replica;
mod reports;
mod resale;
pub mod sharded;
pub mod testing;
mod transfers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::booking::{
    Booking, HoldError, HoldRequest, Payment, PaymentKey, PaymentStatus, Ticket,
};
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{BookingId, CustomerId, EventId, PaymentId, SeatId, TicketId};
use boxoffice_domain::ids::{ListingId, PayoutId};
use boxoffice_domain::ports::ListRequest;
use boxoffice_domain::ports::{
    CheckIn, CommitBegin, CommitError, CommitFinish, CommitRequest, Finding, FinishedCommit,
    MaybeStoreError, PaymentBacklog, ReleaseError, SeatMap, Settlement, Store, StoreError,
};
use boxoffice_domain::resale::{ListError, Listing, Payout, WithdrawError};
use boxoffice_domain::rules::Revocation;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use exec::Exec;
pub use sharded::ShardedStore;
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
    /// What sits between the node and PostgreSQL.
    pub pooler: Pooler,
    /// A direct connection (not through a transaction pooler) to listen for change
    /// notifications on; `None`: the database URL itself, unless behind a transaction pooler,
    /// where the change feed is polled instead.
    pub listen_url: Option<String>,
    /// A streaming replica to serve catalog reads (event detail, seat maps, the search
    /// index's rebuild scan) while it keeps up; see [`replica`](crate::replica).
    pub replica_url: Option<String>,
    /// How far behind the primary the replica may be and still serve reads.
    pub replica_max_lag: Duration,
    /// Records every statement the store sends (tests check how statements find their rows).
    pub statement_log: Option<StatementLog>,
    /// Concurrent commits are started and confirmed a group per transaction (see
    /// [`group`](crate::group)); off, each goes alone.
    pub group_commit: bool,
    /// With group commit: how long a small group waits for more requests before it is
    /// written (see [`group`](crate::group)); zero writes at once.
    pub group_window: Duration,
}

/// How long a small group waits for more requests by default: at 250 bookings a second it took
/// the database from 1.1–1.2 to 0.44 cores, for up to this much more per step
/// (`bench/RESULTS.md`).
pub const DEFAULT_GROUP_WINDOW: Duration = Duration::from_millis(20);

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            pooler: Pooler::None,
            listen_url: None,
            replica_url: None,
            replica_max_lag: Duration::from_secs(2),
            statement_log: None,
            group_commit: true,
            group_window: DEFAULT_GROUP_WINDOW,
        }
    }
}

/// What the database URL reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// PostgreSQL itself, or a pooler that gives each client a server connection for the
    /// whole session: statements are prepared once per connection, migrations run at start.
    #[default]
    None,
    /// A pooler that lends a server connection for one transaction at a time (pgbouncer's
    /// `pool_mode = transaction`): statements are unnamed (typed, one round trip each),
    /// nothing is kept in the session, and migrations are not run through it — the node only
    /// checks the schema is current (run `boxoffice migrate` against the primary directly).
    Transaction,
}

/// The PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    statements: exec::Statements,
    replica: Option<Arc<replica::Replica>>,
    /// Events known to have their seats laid out (a fact that never reverts), so holds skip
    /// asking.
    laid_out: Arc<std::sync::RwLock<std::collections::HashSet<EventId>>>,
    feed: std::sync::Arc<feed::Listener>,
    /// Group commit of the purchase's writes; `None` when off.
    groups: Option<Arc<Groups>>,
}

struct Groups {
    hold: group::Group<group::Hold>,
    begin: group::Group<group::Begin>,
    finish: group::Group<group::Finish>,
}

impl Groups {
    fn new(window: Duration) -> Self {
        let pending = Arc::default();
        Self {
            hold: group::Group::new(window, Arc::clone(&pending)),
            begin: group::Group::new(window, Arc::clone(&pending)),
            finish: group::Group::new(window, pending),
        }
    }
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
        let statements = match opts.pooler {
            Pooler::None => {
                migrate(&config).await?;
                exec::Statements::default()
            }
            Pooler::Transaction => {
                check_schema(&config).await?;
                exec::Statements::unnamed()
            }
        }
        .logged(opts.statement_log.clone());
        let listen = match (&opts.listen_url, opts.pooler) {
            (Some(url), _) => Some(url.parse().map_err(|_| {
                StoreError::Internal("the PostgreSQL listen URL is malformed".into())
            })?),
            (None, Pooler::None) => Some(config.clone()),
            (None, Pooler::Transaction) => {
                tracing::warn!(
                    "behind a transaction pooler without a listen URL: the change feed is \
                     polled, not woken by notifications"
                );
                None
            }
        };
        let feed = std::sync::Arc::new(feed::Listener::new(listen));
        let pool = build_pool(config, opts.pool_size, opts.acquire_timeout)?;
        let replica = match &opts.replica_url {
            None => None,
            Some(url) => {
                let config: tokio_postgres::Config = url.parse().map_err(|_| {
                    StoreError::Internal("the PostgreSQL replica URL is malformed".into())
                })?;
                // Short waits: a replica that does not answer is skipped, not waited for.
                let replica_pool = build_pool(config, opts.pool_size, Duration::from_millis(500))?;
                let r =
                    replica::Replica::new(replica_pool, statements.clone(), opts.replica_max_lag);
                tokio::spawn(replica::monitor(
                    Arc::downgrade(&r),
                    pool.clone(),
                    statements.clone(),
                ));
                Some(r)
            }
        };
        Ok(Self {
            pool,
            statements,
            replica,
            feed,
            laid_out: Arc::default(),
            groups: opts
                .group_commit
                .then(|| Arc::new(Groups::new(opts.group_window))),
        })
    }

    /// A connection for a catalog read: the replica's when it may serve it (`true`), else
    /// the primary's.
    pub(crate) async fn catalog_client(&self) -> Result<(exec::Conn, bool), StoreError> {
        if let Some(r) = &self.replica
            && let Some(c) = r.conn().await
        {
            return Ok((c, true));
        }
        Ok((self.client().await?, false))
    }

    /// After a catalog write (committed): this node's catalog reads wait for the replica to
    /// have replayed it.
    pub(crate) async fn wrote_catalog(&self) {
        if let Some(r) = &self.replica {
            match self.client().await {
                Ok(c) => r.wrote(Some(&c)).await,
                Err(_) => r.wrote(None::<&exec::Conn>).await,
            }
        }
    }

    fn fell_back(&self) {
        if let Some(r) = &self.replica {
            r.fell_back();
        }
    }

    fn laid_out(&self, id: EventId) -> bool {
        self.laid_out.read().is_ok_and(|s| s.contains(&id))
    }

    fn remember_laid_out(&self, id: EventId) {
        if let Ok(mut s) = self.laid_out.write() {
            if s.len() > 100_000 {
                s.clear();
            }
            s.insert(id);
        }
    }

    pub(crate) async fn client(&self) -> Result<exec::Conn, StoreError> {
        let obj = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
        Ok(exec::Conn::new(obj, self.statements.clone()))
    }

    /// This database's identity (generated when its schema was created): what the change
    /// feed's cursors and shard placement are keyed by.
    pub async fn store_id(&self) -> Result<String, StoreError> {
        let c = self.client().await?;
        Ok(q!(c, query_one, "SELECT store_id::text FROM feed_identity",)?.get(0))
    }

    /// Every event's id (for checks over the whole catalog).
    pub async fn event_ids(&self) -> Result<Vec<EventId>, StoreError> {
        let c = self.client().await?;
        Ok(q!(c, query, "SELECT event_id FROM events",)?
            .iter()
            .map(|r| EventId(r.get(0)))
            .collect())
    }

    /// Registers the *public* half of a key every node of the cluster must share (`purpose`,
    /// e.g. `ticket-signing`), or compares it with the one registered first. Only public
    /// material is ever stored.
    pub async fn claim_cluster_key(
        &self,
        purpose: &str,
        key_id: &str,
        public_key: &str,
    ) -> Result<ClusterKey, StoreError> {
        let c = self.client().await?;
        let inserted = c
            .execute(
                "INSERT INTO cluster_keys (purpose, key_id, public_key) VALUES ($1, $2, $3)
                 ON CONFLICT (purpose) DO NOTHING",
                &[&purpose, &key_id, &public_key],
            )
            .await
            .map_err(pg_error)?;
        if inserted == 1 {
            return Ok(ClusterKey::Registered);
        }
        // A statement of its own, so that it sees a row another node committed meanwhile.
        let row = c
            .query_one(
                "SELECT key_id, public_key FROM cluster_keys WHERE purpose = $1",
                &[&purpose],
            )
            .await
            .map_err(pg_error)?;
        let stored: &str = row.get(1);
        Ok(if stored == public_key {
            ClusterKey::Same
        } else {
            ClusterKey::Different {
                registered_key_id: row.get(0),
            }
        })
    }
}

fn build_pool(
    config: tokio_postgres::Config,
    size: usize,
    acquire_timeout: Duration,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(
            Duration::from_secs(5).min(acquire_timeout.max(Duration::from_secs(1))),
        ))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Internal(format!("building pool: {e}")))
}

/// How a node's key compares with the one its cluster registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterKey {
    /// This node is the first: its key is now the cluster's.
    Registered,
    /// The same key as the cluster's.
    Same,
    /// Another key: this node must not run beside the others.
    Different { registered_key_id: String },
}

/// Runs `$body` (an expression using the transaction `$tx`, evaluating to a `Result`) in a
/// transaction, committing on `Ok`. Deadlock victims and serialization failures are retried a
/// few times with a short random pause, since the other transaction usually finishes quickly.
macro_rules! in_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let mut client = $self.client().await?;
            let $tx = client.transaction().await.map_err(pg_error)?;
            match $body {
                Ok(v) => match $tx.commit().await {
                    Ok(()) => break Ok(v),
                    Err(e) => {
                        let e = pg_error(e);
                        if matches!(e, StoreError::Contention(_)) && attempt < 5 {
                            attempt += 1;
                            backoff(attempt).await;
                            continue;
                        }
                        break Err(e.into());
                    }
                },
                Err(e) => {
                    drop($tx);
                    if MaybeStoreError::is_contention(&e) && attempt < 5 {
                        attempt += 1;
                        backoff(attempt).await;
                        continue;
                    }
                    break Err(e);
                }
            }
        }
    }};
}

async fn backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 10;
    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter)).await;
}

async fn read_seat_map(
    c: &exec::Conn,
    event: &Event,
    now: OffsetDateTime,
) -> Result<SeatMap, StoreError> {
    let (map, listings) = tokio::try_join!(
        catalog::seat_map(c, event, now),
        resale::event_listings(c, event.id, now)
    )?;
    let mut map = map;
    map.add_resale(&listings, now);
    Ok(map)
}

impl PgStore {
    async fn create_events_bulk_or_one(
        &self,
        events: &[Event],
        one: bool,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        catalog::insert_events(&tx, events, one).await?;
        tx.commit().await.map_err(pg_error)?;
        drop(c);
        self.wrote_catalog().await;
        Ok(())
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

/// Behind a transaction pooler the node does not migrate (the migration's advisory lock is
/// session state): it checks that someone has, and refuses to start on an older schema.
async fn check_schema(config: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
    let conn_task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let wanted = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0);
    // The simple protocol: no statement is prepared on the pooler's server connection.
    let applied = client
        .simple_query("SELECT coalesce(max(version), 0)::text FROM refinery_schema_history")
        .await;
    drop(client);
    let _ = conn_task.await;
    let applied = match applied {
        Ok(rows) => rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse::<i64>().ok(),
                _ => None,
            })
            .unwrap_or(0),
        // No history table: nothing was ever migrated.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => return Err(pg_error(e)),
    };
    if applied < wanted {
        return Err(StoreError::Internal(format!(
            "the database schema is at migration {applied}, this node needs {wanted}: run \
             `boxoffice migrate` against the primary directly (not through the pooler)"
        )));
    }
    Ok(())
}

/// A row that does not decode: a bug or a corrupted database, never the caller's fault.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt row: {what}"))
}

pub(crate) fn pg_error(err: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    // For logs only (never shown to clients): the server's message says what went wrong.
    let e = match err.as_db_error() {
        Some(db) => format!("{err}: {db}"),
        None => err.to_string(),
    };
    match err.code() {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::LOCK_NOT_AVAILABLE =>
        {
            StoreError::Contention(format!("postgres: {e}"))
        }
        Some(code)
            if *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreError::Unavailable(format!("postgres: {e}"))
        }
        Some(_) => StoreError::Internal(format!("postgres: {e}")),
        // No SQLSTATE: the error happened on our side of the wire (connection lost or
        // refused, IO, timeout), so the database is out of reach rather than wrong.
        None => StoreError::Unavailable(format!("postgres: {e}")),
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
        self.create_events_bulk_or_one(std::slice::from_ref(event), true)
            .await
    }

    async fn create_events_bulk(&self, events: &[Event]) -> Result<(), StoreError> {
        self.create_events_bulk_or_one(events, false).await
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let (c, from_replica) = self.catalog_client().await?;
        match catalog::load_event(&c, id).await {
            // Created on another node an instant ago, or the replica failed: the primary.
            Ok(None) | Err(_) if from_replica => {
                drop(c);
                self.fell_back();
                catalog::load_event(&self.client().await?, id).await
            }
            r => r,
        }
    }

    async fn seat_map(&self, event: &Event, now: OffsetDateTime) -> Result<SeatMap, StoreError> {
        let (c, from_replica) = self.catalog_client().await?;
        match read_seat_map(&c, event, now).await {
            Err(_) if from_replica => {
                drop(c);
                self.fell_back();
                read_seat_map(&self.client().await?, event, now).await
            }
            r => r,
        }
    }

    async fn hold(&self, req: &HoldRequest) -> Result<Booking, HoldError> {
        // A best-available pick that loses seats to concurrent buyers is rolled back and
        // retried with a new pick; the last attempt takes whatever is free.
        const ATTEMPTS: u32 = 4;
        // Once the event's seats are laid out, a plain hold is written in a group; whatever
        // the group leaves (see `holds`) is held here on its own.
        if let Some(g) = &self.groups
            && self.laid_out(req.event_id())
            && let Some(held) = g
                .hold
                .submit(&self.pool, &self.statements, req.clone())
                .await
        {
            return Ok(held);
        }
        let mut attempt = 1;
        loop {
            let last = attempt == ATTEMPTS;
            let known = self.laid_out(req.event_id());
            match in_tx!(self, |tx| booking::hold(&tx, req, last, known).await) {
                Err(HoldError::Busy) if !last => {
                    backoff(attempt).await;
                    attempt += 1;
                }
                Ok(b) => {
                    self.remember_laid_out(req.event_id());
                    return Ok(b);
                }
                other => return other,
            }
        }
    }

    async fn booking(&self, id: BookingId) -> Result<Option<Booking>, StoreError> {
        // One snapshot for the booking, its seats and its tickets: never CONFIRMED without
        // the tickets committed with it.
        let mut c = self.client().await?;
        let tx = c.read_only_snapshot().await.map_err(pg_error)?;
        let b = booking::load_booking(&tx, id).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(b)
    }

    async fn tickets_of(&self, customer: &CustomerId) -> Result<Vec<Ticket>, StoreError> {
        let c = self.client().await?;
        booking::tickets_of(&c, customer).await
    }

    async fn begin_commit(&self, req: &CommitRequest) -> Result<CommitBegin, CommitError> {
        if let Some(g) = &self.groups
            && let Some(started) = g
                .begin
                .submit(&self.pool, &self.statements, req.clone())
                .await
        {
            return Ok(started);
        }
        in_tx!(self, |tx| booking::begin_commit(&tx, req).await)
    }

    async fn finish_commit(&self, fin: &CommitFinish) -> Result<FinishedCommit, StoreError> {
        // Only approvals are settled in a group: every other answer goes alone.
        if let Some(g) = &self.groups
            && matches!(fin.settlement, Settlement::Approved { .. })
            && let Some(done) = g
                .finish
                .submit(&self.pool, &self.statements, fin.clone())
                .await
        {
            return Ok(done);
        }
        in_tx!(self, |tx| booking::finish_commit(&tx, fin).await)
    }

    async fn set_payments_status(
        &self,
        payments: &[PaymentKey],
        from: &[PaymentStatus],
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        booking::set_payments_status(&c, payments, from, to, now).await
    }

    async fn release(&self, id: BookingId, now: OffsetDateTime) -> Result<Booking, ReleaseError> {
        in_tx!(self, |tx| booking::release(&tx, id, now).await)
    }

    async fn cancel_confirmed(
        &self,
        id: BookingId,
        now: OffsetDateTime,
    ) -> Result<(Booking, Option<Payment>), ReleaseError> {
        in_tx!(self, |tx| booking::cancel_confirmed(&tx, id, now).await)
    }

    async fn update_details(
        &self,
        id: BookingId,
        contact_email: Option<String>,
        attendees: Vec<(SeatId, Option<String>)>,
        now: OffsetDateTime,
    ) -> Result<Booking, StoreError> {
        in_tx!(self, |tx| {
            booking::update_details(&tx, id, contact_email.clone(), attendees.clone(), now).await
        })
    }

    async fn expire_holds(&self, now: OffsetDateTime, limit: u32) -> Result<u32, StoreError> {
        in_tx!(self, |tx| booking::expire_holds(&tx, now, limit).await)
    }

    async fn unsettled_payments(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let c = self.client().await?;
        booking::unsettled_payments(&c, before, now, limit).await
    }

    async fn defer_payment(
        &self,
        payment: PaymentKey,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        booking::defer_payment(&c, payment, next_attempt_at, error).await
    }

    async fn payment_backlog(&self) -> Result<PaymentBacklog, StoreError> {
        let c = self.client().await?;
        booking::payment_backlog(&c).await
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        let c = self.client().await?;
        booking::load_payment(&c, id).await
    }

    async fn payment_by_ref(
        &self,
        provider_ref: &str,
        provider_key: Option<&str>,
    ) -> Result<Option<Payment>, StoreError> {
        let c = self.client().await?;
        booking::payment_by_ref(&c, provider_ref, provider_key).await
    }

    async fn revoke(
        &self,
        payment: PaymentKey,
        why: Revocation,
        now: OffsetDateTime,
    ) -> Result<Option<Booking>, StoreError> {
        in_tx!(self, |tx| booking::revoke(&tx, payment, why, now).await)
    }

    async fn check_in(
        &self,
        id: TicketId,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<CheckIn, StoreError> {
        // One transaction: the ticket USED and its listing withdrawn together.
        in_tx!(self, |tx| booking::check_in(&tx, id, event, now).await)
    }

    async fn verify(&self, _now: OffsetDateTime) -> Result<Vec<Finding>, StoreError> {
        let c = self.client().await?;
        booking::verify(&c).await
    }

    async fn list_ticket(
        &self,
        req: &ListRequest,
    ) -> Result<Result<Listing, ListError>, StoreError> {
        in_tx!(self, |tx| resale::list_ticket(&tx, req).await)
    }

    async fn listing(&self, id: ListingId) -> Result<Option<Listing>, StoreError> {
        let c = self.client().await?;
        resale::listing(&c, id).await
    }

    async fn event_listings(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Listing>, StoreError> {
        let c = self.client().await?;
        resale::event_listings(&c, event, now).await
    }

    async fn seller_listings(&self, seller: &CustomerId) -> Result<Vec<Listing>, StoreError> {
        let c = self.client().await?;
        resale::seller_listings(&c, seller).await
    }

    async fn withdraw_listing(
        &self,
        id: ListingId,
        seller: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<Result<Listing, WithdrawError>, StoreError> {
        in_tx!(self, |tx| resale::withdraw(&tx, id, seller, now).await)
    }

    async fn payouts_of(&self, seller: &CustomerId) -> Result<Vec<Payout>, StoreError> {
        let c = self.client().await?;
        resale::payouts_of(&c, seller).await
    }

    async fn due_payouts(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payout>, StoreError> {
        let c = self.client().await?;
        resale::due_payouts(&c, now, limit).await
    }

    async fn mark_payout_paid(
        &self,
        id: PayoutId,
        provider_ref: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        resale::mark_payout_paid(&c, id, provider_ref, now).await
    }

    async fn cancelled_events(&self, since: OffsetDateTime) -> Result<Vec<EventId>, StoreError> {
        let c = self.client().await?;
        resale::cancelled_events(&c, since).await
    }

    async fn cancel_event(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Payment>, StoreError> {
        let voided = in_tx!(self, |tx| resale::cancel_event(&tx, event, now).await)?;
        self.wrote_catalog().await;
        Ok(voided)
    }

    // ---- transfers ------------------------------------------------------------------------

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        let c = self.client().await?;
        transfers::ticket(&c, id).await
    }

    async fn offer_transfer(
        &self,
        req: &boxoffice_domain::transfers::OfferRequest,
    ) -> Result<
        Result<boxoffice_domain::resale::Transfer, boxoffice_domain::transfers::TransferError>,
        StoreError,
    > {
        in_tx!(self, |tx| transfers::offer(&tx, req).await)
    }

    async fn accept_transfer(
        &self,
        req: &boxoffice_domain::transfers::AcceptRequest,
    ) -> Result<
        Result<
            (boxoffice_domain::resale::Transfer, Ticket),
            boxoffice_domain::transfers::TransferError,
        >,
        StoreError,
    > {
        in_tx!(self, |tx| transfers::accept(&tx, req).await)
    }

    async fn cancel_transfer(
        &self,
        id: boxoffice_domain::ids::TransferId,
        sender: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<
        Result<boxoffice_domain::resale::Transfer, boxoffice_domain::transfers::TransferError>,
        StoreError,
    > {
        in_tx!(self, |tx| transfers::cancel(&tx, id, sender, now).await)
    }

    async fn transfer(
        &self,
        id: boxoffice_domain::ids::TransferId,
    ) -> Result<Option<boxoffice_domain::resale::Transfer>, StoreError> {
        let c = self.client().await?;
        transfers::transfer(&c, id).await
    }

    async fn transfers_of(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<boxoffice_domain::resale::Transfer>, StoreError> {
        let c = self.client().await?;
        transfers::transfers_of(&c, customer).await
    }

    async fn revocations(
        &self,
        event: EventId,
        after: Option<boxoffice_domain::transfers::RevocationCursor>,
        limit: u32,
    ) -> Result<Vec<boxoffice_domain::transfers::RevokedTicket>, StoreError> {
        let c = self.client().await?;
        transfers::revocations(&c, event, after, limit).await
    }

    async fn organizer_events(
        &self,
        organizer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<EventId>, StoreError> {
        let c = self.client().await?;
        reports::organizer_events(&c, organizer, limit).await
    }

    async fn event_sales(
        &self,
        event: EventId,
    ) -> Result<boxoffice_domain::ports::EventSales, StoreError> {
        let c = self.client().await?;
        reports::event_sales(&c, event).await
    }

    async fn join_queue(
        &self,
        join: &boxoffice_domain::queue::QueueJoin,
    ) -> Result<boxoffice_domain::queue::QueueEntry, StoreError> {
        let c = self.client().await?;
        queue::join(&c, join).await
    }

    async fn queue_entry(
        &self,
        id: boxoffice_domain::ids::QueueId,
    ) -> Result<Option<boxoffice_domain::queue::QueueEntry>, StoreError> {
        let c = self.client().await?;
        queue::entry(&c, id).await
    }

    async fn queue_position(
        &self,
        entry: &boxoffice_domain::queue::QueueEntry,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        queue::position(&c, entry).await
    }

    async fn admit_from_queue(
        &self,
        round: &boxoffice_domain::queue::AdmitRound,
    ) -> Result<boxoffice_domain::queue::RoomCounts, StoreError> {
        in_tx!(self, |tx| queue::admit(&tx, round).await)
    }

    async fn queue_waiting_keys(&self, event: EventId) -> Result<Vec<i64>, StoreError> {
        let c = self.client().await?;
        queue::waiting_keys(&c, event).await
    }
}
