//! Events sharded over several PostgreSQL databases.
//!
//! Every event lives on one shard, and so does everything that belongs to it (seats, bookings,
//! tickets, payments, listings, transfers, payouts, waiting-room places): each of those ids
//! carries its event's [`ShardSlot`], so any id leads straight to its shard. Slots map to
//! shards by rendezvous hashing (highest random weight) over each shard's identity — the
//! `store_id` its database generated when it was created, not its URL, so moving a database
//! to another host moves nothing. Adding a shard moves only the slots the new shard now wins
//! (about 1/n of them); `boxoffice shard rebalance` ([`rebalance`]) moves their events.
//!
//! Customer pages (tickets, listings, payouts, transfers), the sweeper, the reconciler and
//! `verify` fan out to every shard and merge. A lookup by id that misses on the owning shard
//! asks the others (an event not moved yet). The change feed is every shard's feed at once:
//! a composite cursor holds one position per shard, so every node's search index follows
//! every shard.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::booking::{
    Booking, HoldError, HoldRequest, Payment, PaymentKey, PaymentStatus, Ticket,
};
use boxoffice_domain::event::Event;
use boxoffice_domain::feed::{
    CatalogEntry, Change, ChangeFeed, FeedCursor, FeedRead, Pruned, Retention,
};
use boxoffice_domain::ids::{
    BookingId, CustomerId, EventId, ListingId, PaymentId, PayoutId, QueueId, SeatId, ShardSlot,
    TicketId, TransferId,
};
use boxoffice_domain::ports::{
    CheckIn, CommitBegin, CommitError, CommitFinish, CommitRequest, EventSales, Finding,
    FinishedCommit, ListRequest, PaymentBacklog, ReleaseError, SeatMap, Store, StoreError,
};
use boxoffice_domain::queue::{AdmitRound, QueueEntry, QueueJoin, RoomCounts};
use boxoffice_domain::resale::{ListError, Listing, Payout, Transfer, WithdrawError};
use boxoffice_domain::rules::Revocation;
use boxoffice_domain::transfers::{
    AcceptRequest, OfferRequest, RevocationCursor, RevokedTicket, TransferError,
};
use futures_util::future::{select_all, try_join_all};
use time::OffsetDateTime;

use crate::{PgOptions, PgStore};

/// One shard: its store and its identity's hash.
#[derive(Debug, Clone)]
struct Shard {
    key: u64,
    store_id: String,
    store: PgStore,
}

/// A [`Store`] and [`ChangeFeed`] over several PostgreSQL databases.
#[derive(Debug, Clone)]
pub struct ShardedStore {
    shards: Arc<[Shard]>,
}

/// FNV-1a: stable across builds and platforms (unlike the standard library's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finalizer: spreads a slot and a shard key into a score.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shard (index into `keys`) that owns `slot`: the highest score wins.
pub fn owner_of(keys: &[u64], slot: ShardSlot) -> usize {
    keys.iter()
        .enumerate()
        .max_by_key(|(_, k)| mix(**k ^ u64::from(slot.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

impl ShardedStore {
    /// Connects to every shard (migrating each, unless behind a transaction pooler) and
    /// learns their identities. The order of `urls` does not matter.
    pub async fn connect(urls: &[String], opts: PgOptions) -> Result<Self, StoreError> {
        let each: Vec<(String, PgOptions)> =
            urls.iter().map(|u| (u.clone(), opts.clone())).collect();
        Self::connect_each(&each).await
    }

    /// Like [`ShardedStore::connect`], with options of each shard's own (its replica, its
    /// listen URL).
    pub async fn connect_each(shards_to: &[(String, PgOptions)]) -> Result<Self, StoreError> {
        let mut shards = Vec::with_capacity(shards_to.len());
        for (url, opts) in shards_to {
            let store = PgStore::connect(url, opts.clone()).await?;
            let store_id = store.store_id().await?;
            if shards.iter().any(|s: &Shard| s.store_id == store_id) {
                return Err(StoreError::Internal(
                    "two database URLs name the same database".into(),
                ));
            }
            shards.push(Shard {
                key: fnv1a(store_id.as_bytes()),
                store_id,
                store,
            });
        }
        if shards.is_empty() {
            return Err(StoreError::Internal("no database URL".into()));
        }
        // A stable order (by identity), so that composite cursors do not depend on the order
        // the URLs were given in.
        shards.sort_by(|a, b| a.store_id.cmp(&b.store_id));
        Ok(Self {
            shards: shards.into(),
        })
    }

    /// The shards' stores, in a stable order.
    pub fn shards(&self) -> impl Iterator<Item = &PgStore> {
        self.shards.iter().map(|s| &s.store)
    }

    fn keys(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.key).collect()
    }

    /// Which shard owns `slot`.
    pub fn owner(&self, slot: ShardSlot) -> usize {
        owner_of(&self.keys(), slot)
    }

    fn at(&self, slot: ShardSlot) -> &PgStore {
        &self.shards[self.owner(slot)].store
    }
}

/// `$call` (an expression using the store `$s`) on the owning shard of `$slot`; on `None`,
/// on the others in turn.
macro_rules! find {
    ($self:ident, $slot:expr, |$s:ident| $call:expr) => {{
        let first = $self.owner($slot);
        let mut found = {
            let $s = &$self.shards[first].store;
            $call.await?
        };
        if found.is_none() {
            for (i, shard) in $self.shards.iter().enumerate() {
                if i == first {
                    continue;
                }
                let $s = &shard.store;
                found = $call.await?;
                if found.is_some() {
                    break;
                }
            }
        }
        Ok(found)
    }};
}

/// `$call` on every shard at once: the results, in shard order.
macro_rules! all {
    ($self:ident, |$s:ident| $call:expr) => {
        try_join_all($self.shards.iter().map(|shard| {
            let $s = &shard.store;
            $call
        }))
        .await
    };
}

#[async_trait]
impl Store for ShardedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        all!(self, |s| s.ping()).map(|_| ())
    }

    async fn create_event(&self, event: &Event) -> Result<(), StoreError> {
        self.at(event.id.slot()).create_event(event).await
    }

    async fn create_events_bulk(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut by_shard = vec![Vec::new(); self.shards.len()];
        for e in events {
            by_shard[self.owner(e.id.slot())].push(e.clone());
        }
        try_join_all(
            self.shards
                .iter()
                .zip(&by_shard)
                .filter(|(_, es)| !es.is_empty())
                .map(|(s, es)| s.store.create_events_bulk(es)),
        )
        .await
        .map(|_| ())
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        find!(self, id.slot(), |s| s.event(id))
    }

    async fn seat_map(&self, event: &Event, now: OffsetDateTime) -> Result<SeatMap, StoreError> {
        self.at(event.id.slot()).seat_map(event, now).await
    }

    async fn hold(&self, req: &HoldRequest) -> Result<Booking, HoldError> {
        self.at(req.event.id.slot()).hold(req).await
    }

    async fn booking(&self, id: BookingId) -> Result<Option<Booking>, StoreError> {
        find!(self, id.slot(), |s| s.booking(id))
    }

    async fn tickets_of(&self, customer: &CustomerId) -> Result<Vec<Ticket>, StoreError> {
        let mut all: Vec<Ticket> = all!(self, |s| s.tickets_of(customer))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by(|a, b| {
            b.issued_at
                .cmp(&a.issued_at)
                .then_with(|| a.seat_id.as_str().cmp(b.seat_id.as_str()))
        });
        Ok(all)
    }

    async fn begin_commit(&self, req: &CommitRequest) -> Result<CommitBegin, CommitError> {
        self.at(req.booking_id.slot()).begin_commit(req).await
    }

    async fn finish_commit(&self, fin: &CommitFinish) -> Result<FinishedCommit, StoreError> {
        self.at(fin.event_id.slot()).finish_commit(fin).await
    }

    async fn set_payments_status(
        &self,
        payments: &[PaymentKey],
        from: &[PaymentStatus],
        to: PaymentStatus,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut by_shard = vec![Vec::new(); self.shards.len()];
        for p in payments {
            by_shard[self.owner(p.event_id.slot())].push(*p);
        }
        let counts = try_join_all(
            self.shards
                .iter()
                .zip(&by_shard)
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(s, ps)| s.store.set_payments_status(ps, from, to, now)),
        )
        .await?;
        Ok(counts.into_iter().sum())
    }

    async fn release(&self, id: BookingId, now: OffsetDateTime) -> Result<Booking, ReleaseError> {
        self.at(id.slot()).release(id, now).await
    }

    async fn cancel_confirmed(
        &self,
        id: BookingId,
        now: OffsetDateTime,
    ) -> Result<(Booking, Option<Payment>), ReleaseError> {
        self.at(id.slot()).cancel_confirmed(id, now).await
    }

    async fn update_details(
        &self,
        id: BookingId,
        contact_email: Option<String>,
        attendees: Vec<(SeatId, Option<String>)>,
        now: OffsetDateTime,
    ) -> Result<Booking, StoreError> {
        self.at(id.slot())
            .update_details(id, contact_email, attendees, now)
            .await
    }

    async fn expire_holds(&self, now: OffsetDateTime, limit: u32) -> Result<u32, StoreError> {
        Ok(all!(self, |s| s.expire_holds(now, limit))?
            .into_iter()
            .sum())
    }

    async fn unsettled_payments(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let mut all: Vec<Payment> = all!(self, |s| s.unsettled_payments(before, now, limit))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|p| p.updated_at);
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn defer_payment(
        &self,
        payment: PaymentKey,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        self.at(payment.event_id.slot())
            .defer_payment(payment, next_attempt_at, error)
            .await
    }

    async fn payment_backlog(&self) -> Result<PaymentBacklog, StoreError> {
        let parts = all!(self, |s| s.payment_backlog())?;
        Ok(PaymentBacklog {
            unsettled: parts.iter().map(|p| p.unsettled).sum(),
            oldest: parts.iter().filter_map(|p| p.oldest).min(),
        })
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        find!(self, id.slot(), |s| s.payment(id))
    }

    async fn payment_by_ref(
        &self,
        provider_ref: &str,
        provider_key: Option<&str>,
    ) -> Result<Option<Payment>, StoreError> {
        let found = all!(self, |s| s.payment_by_ref(provider_ref, provider_key))?;
        // The one the provider's reference names, before one found by key only.
        Ok(found.into_iter().flatten().max_by_key(|p| {
            (
                p.provider_ref.as_deref() == Some(provider_ref),
                p.updated_at,
            )
        }))
    }

    async fn revoke(
        &self,
        payment: PaymentKey,
        why: Revocation,
        now: OffsetDateTime,
    ) -> Result<Option<Booking>, StoreError> {
        self.at(payment.event_id.slot())
            .revoke(payment, why, now)
            .await
    }

    async fn check_in(
        &self,
        id: TicketId,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<CheckIn, StoreError> {
        // The ticket's shard: it can tell a ticket of another event from an unknown one.
        self.at(id.slot()).check_in(id, event, now).await
    }

    async fn verify(&self, now: OffsetDateTime) -> Result<Vec<Finding>, StoreError> {
        let mut findings: Vec<Finding> = all!(self, |s| s.verify(now))?
            .into_iter()
            .flatten()
            .collect();
        // Every event on the shard that owns it (else lookups by id ask around, and a
        // rebalance is due).
        for (i, shard) in self.shards.iter().enumerate() {
            for id in shard.store.event_ids().await? {
                let owner = self.owner(id.slot());
                if owner != i {
                    findings.push(Finding {
                        rule: "event-on-wrong-shard".into(),
                        detail: format!(
                            "event {id} is on shard {} but shard {} owns its slot: run \
                             `boxoffice shard rebalance`",
                            shard.store_id, self.shards[owner].store_id
                        ),
                    });
                }
            }
        }
        Ok(findings)
    }

    async fn list_ticket(
        &self,
        req: &ListRequest,
    ) -> Result<Result<Listing, ListError>, StoreError> {
        self.at(req.ticket_id.slot()).list_ticket(req).await
    }

    async fn listing(&self, id: ListingId) -> Result<Option<Listing>, StoreError> {
        find!(self, id.slot(), |s| s.listing(id))
    }

    async fn event_listings(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Listing>, StoreError> {
        self.at(event.slot()).event_listings(event, now).await
    }

    async fn seller_listings(&self, seller: &CustomerId) -> Result<Vec<Listing>, StoreError> {
        let mut all: Vec<Listing> = all!(self, |s| s.seller_listings(seller))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(all)
    }

    async fn withdraw_listing(
        &self,
        id: ListingId,
        seller: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<Result<Listing, WithdrawError>, StoreError> {
        self.at(id.slot()).withdraw_listing(id, seller, now).await
    }

    async fn payouts_of(&self, seller: &CustomerId) -> Result<Vec<Payout>, StoreError> {
        let mut all: Vec<Payout> = all!(self, |s| s.payouts_of(seller))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(all)
    }

    async fn due_payouts(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Payout>, StoreError> {
        let mut all: Vec<Payout> = all!(self, |s| s.due_payouts(now, limit))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|p| p.available_at);
        all.truncate(limit as usize);
        Ok(all)
    }

    async fn mark_payout_paid(
        &self,
        id: PayoutId,
        provider_ref: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.at(id.slot())
            .mark_payout_paid(id, provider_ref, now)
            .await
    }

    async fn cancelled_events(&self, since: OffsetDateTime) -> Result<Vec<EventId>, StoreError> {
        Ok(all!(self, |s| s.cancelled_events(since))?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn cancel_event(
        &self,
        event: EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<Payment>, StoreError> {
        self.at(event.slot()).cancel_event(event, now).await
    }

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        find!(self, id.slot(), |s| s.ticket(id))
    }

    async fn offer_transfer(
        &self,
        req: &OfferRequest,
    ) -> Result<Result<Transfer, TransferError>, StoreError> {
        self.at(req.ticket_id.slot()).offer_transfer(req).await
    }

    async fn accept_transfer(
        &self,
        req: &AcceptRequest,
    ) -> Result<Result<(Transfer, Ticket), TransferError>, StoreError> {
        self.at(req.transfer_id.slot()).accept_transfer(req).await
    }

    async fn cancel_transfer(
        &self,
        id: TransferId,
        sender: &CustomerId,
        now: OffsetDateTime,
    ) -> Result<Result<Transfer, TransferError>, StoreError> {
        self.at(id.slot()).cancel_transfer(id, sender, now).await
    }

    async fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        find!(self, id.slot(), |s| s.transfer(id))
    }

    async fn transfers_of(&self, customer: &CustomerId) -> Result<Vec<Transfer>, StoreError> {
        let mut all: Vec<Transfer> = all!(self, |s| s.transfers_of(customer))?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    async fn revocations(
        &self,
        event: EventId,
        after: Option<RevocationCursor>,
        limit: u32,
    ) -> Result<Vec<RevokedTicket>, StoreError> {
        self.at(event.slot()).revocations(event, after, limit).await
    }

    async fn join_queue(&self, join: &QueueJoin) -> Result<QueueEntry, StoreError> {
        self.at(join.event_id.slot()).join_queue(join).await
    }

    async fn queue_entry(&self, id: QueueId) -> Result<Option<QueueEntry>, StoreError> {
        find!(self, id.slot(), |s| s.queue_entry(id))
    }

    async fn queue_position(&self, entry: &QueueEntry) -> Result<u64, StoreError> {
        self.at(entry.event_id.slot()).queue_position(entry).await
    }

    async fn admit_from_queue(&self, round: &AdmitRound) -> Result<RoomCounts, StoreError> {
        self.at(round.event_id.slot()).admit_from_queue(round).await
    }

    async fn queue_waiting_keys(&self, event: EventId) -> Result<Vec<i64>, StoreError> {
        self.at(event.slot()).queue_waiting_keys(event).await
    }

    async fn organizer_events(
        &self,
        organizer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<EventId>, StoreError> {
        let ids: Vec<EventId> = all!(self, |s| s.organizer_events(organizer, limit))?
            .into_iter()
            .flatten()
            .collect();
        if self.shards.len() == 1 {
            return Ok(ids);
        }
        // Each shard's list is in order (latest start first); merging needs the start times.
        let mut dated = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.event(id).await? {
                dated.push((e.spec.starts_at, id));
            }
        }
        dated.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(dated
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect())
    }

    async fn event_sales(&self, event: EventId) -> Result<EventSales, StoreError> {
        self.at(event.slot()).event_sales(event).await
    }
}

// ---- moving events to the shard that owns them ----------------------------------------------

/// The tables of an event's sales, all keyed by `event_id`, in an order their foreign keys
/// accept (the event first). `tests/sharding.rs` checks that no other table has an
/// `event_id`.
pub const EVENT_TABLES: &[&str] = &[
    "events",
    "sections",
    "seats",
    "bookings",
    "booking_seats",
    "payments",
    "tickets",
    "idempotency_keys",
    "customer_event_tickets",
    "listings",
    "payouts",
    "transfers",
    "waiting_rooms",
    "queue_entries",
];

/// What [`ShardedStore::rebalance`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebalanced {
    /// Events moved, with the index of the shard each left and the one it went to.
    pub moved: Vec<(EventId, usize, usize)>,
    /// Rows copied over all tables.
    pub rows: u64,
}

impl ShardedStore {
    /// Events on a shard that does not own their slot (after a shard was added): `(event,
    /// where it is, where it belongs)`.
    pub async fn misplaced(&self) -> Result<Vec<(EventId, usize, usize)>, StoreError> {
        let mut out = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            for id in shard.store.event_ids().await? {
                let owner = self.owner(id.slot());
                if owner != i {
                    out.push((id, i, owner));
                }
            }
        }
        Ok(out)
    }

    /// Moves every misplaced event, with everything that belongs to it, to the shard that
    /// owns it: copied in one transaction on the owner (replacing any copy a crashed earlier
    /// run left there), then deleted in one transaction on the shard it left. Run it while
    /// the moving events are not being sold (stop the nodes, or move before sales open):
    /// their rows are locked while they move, but a commit that reaches the old shard after
    /// the move finds no booking. Safe to run again after a failure.
    pub async fn rebalance(&self) -> Result<Rebalanced, StoreError> {
        let mut done = Rebalanced::default();
        for (id, from, to) in self.misplaced().await? {
            done.rows += move_event(&self.shards[from].store, &self.shards[to].store, id).await?;
            tracing::info!(event = %id, from = %self.shards[from].store_id,
                to = %self.shards[to].store_id, "moved an event to the shard that owns it");
            done.moved.push((id, from, to));
        }
        Ok(done)
    }
}

/// Copies event `id`'s rows from `from` to `to`, then deletes them from `from`. Returns the
/// rows copied.
async fn move_event(from: &PgStore, to: &PgStore, id: EventId) -> Result<u64, StoreError> {
    use futures_util::{SinkExt, StreamExt};

    use crate::exec::Exec;
    use crate::pg_error;

    let mut src = from.client().await?;
    let src_tx = src.transaction().await.map_err(pg_error)?;
    // Nothing of the event changes while it moves.
    src_tx
        .query(
            "SELECT 1 FROM events WHERE event_id = $1 FOR UPDATE",
            &[&id.0],
        )
        .await
        .map_err(pg_error)?;
    src_tx
        .query(
            "SELECT 1 FROM seats WHERE event_id = $1 FOR UPDATE",
            &[&id.0],
        )
        .await
        .map_err(pg_error)?;
    let venue = src_tx
        .query_one(
            "SELECT v.venue_id, v.name, v.address, v.city, v.zip_code, v.country, v.lat, v.lon
             FROM venues v JOIN events e ON e.venue_id = v.venue_id WHERE e.event_id = $1",
            &[&id.0],
        )
        .await
        .map_err(pg_error)?;

    let mut dst = to.client().await?;
    let dst_tx = dst.transaction().await.map_err(pg_error)?;
    // A copy left by an earlier run that failed before deleting the original goes first.
    for table in EVENT_TABLES.iter().rev() {
        dst_tx
            .execute(
                &format!("DELETE FROM {table} WHERE event_id = $1"),
                &[&id.0],
            )
            .await
            .map_err(pg_error)?;
    }
    let venue_cols: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &venue.get::<_, uuid::Uuid>(0),
        &venue.get::<_, String>(1),
        &venue.get::<_, String>(2),
        &venue.get::<_, String>(3),
        &venue.get::<_, String>(4),
        &venue.get::<_, String>(5),
        &venue.get::<_, f64>(6),
        &venue.get::<_, f64>(7),
    ];
    dst_tx
        .execute(
            "INSERT INTO venues (venue_id, name, address, city, zip_code, country, lat, lon)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (venue_id) DO NOTHING",
            &venue_cols,
        )
        .await
        .map_err(pg_error)?;
    let mut rows = 0;
    for table in EVENT_TABLES {
        // A UUID prints as hex and hyphens only: safe inside the statement (COPY takes no
        // parameters).
        let out = src_tx
            .raw()
            .copy_out(&format!(
                "COPY (SELECT * FROM {table} WHERE event_id = '{id}') TO STDOUT (FORMAT binary)"
            ))
            .await
            .map_err(pg_error)?;
        let sink = dst_tx
            .raw()
            .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .await
            .map_err(pg_error)?;
        futures_util::pin_mut!(out);
        futures_util::pin_mut!(sink);
        while let Some(chunk) = out.next().await {
            sink.send(chunk.map_err(pg_error)?)
                .await
                .map_err(pg_error)?;
        }
        rows += sink.finish().await.map_err(pg_error)?;
    }
    // Readers of the owner's change feed (every node's search index) read the event again.
    dst_tx
        .execute(
            "INSERT INTO outbox (event_id, kind, payload) VALUES ($1, $2, '{}'::jsonb)",
            &[&id.0, &boxoffice_domain::ports::change::EVENT_CHANGED],
        )
        .await
        .map_err(pg_error)?;
    dst_tx.commit().await.map_err(pg_error)?;
    for table in EVENT_TABLES.iter().rev() {
        src_tx
            .execute(
                &format!("DELETE FROM {table} WHERE event_id = $1"),
                &[&id.0],
            )
            .await
            .map_err(pg_error)?;
    }
    src_tx.commit().await.map_err(pg_error)?;
    Ok(rows)
}

// ---- the change feed of every shard -------------------------------------------------------

/// The composite cursor: every shard's identity and position, in shard order.
const CURSOR_PREFIX: &str = "shards:";

impl ShardedStore {
    fn composite_id(&self) -> String {
        let ids: Vec<&str> = self.shards.iter().map(|s| s.store_id.as_str()).collect();
        format!("{CURSOR_PREFIX}{}", ids.join("+"))
    }

    /// Each shard's own cursor within a composite one (`None` where it does not apply).
    fn split(&self, cursor: Option<&FeedCursor>) -> Vec<Option<FeedCursor>> {
        let parts: Option<Vec<&str>> = cursor
            .filter(|c| c.store_id == self.composite_id())
            .map(|c| c.position.split('|').collect());
        self.shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let position = parts.as_ref()?.get(i)?;
                Some(FeedCursor {
                    store_id: s.store_id.clone(),
                    position: (*position).to_owned(),
                })
            })
            .collect()
    }
}

#[async_trait]
impl ChangeFeed for ShardedStore {
    async fn read(&self, since: Option<&FeedCursor>) -> Result<Box<dyn FeedRead>, StoreError> {
        let since = self.split(since);
        let reads = try_join_all(
            self.shards
                .iter()
                .zip(&since)
                .map(|(s, c)| s.store.read(c.as_ref())),
        )
        .await?;
        let cursor = FeedCursor {
            store_id: self.composite_id(),
            position: reads
                .iter()
                .map(|r| r.cursor().position.as_str())
                .collect::<Vec<_>>()
                .join("|"),
        };
        let owners = self.keys();
        Ok(Box::new(CompositeRead {
            reads,
            cursor,
            current: 0,
            owners,
        }))
    }

    async fn wait(&self, cursor: &FeedCursor, timeout: Duration) -> Result<(), StoreError> {
        let parts = self.split(Some(cursor));
        let waits: Vec<_> = self
            .shards
            .iter()
            .zip(parts)
            .filter_map(|(s, c)| {
                let c = c?;
                Some(Box::pin(async move { s.store.wait(&c, timeout).await }))
            })
            .collect();
        if waits.is_empty() {
            return Ok(());
        }
        // Whichever shard has something first.
        select_all(waits).await.0
    }

    async fn record_reader(
        &self,
        reader: &str,
        cursor: &FeedCursor,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let parts = self.split(Some(cursor));
        try_join_all(self.shards.iter().zip(parts).filter_map(|(s, c)| {
            let c = c?;
            Some(async move { s.store.record_reader(reader, &c, now).await })
        }))
        .await
        .map(|_| ())
    }

    async fn prune(&self, retention: Retention, now: OffsetDateTime) -> Result<Pruned, StoreError> {
        let parts = all!(self, |s| s.prune(retention, now))?;
        Ok(Pruned {
            rows: parts.iter().map(|p| p.rows).sum(),
            remaining: parts.iter().map(|p| p.remaining).sum(),
        })
    }
}

/// One read per shard, taken at once; changes are returned shard after shard.
struct CompositeRead {
    reads: Vec<Box<dyn FeedRead>>,
    cursor: FeedCursor,
    /// The shard whose changes are being returned.
    current: usize,
    owners: Vec<u64>,
}

impl std::fmt::Debug for CompositeRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompositeRead")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl FeedRead for CompositeRead {
    fn cursor(&self) -> &FeedCursor {
        &self.cursor
    }

    fn fell_behind(&self) -> bool {
        self.reads.iter().any(|r| r.fell_behind())
    }

    async fn changes(&mut self, limit: usize) -> Result<Vec<Change>, StoreError> {
        // Behind on any shard: the reader rebuilds, so changes after the cursor mean nothing
        // (as on one database, a read that fell behind gives none).
        if self.fell_behind() {
            return Ok(Vec::new());
        }
        while self.current < self.reads.len() {
            let got = self.reads[self.current].changes(limit).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            self.current += 1;
        }
        Ok(Vec::new())
    }

    async fn events(&mut self, ids: &[EventId]) -> Result<Vec<CatalogEntry>, StoreError> {
        let mut by_shard = vec![Vec::new(); self.reads.len()];
        for id in ids {
            by_shard[owner_of(&self.owners, id.slot())].push(*id);
        }
        let mut out = Vec::with_capacity(ids.len());
        for (i, wanted) in by_shard.iter().enumerate() {
            if wanted.is_empty() {
                continue;
            }
            let found = self.reads[i].events(wanted).await?;
            // Not moved to its owner yet: ask the others.
            let missing: Vec<EventId> = wanted
                .iter()
                .filter(|id| !found.iter().any(|e| e.event.id == **id))
                .copied()
                .collect();
            out.extend(found);
            if !missing.is_empty() {
                for (j, r) in self.reads.iter_mut().enumerate() {
                    if j != i {
                        out.extend(r.events(&missing).await?);
                    }
                }
            }
        }
        out.sort_by_key(|e| e.event.id);
        Ok(out)
    }

    async fn all_events(
        &mut self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        // Each shard's page is in id order; the first `limit` of their union is the page.
        let mut all = Vec::new();
        for r in &mut self.reads {
            all.extend(r.all_events(after, limit).await?);
        }
        all.sort_by_key(|e| e.event.id);
        all.truncate(limit);
        Ok(all)
    }
}
