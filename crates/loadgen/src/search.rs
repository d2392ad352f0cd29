//! The search mix: what people type and click on a ticket site, built from the same real
//! places and tours the demo catalog (`boxoffice seed`) is made of.
//!
//! Each kind of query draws its subject from a Zipf distribution over its vocabulary, so that
//! popular searches repeat as they do on any ticket site (the most-toured artists first, the
//! other lists in a fixed shuffled order). `--zipf 0` makes every subject equally likely.

use std::fmt::Write as _;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::driver::{BoxFuture, Http, Rng, Scenario};

const PLACES: &str = include_str!("../../boxoffice/data/places.tsv");
const CITIES: &str = include_str!("../../boxoffice/data/cities.tsv");
const TOURS: &str = include_str!("../../boxoffice/data/tours.tsv");

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

/// Words from the seed's generated names (genres, plays, shows), for generic searches.
const WORDS: [&str; 16] = [
    "jazz",
    "rock",
    "hamlet",
    "festival",
    "comedy",
    "symphony",
    "ballet",
    "hockey",
    "football",
    "circus",
    "opera",
    "blues",
    "country",
    "basketball",
    "macbeth",
    "summit",
];

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s.
#[derive(Debug)]
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n.max(1))
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let last = *self.cumulative.last().unwrap_or(&1.0);
        let x: f64 = rng.random::<f64>() * last;
        self.cumulative
            .partition_point(|c| *c < x)
            .min(self.cumulative.len() - 1)
    }
}

#[derive(Debug)]
struct Vocabulary<T> {
    items: Vec<T>,
    zipf: Zipf,
}

impl<T> Vocabulary<T> {
    fn new(items: Vec<T>, s: f64) -> Self {
        let zipf = Zipf::new(items.len(), s);
        Self { items, zipf }
    }

    fn pick(&self, rng: &mut Rng) -> &T {
        &self.items[self.zipf.sample(rng)]
    }
}

#[derive(Debug, Clone)]
struct Place {
    name: String,
    zip: String,
    lat: f64,
    lon: f64,
}

/// The mix, by weight (per mille).
const MIX: [(&str, u32); 10] = [
    ("artist", 250),
    ("typo", 150),
    ("prefix", 50),
    ("city", 100),
    ("word", 50),
    ("zip", 80),
    ("geo", 100),
    ("browse", 120),
    ("dates", 50),
    ("deep", 50),
];

#[derive(Debug)]
pub struct SearchMix {
    artists: Vocabulary<String>,
    places: Vocabulary<Place>,
    words: Vocabulary<&'static str>,
    /// Day boundaries relative to now, in RFC 3339, for date windows that repeat.
    days: Vec<String>,
    deep_pages: usize,
}

impl SearchMix {
    pub fn new(zipf: f64, seed: u64, deep_pages: usize) -> Self {
        let mut counts: std::collections::HashMap<&str, usize> = Default::default();
        for line in TOURS.lines() {
            if let Some(artist) = line.split('\t').next() {
                *counts.entry(artist).or_default() += 1;
            }
        }
        let mut artists: Vec<(&str, usize)> = counts.into_iter().collect();
        artists.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let artists = artists.into_iter().map(|(a, _)| a.to_owned()).collect();

        let mut places: Vec<Place> = PLACES
            .lines()
            .filter_map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                Some(Place {
                    zip: (*c.first()?).to_owned(),
                    name: (*c.get(1)?).to_owned(),
                    lat: c.get(3)?.parse().ok()?,
                    lon: c.get(4)?.parse().ok()?,
                })
            })
            .chain(CITIES.lines().filter_map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                Some(Place {
                    zip: String::new(),
                    name: (*c.first()?).to_owned(),
                    lat: c.get(2)?.parse().ok()?,
                    lon: c.get(3)?.parse().ok()?,
                })
            }))
            .collect();
        places.shuffle(&mut Rng::seed_from_u64(seed));
        let now = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
        let days = (0..=400)
            .map(|d| {
                (now + time::Duration::days(d))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            })
            .collect();
        Self {
            artists: Vocabulary::new(artists, zipf),
            places: Vocabulary::new(places, zipf),
            words: Vocabulary::new(WORDS.to_vec(), zipf),
            days,
            deep_pages,
        }
    }

    fn kind(rng: &mut Rng) -> &'static str {
        let mut x = rng.random_range(0..1000);
        for (kind, w) in MIX {
            if x < w {
                return kind;
            }
            x -= w;
        }
        "artist"
    }

    /// One query string of `kind`, and its label.
    fn query(&self, kind: &'static str, rng: &mut Rng) -> String {
        let mut q = String::from("/v1/events?");
        match kind {
            "artist" => {
                let _ = write!(q, "q={}", enc(self.artists.pick(rng)));
            }
            "typo" => {
                let artist = self.artists.pick(rng);
                // The same artist gets the same typo, as people make the same mistakes.
                let _ = write!(q, "q={}", enc(&typo(artist)));
            }
            "prefix" => {
                let artist = self.artists.pick(rng);
                let first = artist.split_whitespace().next().unwrap_or(artist);
                let n = first.chars().count().clamp(1, 5);
                let prefix: String = first.chars().take(n).collect();
                let _ = write!(q, "q={}", enc(&prefix));
            }
            "city" => {
                let _ = write!(q, "q={}", enc(&self.places.pick(rng).name));
            }
            "word" => {
                let _ = write!(q, "q={}", self.words.pick(rng));
                if rng.random_bool(0.5) {
                    let _ = write!(q, "&sort=date");
                }
            }
            "zip" => {
                let p = self.places.pick(rng);
                if p.zip.is_empty() {
                    let _ = write!(q, "q={}", enc(&p.name));
                } else {
                    let _ = write!(q, "zipCode={}", p.zip);
                }
            }
            "geo" => {
                let p = self.places.pick(rng);
                let radius = [25, 50, 100][rng.random_range(0..3)];
                let _ = write!(q, "lat={:.4}&lon={:.4}&radiusKm={radius}", p.lat, p.lon);
                if rng.random_bool(0.5) {
                    q.push_str("&sort=distance");
                }
                if rng.random_bool(0.3) {
                    let _ = write!(q, "&category={}", CATEGORIES[rng.random_range(0..3)]);
                }
            }
            "browse" => {
                let c = CATEGORIES[zipf_small(rng, CATEGORIES.len())];
                let _ = write!(q, "category={c}");
                match rng.random_range(0..4) {
                    0 => q.push_str("&sort=price"),
                    1 => q.push_str("&availableOnly=true"),
                    2 => q.push_str("&priceMax=5000"),
                    _ => {}
                }
            }
            "dates" => {
                let from = zipf_small(rng, 60);
                let span = [2, 7, 30][rng.random_range(0..3)];
                let _ = write!(
                    q,
                    "startsAfter={}&startsBefore={}",
                    enc(&self.days[from]),
                    enc(&self.days[from + span])
                );
                if rng.random_bool(0.5) {
                    let _ = write!(q, "&category={}", CATEGORIES[zipf_small(rng, 8)]);
                }
            }
            _ => {}
        }
        q
    }
}

/// Small lists (categories, the next weeks) are popular in order too.
fn zipf_small(rng: &mut Rng, n: usize) -> usize {
    let z = Zipf::new(n, 1.0);
    z.sample(rng)
}

/// A deterministic one-letter slip in the longest word: two letters swapped.
fn typo(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let Some((i, w)) = words
        .iter()
        .enumerate()
        .max_by_key(|(_, w)| w.chars().count())
    else {
        return s.to_owned();
    };
    let mut chars: Vec<char> = w.chars().collect();
    if chars.len() >= 4 {
        let k = chars.len() / 2;
        chars.swap(k - 1, k);
    }
    let mut out: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    out[i] = chars.into_iter().collect();
    out.join(" ")
}

fn enc(s: &str) -> String {
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

/// Finds `"nextCursor":"…"` without parsing the whole answer.
fn next_cursor(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"nextCursor\":\"")? + "\"nextCursor\":\"".len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_owned())
}

impl Scenario for SearchMix {
    fn name(&self) -> String {
        "search".into()
    }

    fn iteration<'a>(&'a self, http: &'a mut Http, rng: &'a mut Rng) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let kind = Self::kind(rng);
            if kind == "deep" {
                // A popular listing, then page after page by cursor.
                let base = if rng.random_bool(0.5) {
                    self.query("artist", rng)
                } else {
                    self.query("browse", rng)
                };
                let mut url = base.clone();
                for page in 0..self.deep_pages {
                    let label = if page == 0 { "deep:first" } else { "deep:next" };
                    let Some(answer) = http.get(label, &url).await else {
                        return;
                    };
                    match next_cursor(&answer.body) {
                        Some(c) => url = format!("{base}&cursor={c}"),
                        None => return,
                    }
                }
            } else {
                let url = self.query(kind, rng);
                http.get(kind, &url).await;
            }
        })
    }
}

/// `GET /healthz`: the HTTP stack's ceiling on this machine.
#[derive(Debug)]
pub struct Healthz;

impl Scenario for Healthz {
    fn name(&self) -> String {
        "healthz".into()
    }

    fn iteration<'a>(&'a self, http: &'a mut Http, _rng: &'a mut Rng) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            http.get("healthz", "/healthz").await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_encoding() {
        assert_eq!(typo("Taylor Swift"), "Talyor Swift");
        assert_eq!(enc("Björk & co"), "Bj%C3%B6rk%20%26%20co");
        assert_eq!(
            next_cursor(br#"{"events":[],"nextCursor":"abc_1","total":3}"#).as_deref(),
            Some("abc_1")
        );
        assert_eq!(next_cursor(br#"{"nextCursor":null}"#), None);
    }

    #[test]
    fn zipf_prefers_the_head() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = Rng::seed_from_u64(1);
        let head = (0..10_000).filter(|_| z.sample(&mut rng) < 10).count();
        // The first 10 of 1000 ranks hold ~39% of the mass at s = 1.
        assert!((3_000..5_000).contains(&head), "{head}");
        let uniform = Zipf::new(1000, 0.0);
        let head = (0..10_000)
            .filter(|_| uniform.sample(&mut rng) < 10)
            .count();
        assert!(head < 300, "{head}");
    }

    #[test]
    fn every_kind_builds_a_query() {
        let mix = SearchMix::new(1.0, 1, 5);
        let mut rng = Rng::seed_from_u64(2);
        for (kind, _) in MIX {
            if kind != "deep" {
                let q = mix.query(kind, &mut rng);
                assert!(q.starts_with("/v1/events?") && q.len() > 11, "{kind}: {q}");
            }
        }
    }
}
