//! Ports: the traits the outside world is reached through. Adapter crates implement them; the
//! API and the binary only ever see these traits, never a driver type.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::Event;
use crate::ids::{EventId, SeatId};
use crate::money::PriceCents;
use crate::seat::SeatState;

/// A storage failure that is not the caller's fault. The message is for logs only: it may name
/// tables or drivers and must never reach a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or has no connection to spare right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, corrupt data, a failed migration.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Time, injectable so that hold expiry and refund windows can be tested without waiting.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// How many places a section has in each state right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SectionAvailability {
    pub section: u16,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

/// One seat of a seated section, as a seat map shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    pub id: SeatId,
    pub section: u16,
    pub row: Option<String>,
    pub number: u32,
    pub price: PriceCents,
    /// The effective state at the time of the read (an expired hold shows as open).
    pub state: SeatState,
}

/// An event's availability: per-section counts, and every numbered seat. General-admission
/// places are counted, not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatMap {
    pub event_id: EventId,
    pub sections: Vec<SectionAvailability>,
    pub seats: Vec<SeatView>,
}

/// The source of truth. Every method is one use case and one transaction inside the backend;
/// a method either does all it says or nothing.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// A cheap round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new event with its venue and sections, lays out every seat, and records the
    /// change in the outbox, atomically.
    async fn create_event(&self, event: &Event) -> Result<(), StoreError>;

    /// Stores many events at once (demo catalogs, imports). Seats are laid out lazily, the
    /// first time an event is booked, so that a catalog of 100,000 stadiums stays small.
    /// Events whose id is already stored are left as they are, so an import can be re-run.
    async fn create_events_bulk(&self, events: &[Event]) -> Result<(), StoreError>;

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// The seat map of a stored event at `now`.
    async fn seat_map(&self, event: &Event, now: OffsetDateTime) -> Result<SeatMap, StoreError>;
}

impl SeatMap {
    /// Starts a seat map for `event` with every section empty; stores then [`SeatMap::push`]
    /// each seat row they read.
    pub fn builder(event: &Event) -> Self {
        SeatMap {
            event_id: event.id,
            sections: event
                .spec
                .sections
                .iter()
                .map(|s| SectionAvailability {
                    section: s.number,
                    capacity: s.kind.capacity(),
                    ..Default::default()
                })
                .collect(),
            seats: Vec::new(),
        }
    }

    /// Adds one stored seat, counting it by its effective state at `now`. General-admission
    /// places are counted but not listed.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        id: SeatId,
        section: u16,
        row: Option<String>,
        number: u32,
        price: PriceCents,
        state: SeatState,
        hold_expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) {
        let state = state.effective(hold_expires_at, now);
        if let Some(counts) = usize::from(section)
            .checked_sub(1)
            .and_then(|i| self.sections.get_mut(i))
        {
            match state {
                SeatState::Open => counts.available += 1,
                SeatState::Hold | SeatState::Pending => counts.held += 1,
                SeatState::Sold => counts.sold += 1,
            }
        }
        if row.is_some() {
            self.seats.push(SeatView {
                id,
                section,
                row,
                number,
                price,
                state,
            });
        }
    }

    /// The seat map of an event whose seats have not been laid out yet: all open.
    pub fn all_open(event: &Event, now: OffsetDateTime) -> Self {
        let mut map = Self::builder(event);
        for section in &event.spec.sections {
            for s in section.seats() {
                map.push(
                    s.id,
                    s.section,
                    s.row,
                    s.number,
                    s.price,
                    SeatState::Open,
                    None,
                    now,
                );
            }
        }
        map
    }
}

/// Kinds of change recorded in the outbox, for change-data-capture readers.
pub mod change {
    use serde::{Deserialize, Serialize};

    /// An event's catalog entry was created or changed; readers re-read the event. Payload:
    /// `{}`.
    pub const EVENT_CHANGED: &str = "event.changed";
    /// Seats of an event became available or unavailable. Payload: [`AvailabilityDelta`].
    pub const SEATS_CHANGED: &str = "seats.changed";

    /// How the number of *available* places of each section changed in one transaction:
    /// a hold of 3 is `-3`, its release or expiry `+3`, a refund of 2 sold seats `+2`. A held
    /// seat becoming sold is not a change of availability and is not recorded.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct AvailabilityDelta {
        pub sections: Vec<SectionDelta>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SectionDelta {
        pub section: u16,
        pub available: i32,
    }
}
