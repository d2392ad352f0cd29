//! A fake of the part of Stripe's API that boxoffice's Stripe adapter
//! (`boxoffice_payments::stripe`) calls, for tests that need a PSP over HTTP which can be
//! made slow, unreachable or forgetful on demand. It is an edge fake: the PSP is the one
//! system we do not own, so tests may stand in for it; everything of ours runs for real.
//!
//! The API, as Stripe shapes it (form-encoded requests, `Authorization: Bearer sk_…`,
//! `Idempotency-Key` on POSTs, errors as `{"error": {"type", "code", "message", …}}`):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/payment_intents` | create and confirm; `capture_method=manual` authorizes, otherwise captures |
//! | `POST /v1/payment_intents/{id}/capture` · `/cancel` | capture an authorization · release it |
//! | `POST /v1/refunds` | `payment_intent`, `amount` (default: what is left) |
//! | `GET /v1/payment_intents/{id}` | strongly consistent read; `expand[]=latest_charge` |
//! | `GET /v1/payment_intents/search` | `query=metadata['k']:'v'`, `expand[]=data.latest_charge`; lags by `searchLagMs` |
//!
//! Payment methods behave like Stripe's test cards: `pm_card_visa`, `pm_card_mastercard`,
//! `pm_card_amex` succeed; `pm_card_chargeDeclined` declines (`card_declined`,
//! `generic_decline`); `pm_card_insufficientFunds` and
//! `pm_card_visa_chargeDeclinedInsufficientFunds` decline with `insufficient_funds`; any other
//! method is `resource_missing`. A POST with an `Idempotency-Key` already used for the same
//! request replays the first answer (with `Idempotent-Replayed: true`), for another request is
//! Stripe's 400 `idempotency_error`, and while the first is still running is 409.
//!
//! The control plane, never subject to faults:
//!
//! | route | what |
//! |---|---|
//! | `GET /__ledger` | every PaymentIntent with `status`, `amount`, `amount_captured`, `amount_refunded`, `metadata`, and every refund |
//! | `GET /__faults` · `POST /__faults` | the fault configuration ([`Faults`]); posting replaces it, `{}` heals |
//! | `GET /__stats` | per operation: requests `received`, `faulted`, `inFlight`, `committed` |

mod api;
mod faults;
mod ledger;

use std::net::SocketAddr;
use std::sync::Arc;

pub use faults::{Faults, Op, Trigger};
use tokio::net::TcpListener;

pub use api::router;

/// The fake's shared state. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FakeState {
    inner: Arc<api::Shared>,
}

impl FakeState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the fault configuration, as `POST /__faults` does.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.set_faults(faults);
    }

    /// The ledger as `GET /__ledger` shows it.
    pub fn ledger(&self) -> serde_json::Value {
        self.inner.ledger_json()
    }
}

/// Serves the fake on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: FakeState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A fake running on a loopback port of its own inside this process; stops when dropped.
#[derive(Debug)]
pub struct FakePsp {
    addr: SocketAddr,
    state: FakeState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakePsp {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = FakeState::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            let _ = serve(listener, served, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:<port>`, the adapter's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &FakeState {
        &self.state
    }
}

impl Drop for FakePsp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
