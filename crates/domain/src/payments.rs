//! The payment provider port. We integrate a PSP; we do not build one.
//!
//! The flow the booking code follows, and every adapter must support:
//! 1. [`PaymentProvider::authorize`] with an idempotency key of our choosing (the same key on a
//!    retry never creates a second payment) — money is reserved, not yet taken;
//! 2. the database confirms the booking and issues tickets;
//! 3. [`PaymentProvider::capture`] — money is taken only once tickets exist;
//!    or [`PaymentProvider::void`] if step 2 could not happen.
//!
//! A confirmed booking that is cancelled is [`PaymentProvider::refund`]ed. After a crash,
//! [`PaymentProvider::lookup`] tells by idempotency key what the PSP did with an attempt whose
//! answer we never recorded.

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

/// What the provider knows about an attempt, by our idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentState {
    /// The provider never saw this key.
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

    /// What happened to the attempt made with `idempotency_key`.
    async fn lookup(&self, idempotency_key: &str) -> Result<PaymentState, PaymentError>;
}
