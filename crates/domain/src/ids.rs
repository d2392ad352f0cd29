//! Identifiers. Each is its own type so that the compiler, not a reviewer, catches a booking id
//! handed to a function that wants an event id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), so that inserts append to B-tree indexes.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl $name {
            /// A new id that carries `slot`: the shard slot of the event it belongs to, so
            /// that a sharded store finds it on that event's shard without asking around.
            pub fn new_in(slot: ShardSlot) -> Self {
                let mut bytes = *Uuid::now_v7().as_bytes();
                bytes[14..].copy_from_slice(&slot.0.to_be_bytes());
                Self(Uuid::from_bytes(bytes))
            }

            /// The shard slot this id carries: its last two bytes (random in a UUIDv7, so
            /// event ids spread evenly over the slots).
            pub fn slot(&self) -> ShardSlot {
                let b = self.0.as_bytes();
                ShardSlot(u16::from_be_bytes([b[14], b[15]]))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

/// Which of 65,536 slots an id belongs to. Every id that belongs to an event (its bookings,
/// tickets, payments, listings, transfers, waiting-room places, payouts) carries the event's
/// slot, and a sharded deployment maps slots to shards, so any id leads straight to its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardSlot(pub u16);

uuid_id!(
    /// An event (one performance at one venue on one date).
    EventId
);
uuid_id!(
    /// A booking: a set of seats held, then paid for, by one customer.
    BookingId
);
uuid_id!(
    /// One admission ticket for one seat.
    TicketId
);
uuid_id!(
    /// A payment attempt at the payment provider.
    PaymentId
);
uuid_id!(
    /// A ticket offered for resale.
    ListingId
);
uuid_id!(
    /// What one resale earned its seller.
    PayoutId
);
uuid_id!(
    /// A ticket given away to another customer.
    TransferId
);
uuid_id!(
    /// A buyer's place in an event's waiting room.
    QueueId
);

/// A customer (or organizer, scanner, admin): the `sub` of their token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(String);

impl CustomerId {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "sub",
                format!("must be 1 to {} bytes", Self::MAX_LEN),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "sub",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A seat within one event, such as `1-C-14` (section 1, row C, seat 14) or `2-GA-57` (the 57th
/// place in general-admission section 2). Seat ids are unique within their event only; tickets
/// and bookings always carry the event id beside them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeatId(String);

impl SeatId {
    pub const MAX_LEN: usize = 32;

    pub fn seated(section: u16, row_label: &str, number: u32) -> Self {
        Self(format!("{section}-{row_label}-{number}"))
    }

    pub fn general_admission(section: u16, number: u32) -> Self {
        Self(format!("{section}-GA-{number}"))
    }

    /// Accepts any syntactically plausible seat id; whether it exists is the store's business.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "seatIds",
                format!("`{}` is not a seat id", truncate(raw, 40)),
            ))
        }
    }

    /// For storage adapters reading their own rows back.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Section number, row label (`None` for general admission) and seat number.
    pub fn parts(&self) -> Option<(u16, Option<&str>, u32)> {
        let mut it = self.0.splitn(3, '-');
        let section = it.next()?.parse().ok()?;
        let row = it.next()?;
        let number = it.next()?.parse().ok()?;
        Some((section, (row != "GA").then_some(row), number))
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Cut a client-supplied string for quoting it back in an error message.
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_ids_round_trip_and_reject_junk() {
        assert_eq!(SeatId::seated(1, "C", 14).as_str(), "1-C-14");
        assert_eq!(SeatId::general_admission(2, 57).as_str(), "2-GA-57");
        assert!(SeatId::parse("1-C-14").is_ok());
        assert!(SeatId::parse("").is_err());
        assert!(SeatId::parse("1 C 14").is_err());
        assert!(SeatId::parse(&"9".repeat(33)).is_err());
        assert_eq!(SeatId::seated(1, "C", 14).parts(), Some((1, Some("C"), 14)));
        assert_eq!(
            SeatId::general_admission(2, 57).parts(),
            Some((2, None, 57))
        );
    }

    #[test]
    fn customer_ids_are_bounded() {
        assert!(CustomerId::parse("alice").is_ok());
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse("a\u{0}b").is_err());
        assert!(CustomerId::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn ids_made_for_an_event_carry_its_slot_and_stay_time_ordered_uuid_v7() {
        let event = EventId::new();
        let mut last = BookingId::new_in(event.slot());
        for _ in 0..100 {
            let b = BookingId::new_in(event.slot());
            assert_eq!(b.slot(), event.slot());
            assert_eq!(b.0.get_version_num(), 7);
            assert_eq!(b.0.get_variant(), uuid::Variant::RFC4122);
            assert!(b >= last || b.0.get_timestamp() == last.0.get_timestamp());
            last = b;
        }
        let t = TicketId::new_in(last.slot());
        assert_eq!(t.slot(), event.slot());
    }
}
