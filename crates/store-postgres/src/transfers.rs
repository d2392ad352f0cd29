//! Transfers on PostgreSQL. The rules are the domain's (`boxoffice_domain::transfers`); this
//! module reads under row locks, asks, and writes.
//!
//! Lock order: the event row (shared, so a cancellation of the event waits for a transfer in
//! flight and the other way round), then the transfer, then the ticket. Every decision reads
//! the ticket after its lock was granted (a fresh statement), so an accept racing a check-in,
//! a listing or a cancellation sees what the other one wrote.

use crate::exec::Exec;
use boxoffice_domain::booking::{Ticket, TicketStatus};
use boxoffice_domain::ids::{BookingId, CustomerId, EventId, SeatId, TicketId, TransferId};
use boxoffice_domain::ports::StoreError;
use boxoffice_domain::resale::{Transfer, TransferStatus};
use boxoffice_domain::transfers::{
    self, AcceptCheck, AcceptDecision, AcceptRequest, OfferCheck, OfferRequest, RevocationCursor,
    RevokedTicket, TransferError,
};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::corrupt;

type Result<T, E = StoreError> = std::result::Result<T, E>;

const TICKET_SELECT: &str = "SELECT ticket_id, event_id, booking_id, seat_id, customer_id,
        status, token, attendee_name, issued_at, checked_in_at
    FROM tickets";

fn ticket_row(r: &Row) -> Result<Ticket> {
    Ok(Ticket {
        id: TicketId(r.get(0)),
        event_id: EventId(r.get(1)),
        booking_id: BookingId(r.get(2)),
        seat_id: SeatId::from_trusted(r.get(3)),
        customer: CustomerId::parse(r.get(4)).map_err(|_| corrupt("customer"))?,
        status: TicketStatus::parse(r.get(5)).ok_or_else(|| corrupt("ticket status"))?,
        token: r.get(6),
        attendee_name: r.get(7),
        issued_at: r.get(8),
        checked_in_at: r.get(9),
    })
}

/// A ticket by its id alone (the entry of a use case that starts from the id).
pub async fn ticket<C: Exec>(c: &C, id: TicketId) -> Result<Option<Ticket>> {
    q!(
        c,
        query_opt,
        &format!("/* by key */ {TICKET_SELECT} WHERE ticket_id = $1"),
        &id.0
    )?
    .as_ref()
    .map(ticket_row)
    .transpose()
}

/// A ticket of a known event, its row locked.
async fn lock_ticket<C: Exec>(c: &C, event: EventId, id: TicketId) -> Result<Option<Ticket>> {
    q!(
        c,
        query_opt,
        &format!("{TICKET_SELECT} WHERE event_id = $2 AND ticket_id = $1 FOR UPDATE"),
        &id.0,
        &event.0
    )?
    .as_ref()
    .map(ticket_row)
    .transpose()
}

async fn ticket_in<C: Exec>(c: &C, event: EventId, id: TicketId) -> Result<Option<Ticket>> {
    q!(
        c,
        query_opt,
        &format!("{TICKET_SELECT} WHERE event_id = $2 AND ticket_id = $1"),
        &id.0,
        &event.0
    )?
    .as_ref()
    .map(ticket_row)
    .transpose()
}

const TRANSFER_SELECT: &str = "SELECT transfer_id, event_id, ticket_id, from_customer,
        to_customer, status, new_ticket_id, created_at, updated_at
    FROM transfers";

fn transfer_row(r: &Row) -> Result<Transfer> {
    Ok(Transfer {
        id: TransferId(r.get(0)),
        event_id: EventId(r.get(1)),
        ticket_id: TicketId(r.get(2)),
        from: CustomerId::parse(r.get(3)).map_err(|_| corrupt("sender"))?,
        to: CustomerId::parse(r.get(4)).map_err(|_| corrupt("recipient"))?,
        status: TransferStatus::parse(r.get(5)).ok_or_else(|| corrupt("transfer status"))?,
        new_ticket_id: r.get::<_, Option<Uuid>>(6).map(TicketId),
        created_at: r.get(7),
        updated_at: r.get(8),
    })
}

pub async fn transfer<C: Exec>(c: &C, id: TransferId) -> Result<Option<Transfer>> {
    q!(
        c,
        query_opt,
        &format!("/* by key */ {TRANSFER_SELECT} WHERE transfer_id = $1"),
        &id.0
    )?
    .as_ref()
    .map(transfer_row)
    .transpose()
}

pub async fn transfers_of<C: Exec>(c: &C, customer: &CustomerId) -> Result<Vec<Transfer>> {
    q!(
        c,
        query,
        &format!(
            "/* fan-out */ {TRANSFER_SELECT} WHERE from_customer = $1 OR to_customer = $1
             ORDER BY created_at DESC, transfer_id DESC"
        ),
        &customer.as_str()
    )?
    .iter()
    .map(transfer_row)
    .collect()
}

/// Locks the event row for share and says when it starts and whether it was cancelled.
async fn lock_event<C: Exec>(c: &C, event: EventId) -> Result<(OffsetDateTime, bool)> {
    let r = q!(
        c,
        query_one,
        "SELECT starts_at, cancelled_at IS NOT NULL FROM events WHERE event_id = $1 FOR SHARE",
        &event.0
    )?;
    Ok((r.get(0), r.get(1)))
}

async fn set_status<C: Exec>(
    c: &C,
    event: EventId,
    id: TransferId,
    status: TransferStatus,
    new_ticket: Option<TicketId>,
    now: OffsetDateTime,
) -> Result<Transfer> {
    let r = q!(
        c,
        query_one,
        &format!(
            "UPDATE transfers SET status = $2, new_ticket_id = $3, updated_at = $4
             WHERE event_id = $5 AND transfer_id = $1
             RETURNING {}",
            TRANSFER_SELECT
                .trim_start_matches("SELECT ")
                .trim_end_matches("FROM transfers")
        ),
        &id.0,
        &status.as_str(),
        &new_ticket.map(|t| t.0),
        &now,
        &event.0
    )?;
    transfer_row(&r)
}

pub async fn offer<C: Exec>(c: &C, req: &OfferRequest) -> Result<Result<Transfer, TransferError>> {
    let Some(event) = q!(
        c,
        query_opt,
        "/* by key */ SELECT event_id FROM tickets WHERE ticket_id = $1",
        &req.ticket_id.0
    )?
    .map(|r| EventId(r.get(0))) else {
        return Ok(Err(TransferError::NotFound));
    };
    let (starts_at, cancelled) = lock_event(c, event).await?;
    // Read under the lock: the ticket as the last writer left it.
    let t = lock_ticket(c, event, req.ticket_id)
        .await?
        .ok_or_else(|| StoreError::Internal("a locked ticket vanished".into()))?;
    let pending = q!(
        c,
        query_opt,
        "SELECT 1 FROM transfers WHERE event_id = $2 AND ticket_id = $1 AND status = 'PENDING'",
        &t.id.0,
        &event.0
    )?
    .is_some();
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
    let r = q!(
        c,
        query_one,
        &format!(
            "INSERT INTO transfers (transfer_id, event_id, ticket_id, from_customer, to_customer,
                 status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $6)
             RETURNING {}",
            TRANSFER_SELECT
                .trim_start_matches("SELECT ")
                .trim_end_matches("FROM transfers")
        ),
        &req.transfer_id.0,
        &t.event_id.0,
        &t.id.0,
        &req.from.as_str(),
        &req.to.as_str(),
        &req.now
    )?;
    Ok(Ok(transfer_row(&r)?))
}

pub async fn accept<C: Exec>(
    c: &C,
    req: &AcceptRequest,
) -> Result<Result<(Transfer, Ticket), TransferError>> {
    let Some(event) = q!(
        c,
        query_opt,
        "/* by key */ SELECT event_id FROM transfers WHERE transfer_id = $1",
        &req.transfer_id.0
    )?
    .map(|r| EventId(r.get(0))) else {
        return Ok(Err(TransferError::NotFound));
    };
    let (starts_at, cancelled) = lock_event(c, event).await?;
    let tr = q!(
        c,
        query_one,
        &format!("{TRANSFER_SELECT} WHERE event_id = $2 AND transfer_id = $1 FOR UPDATE"),
        &req.transfer_id.0,
        &event.0
    )?;
    let tr = transfer_row(&tr)?;
    let old = lock_ticket(c, event, tr.ticket_id)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("transfer {} has no ticket", tr.id)))?;
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
                set_status(c, event, tr.id, status, None, req.now).await?;
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
    let n = q!(
        c,
        execute,
        "UPDATE tickets SET status = 'REISSUED', reissued_at = $2
         WHERE event_id = $3 AND ticket_id = $1 AND status = 'VALID'",
        &old.id.0,
        &req.now,
        &event.0
    )?;
    debug_assert_eq!(n, 1, "the ticket was read VALID under its lock");
    q!(
        c,
        execute,
        "INSERT INTO tickets (ticket_id, event_id, booking_id, seat_id, customer_id, status,
             token, issued_at, replaces)
         VALUES ($1, $2, $3, $4, $5, 'VALID', $6, $7, $8)",
        &req.new_ticket.id.0,
        &old.event_id.0,
        &old.booking_id.0,
        &old.seat_id.as_str(),
        &req.recipient.as_str(),
        &req.new_ticket.token,
        &req.now,
        &old.id.0
    )?;
    let tr = set_status(
        c,
        event,
        tr.id,
        TransferStatus::Accepted,
        Some(req.new_ticket.id),
        req.now,
    )
    .await?;
    let new = ticket_in(c, event, req.new_ticket.id)
        .await?
        .ok_or_else(|| StoreError::Internal("the new ticket vanished".into()))?;
    Ok(Ok((tr, new)))
}

pub async fn cancel<C: Exec>(
    c: &C,
    id: TransferId,
    sender: &CustomerId,
    now: OffsetDateTime,
) -> Result<Result<Transfer, TransferError>> {
    let Some(tr) = q!(
        c,
        query_opt,
        &format!("/* by key */ {TRANSFER_SELECT} WHERE transfer_id = $1 FOR UPDATE"),
        &id.0
    )?
    else {
        return Ok(Err(TransferError::NotFound));
    };
    let tr = transfer_row(&tr)?;
    let r = q!(
        c,
        query_one,
        "SELECT starts_at, cancelled_at IS NOT NULL FROM events WHERE event_id = $1",
        &tr.event_id.0
    )?;
    if let Err(e) = transfers::may_cancel(&tr, sender, r.get(0), r.get(1), now) {
        return Ok(Err(e));
    }
    Ok(Ok(set_status(
        c,
        tr.event_id,
        tr.id,
        TransferStatus::Cancelled,
        None,
        now,
    )
    .await?))
}

pub async fn revocations<C: Exec>(
    c: &C,
    event: EventId,
    after: Option<RevocationCursor>,
    limit: u32,
) -> Result<Vec<RevokedTicket>> {
    // Through the partial index `tickets_revoked` (event_id, coalesce(reissued_at, voided_at)).
    let (at, ticket) = after.map(|a| (a.at, a.ticket_id.0)).unwrap_or((
        OffsetDateTime::UNIX_EPOCH - time::Duration::days(365 * 100),
        Uuid::nil(),
    ));
    q!(
        c,
        query,
        "SELECT ticket_id, status, coalesce(reissued_at, voided_at)
         FROM tickets
         WHERE event_id = $1 AND status IN ('VOID', 'REISSUED')
           AND (coalesce(reissued_at, voided_at), ticket_id) > ($2, $3)
         ORDER BY coalesce(reissued_at, voided_at), ticket_id
         LIMIT $4",
        &event.0,
        &at,
        &ticket,
        &i64::from(limit)
    )?
    .iter()
    .map(|r| {
        Ok(RevokedTicket {
            ticket_id: TicketId(r.get(0)),
            status: TicketStatus::parse(r.get(1)).ok_or_else(|| corrupt("ticket status"))?,
            at: r.get(2),
        })
    })
    .collect()
}
