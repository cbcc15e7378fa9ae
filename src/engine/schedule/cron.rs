//! Cron expressions with crontab(5)'s meaning — what users copy from their
//! servers: five fields (minute hour day-of-month month day-of-week), or six
//! with seconds first; day-of-week 0–7 (0 and 7 are Sunday) or `SUN`–`SAT`;
//! when both day fields are restricted (neither starts with `*`) a day
//! matches either of them; `@hourly`, `@daily`/`@midnight`, `@weekly`,
//! `@monthly`, `@yearly`/`@annually`. Times are read in local time, UTC or
//! an IANA zone (`Europe/Berlin`), across DST changes.
//!
//! The `cron` crate does the field matching; it numbers weekdays from
//! 1 = Sunday and ANDs the day fields, so the day-of-week field is
//! expanded here and the OR rule is two schedules merged.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// The time zone a job's expression is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobTz {
    #[default]
    Local,
    Utc,
    /// An IANA zone, e.g. `America/New_York`.
    Zone(chrono_tz::Tz),
}

impl JobTz {
    /// `local`, `utc` or an IANA zone name (`Europe/Berlin`).
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "local" | "" => return Ok(JobTz::Local),
            "utc" | "z" | "etc/utc" => return Ok(JobTz::Utc),
            _ => {}
        }
        if let Ok(z) = t.parse::<chrono_tz::Tz>() {
            return Ok(JobTz::Zone(z));
        }
        // Names differ only in case from a real one: accept it.
        if let Some(z) = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|z| z.name().eq_ignore_ascii_case(t))
        {
            return Ok(JobTz::Zone(*z));
        }
        let close: Vec<&str> = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|z| z.name())
            .filter(|n| {
                let last = t.rsplit('/').next().unwrap_or(t).to_ascii_lowercase();
                !last.is_empty() && n.to_ascii_lowercase().contains(&last)
            })
            .take(5)
            .collect();
        let mut e = Error::invalid(format!(
            "unknown time zone '{t}': use local, utc or an IANA name such as Europe/Berlin"
        ));
        if !close.is_empty() {
            e = e.with_hint(format!("did you mean {}?", close.join(", ")));
        }
        Err(e)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            JobTz::Local => "local",
            JobTz::Utc => "utc",
            JobTz::Zone(z) => z.name(),
        }
    }

    /// How a time reads in this zone, e.g. `Mon 2024-05-06 03:00 CEST`.
    pub fn format(&self, t: DateTime<Utc>, pattern: &str) -> String {
        match self {
            JobTz::Local => t.with_timezone(&Local).format(pattern).to_string(),
            JobTz::Utc => t.format(pattern).to_string(),
            JobTz::Zone(z) => t.with_timezone(z).format(pattern).to_string(),
        }
    }
}

impl std::fmt::Display for JobTz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobTz::Local => "local time",
            JobTz::Utc => "UTC",
            JobTz::Zone(z) => z.name(),
        })
    }
}

impl Serialize for JobTz {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobTz {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JobTz::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronExpr {
    pub source: String,
    /// One schedule, or two whose union is the crontab OR of the day fields.
    schedules: Vec<cron::Schedule>,
}

const HINT: &str = "fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-7 or SUN-SAT; 0 and 7 are Sunday)";

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn day_number(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (n <= 7).then_some(n % 7);
    }
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|i| i as u32)
}

/// Expands crontab's day-of-week field to the days it names (0 = Sunday).
fn expand_weekdays(field: &str) -> std::result::Result<BTreeSet<u32>, String> {
    let mut days = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step '{s}' in the day-of-week '{item}'"))?;
                (r, s)
            }
            None => (item, 1),
        };
        // As in cron(8), the week runs 0-7 for `*` and `N/step`.
        let (lo, hi) = if range == "*" || range == "?" {
            (0, 7)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = day_number(a).ok_or_else(|| format!("bad day-of-week '{a}'"))?;
            // `5-7` (Friday to Sunday): 7 stays the end of the week.
            let b = match b.parse::<u32>() {
                Ok(7) => 7,
                _ => day_number(b).ok_or_else(|| format!("bad day-of-week '{b}'"))?,
            };
            if a > b {
                return Err(format!("the day-of-week range '{range}' runs backwards"));
            }
            (a, b)
        } else {
            let d = day_number(range).ok_or_else(|| format!("bad day-of-week '{range}'"))?;
            (d, if item.contains('/') { 7 } else { d })
        };
        let mut d = lo;
        while d <= hi {
            days.insert(d % 7);
            d += step;
        }
    }
    Ok(days)
}

/// The five fields of a nickname.
fn nickname(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => return None,
    })
}

impl CronExpr {
    /// Parses crontab syntax (see the module comment).
    pub fn parse(expr: &str) -> Result<Self> {
        let text = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(Error::invalid("the cron expression is empty")
                .with_hint("e.g. `0 3 * * *` runs every day at 03:00"));
        }
        let expanded = if text.starts_with('@') {
            nickname(&text)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "'{text}' is not a schedule: use @hourly, @daily, @weekly, @monthly or @yearly"
                    ))
                })?
                .to_owned()
        } else {
            text.clone()
        };
        let fields: Vec<&str> = expanded.split(' ').collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(Error::invalid(format!(
                    "the cron expression '{text}' has {n} fields; use 5 (minute hour day month weekday) or 6 (with seconds first)"
                ))
                .with_hint("e.g. `*/15 * * * *` runs every 15 minutes"));
            }
        };
        let (min, hour, dom, mon, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        let invalid = |why: String| {
            Error::invalid(format!("the cron expression '{text}' is invalid: {why}"))
                .with_hint(HINT)
        };
        let days = expand_weekdays(dow).map_err(invalid)?;
        let quartz = if days.len() == 7 {
            "*".to_owned()
        } else {
            days.iter()
                .map(|d| (d + 1).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let star = |f: &str| f.starts_with('*') || f.starts_with('?');
        let specs: Vec<String> = if !star(dom) && !star(dow) {
            // crontab: either day field matching is enough.
            vec![
                format!("{sec} {min} {hour} {dom} {mon} *"),
                format!("{sec} {min} {hour} * {mon} {quartz}"),
            ]
        } else {
            vec![format!("{sec} {min} {hour} {dom} {mon} {quartz}")]
        };
        let mut schedules = Vec::new();
        for spec in specs {
            schedules.push(cron::Schedule::from_str(&spec).map_err(|e| invalid(e.to_string()))?);
        }
        if schedules.iter().all(|s| s.upcoming(Utc).next().is_none()) {
            return Err(Error::invalid(format!(
                "the cron expression '{text}' never fires"
            )));
        }
        Ok(CronExpr {
            source: text,
            schedules,
        })
    }

    /// The first `n` run times strictly after `after`, read in `tz`.
    pub fn next_runs(&self, tz: JobTz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        match tz {
            JobTz::Utc => self.next_in(&Utc, after, n),
            JobTz::Local => self.next_in(&Local, after, n),
            JobTz::Zone(z) => self.next_in(&z, after, n),
        }
    }

    /// Wall-clock times matching the expression after `start`, in order
    /// (the union of its schedules).
    fn wall_times(&self, start: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut iters: Vec<std::iter::Peekable<cron::ScheduleIterator<'_, Utc>>> = self
            .schedules
            .iter()
            .map(|s| s.after(&start).peekable())
            .collect();
        let mut last: Option<DateTime<Utc>> = None;
        std::iter::from_fn(move || {
            loop {
                let i = iters
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(i, it)| it.peek().map(|t| (i, *t)))
                    .min_by_key(|(_, t)| *t)?
                    .0;
                let t = iters[i].next()?;
                if last == Some(t) {
                    continue;
                }
                last = Some(t);
                return Some(t);
            }
        })
    }

    /// Generic over the zone, so tests can use any zone's rules. The
    /// expression is matched against wall-clock time: a time that occurs
    /// twice when DST ends runs once (at its first occurrence); a time that
    /// does not exist when DST starts runs at the first minute after the gap.
    pub fn next_in<Z: TimeZone>(
        &self,
        zone: &Z,
        after: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        use chrono::LocalResult;
        let wall_start = Utc.from_utc_datetime(&after.with_timezone(zone).naive_local());
        let mut out: Vec<DateTime<Utc>> = Vec::with_capacity(n);
        for wall in self.wall_times(wall_start) {
            let naive = wall.naive_utc();
            let t = match zone.from_local_datetime(&naive) {
                LocalResult::Single(t) => t,
                LocalResult::Ambiguous(a, b) => {
                    if a.timestamp() <= b.timestamp() {
                        a
                    } else {
                        b
                    }
                }
                LocalResult::None => {
                    let mut probe = naive;
                    let mut found = None;
                    for _ in 0..(26 * 60) {
                        probe += chrono::Duration::minutes(1);
                        if let Some(t) = zone.from_local_datetime(&probe).earliest() {
                            found = Some(t);
                            break;
                        }
                    }
                    match found {
                        Some(t) => t,
                        None => continue,
                    }
                }
            };
            let t = t.with_timezone(&Utc);
            if t <= after || out.last().is_some_and(|l| t <= *l) {
                continue;
            }
            out.push(t);
            if out.len() == n {
                break;
            }
        }
        out
    }

    pub fn next_run(&self, tz: JobTz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_runs(tz, after, 1).into_iter().next()
    }
}

#[cfg(test)]
mod tests;
