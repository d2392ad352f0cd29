//! The booking flow: holds, paying exactly once, cancelling, and repairing what a crash left
//! half done. Handlers and the background workers both go through [`BookingService`], so a
//! commit settled by the request and one settled by the reconciler follow the same rules and
//! render the same response.
//!
//! Paying is two store transactions around one provider call, never a call inside a
//! transaction:
//! 1. `begin_commit`: the idempotency key, a STARTED payment, HOLD→PENDING, atomically;
//! 2. `authorize` at the provider, with our key forwarded, under a timeout;
//! 3. `finish_commit`: tickets issued and the response stored under the key, atomically;
//! 4. `capture` at the provider — money is only ever taken once tickets exist.
//!
//! If the process dies anywhere in between, the payment stays STARTED or AUTHORIZED and the
//! reconciler ([`BookingService::reconcile`]) later asks the provider what happened, by key,
//! and finishes the job.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use boxoffice_domain::booking::{Booking, BookingStatus, NewTicket, Payment, PaymentStatus};
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{BookingId, EventId, PaymentId, TicketId};
use boxoffice_domain::payments::{
    Authorization, PaymentError, PaymentProvider, PaymentRequest, PaymentState,
};
use boxoffice_domain::ports::{
    Clock, CommitFinish, CommitOutcome, RenderCommit, Settlement, Store, StoreError, StoredResponse,
};
use boxoffice_domain::rules::Revocation;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::Problem;
use crate::tickets::{TicketClaims, TicketSigner};

/// Tunables of the booking flow.
#[derive(Debug, Clone)]
pub struct BookingConfig {
    /// How long a hold lasts.
    pub hold_ttl: Duration,
    /// How long we wait for the payment provider before treating the outcome as unknown.
    pub provider_timeout: Duration,
    /// A payment left unsettled this long is reconciled with the provider. Must exceed
    /// `provider_timeout`, so that requests still waiting are left alone.
    pub reconcile_after: Duration,
    /// A payment still unsettled this long is reported in the logs as an alert.
    pub alert_after: Duration,
    /// The platform's fee on a resale, in basis points of the price.
    pub resale_fee_basis_points: u32,
    /// Every commit goes through the commit queue (202 and a status stream), not only those of
    /// waiting-room events.
    pub queued_commits: bool,
}

impl Default for BookingConfig {
    fn default() -> Self {
        Self {
            hold_ttl: Duration::from_secs(300),
            provider_timeout: Duration::from_secs(10),
            reconcile_after: Duration::from_secs(30),
            alert_after: Duration::from_secs(15 * 60),
            resale_fee_basis_points: 1_000,
            queued_commits: false,
        }
    }
}

/// The provider reference recorded for a booking that costs nothing: no provider is asked.
pub const FREE: &str = "free";

/// The booking use cases over a store, a payment provider and the ticket key.
#[derive(Debug, Clone)]
pub struct BookingService {
    pub store: Arc<dyn Store>,
    pub payments: Arc<dyn PaymentProvider>,
    pub tickets: Arc<TicketSigner>,
    pub clock: Arc<dyn Clock>,
    pub config: BookingConfig,
    /// Payments being reconciled on this node right now: a webhook and the periodic pass
    /// never work on the same payment at once.
    pub in_flight: Arc<std::sync::Mutex<std::collections::HashSet<PaymentId>>>,
    /// Captures are recorded a group at a time.
    pub captures: crate::group_commit::CaptureLog,
    /// The hold gate (scaled out), told when seats go back on sale here.
    pub holds: crate::hold_gate::Gate,
}

/// A seat as bookings show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookedSeatResponse {
    pub seat_id: String,
    /// The section's name.
    pub section: String,
    pub row: Option<String>,
    pub number: u32,
    pub price_cents: i64,
}

/// A ticket as its holder sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketResponse {
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    pub seat_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: boxoffice_domain::ids::EventId,
    #[schema(value_type = String, format = Uuid)]
    pub booking_id: BookingId,
    /// VALID, USED or VOID.
    pub status: String,
    /// Ed25519-signed token for the door; verify with `/.well-known/ticket-keys.json`.
    pub token: String,
    pub attendee_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_in_at: Option<OffsetDateTime>,
}

impl From<&boxoffice_domain::booking::Ticket> for TicketResponse {
    fn from(t: &boxoffice_domain::booking::Ticket) -> Self {
        Self {
            ticket_id: t.id,
            seat_id: t.seat_id.to_string(),
            event_id: t.event_id,
            booking_id: t.booking_id,
            status: t.status.as_str().to_owned(),
            token: t.token.clone(),
            attendee_name: t.attendee_name.clone(),
            issued_at: t.issued_at,
            checked_in_at: t.checked_in_at,
        }
    }
}

/// A booking, in every state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingResponse {
    #[schema(value_type = String, format = Uuid)]
    pub booking_id: BookingId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: boxoffice_domain::ids::EventId,
    /// HOLD, PENDING, CONFIRMED, CANCELLED or EXPIRED.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub seats: Vec<BookedSeatResponse>,
    pub total_cents: i64,
    pub currency: String,
    pub contact_email: Option<String>,
    pub tickets: Vec<TicketResponse>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub confirmed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancelled_at: Option<OffsetDateTime>,
    /// Why the booking ended when its owner did not end it: `payment-capture-failed`,
    /// `payment-refunded` or `payment-disputed`; on a hold, why its last payment did not go
    /// through (`payment-declined`, `payment-failed`: the seats stay held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

impl BookingResponse {
    /// `status` is the effective one at `now` (an unpaid hold past its time is EXPIRED).
    pub fn new(b: &Booking, event: &Event, now: OffsetDateTime) -> Self {
        Self {
            booking_id: b.id,
            event_id: b.event_id,
            status: b.effective_status(now).as_str().to_owned(),
            expires_at: b.expires_at,
            seats: b
                .seats
                .iter()
                .map(|s| BookedSeatResponse {
                    seat_id: s.seat_id.to_string(),
                    section: event
                        .spec
                        .section(s.section)
                        .map(|x| x.name.clone())
                        .unwrap_or_default(),
                    row: s.row.clone(),
                    number: s.number,
                    price_cents: s.price.cents(),
                })
                .collect(),
            total_cents: b.total_cents,
            currency: b.currency.to_string(),
            contact_email: b.contact_email.clone(),
            // A ticket given away stays with its booking for the books, but it is the
            // recipient's now: the booking's owner never sees its token.
            tickets: b
                .tickets
                .iter()
                .filter(|t| t.customer == b.customer)
                .map(TicketResponse::from)
                .collect(),
            created_at: b.created_at,
            confirmed_at: b.confirmed_at,
            cancelled_at: b.cancelled_at,
            status_reason: b.status_reason.clone(),
        }
    }
}

/// The response stored under an idempotency key for each commit outcome. Deterministic in the
/// outcome, so the request and the reconciler store the same bytes.
pub fn commit_renderer(event: Arc<Event>) -> RenderCommit {
    Arc::new(move |outcome: &CommitOutcome| {
        let (status, body) = match outcome {
            // A confirmed booking's status does not depend on the time it is read at.
            CommitOutcome::Confirmed(b) => (
                StatusCode::OK,
                serde_json::to_vec(&BookingResponse::new(
                    b,
                    &event,
                    b.confirmed_at.unwrap_or(b.created_at),
                )),
            ),
            CommitOutcome::NotPaid { booking, reason } => (
                StatusCode::PAYMENT_REQUIRED,
                serde_json::to_vec(
                    &Problem::new(
                        StatusCode::PAYMENT_REQUIRED,
                        "payment-declined",
                        "The payment did not go through",
                    )
                    .detail(reason.clone())
                    .with("bookingId", booking.id.to_string())
                    .with("bookingStatus", booking.status.as_str()),
                ),
            ),
            CommitOutcome::Unresolved(b) => (
                StatusCode::ACCEPTED,
                serde_json::to_vec(&BookingResponse::new(b, &event, b.created_at)),
            ),
            CommitOutcome::Lapsed(b) => (
                StatusCode::CONFLICT,
                serde_json::to_vec(
                    &Problem::new(
                        StatusCode::CONFLICT,
                        "booking-lapsed",
                        "The hold ran out and its seats were sold; the payment was voided",
                    )
                    .with("bookingId", b.id.to_string()),
                ),
            ),
        };
        StoredResponse {
            status: status.as_u16(),
            body: body.unwrap_or_default(),
        }
    })
}

/// Digest of what a commit asks for: the same key with another body is refused.
pub fn fingerprint(booking_id: BookingId, method: &str) -> String {
    hex(&Sha256::digest(format!("commit\n{booking_id}\n{method}")))
}

/// The key forwarded to the provider: derived from the customer and their key, so retries of
/// one request carry one key and two customers' keys never collide at the provider.
pub fn provider_key(customer: &str, key: &str) -> String {
    format!(
        "bo_{}",
        &hex(&Sha256::digest(format!("{customer}\n{key}")))[..48]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a commit request ended in, for the handler to answer.
#[derive(Debug)]
pub enum CommitReply {
    /// A settled outcome: exactly these bytes, also stored under the key.
    Stored(StoredResponse),
    /// The provider gave no answer in time; the booking is PENDING and will be reconciled.
    Pending(Box<Booking>),
}

impl BookingService {
    async fn with_timeout<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        match tokio::time::timeout(self.config.provider_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(PaymentError::Timeout),
        }
    }

    /// One signed ticket per seat of the booking, its token valid until a day after the
    /// event starts.
    pub fn issue_tickets(
        &self,
        booking: &Booking,
        event: &Event,
        now: OffsetDateTime,
    ) -> Vec<NewTicket> {
        debug_assert_eq!(booking.event_id, event.id);
        booking
            .seats
            .iter()
            .map(|s| {
                let id = TicketId::new_in(event.id.slot());
                NewTicket {
                    id,
                    seat_id: s.seat_id.clone(),
                    token: self.tickets.sign(&TicketClaims::new(
                        id,
                        event,
                        booking.id,
                        s.seat_id.clone(),
                        now,
                    )),
                }
            })
            .collect()
    }

    /// Steps 2–4 for a commit whose step 1 succeeded.
    pub async fn charge(
        &self,
        event: Arc<Event>,
        booking: Booking,
        payment: Payment,
    ) -> Result<CommitReply, StoreError> {
        let req = PaymentRequest {
            idempotency_key: payment.idempotency_key.clone(),
            amount_cents: payment.amount_cents,
            currency: payment.currency,
            method: payment.method.clone(),
            description: format!("{} ({} tickets)", event.spec.name, booking.seats.len()),
            booking_ref: booking.id.to_string(),
        };
        // A booking that costs nothing is not a payment: no provider is asked.
        let answer = if payment.amount_cents == 0 {
            Ok(Authorization::Approved {
                provider_ref: FREE.to_owned(),
            })
        } else {
            self.with_timeout(self.payments.authorize(&req)).await
        };
        let settlement = match answer {
            Ok(Authorization::Approved { provider_ref }) => Settlement::Approved {
                provider_ref,
                tickets: self.issue_tickets(&booking, &event, self.clock.now()),
            },
            Ok(Authorization::Declined { reason }) => Settlement::Declined { reason },
            Err(PaymentError::Rejected(reason)) => {
                tracing::error!(booking_id = %booking.id, %reason, "payment provider rejected the request");
                Settlement::Failed {
                    reason: "The payment provider could not process this payment.".into(),
                }
            }
            Err(e) => {
                tracing::warn!(booking_id = %booking.id, error = %e, "payment outcome unknown; left for reconciliation");
                return Ok(CommitReply::Pending(Box::new(booking)));
            }
        };
        let finished = self.settle(&event, &booking, &payment, settlement).await?;
        Ok(CommitReply::Stored(finished))
    }

    /// Step 3 and 4: record the provider's answer, then capture or void as it requires.
    async fn settle(
        &self,
        event: &Arc<Event>,
        booking: &Booking,
        payment: &Payment,
        settlement: Settlement,
    ) -> Result<StoredResponse, StoreError> {
        let finished = self
            .store
            .finish_commit(&CommitFinish {
                booking_id: booking.id,
                event_id: booking.event_id,
                payment_id: payment.id,
                settlement,
                now: self.clock.now(),
                render: commit_renderer(event.clone()),
            })
            .await?;
        match (&finished.outcome, &finished.payment.provider_ref) {
            (CommitOutcome::Confirmed(_), Some(r))
                if finished.payment.status == PaymentStatus::Authorized =>
            {
                // A failure is retried by the reconciler.
                let _ = self.capture(&finished.payment, r).await;
                // Paid for an event cancelled while the money was moving: it is refunded
                // like every other booking of that event.
                if event.cancelled_at.is_some()
                    && let Err(e) = self.cancel_event(event.id).await
                {
                    tracing::warn!(event_id = %event.id, error = %e, "refund after cancellation deferred to the reconciler");
                }
            }
            (CommitOutcome::Lapsed(_), Some(r))
                if finished.payment.status == PaymentStatus::Authorized =>
            {
                let _ = self.void(&finished.payment, r).await;
            }
            _ => {}
        }
        if let CommitOutcome::Lapsed(b) = &finished.outcome {
            // The hold ran out while the money moved: its seats are back on sale.
            self.holds.released(b).await;
        }
        Ok(finished.response)
    }

    /// Takes the money of a confirmed booking. A refusal the provider means (the
    /// authorization expired or was declined) revokes the booking: its tickets void, its seats
    /// back on sale, the booking saying why. Anything else is retried by the reconciler.
    async fn capture(&self, p: &Payment, provider_ref: &str) -> Result<(), PaymentError> {
        if provider_ref != FREE {
            let key = format!("{}_capture", p.idempotency_key);
            match self
                .with_timeout(self.payments.capture(provider_ref, &key))
                .await
            {
                Ok(()) => {}
                Err(PaymentError::Rejected(reason)) => {
                    tracing::error!(payment_id = %p.id, %reason, "capture refused; revoking the booking");
                    // Release whatever is still reserved; the booking goes either way.
                    let _ = self
                        .with_timeout(
                            self.payments
                                .void(provider_ref, &format!("{}_void", p.idempotency_key)),
                        )
                        .await;
                    if let Some(b) = self
                        .store
                        .revoke(p.key(), Revocation::CaptureFailed, self.clock.now())
                        .await
                        .map_err(|e| PaymentError::Unavailable(e.to_string()))?
                    {
                        self.holds.released(&b).await;
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(payment_id = %p.id, error = %e, "capture failed; the reconciler will retry");
                    return Err(e);
                }
            }
        }
        if let Err(e) = self
            .captures
            .record(&self.store, &self.clock, p.key())
            .await
        {
            tracing::warn!(payment_id = %p.id, error = %e, "captured, but not recorded yet; the reconciler will");
        }
        Ok(())
    }

    async fn void(&self, p: &Payment, provider_ref: &str) -> Result<(), PaymentError> {
        if provider_ref != FREE {
            let key = format!("{}_void", p.idempotency_key);
            if let Err(e) = self
                .with_timeout(self.payments.void(provider_ref, &key))
                .await
            {
                tracing::warn!(payment_id = %p.id, error = %e, "void failed; the reconciler will retry");
                return Err(e);
            }
        }
        let _ = self
            .store
            .set_payment_status(
                p.key(),
                &[PaymentStatus::Authorized],
                PaymentStatus::Voided,
                self.clock.now(),
            )
            .await;
        Ok(())
    }

    /// Gives a cancelled booking's money back (or releases it if never captured). The payment
    /// is addressed by the provider's own reference, which is strongly consistent; an answer
    /// that does not settle it is an error, so the reconciler asks again later.
    pub async fn refund(&self, p: &Payment) -> Result<(), PaymentError> {
        let to = match p.provider_ref.as_deref() {
            None | Some(FREE) => PaymentStatus::Refunded,
            Some(provider_ref) => {
                let state = self
                    .with_timeout(self.payments.retrieve(provider_ref))
                    .await?;
                match state {
                    PaymentState::Authorized { .. } => {
                        self.with_timeout(
                            self.payments
                                .void(provider_ref, &format!("{}_void", p.idempotency_key)),
                        )
                        .await?;
                        PaymentStatus::Voided
                    }
                    PaymentState::Captured { .. } => {
                        self.with_timeout(self.payments.refund(
                            provider_ref,
                            p.amount_cents,
                            &format!("{}_refund", p.idempotency_key),
                        ))
                        .await?;
                        PaymentStatus::Refunded
                    }
                    PaymentState::Refunded { .. } => PaymentStatus::Refunded,
                    PaymentState::Voided { .. } | PaymentState::Declined => PaymentStatus::Voided,
                    PaymentState::Unknown => {
                        return Err(PaymentError::Unavailable(
                            "the provider does not know this payment yet".into(),
                        ));
                    }
                }
            }
        };
        if let Err(e) = self
            .store
            .set_payment_status(
                p.key(),
                &[PaymentStatus::RefundPending],
                to,
                self.clock.now(),
            )
            .await
        {
            tracing::warn!(payment_id = %p.id, error = %e, "refunded, but not recorded yet");
        }
        Ok(())
    }

    /// Expires lapsed holds; returns how many.
    pub async fn sweep(&self) -> Result<u32, StoreError> {
        let mut total = 0;
        loop {
            let n = self.store.expire_holds(self.clock.now(), 500).await?;
            total += n;
            if n < 500 {
                return Ok(total);
            }
        }
    }

    /// Settles the payments left unsettled for longer than `reconcile_after` (long enough
    /// that no live request can still be waiting on them, on this node or another) whose own
    /// next attempt is due. A payment that cannot be settled yet is deferred with exponential
    /// back-off, so payments the provider keeps failing on never block the others. Returns how
    /// many it settled.
    pub async fn reconcile(&self) -> Result<u32, StoreError> {
        let now = self.clock.now();
        let before = now - self.config.reconcile_after;
        let mut settled = 0;
        for p in self.store.unsettled_payments(before, now, 200).await? {
            // One payment that fails (even in the database) never holds up the others: it is
            // deferred, and the pass goes on.
            match self.reconcile_payment(&p, None).await {
                Ok(true) => settled += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(payment_id = %p.id, error = %e, "could not reconcile yet")
                }
            }
        }
        self.report_backlog().await?;
        self.finish_cancelled_events(now).await?;
        self.pay_out(now).await?;
        Ok(settled)
    }

    /// Cancels an event (see [`Store::cancel_event`]) and starts every refund it owes; a
    /// refund the provider cannot take now is retried by the reconciler. Returns how many
    /// refunds were started.
    pub async fn cancel_event(&self, event: EventId) -> Result<usize, StoreError> {
        let owed = self.store.cancel_event(event, self.clock.now()).await?;
        for p in &owed {
            if let Err(e) = self.refund(p).await {
                tracing::warn!(payment_id = %p.id, error = %e, "refund deferred to the reconciler");
            }
        }
        if !owed.is_empty() {
            tracing::info!(event_id = %event, refunds = owed.len(), "event cancelled");
        }
        Ok(owed.len())
    }

    /// Applies the cancellation of recently cancelled events again: a booking whose payment
    /// was still in flight when its event was cancelled is refunded once it confirms.
    async fn finish_cancelled_events(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        // Card authorizations live about a week: anything still paying then has settled.
        let since = now - time::Duration::days(8);
        for event in self.store.cancelled_events(since).await? {
            self.cancel_event(event).await?;
        }
        Ok(())
    }

    /// Pays sellers the resales whose payout is due (after the event), through the provider.
    /// A provider that cannot pay out (no connected account) leaves them SCHEDULED, reported.
    async fn pay_out(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let due = self.store.due_payouts(now, 100).await?;
        let mut waiting = 0u64;
        for p in &due {
            let key = format!("payout_{}", p.id);
            match self
                .with_timeout(self.payments.payout(
                    p.seller.as_str(),
                    p.amount_cents,
                    p.currency,
                    &key,
                ))
                .await
            {
                Ok(Some(provider_ref)) => {
                    self.store
                        .mark_payout_paid(p.id, &provider_ref, self.clock.now())
                        .await?;
                }
                Ok(None) => waiting += 1,
                Err(e) => {
                    waiting += 1;
                    tracing::warn!(payout_id = %p.id, error = %e, "payout failed; retried later");
                }
            }
        }
        metrics::gauge!("payouts_due_unpaid").set(waiting as f64);
        Ok(())
    }

    /// Settles one payment now, unless this node is already working on it (single flight).
    /// A failure is recorded on the payment with its next attempt time.
    /// `known_ref` is the provider's reference for the payment when the caller learnt it (a
    /// webhook names it): then the payment is read by reference, consistently, instead of
    /// looked up by key.
    pub async fn reconcile_payment(
        &self,
        p: &Payment,
        known_ref: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(_guard) = InFlight::claim(&self.in_flight, p.id) else {
            return Ok(false);
        };
        match self.reconcile_one(p, known_ref).await {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.defer(p, "not settled yet").await?;
                Ok(false)
            }
            Err(ReconcileError::Store(e)) => {
                // Best effort: if the database is down, this fails too and the payment is
                // simply due again on the next pass.
                let _ = self.defer(p, &e.to_string()).await;
                Err(e)
            }
            Err(ReconcileError::Payment(e)) => {
                tracing::warn!(payment_id = %p.id, attempts = p.attempts + 1, error = %e, "could not reconcile yet");
                self.defer(p, &e.to_string()).await?;
                Ok(false)
            }
        }
    }

    async fn defer(&self, p: &Payment, error: &str) -> Result<(), StoreError> {
        let next = self.clock.now() + retry_delay(p.attempts, self.config.reconcile_after);
        self.store.defer_payment(p.key(), next, error).await
    }

    /// Publishes the unsettled backlog and its oldest age in `/metrics`, and alerts in the
    /// logs when a payment has stayed unsettled too long.
    pub async fn report_backlog(&self) -> Result<(), StoreError> {
        let backlog = self.store.payment_backlog().await?;
        let age = backlog
            .oldest
            .map(|t| (self.clock.now() - t).as_seconds_f64().max(0.0))
            .unwrap_or(0.0);
        metrics::gauge!("payments_unsettled").set(backlog.unsettled as f64);
        metrics::gauge!("payments_unsettled_oldest_age_seconds").set(age);
        if age > self.config.alert_after.as_secs_f64() {
            tracing::error!(
                unsettled = backlog.unsettled,
                oldest_age_seconds = age as u64,
                "ALERT: a payment has stayed unsettled for too long"
            );
        }
        Ok(())
    }

    /// Settles the payment the provider names in a webhook (by its reference), and applies a
    /// refund or dispute made at the provider: the booking is revoked.
    pub async fn on_provider_event(
        &self,
        provider_ref: &str,
        provider_key: Option<&str>,
        revocation: Option<Revocation>,
    ) -> Result<(), StoreError> {
        let Some(p) = self
            .store
            .payment_by_ref(provider_ref, provider_key)
            .await?
        else {
            return Ok(());
        };
        // A refund is believed once the provider confirms it by reference.
        let revocation = match revocation {
            Some(Revocation::RefundedAtProvider) => match &p.provider_ref {
                Some(r) => match self.with_timeout(self.payments.retrieve(r)).await {
                    Ok(PaymentState::Refunded { .. }) => Some(Revocation::RefundedAtProvider),
                    _ => None,
                },
                None => None,
            },
            other => other,
        };
        if let Some(why) = revocation {
            if let Some(b) = self.store.revoke(p.key(), why, self.clock.now()).await? {
                self.holds.released(&b).await;
                tracing::warn!(payment_id = %p.id, booking_id = %b.id, reason = why.reason(), "booking revoked by the payment provider");
            }
            return Ok(());
        }
        if matches!(
            p.status,
            PaymentStatus::Started | PaymentStatus::Authorized | PaymentStatus::RefundPending
        ) {
            self.reconcile_payment(&p, Some(provider_ref)).await?;
        }
        Ok(())
    }

    async fn reconcile_one(
        &self,
        p: &Payment,
        known_ref: Option<&str>,
    ) -> Result<bool, ReconcileError> {
        let booking = self
            .store
            .booking(p.booking_id)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("payment {} has no booking", p.id)))?;
        let now = self.clock.now();
        match p.status {
            PaymentStatus::Started
                if p.queued && known_ref.is_none() && p.provider_ref.is_none() =>
            {
                // The commit queue took it and may never have asked the provider (a node died,
                // the queue overflowed): ask now, with the purchase's own key, so the provider
                // answers a request it already saw with that first answer.
                let event = self.event_of(&booking).await?;
                match self.charge(event, booking, p.clone()).await? {
                    CommitReply::Stored(_) => {
                        tracing::info!(payment_id = %p.id, "completed a queued commit");
                        Ok(true)
                    }
                    CommitReply::Pending(_) => Ok(false),
                }
            }
            PaymentStatus::Started => {
                let by_ref = known_ref.or(p.provider_ref.as_deref());
                let state = match by_ref {
                    Some(r) => self.with_timeout(self.payments.retrieve(r)).await?,
                    None => {
                        self.with_timeout(self.payments.lookup(&p.idempotency_key))
                            .await?
                    }
                };
                let settlement = match state {
                    PaymentState::Authorized { provider_ref, .. }
                    | PaymentState::Captured { provider_ref, .. } => Settlement::Approved {
                        provider_ref,
                        tickets: self.issue_tickets(
                            &booking,
                            &*self.event_of(&booking).await?,
                            now,
                        ),
                    },
                    PaymentState::Declined => Settlement::Declined {
                        reason: "Your card was declined.".into(),
                    },
                    PaymentState::Voided { .. } | PaymentState::Refunded { .. } => {
                        Settlement::Failed {
                            reason: "The payment was cancelled.".into(),
                        }
                    }
                    // A payment read by its reference exists: unknown there is "in between".
                    PaymentState::Unknown
                        if by_ref.is_none() && self.never_reached(p, &booking, now) =>
                    {
                        Settlement::Failed {
                            reason: "The payment never reached the payment provider.".into(),
                        }
                    }
                    // Maybe still on its way, or the provider's lookup lags: ask again later.
                    // Once the hold has run out its seats go back on sale meanwhile.
                    PaymentState::Unknown => {
                        if booking.status == BookingStatus::Pending && booking.expires_at <= now {
                            let event = self.event_of(&booking).await?;
                            self.settle(&event, &booking, p, Settlement::Unresolved)
                                .await?;
                        }
                        return Ok(false);
                    }
                };
                let event = self.event_of(&booking).await?;
                self.settle(&event, &booking, p, settlement).await?;
                tracing::info!(payment_id = %p.id, booking_id = %booking.id, "reconciled a payment");
                Ok(true)
            }
            PaymentStatus::Authorized => {
                let Some(r) = &p.provider_ref else {
                    return Ok(false);
                };
                if booking.status == BookingStatus::Confirmed {
                    self.capture(p, r).await?;
                } else {
                    self.void(p, r).await?;
                }
                Ok(true)
            }
            PaymentStatus::RefundPending => {
                self.refund(p).await?;
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// Whether an attempt the provider does not know can be taken as never made: its hold
    /// ran out (so no request of ours can still be on its way) and it is older than the time
    /// the provider's lookup may lag behind (zero for the sandbox, about a minute for
    /// Stripe's Search API).
    fn never_reached(&self, p: &Payment, booking: &Booking, now: OffsetDateTime) -> bool {
        booking.expires_at <= now && now - p.updated_at >= self.payments.lookup_lag()
    }

    async fn event_of(&self, booking: &Booking) -> Result<Arc<Event>, StoreError> {
        self.store
            .event(booking.event_id)
            .await?
            .map(Arc::new)
            .ok_or_else(|| StoreError::Internal(format!("booking {} has no event", booking.id)))
    }
}

/// How long to wait before the next attempt to settle a payment that failed `attempts` times:
/// doubling from `base`, capped at an hour, with a little jitter so nodes do not retry in step.
pub fn retry_delay(attempts: u32, base: Duration) -> Duration {
    let base = base.max(Duration::from_secs(1));
    let exp = base.saturating_mul(1u32 << attempts.min(12));
    let capped = exp.min(Duration::from_secs(3600));
    let jitter = capped.mul_f64(rand::RngExt::random::<f64>(&mut rand::rng()) * 0.1);
    capped + jitter
}

/// A payment this node is settling; removed from the set when dropped.
pub(crate) struct InFlight<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<PaymentId>>,
    id: PaymentId,
}

impl<'a> InFlight<'a> {
    pub(crate) fn claim(
        set: &'a std::sync::Mutex<std::collections::HashSet<PaymentId>>,
        id: PaymentId,
    ) -> Option<Self> {
        let mut s = set.lock().ok()?;
        // Lazily: `then_some` would build the guard even when the payment is taken, and drop
        // it at once, here, where its Drop locks the set this function still holds — a
        // deadlock of the node's thread (and the other claimant's id removed).
        s.insert(id).then(|| InFlight { set, id })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.id);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

/// Runs the hold sweeper and the payment reconciler until `shutdown` resolves. Both run once
/// at start (the first tick of an interval is immediate), so a node coming back from a crash
/// repairs what it left half done.
pub async fn run_workers(
    service: BookingService,
    sweep_every: Duration,
    reconcile_every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut sweep = tokio::time::interval(sweep_every);
    let mut reconcile = tokio::time::interval(reconcile_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = sweep.tick() => {
                match service.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired holds"),
                    Err(e) => tracing::warn!(error = %e, "hold sweep failed"),
                }
            }
            _ = reconcile.tick() => {
                if let Err(e) = service.reconcile().await {
                    tracing::warn!(error = %e, "reconciliation failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_is_claimed_once_and_a_second_claim_leaves_the_first_alone() {
        let set = std::sync::Mutex::new(std::collections::HashSet::new());
        let id = PaymentId::new();
        let first = InFlight::claim(&set, id).expect("the first claim");
        // Used to deadlock here (the refused claim's guard dropped under the set's lock).
        assert!(InFlight::claim(&set, id).is_none(), "taken");
        assert!(set.lock().unwrap().contains(&id), "still the first one's");
        drop(first);
        assert!(set.lock().unwrap().is_empty());
        assert!(InFlight::claim(&set, id).is_some(), "free again");
    }
}
