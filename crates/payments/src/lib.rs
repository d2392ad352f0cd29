//! Payment adapters: the implementations of the domain's
//! [`PaymentProvider`](boxoffice_domain::payments::PaymentProvider) port.
//!
//! boxoffice integrates a payment service provider (PSP); it does not build one. The booking
//! code authorizes with an idempotency key of its own, confirms the booking, then captures (or
//! voids), and after a crash asks [`lookup`](boxoffice_domain::payments::PaymentProvider::lookup)
//! what the PSP did with an attempt whose answer was lost.
//!
//! [`Sandbox`] ([`sandbox`]) is the built-in PSP for the embedded mode, tests and benchmarks.
//! Its payment methods behave like Stripe's test cards (`pm_card_visa` approves,
//! `pm_card_chargeDeclined` declines, `pm_card_timeout` hangs, `pm_card_lostResponse` charges
//! and loses the answer, …). It keeps its ledger durably and apart from the booking tables —
//! in its own SQLite file or in the `psp_sandbox` schema of a PostgreSQL database — so that
//! crash reconciliation is exercised exactly as against a real PSP.

pub mod sandbox;

pub use sandbox::{Sandbox, SandboxError, SandboxOptions};
