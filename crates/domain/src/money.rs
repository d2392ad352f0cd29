//! Money in minor units. Amounts are `i64` cents (or pence, or yen) with the currency carried
//! beside them; nothing here ever touches floating point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The largest single price we accept: ten million in major units. Far above any real ticket,
/// far below where sums of thousands of seats could overflow an `i64`.
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000;

/// An ISO 4217 currency code, stored upper-case (`USD`, `EUR`, `JPY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn as_str(&self) -> &str {
        // Constructed only from three ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl FromStr for Currency {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic) {
            Ok(Self([
                b[0].to_ascii_uppercase(),
                b[1].to_ascii_uppercase(),
                b[2].to_ascii_uppercase(),
            ]))
        } else {
            Err(ValidationError::new(
                "currency",
                "must be a three-letter ISO 4217 code such as USD",
            ))
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-negative price in minor units, at most [`MAX_PRICE_CENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceCents(i64);

impl PriceCents {
    pub const ZERO: PriceCents = PriceCents(0);

    pub fn new(cents: i64) -> Result<Self, ValidationError> {
        if (0..=MAX_PRICE_CENTS).contains(&cents) {
            Ok(Self(cents))
        } else {
            Err(ValidationError::new(
                "priceCents",
                format!("must be between 0 and {MAX_PRICE_CENTS}"),
            ))
        }
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// `percent` of this price, rounded down: the resale cap of a ticket.
    pub fn percent(self, percent: u32) -> i64 {
        // i128: a max price times a max percent does not fit comfortably in i64 checks.
        ((self.0 as i128 * percent as i128) / 100) as i64
    }
}

/// Sum of prices; `None` on overflow, which a caller must treat as bad input.
pub fn total(prices: impl IntoIterator<Item = PriceCents>) -> Option<i64> {
    prices
        .into_iter()
        .try_fold(0i64, |acc, p| acc.checked_add(p.cents()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currency_is_normalised() {
        assert_eq!("usd".parse::<Currency>().unwrap().as_str(), "USD");
        assert!("US".parse::<Currency>().is_err());
        assert!("U$D".parse::<Currency>().is_err());
        assert!("ÜSD".parse::<Currency>().is_err());
    }

    #[test]
    fn price_bounds() {
        assert!(PriceCents::new(-1).is_err());
        assert!(PriceCents::new(MAX_PRICE_CENTS + 1).is_err());
        assert_eq!(PriceCents::new(25_000).unwrap().percent(120), 30_000);
    }

    proptest! {
        #[test]
        fn totals_never_overflow_silently(prices in proptest::collection::vec(0..=MAX_PRICE_CENTS, 0..300)) {
            let ps: Vec<_> = prices.iter().map(|&c| PriceCents::new(c).unwrap()).collect();
            let exact: i128 = prices.iter().map(|&c| c as i128).sum();
            match total(ps) {
                Some(t) => prop_assert_eq!(t as i128, exact),
                None => prop_assert!(exact > i64::MAX as i128),
            }
        }

        #[test]
        fn resale_cap_is_monotonic(price in 0..=MAX_PRICE_CENTS, pct in 0u32..=1000) {
            let p = PriceCents::new(price).unwrap();
            prop_assert!(p.percent(pct) <= p.percent(pct + 1));
            prop_assert!(p.percent(pct) >= 0);
        }
    }
}
