//! The built-in sandbox PSP, whose payment methods behave like Stripe's test cards.
//!
//! | method | authorize answers |
//! |---|---|
//! | `pm_card_visa`, `pm_card_mastercard` | `Approved` |
//! | `pm_card_chargeDeclined` | `Declined` — "Your card was declined." |
//! | `pm_card_insufficientFunds` | `Declined` — "Your card has insufficient funds." |
//! | `pm_card_timeout` | records the authorization, then hangs for [`SandboxOptions::hang`] before answering `Approved` |
//! | `pm_card_lostResponse` | records the authorization, then fails with `Unavailable`: it charges and loses the answer |
//! | `pm_card_captureFails` | `Approved`; the first capture fails with `Unavailable`, later ones succeed |
//! | `pm_card_captureRefused` | `Approved`; every capture is `Rejected`: the authorization lapsed |
//! | anything else | `Declined` — "Unsupported payment method." |
//!
//! Like a real PSP the sandbox answers by idempotency key: authorizing again with a key it has
//! seen returns the first outcome at once (a decline included, and without hanging or losing
//! the answer again — those were faults of the "network", not of the payment) and never
//! reserves twice; the same key with a different request is `Rejected`. Capture, void and
//! refund are idempotent and follow the payment's state machine: repeating one that happened
//! succeeds, one the state does not allow (capturing a voided payment, voiding a captured
//! one, refunding what was never captured) is `Rejected`. Refunds are in full.
//!
//! [`PaymentProvider::lookup`] (by our key) and [`PaymentProvider::retrieve`] (by the
//! sandbox's `pi_sbx_…` reference) both read the ledger itself, so both are consistent at once:
//! the sandbox has no lookup lag. A reference the ledger does not hold is `Rejected`.
//!
//! The ledger is durable and apart from the booking data — a SQLite file of its own or the
//! `psp_sandbox` schema in PostgreSQL — so a booking process that crashes mid-payment finds
//! the payment again through [`PaymentProvider::lookup`] after a restart, as it would at a
//! real PSP. Two processes sharing a ledger share the sandbox; the database's unique key on
//! the idempotency key, not a lock in this process, is what keeps one key to one payment.

mod ledger;
mod postgres;
mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use boxoffice_domain::payments::{
    Authorization, PaymentError, PaymentProvider, PaymentRequest, PaymentState,
};

use ledger::{Ledger, Op, Record, Status};

/// Stripe's limit on idempotency keys; the sandbox holds callers to the same.
const MAX_KEY_LEN: usize = 255;

/// How the sandbox behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// How long `pm_card_timeout` hangs before answering: far longer than any caller should
    /// wait. Default 60 s.
    pub hang: Duration,
    /// PostgreSQL connections kept by a PostgreSQL-backed sandbox. Default 8.
    pub pool_size: usize,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            hang: Duration::from_secs(60),
            pool_size: 8,
        }
    }
}

/// The sandbox's ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox ledger's PostgreSQL URL is malformed")]
    InvalidUrl,
    #[error("opening the sandbox ledger: {0}")]
    Ledger(String),
}

/// The sandbox payment provider. Cheap to clone; clones share the ledger.
#[derive(Debug, Clone)]
pub struct Sandbox {
    ledger: Arc<Ledger>,
    options: SandboxOptions,
}

impl Sandbox {
    /// A sandbox keeping its ledger in the SQLite file at `path` (created if missing, with its
    /// directory), e.g. `<data-dir>/psp-sandbox.db`.
    pub async fn sqlite(path: impl AsRef<Path>) -> Result<Self, SandboxError> {
        Self::sqlite_with(path, SandboxOptions::default()).await
    }

    pub async fn sqlite_with(
        path: impl AsRef<Path>,
        options: SandboxOptions,
    ) -> Result<Self, SandboxError> {
        let path = path.as_ref().to_owned();
        let ledger = tokio::task::spawn_blocking(move || sqlite::SqliteLedger::open(&path))
            .await
            .map_err(|e| SandboxError::Ledger(format!("sqlite ledger task failed: {e}")))??;
        Ok(Self {
            ledger: Arc::new(Ledger::Sqlite(ledger)),
            options,
        })
    }

    /// A sandbox keeping its ledger in the `psp_sandbox` schema of the PostgreSQL database at
    /// `url` (`postgres://…`), which it creates if missing.
    pub async fn postgres(url: &str) -> Result<Self, SandboxError> {
        Self::postgres_with(url, SandboxOptions::default()).await
    }

    pub async fn postgres_with(url: &str, options: SandboxOptions) -> Result<Self, SandboxError> {
        let ledger = postgres::PgLedger::connect(url, options.pool_size).await?;
        Ok(Self {
            ledger: Arc::new(Ledger::Postgres(ledger)),
            options,
        })
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.options
    }
}

/// The test cards the sandbox knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCard {
    Visa,
    Mastercard,
    ChargeDeclined,
    InsufficientFunds,
    Timeout,
    LostResponse,
    CaptureFails,
    CaptureRefused,
    Unsupported,
}

impl TestCard {
    fn from_method(method: &str) -> Self {
        match method {
            "pm_card_visa" => TestCard::Visa,
            "pm_card_mastercard" => TestCard::Mastercard,
            "pm_card_chargeDeclined" => TestCard::ChargeDeclined,
            "pm_card_insufficientFunds" => TestCard::InsufficientFunds,
            "pm_card_timeout" => TestCard::Timeout,
            "pm_card_lostResponse" => TestCard::LostResponse,
            "pm_card_captureFails" => TestCard::CaptureFails,
            "pm_card_captureRefused" => TestCard::CaptureRefused,
            _ => TestCard::Unsupported,
        }
    }

    /// `None` approves; `Some(reason)` declines with a reason safe to show the customer.
    fn decline_reason(self) -> Option<&'static str> {
        match self {
            TestCard::ChargeDeclined => Some("Your card was declined."),
            TestCard::InsufficientFunds => Some("Your card has insufficient funds."),
            TestCard::Unsupported => Some("Unsupported payment method."),
            TestCard::Visa
            | TestCard::Mastercard
            | TestCard::Timeout
            | TestCard::LostResponse
            | TestCard::CaptureFails
            | TestCard::CaptureRefused => None,
        }
    }

    fn capture_failures(self) -> i64 {
        match self {
            TestCard::CaptureFails => 1,
            TestCard::CaptureRefused => -1,
            _ => 0,
        }
    }
}

fn new_provider_ref() -> String {
    format!("pi_sbx_{}", uuid::Uuid::new_v4().simple())
}

fn validate(req: &PaymentRequest) -> Result<(), PaymentError> {
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > MAX_KEY_LEN {
        return Err(PaymentError::Rejected(format!(
            "the idempotency key must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    if req.amount_cents <= 0 {
        return Err(PaymentError::Rejected(
            "the amount must be a positive number of minor units".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl PaymentProvider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    /// The sandbox pays every seller: the reference is derived from the key, so paying the
    /// same payout twice yields the same record.
    async fn payout(
        &self,
        _seller: &str,
        _amount_cents: i64,
        _currency: boxoffice_domain::money::Currency,
        idempotency_key: &str,
    ) -> Result<Option<String>, PaymentError> {
        Ok(Some(format!(
            "po_sbx_{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, idempotency_key.as_bytes()).simple()
        )))
    }

    #[tracing::instrument(skip_all, fields(key = %req.idempotency_key, booking = %req.booking_ref))]
    async fn authorize(&self, req: &PaymentRequest) -> Result<Authorization, PaymentError> {
        validate(req)?;
        let card = TestCard::from_method(&req.method);
        let reason = card.decline_reason();
        let fresh = Record {
            key: req.idempotency_key.clone(),
            provider_ref: new_provider_ref(),
            amount_cents: req.amount_cents,
            currency: req.currency.as_str().to_owned(),
            method: req.method.clone(),
            description: req.description.clone(),
            booking_ref: req.booking_ref.clone(),
            status: if reason.is_some() {
                Status::Declined
            } else {
                Status::Authorized
            },
            decline_reason: reason.map(str::to_owned),
            capture_failures_left: card.capture_failures(),
        };
        let (rec, inserted) = self.ledger.insert_or_get(fresh).await?;
        if !inserted {
            if !rec.same_request(req) {
                return Err(PaymentError::Rejected(
                    "keys for idempotent requests can only be used with the same parameters \
                     they were first used with"
                        .into(),
                ));
            }
            tracing::debug!(provider_ref = %rec.provider_ref, "replayed an authorization");
            return Ok(rec.authorization());
        }
        match card {
            TestCard::Timeout => {
                tracing::debug!(hang = ?self.options.hang, "pm_card_timeout: hanging");
                tokio::time::sleep(self.options.hang).await;
                Ok(rec.authorization())
            }
            TestCard::LostResponse => Err(PaymentError::Unavailable(
                "sandbox: the connection was lost before the answer arrived \
                 (pm_card_lostResponse)"
                    .into(),
            )),
            _ => Ok(rec.authorization()),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn capture(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError> {
        self.ledger.apply(provider_ref, Op::Capture).await
    }

    #[tracing::instrument(skip(self))]
    async fn void(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError> {
        self.ledger.apply(provider_ref, Op::Void).await
    }

    #[tracing::instrument(skip(self))]
    async fn refund(
        &self,
        provider_ref: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<(), PaymentError> {
        self.ledger
            .apply(provider_ref, Op::Refund { amount_cents })
            .await
    }

    #[tracing::instrument(skip(self))]
    async fn lookup(&self, idempotency_key: &str) -> Result<PaymentState, PaymentError> {
        Ok(self
            .ledger
            .by_key(idempotency_key)
            .await?
            .map_or(PaymentState::Unknown, |rec| rec.state()))
    }

    #[tracing::instrument(skip(self))]
    async fn retrieve(&self, provider_ref: &str) -> Result<PaymentState, PaymentError> {
        match self.ledger.by_ref(provider_ref).await? {
            Some(rec) => Ok(rec.state()),
            None => Err(PaymentError::Rejected(format!(
                "no such payment: {provider_ref}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_map_to_behaviours() {
        assert_eq!(TestCard::from_method("pm_card_visa").decline_reason(), None);
        assert_eq!(
            TestCard::from_method("pm_card_chargeDeclined").decline_reason(),
            Some("Your card was declined.")
        );
        assert_eq!(
            TestCard::from_method("pm_card_Visa"),
            TestCard::Unsupported,
            "method names are case-sensitive, as Stripe's are"
        );
        assert_eq!(
            TestCard::from_method("pm_card_captureFails").capture_failures(),
            1
        );
    }

    #[test]
    fn provider_refs_look_like_payment_intents_and_differ() {
        let a = new_provider_ref();
        assert!(a.starts_with("pi_sbx_") && a.len() > 20, "{a}");
        assert_ne!(a, new_provider_ref());
    }
}
