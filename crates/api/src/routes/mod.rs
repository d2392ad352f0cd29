//! One module per resource; each exposes `router()` with its documented routes.

pub mod booking;
pub mod events;
pub mod ops;
pub mod queue;
pub mod resale;
pub mod search;
pub mod tickets;
pub mod webhooks;
