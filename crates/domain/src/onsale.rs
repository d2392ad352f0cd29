//! Ports of the scaled-out on-sale path: the commit log that carries queued purchases between
//! nodes (NATS JetStream) and the hold gate that turns most losing buyers away before the
//! database (Redis). Neither is a source of truth: a message says only *which* purchase to
//! finish, and a gate may refuse a buyer but never sells a seat; the store decides both.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, EventId, PaymentId, SeatId};

/// One queued purchase whose step 1 (the STARTED payment, the booking PENDING) is stored.
/// Everything else is read from the store when the purchase is charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedCommit {
    pub payment_id: PaymentId,
    pub booking_id: BookingId,
    pub event_id: EventId,
    /// The key the provider sees for this purchase; the broker drops a second message with it.
    pub key: String,
}

/// Why the commit log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CommitLogError {
    /// The broker did not answer, or refused.
    #[error("commit log unavailable: {0}")]
    Unavailable(String),
    /// A message that is not a queued commit.
    #[error("malformed queued commit: {0}")]
    Malformed(String),
}

/// A durable queue of purchases shared by every node: each message is handed to one worker
/// at a time and redelivered (a bounded number of times) until it is acknowledged.
#[async_trait]
pub trait CommitLog: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `commit` durably; a second publication with the same key is dropped.
    async fn publish(&self, commit: &QueuedCommit) -> Result<(), CommitLogError>;
    /// Up to `max` purchases due now, waiting a little when there are none.
    async fn pull(&self, max: usize) -> Result<Vec<Box<dyn Delivery>>, CommitLogError>;
    /// How many times a message is delivered before it is given up (dead-lettered).
    fn max_deliver(&self) -> u32;
}

/// One delivery of a queued commit, to be settled exactly one way.
#[async_trait]
pub trait Delivery: Send + Sync + std::fmt::Debug {
    /// The purchase, or why the message could not be read.
    fn commit(&self) -> Result<&QueuedCommit, &CommitLogError>;
    /// 1 on first delivery, 2 on the first redelivery, …
    fn attempt(&self) -> u32;
    /// Done: never deliver it again.
    async fn ack(self: Box<Self>) -> Result<(), CommitLogError>;
    /// Not done: deliver it again after `delay`.
    async fn retry(self: Box<Self>, delay: Duration) -> Result<(), CommitLogError>;
    /// Given up: never deliver it again (a dead letter; the reconciler finishes the purchase).
    async fn give_up(self: Box<Self>) -> Result<(), CommitLogError>;
}

/// Why the gate could not answer. Callers go to the database instead.
#[derive(Debug, thiserror::Error)]
#[error("hold gate unavailable: {0}")]
pub struct GateError(pub String);

/// A fast, lossy fence in front of the store's holds: all of a hold's seats or none, each
/// marked with the booking that took it, for the hold's time to live.
#[async_trait]
pub trait HoldGate: Send + Sync + std::fmt::Debug + 'static {
    /// Marks every seat as `booking`'s for `ttl`, or none; `false` when any is marked by
    /// another booking.
    async fn take(
        &self,
        event: EventId,
        seats: &[SeatId],
        booking: BookingId,
        ttl: Duration,
    ) -> Result<bool, GateError>;
    /// Clears the marks `booking` still has on `seats` (others' marks are left alone).
    async fn release(
        &self,
        event: EventId,
        seats: &[SeatId],
        booking: BookingId,
    ) -> Result<(), GateError>;
}
