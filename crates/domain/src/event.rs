//! Events as organizers describe them: venue, sections and policies, validated once at the edge
//! so that everything downstream can trust them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ValidationError;
use crate::ids::{CustomerId, EventId, SeatId};
use crate::money::{Currency, PriceCents};

/// At most this many sections in one event.
pub const MAX_SECTIONS: usize = 200;
/// At most this many seats (seated plus general admission) in one event: a very large stadium.
pub const MAX_SEATS_PER_EVENT: u32 = 200_000;
/// Rows and seats per row are bounded separately so that a typo (`rows: 1e6`) fails clearly.
pub const MAX_ROWS: u32 = 2_000;
pub const MAX_SEATS_PER_ROW: u32 = 2_000;

/// What kind of event this is. A fixed list, so facets and filters mean the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Concert,
    Sports,
    Theater,
    Comedy,
    Festival,
    Family,
    Conference,
    Arts,
    Other,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Concert,
        Category::Sports,
        Category::Theater,
        Category::Comedy,
        Category::Festival,
        Category::Family,
        Category::Conference,
        Category::Arts,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Concert => "concert",
            Category::Sports => "sports",
            Category::Theater => "theater",
            Category::Comedy => "comedy",
            Category::Festival => "festival",
            Category::Family => "family",
            Category::Conference => "conference",
            Category::Arts => "arts",
            Category::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|c| c.as_str()).collect();
                ValidationError::new("category", format!("must be one of {}", names.join(", ")))
            })
    }
}

/// Where an event takes place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Venue {
    pub name: String,
    pub address: String,
    pub city: String,
    pub zip_code: String,
    /// ISO 3166-1 alpha-2, upper-case.
    pub country: String,
    pub lat: f64,
    pub lon: f64,
}

impl Venue {
    pub fn new(
        name: &str,
        address: &str,
        city: &str,
        zip_code: &str,
        country: &str,
        lat: f64,
        lon: f64,
    ) -> Result<Self, ValidationError> {
        let country = country.trim();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ValidationError::new(
                "country",
                "must be a two-letter ISO 3166 code such as US",
            ));
        }
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(ValidationError::new("lat", "must be between -90 and 90"));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(ValidationError::new("lon", "must be between -180 and 180"));
        }
        // Empty where the postal code is unknown (many venues outside the US).
        let zip = text("zipCode", zip_code, 0, 16)?;
        if !zip
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
        {
            return Err(ValidationError::new(
                "zipCode",
                "may hold only letters, digits, spaces and dashes",
            ));
        }
        Ok(Self {
            name: text("name", name, 1, 200)?,
            address: text("address", address, 0, 300)?,
            city: text("city", city, 1, 120)?,
            zip_code: zip,
            country: country.to_ascii_uppercase(),
            lat,
            lon,
        })
    }
}

impl Venue {
    /// A stable id derived from everything that identifies the place, so that a catalog of
    /// many events at one venue stores that venue once.
    pub fn key(&self) -> uuid::Uuid {
        let text = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.name,
            self.address,
            self.city,
            self.zip_code,
            self.country,
            self.lat.to_bits(),
            self.lon.to_bits()
        );
        uuid::Uuid::new_v5(&VENUE_NAMESPACE, text.as_bytes())
    }
}

const VENUE_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c1e_0c4e_2d5b_4a8e_9f0e_b0c5_0ff1_ce00);

/// How a section is sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    /// Numbered seats in `rows` rows (A, B, …) of `seats_per_row` seats each.
    Seated { rows: u32, seats_per_row: u32 },
    /// Standing room or unnumbered places: `capacity` admissions, no seat numbers.
    GeneralAdmission { capacity: u32 },
}

impl SectionKind {
    pub fn capacity(self) -> u32 {
        match self {
            SectionKind::Seated {
                rows,
                seats_per_row,
            } => rows * seats_per_row,
            SectionKind::GeneralAdmission { capacity } => capacity,
        }
    }

    pub fn is_seated(self) -> bool {
        matches!(self, SectionKind::Seated { .. })
    }
}

/// A validated section before it is numbered within its event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSpec {
    pub name: String,
    pub kind: SectionKind,
    pub price: PriceCents,
}

impl SectionSpec {
    pub fn seated(
        name: &str,
        rows: u32,
        seats_per_row: u32,
        price_cents: i64,
    ) -> Result<Self, ValidationError> {
        if !(1..=MAX_ROWS).contains(&rows) {
            return Err(ValidationError::new(
                "rows",
                format!("must be between 1 and {MAX_ROWS}"),
            ));
        }
        if !(1..=MAX_SEATS_PER_ROW).contains(&seats_per_row) {
            return Err(ValidationError::new(
                "seatsPerRow",
                format!("must be between 1 and {MAX_SEATS_PER_ROW}"),
            ));
        }
        Self::build(
            name,
            SectionKind::Seated {
                rows,
                seats_per_row,
            },
            price_cents,
        )
    }

    pub fn general_admission(
        name: &str,
        capacity: u32,
        price_cents: i64,
    ) -> Result<Self, ValidationError> {
        if !(1..=MAX_SEATS_PER_EVENT).contains(&capacity) {
            return Err(ValidationError::new(
                "capacity",
                format!("must be between 1 and {MAX_SEATS_PER_EVENT}"),
            ));
        }
        Self::build(
            name,
            SectionKind::GeneralAdmission { capacity },
            price_cents,
        )
    }

    fn build(name: &str, kind: SectionKind, price_cents: i64) -> Result<Self, ValidationError> {
        Ok(Self {
            name: text("name", name, 1, 100)?,
            kind,
            price: PriceCents::new(price_cents)?,
        })
    }
}

/// A section as stored: numbered 1.. within its event, in the order the organizer gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub number: u16,
    pub name: String,
    pub kind: SectionKind,
    pub price: PriceCents,
}

impl Section {
    /// Every seat (or general-admission place) of this section, in row-major order.
    pub fn seats(&self) -> impl Iterator<Item = SeatSpec> + '_ {
        let (rows, per_row) = match self.kind {
            SectionKind::Seated {
                rows,
                seats_per_row,
            } => (rows, seats_per_row),
            SectionKind::GeneralAdmission { capacity } => (1, capacity),
        };
        (0..rows).flat_map(move |r| {
            let label = self.kind.is_seated().then(|| row_label(r));
            (1..=per_row).map(move |n| SeatSpec {
                id: match &label {
                    Some(l) => SeatId::seated(self.number, l, n),
                    None => SeatId::general_admission(self.number, n),
                },
                section: self.number,
                row: label.clone(),
                row_index: r,
                number: n,
                price: self.price,
            })
        })
    }
}

/// One seat as the geometry of a section defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSpec {
    pub id: SeatId,
    pub section: u16,
    /// `None` for general admission.
    pub row: Option<String>,
    /// 0-based row position (front to back), for best-available ordering.
    pub row_index: u32,
    pub number: u32,
    pub price: PriceCents,
}

/// Row labels as venues print them: A…Z, then AA, AB, …
pub fn row_label(index: u32) -> String {
    let mut n = index as u64 + 1;
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        out.push(b'A' + (n % 26) as u8);
        n /= 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Rules the organizer sets for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Holds and confirmed tickets together, per customer, for this event.
    pub max_tickets_per_customer: u32,
    /// A confirmed booking can be cancelled and refunded within this many hours of its
    /// confirmation (and never after the event starts). 0 means no refunds.
    pub refund_window_hours: u32,
    /// Resale price cap, as a percentage of the face value. 0 forbids resale.
    pub resale_max_price_percent: u32,
    /// A waiting room in front of the on-sale, for events that expect a rush.
    #[serde(default)]
    pub waiting_room: Option<WaitingRoom>,
}

/// An on-sale's waiting room: buyers join from `opens_at`; everyone who joined before the
/// event's `onSaleAt` gets a random place at `onSaleAt`, later arrivals queue behind in order;
/// buyers are admitted at `admit_per_minute` (never more at once than there are free seats),
/// and an admission lets its buyer hold seats for `admission_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoom {
    #[serde(with = "time::serde::rfc3339")]
    pub opens_at: OffsetDateTime,
    pub admit_per_minute: u32,
    pub admission_minutes: u32,
}

impl WaitingRoom {
    pub fn new(
        opens_at: OffsetDateTime,
        admit_per_minute: u32,
        admission_minutes: u32,
    ) -> Result<Self, ValidationError> {
        if !(1..=1_000_000).contains(&admit_per_minute) {
            return Err(ValidationError::new(
                "waitingRoom.admitPerMinute",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=240).contains(&admission_minutes) {
            return Err(ValidationError::new(
                "waitingRoom.admissionMinutes",
                "must be between 1 and 240",
            ));
        }
        if opens_at.year() < 1970 || opens_at.year() > 9999 {
            return Err(ValidationError::new(
                "waitingRoom.opensAt",
                "must be between 1970 and 9999",
            ));
        }
        Ok(Self {
            opens_at: to_micros(opens_at),
            admit_per_minute,
            admission_minutes,
        })
    }

    /// How long an admission lasts.
    pub fn admission(&self) -> time::Duration {
        time::Duration::minutes(i64::from(self.admission_minutes))
    }
}

impl Policies {
    pub const DEFAULT: Policies = Policies {
        max_tickets_per_customer: 8,
        refund_window_hours: 48,
        resale_max_price_percent: 100,
        waiting_room: None,
    };

    pub fn new(
        max_tickets_per_customer: Option<u32>,
        refund_window_hours: Option<u32>,
        resale_max_price_percent: Option<u32>,
    ) -> Result<Self, ValidationError> {
        let p = Policies {
            max_tickets_per_customer: max_tickets_per_customer
                .unwrap_or(Self::DEFAULT.max_tickets_per_customer),
            refund_window_hours: refund_window_hours.unwrap_or(Self::DEFAULT.refund_window_hours),
            resale_max_price_percent: resale_max_price_percent
                .unwrap_or(Self::DEFAULT.resale_max_price_percent),
            waiting_room: None,
        };
        if !(1..=100).contains(&p.max_tickets_per_customer) {
            return Err(ValidationError::new(
                "maxTicketsPerCustomer",
                "must be between 1 and 100",
            ));
        }
        if p.refund_window_hours > 24 * 365 {
            return Err(ValidationError::new(
                "refundWindowHours",
                "must be between 0 and 8760",
            ));
        }
        if p.resale_max_price_percent > 1000 {
            return Err(ValidationError::new(
                "resaleMaxPricePercent",
                "must be between 0 and 1000",
            ));
        }
        Ok(p)
    }
}

/// Everything an organizer says about an event, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    pub name: String,
    pub performers: Vec<String>,
    pub category: Category,
    pub description: String,
    pub starts_at: OffsetDateTime,
    pub on_sale_at: OffsetDateTime,
    pub currency: Currency,
    pub venue: Venue,
    pub sections: Vec<Section>,
    pub policies: Policies,
}

/// The unvalidated parts of an event, as they arrive; [`EventSpec::new`] checks them together.
#[derive(Debug, Clone)]
pub struct EventParts {
    pub name: String,
    pub performers: Vec<String>,
    pub category: Category,
    pub description: String,
    pub starts_at: OffsetDateTime,
    /// `None`: on sale from the moment it is created.
    pub on_sale_at: Option<OffsetDateTime>,
    pub currency: Currency,
    pub venue: Venue,
    pub sections: Vec<SectionSpec>,
    pub policies: Policies,
}

impl EventSpec {
    /// Checks the event as a whole: names, sizes, dates relative to `now`.
    pub fn new(parts: EventParts, now: OffsetDateTime) -> Result<Self, ValidationError> {
        let name = text("name", &parts.name, 1, 200)?;
        if parts.performers.len() > 50 {
            return Err(ValidationError::new("performers", "at most 50 performers"));
        }
        let performers = parts
            .performers
            .iter()
            .enumerate()
            .map(|(i, p)| text(&format!("performers[{i}]"), p, 1, 200))
            .collect::<Result<Vec<_>, _>>()?;
        let description = text("description", &parts.description, 0, 10_000)?;
        if parts.starts_at <= now {
            return Err(ValidationError::new("startsAt", "must be in the future"));
        }
        let on_sale_at = parts.on_sale_at.unwrap_or(now);
        if on_sale_at >= parts.starts_at {
            return Err(ValidationError::new(
                "onSaleAt",
                "must be before the event starts",
            ));
        }
        if let Some(room) = parts.policies.waiting_room
            && room.opens_at > on_sale_at
        {
            return Err(ValidationError::new(
                "policies.waitingRoom.opensAt",
                "must be at or before onSaleAt",
            ));
        }
        if parts.starts_at.year() > 9999 || on_sale_at.year() < 1970 {
            return Err(ValidationError::new(
                "startsAt",
                "must be between 1970 and 9999",
            ));
        }
        if parts.sections.is_empty() {
            return Err(ValidationError::new(
                "sections",
                "an event needs at least one section",
            ));
        }
        if parts.sections.len() > MAX_SECTIONS {
            return Err(ValidationError::new(
                "sections",
                format!("at most {MAX_SECTIONS} sections"),
            ));
        }
        let mut total: u64 = 0;
        let mut sections = Vec::with_capacity(parts.sections.len());
        for (i, s) in parts.sections.into_iter().enumerate() {
            if sections
                .iter()
                .any(|o: &Section| o.name.eq_ignore_ascii_case(&s.name))
            {
                return Err(ValidationError::new(
                    format!("sections[{i}].name"),
                    "section names must be unique within an event",
                ));
            }
            total += u64::from(s.kind.capacity());
            sections.push(Section {
                number: (i + 1) as u16,
                name: s.name,
                kind: s.kind,
                price: s.price,
            });
        }
        if total > u64::from(MAX_SEATS_PER_EVENT) {
            return Err(ValidationError::new(
                "sections",
                format!("at most {MAX_SEATS_PER_EVENT} seats in one event"),
            ));
        }
        Ok(Self {
            name,
            performers,
            category: parts.category,
            description,
            starts_at: to_micros(parts.starts_at),
            on_sale_at: to_micros(on_sale_at),
            currency: parts.currency,
            venue: parts.venue,
            sections,
            policies: parts.policies,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.sections.iter().map(|s| s.kind.capacity()).sum()
    }

    pub fn min_price(&self) -> PriceCents {
        self.sections
            .iter()
            .map(|s| s.price)
            .min()
            .unwrap_or(PriceCents::ZERO)
    }

    pub fn max_price(&self) -> PriceCents {
        self.sections
            .iter()
            .map(|s| s.price)
            .max()
            .unwrap_or(PriceCents::ZERO)
    }

    pub fn section_named(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name.trim()))
    }

    pub fn section(&self, number: u16) -> Option<&Section> {
        self.sections.get(usize::from(number).checked_sub(1)?)
    }

    pub fn sale_state(&self, now: OffsetDateTime) -> SaleState {
        if now >= self.starts_at {
            SaleState::Started
        } else if now < self.on_sale_at {
            SaleState::NotYetOnSale
        } else {
            SaleState::OnSale
        }
    }

    /// The position of every seat in seat-id order is not needed; this is the seat a seat id
    /// names, if the geometry has it.
    pub fn seat(&self, id: &SeatId) -> Option<SeatSpec> {
        let mut parts = id.as_str().splitn(3, '-');
        let section: u16 = parts.next()?.parse().ok()?;
        let row = parts.next()?;
        let number: u32 = parts.next()?.parse().ok()?;
        let sec = self.section(section)?;
        let row_index = match sec.kind {
            SectionKind::GeneralAdmission { capacity } => {
                (row == "GA" && (1..=capacity).contains(&number)).then_some(0)?
            }
            SectionKind::Seated {
                rows,
                seats_per_row,
            } => {
                let r = row_index(row)?;
                (r < rows && (1..=seats_per_row).contains(&number)).then_some(r)?
            }
        };
        Some(SeatSpec {
            id: id.clone(),
            section,
            row: sec.kind.is_seated().then(|| row.to_owned()),
            row_index,
            number,
            price: sec.price,
        })
    }
}

/// Times are kept to the microsecond (what both stores hold), so that what an API answers on
/// creation equals what every later read returns.
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// The inverse of [`row_label`].
pub fn row_index(label: &str) -> Option<u32> {
    if label.is_empty() || label.len() > 6 || !label.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut n: u64 = 0;
    for b in label.bytes() {
        n = n * 26 + u64::from(b - b'A' + 1);
    }
    u32::try_from(n - 1).ok()
}

/// Where an event is in its life, for the purpose of selling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    NotYetOnSale,
    OnSale,
    Started,
    /// Called off by its organizer: nothing sells, every ticket was refunded.
    Cancelled,
}

impl SaleState {
    /// As the API shows it (`saleStatus`).
    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::NotYetOnSale => "NOT_YET_ON_SALE",
            SaleState::OnSale => "ON_SALE",
            SaleState::Started => "STARTED",
            SaleState::Cancelled => "CANCELLED",
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub organizer: CustomerId,
    pub created_at: OffsetDateTime,
    pub spec: EventSpec,
    /// When its organizer cancelled it, if they did.
    #[serde(default)]
    pub cancelled_at: Option<OffsetDateTime>,
}

impl Event {
    /// Where the event is in its life at `now`: cancelled, or as its schedule says.
    pub fn sale_state(&self, now: OffsetDateTime) -> SaleState {
        if self.cancelled_at.is_some() {
            SaleState::Cancelled
        } else {
            self.spec.sale_state(now)
        }
    }
}

fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, ValidationError> {
    let t = raw.trim();
    let n = t.chars().count();
    if n < min {
        return Err(ValidationError::new(
            field,
            if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn parts() -> EventParts {
        EventParts {
            name: "Eras".into(),
            performers: vec!["Taylor Swift".into()],
            category: Category::Concert,
            description: String::new(),
            starts_at: datetime!(2027-06-01 19:30 UTC),
            on_sale_at: None,
            currency: "USD".parse().unwrap(),
            venue: Venue::new(
                "Lumen Field",
                "800 Occidental Ave S",
                "Seattle",
                "98134",
                "us",
                47.5952,
                -122.3316,
            )
            .unwrap(),
            sections: vec![
                SectionSpec::seated("Floor", 3, 4, 25_000).unwrap(),
                SectionSpec::general_admission("Lawn", 5, 5_000).unwrap(),
            ],
            policies: Policies::DEFAULT,
        }
    }

    #[test]
    fn geometry_lists_every_seat_once() {
        let e = EventSpec::new(parts(), datetime!(2026-01-01 0:00 UTC)).unwrap();
        assert_eq!(e.venue.country, "US");
        let seats: Vec<_> = e.sections.iter().flat_map(|s| s.seats()).collect();
        assert_eq!(seats.len(), 17);
        assert_eq!(seats[0].id.as_str(), "1-A-1");
        assert_eq!(seats[11].id.as_str(), "1-C-4");
        assert_eq!(seats[12].id.as_str(), "2-GA-1");
        for s in &seats {
            assert_eq!(e.seat(&s.id).as_ref(), Some(s));
        }
        assert!(e.seat(&SeatId::parse("1-D-1").unwrap()).is_none());
        assert!(e.seat(&SeatId::parse("2-GA-6").unwrap()).is_none());
        assert!(e.seat(&SeatId::parse("3-A-1").unwrap()).is_none());
    }

    #[test]
    fn dates_and_names_are_checked() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let mut p = parts();
        p.on_sale_at = Some(datetime!(2027-07-01 0:00 UTC));
        assert_eq!(EventSpec::new(p, now).unwrap_err().field, "onSaleAt");
        let mut p = parts();
        p.starts_at = datetime!(2025-01-01 0:00 UTC);
        assert_eq!(EventSpec::new(p, now).unwrap_err().field, "startsAt");
        let mut p = parts();
        p.sections
            .push(SectionSpec::seated("floor", 1, 1, 1).unwrap());
        assert_eq!(
            EventSpec::new(p, now).unwrap_err().field,
            "sections[2].name"
        );
        let mut p = parts();
        p.sections = vec![SectionSpec::general_admission("A", 150_000, 1).unwrap(); 2];
        p.sections[1].name = "B".into();
        assert_eq!(EventSpec::new(p, now).unwrap_err().field, "sections");
    }

    #[test]
    fn sale_states() {
        let e = EventSpec::new(
            EventParts {
                on_sale_at: Some(datetime!(2026-06-01 0:00 UTC)),
                ..parts()
            },
            datetime!(2026-01-01 0:00 UTC),
        )
        .unwrap();
        assert_eq!(
            e.sale_state(datetime!(2026-05-01 0:00 UTC)),
            SaleState::NotYetOnSale
        );
        assert_eq!(
            e.sale_state(datetime!(2026-06-01 0:00 UTC)),
            SaleState::OnSale
        );
        assert_eq!(
            e.sale_state(datetime!(2027-06-01 19:30 UTC)),
            SaleState::Started
        );
    }

    proptest! {
        #[test]
        fn row_labels_round_trip(i in 0u32..1_000_000) {
            let l = row_label(i);
            prop_assert_eq!(row_index(&l), Some(i));
        }
    }

    #[test]
    fn row_labels_look_like_venues() {
        assert_eq!(row_label(0), "A");
        assert_eq!(row_label(25), "Z");
        assert_eq!(row_label(26), "AA");
        assert_eq!(row_label(701), "ZZ");
        assert_eq!(row_label(702), "AAA");
    }
}
