//! HTTP tests of the API over a real loopback server, against every storage backend.

mod common;

mod auth;
mod booking;
mod events;
mod payments;
mod problems;
mod queue;
mod resale;
mod search;
mod tickets;
