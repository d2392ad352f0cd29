//! Group commit for the two steps of a purchase that write to the database: starting a
//! commit (the key claimed, the booking and its seats PENDING, the payment STARTED) and
//! confirming it once the provider approved (the seats SOLD, the tickets issued, the response
//! stored). Concurrent requests of one step wait together and are written by one transaction
//! of a few set-based statements, so a burst of buyers shares the statements, the transaction
//! and its flush; while one group is being written the next one gathers, so a group grows with
//! the load, and a request on a quiet node is written at once, as a group of one.
//!
//! Only the common case is written in a group (see [`booking::begin_commits`] and
//! [`booking::finish_commits`]); every other request, and every request of a group that could
//! not be written, goes through the step on its own in its own transaction, exactly as
//! without grouping. The database stays the judge: the group reads and locks its rows and
//! applies the same rulebook as the single path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::booking::{Booking, HoldRequest};
use boxoffice_domain::ports::{
    CommitBegin, CommitFinish, CommitRequest, FinishedCommit, StoreError,
};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use crate::exec::{Conn, Statements, Tx};
use crate::{booking, holds, pg_error};

/// The most requests one group writes.
const MAX_GROUP: usize = 256;
/// A group this large is written at once, whatever the window: its statements are already
/// shared widely, and waiting would only add latency.
const LARGE_GROUP: usize = 16;

/// A step written a group at a time.
#[async_trait]
pub(crate) trait Step: Send + Sync + 'static {
    type Req: Send + Sync + 'static;
    type Resp: Send + 'static;
    /// The step's name in the `store_group_size` histogram.
    const NAME: &'static str;
    /// Writes `reqs` in `tx`: per request, its answer, or `None` to run it alone.
    async fn write(tx: &Tx<'_>, reqs: &[Self::Req]) -> Result<Vec<Option<Self::Resp>>, StoreError>;
}

pub(crate) struct Begin;

#[async_trait]
impl Step for Begin {
    type Req = CommitRequest;
    type Resp = CommitBegin;
    const NAME: &'static str = "begin_commit";
    async fn write(
        tx: &Tx<'_>,
        reqs: &[CommitRequest],
    ) -> Result<Vec<Option<CommitBegin>>, StoreError> {
        booking::begin_commits(tx, reqs).await
    }
}

pub(crate) struct Hold;

#[async_trait]
impl Step for Hold {
    type Req = HoldRequest;
    type Resp = Booking;
    const NAME: &'static str = "hold";
    async fn write(tx: &Tx<'_>, reqs: &[HoldRequest]) -> Result<Vec<Option<Booking>>, StoreError> {
        holds::holds(tx, reqs).await
    }
}

pub(crate) struct Finish;

#[async_trait]
impl Step for Finish {
    type Req = CommitFinish;
    type Resp = FinishedCommit;
    const NAME: &'static str = "finish_commit";
    async fn write(
        tx: &Tx<'_>,
        reqs: &[CommitFinish],
    ) -> Result<Vec<Option<FinishedCommit>>, StoreError> {
        booking::finish_commits(tx, reqs).await
    }
}

type Waiter<S> = (<S as Step>::Req, oneshot::Sender<Option<<S as Step>::Resp>>);

/// Gathers the requests of one step; cheap to share (one writer task per store and step,
/// started on first use, ending when the store is dropped).
pub(crate) struct Group<S: Step> {
    writer: OnceLock<mpsc::UnboundedSender<Waiter<S>>>,
    /// How long a group smaller than [`LARGE_GROUP`] waits for more requests.
    window: Duration,
    /// Requests submitted to any step of the store and not answered yet, shared by the steps.
    pending: Arc<AtomicUsize>,
}

impl<S: Step> Group<S> {
    /// A step's group; `pending` is shared with the store's other steps.
    pub(crate) fn new(window: Duration, pending: Arc<AtomicUsize>) -> Self {
        Self {
            writer: OnceLock::new(),
            window,
            pending,
        }
    }

    /// Writes `req` with whichever requests of the step are waiting. `None`: it was not
    /// written (it is outside the common case, or its group failed) and the caller runs the
    /// step on its own.
    pub(crate) async fn submit(
        &self,
        pool: &Pool,
        statements: &Statements,
        req: S::Req,
    ) -> Option<S::Resp> {
        let writer = self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write_groups::<S>(
                pool.clone(),
                statements.clone(),
                (self.window, self.pending.clone()),
                rx,
            ));
            tx
        });
        let (tx, rx) = oneshot::channel();
        let _pending = Pending::new(&self.pending);
        writer.send((req, tx)).ok()?;
        rx.await.ok().flatten()
    }
}

/// Counts a submitted request until it is answered (or its caller gives up).
struct Pending<'a>(&'a AtomicUsize);

impl<'a> Pending<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn write_groups<S: Step>(
    pool: Pool,
    statements: Statements,
    (window, pending): (Duration, Arc<AtomicUsize>),
    mut rx: mpsc::UnboundedReceiver<Waiter<S>>,
) {
    let mut waiting: Vec<Waiter<S>> = Vec::with_capacity(MAX_GROUP);
    // A lone request is written as a group of one (the group's statements are no more than
    // the single path's): while it is being written the next group gathers. A small group
    // waits up to the window for more, but only while other purchases are under way (as
    // PostgreSQL's `commit_delay` waits only with `commit_siblings`): a buyer alone on a quiet
    // node is written at once.
    while rx.recv_many(&mut waiting, MAX_GROUP).await > 0 {
        if !window.is_zero()
            && waiting.len() < LARGE_GROUP
            && pending.load(Ordering::Relaxed) > waiting.len()
        {
            gather(&mut rx, &mut waiting, window).await;
        }
        let (reqs, answers): (Vec<S::Req>, Vec<_>) = waiting.drain(..).unzip();
        metrics::histogram!("store_group_size", "step" => S::NAME).record(reqs.len() as f64);
        let written = match write_group::<S>(&pool, &statements, &reqs).await {
            Ok(written) if written.len() == reqs.len() => written,
            Ok(_) => Vec::new(),
            Err(e) => {
                // Nothing was kept: each request runs on its own and meets the cause itself.
                tracing::debug!(step = S::NAME, error = %e, "group not written; its requests go alone");
                metrics::counter!("store_groups_failed_total", "step" => S::NAME).increment(1);
                Vec::new()
            }
        };
        let mut written = written.into_iter();
        for answer in answers {
            let _ = answer.send(written.next().flatten());
        }
    }
}

/// Adds to a small group whatever arrives within `window`, until it is large. A closed
/// channel ends the wait: what was gathered is still written.
async fn gather<T>(rx: &mut mpsc::UnboundedReceiver<T>, waiting: &mut Vec<T>, window: Duration) {
    let deadline = tokio::time::Instant::now() + window;
    while waiting.len() < LARGE_GROUP {
        match tokio::time::timeout_at(deadline, rx.recv_many(waiting, MAX_GROUP - waiting.len()))
            .await
        {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

async fn write_group<S: Step>(
    pool: &Pool,
    statements: &Statements,
    reqs: &[S::Req],
) -> Result<Vec<Option<S::Resp>>, StoreError> {
    let obj = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;
    let mut conn = Conn::new(obj, statements.clone());
    let tx = conn.transaction().await.map_err(pg_error)?;
    let written = S::write(&tx, reqs).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    //! The group writers against a real database, called directly so that every group here is
    //! a group (the store's own grouping depends on timing): what a group writes, and what it
    //! leaves for the single path, must add up to what the single path alone would answer.

    use boxoffice_conformance::booking_suite::{
        approved, captured, commit_req, finish, hold_req, seats,
    };
    use boxoffice_conformance::fixtures::{concert, now};
    use boxoffice_domain::booking::{Booking, BookingStatus, PaymentStatus};
    use boxoffice_domain::event::Event;
    use boxoffice_domain::ports::{
        CommitBegin, CommitError, CommitOutcome, CommitRequest, Settlement, Store,
    };
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::testing::TestDatabase;
    use crate::{PgOptions, PgStore};

    async fn store() -> (PgStore, TestDatabase) {
        let db = TestDatabase::create().await;
        let store = PgStore::connect(
            &db.url,
            PgOptions {
                pool_size: 4,
                // The single path, for everything these tests do not write as a group.
                group_commit: false,
                ..PgOptions::default()
            },
        )
        .await
        .expect("connect");
        (store, db)
    }

    /// `n` buyers (`buyer0`…) holding two seats each.
    async fn held(store: &PgStore, e: &Event, n: u32, t: OffsetDateTime) -> Vec<Booking> {
        let mut out = Vec::new();
        for i in 0..n {
            let (a, b) = (format!("1-A-{}", i * 2 + 1), format!("1-A-{}", i * 2 + 2));
            let req = hold_req(e, &format!("buyer{i}"), seats(&[&a, &b]), t);
            out.push(store.hold(&req).await.expect("hold"));
        }
        out
    }

    fn started(b: &Option<CommitBegin>) -> (Booking, boxoffice_domain::booking::Payment) {
        match b {
            Some(CommitBegin::Started { booking, payment }) => {
                ((**booking).clone(), (**payment).clone())
            }
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_writes_the_common_case_and_leaves_the_rest_as_it_found_it() {
        let (store, _db) = store().await;
        let t = now();
        let e = concert(t);
        store.create_event(&e).await.expect("create");
        let b = held(&store, &e, 7, t).await;
        let req = |i: usize, key: &str| commit_req(b[i].id, &format!("buyer{i}"), key, t);
        let mut same_body = req(3, "k-3");
        same_body.fingerprint = "same body".into();
        let reqs: Vec<CommitRequest> = vec![
            req(0, "k-0"),
            req(1, "k-1"),
            req(2, "k-2a"),
            req(2, "k-2b"),                            // the booking twice
            same_body.clone(),                         // the key twice
            same_body,                                 //
            commit_req(b[4].id, "intruder", "k-4", t), // not theirs
            commit_req(b[5].id, "buyer5", "k-5", t + Duration::minutes(6)), // lapsed
            req(6, "k-6"),
        ];
        let out = write_group::<Begin>(&store.pool, &store.statements, &reqs)
            .await
            .expect("group written");
        let written: Vec<usize> = (0..reqs.len()).filter(|&i| out[i].is_some()).collect();
        assert_eq!(written, vec![0, 1, 2, 4, 8]);
        for i in written {
            let (booking, payment) = started(&out[i]);
            assert_eq!(booking.id, reqs[i].booking_id);
            assert_eq!(booking.status, BookingStatus::Pending);
            assert_eq!(payment.id, reqs[i].payment_id);
            assert_eq!(payment.status, PaymentStatus::Started);
        }
        // What the group left alone gets, on its own, what it would have got anyway.
        let alone = |i: usize| store.begin_commit(&reqs[i]);
        assert!(matches!(
            alone(3).await,
            Err(CommitError::PaymentInProgress)
        ));
        assert!(matches!(alone(5).await, Err(CommitError::InFlight)));
        assert!(matches!(alone(6).await, Err(CommitError::NotFound)));
        assert!(matches!(alone(7).await, Err(CommitError::Gone)));
        // The intruder's claim was withdrawn: the owner's own key is free.
        let owner = store.begin_commit(&req(4, "k-4")).await.expect("owner");
        let owner = Some(owner);

        // Settling: approvals in a group; a decline, and tickets that do not fit, left alone.
        let mut pending = [
            started(&out[0]),
            started(&out[1]),
            started(&out[2]),
            started(&out[4]),
            started(&owner),
            started(&out[8]),
        ];
        pending.sort_by_key(|(b, _)| b.id);
        let wrong_tickets = |b: &Booking| {
            let Settlement::Approved {
                provider_ref,
                mut tickets,
            } = approved(b)
            else {
                unreachable!()
            };
            tickets.pop();
            Settlement::Approved {
                provider_ref,
                tickets,
            }
        };
        let fins: Vec<CommitFinish> = pending
            .iter()
            .map(|(bk, p)| {
                let settlement = if bk.id == b[1].id {
                    Settlement::Declined {
                        reason: "card declined".into(),
                    }
                } else if bk.id == b[6].id {
                    wrong_tickets(bk)
                } else {
                    approved(bk)
                };
                finish(bk, p.id, settlement, t)
            })
            .collect();
        let shared: std::sync::Arc<dyn Store> = std::sync::Arc::new(store.clone());
        let done = write_group::<Finish>(&store.pool, &store.statements, &fins)
            .await
            .expect("group written");
        for (fin, d) in fins.iter().zip(&done) {
            if fin.booking_id == b[1].id || fin.booking_id == b[6].id {
                assert!(d.is_none(), "left alone");
                continue;
            }
            let d = d.as_ref().expect("settled in the group");
            let CommitOutcome::Confirmed(c) = &d.outcome else {
                panic!("expected a confirmation, got {:?}", d.outcome);
            };
            assert_eq!(c.tickets.len(), 2);
            assert_eq!(d.payment.status, PaymentStatus::Authorized);
            assert_eq!(d.response.status, 200);
            captured(&shared, d.payment.key(), t).await;
            // Written as answered: a replay of the key gets these very bytes.
            let key = reqs
                .iter()
                .find(|r| r.payment_id == d.payment.id)
                .cloned()
                .unwrap_or_else(|| req(4, "k-4"));
            match store.begin_commit(&key).await.expect("replay") {
                CommitBegin::Replay(r) => assert_eq!(r, d.response),
                other => panic!("expected a replay, got {other:?}"),
            }
            let read = store.booking(c.id).await.expect("read").expect("booking");
            assert_eq!(read.status, BookingStatus::Confirmed);
            assert_eq!(read.tickets.len(), 2);
        }
        // Alone, the decline returns the hold and the bad tickets are refused.
        let declined = fins.iter().find(|f| f.booking_id == b[1].id).expect("fin");
        let d = store.finish_commit(declined).await.expect("decline");
        assert!(matches!(&d.outcome, CommitOutcome::NotPaid { booking, .. }
            if booking.status == BookingStatus::Hold));
        let bad = fins.iter().find(|f| f.booking_id == b[6].id).expect("fin");
        assert!(store.finish_commit(bad).await.is_err());
        let findings = store.verify(t).await.expect("verify");
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_that_cannot_be_written_keeps_nothing() {
        let (store, _db) = store().await;
        let t = now();
        let e = concert(t);
        store.create_event(&e).await.expect("create");
        let b = held(&store, &e, 3, t).await;
        let first = commit_req(b[0].id, "buyer0", "k-0", t);
        store.begin_commit(&first).await.expect("start");
        // The provider key of another payment: this request cannot start, and the group fails.
        let mut reused = commit_req(b[1].id, "buyer1", "k-1", t);
        reused.provider_key = first.provider_key.clone();
        let plain = commit_req(b[2].id, "buyer2", "k-2", t);
        let group = [reused.clone(), plain.clone()];
        assert!(
            write_group::<Begin>(&store.pool, &store.statements, &group)
                .await
                .is_err()
        );
        // Nothing of it was kept: alone, each gets its own answer.
        assert!(matches!(
            store.begin_commit(&reused).await,
            Err(CommitError::KeyReused)
        ));
        assert!(matches!(
            store.begin_commit(&plain).await,
            Ok(CommitBegin::Started { .. })
        ));
        let b1 = store
            .booking(b[1].id)
            .await
            .expect("read")
            .expect("booking");
        assert_eq!(b1.status, BookingStatus::Hold);
        let findings = store.verify(t).await.expect("verify");
        assert!(findings.is_empty(), "{findings:#?}");
    }

    /// The places each customer has counted against the event's limit.
    async fn counted(store: &PgStore, e: &Event) -> Vec<(String, i32)> {
        use crate::exec::Exec;
        let c = store.client().await.expect("client");
        c.query(
            "SELECT customer_id, tickets FROM customer_event_tickets
             WHERE event_id = $1 AND tickets > 0 ORDER BY customer_id",
            &[&e.id.0],
        )
        .await
        .expect("counters")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_of_holds_writes_the_plain_ones_and_leaves_the_rest_as_it_found_it() {
        use boxoffice_domain::booking::{HoldError, Selection};
        let (store, _db) = store().await;
        let t = now();
        let e = concert(t);
        store.create_event(&e).await.expect("create");
        // Before the group: a seat held by someone, a customer at the limit, a lapsed hold.
        let hold = |who: &str, sel: Selection, at: OffsetDateTime| hold_req(&e, who, sel, at);
        store
            .hold(&hold("holder", seats(&["1-J-20"]), t))
            .await
            .expect("hold");
        let best = |section: u16, quantity: u32| Selection::BestAvailable { section, quantity };
        store
            .hold(&hold("full", best(2, 8), t))
            .await
            .expect("hold");
        let lapsed = store
            .hold(&hold("late", seats(&["1-J-1"]), t - Duration::minutes(10)))
            .await
            .expect("hold");
        let before = counted(&store, &e).await;

        let reqs: Vec<HoldRequest> = vec![
            hold("a", seats(&["1-C-1", "1-C-2"]), t), //   named seats
            hold("b", best(1, 2), t),                 //   seated best-available
            hold("c", best(2, 3), t),                 //   general admission
            hold("d", best(2, 2), t),                 //   general admission again
            hold("b", best(1, 1), t),                 // the same customer again
            hold("e", seats(&["1-C-2"]), t),          // a seat of an earlier request
            hold("f", seats(&["1-Z-99"]), t),         // no such seat
            hold("late", best(1, 2), t),              //   a lapsed hold not yet swept
            hold("full", best(2, 1), t),              // at the limit
            hold("g", seats(&["1-J-20"]), t),         // held by someone else
            hold("h", best(2, 9), t),                 // more than the limit
            hold("i", seats(&["1-C-3"]), t),          //   named seats
        ];
        let out = write_group::<Hold>(&store.pool, &store.statements, &reqs)
            .await
            .expect("group written");
        let written: Vec<usize> = (0..reqs.len()).filter(|&i| out[i].is_some()).collect();
        assert_eq!(written, vec![0, 1, 2, 3, 7, 11]);
        for &i in &written {
            let held = out[i].as_ref().expect("held");
            let read = store
                .booking(held.id)
                .await
                .expect("read")
                .expect("booking");
            assert_eq!(&read, held, "answered as written");
            assert_eq!(read.status, BookingStatus::Hold);
            assert_eq!(read.seats.len() as u32, reqs[i].selection.quantity());
        }
        let seat_ids = |b: &Option<Booking>| -> Vec<String> {
            let b = b.as_ref().expect("held");
            b.seats
                .iter()
                .map(|s| s.seat_id.as_str().to_owned())
                .collect()
        };
        assert_eq!(seat_ids(&out[0]), ["1-C-1", "1-C-2"]);
        // The front row's centre pair, as the single path would pick it.
        assert_eq!(seat_ids(&out[1]), ["1-A-10", "1-A-11"]);
        // General admission: front first, the second request after the first.
        let (c, d) = (seat_ids(&out[2]), seat_ids(&out[3]));
        assert!(c.iter().all(|s| !d.contains(s)));
        // Only the written holds were counted: what the group left is as it found it.
        let mut expect = before.clone();
        for (who, n) in [("a", 2), ("b", 2), ("c", 3), ("d", 2), ("i", 1)] {
            expect.push((who.to_owned(), n));
        }
        // The lapsed hold still counts until it is swept.
        for (who, n) in &mut expect {
            if who == "late" {
                *n += 2;
            }
        }
        expect.sort();
        assert_eq!(counted(&store, &e).await, expect);

        // Alone, each left request gets what it would have got anyway.
        let alone = |i: usize| store.hold(&reqs[i]);
        assert!(alone(4).await.is_ok(), "the same customer's second hold");
        assert!(matches!(alone(5).await, Err(HoldError::Unavailable(_))));
        assert!(matches!(alone(6).await, Err(HoldError::NoSuchSeats(_))));
        assert!(matches!(
            alone(8).await,
            Err(HoldError::LimitExceeded { already: 8, .. })
        ));
        assert!(matches!(alone(9).await, Err(HoldError::Unavailable(_))));
        assert!(matches!(
            alone(10).await,
            Err(HoldError::LimitExceeded { .. })
        ));
        // The sweeper ends the lapsed hold and gives its place back.
        store.expire_holds(t, 100).await.expect("sweep");
        let expired = store
            .booking(lapsed.id)
            .await
            .expect("read")
            .expect("booking");
        assert_eq!(expired.status, BookingStatus::Expired);
        let late = counted(&store, &e).await;
        assert!(late.contains(&("late".to_owned(), 2)), "{late:?}");
        let findings = store.verify(t).await.expect("verify");
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_of_holds_stops_where_the_section_runs_out() {
        use boxoffice_domain::booking::{HoldError, Selection};
        use boxoffice_domain::event::SectionSpec;
        let (store, _db) = store().await;
        let t = now();
        let e = boxoffice_conformance::fixtures::event_with(
            t,
            vec![SectionSpec::general_admission("Pit", 5, 9_000).expect("section")],
        );
        store.create_event(&e).await.expect("create");
        let best = |quantity: u32| Selection::BestAvailable {
            section: 1,
            quantity,
        };
        // Lay the seats out through the single path.
        let first = store
            .hold(&hold_req(&e, "first", best(1), t))
            .await
            .expect("hold");
        let reqs: Vec<HoldRequest> = ["a", "b", "c"]
            .iter()
            .map(|who| hold_req(&e, who, best(2), t))
            .collect();
        let out = write_group::<Hold>(&store.pool, &store.statements, &reqs)
            .await
            .expect("group written");
        // Four places were left: two buyers get two each, the third goes alone and is told.
        assert!(out[0].is_some() && out[1].is_some() && out[2].is_none());
        assert!(matches!(
            store.hold(&reqs[2]).await,
            Err(HoldError::NotEnough {
                requested: 2,
                available: 0
            })
        ));
        let map = store.seat_map(&e, t).await.expect("map");
        assert_eq!(map.sections[0].available, 0, "{map:?}");
        assert!(first.seats.len() == 1);
        let findings = store.verify(t).await.expect("verify");
        assert!(findings.is_empty(), "{findings:#?}");
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_of_holds_looks_further_back_for_adjacent_seats() {
        use boxoffice_domain::booking::Selection;
        use boxoffice_domain::event::SectionSpec;
        let (store, _db) = store().await;
        let t = now();
        let e = boxoffice_conformance::fixtures::event_with(
            t,
            vec![SectionSpec::seated("Balcony", 4, 20, 9_000).expect("section")],
        );
        store.create_event(&e).await.expect("create");
        // Every other seat of rows A and B is held: the front 16 free seats are all alone.
        for row in ["A", "B"] {
            for n in (2..=20).step_by(2) {
                let seat = format!("1-{row}-{n}");
                let req = hold_req(&e, &format!("s{row}{n}"), seats(&[&seat]), t);
                store.hold(&req).await.expect("hold");
            }
        }
        let best = Selection::BestAvailable {
            section: 1,
            quantity: 2,
        };
        let reqs: Vec<HoldRequest> = ["a", "b"]
            .iter()
            .map(|who| hold_req(&e, who, best.clone(), t))
            .collect();
        let out = write_group::<Hold>(&store.pool, &store.statements, &reqs)
            .await
            .expect("group written");
        let mut all = Vec::new();
        for b in &out {
            let b = b.as_ref().expect("held in the group");
            let ids: Vec<&str> = b.seats.iter().map(|s| s.seat_id.as_str()).collect();
            // Two adjacent seats of row C, the first row with any.
            let [x, y] = ids[..] else { panic!("{ids:?}") };
            let number = |s: &str| s.rsplit('-').next().and_then(|n| n.parse::<u32>().ok());
            assert!(x.starts_with("1-C-") && y.starts_with("1-C-"), "{ids:?}");
            assert_eq!(number(x).map(|n| n + 1), number(y), "{ids:?}");
            all.extend(ids.iter().map(|s| s.to_string()));
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4, "no seat twice");
        let findings = store.verify(t).await.expect("verify");
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_group_gathers_what_arrives_within_the_window_and_no_more() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut waiting = vec![0];
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            tx.send(1).expect("send");
            tx.send(2).expect("send");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            tx.send(3).expect("send");
        });
        gather(&mut rx, &mut waiting, std::time::Duration::from_millis(10)).await;
        assert_eq!(waiting, vec![0, 1, 2]);
        // What came after the window is the next group's.
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_stops_waiting_once_it_is_large() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..LARGE_GROUP + 3 {
            tx.send(i).expect("send");
        }
        let mut waiting = Vec::new();
        rx.recv_many(&mut waiting, 1).await;
        let started = tokio::time::Instant::now();
        gather(&mut rx, &mut waiting, std::time::Duration::from_secs(3600)).await;
        assert!(waiting.len() >= LARGE_GROUP, "{waiting:?}");
        // The clock is paused: it moved only if the group slept.
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_buyer_alone_is_never_kept_waiting_by_the_window() {
        let db = TestDatabase::create().await;
        let store = PgStore::connect(
            &db.url,
            PgOptions {
                pool_size: 4,
                group_window: std::time::Duration::from_secs(3600),
                ..PgOptions::default()
            },
        )
        .await
        .expect("connect");
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
        let t = now();
        let e = concert(t);
        store.create_event(&e).await.expect("create");
        // Were a lone request to wait for the window, this would take hours.
        let alone = async {
            // The first hold lays the seats out on its own; the rest go through the groups.
            for (i, seat) in ["1-A-1", "1-A-2", "1-A-3"].iter().enumerate() {
                let who = format!("alone{i}");
                let held = store
                    .hold(&hold_req(&e, &who, seats(&[seat]), t))
                    .await
                    .expect("hold");
                let begun = store
                    .begin_commit(&commit_req(held.id, &who, &format!("k{i}"), t))
                    .await
                    .expect("begin");
                let (booking, payment) = started(&Some(begun));
                let done = store
                    .finish_commit(&finish(&booking, payment.id, approved(&booking), t))
                    .await
                    .expect("finish");
                assert!(
                    matches!(&done.outcome, CommitOutcome::Confirmed(b) if b.status == BookingStatus::Confirmed),
                    "{:?}",
                    done.outcome
                );
                captured(&store, done.payment.key(), t).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(120), alone)
            .await
            .expect("a lone buyer was answered without waiting for the window");
        let findings = store.verify(t).await.expect("verify");
        assert!(findings.is_empty(), "{findings:#?}");
    }
}
