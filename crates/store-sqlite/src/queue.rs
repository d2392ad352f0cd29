//! The waiting room on SQLite. Writes run on the one write connection inside an `IMMEDIATE`
//! transaction, so an admission round is alone with the room; `boxoffice_domain::queue`
//! decides how many to let in, this module reads and writes.

use boxoffice_domain::ids::{CustomerId, EventId, QueueId};
use boxoffice_domain::ports::StoreError;
use boxoffice_domain::queue::{self, AdmitRound, QueueEntry, QueueJoin, RoomCounts};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::codec::{corrupt, from_ts, id, sq, ts, uuid_from};

const ENTRY_SELECT: &str =
    "SELECT queue_id, event_id, customer_id, sort_key, joined_at, admitted_at
    FROM queue_entries";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueEntry> {
    let customer: String = r.get(2)?;
    Ok(QueueEntry {
        id: QueueId(uuid_from(r.get(0)?)?),
        event_id: EventId(uuid_from(r.get(1)?)?),
        customer: CustomerId::parse(&customer).map_err(|e| corrupt(e.to_string()))?,
        sort_key: r.get(3)?,
        joined_at: from_ts(r.get(4)?)?,
        admitted_at: r.get::<_, Option<i64>>(5)?.map(from_ts).transpose()?,
    })
}

pub fn entry(c: &Connection, queue: QueueId) -> rusqlite::Result<Option<QueueEntry>> {
    c.prepare_cached(&format!("{ENTRY_SELECT} WHERE queue_id = ?1"))?
        .query_row([id(queue.0)], entry_row)
        .optional()
}

pub fn join(tx: &Transaction<'_>, j: &QueueJoin) -> Result<QueueEntry, StoreError> {
    sq(join_tx(tx, j))
}

fn join_tx(tx: &Transaction<'_>, j: &QueueJoin) -> rusqlite::Result<QueueEntry> {
    (tx.prepare_cached(
        "INSERT INTO queue_entries (queue_id, event_id, customer_id, sort_key, joined_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (event_id, customer_id) DO NOTHING",
    )?
    .execute(params![
        id(j.id.0),
        id(j.event_id.0),
        j.customer.as_str(),
        j.sort_key,
        ts(j.now)
    ]))?;
    // A lapsed admission queues again, at the back.
    (tx.prepare_cached(
        "UPDATE queue_entries SET sort_key = ?3, admitted_at = NULL, joined_at = ?4
             WHERE event_id = ?1 AND customer_id = ?2 AND admitted_at <= ?5",
    )?
    .execute(params![
        id(j.event_id.0),
        j.customer.as_str(),
        j.sort_key,
        ts(j.now),
        ts(j.lapsed_before)
    ]))?;
    tx.prepare_cached(&format!(
        "{ENTRY_SELECT} WHERE event_id = ?1 AND customer_id = ?2"
    ))?
    .query_row(params![id(j.event_id.0), j.customer.as_str()], entry_row)
}

pub fn position(c: &Connection, e: &QueueEntry) -> rusqlite::Result<u64> {
    c.prepare_cached(
        "SELECT count(*) FROM queue_entries
         WHERE event_id = ?1 AND admitted_at IS NULL
           AND (sort_key < ?2 OR (sort_key = ?2 AND queue_id < ?3))",
    )?
    .query_row(params![id(e.event_id.0), e.sort_key, id(e.id.0)], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
}

pub fn admit(tx: &Transaction<'_>, round: &AdmitRound) -> Result<RoomCounts, StoreError> {
    sq(admit_tx(tx, round))
}

fn admit_tx(tx: &Transaction<'_>, round: &AdmitRound) -> rusqlite::Result<RoomCounts> {
    let event = id(round.event_id.0);
    (tx.prepare_cached(
        "INSERT INTO waiting_rooms (event_id) VALUES (?1) ON CONFLICT DO NOTHING",
    )?
    .execute([event]))?;
    let admitted: i64 = (tx
        .prepare_cached("SELECT admitted FROM waiting_rooms WHERE event_id = ?1")?
        .query_row([event], |r| r.get(0)))?;
    let active: i64 = (tx
        .prepare_cached(
            "SELECT count(*) FROM queue_entries WHERE event_id = ?1 AND admitted_at > ?2",
        )?
        .query_row(params![event, ts(round.active_since)], |r| r.get(0)))?;
    let n = queue::to_admit(
        round.allowance,
        admitted.max(0) as u64,
        round.free_seats,
        active.max(0) as u64,
    );
    let mut let_in = 0u64;
    if n > 0 {
        let_in = (tx
            .prepare_cached(
                "UPDATE queue_entries SET admitted_at = ?2
                 WHERE queue_id IN (
                     SELECT queue_id FROM queue_entries
                     WHERE event_id = ?1 AND admitted_at IS NULL
                     ORDER BY sort_key, queue_id LIMIT ?3)",
            )?
            .execute(params![event, ts(round.now), n.min(i64::MAX as u64) as i64]))?
            as u64;
        (tx.prepare_cached(
            "UPDATE waiting_rooms SET admitted = admitted + ?2 WHERE event_id = ?1",
        )?
        .execute(params![event, let_in as i64]))?;
    }
    let waiting: i64 = (tx
        .prepare_cached(
            "SELECT count(*) FROM queue_entries WHERE event_id = ?1 AND admitted_at IS NULL",
        )?
        .query_row([event], |r| r.get(0)))?;
    Ok(RoomCounts {
        admitted: admitted.max(0) as u64 + let_in,
        waiting: waiting.max(0) as u64,
    })
}

pub fn waiting_keys(c: &Connection, event: EventId) -> rusqlite::Result<Vec<i64>> {
    c.prepare_cached(
        "SELECT sort_key FROM queue_entries WHERE event_id = ?1 AND admitted_at IS NULL
         ORDER BY sort_key, queue_id",
    )?
    .query_map([id(event.0)], |r| r.get(0))?
    .collect()
}
