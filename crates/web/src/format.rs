//! How money, times and statuses read on the pages.

use time::OffsetDateTime;
use time::macros::format_description;

/// `25000, "USD"` → `$250.00`; currencies without a symbol here read `250.00 CHF`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = group(abs / 100);
    let amount = format!("{units}.{:02}", abs % 100);
    match currency {
        "USD" => format!("{sign}${amount}"),
        "CAD" => format!("{sign}CA${amount}"),
        "AUD" => format!("{sign}A${amount}"),
        "EUR" => format!("{sign}€{amount}"),
        "GBP" => format!("{sign}£{amount}"),
        "JPY" => format!("{sign}¥{amount}"),
        other => format!("{sign}{amount} {other}"),
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `Tue 1 Jun 2027, 19:30 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let f = format_description!(
        "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// RFC 3339, for `<time datetime>` and scripts.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `<input type="datetime-local">` value, in UTC.
pub fn datetime_local(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// Dollars as typed in a form (`12`, `12.5`, `12.50`, `$1,200`) → cents.
pub fn parse_money(raw: &str) -> Option<i64> {
    let s: String = raw
        .trim()
        .trim_start_matches(['$', '€', '£'])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    if s.is_empty() {
        return None;
    }
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 2 || whole.len() > 12 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

/// A person-readable seat: `Floor, row A, seat 10` (or `Lawn, place 12` for general
/// admission).
pub fn seat_label(section: &str, row: Option<&str>, number: u32) -> String {
    match row {
        Some(r) if r != "GA" => format!("{section}, row {r}, seat {number}"),
        _ => format!("{section}, place {number}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_well() {
        assert_eq!(money(25000, "USD"), "$250.00");
        assert_eq!(money(123456789, "EUR"), "€1,234,567.89");
        assert_eq!(money(5, "CHF"), "0.05 CHF");
        assert_eq!(money(0, "USD"), "$0.00");
    }

    #[test]
    fn money_parses_from_forms() {
        assert_eq!(parse_money("12"), Some(1200));
        assert_eq!(parse_money("12.5"), Some(1250));
        assert_eq!(parse_money("$1,200.05"), Some(120005));
        assert_eq!(parse_money(".5"), Some(50));
        assert_eq!(parse_money(""), None);
        assert_eq!(parse_money("-3"), None);
        assert_eq!(parse_money("1.234"), None);
        assert_eq!(parse_money("abc"), None);
        assert_eq!(parse_money("99999999999999999"), None);
    }
}
