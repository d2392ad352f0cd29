//! The boxoffice domain: what an event, a seat, a booking and a ticket *are*, and the rules
//! they obey, with no IO at all.
//!
//! Everything that crosses a process boundary is described here as a *port* (a trait in
//! [`ports`]): the store, the payment provider, the search index, the clock. Adapters in the
//! other crates implement those ports; the HTTP API and the binary wire them together. Because
//! this crate knows nothing of SQL, HTTP or tokio, every rule in it can be tested in
//! microseconds and every backend obeys the same rules.
//!
//! Layout:
//! - [`ids`]: identifiers as newtypes, so a booking id can never be passed as an event id.
//! - [`money`]: currencies and amounts in minor units; no floating point anywhere.
//! - [`event`]: validated events, venues, sections, policies and seat-map geometry.
//! - [`seat`] and [`booking`]: the state machines, with their legal transitions.
//! - [`rules`]: the booking rulebook — what each use case does to a booking, its seats,
//!   tickets, payment and stored response, as pure functions both stores call.
//! - [`queue`]: the on-sale waiting room: order, admission rate, status.
//! - [`resale`]: resale listings, payouts and transfers: a ticket's second life.
//! - [`ports`]: the traits adapters implement, and their error types; [`payments`] is the
//!   payment provider port; [`feed`] is the change feed that search indexers follow;
//!   [`onsale`] holds the ports of the scaled-out on-sale path (commit log, hold gate).

pub mod booking;
pub mod error;
pub mod event;
pub mod feed;
pub mod ids;
pub mod money;
pub mod onsale;
pub mod payments;
pub mod ports;
pub mod queue;
pub mod resale;
pub mod rules;
pub mod seat;
pub mod transfers;

pub use error::ValidationError;
