//! `GET /v1/events` parameters, parsed once into a [`SearchRequest`] that cannot be invalid,
//! and the opaque pagination cursor.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use boxoffice_domain::event::Category;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::category_index;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
pub const MAX_QUERY_CHARS: usize = 200;

/// A parameter that could not be accepted: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct ParamError {
    pub parameter: String,
    pub message: String,
}

fn bad(parameter: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        parameter: parameter.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sort {
    Relevance,
    Date,
    Price,
    Distance,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoFilter {
    pub lat: f64,
    pub lon: f64,
    pub radius_km: Option<f64>,
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Normalised (trimmed, whitespace collapsed); `None` for browsing.
    pub q: Option<String>,
    pub zip_code: Option<String>,
    pub geo: Option<GeoFilter>,
    /// Bit set over [`Category::ALL`]; 0 for any.
    pub categories: u16,
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    /// Unix seconds. `None`: upcoming events only (those not started yet).
    pub starts_after: Option<i64>,
    pub starts_before: Option<i64>,
    pub available_only: bool,
    pub sort: Sort,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// Where the previous page ended: the sort key of its last hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub key: (i64, i64, u128),
    /// Fingerprint of the query the cursor belongs to.
    #[serde(rename = "f")]
    pub query: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

const KNOWN: [&str; 14] = [
    "q",
    "zipCode",
    "lat",
    "lon",
    "radiusKm",
    "category",
    "priceMin",
    "priceMax",
    "startsAfter",
    "startsBefore",
    "availableOnly",
    "sort",
    "limit",
    "cursor",
];

impl SearchRequest {
    /// Parses decoded `name=value` pairs. Unknown and repeated parameters are errors, so that
    /// a misspelt filter is reported rather than silently ignored.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let started = std::time::Instant::now();
        let parsed = Self::parse_pairs(pairs);
        crate::phases::record(crate::phases::Phase::Parse, started.elapsed());
        parsed
    }

    fn parse_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let mut seen = [None::<&str>; KNOWN.len()];
        for (k, v) in pairs {
            let Some(i) = KNOWN.iter().position(|n| n == k) else {
                return Err(bad(k, "is not a search parameter"));
            };
            if seen[i].is_some() {
                return Err(bad(k, "is given more than once"));
            }
            seen[i] = Some(v.as_str());
        }
        let get = |name: &str| {
            KNOWN
                .iter()
                .position(|n| *n == name)
                .and_then(|i| seen[i])
                .map(str::trim)
        };

        let q = match get("q") {
            Some(q) if q.chars().count() > MAX_QUERY_CHARS => {
                return Err(bad("q", format!("at most {MAX_QUERY_CHARS} characters")));
            }
            Some(q) if q.chars().any(char::is_control) => {
                return Err(bad("q", "must not contain control characters"));
            }
            Some(q) => Some(q.split_whitespace().collect::<Vec<_>>().join(" ")),
            None => None,
        }
        .filter(|q| !q.is_empty());

        let zip_code = match get("zipCode") {
            Some("") | None => None,
            Some(z)
                if z.len() <= 16
                    && z.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-') =>
            {
                Some(z.to_owned())
            }
            Some(_) => {
                return Err(bad(
                    "zipCode",
                    "letters, digits, spaces and dashes, at most 16",
                ));
            }
        };

        let lat = float(get("lat"), "lat", -90.0, 90.0)?;
        let lon = float(get("lon"), "lon", -180.0, 180.0)?;
        let radius = float(get("radiusKm"), "radiusKm", 0.0, 20_038.0)?;
        if radius.is_some_and(|r| r <= 0.0) {
            return Err(bad("radiusKm", "must be greater than 0"));
        }
        let geo = match (lat, lon) {
            (Some(lat), Some(lon)) => Some(GeoFilter {
                lat,
                lon,
                radius_km: radius,
            }),
            (Some(_), None) => return Err(bad("lon", "is required with lat")),
            (None, Some(_)) => return Err(bad("lat", "is required with lon")),
            (None, None) if radius.is_some() => {
                return Err(bad("lat", "lat and lon are required with radiusKm"));
            }
            (None, None) => None,
        };

        let mut categories = 0u16;
        if let Some(raw) = get("category").filter(|c| !c.is_empty()) {
            for name in raw.split(',') {
                let c = Category::parse(name.trim()).map_err(|e| bad("category", e.message))?;
                categories |= 1 << category_index(c);
            }
        }

        let price_min = int(get("priceMin"), "priceMin")?;
        let price_max = int(get("priceMax"), "priceMax")?;
        if let (Some(a), Some(b)) = (price_min, price_max)
            && a > b
        {
            return Err(bad("priceMax", "must not be less than priceMin"));
        }

        let starts_after = instant(get("startsAfter"), "startsAfter")?;
        let starts_before = instant(get("startsBefore"), "startsBefore")?;
        if let (Some(a), Some(b)) = (starts_after, starts_before)
            && a > b
        {
            return Err(bad("startsBefore", "must not be before startsAfter"));
        }

        let available_only = match get("availableOnly") {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => return Err(bad("availableOnly", "must be true or false")),
        };

        let sort = match get("sort") {
            None | Some("") => {
                if q.is_some() {
                    Sort::Relevance
                } else {
                    Sort::Date
                }
            }
            Some("relevance") => Sort::Relevance,
            Some("date") => Sort::Date,
            Some("price") => Sort::Price,
            Some("distance") if geo.is_some() => Sort::Distance,
            Some("distance") => return Err(bad("sort", "distance needs lat and lon")),
            Some(_) => return Err(bad("sort", "must be relevance, date, price or distance")),
        };

        let limit = match get("limit") {
            None | Some("") => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(bad("limit", format!("must be between 1 and {MAX_LIMIT}"))),
            },
        };

        let mut req = SearchRequest {
            q,
            zip_code,
            geo,
            categories,
            price_min,
            price_max,
            starts_after,
            starts_before,
            available_only,
            sort,
            limit,
            cursor: None,
        };
        if let Some(raw) = get("cursor").filter(|c| !c.is_empty()) {
            let cursor = Cursor::decode(raw).ok_or_else(|| bad("cursor", "is malformed"))?;
            if cursor.query != req.fingerprint() {
                return Err(bad("cursor", "belongs to a different search"));
            }
            req.cursor = Some(cursor);
        }
        Ok(req)
    }

    /// Identifies the result list (everything but the page): a cursor is only valid for the
    /// search that issued it. FNV-1a, stable across builds and nodes.
    pub fn fingerprint(&self) -> u64 {
        fnv(&format!("{}|{:?}", self.filters_text(), self.sort))
    }

    /// Identifies the set of matching events (everything but order and page): facet counts
    /// and the total depend on nothing else.
    pub fn filters_fingerprint(&self) -> u64 {
        fnv(&self.filters_text())
    }

    fn filters_text(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{}",
            self.q,
            self.zip_code,
            self.geo.map(|g| (
                g.lat.to_bits(),
                g.lon.to_bits(),
                g.radius_km.map(f64::to_bits)
            )),
            self.categories,
            self.price_min,
            self.price_max,
            self.starts_after,
            self.starts_before,
            self.available_only,
        )
    }

    /// The response cache key: the whole request.
    pub fn cache_key(&self) -> String {
        format!(
            "{:x}|{}|{:?}",
            self.fingerprint(),
            self.limit,
            self.cursor.map(|c| c.key)
        )
    }
}

fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn float(raw: Option<&str>, name: &str, min: f64, max: f64) -> Result<Option<f64>, ParamError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<f64>() {
            Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(bad(
                name,
                format!("must be a number between {min} and {max}"),
            )),
        },
    }
}

fn int(raw: Option<&str>, name: &str) -> Result<Option<i64>, ParamError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(Some(v)),
            _ => Err(bad(name, "must be a whole number of cents, 0 or more")),
        },
    }
}

fn instant(raw: Option<&str>, name: &str) -> Result<Option<i64>, ParamError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Some(t.unix_timestamp()))
            .map_err(|_| {
                bad(
                    name,
                    "must be an RFC 3339 time such as 2027-06-01T19:30:00Z",
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<SearchRequest, ParamError> {
        let pairs: Vec<_> = q
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SearchRequest::parse(&pairs)
    }

    #[test]
    fn defaults() {
        let r = parse(&[]).unwrap();
        assert_eq!(r.sort, Sort::Date);
        assert_eq!(r.limit, DEFAULT_LIMIT);
        let r = parse(&[("q", "  taylor   swift ")]).unwrap();
        assert_eq!(r.q.as_deref(), Some("taylor swift"));
        assert_eq!(r.sort, Sort::Relevance);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("lat", "91"), ("lon", "0")], "lat"),
            (&[("lat", "x"), ("lon", "0")], "lat"),
            (&[("lat", "1")], "lon"),
            (&[("lon", "1")], "lat"),
            (&[("lat", "1"), ("lon", "200")], "lon"),
            (&[("radiusKm", "5")], "lat"),
            (
                &[("lat", "1"), ("lon", "1"), ("radiusKm", "-5")],
                "radiusKm",
            ),
            (&[("category", "opera")], "category"),
            (&[("priceMin", "-1")], "priceMin"),
            (&[("priceMax", "1.5")], "priceMax"),
            (&[("priceMin", "10"), ("priceMax", "5")], "priceMax"),
            (&[("startsAfter", "tomorrow")], "startsAfter"),
            (
                &[
                    ("startsAfter", "2030-01-01T00:00:00Z"),
                    ("startsBefore", "2029-01-01T00:00:00Z"),
                ],
                "startsBefore",
            ),
            (&[("availableOnly", "yes")], "availableOnly"),
            (&[("sort", "popularity")], "sort"),
            (&[("sort", "distance")], "sort"),
            (&[("limit", "0")], "limit"),
            (&[("limit", "1000")], "limit"),
            (&[("cursor", "!!!")], "cursor"),
            (&[("zipCode", "98134;drop")], "zipCode"),
            (&[("categroy", "concert")], "categroy"),
            (&[("q", "a"), ("q", "b")], "q"),
        ];
        for (params, name) in cases {
            let err = parse(params).expect_err(&format!("{params:?} is rejected"));
            assert_eq!(&err.parameter, name, "{params:?}: {err}");
        }
    }

    #[test]
    fn cursors_belong_to_their_search() {
        let r = parse(&[("q", "jazz")]).unwrap();
        let c = Cursor {
            key: (1, 2, 3),
            query: r.fingerprint(),
        }
        .encode();
        let again = parse(&[("q", "jazz"), ("cursor", &c)]).unwrap();
        assert_eq!(again.cursor.unwrap().key, (1, 2, 3));
        let other = parse(&[("q", "blues"), ("cursor", &c)]).unwrap_err();
        assert_eq!(other.parameter, "cursor");
    }
}
