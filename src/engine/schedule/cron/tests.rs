//! crontab(5) semantics: hand-checked cases, DST in two zones, and a table
//! of expressions compared with an independent brute-force reading of
//! crontab (minute by minute) in UTC and America/New_York.

use super::*;
use chrono::{Datelike, Duration, NaiveDateTime, Timelike};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn runs(expr: &str, tz: JobTz, from: &str, n: usize) -> Vec<String> {
    CronExpr::parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .next_runs(tz, at(from), n)
        .into_iter()
        .map(|t| tz.format(t, "%a %Y-%m-%d %H:%M"))
        .collect()
}

fn ny() -> JobTz {
    JobTz::parse("America/New_York").expect("zone")
}

#[test]
fn weekdays_are_numbered_as_crontab_numbers_them() {
    // 2026-03-01 is a Sunday.
    assert_eq!(
        runs("0 3 * * 1-5", JobTz::Utc, "2026-03-01T00:00:00Z", 5),
        [
            "Mon 2026-03-02 03:00",
            "Tue 2026-03-03 03:00",
            "Wed 2026-03-04 03:00",
            "Thu 2026-03-05 03:00",
            "Fri 2026-03-06 03:00"
        ]
    );
    for sunday in ["0", "7", "SUN", "sun"] {
        assert_eq!(
            runs(
                &format!("0 12 * * {sunday}"),
                JobTz::Utc,
                "2026-03-02T00:00:00Z",
                2
            ),
            ["Sun 2026-03-08 12:00", "Sun 2026-03-15 12:00"],
            "{sunday}"
        );
    }
    assert_eq!(
        runs("0 12 * * 6", JobTz::Utc, "2026-03-02T00:00:00Z", 1),
        ["Sat 2026-03-07 12:00"]
    );
    assert_eq!(
        runs("0 9 * * MON-FRI", JobTz::Utc, "2026-03-06T10:00:00Z", 2),
        ["Mon 2026-03-09 09:00", "Tue 2026-03-10 09:00"]
    );
    assert_eq!(
        runs("0 0 * * 5-7", JobTz::Utc, "2026-03-02T00:00:00Z", 3),
        [
            "Fri 2026-03-06 00:00",
            "Sat 2026-03-07 00:00",
            "Sun 2026-03-08 00:00"
        ]
    );
}

#[test]
fn both_day_fields_restricted_means_either() {
    // The 1st, or any Monday (2026-06-01 is a Monday).
    assert_eq!(
        runs("0 3 1 * 1", JobTz::Utc, "2026-05-25T12:00:00Z", 4),
        [
            "Mon 2026-06-01 03:00",
            "Mon 2026-06-08 03:00",
            "Mon 2026-06-15 03:00",
            "Mon 2026-06-22 03:00"
        ]
    );
    assert_eq!(
        runs("0 3 13 * 5", JobTz::Utc, "2026-03-01T00:00:00Z", 3),
        [
            "Fri 2026-03-06 03:00",
            "Fri 2026-03-13 03:00",
            "Fri 2026-03-20 03:00"
        ]
    );
    assert_eq!(
        runs("0 3 15 * 1", JobTz::Utc, "2026-03-10T00:00:00Z", 3),
        [
            "Sun 2026-03-15 03:00",
            "Mon 2026-03-16 03:00",
            "Mon 2026-03-23 03:00"
        ]
    );
    // A day field starting with `*` is not a restriction: both must hold.
    assert_eq!(
        runs("0 3 */2 * 1", JobTz::Utc, "2026-03-01T00:00:00Z", 2),
        ["Mon 2026-03-09 03:00", "Mon 2026-03-23 03:00"]
    );
}

#[test]
fn nicknames_and_seconds() {
    let from = "2026-03-04T10:20:00Z";
    assert_eq!(
        runs("@hourly", JobTz::Utc, from, 1),
        ["Wed 2026-03-04 11:00"]
    );
    assert_eq!(
        runs("@daily", JobTz::Utc, from, 1),
        ["Thu 2026-03-05 00:00"]
    );
    assert_eq!(
        runs("@midnight", JobTz::Utc, from, 1),
        ["Thu 2026-03-05 00:00"]
    );
    assert_eq!(
        runs("@weekly", JobTz::Utc, from, 1),
        ["Sun 2026-03-08 00:00"]
    );
    assert_eq!(
        runs("@monthly", JobTz::Utc, from, 1),
        ["Wed 2026-04-01 00:00"]
    );
    assert_eq!(
        runs("@yearly", JobTz::Utc, from, 1),
        ["Fri 2027-01-01 00:00"]
    );
    assert_eq!(
        runs("@annually", JobTz::Utc, from, 1),
        ["Fri 2027-01-01 00:00"]
    );
    let six = CronExpr::parse("30 0 3 * * *").expect("6 fields");
    assert_eq!(
        six.next_run(JobTz::Utc, at("2026-01-01T10:00:00Z")),
        Some(at("2026-01-02T03:00:30Z"))
    );
}

#[test]
fn dst_gaps_and_repeats_in_two_zones() {
    // New York: 2026-03-08 02:00 → 03:00; 2026-11-01 02:00 → 01:00.
    assert_eq!(
        runs("30 2 * * *", ny(), "2026-03-07T12:00:00Z", 3),
        [
            "Sun 2026-03-08 03:00",
            "Mon 2026-03-09 02:30",
            "Tue 2026-03-10 02:30"
        ],
        "02:30 does not exist on 2026-03-08: it runs at the first minute after the gap"
    );
    let repeat = CronExpr::parse("30 1 * * *").expect("valid").next_runs(
        ny(),
        at("2026-10-31T12:00:00Z"),
        3,
    );
    assert_eq!(
        repeat,
        [
            at("2026-11-01T05:30:00Z"),
            at("2026-11-02T06:30:00Z"),
            at("2026-11-03T06:30:00Z")
        ],
        "01:30 runs once, at its first (EDT) occurrence"
    );
    // Berlin: 2026-03-29 02:00 → 03:00; 2026-10-25 03:00 → 02:00.
    let berlin = JobTz::parse("Europe/Berlin").expect("zone");
    assert_eq!(
        runs("15 2 * * *", berlin, "2026-03-28T12:00:00Z", 2),
        ["Sun 2026-03-29 03:00", "Mon 2026-03-30 02:15"]
    );
    let repeat = CronExpr::parse("15 2 * * *").expect("valid").next_runs(
        berlin,
        at("2026-10-24T12:00:00Z"),
        2,
    );
    assert_eq!(
        repeat,
        [at("2026-10-25T00:15:00Z"), at("2026-10-26T01:15:00Z")]
    );
    // Every 30 minutes across the repeated hour: each wall time once.
    let half = CronExpr::parse("*/30 * * * *").expect("valid").next_runs(
        ny(),
        at("2026-11-01T04:50:00Z"),
        4,
    );
    assert_eq!(
        half,
        [
            at("2026-11-01T05:00:00Z"),
            at("2026-11-01T05:30:00Z"),
            at("2026-11-01T07:00:00Z"),
            at("2026-11-01T07:30:00Z")
        ]
    );
}

#[test]
fn bad_expressions_say_why() {
    for (expr, needle) in [
        ("", "empty"),
        ("* * *", "has 3 fields"),
        ("61 * * * *", "invalid"),
        ("* * * * 8", "day-of-week"),
        ("* * * * FRI-MON", "backwards"),
        ("* * * * */0", "step"),
        ("* * * * * * * *", "has 8 fields"),
        ("0 0 30 2 *", "never fires"),
        ("@reboot", "not a schedule"),
    ] {
        let err = CronExpr::parse(expr).expect_err(expr);
        assert!(err.message.contains(needle), "{expr}: {err}");
    }
}

#[test]
fn zones_parse_serialize_and_suggest() {
    assert_eq!(JobTz::parse("local").expect("local"), JobTz::Local);
    assert_eq!(JobTz::parse("UTC").expect("utc"), JobTz::Utc);
    assert_eq!(ny().as_str(), "America/New_York");
    assert_eq!(
        JobTz::parse("europe/berlin").expect("case").as_str(),
        "Europe/Berlin"
    );
    let json = serde_json::to_string(&ny()).expect("ser");
    assert_eq!(json, "\"America/New_York\"");
    assert_eq!(serde_json::from_str::<JobTz>(&json).expect("de"), ny());
    let err = JobTz::parse("Europe/Berln").expect_err("typo");
    assert!(err.message.contains("unknown time zone"), "{err}");
    let err = JobTz::parse("Berlinn").expect_err("typo");
    assert!(err.message.contains("IANA"), "{err}");
}

// ----- an independent reading of crontab ------------------------------------

/// The values a crontab field names, within `lo..=hi` (names mapped by `names`).
fn field(spec: &str, lo: u32, hi: u32, names: &[&str]) -> Vec<bool> {
    let mut on = vec![false; (hi + 1) as usize];
    let value = |s: &str| -> u32 {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + lo)
            .unwrap_or_else(|| s.parse().expect("number"))
    };
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().expect("step")),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a), value(b))
        } else if part.contains('/') {
            (value(range), hi)
        } else {
            (value(range), value(range))
        };
        let mut v = a;
        while v <= b {
            on[v as usize] = true;
            v += step;
        }
    }
    on
}

struct Reference {
    min: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    mon: Vec<bool>,
    dow: Vec<bool>,
    either: bool,
}

impl Reference {
    fn new(expr: &str) -> Reference {
        let f: Vec<&str> = expr.split(' ').collect();
        let days = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let months = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        let mut dow = field(f[4], 0, 7, &days);
        dow[0] = dow[0] || dow[7];
        Reference {
            min: field(f[0], 0, 59, &[]),
            hour: field(f[1], 0, 23, &[]),
            dom: field(f[2], 1, 31, &[]),
            mon: field(f[3], 1, 12, &months),
            dow,
            either: !f[2].starts_with('*') && !f[4].starts_with('*'),
        }
    }

    fn matches(&self, t: NaiveDateTime) -> bool {
        let d = self.dom[t.day() as usize];
        let w = self.dow[t.weekday().num_days_from_sunday() as usize];
        let day = if self.either { d || w } else { d && w };
        self.min[t.minute() as usize]
            && self.hour[t.hour() as usize]
            && self.mon[t.month() as usize]
            && day
    }

    /// Walks UTC minute by minute, reading wall-clock time in `zone`: a
    /// repeated wall time is due once, a skipped one at the first minute
    /// after the gap.
    fn next<Z: TimeZone>(&self, zone: &Z, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after - Duration::seconds(i64::from(after.second())) + Duration::minutes(1);
        let mut latest_wall = after.with_timezone(zone).naive_local();
        while out.len() < n {
            let wall = t.with_timezone(zone).naive_local();
            if wall > latest_wall {
                let mut skipped = latest_wall + Duration::minutes(1);
                let mut due = false;
                while skipped <= wall {
                    due |= self.matches(skipped);
                    skipped += Duration::minutes(1);
                }
                if due {
                    out.push(t);
                }
                latest_wall = wall;
            }
            t += Duration::minutes(1);
        }
        out
    }
}

#[test]
fn a_table_of_expressions_agrees_with_a_reading_of_crontab() {
    let table = [
        "* * * * *",
        "*/15 * * * *",
        "5 * * * *",
        "0 3 * * *",
        "30 2 * * *",
        "30 1 * * *",
        "0 3 * * 1-5",
        "0 3 * * 0",
        "0 3 * * 7",
        "0 3 * * 6",
        "0 3 1 * 1",
        "0 0 13 * 5",
        "15 9 * * MON-FRI",
        "0 18 * * SAT,SUN",
        "0 */6 * * *",
        "0 9-17/2 * * 1-5",
        "0 0 1 */3 *",
        "0 12 * JAN,JUL *",
        "45 23 28-31 * *",
        "0 3 */2 * 1",
        "0 0 * * */2",
        "10 4 1,15 * 3",
        "0 22 * * 5-7",
        "0 3 1/10 * *",
    ];
    let from = at("2026-03-07T12:00:00Z");
    let zones: [(&str, JobTz); 2] = [("UTC", JobTz::Utc), ("America/New_York", ny())];
    for expr in table {
        let reference = Reference::new(expr);
        let parsed = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        for (name, tz) in zones {
            let ours = parsed.next_runs(tz, from, 5);
            let theirs = match tz {
                JobTz::Zone(z) => reference.next(&z, from, 5),
                _ => reference.next(&Utc, from, 5),
            };
            assert_eq!(ours, theirs, "{expr} in {name}");
        }
    }
}
