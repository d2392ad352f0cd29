//! The payment provider port. We integrate a PSP; we do not build one.
//!
//! The flow the booking code follows, and every adapter must support:
//! 1. [`PaymentProvider::authorize`] with an idempotency key of our choosing (the same key on a
//!    retry never creates a second payment) — money is reserved, not yet taken;
//! 2. the database confirms the booking and issues tickets;
//! 3. [`PaymentProvider::capture`] — money is taken only once tickets exist;
//!    or [`PaymentProvider::void`] if step 2 could not happen.
//!
//! A confirmed booking that is cancelled is [`PaymentProvider::refund`]ed.
//!
//! Two ways to ask the provider what happened, with different guarantees:
//! - [`PaymentProvider::retrieve`], by the provider's own reference (`pi_…`), is strongly
//!   consistent: it reflects every operation the provider acknowledged. Use it whenever the
//!   reference is known (before refunding or voiding, when settling a capture).
//! - [`PaymentProvider::lookup`], by our idempotency key, is the only way to find an attempt
//!   whose answer (and so whose reference) was lost. At some providers it reads an index that
//!   lags ([`PaymentProvider::lookup_lag`]; Stripe's Search API, about a minute), so "nothing
//!   found" is only final once the attempt is older than that lag.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::money::Currency;

/// What we ask the provider to authorize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// Ours, unique per attempt, forwarded to the provider as its idempotency key.
    pub idempotency_key: String,
    pub amount_cents: i64,
    pub currency: Currency,
    /// The customer's payment method token, e.g. `pm_card_visa`.
    pub method: String,
    /// Shown on statements and in the provider's dashboard.
    pub description: String,
    /// Our booking id, stored with the payment at the provider for reconciliation.
    pub booking_ref: String,
}

/// The answer to an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authorization {
    /// Funds reserved; `provider_ref` names the payment at the provider (`pi_…`).
    Approved { provider_ref: String },
    /// The card or method was refused; nothing is reserved. `reason` is safe to show.
    Declined { reason: String },
}

/// What the provider knows about a payment: an attempt found by our idempotency key
/// ([`PaymentProvider::lookup`]) or a payment read by its reference
/// ([`PaymentProvider::retrieve`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentState {
    /// Nothing to act on yet. Never proof that no money moved:
    ///
    /// - from [`PaymentProvider::lookup`]: no attempt with this key is *visible yet*. Where
    ///   lookup reads a lagging index (Stripe's Search API), an attempt made less than
    ///   [`PaymentProvider::lookup_lag`] ago may exist and hold money all the same. Only an
    ///   attempt older than that lag, which can no longer arrive at the provider (its request
    ///   was answered or timed out long ago), may be concluded never to have reached it.
    /// - from [`PaymentProvider::retrieve`]: the payment exists but is between states (Stripe's
    ///   `processing`); ask again later. Never final.
    Unknown,
    /// Reserved, not taken.
    Authorized {
        provider_ref: String,
        amount_cents: i64,
    },
    /// Taken.
    Captured {
        provider_ref: String,
        amount_cents: i64,
    },
    /// Refused; nothing reserved.
    Declined,
    /// Reservation released without taking money.
    Voided { provider_ref: String },
    /// Taken and given back (fully).
    Refunded {
        provider_ref: String,
        amount_cents: i64,
    },
}

/// A failure to get an answer. Never carries secrets: messages may be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// No answer in time; the outcome is unknown and must be reconciled with
    /// [`PaymentProvider::lookup`].
    #[error("payment provider timed out")]
    Timeout,
    /// The provider could not be reached or failed (5xx); the outcome is unknown.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (not the card): a bug or misconfiguration.
    #[error("payment provider rejected the request: {0}")]
    Rejected(String),
}

impl PaymentError {
    /// Whether money may have moved even though we got no answer.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, PaymentError::Timeout | PaymentError::Unavailable(_))
    }
}

/// A payment service provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync + std::fmt::Debug + 'static {
    /// A short name stored with each payment (`sandbox`, `stripe`).
    fn name(&self) -> &'static str;

    /// Reserves the amount. Calling it again with the same idempotency key returns the first
    /// outcome and never reserves twice.
    async fn authorize(&self, req: &PaymentRequest) -> Result<Authorization, PaymentError>;

    /// Takes reserved money. Idempotent: capturing a captured payment succeeds.
    async fn capture(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError>;

    /// Releases a reservation without taking money. Idempotent.
    async fn void(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError>;

    /// Gives captured money back, in full. Idempotent per idempotency key.
    async fn refund(
        &self,
        provider_ref: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<(), PaymentError>;

    /// What happened to the attempt made with `idempotency_key`: the way to find a payment
    /// whose answer, and so whose reference, was lost. May read an eventually consistent
    /// index: `Unknown` for an attempt younger than [`lookup_lag`](Self::lookup_lag) means
    /// "not visible yet", not "never happened" (see [`PaymentState::Unknown`]). When the
    /// reference is known, [`retrieve`](Self::retrieve) is the consistent answer.
    async fn lookup(&self, idempotency_key: &str) -> Result<PaymentState, PaymentError>;

    /// The state of the payment the provider calls `provider_ref`, read consistently: it
    /// reflects every capture, void and refund the provider has acknowledged (Stripe:
    /// `GET /v1/payment_intents/{id}`). `Unknown` means the payment is between states; ask
    /// again later, it is never final. A reference the provider does not know is `Rejected`.
    async fn retrieve(&self, provider_ref: &str) -> Result<PaymentState, PaymentError>;

    /// How long after an attempt [`lookup`](Self::lookup) may still not see it. Zero for
    /// providers whose lookup is consistent (the sandbox).
    fn lookup_lag(&self) -> Duration {
        Duration::ZERO
    }

    /// Pays a reseller what a resale earned them. `Ok(Some(reference))` once paid (the same
    /// idempotency key never pays twice); `Ok(None)` when this provider cannot pay that
    /// seller (no connected account configured): the payout stays SCHEDULED and is reported.
    async fn payout(
        &self,
        seller: &str,
        amount_cents: i64,
        currency: Currency,
        idempotency_key: &str,
    ) -> Result<Option<String>, PaymentError> {
        let _ = (seller, amount_cents, currency, idempotency_key);
        Ok(None)
    }
}
