//! The booking rulebook: what each use case does to a booking, its seats, its tickets, its
//! payment and the response stored under its idempotency key — as pure functions of what the
//! store read under its locks.
//!
//! Stores only read, call a rule, and write what it says, in their own SQL and their own
//! transaction (the sandbox PSP's `decide` has the same shape). Both stores therefore check
//! in the same order, refuse with the same errors, and move rows only along the arrows of the
//! state machines in [`crate::booking`] and [`crate::seat`]; the property tests below hold
//! every rule to those arrows.
//!
//! Time: every rule takes `now` as the store saw it *inside* its transaction, after taking
//! its locks (see [`tx_now`]), never a time read before waiting for the database.

use time::OffsetDateTime;

use crate::booking::{Booking, BookingStatus, PaymentStatus, TicketStatus};
use crate::ids::CustomerId;
use crate::ports::{CommitError, CommitOutcome, ReleaseError, Settlement, StoredResponse};
use crate::seat::SeatState;

/// The time a rule runs at: the later of the caller's time and the clock read inside the
/// transaction, so a request that waited for a lock is judged at the time it acts, and a
/// caller that moved its clock forward (tests, an injected clock) is never moved back.
pub fn tx_now(requested: OffsetDateTime, observed: OffsetDateTime) -> OffsetDateTime {
    requested.max(observed)
}

// ---- starting a commit ----------------------------------------------------------------------

/// An idempotency key that is already recorded for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub fingerprint: String,
    /// The final answer, once there is one.
    pub response: Option<StoredResponse>,
}

/// What a commit with an already-recorded key answers: the stored bytes once final, else
/// 409 in flight; the same key with another body is refused whatever its state.
pub fn replay(key: &KeyRecord, fingerprint: &str) -> Result<StoredResponse, CommitError> {
    if key.fingerprint != fingerprint {
        return Err(CommitError::KeyReused);
    }
    key.response.clone().ok_or(CommitError::InFlight)
}

/// Whether a fresh key may start paying for this booking (as read, locked, at `now`).
/// Someone else's booking is indistinguishable from none.
pub fn may_start_commit(
    owner: Option<&CustomerId>,
    status: BookingStatus,
    expires_at: OffsetDateTime,
    customer: &CustomerId,
    now: OffsetDateTime,
) -> Result<(), CommitError> {
    if owner != Some(customer) {
        return Err(CommitError::NotFound);
    }
    match effective(status, expires_at, now) {
        BookingStatus::Hold => Ok(()),
        BookingStatus::Pending => Err(CommitError::PaymentInProgress),
        BookingStatus::Confirmed => Err(CommitError::AlreadyConfirmed),
        BookingStatus::Cancelled | BookingStatus::Expired => Err(CommitError::Gone),
    }
}

/// The status that counts at `now`: an unpaid hold past its expiry is expired, even before
/// anyone has written that down. PENDING never lapses by the clock: money may be moving.
pub fn effective(
    status: BookingStatus,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> BookingStatus {
    if status == BookingStatus::Hold && expires_at <= now {
        BookingStatus::Expired
    } else {
        status
    }
}

// ---- settling a commit ----------------------------------------------------------------------

/// What the payment provider said, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Funds reserved.
    Approved,
    /// The method was refused.
    Declined,
    /// No money moved: the provider refused the request, or says for certain it never saw it.
    Failed,
    /// No answer yet (timeout, provider down, or a lookup that may lag). Not final.
    Unresolved,
}

/// What settling does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleAction {
    /// Nothing changes: the payment was settled before, or there is nothing to do yet.
    Nothing,
    /// PENDING → CONFIRMED: seats PENDING → SOLD, one ticket per seat.
    Confirm,
    /// The booking lapsed while the money was moving: take its seats again if every one is
    /// still free (or still its own) and the customer's limit allows, then confirm; otherwise
    /// it stays lapsed and the authorization is voided.
    Retake,
    /// The booking cannot take this money (already confirmed by another payment, or released
    /// by its owner while the payment was in flight): the authorization is voided.
    Void,
    /// PENDING → HOLD: the buyer may try another method while the hold runs.
    ReturnToHold,
    /// PENDING → EXPIRED: the hold ran out while paying; its seats go back on sale.
    Expire,
}

/// The whole decision for one settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlePlan {
    pub action: SettleAction,
    /// The payment's new status, if it changes.
    pub payment_to: Option<PaymentStatus>,
    /// Whether the response for this outcome is stored under the key. A stored final answer
    /// never changes, and no answer is stored while the outcome is unresolved.
    pub store_response: bool,
}

/// Decides a settlement from the booking and payment as read under lock.
pub fn settle(
    booking: BookingStatus,
    expires_at: OffsetDateTime,
    payment: PaymentStatus,
    answer: Answer,
    response_stored: bool,
    now: OffsetDateTime,
) -> SettlePlan {
    let nothing = SettlePlan {
        action: SettleAction::Nothing,
        payment_to: None,
        store_response: false,
    };
    // A payment given up on (FAILED) may still be approved late: money is then held and must
    // either buy the seats or be released. Every other settled payment stays as it is.
    let open = payment == PaymentStatus::Started
        || (payment == PaymentStatus::Failed && answer == Answer::Approved);
    if !open {
        return nothing;
    }
    let store_response = !response_stored;
    match answer {
        Answer::Approved => SettlePlan {
            action: match booking {
                BookingStatus::Pending => SettleAction::Confirm,
                BookingStatus::Confirmed | BookingStatus::Cancelled => SettleAction::Void,
                BookingStatus::Hold | BookingStatus::Expired => SettleAction::Retake,
            },
            payment_to: Some(PaymentStatus::Authorized),
            store_response,
        },
        Answer::Declined | Answer::Failed => SettlePlan {
            action: match booking {
                BookingStatus::Pending if expires_at > now => SettleAction::ReturnToHold,
                BookingStatus::Pending => SettleAction::Expire,
                _ => SettleAction::Nothing,
            },
            payment_to: Some(if answer == Answer::Declined {
                PaymentStatus::Declined
            } else {
                PaymentStatus::Failed
            }),
            store_response,
        },
        // No answer: wait. Once the hold has run out the seats go back on sale, but the
        // payment stays STARTED and is asked about again until the provider answers.
        Answer::Unresolved => SettlePlan {
            action: match booking {
                BookingStatus::Pending if expires_at <= now => SettleAction::Expire,
                _ => SettleAction::Nothing,
            },
            payment_to: None,
            store_response: false,
        },
    }
}

/// The outcome of a commit that was settled before, or is still open, from what is stored.
pub fn settled_outcome(payment: PaymentStatus, booking: Booking) -> CommitOutcome {
    match payment {
        PaymentStatus::Declined | PaymentStatus::Failed => CommitOutcome::NotPaid {
            booking,
            reason: "the payment did not go through".into(),
        },
        PaymentStatus::Started => CommitOutcome::Unresolved(booking),
        _ if booking.status == BookingStatus::Confirmed => CommitOutcome::Confirmed(booking),
        _ => CommitOutcome::Lapsed(booking),
    }
}

/// The outcome of a settlement that did not pay, with the booking as it now stands.
/// What a booking paid for and back on hold records as its `status_reason`: the last payment
/// was declined or failed, and the hold stays. A status stream opened after that learns the
/// outcome from it; a new commit clears it.
pub fn returned_to_hold_reason(settlement: &Settlement) -> &'static str {
    match settlement {
        Settlement::Declined { .. } => RETURNED_DECLINED,
        _ => RETURNED_FAILED,
    }
}

/// The `status_reason` of a hold whose payment was declined.
pub const RETURNED_DECLINED: &str = "payment-declined";
/// The `status_reason` of a hold whose payment failed.
pub const RETURNED_FAILED: &str = "payment-failed";

pub fn unpaid_outcome(settlement: &Settlement, booking: Booking) -> CommitOutcome {
    match settlement {
        Settlement::Declined { reason } | Settlement::Failed { reason } => CommitOutcome::NotPaid {
            booking,
            reason: reason.clone(),
        },
        Settlement::Approved { .. } | Settlement::Unresolved => CommitOutcome::Unresolved(booking),
    }
}

/// Whether a seat can be taken again by a lapsed booking whose late payment was approved:
/// free (open, or a hold that ran out), or still its own. `Some(was_open)` if so.
pub fn retake_seat(
    state: SeatState,
    hold_expires_at: Option<OffsetDateTime>,
    ours: bool,
    now: OffsetDateTime,
) -> Option<bool> {
    match state.effective(hold_expires_at, now) {
        SeatState::Open => Some(state == SeatState::Open),
        SeatState::Hold | SeatState::Pending if ours => Some(false),
        _ => None,
    }
}

// ---- ending holds -----------------------------------------------------------------------------

/// What releasing a booking (its owner or an admin deleting it) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseAction {
    /// End the hold: seats back on sale, the booking in this final status.
    End(BookingStatus),
    /// Already final: answer with it as it is.
    Unchanged,
}

pub fn release(
    status: BookingStatus,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<ReleaseAction, ReleaseError> {
    match status {
        BookingStatus::Hold if expires_at <= now => Ok(ReleaseAction::End(BookingStatus::Expired)),
        BookingStatus::Hold => Ok(ReleaseAction::End(BookingStatus::Cancelled)),
        BookingStatus::Pending => Err(ReleaseError::PaymentInProgress),
        BookingStatus::Confirmed => Err(ReleaseError::WrongStatus(status)),
        BookingStatus::Cancelled | BookingStatus::Expired => Ok(ReleaseAction::Unchanged),
    }
}

/// Whether the sweeper, or another hold of the same customer, may end this booking: only an
/// unpaid HOLD whose time is up. A PENDING booking is never ended by anyone's hold.
pub fn lapsed(status: BookingStatus, expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    status == BookingStatus::Hold && expires_at <= now
}

// ---- cancelling and revoking confirmed bookings ---------------------------------------------------

/// Whether the owner of a booking confirmed at `confirmed_at` may still cancel it for a
/// refund: within `window_hours` of confirmation, and before the event starts.
pub fn refund_window_open(
    confirmed_at: OffsetDateTime,
    window_hours: u32,
    starts_at: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    now < confirmed_at + time::Duration::hours(i64::from(window_hours)) && now < starts_at
}

/// What cancelling a confirmed booking (its owner, within the refund window) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAction {
    /// Tickets VOID, SOLD seats back on sale, payment AUTHORIZED/CAPTURED → REFUND_PENDING.
    Cancel,
    /// Already cancelled or expired: nothing changes.
    Unchanged,
}

pub fn cancel(
    status: BookingStatus,
    tickets: &[TicketStatus],
    resale: bool,
) -> Result<CancelAction, ReleaseError> {
    match status {
        BookingStatus::Confirmed if resale => Err(ReleaseError::ResaleFinal),
        BookingStatus::Confirmed if tickets.contains(&TicketStatus::Used) => {
            Err(ReleaseError::TicketUsed)
        }
        BookingStatus::Confirmed if tickets.contains(&TicketStatus::Listed) => {
            Err(ReleaseError::TicketListed)
        }
        BookingStatus::Confirmed if tickets.contains(&TicketStatus::Reissued) => {
            Err(ReleaseError::TicketReissued)
        }
        BookingStatus::Confirmed => Ok(CancelAction::Cancel),
        BookingStatus::Cancelled | BookingStatus::Expired => Ok(CancelAction::Unchanged),
        s => Err(ReleaseError::WrongStatus(s)),
    }
}

/// Why the money behind a confirmed booking is gone, as the provider told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The capture was finally refused (authorization expired or declined): no money came.
    CaptureFailed,
    /// The payment was refunded at the provider (dashboard, support).
    RefundedAtProvider,
    /// The customer's bank opened a dispute: the funds are withdrawn.
    Disputed,
}

impl Revocation {
    /// The stable reason shown on the booking (`statusReason`).
    pub fn reason(self) -> &'static str {
        match self {
            Revocation::CaptureFailed => "payment-capture-failed",
            Revocation::RefundedAtProvider => "payment-refunded",
            Revocation::Disputed => "payment-disputed",
        }
    }

    /// The payment's status once revoked: no money was taken, or it went back.
    pub fn payment_status(self) -> PaymentStatus {
        match self {
            Revocation::CaptureFailed => PaymentStatus::Voided,
            Revocation::RefundedAtProvider | Revocation::Disputed => PaymentStatus::Refunded,
        }
    }
}

/// What revoking does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeAction {
    /// CONFIRMED → CANCELLED with the reason: every ticket VOID (a used one too: it was never
    /// paid for), SOLD seats back on sale, payment to [`Revocation::payment_status`].
    Revoke,
    /// The booking is already over; only the payment's status is brought in line.
    PaymentOnly,
    /// Nothing to do (the payment is already settled that way, or was never taken).
    Nothing,
}

pub fn revoke(booking: BookingStatus, payment: PaymentStatus, why: Revocation) -> RevokeAction {
    let money_held = match why {
        // Only a reservation can fail to be captured.
        Revocation::CaptureFailed => payment == PaymentStatus::Authorized,
        Revocation::RefundedAtProvider | Revocation::Disputed => matches!(
            payment,
            PaymentStatus::Authorized | PaymentStatus::Captured | PaymentStatus::RefundPending
        ),
    };
    if !money_held {
        return RevokeAction::Nothing;
    }
    match booking {
        BookingStatus::Confirmed => RevokeAction::Revoke,
        _ => RevokeAction::PaymentOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const BOOKINGS: [BookingStatus; 5] = [
        BookingStatus::Hold,
        BookingStatus::Pending,
        BookingStatus::Confirmed,
        BookingStatus::Cancelled,
        BookingStatus::Expired,
    ];
    const PAYMENTS: [PaymentStatus; 8] = [
        PaymentStatus::Started,
        PaymentStatus::Authorized,
        PaymentStatus::Captured,
        PaymentStatus::Declined,
        PaymentStatus::Failed,
        PaymentStatus::Voided,
        PaymentStatus::RefundPending,
        PaymentStatus::Refunded,
    ];
    const ANSWERS: [Answer; 4] = [
        Answer::Approved,
        Answer::Declined,
        Answer::Failed,
        Answer::Unresolved,
    ];

    fn at(offset_secs: i64) -> OffsetDateTime {
        datetime!(2027-01-01 12:00 UTC) + time::Duration::seconds(offset_secs)
    }

    /// The booking status an action leads to, when it changes it.
    fn booking_after(action: SettleAction, from: BookingStatus) -> Option<BookingStatus> {
        match action {
            SettleAction::Confirm | SettleAction::Retake => Some(BookingStatus::Confirmed),
            SettleAction::ReturnToHold => Some(BookingStatus::Hold),
            SettleAction::Expire => Some(BookingStatus::Expired),
            SettleAction::Nothing | SettleAction::Void => {
                let _ = from;
                None
            }
        }
    }

    proptest! {
        #[test]
        fn settlements_follow_the_state_machines(
            b in 0usize..5, p in 0usize..8, a in 0usize..4,
            stored in any::<bool>(), exp in -600i64..600,
        ) {
            let (booking, payment, answer) = (BOOKINGS[b], PAYMENTS[p], ANSWERS[a]);
            let plan = settle(booking, at(exp), payment, answer, stored, at(0));
            // A stored final answer never changes.
            if stored {
                prop_assert!(!plan.store_response);
            }
            // Settled payments stay settled (a late approval of a given-up one aside).
            if payment != PaymentStatus::Started
                && !(payment == PaymentStatus::Failed && answer == Answer::Approved)
            {
                prop_assert_eq!(plan, SettlePlan { action: SettleAction::Nothing, payment_to: None, store_response: false });
            }
            // Only a PENDING booking is confirmed directly; a lapsed one must retake.
            if plan.action == SettleAction::Confirm {
                prop_assert_eq!(booking, BookingStatus::Pending);
            }
            if let Some(to) = booking_after(plan.action, booking)
                && plan.action != SettleAction::Retake
            {
                prop_assert!(booking.can_become(to), "{:?} -> {:?}", booking, to);
            }
            // No answer is never a final answer: nothing is stored and the payment stays open.
            if answer == Answer::Unresolved {
                prop_assert!(!plan.store_response);
                prop_assert_eq!(plan.payment_to, None);
                // …and a hold that still runs is left alone.
                if exp > 0 {
                    prop_assert_eq!(plan.action, SettleAction::Nothing);
                }
            }
            // Approval always ends with the money accounted for: it buys or it is voided.
            if answer == Answer::Approved && plan.action != SettleAction::Nothing {
                prop_assert_eq!(plan.payment_to, Some(PaymentStatus::Authorized));
            }
        }

        #[test]
        fn only_unpaid_holds_lapse(b in 0usize..5, exp in -600i64..600) {
            let status = BOOKINGS[b];
            let l = lapsed(status, at(exp), at(0));
            prop_assert_eq!(l, status == BookingStatus::Hold && exp <= 0);
            if l {
                prop_assert!(status.can_become(BookingStatus::Expired));
            }
        }

        #[test]
        fn releases_follow_the_state_machine(b in 0usize..5, exp in -600i64..600) {
            let status = BOOKINGS[b];
            if let Ok(ReleaseAction::End(to)) = release(status, at(exp), at(0)) {
                prop_assert!(status.can_become(to));
                prop_assert_eq!(to == BookingStatus::Expired, exp <= 0);
            }
        }

        #[test]
        fn commits_start_only_from_a_running_hold_of_the_owner(
            b in 0usize..5, exp in -600i64..600, mine in any::<bool>(),
        ) {
            let me = CustomerId::parse("alice").unwrap();
            let other = CustomerId::parse("bob").unwrap();
            let owner = if mine { &me } else { &other };
            let r = may_start_commit(Some(owner), BOOKINGS[b], at(exp), &me, at(0));
            prop_assert_eq!(r.is_ok(), mine && BOOKINGS[b] == BookingStatus::Hold && exp > 0);
            if !mine {
                prop_assert!(matches!(r, Err(CommitError::NotFound)));
            }
        }

        #[test]
        fn revocations_leave_no_money_behind_a_cancelled_booking(
            b in 0usize..5, p in 0usize..8, w in 0usize..3,
        ) {
            let why = [Revocation::CaptureFailed, Revocation::RefundedAtProvider, Revocation::Disputed][w];
            let (booking, payment) = (BOOKINGS[b], PAYMENTS[p]);
            match revoke(booking, payment, why) {
                RevokeAction::Revoke => {
                    prop_assert!(booking.can_become(BookingStatus::Cancelled));
                    prop_assert!(matches!(why.payment_status(), PaymentStatus::Voided | PaymentStatus::Refunded));
                }
                RevokeAction::PaymentOnly => prop_assert!(booking != BookingStatus::Confirmed),
                RevokeAction::Nothing => prop_assert!(
                    matches!(
                        payment,
                        PaymentStatus::Started | PaymentStatus::Declined | PaymentStatus::Failed
                            | PaymentStatus::Voided | PaymentStatus::Refunded
                    ) || (why == Revocation::CaptureFailed && payment != PaymentStatus::Authorized)
                ),
            }
        }
    }

    #[test]
    fn replays_check_the_body_before_the_state() {
        let done = KeyRecord {
            fingerprint: "a".into(),
            response: Some(StoredResponse {
                status: 200,
                body: b"{}".to_vec(),
            }),
        };
        assert!(matches!(replay(&done, "b"), Err(CommitError::KeyReused)));
        assert_eq!(replay(&done, "a").unwrap().status, 200);
        let in_flight = KeyRecord {
            fingerprint: "a".into(),
            response: None,
        };
        assert!(matches!(
            replay(&in_flight, "a"),
            Err(CommitError::InFlight)
        ));
        assert!(matches!(
            replay(&in_flight, "b"),
            Err(CommitError::KeyReused)
        ));
    }

    #[test]
    fn a_used_ticket_cannot_be_refunded() {
        use TicketStatus::*;
        assert!(matches!(
            cancel(BookingStatus::Confirmed, &[Valid, Used], false),
            Err(ReleaseError::TicketUsed)
        ));
        assert!(matches!(
            cancel(BookingStatus::Confirmed, &[Valid, Listed], false),
            Err(ReleaseError::TicketListed)
        ));
        assert!(matches!(
            cancel(BookingStatus::Confirmed, &[Reissued, Valid], false),
            Err(ReleaseError::TicketReissued)
        ));
        assert!(matches!(
            cancel(BookingStatus::Confirmed, &[Valid], true),
            Err(ReleaseError::ResaleFinal)
        ));
        assert_eq!(
            cancel(BookingStatus::Confirmed, &[Valid, Valid], false).unwrap(),
            CancelAction::Cancel
        );
        assert_eq!(
            cancel(BookingStatus::Cancelled, &[Void], false).unwrap(),
            CancelAction::Unchanged
        );
        assert!(cancel(BookingStatus::Hold, &[], false).is_err());
    }

    #[test]
    fn retaking_seats() {
        let now = at(0);
        assert_eq!(retake_seat(SeatState::Open, None, false, now), Some(true));
        assert_eq!(
            retake_seat(SeatState::Hold, Some(at(-1)), false, now),
            Some(false)
        );
        assert_eq!(retake_seat(SeatState::Hold, Some(at(60)), false, now), None);
        assert_eq!(
            retake_seat(SeatState::Hold, Some(at(60)), true, now),
            Some(false)
        );
        assert_eq!(
            retake_seat(SeatState::Pending, Some(at(-60)), true, now),
            Some(false)
        );
        assert_eq!(
            retake_seat(SeatState::Pending, Some(at(-60)), false, now),
            None
        );
        assert_eq!(retake_seat(SeatState::Sold, None, true, now), None);
    }

    #[test]
    fn a_late_approval_of_a_given_up_payment_keeps_the_stored_answer() {
        let plan = settle(
            BookingStatus::Expired,
            at(-60),
            PaymentStatus::Failed,
            Answer::Approved,
            true,
            at(0),
        );
        assert_eq!(plan.action, SettleAction::Retake);
        assert!(!plan.store_response);
    }
}
