//! Cron expressions: crontab's 5 fields (minute first) and 6 fields with
//! seconds first (and `@daily`-style names), validated with a clear
//! message; next run times in local time or UTC, across DST changes.

use std::str::FromStr;

use chrono::{DateTime, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// The time zone a job's expression is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobTz {
    #[default]
    Local,
    Utc,
}

impl JobTz {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(JobTz::Local),
            "utc" => Ok(JobTz::Utc),
            other => Err(Error::invalid(format!(
                "unknown time zone '{other}': use local or utc"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobTz::Local => "local",
            JobTz::Utc => "utc",
        }
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronExpr {
    pub source: String,
    schedule: cron::Schedule,
}

impl CronExpr {
    /// Parses 5-field crontab syntax, 6 fields (seconds first) or `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub fn parse(expr: &str) -> Result<Self> {
        let text = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(Error::invalid("the cron expression is empty")
                .with_hint("e.g. `0 3 * * *` runs every day at 03:00"));
        }
        let fields = text.split(' ').count();
        let normalized = if text.starts_with('@') {
            text.clone()
        } else {
            match fields {
                5 => format!("0 {text}"),
                6 => text.clone(),
                n => {
                    return Err(Error::invalid(format!(
                        "the cron expression '{text}' has {n} fields; use 5 (minute hour day month weekday) or 6 (with seconds first)"
                    ))
                    .with_hint("e.g. `*/15 * * * *` runs every 15 minutes"));
                }
            }
        };
        let schedule = cron::Schedule::from_str(&normalized).map_err(|e| {
            Error::invalid(format!("the cron expression '{text}' is invalid: {e}"))
                .with_hint("fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12) day-of-week (0-6 or SUN-SAT)")
        })?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(Error::invalid(format!(
                "the cron expression '{text}' never fires"
            )));
        }
        Ok(CronExpr {
            source: text,
            schedule,
        })
    }

    /// The first `n` run times strictly after `after`, read in `tz`.
    pub fn next_runs(&self, tz: JobTz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        match tz {
            JobTz::Utc => self.next_in(&Utc, after, n),
            JobTz::Local => self.next_in(&Local, after, n),
        }
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
        for wall in self.schedule.after(&wall_start) {
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
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_fields_and_names() {
        let five = CronExpr::parse("*/15 * * * *").expect("5 fields");
        assert_eq!(
            five.next_runs(JobTz::Utc, at("2026-01-01T10:07:00Z"), 2),
            [at("2026-01-01T10:15:00Z"), at("2026-01-01T10:30:00Z")]
        );
        let six = CronExpr::parse("30 0 3 * * *").expect("6 fields");
        assert_eq!(
            six.next_run(JobTz::Utc, at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-02T03:00:30Z"))
        );
        let daily = CronExpr::parse("@daily").expect("name");
        assert_eq!(
            daily.next_run(JobTz::Utc, at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for (expr, needle) in [
            ("", "empty"),
            ("* * *", "has 3 fields"),
            ("61 * * * *", "invalid"),
            ("* * * * * * * *", "has 8 fields"),
            ("0 0 30 2 *", "never fires"),
        ] {
            let err = CronExpr::parse(expr).expect_err(expr);
            assert!(err.message.contains(needle), "{expr}: {err}");
        }
    }
}
