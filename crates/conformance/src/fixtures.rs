//! Events for tests: small, valid, and easy to vary.

use boxoffice_domain::event::{
    Category, Event, EventParts, EventSpec, Policies, SectionSpec, Venue,
};
use boxoffice_domain::ids::{CustomerId, EventId};
use time::{Duration, OffsetDateTime};

/// Now, truncated to microseconds: the precision both stores keep.
pub fn now() -> OffsetDateTime {
    boxoffice_domain::event::to_micros(OffsetDateTime::now_utc())
}

pub fn organizer() -> CustomerId {
    CustomerId::parse("organizer-1").expect("valid id")
}

pub fn lumen_field() -> Venue {
    Venue::new(
        "Lumen Field",
        "800 Occidental Ave S",
        "Seattle",
        "98134",
        "US",
        47.5952,
        -122.3316,
    )
    .expect("valid venue")
}

/// A concert a year from `now`, on sale now: 10 × 20 seated floor plus a 100-place lawn.
pub fn concert(now: OffsetDateTime) -> Event {
    event_with(
        now,
        vec![
            SectionSpec::seated("Floor", 10, 20, 25_000).expect("section"),
            SectionSpec::general_admission("Lawn", 100, 5_000).expect("section"),
        ],
    )
}

pub fn event_with(now: OffsetDateTime, sections: Vec<SectionSpec>) -> Event {
    let spec = EventSpec::new(
        EventParts {
            name: "Taylor Swift | The Eras Tour".into(),
            performers: vec!["Taylor Swift".into(), "Sabrina Carpenter".into()],
            category: Category::Concert,
            description: "The Eras Tour comes to Seattle.".into(),
            starts_at: now + Duration::days(365),
            on_sale_at: Some(now - Duration::hours(1)),
            currency: "USD".parse().expect("currency"),
            venue: lumen_field(),
            sections,
            policies: Policies::new(Some(8), Some(48), Some(120)).expect("policies"),
        },
        now - Duration::hours(2),
    )
    .expect("valid event");
    Event {
        id: EventId::new(),
        organizer: organizer(),
        created_at: now,
        spec,
        cancelled_at: None,
    }
}
