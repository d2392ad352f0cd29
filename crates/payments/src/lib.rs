//! Payment adapters: the implementations of the domain's
//! [`PaymentProvider`](boxoffice_domain::payments::PaymentProvider) port.
//!
//! boxoffice integrates a payment service provider (PSP); it does not build one. The booking
//! code authorizes with an idempotency key of its own, confirms the booking, then captures (or
//! voids), and after a crash asks [`lookup`](boxoffice_domain::payments::PaymentProvider::lookup)
//! what the PSP did with an attempt whose answer was lost. This crate holds the two providers
//! the binary can be configured with:
//!
//! - [`Sandbox`] ([`sandbox`]): the built-in PSP for the embedded mode, tests and benchmarks.
//!   Its payment methods behave like Stripe's test cards (`pm_card_visa` approves,
//!   `pm_card_chargeDeclined` declines, `pm_card_timeout` hangs, `pm_card_lostResponse`
//!   charges and loses the answer, …). It keeps its ledger durably and apart from the booking
//!   tables — in its own SQLite file or in the `psp_sandbox` schema of a PostgreSQL database —
//!   so that crash reconciliation is exercised exactly as against a real PSP.
//! - [`Stripe`] ([`stripe`]): the adapter for Stripe's HTTP API (PaymentIntents with manual
//!   capture, refunds, idempotency keys forwarded, `retrieve` by id, lookup by key through the
//!   lagging Search API).
//!
//! [`webhook`] verifies Stripe's signed webhook deliveries and says what each means for a
//! payment ([`PaymentEvent`]); the HTTP route that receives them belongs to the API crate.
//!
//! Secrets (API keys, webhook secrets, database passwords) are held in [`Secret`] or kept out
//! of reach: they are redacted in `Debug` and never appear in an error or a log line.

pub mod sandbox;
mod secret;
pub mod stripe;
pub mod webhook;

pub use sandbox::{Sandbox, SandboxError, SandboxOptions};
pub use secret::Secret;
pub use stripe::{Stripe, StripeConfig, StripeConfigError};
pub use webhook::{PaymentEvent, WebhookError, WebhookEvent, WebhookEventData, verify_webhook};
