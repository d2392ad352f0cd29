//! The waiting room on PostgreSQL. An admission round locks the room's row, so rounds run by
//! several nodes at once take turns and never let in more than the rate and the free seats
//! allow; `boxoffice_domain::queue` decides how many, this module reads and writes.

use crate::exec::Exec;
use boxoffice_domain::ids::{CustomerId, EventId, QueueId};
use boxoffice_domain::ports::StoreError;
use boxoffice_domain::queue::{self, AdmitRound, QueueEntry, QueueJoin, RoomCounts};
use tokio_postgres::Row;

use crate::corrupt;

type Result<T, E = StoreError> = std::result::Result<T, E>;

const ENTRY_SELECT: &str =
    "SELECT queue_id, event_id, customer_id, sort_key, joined_at, admitted_at
    FROM queue_entries";

fn entry_row(r: &Row) -> Result<QueueEntry> {
    Ok(QueueEntry {
        id: QueueId(r.get(0)),
        event_id: EventId(r.get(1)),
        customer: CustomerId::parse(r.get(2)).map_err(|_| corrupt("customer"))?,
        sort_key: r.get(3),
        joined_at: r.get(4),
        admitted_at: r.get(5),
    })
}

pub async fn entry<C: Exec>(c: &C, id: QueueId) -> Result<Option<QueueEntry>> {
    q!(
        c,
        query_opt,
        &format!("/* by key */ {ENTRY_SELECT} WHERE queue_id = $1"),
        &id.0
    )?
    .as_ref()
    .map(entry_row)
    .transpose()
}

pub async fn join<C: Exec>(c: &C, j: &QueueJoin) -> Result<QueueEntry> {
    // One statement: insert the place, or queue a lapsed admission again at the back, or leave
    // the existing place as it is; then read it.
    q!(
        c,
        execute,
        "INSERT INTO queue_entries (queue_id, event_id, customer_id, sort_key, joined_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id, customer_id) DO UPDATE
             SET sort_key = EXCLUDED.sort_key, joined_at = EXCLUDED.joined_at, admitted_at = NULL
             WHERE queue_entries.admitted_at <= $6",
        &j.id.0,
        &j.event_id.0,
        &j.customer.as_str(),
        &j.sort_key,
        &j.now,
        &j.lapsed_before,
    )?;
    let row = q!(
        c,
        query_one,
        &format!("{ENTRY_SELECT} WHERE event_id = $1 AND customer_id = $2"),
        &j.event_id.0,
        &j.customer.as_str(),
    )?;
    entry_row(&row)
}

pub async fn position<C: Exec>(c: &C, e: &QueueEntry) -> Result<u64> {
    let n: i64 = q!(
        c,
        query_one,
        "SELECT count(*) FROM queue_entries
         WHERE event_id = $1 AND admitted_at IS NULL AND (sort_key, queue_id) < ($2, $3)",
        &e.event_id.0,
        &e.sort_key,
        &e.id.0,
    )?
    .get(0);
    Ok(n.max(0) as u64)
}

pub async fn admit<C: Exec>(c: &C, round: &AdmitRound) -> Result<RoomCounts> {
    let event = round.event_id.0;
    q!(
        c,
        execute,
        "INSERT INTO waiting_rooms (event_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &event
    )?;
    let admitted: i64 = q!(
        c,
        query_one,
        "SELECT admitted FROM waiting_rooms WHERE event_id = $1 FOR UPDATE",
        &event
    )?
    .get(0);
    let active: i64 = q!(
        c,
        query_one,
        "SELECT count(*) FROM queue_entries WHERE event_id = $1 AND admitted_at > $2",
        &event,
        &round.active_since,
    )?
    .get(0);
    let n = queue::to_admit(
        round.allowance,
        admitted.max(0) as u64,
        round.free_seats,
        active.max(0) as u64,
    );
    let mut let_in = 0u64;
    if n > 0 {
        let limit = n.min(i64::MAX as u64) as i64;
        let_in = q!(
            c,
            execute,
            "UPDATE queue_entries SET admitted_at = $2
             WHERE queue_id IN (
                 SELECT queue_id FROM queue_entries
                 WHERE event_id = $1 AND admitted_at IS NULL
                 ORDER BY sort_key, queue_id LIMIT $3)",
            &event,
            &round.now,
            &limit,
        )?;
        q!(
            c,
            execute,
            "UPDATE waiting_rooms SET admitted = admitted + $2 WHERE event_id = $1",
            &event,
            &(let_in as i64),
        )?;
    }
    let waiting: i64 = q!(
        c,
        query_one,
        "SELECT count(*) FROM queue_entries WHERE event_id = $1 AND admitted_at IS NULL",
        &event
    )?
    .get(0);
    Ok(RoomCounts {
        admitted: admitted.max(0) as u64 + let_in,
        waiting: waiting.max(0) as u64,
    })
}

pub async fn waiting_keys<C: Exec>(c: &C, event: EventId) -> Result<Vec<i64>> {
    Ok(q!(
        c,
        query,
        "SELECT sort_key FROM queue_entries WHERE event_id = $1 AND admitted_at IS NULL
         ORDER BY sort_key, queue_id",
        &event.0
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}
