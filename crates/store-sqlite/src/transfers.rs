//! Transfers on SQLite: every write runs on the one write connection inside an `IMMEDIATE`
//! transaction, so the ticket and the transfer read here cannot change before the write; the
//! rules in `boxoffice_domain::transfers` decide, this module reads and writes what they say.

use boxoffice_domain::booking::{Ticket, TicketStatus};
use boxoffice_domain::ids::{BookingId, CustomerId, EventId, SeatId, TicketId, TransferId};
use boxoffice_domain::ports::StoreError;
use boxoffice_domain::resale::{Transfer, TransferStatus};
use boxoffice_domain::transfers::{
    self, AcceptCheck, AcceptDecision, AcceptRequest, OfferCheck, OfferRequest, RevocationCursor,
    RevokedTicket, TransferError,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::codec::{corrupt, from_ts, id, sq, ts, uuid_from};

type Result<T, E = StoreError> = std::result::Result<T, E>;

const TICKET_SELECT: &str = "SELECT ticket_id, event_id, booking_id, seat_id, customer_id, status,
        token, attendee_name, issued_at, checked_in_at
    FROM tickets";

fn ticket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ticket> {
    let customer: String = r.get(4)?;
    let status: String = r.get(5)?;
    Ok(Ticket {
        id: TicketId(uuid_from(r.get(0)?)?),
        event_id: EventId(uuid_from(r.get(1)?)?),
        booking_id: BookingId(uuid_from(r.get(2)?)?),
        seat_id: SeatId::from_trusted(r.get(3)?),
        customer: CustomerId::parse(&customer).map_err(|e| corrupt(e.to_string()))?,
        status: TicketStatus::parse(&status).ok_or_else(|| corrupt("ticket status"))?,
        token: r.get(6)?,
        attendee_name: r.get(7)?,
        issued_at: from_ts(r.get(8)?)?,
        checked_in_at: r.get::<_, Option<i64>>(9)?.map(from_ts).transpose()?,
    })
}

pub fn ticket(c: &Connection, ticket: TicketId) -> rusqlite::Result<Option<Ticket>> {
    c.prepare_cached(&format!("{TICKET_SELECT} WHERE ticket_id = ?1"))?
        .query_row([id(ticket.0)], ticket_row)
        .optional()
}

const TRANSFER_SELECT: &str = "SELECT transfer_id, event_id, ticket_id, from_customer,
        to_customer, status, new_ticket_id, created_at, updated_at
    FROM transfers";

fn transfer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Transfer> {
    let from: String = r.get(3)?;
    let to: String = r.get(4)?;
    let status: String = r.get(5)?;
    Ok(Transfer {
        id: TransferId(uuid_from(r.get(0)?)?),
        event_id: EventId(uuid_from(r.get(1)?)?),
        ticket_id: TicketId(uuid_from(r.get(2)?)?),
        from: CustomerId::parse(&from).map_err(|e| corrupt(e.to_string()))?,
        to: CustomerId::parse(&to).map_err(|e| corrupt(e.to_string()))?,
        status: TransferStatus::parse(&status).ok_or_else(|| corrupt("transfer status"))?,
        new_ticket_id: r
            .get::<_, Option<Vec<u8>>>(6)?
            .map(uuid_from)
            .transpose()?
            .map(TicketId),
        created_at: from_ts(r.get(7)?)?,
        updated_at: from_ts(r.get(8)?)?,
    })
}

pub fn transfer(c: &Connection, transfer: TransferId) -> rusqlite::Result<Option<Transfer>> {
    c.prepare_cached(&format!("{TRANSFER_SELECT} WHERE transfer_id = ?1"))?
        .query_row([id(transfer.0)], transfer_row)
        .optional()
}

pub fn transfers_of(c: &Connection, customer: &CustomerId) -> rusqlite::Result<Vec<Transfer>> {
    c.prepare_cached(&format!(
        "{TRANSFER_SELECT} WHERE from_customer = ?1 OR to_customer = ?1
         ORDER BY created_at DESC, transfer_id DESC"
    ))?
    .query_map([customer.as_str()], transfer_row)?
    .collect()
}

/// When the event starts, and whether it was cancelled.
fn event_times(tx: &Transaction<'_>, event: EventId) -> Result<(OffsetDateTime, bool)> {
    let (starts, cancelled): (i64, bool) = sq(tx
        .prepare_cached(
            "SELECT starts_at, cancelled_at IS NOT NULL FROM events WHERE event_id = ?1",
        )
        .and_then(|mut s| s.query_row([id(event.0)], |r| Ok((r.get(0)?, r.get(1)?)))))?;
    Ok((sq(from_ts(starts))?, cancelled))
}

fn set_status(
    tx: &Transaction<'_>,
    transfer: TransferId,
    status: TransferStatus,
    new_ticket: Option<TicketId>,
    now: OffsetDateTime,
) -> Result<()> {
    sq(tx
        .prepare_cached(
            "UPDATE transfers SET status = ?2, new_ticket_id = ?3, updated_at = ?4
             WHERE transfer_id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(transfer.0),
                status.as_str(),
                new_ticket.map(|t| id(t.0)),
                ts(now)
            ])
        }))?;
    Ok(())
}

fn must_transfer(tx: &Transaction<'_>, t: TransferId) -> Result<Transfer> {
    sq(transfer(tx, t))?.ok_or_else(|| StoreError::Internal(format!("transfer {t} vanished")))
}

pub fn offer(tx: &Transaction<'_>, req: &OfferRequest) -> Result<Result<Transfer, TransferError>> {
    let Some(t) = sq(ticket(tx, req.ticket_id))? else {
        return Ok(Err(TransferError::NotFound));
    };
    let pending = sq(tx
        .prepare_cached("SELECT 1 FROM transfers WHERE ticket_id = ?1 AND status = 'PENDING'")
        .and_then(|mut s| s.exists([id(t.id.0)])))?;
    let (starts_at, cancelled) = event_times(tx, t.event_id)?;
    if let Err(e) = transfers::may_offer(&OfferCheck {
        caller: &req.from,
        recipient: &req.to,
        ticket_owner: &t.customer,
        ticket_status: t.status,
        transfer_pending: pending,
        event_starts_at: starts_at,
        event_cancelled: cancelled,
        now: req.now,
    }) {
        return Ok(Err(e));
    }
    sq(tx
        .prepare_cached(
            "INSERT INTO transfers (transfer_id, event_id, ticket_id, from_customer, to_customer,
                 status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(req.transfer_id.0),
                id(t.event_id.0),
                id(t.id.0),
                req.from.as_str(),
                req.to.as_str(),
                ts(req.now)
            ])
        }))?;
    Ok(Ok(must_transfer(tx, req.transfer_id)?))
}

pub fn accept(
    tx: &Transaction<'_>,
    req: &AcceptRequest,
) -> Result<Result<(Transfer, Ticket), TransferError>> {
    let Some(tr) = sq(transfer(tx, req.transfer_id))? else {
        return Ok(Err(TransferError::NotFound));
    };
    let old = sq(ticket(tx, tr.ticket_id))?
        .ok_or_else(|| StoreError::Internal(format!("transfer {} has no ticket", tr.id)))?;
    let (starts_at, cancelled) = event_times(tx, tr.event_id)?;
    match transfers::decide_accept(&AcceptCheck {
        transfer: &tr,
        caller: &req.recipient,
        ticket_owner: &old.customer,
        ticket_status: old.status,
        event_starts_at: starts_at,
        event_cancelled: cancelled,
        now: req.now,
    }) {
        AcceptDecision::Refuse(end, e) => {
            if let Some(status) = end {
                set_status(tx, tr.id, status, None, req.now)?;
            }
            return Ok(Err(e));
        }
        AcceptDecision::Reissue => {}
    }
    if req.new_ticket.seat_id != old.seat_id {
        return Err(StoreError::Internal(
            "a transfer's new ticket must be for the same seat".into(),
        ));
    }
    let n = sq(tx
        .prepare_cached(
            "UPDATE tickets SET status = 'REISSUED', reissued_at = ?2
             WHERE ticket_id = ?1 AND status = 'VALID'",
        )
        .and_then(|mut s| s.execute(params![id(old.id.0), ts(req.now)])))?;
    debug_assert_eq!(n, 1, "the ticket was read VALID in this transaction");
    sq(tx
        .prepare_cached(
            "INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id, status,
                 token, attendee_name, issued_at, replaces)
             VALUES (?1, ?2, ?3, ?4, ?5, 'VALID', ?6, NULL, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id(req.new_ticket.id.0),
                id(old.event_id.0),
                id(old.booking_id.0),
                old.seat_id.as_str(),
                req.recipient.as_str(),
                req.new_ticket.token,
                ts(req.now),
                id(old.id.0)
            ])
        }))?;
    set_status(
        tx,
        tr.id,
        TransferStatus::Accepted,
        Some(req.new_ticket.id),
        req.now,
    )?;
    let new = sq(ticket(tx, req.new_ticket.id))?
        .ok_or_else(|| StoreError::Internal("the new ticket vanished".into()))?;
    Ok(Ok((must_transfer(tx, tr.id)?, new)))
}

pub fn cancel(
    tx: &Transaction<'_>,
    transfer_id: TransferId,
    sender: &CustomerId,
    now: OffsetDateTime,
) -> Result<Result<Transfer, TransferError>> {
    let Some(tr) = sq(transfer(tx, transfer_id))? else {
        return Ok(Err(TransferError::NotFound));
    };
    let (starts_at, cancelled) = event_times(tx, tr.event_id)?;
    if let Err(e) = transfers::may_cancel(&tr, sender, starts_at, cancelled, now) {
        return Ok(Err(e));
    }
    set_status(tx, tr.id, TransferStatus::Cancelled, None, now)?;
    Ok(Ok(must_transfer(tx, tr.id)?))
}

pub fn revocations(
    c: &Connection,
    event: EventId,
    after: Option<RevocationCursor>,
    limit: u32,
) -> rusqlite::Result<Vec<RevokedTicket>> {
    // Through the partial index `tickets_revoked` (event_id, coalesce(reissued_at, voided_at)).
    let (at, ticket) = after
        .map(|a| (ts(a.at), id(a.ticket_id.0)))
        .unwrap_or((i64::MIN, [0; 16]));
    c.prepare_cached(
        "SELECT ticket_id, status, coalesce(reissued_at, voided_at) AS at
         FROM tickets
         WHERE event_id = ?1 AND status IN ('VOID', 'REISSUED')
           AND (coalesce(reissued_at, voided_at), ticket_id) > (?2, ?3)
         ORDER BY coalesce(reissued_at, voided_at), ticket_id
         LIMIT ?4",
    )?
    .query_map(params![id(event.0), at, ticket, limit], |r| {
        let status: String = r.get(1)?;
        Ok(RevokedTicket {
            ticket_id: TicketId(uuid_from(r.get(0)?)?),
            status: TicketStatus::parse(&status).ok_or_else(|| corrupt("ticket status"))?,
            at: from_ts(r.get(2)?)?,
        })
    })?
    .collect()
}
