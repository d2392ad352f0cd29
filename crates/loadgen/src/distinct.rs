//! Distinct searches: a mix the answer cache cannot flatter.
//!
//! `search` (the Zipf mix) repeats its popular searches, as a ticket site's traffic does, so
//! most of its answers come from the node's answer cache. This mix builds a pool of distinct
//! searches (40,000 by default, never fewer than asked for) and sends each one once, in a
//! shuffled order, so that every answer is computed. The words come from real data nobody on
//! the project wrote (`../shared/data`, read at run time, nothing derived is stored): artist,
//! tour, venue and city names of world tours (English Wikipedia, CC BY-SA 4.0), one third of
//! them with a typo, and US ZIP codes and their coordinates (GeoNames, CC BY 4.0) for zip and
//! radius searches; with category, price and date filters, `availableOnly`, and every sort.
//!
//! Distinct means distinct to the server: two searches that parse to the same request (case,
//! spacing) count once. The pool is deterministic for a seed; a run takes the pool from
//! `--offset` on, so that consecutive runs against one node (several load levels) can use
//! disjoint slices (see `bench/search-distinct.sh`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::driver::{BoxFuture, Http, Rng, Scenario};

const CATEGORIES: [&str; 8] = [
    "concert",
    "sports",
    "theater",
    "comedy",
    "festival",
    "family",
    "conference",
    "arts",
];

/// One concert date of a world tour.
#[derive(Debug, Clone)]
struct TourDate {
    artist: String,
    tour: String,
    venue: String,
    city: String,
}

#[derive(Debug, Clone)]
struct Zip {
    code: String,
    place: String,
    lat: f64,
    lon: f64,
}

/// The kinds of search, by weight (per mille), and the label each is timed under.
const MIX: [(&str, u32); 12] = [
    ("artist", 130),
    ("tour", 80),
    ("venue", 130),
    ("city", 90),
    ("artist+city", 70),
    ("venue+city", 50),
    ("zip", 90),
    ("zip+q", 30),
    ("geo", 130),
    ("geo+q", 40),
    ("browse", 100),
    ("dates", 60),
];

/// Reads RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and newlines.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// Rows of a CSV file as maps from its header's column names.
fn read_csv(path: &Path, columns: &[&str]) -> anyhow::Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = csv_records(&text).into_iter();
    let header = records.next().context("an empty CSV file")?;
    let at: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h.trim() == *c)
                .with_context(|| format!("{}: no column {c}", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(records
        .filter(|r| r.len() >= header.len())
        .map(|r| at.iter().map(|&i| r[i].trim().to_owned()).collect())
        .collect())
}

/// One typing slip in one word of four letters or more (the longest, or a random one): two
/// neighbours swapped, a letter dropped, doubled or replaced by a keyboard neighbour. `None`
/// when no word is long enough.
fn typo(s: &str, rng: &mut Rng) -> Option<String> {
    let mut words: Vec<Vec<char>> = s.split_whitespace().map(|w| w.chars().collect()).collect();
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].len() >= 4 && words[i].iter().all(|c| c.is_alphabetic()))
        .collect();
    let &i = long.get(rng.random_range(0..long.len().max(1)))?;
    let original = words[i].clone();
    // A slip that changes nothing (two equal letters swapped) does not count: try again.
    while words[i] == original {
        let w = &mut words[i];
        // Never the first letter: people get that right.
        let k = rng.random_range(1..w.len());
        match rng.random_range(0..4) {
            0 if k + 1 < w.len() => w.swap(k, k + 1),
            1 => {
                w.remove(k);
            }
            2 => w.insert(k, w[k]),
            _ => {
                const ROWS: [&str; 3] = ["qwertyuiop", "asdfghjkl", "zxcvbnm"];
                let c = w[k].to_ascii_lowercase();
                let near = ROWS.iter().find_map(|row| {
                    let p = row.find(c)?;
                    let b = row.as_bytes();
                    Some(if p + 1 < b.len() { b[p + 1] } else { b[p - 1] } as char)
                });
                w[k] = near.unwrap_or(if c == 'e' { 'a' } else { 'e' });
            }
        }
    }
    Some(
        words
            .iter()
            .map(|w| w.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The pool: distinct searches, each with the kind it is timed under.
#[derive(Debug)]
pub struct DistinctMix {
    queries: Vec<(&'static str, String)>,
    next: AtomicUsize,
    /// Searches whose words carry a typo.
    pub typos: usize,
}

struct Sources {
    tours: Vec<TourDate>,
    artists: Vec<String>,
    tour_titles: Vec<String>,
    venues: Vec<(String, String)>,
    cities: Vec<String>,
    zips: Vec<Zip>,
    /// Day boundaries from today, RFC 3339.
    days: Vec<String>,
}

fn distinct(mut v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.retain(|s| !s.is_empty() && seen.insert(s.to_lowercase()));
    v
}

impl DistinctMix {
    /// Builds `count` distinct searches from the CSV files under `data` (the shared data
    /// directory), deterministically for `seed`; the run starts at `offset` in the pool.
    pub fn new(data: &Path, count: usize, seed: u64, offset: usize) -> anyhow::Result<Self> {
        let tours: Vec<TourDate> = read_csv(
            &data.join("world-tours/world_tours.csv"),
            &["Artist", "Tour title", "Venue", "City"],
        )?
        .into_iter()
        .map(|r| TourDate {
            artist: r[0].clone(),
            tour: r[1].clone(),
            venue: r[2].clone(),
            city: r[3].clone(),
        })
        .filter(|t| !t.artist.is_empty() && !t.venue.is_empty())
        .collect();
        let zips: Vec<Zip> = read_csv(
            &data.join("us-zips/us_zips.csv"),
            &["postal_code", "place_name", "latitude", "longitude"],
        )?
        .into_iter()
        .filter_map(|r| {
            Some(Zip {
                code: r[0].clone(),
                place: r[1].clone(),
                lat: r[2].parse().ok()?,
                lon: r[3].parse().ok()?,
            })
        })
        .collect();
        if tours.is_empty() || zips.is_empty() {
            bail!("no tours or no zip codes under {}", data.display());
        }
        let mut venues: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        for t in &tours {
            if seen.insert(t.venue.to_lowercase()) {
                venues.push((t.venue.clone(), t.city.clone()));
            }
        }
        let today = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
        let sources = Sources {
            artists: distinct(tours.iter().map(|t| t.artist.clone()).collect()),
            tour_titles: distinct(tours.iter().map(|t| t.tour.clone()).collect()),
            cities: distinct(tours.iter().map(|t| t.city.clone()).collect()),
            venues,
            tours,
            zips,
            days: (0..=400)
                .map(|d| {
                    (today + time::Duration::days(d))
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                })
                .collect(),
        };
        let mut rng = Rng::seed_from_u64(seed);
        let mut seen: HashSet<String> = HashSet::with_capacity(count * 2);
        let mut queries = Vec::with_capacity(count);
        let mut typos = 0;
        let mut attempts = 0usize;
        while queries.len() < count {
            attempts += 1;
            if attempts > count * 50 {
                bail!(
                    "only {} distinct searches from {} attempts",
                    queries.len(),
                    attempts
                );
            }
            let kind = pick_kind(&mut rng);
            let (url, typo) = sources.query(kind, &mut rng);
            // Two spellings of one request are one search to the server's cache.
            if seen.insert(url.to_lowercase()) {
                typos += usize::from(typo);
                queries.push((kind, url));
            }
        }
        queries.shuffle(&mut rng);
        Ok(Self {
            queries,
            next: AtomicUsize::new(offset),
            typos,
        })
    }

    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Searches started so far (from the offset on).
    pub fn taken(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    fn take(&self) -> &(&'static str, String) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.queries[i % self.queries.len()]
    }

    #[cfg(test)]
    fn all(&self) -> impl Iterator<Item = &(&'static str, String)> {
        self.queries.iter()
    }
}

fn pick_kind(rng: &mut Rng) -> &'static str {
    let mut x = rng.random_range(0..1000);
    for (kind, w) in MIX {
        if x < w {
            return kind;
        }
        x -= w;
    }
    "artist"
}

impl Sources {
    /// One search of `kind`, and whether its words carry a typo.
    fn query(&self, kind: &'static str, rng: &mut Rng) -> (String, bool) {
        let mut url = String::from("/v1/events?");
        let mut words = None;
        let pick = |v: &[String], rng: &mut Rng| v[rng.random_range(0..v.len())].clone();
        match kind {
            "artist" => words = Some(pick(&self.artists, rng)),
            "tour" => words = Some(pick(&self.tour_titles, rng)),
            "venue" => {
                words = Some(
                    self.venues[rng.random_range(0..self.venues.len())]
                        .0
                        .clone(),
                )
            }
            "city" => words = Some(pick(&self.cities, rng)),
            "artist+city" => {
                let t = &self.tours[rng.random_range(0..self.tours.len())];
                words = Some(format!("{} {}", t.artist, t.city));
            }
            "venue+city" => {
                let (v, c) = &self.venues[rng.random_range(0..self.venues.len())];
                words = Some(format!("{v} {c}"));
            }
            "zip" | "zip+q" => {
                let z = &self.zips[rng.random_range(0..self.zips.len())];
                let _ = write!(url, "zipCode={}&", z.code);
                if kind == "zip+q" {
                    words = Some(if rng.random_bool(0.5) {
                        z.place.clone()
                    } else {
                        pick(&self.artists, rng)
                    });
                }
            }
            "geo" | "geo+q" => {
                let z = &self.zips[rng.random_range(0..self.zips.len())];
                let radius = [10, 25, 50, 100, 250][rng.random_range(0..5)];
                let _ = write!(url, "lat={:.4}&lon={:.4}&radiusKm={radius}&", z.lat, z.lon);
                if kind == "geo+q" {
                    words = Some(pick(&self.artists, rng));
                }
            }
            "browse" => {
                let _ = write!(url, "category={}&", CATEGORIES[rng.random_range(0..8)]);
            }
            _ => {
                // "dates": a window of days, from the next few months.
                let from = rng.random_range(0..180);
                let span = rng.random_range(1..45);
                let _ = write!(
                    url,
                    "startsAfter={}&startsBefore={}&",
                    enc(&self.days[from]),
                    enc(&self.days[from + span])
                );
            }
        }
        let mut typo_made = false;
        if let Some(w) = words {
            // One third of the searches with words have a typo in one of them.
            let w = if rng.random_bool(1.0 / 3.0) {
                match typo(&w, rng) {
                    Some(t) => {
                        typo_made = true;
                        t
                    }
                    None => w,
                }
            } else {
                w
            };
            let _ = write!(url, "q={}&", enc(&w));
        }
        self.filters(kind, &mut url, rng);
        url.pop(); // the last '&'
        (url, typo_made)
    }

    /// Filters and a sort, as a site's controls add them.
    fn filters(&self, kind: &str, url: &mut String, rng: &mut Rng) {
        let geo = kind.starts_with("geo");
        if !kind.starts_with("browse") && rng.random_bool(0.25) {
            let _ = write!(url, "category={}&", CATEGORIES[rng.random_range(0..8)]);
        }
        if rng.random_bool(0.3) {
            let low = [0, 1_000, 2_500, 5_000][rng.random_range(0..4)];
            let high = low + [2_500, 5_000, 10_000, 25_000][rng.random_range(0..4)];
            if rng.random_bool(0.5) {
                let _ = write!(url, "priceMin={low}&");
            }
            let _ = write!(url, "priceMax={high}&");
        }
        if rng.random_bool(0.3) {
            url.push_str("availableOnly=true&");
        }
        if kind != "dates" && rng.random_bool(0.15) {
            let from = rng.random_range(0..120);
            let _ = write!(url, "startsAfter={}&", enc(&self.days[from]));
        }
        let sorts: &[&str] = if geo {
            &["", "distance", "date", "price"]
        } else {
            &["", "date", "price"]
        };
        let sort = sorts[rng.random_range(0..sorts.len())];
        if !sort.is_empty() {
            let _ = write!(url, "sort={sort}&");
        }
        if rng.random_bool(0.2) {
            let _ = write!(url, "limit={}&", [10, 50][rng.random_range(0..2)]);
        }
    }
}

impl Scenario for DistinctMix {
    fn name(&self) -> String {
        "distinct".into()
    }

    fn iteration<'a>(&'a self, http: &'a mut Http, _rng: &'a mut Rng) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (kind, url) = self.take();
            http.get(kind, url).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes() {
        let r = csv_records("a,b,c\n1,\"x, \"\"y\"\"\",3\r\n4,5,6");
        assert_eq!(r.len(), 3);
        assert_eq!(r[1], vec!["1", "x, \"y\"", "3"]);
        assert_eq!(r[2], vec!["4", "5", "6"]);
    }

    #[test]
    fn typos_change_one_word_not_its_first_letter() {
        let mut rng = Rng::seed_from_u64(3);
        for _ in 0..100 {
            let t = typo("Wells Fargo Center", &mut rng).expect("long words");
            assert_ne!(t, "Wells Fargo Center");
            let changed: Vec<_> = t
                .split(' ')
                .zip("Wells Fargo Center".split(' '))
                .filter(|(a, b)| a != b)
                .collect();
            assert!(changed.len() <= 1, "{t}");
            assert!(
                t.starts_with('W') && t.contains(" F") && t.contains(" C"),
                "{t}"
            );
        }
        assert_eq!(typo("U2 AC", &mut rng), None);
    }

    /// With the shared data present (the benchmark machines), the pool is as asked: distinct,
    /// a third of the worded ones with a typo, every kind present.
    #[test]
    fn a_pool_of_distinct_real_searches() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        if !data.join("world-tours/world_tours.csv").exists() {
            eprintln!("no shared data at {}: skipped", data.display());
            return;
        }
        let mix = DistinctMix::new(&data, 30_000, 1, 0).expect("pool");
        assert_eq!(mix.len(), 30_000);
        let urls: HashSet<String> = mix.all().map(|(_, u)| u.to_lowercase()).collect();
        assert_eq!(urls.len(), 30_000);
        let worded = mix.all().filter(|(_, u)| u.contains("q=")).count();
        let share = mix.typos as f64 / worded as f64;
        assert!((0.28..0.36).contains(&share), "typo share {share}");
        for (kind, _) in MIX {
            assert!(mix.all().any(|(k, _)| *k == kind), "{kind}");
        }
        let again = DistinctMix::new(&data, 30_000, 1, 0).expect("pool");
        assert!(
            mix.all().zip(again.all()).all(|(a, b)| a == b),
            "deterministic"
        );
    }
}
