//! Giving a ticket away: the rules every store applies, under its locks, to offer, accept and
//! cancel a transfer, and what offline scanners are told about tickets that died.
//!
//! ```text
//!   transfer PENDING ──recipient accepts──► ACCEPTED  (sender's ticket REISSUED, the
//!      │                                               recipient gets a new VALID ticket)
//!      ├──sender cancels, or the ticket can no longer pass──► CANCELLED
//!      └──event starts or is cancelled──► EXPIRED (shown so at once, written when touched)
//! ```
//!
//! The recipient's ticket keeps the seat and the booking of the ticket it replaces (the booking
//! is what was paid for, and stays its buyer's: refunds of it are refused once a ticket was
//! passed on); only its owner, id and token are new.

use time::OffsetDateTime;

use crate::booking::TicketStatus;
use crate::ids::{CustomerId, TicketId, TransferId};
use crate::resale::{Transfer, TransferStatus};

/// Why a transfer cannot be offered, accepted or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// No such ticket or transfer of the caller's: indistinguishable to them.
    #[error("no such ticket or transfer")]
    NotFound,
    /// Giving a ticket to yourself.
    #[error("a ticket cannot be transferred to its own owner")]
    ToSelf,
    /// Only a VALID ticket can pass: not a listed, used, void or reissued one.
    #[error("the ticket is {0:?}")]
    NotTransferable(TicketStatus),
    /// Another transfer of the ticket is pending.
    #[error("a transfer of the ticket is pending")]
    AlreadyPending,
    #[error("the event has started")]
    EventStarted,
    #[error("the event was cancelled")]
    EventCancelled,
    /// The transfer was accepted, cancelled or has expired.
    #[error("the transfer is {0:?}")]
    NotPending(TransferStatus),
}

/// What offering a ticket is decided from.
#[derive(Debug, Clone, Copy)]
pub struct OfferCheck<'a> {
    pub caller: &'a CustomerId,
    pub recipient: &'a CustomerId,
    pub ticket_owner: &'a CustomerId,
    pub ticket_status: TicketStatus,
    pub transfer_pending: bool,
    pub event_starts_at: OffsetDateTime,
    pub event_cancelled: bool,
    pub now: OffsetDateTime,
}

/// Whether the caller may offer the ticket to the recipient: checked in this order, on every
/// store.
pub fn may_offer(c: &OfferCheck<'_>) -> Result<(), TransferError> {
    if c.ticket_owner != c.caller {
        return Err(TransferError::NotFound);
    }
    if c.recipient == c.caller {
        return Err(TransferError::ToSelf);
    }
    if c.ticket_status != TicketStatus::Valid {
        return Err(TransferError::NotTransferable(c.ticket_status));
    }
    if c.transfer_pending {
        return Err(TransferError::AlreadyPending);
    }
    event_open(c.event_starts_at, c.event_cancelled, c.now)
}

fn event_open(
    starts_at: OffsetDateTime,
    cancelled: bool,
    now: OffsetDateTime,
) -> Result<(), TransferError> {
    if cancelled {
        return Err(TransferError::EventCancelled);
    }
    if now >= starts_at {
        return Err(TransferError::EventStarted);
    }
    Ok(())
}

/// The status that counts at `now`: a pending transfer lapses when its event starts or is
/// cancelled, even before anyone has written that down.
pub fn effective_status(
    status: TransferStatus,
    event_starts_at: OffsetDateTime,
    event_cancelled: bool,
    now: OffsetDateTime,
) -> TransferStatus {
    match status {
        TransferStatus::Pending if event_open(event_starts_at, event_cancelled, now).is_err() => {
            TransferStatus::Expired
        }
        s => s,
    }
}

/// What accepting is decided from: the transfer and its ticket, both locked.
#[derive(Debug, Clone, Copy)]
pub struct AcceptCheck<'a> {
    pub transfer: &'a Transfer,
    pub caller: &'a CustomerId,
    pub ticket_owner: &'a CustomerId,
    pub ticket_status: TicketStatus,
    pub event_starts_at: OffsetDateTime,
    pub event_cancelled: bool,
    pub now: OffsetDateTime,
}

/// What a store does when a recipient accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptDecision {
    /// Reissue: the old ticket REISSUED, a new one for the recipient, the transfer ACCEPTED.
    Reissue,
    /// Refuse, writing the transfer's new status first when it has one (EXPIRED when the
    /// event started or was cancelled, CANCELLED when the ticket can no longer pass).
    Refuse(Option<TransferStatus>, TransferError),
}

/// Whether the caller may accept the transfer now.
pub fn decide_accept(c: &AcceptCheck<'_>) -> AcceptDecision {
    use AcceptDecision::Refuse;
    if &c.transfer.to != c.caller {
        return Refuse(None, TransferError::NotFound);
    }
    if c.transfer.status != TransferStatus::Pending {
        return Refuse(None, TransferError::NotPending(c.transfer.status));
    }
    if let Err(e) = event_open(c.event_starts_at, c.event_cancelled, c.now) {
        return Refuse(Some(TransferStatus::Expired), e);
    }
    if c.ticket_owner != &c.transfer.from || c.ticket_status != TicketStatus::Valid {
        // Scanned, refunded or otherwise gone since it was offered: this transfer can never
        // complete.
        return Refuse(
            Some(TransferStatus::Cancelled),
            TransferError::NotTransferable(c.ticket_status),
        );
    }
    AcceptDecision::Reissue
}

/// Whether the sender may cancel the transfer now: only a pending one of theirs. A transfer
/// whose event has started is EXPIRED, not cancellable.
pub fn may_cancel(
    transfer: &Transfer,
    caller: &CustomerId,
    event_starts_at: OffsetDateTime,
    event_cancelled: bool,
    now: OffsetDateTime,
) -> Result<(), TransferError> {
    if &transfer.from != caller {
        return Err(TransferError::NotFound);
    }
    match effective_status(transfer.status, event_starts_at, event_cancelled, now) {
        TransferStatus::Pending => Ok(()),
        s => Err(TransferError::NotPending(s)),
    }
}

/// A request to offer a ticket, fully decided by the caller.
#[derive(Debug, Clone)]
pub struct OfferRequest {
    pub transfer_id: TransferId,
    pub ticket_id: TicketId,
    pub from: CustomerId,
    pub to: CustomerId,
    pub now: OffsetDateTime,
}

/// A request to accept a transfer: the recipient's new ticket is signed by the caller (for the
/// same seat and booking as the ticket it replaces).
#[derive(Debug, Clone)]
pub struct AcceptRequest {
    pub transfer_id: TransferId,
    pub recipient: CustomerId,
    pub new_ticket: crate::booking::NewTicket,
    pub now: OffsetDateTime,
}

/// A ticket that no longer admits anyone, for offline scanners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedTicket {
    pub ticket_id: TicketId,
    /// VOID or REISSUED.
    pub status: TicketStatus,
    /// When it was voided or reissued.
    pub at: OffsetDateTime,
}

/// A position in an event's revocations: after this time and, at the same time, this ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationCursor {
    pub at: OffsetDateTime,
    pub ticket_id: TicketId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EventId;
    use time::macros::datetime;

    fn who(s: &str) -> CustomerId {
        CustomerId::parse(s).unwrap()
    }

    #[test]
    fn offers_are_checked_in_order() {
        let (alice, bob) = (who("alice"), who("bob"));
        let now = datetime!(2027-01-01 12:00 UTC);
        let ok = OfferCheck {
            caller: &alice,
            recipient: &bob,
            ticket_owner: &alice,
            ticket_status: TicketStatus::Valid,
            transfer_pending: false,
            event_starts_at: now + time::Duration::days(1),
            event_cancelled: false,
            now,
        };
        assert_eq!(may_offer(&ok), Ok(()));
        let cases = [
            (
                OfferCheck {
                    ticket_owner: &bob,
                    recipient: &alice,
                    ..ok
                },
                TransferError::NotFound,
            ),
            (
                OfferCheck {
                    recipient: &alice,
                    ..ok
                },
                TransferError::ToSelf,
            ),
            (
                OfferCheck {
                    ticket_status: TicketStatus::Listed,
                    ..ok
                },
                TransferError::NotTransferable(TicketStatus::Listed),
            ),
            (
                OfferCheck {
                    transfer_pending: true,
                    ..ok
                },
                TransferError::AlreadyPending,
            ),
            (
                OfferCheck {
                    event_starts_at: now,
                    ..ok
                },
                TransferError::EventStarted,
            ),
            (
                OfferCheck {
                    event_cancelled: true,
                    ..ok
                },
                TransferError::EventCancelled,
            ),
        ];
        for (check, want) in cases {
            assert_eq!(may_offer(&check), Err(want));
        }
    }

    #[test]
    fn accepting_lapses_and_cancels_what_can_never_complete() {
        let (alice, bob) = (who("alice"), who("bob"));
        let now = datetime!(2027-01-01 12:00 UTC);
        let t = Transfer {
            id: TransferId::new(),
            event_id: EventId::new(),
            ticket_id: TicketId::new(),
            from: alice.clone(),
            to: bob.clone(),
            status: TransferStatus::Pending,
            new_ticket_id: None,
            created_at: now,
            updated_at: now,
        };
        let ok = AcceptCheck {
            transfer: &t,
            caller: &bob,
            ticket_owner: &alice,
            ticket_status: TicketStatus::Valid,
            event_starts_at: now + time::Duration::hours(1),
            event_cancelled: false,
            now,
        };
        assert_eq!(decide_accept(&ok), AcceptDecision::Reissue);
        assert_eq!(
            decide_accept(&AcceptCheck {
                caller: &alice,
                ..ok
            }),
            AcceptDecision::Refuse(None, TransferError::NotFound)
        );
        assert_eq!(
            decide_accept(&AcceptCheck {
                event_starts_at: now,
                ..ok
            }),
            AcceptDecision::Refuse(Some(TransferStatus::Expired), TransferError::EventStarted)
        );
        assert_eq!(
            decide_accept(&AcceptCheck {
                ticket_status: TicketStatus::Used,
                ..ok
            }),
            AcceptDecision::Refuse(
                Some(TransferStatus::Cancelled),
                TransferError::NotTransferable(TicketStatus::Used)
            )
        );
        let accepted = Transfer {
            status: TransferStatus::Accepted,
            ..t.clone()
        };
        assert_eq!(
            decide_accept(&AcceptCheck {
                transfer: &accepted,
                ..ok
            }),
            AcceptDecision::Refuse(None, TransferError::NotPending(TransferStatus::Accepted))
        );
        assert_eq!(
            may_cancel(&t, &alice, now + time::Duration::hours(1), false, now),
            Ok(())
        );
        assert_eq!(
            may_cancel(&t, &bob, now + time::Duration::hours(1), false, now),
            Err(TransferError::NotFound)
        );
        assert_eq!(
            may_cancel(&t, &alice, now, false, now),
            Err(TransferError::NotPending(TransferStatus::Expired))
        );
    }
}
