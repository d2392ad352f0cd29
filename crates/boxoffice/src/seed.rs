//! A deterministic demo catalog: the same seed and day give the same events.
//!
//! Places are real (US ZIP codes and world cities from GeoNames), and a share of the concerts
//! are real tours at the venues they played (from Wikipedia). Everything else — team names,
//! plays, comedians, festivals — is composed from word lists, so that search has a varied,
//! realistic vocabulary to work with. Venues come in many sizes, from 150-place clubs to
//! 70,000-seat stadiums, seated and general admission; seats are laid out lazily by the store,
//! so a catalog of 100,000 events stays small until people buy.

use boxoffice_domain::event::{
    Category, Event, EventParts, EventSpec, Policies, SectionSpec, Venue,
};
use boxoffice_domain::ids::{CustomerId, EventId};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::{Duration, OffsetDateTime, Time};

const PLACES: &str = include_str!("../data/places.tsv");
const CITIES: &str = include_str!("../data/cities.tsv");
const TOURS: &str = include_str!("../data/tours.tsv");

/// A US place with one of its ZIP codes.
#[derive(Debug, Clone)]
pub struct Place {
    pub zip: &'static str,
    pub name: &'static str,
    pub state: &'static str,
    pub lat: f64,
    pub lon: f64,
}

/// A city outside the US.
#[derive(Debug, Clone)]
pub struct City {
    pub name: &'static str,
    pub country: &'static str,
    pub lat: f64,
    pub lon: f64,
}

/// One tour stop: an artist's tour at a venue.
#[derive(Debug, Clone)]
pub struct TourStop {
    pub artist: &'static str,
    pub tour: &'static str,
    pub venue: &'static str,
    pub city: &'static str,
    pub country: &'static str,
    pub zip: &'static str,
    pub lat: f64,
    pub lon: f64,
}

fn cols(line: &'static str) -> Vec<&'static str> {
    line.split('\t').collect()
}

pub fn places() -> Vec<Place> {
    PLACES
        .lines()
        .filter_map(|l| {
            let c = cols(l);
            Some(Place {
                zip: c.first()?,
                name: c.get(1)?,
                state: c.get(2)?,
                lat: c.get(3)?.parse().ok()?,
                lon: c.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

pub fn cities() -> Vec<City> {
    CITIES
        .lines()
        .filter_map(|l| {
            let c = cols(l);
            Some(City {
                name: c.first()?,
                country: c.get(1)?,
                lat: c.get(2)?.parse().ok()?,
                lon: c.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

pub fn tours() -> Vec<TourStop> {
    TOURS
        .lines()
        .filter_map(|l| {
            let c = cols(l);
            Some(TourStop {
                artist: c.first()?,
                tour: c.get(1)?,
                venue: c.get(2)?,
                city: c.get(3)?,
                country: c.get(4)?,
                zip: c.get(5)?,
                lat: c.get(6)?.parse().ok()?,
                lon: c.get(7)?.parse().ok()?,
            })
        })
        .collect()
}

const BAND_FIRST: &[&str] = &[
    "Velvet", "Neon", "Midnight", "Silver", "Electric", "Crimson", "Golden", "Wild", "Lunar",
    "Paper", "Glass", "Iron", "Hollow", "Echo", "Northern", "Savage", "Gentle", "Broken", "Atomic",
    "Desert", "Ocean", "Static", "Cosmic", "Rusty", "Honey", "Thunder", "Violet",
];
const BAND_SECOND: &[&str] = &[
    "Foxes",
    "Harbor",
    "Parade",
    "Machines",
    "Tigers",
    "Lanterns",
    "Rivers",
    "Ghosts",
    "Satellites",
    "Wolves",
    "Hearts",
    "Kings",
    "Mirrors",
    "Sparrows",
    "Engines",
    "Owls",
    "Comets",
    "Saints",
    "Drifters",
    "Avenue",
    "Orchestra",
    "Collective",
    "Brothers",
    "Sisters",
];
const GENRES: &[&str] = &[
    "Jazz",
    "Blues",
    "Folk",
    "Country",
    "Indie",
    "Electronic",
    "Hip-Hop",
    "Rock",
    "Bluegrass",
    "Reggae",
    "Latin",
    "Soul",
    "Gospel",
    "Metal",
    "Classical",
    "World Music",
];
const MASCOTS: &[&str] = &[
    "Hawks", "Bears", "Rangers", "Storm", "Pioneers", "Mariners", "Bulldogs", "Falcons", "Titans",
    "Comets", "Rebels", "Wildcats", "Knights", "Thunder", "Lions", "Rockets",
];
const SPORTS: &[&str] = &[
    "Basketball",
    "Hockey",
    "Baseball",
    "Football",
    "Soccer",
    "Volleyball",
];
const PLAYS: &[&str] = &[
    "Hamlet",
    "Macbeth",
    "A Midsummer Night's Dream",
    "Romeo and Juliet",
    "The Tempest",
    "Twelfth Night",
    "King Lear",
    "Othello",
    "The Importance of Being Earnest",
    "Pygmalion",
    "A Doll's House",
    "The Cherry Orchard",
    "Uncle Vanya",
    "The Seagull",
    "Cyrano de Bergerac",
    "The Three Musketeers",
    "Les Misérables",
    "The Phantom of the Opera",
    "Peter Pan",
    "Pride and Prejudice",
    "Jane Eyre",
    "Wuthering Heights",
    "Dracula",
    "Frankenstein",
    "The Nutcracker",
    "Swan Lake",
    "Carmen",
    "La Bohème",
    "The Magic Flute",
    "Don Giovanni",
];
const FIRST_NAMES: &[&str] = &[
    "Maya", "Jonah", "Priya", "Diego", "Aisha", "Liam", "Sofia", "Mateo", "Hana", "Noah", "Zara",
    "Elias", "Chloé", "Björn", "Amara", "Kenji", "Lucía", "Omar", "Freya", "Tariq",
];
const LAST_NAMES: &[&str] = &[
    "Okafor",
    "Lindqvist",
    "Ramírez",
    "Nakamura",
    "O'Brien",
    "Kowalski",
    "Haddad",
    "Novak",
    "Fitzgerald",
    "Moreau",
    "Castillo",
    "Andersen",
    "Petrov",
    "Mensah",
    "Delacroix",
    "Singh",
];
const COMEDY_TOURS: &[&str] = &[
    "Live",
    "Unfiltered",
    "The Tour",
    "Stand-Up Special",
    "No Refunds",
    "Overthinking It",
];
const FAMILY: &[&str] = &[
    "Circus Spectacular",
    "Ice Dreams on Tour",
    "Dinosaur Adventure Live",
    "Magic of the Puppets",
    "Science Show for Kids",
    "Acrobats of the World",
    "Monster Truck Rally",
    "Holiday Lights Parade",
];
const CONFERENCE: &[&str] = &[
    "Cloud Summit",
    "Data Engineering Days",
    "Design Systems Conference",
    "Rust Week",
    "Climate Tech Forum",
    "Startup Expo",
    "Healthcare Innovation Summit",
    "Game Developers Meetup",
];
const ARTS: &[&str] = &[
    "Symphony Orchestra: Beethoven's Ninth",
    "Chamber Music Evening",
    "Ballet Gala",
    "Opera Night: Verdi",
    "Philharmonic plays Mahler",
    "String Quartet: Schubert",
    "Contemporary Dance Showcase",
    "Choir Festival",
];
const VENUE_KINDS_CLUB: &[&str] = &["Music Hall", "Ballroom", "Lounge", "Club", "Social Club"];
const VENUE_KINDS_THEATER: &[&str] = &[
    "Theatre",
    "Playhouse",
    "Opera House",
    "Performing Arts Center",
];
const VENUE_KINDS_ARENA: &[&str] = &["Arena", "Coliseum", "Center", "Pavilion"];
const VENUE_KINDS_STADIUM: &[&str] = &["Stadium", "Field", "Park"];
const STREETS: &[&str] = &[
    "Main St",
    "Broadway",
    "Market St",
    "2nd Ave",
    "Park Ave",
    "River Rd",
    "Lake Shore Dr",
    "Elm St",
    "Sunset Blvd",
    "Civic Center Plaza",
];

/// The size class of a venue, which decides its sections.
#[derive(Debug, Clone, Copy)]
enum Size {
    Club,
    Theater,
    Arena,
    Stadium,
    Fairground,
}

/// Generates events deterministically from a seed.
#[derive(Debug)]
pub struct Generator {
    rng: ChaCha8Rng,
    now: OffsetDateTime,
    day0: OffsetDateTime,
    places: Vec<Place>,
    cities: Vec<City>,
    tours: Vec<TourStop>,
    organizer: CustomerId,
}

impl Generator {
    pub fn new(seed: u64, now: OffsetDateTime) -> Self {
        let now = boxoffice_domain::event::to_micros(now);
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now,
            day0: now.replace_time(Time::MIDNIGHT),
            places: places(),
            cities: cities(),
            tours: tours(),
            organizer: CustomerId::parse("demo-organizer").expect("valid id"),
        }
    }

    pub fn events(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.event()).collect()
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        *xs.choose(&mut self.rng).expect("non-empty list")
    }

    /// One event. Retries with a new draw in the rare case a combination does not validate.
    pub fn event(&mut self) -> Event {
        loop {
            if let Some(e) = self.try_event() {
                return e;
            }
        }
    }

    fn try_event(&mut self) -> Option<Event> {
        let mut id_bytes = [0u8; 16];
        self.rng.fill(&mut id_bytes);
        let id = uuid::Builder::from_random_bytes(id_bytes).into_uuid();
        let roll: u32 = self.rng.random_range(0..100);
        let (category, name, performers, venue, size) = match roll {
            0..=19 => self.tour_concert(),
            20..=34 => self.concert(),
            35..=54 => self.sports(),
            55..=66 => self.theater(),
            67..=74 => self.comedy(),
            75..=82 => self.festival(),
            83..=89 => self.family(),
            90..=94 => self.conference(),
            _ => self.arts(),
        };
        let currency = currency_of(&venue.country);
        let base_price: i64 = match category {
            Category::Concert => self.rng.random_range(35..=180) * 100,
            Category::Sports => self.rng.random_range(25..=150) * 100,
            Category::Theater | Category::Arts => self.rng.random_range(30..=120) * 100,
            Category::Comedy => self.rng.random_range(20..=75) * 100,
            Category::Festival => self.rng.random_range(60..=300) * 100,
            Category::Family => self.rng.random_range(15..=60) * 100,
            Category::Conference => self.rng.random_range(99..=900) * 100,
            Category::Other => 5_000,
        };
        let sections = self.sections(size, base_price)?;
        let days_ahead: i64 = self.rng.random_range(1..=365);
        let minutes: i64 = self.rng.random_range(0..=14) * 15 + 17 * 60;
        let starts_at = self.day0 + Duration::days(days_ahead) + Duration::minutes(minutes);
        let on_sale_at = if self.rng.random_bool(0.1) {
            // A tenth of the catalog goes on sale later: waiting-room material.
            Some(self.now + Duration::days(self.rng.random_range(1..days_ahead.max(2))))
                .filter(|t| *t < starts_at)
        } else {
            None
        };
        let policies = Policies::new(
            Some(self.pick(&[4, 6, 8, 8, 10])),
            Some(self.pick(&[0, 24, 48, 48, 72, 168])),
            Some(self.pick(&[0, 100, 100, 110, 120, 150])),
        )
        .ok()?;
        let description = format!(
            "{name} at {}, {}. {}",
            venue.name,
            venue.city,
            match category {
                Category::Concert => "Live in concert.",
                Category::Sports => "Regular season game.",
                Category::Theater => "A new production.",
                Category::Comedy => "Stand-up comedy; ages 18+.",
                Category::Festival => "Multiple stages, all day.",
                Category::Family => "Fun for all ages.",
                Category::Conference => "Talks, workshops and networking.",
                Category::Arts => "An evening of music and dance.",
                Category::Other => "",
            }
        );
        let spec = EventSpec::new(
            EventParts {
                name,
                performers,
                category,
                description,
                starts_at,
                on_sale_at,
                currency: currency.parse().ok()?,
                venue,
                sections,
                policies,
            },
            self.now,
        )
        .ok()?;
        Some(Event {
            id: EventId(id),
            organizer: self.organizer.clone(),
            created_at: self.now,
            spec,
            cancelled_at: None,
        })
    }

    fn us_venue(&mut self, kinds: &[&str]) -> Option<Venue> {
        let p = self.places.choose(&mut self.rng)?.clone();
        let kind = self.pick(kinds);
        let street = self.pick(STREETS);
        let number: u32 = self.rng.random_range(1..=2999);
        Venue::new(
            &format!("{} {kind}", p.name),
            &format!("{number} {street}"),
            p.name,
            p.zip,
            "US",
            p.lat,
            p.lon,
        )
        .ok()
    }

    /// A venue in a US place four times out of five, else in a large world city.
    fn any_venue(&mut self, kinds: &[&str]) -> Option<Venue> {
        if self.rng.random_bool(0.8) {
            return self.us_venue(kinds);
        }
        let c = self.cities.choose(&mut self.rng)?.clone();
        let kind = self.pick(kinds);
        Venue::new(
            &format!("{} {kind}", c.name),
            "",
            c.name,
            "",
            c.country,
            c.lat,
            c.lon,
        )
        .ok()
    }

    fn tour_concert(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let Some(t) = self.tours.choose(&mut self.rng).cloned() else {
            return self.concert();
        };
        let Ok(venue) = Venue::new(t.venue, "", t.city, t.zip, t.country, t.lat, t.lon) else {
            return self.concert();
        };
        let size = if self.rng.random_bool(0.5) {
            Size::Stadium
        } else {
            Size::Arena
        };
        (
            Category::Concert,
            format!("{} | {}", t.artist, t.tour),
            vec![t.artist.to_owned()],
            venue,
            size,
        )
    }

    fn concert(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let band = format!("{} {}", self.pick(BAND_FIRST), self.pick(BAND_SECOND));
        let (kinds, size) = match self.rng.random_range(0..10) {
            0..=4 => (VENUE_KINDS_CLUB, Size::Club),
            5..=7 => (VENUE_KINDS_THEATER, Size::Theater),
            _ => (VENUE_KINDS_ARENA, Size::Arena),
        };
        let venue = self.venue_or_default(kinds);
        let mut performers = vec![band.clone()];
        if self.rng.random_bool(0.4) {
            performers.push(format!(
                "{} {}",
                self.pick(BAND_FIRST),
                self.pick(BAND_SECOND)
            ));
        }
        let genre = self.pick(GENRES);
        (
            Category::Concert,
            format!("{band}: {genre} Night"),
            performers,
            venue,
            size,
        )
    }

    fn sports(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let venue = self.venue_or_default(VENUE_KINDS_STADIUM);
        let home = format!("{} {}", venue.city, self.pick(MASCOTS));
        let away_place = self
            .places
            .choose(&mut self.rng)
            .map(|p| p.name)
            .unwrap_or("Springfield");
        let away = format!("{away_place} {}", self.pick(MASCOTS));
        let sport = self.pick(SPORTS);
        let size = if self.rng.random_bool(0.5) {
            Size::Stadium
        } else {
            Size::Arena
        };
        (
            Category::Sports,
            format!("{home} vs {away} ({sport})"),
            vec![home, away],
            venue,
            size,
        )
    }

    fn theater(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let venue = self.venue_or_default(VENUE_KINDS_THEATER);
        let play = self.pick(PLAYS);
        let company = format!("{} Repertory Company", venue.city);
        (
            Category::Theater,
            play.to_owned(),
            vec![company],
            venue,
            Size::Theater,
        )
    }

    fn comedy(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let who = format!("{} {}", self.pick(FIRST_NAMES), self.pick(LAST_NAMES));
        let venue = self.venue_or_default(&["Comedy Club", "Laugh Factory", "Theatre"]);
        let tour = self.pick(COMEDY_TOURS);
        (
            Category::Comedy,
            format!("{who}: {tour}"),
            vec![who],
            venue,
            Size::Club,
        )
    }

    fn festival(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let venue = self.venue_or_default(&["Fairgrounds", "Park", "Waterfront"]);
        let genre = self.pick(GENRES);
        let lineup: Vec<String> = (0..self.rng.random_range(2..=5))
            .map(|_| format!("{} {}", self.pick(BAND_FIRST), self.pick(BAND_SECOND)))
            .collect();
        (
            Category::Festival,
            format!("{} {genre} Festival", venue.city),
            lineup,
            venue,
            Size::Fairground,
        )
    }

    fn family(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let venue = self.venue_or_default(VENUE_KINDS_ARENA);
        let show = self.pick(FAMILY);
        (
            Category::Family,
            show.to_owned(),
            vec![],
            venue,
            Size::Arena,
        )
    }

    fn conference(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let venue = self.venue_or_default(&["Convention Center", "Conference Center"]);
        let name = format!("{} {}", self.pick(CONFERENCE), self.day0.year() + 1);
        let speakers: Vec<String> = (0..3)
            .map(|_| format!("{} {}", self.pick(FIRST_NAMES), self.pick(LAST_NAMES)))
            .collect();
        (Category::Conference, name, speakers, venue, Size::Theater)
    }

    fn arts(&mut self) -> (Category, String, Vec<String>, Venue, Size) {
        let venue = self.venue_or_default(VENUE_KINDS_THEATER);
        let show = self.pick(ARTS);
        (
            Category::Arts,
            format!("{} {show}", venue.city),
            vec![],
            venue,
            Size::Theater,
        )
    }

    fn venue_or_default(&mut self, kinds: &[&str]) -> Venue {
        loop {
            if let Some(v) = self.any_venue(kinds) {
                return v;
            }
        }
    }

    fn sections(&mut self, size: Size, base: i64) -> Option<Vec<SectionSpec>> {
        let r = &mut self.rng;
        let price = |mult: f64| ((base as f64 * mult) as i64 / 100).max(1) * 100;
        let s = match size {
            Size::Club => vec![
                SectionSpec::general_admission(
                    "General Admission",
                    r.random_range(150..=1500),
                    price(1.0),
                )
                .ok()?,
            ],
            Size::Theater => {
                let mut v = vec![
                    SectionSpec::seated(
                        "Orchestra",
                        r.random_range(12..=30),
                        r.random_range(16..=40),
                        price(1.5),
                    )
                    .ok()?,
                ];
                v.push(
                    SectionSpec::seated(
                        "Mezzanine",
                        r.random_range(6..=14),
                        r.random_range(16..=36),
                        price(1.0),
                    )
                    .ok()?,
                );
                if r.random_bool(0.6) {
                    v.push(
                        SectionSpec::seated(
                            "Balcony",
                            r.random_range(6..=12),
                            r.random_range(16..=36),
                            price(0.6),
                        )
                        .ok()?,
                    );
                }
                v
            }
            Size::Arena => {
                let mut v = vec![
                    SectionSpec::general_admission(
                        "Floor",
                        r.random_range(1500..=5000),
                        price(1.8),
                    )
                    .ok()?,
                ];
                for (i, name) in ["Lower Bowl", "Club Level", "Upper Bowl"]
                    .iter()
                    .enumerate()
                {
                    v.push(
                        SectionSpec::seated(
                            name,
                            r.random_range(15..=30),
                            r.random_range(80..=160),
                            price(1.4 - 0.35 * i as f64),
                        )
                        .ok()?,
                    );
                }
                v
            }
            Size::Stadium => {
                let mut v = vec![
                    SectionSpec::general_admission(
                        "Field",
                        r.random_range(5000..=15000),
                        price(2.0),
                    )
                    .ok()?,
                ];
                for (i, name) in ["Lower Level", "Club Seats", "Mezzanine", "Upper Level"]
                    .iter()
                    .enumerate()
                {
                    v.push(
                        SectionSpec::seated(
                            name,
                            r.random_range(20..=45),
                            r.random_range(200..=400),
                            price(1.6 - 0.3 * i as f64),
                        )
                        .ok()?,
                    );
                }
                v
            }
            Size::Fairground => vec![
                SectionSpec::general_admission(
                    "Day Pass",
                    r.random_range(3000..=40000),
                    price(1.0),
                )
                .ok()?,
                SectionSpec::general_admission("VIP", r.random_range(200..=2000), price(2.5))
                    .ok()?,
            ],
        };
        Some(s)
    }
}

fn currency_of(country: &str) -> &'static str {
    match country {
        "US" | "PR" | "EC" | "SV" | "PA" => "USD",
        "CA" => "CAD",
        "GB" => "GBP",
        "JP" => "JPY",
        "AU" => "AUD",
        "NZ" => "NZD",
        "CH" => "CHF",
        "SE" => "SEK",
        "NO" => "NOK",
        "DK" => "DKK",
        "PL" => "PLN",
        "BR" => "BRL",
        "MX" => "MXN",
        "IN" => "INR",
        "CN" => "CNY",
        "KR" => "KRW",
        "ZA" => "ZAR",
        "SG" => "SGD",
        "HK" => "HKD",
        "AR" => "ARS",
        "CZ" => "CZK",
        "HU" => "HUF",
        "TR" => "TRY",
        "AE" => "AED",
        "DE" | "FR" | "ES" | "IT" | "NL" | "BE" | "AT" | "IE" | "FI" | "PT" | "GR" | "EE"
        | "LV" | "LT" | "LU" | "SK" | "SI" | "MT" | "CY" | "HR" | "MC" | "ME" => "EUR",
        _ => "USD",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_catalog() {
        let now = OffsetDateTime::now_utc();
        let a = Generator::new(7, now).events(200);
        let b = Generator::new(7, now).events(200);
        let c = Generator::new(8, now).events(200);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn catalog_is_varied_and_real() {
        let now = OffsetDateTime::now_utc();
        let events = Generator::new(1, now).events(2000);
        let cats: std::collections::HashSet<_> = events.iter().map(|e| e.spec.category).collect();
        assert!(cats.len() >= 8, "{cats:?}");
        let sizes: Vec<u32> = events.iter().map(|e| e.spec.capacity()).collect();
        assert!(sizes.iter().any(|&s| s < 1_000));
        assert!(sizes.iter().any(|&s| s > 40_000));
        assert!(events.iter().any(|e| e.spec.venue.country != "US"));
        assert!(
            events
                .iter()
                .any(|e| e.spec.sections.iter().any(|s| s.kind.is_seated()))
        );
        assert!(
            events
                .iter()
                .any(|e| e.spec.sections.iter().any(|s| !s.kind.is_seated()))
        );
        // Real places: a ZIP code from the GeoNames table.
        let zips: std::collections::HashSet<_> = places().into_iter().map(|p| p.zip).collect();
        assert!(
            events
                .iter()
                .filter(|e| e.spec.venue.country == "US")
                .all(|e| zips.contains(e.spec.venue.zip_code.as_str()))
        );
        assert!(
            events
                .iter()
                .any(|e| e.spec.performers.iter().any(|p| p == "Taylor Swift"))
        );
    }
}
