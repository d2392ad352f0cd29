//! The embedded store: the whole of boxoffice's state in one SQLite file, for running with
//! nothing else installed.
//!
//! SQLite allows one writer at a time, so this adapter keeps exactly one write connection
//! (behind a mutex, every write an `IMMEDIATE` transaction) and a small pool of read
//! connections that run concurrently thanks to WAL mode. All database work runs on tokio's
//! blocking pool, never on the async worker threads.
//!
//! Migrations live in `migrations/` and are applied on open under an exclusive file lock, so
//! two processes opening the same data directory at once cannot race.

mod booking;
mod catalog;
mod codec;
mod feed;
mod queue;
mod reports;
mod resale;
mod transfers;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    PaymentBacklog, ReleaseError, SeatMap, Store, StoreError,
};
use boxoffice_domain::resale::{ListError, Listing, Payout, WithdrawError};
use boxoffice_domain::rules::Revocation;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use time::OffsetDateTime;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Read connections kept open for reuse; more are opened under load and closed afterwards.
const IDLE_READERS: usize = 32;

/// The SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        migrate(path)?;
        let writer = connect(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let conn = match inner.readers.lock().map(|mut r| r.pop()) {
                Ok(Some(c)) => c,
                _ => connect(&inner.path)?,
            };
            let out = f(&conn).map_err(codec::store_error);
            if let Ok(mut idle) = inner.readers.lock()
                && idle.len() < IDLE_READERS
            {
                idle.push(conn);
            }
            out
        })
        .await
    }

    /// Runs `f` inside one `IMMEDIATE` transaction on the write connection, off the async
    /// runtime. The transaction commits if `f` returns `Ok` and rolls back otherwise.
    pub(crate) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Internal("sqlite writer mutex poisoned".into()))?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(codec::store_error)?;
            let out = f(&tx)?;
            tx.commit().map_err(codec::store_error)?;
            Ok(out)
        })
        .await
    }
}

async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| E::from(StoreError::Internal(format!("sqlite task failed: {e}"))))?
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(codec::store_error)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(codec::store_error)?;
    // WAL: readers never block the writer; NORMAL sync: durable across process crashes, and
    // across power loss up to the last checkpoint, at a fraction of FULL's fsync cost.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;",
    )
    .map_err(codec::store_error)?;
    Ok(conn)
}

/// Applies pending migrations to the database at `path`, holding an exclusive lock on a file
/// beside it for the duration so that concurrent starters wait for each other.
pub fn migrate(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Internal(format!("creating {}: {e}", dir.display())))?;
    }
    let lock_path = path.with_extension("migrate.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| StoreError::Internal(format!("creating {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| StoreError::Internal(format!("locking {}: {e}", lock_path.display())))?;
    let mut conn = connect(path)?;
    let report = embedded::migrations::runner()
        .set_grouped(true)
        .run(&mut conn)
        .map_err(|e| StoreError::Internal(format!("sqlite migration failed: {e}")))?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied sqlite migration");
    }
    drop(lock);
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|_| ())
    }

    async fn create_event(&self, event: &Event) -> Result<(), StoreError> {
        let event = event.clone();
        self.write(move |tx| catalog::insert_event(tx, &event, true).map(|_| ()))
            .await
    }

    async fn create_events_bulk(&self, events: &[Event]) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.write(move |tx| {
            for e in &events {
                catalog::insert_event(tx, e, false)?;
            }
            Ok(())
        })
        .await
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        self.read(move |c| catalog::load_event(c, id)).await
    }

    async fn seat_map(&self, event: &Event, now: OffsetDateTime) -> Result<SeatMap, StoreError> {
        let event = event.clone();
        self.read(move |c| {
            let mut map = catalog::seat_map(c, &event, now)?;
            map.add_resale(&resale::event_listings(c, event.id, now)?, now);
            Ok(map)
        })
        .await
    }

    async fn hold(&self, req: &HoldRequest) -> Result<Booking, HoldError> {
        let req = req.clone();
        self.write(move |tx| booking::hold(tx, &req)).await
    }

    async fn booking(&self, id: BookingId) -> Result<Option<Booking>, StoreError> {
        // One read transaction (one WAL snapshot) for the booking, its seats and its tickets:
        // never CONFIRMED without the tickets committed with it.
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let b = booking::load_booking(&tx, id)?;
            tx.commit()?;
            Ok(b)
        })
        .await
    }

    async fn tickets_of(&self, customer: &CustomerId) -> Result<Vec<Ticket>, StoreError> {
        let customer = customer.clone();
        self.read(move |c| booking::tickets_of(c, &customer)).await
    }

    async fn begin_commit(&self, req: &CommitRequest) -> Result<CommitBegin, CommitError> {
        let req = req.clone();
        self.write(move |tx| booking::begin_commit(tx, &req)).await
    }

    async fn finish_commit(&self, fin: &CommitFinish) -> Result<FinishedCommit, StoreError> {
        let fin = fin.clone();
        self.write(move |tx| booking::finish_commit(tx, &fin)).await
    }

    async fn set_payments_status(
        &self,
        payments: &[PaymentKey],
        from: &[PaymentStatus],
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        // One database: a payment's id is all it takes to find it.
        let payments: Vec<PaymentId> = payments.iter().map(|p| p.id).collect();
        let from = from.to_vec();
        self.write(move |tx| booking::set_payments_status(tx, &payments, &from, to, now))
            .await
    }

    async fn release(&self, id: BookingId, now: OffsetDateTime) -> Result<Booking, ReleaseError> {
        self.write(move |tx| booking::release(tx, id, now)).await
    }

    async fn cancel_confirmed(
        &self,
        id: BookingId,
        now: OffsetDateTime,
    ) -> Result<(Booking, Option<Payment>), ReleaseError> {
        self.write(move |tx| booking::cancel_confirmed(tx, id, now))
            .await
    }

    async fn update_details(
        &self,
        id: BookingId,
        contact_email: Option<String>,
        attendees: Vec<(SeatId, Option<String>)>,
        now: OffsetDateTime,
    ) -> Result<Booking, StoreError> {
        self.write(move |tx| booking::update_details(tx, id, contact_email, attendees, now))
            .await
    }

    async fn expire_holds(&self, now: OffsetDateTime, limit: u32) -> Result<u32, StoreError> {
        self.write(move |tx| booking::expire_holds(tx, now, limit))
            .await
    }

    async fn unsettled_payments(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        self.read(move |c| booking::unsettled_payments(c, before, now, limit))
            .await
    }

    async fn defer_payment(
        &self,
        payment: PaymentKey,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(move |tx| booking::defer_payment(tx, payment.id, next_attempt_at, &error))
            .await
    }

    async fn payment_backlog(&self) -> Result<PaymentBacklog, StoreError> {
        self.read(booking::payment_backlog).await
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.read(move |c| booking::load_payment(c, id)).await
    }

    async fn payment_by_ref(
        &self,
        provider_ref: &str,
        provider_key: Option<&str>,
    ) -> Result<Option<Payment>, StoreError> {
        let provider_ref = provider_ref.to_owned();
        let provider_key = provider_key.map(str::to_owned);
        self.read(move |c| booking::payment_by_ref(c, &provider_ref, provider_key.as_deref()))
            .await
    }

    async fn revoke(
        &self,
        payment: PaymentKey,
        why: Revocation,
        now: OffsetDateTime,
    ) -> Result<Option<Booking>, StoreError> {
        self.write(move |tx| booking::revoke(tx, payment.id, why, now))
            .await
    }

    async fn check_in(
        &self,
        id: TicketId,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<CheckIn, StoreError> {
        self.write(move |tx| booking::check_in(tx, id, event, now))
            .await
    }

    async fn verify(&self, _now: OffsetDateTime) -> Result<Vec<Finding>, StoreError> {
        self.read(booking::verify).await
    }

    async fn list_ticket(
        &self,
        req: &ListRequest,
    ) -> Result<Result<Listing, ListError>, StoreError> {
        let req = req.clone();
        self.write(move |tx| resale::list_ticket(tx, &req)).await
    }

    async fn listing(&self, id: ListingId) -> Result<Option<Listing>, StoreError> {
        self.read(move |c| resale::listing(c, id)).await
    }

    async fn event_listings(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Listing>, StoreError> {
        self.read(move |c| resale::event_listings(c, event, now))
            .await
    }

    async fn seller_listings(&self, seller: &CustomerId) -> Result<Vec<Listing>, StoreError> {
        let seller = seller.clone();
        self.read(move |c| resale::seller_listings(c, &seller))
            .await
    }

    async fn withdraw_listing(
        &self,
        id: ListingId,
        seller: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<Result<Listing, WithdrawError>, StoreError> {
        let seller = seller.clone();
        self.write(move |tx| resale::withdraw(tx, id, &seller, now))
            .await
    }

    async fn payouts_of(&self, seller: &CustomerId) -> Result<Vec<Payout>, StoreError> {
        let seller = seller.clone();
        self.read(move |c| resale::payouts_of(c, &seller)).await
    }

    async fn due_payouts(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payout>, StoreError> {
        self.read(move |c| resale::due_payouts(c, now, limit)).await
    }

    async fn mark_payout_paid(
        &self,
        id: PayoutId,
        provider_ref: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let provider_ref = provider_ref.to_owned();
        self.write(move |tx| resale::mark_payout_paid(tx, id, &provider_ref, now))
            .await
    }

    async fn cancelled_events(&self, since: OffsetDateTime) -> Result<Vec<EventId>, StoreError> {
        self.read(move |c| resale::cancelled_events(c, since)).await
    }

    async fn cancel_event(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Payment>, StoreError> {
        self.write(move |tx| resale::cancel_event(tx, event, now))
            .await
    }

    // ---- transfers ------------------------------------------------------------------------

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.read(move |c| transfers::ticket(c, id)).await
    }

    async fn offer_transfer(
        &self,
        req: &boxoffice_domain::transfers::OfferRequest,
    ) -> Result<
        Result<boxoffice_domain::resale::Transfer, boxoffice_domain::transfers::TransferError>,
        StoreError,
    > {
        let req = req.clone();
        self.write(move |tx| transfers::offer(tx, &req)).await
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
        let req = req.clone();
        self.write(move |tx| transfers::accept(tx, &req)).await
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
        let sender = sender.clone();
        self.write(move |tx| transfers::cancel(tx, id, &sender, now))
            .await
    }

    async fn transfer(
        &self,
        id: boxoffice_domain::ids::TransferId,
    ) -> Result<Option<boxoffice_domain::resale::Transfer>, StoreError> {
        self.read(move |c| transfers::transfer(c, id)).await
    }

    async fn transfers_of(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<boxoffice_domain::resale::Transfer>, StoreError> {
        let customer = customer.clone();
        self.read(move |c| transfers::transfers_of(c, &customer))
            .await
    }

    async fn revocations(
        &self,
        event: EventId,
        after: Option<boxoffice_domain::transfers::RevocationCursor>,
        limit: u32,
    ) -> Result<Vec<boxoffice_domain::transfers::RevokedTicket>, StoreError> {
        self.read(move |c| transfers::revocations(c, event, after, limit))
            .await
    }

    async fn organizer_events(
        &self,
        organizer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<EventId>, StoreError> {
        let organizer = organizer.clone();
        self.read(move |c| reports::organizer_events(c, &organizer, limit))
            .await
    }

    async fn event_sales(
        &self,
        event: EventId,
    ) -> Result<boxoffice_domain::ports::EventSales, StoreError> {
        self.read(move |c| reports::event_sales(c, event)).await
    }

    async fn join_queue(
        &self,
        join: &boxoffice_domain::queue::QueueJoin,
    ) -> Result<boxoffice_domain::queue::QueueEntry, StoreError> {
        let join = join.clone();
        self.write(move |tx| queue::join(tx, &join)).await
    }

    async fn queue_entry(
        &self,
        id: boxoffice_domain::ids::QueueId,
    ) -> Result<Option<boxoffice_domain::queue::QueueEntry>, StoreError> {
        self.read(move |c| queue::entry(c, id)).await
    }

    async fn queue_position(
        &self,
        entry: &boxoffice_domain::queue::QueueEntry,
    ) -> Result<u64, StoreError> {
        let entry = entry.clone();
        self.read(move |c| queue::position(c, &entry)).await
    }

    async fn admit_from_queue(
        &self,
        round: &boxoffice_domain::queue::AdmitRound,
    ) -> Result<boxoffice_domain::queue::RoomCounts, StoreError> {
        let round = *round;
        self.write(move |tx| queue::admit(tx, &round)).await
    }

    async fn queue_waiting_keys(&self, event: EventId) -> Result<Vec<i64>, StoreError> {
        self.read(move |c| queue::waiting_keys(c, event)).await
    }
}
