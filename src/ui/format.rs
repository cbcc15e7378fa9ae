//! Human-readable numbers, sizes, durations and ages (pure functions).

use chrono::{DateTime, Utc};

// Sizes, rates and durations read as in the CLI (engine/units.rs).
pub use crate::engine::units::{bytes, duration_ms, rate};

/// Like [`duration_ms`] for seconds.
pub fn secs(s: f64) -> String {
    crate::engine::units::duration_secs(s)
}

/// Parses a catalog timestamp (RFC 3339).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago` (or `in 4 h` for the future).
pub fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    let (future, secs) = (secs < 0, secs.unsigned_abs());
    let text = if secs < 45 {
        return if future {
            "in a moment".into()
        } else {
            "just now".into()
        };
    } else if secs < 90 * 60 {
        format!("{} min", (secs as f64 / 60.0).round().max(1.0))
    } else if secs < 36 * 3600 {
        format!("{} h", (secs as f64 / 3600.0).round())
    } else {
        let d = (secs as f64 / 86400.0).round();
        format!("{d} day{}", if d == 1.0 { "" } else { "s" })
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// The age of a catalog timestamp, or `—` when it is missing or unreadable.
pub fn age_of(ts: Option<&str>, now: DateTime<Utc>) -> String {
    ts.and_then(parse_time)
        .map(|t| age(t, now))
        .unwrap_or_else(|| "—".into())
}

/// `2024-05-01 14:03` in local time.
pub fn local_time(ts: &str) -> String {
    parse_time(ts)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| ts.to_owned())
}

/// `87 %`.
pub fn percent(ratio: f64) -> String {
    format!("{:.0} %", (ratio * 100.0).clamp(0.0, 100.0))
}

/// The first `n` characters of an id.
pub fn short_id(id: &str) -> String {
    id.chars()
        .filter(|c| *c != '-')
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Splits `a, b ,c` into trimmed non-empty parts.
pub fn split_list(s: &str) -> Vec<String> {
    crate::engine::ident::split_list(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let now = parse_time("2024-05-10T12:00:00Z").expect("time");
        let at = |s| parse_time(s).expect("time");
        assert_eq!(age(at("2024-05-10T11:59:50Z"), now), "just now");
        assert_eq!(age(at("2024-05-10T11:55:00Z"), now), "5 min ago");
        assert_eq!(age(at("2024-05-10T09:00:00Z"), now), "3 h ago");
        assert_eq!(age(at("2024-05-08T12:00:00Z"), now), "2 days ago");
        assert_eq!(age(at("2024-05-10T16:00:00Z"), now), "in 4 h");
        assert_eq!(age_of(None, now), "—");
    }

    #[test]
    fn lists_and_ids() {
        assert_eq!(
            split_list(" public, app ,,\nextra"),
            ["public", "app", "extra"]
        );
        assert_eq!(short_id("0190-aaaa-bbbb-12345678"), "12345678");
        assert_eq!(percent(0.873), "87 %");
    }
}
