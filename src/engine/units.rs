//! How sizes, rates and durations read, the same in the GUI, the CLI and
//! alerts: decimal units like disk tools (`1.5 GB`, `320 KB`, `12 B`) and
//! durations as `850 ms`, `42s`, `3m 05s`, `1h 02m 05s`.

/// `1.5 GB`, `320 KB`, `12 B`.
pub fn bytes(n: i64) -> String {
    let neg = n < 0;
    let mut v = n.unsigned_abs() as f64;
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = if i == 0 || v >= 10.0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    };
    if neg { format!("-{s}") } else { s }
}

/// `12 MB/s`.
pub fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", bytes(bytes_per_sec.max(0.0) as i64))
}

/// `850 ms`, `42s`, `3m 05s`, `1h 02m 05s`.
pub fn duration_secs(s: f64) -> String {
    let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
    if s < 1.0 {
        return format!("{:.0} ms", s * 1000.0);
    }
    let total = s.round() as i64;
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {sec:02}s")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Like [`duration_secs`] for milliseconds.
pub fn duration_ms(ms: i64) -> String {
    duration_secs(ms.max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_the_same_everywhere() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 KB");
        assert_eq!(bytes(25_000_000), "25 MB");
        assert_eq!(bytes(3_200_000_000), "3.2 GB");
        assert_eq!(bytes(-2_000), "-2.0 KB");
        assert_eq!(rate(12_345_678.0), "12 MB/s");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(42_000), "42s");
        assert_eq!(duration_ms(185_000), "3m 05s");
        assert_eq!(duration_ms(3_725_000), "1h 02m 05s");
        assert_eq!(duration_ms(7_440_000), "2h 04m 00s");
        assert_eq!(duration_secs(f64::NAN), "0 ms");
    }
}
