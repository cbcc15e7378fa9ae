//! Live health: a light probe of each project on an interval (the ticker
//! runs it; `project probe` runs it by hand) — reachability, latency,
//! server version, database size, connections in use against
//! `max_connections`, cache hit ratio, the longest running transaction,
//! and the pg_dump a backup would use. Every probe is kept as an analytics
//! event (`health_probe`), the history the project view charts and the
//! dashboard's health column reads. Changes worth telling raise alerts:
//! a project that stops answering (`health.unreachable`, once per outage),
//! one whose database grew by more than a rule's percentage in a day
//! (`health.size_grew`, at most once a day), and a server whose major
//! version no pg_dump on this machine can dump (`health.pg_dump_missing`,
//! once until it is fixed).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::catalog::{analytics, settings};
use crate::engine::error::{Error, Result};
use crate::engine::notify::{Alert, AlertKind, Delivery};
use crate::engine::pg::{connect, tools};

/// The analytics event a probe is kept as.
pub const EVENT: &str = "health_probe";
/// Minutes between probes when a project sets none.
pub const DEFAULT_INTERVAL_MINUTES: u32 = 15;
/// The setting holding the default interval (minutes; 0 turns probes off).
pub const DEFAULT_INTERVAL_SETTING: &str = "health.interval_minutes";
/// Size growth is measured over this window.
pub const GROWTH_WINDOW_HOURS: i64 = 24;
/// A probe gives up on a server after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A probe interval is at most a week (0: off).
pub(crate) fn check_interval(minutes: u32) -> Result<()> {
    if minutes > 7 * 24 * 60 {
        return Err(Error::invalid(
            "the probe interval is at most a week (10080 minutes); 0 turns probes off",
        ));
    }
    Ok(())
}

pub(crate) fn interval_key(project_id: &str) -> String {
    format!("health.interval.{project_id}")
}

fn size_alerted_key(project_id: &str) -> String {
    format!("health.size_alerted.{project_id}")
}

/// One probe of one project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The server answered (its figures below are filled).
    pub ok: bool,
    /// Why it did not, one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub server_version: Option<String>,
    #[serde(default)]
    pub server_major: Option<u32>,
    #[serde(default)]
    pub database_size_bytes: Option<i64>,
    /// Backends connected to the server now.
    #[serde(default)]
    pub connections: Option<i64>,
    #[serde(default)]
    pub max_connections: Option<i64>,
    /// Share of block reads served from shared buffers, 0..1.
    #[serde(default)]
    pub cache_hit_ratio: Option<f64>,
    /// The oldest open transaction's age, in seconds.
    #[serde(default)]
    pub longest_transaction_secs: Option<f64>,
    /// The pg_dump a backup would use: "path (version)".
    #[serde(default)]
    pub pg_dump: Option<String>,
    /// Why no pg_dump can dump this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_dump_problem: Option<String>,
}

/// A probe as recorded: the project and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRecord {
    pub project_id: String,
    pub at: String,
    pub probe: Probe,
}

/// What the alert rules covering a project ask of its probes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Watch {
    /// The smallest size-growth percentage of the rules (none: no rule
    /// watches growth).
    pub growth_percent: Option<f64>,
    /// When growth was last alerted for the project.
    pub size_alerted_at: Option<DateTime<Utc>>,
}

/// The alerts a new probe calls for, given the one before it and the
/// newest one at least a growth window old (pure: the tests drive it).
pub fn changes(
    previous: Option<&Probe>,
    current: &Probe,
    day_old: Option<&Probe>,
    watch: Watch,
    now: DateTime<Utc>,
) -> Vec<(AlertKind, serde_json::Value)> {
    let mut out = Vec::new();
    if !current.ok {
        if previous.is_none_or(|p| p.ok) {
            out.push((
                AlertKind::HealthUnreachable,
                json!({"error": current.error}),
            ));
        }
        return out;
    }
    if let Some(problem) = &current.pg_dump_problem
        && previous.is_none_or(|p| p.pg_dump_problem.is_none())
    {
        out.push((
            AlertKind::HealthPgDumpMissing,
            json!({"error": problem, "server_version": current.server_version}),
        ));
    }
    if let (Some(then), Some(size), Some(limit)) = (
        day_old.and_then(|p| p.database_size_bytes),
        current.database_size_bytes,
        watch.growth_percent,
    ) && then > 0
        && (size - then) as f64 * 100.0 / then as f64 >= limit
        && watch
            .size_alerted_at
            .is_none_or(|t| now - t >= chrono::Duration::hours(GROWTH_WINDOW_HOURS))
    {
        let percent = (size - then) as f64 * 100.0 / then as f64;
        out.push((
            AlertKind::HealthSizeGrew,
            json!({
                "growth_percent": (percent * 10.0).round() / 10.0,
                "size_bytes": size,
                "size_bytes_before": then,
                "window_hours": GROWTH_WINDOW_HOURS,
            }),
        ));
    }
    out
}

/// The probe's one query: every figure in one round trip.
const FIGURES: &str = "SELECT current_setting('server_version'),
        current_setting('server_version_num')::int,
        pg_database_size(current_database()),
        (SELECT count(*) FROM pg_stat_activity)::int8,
        current_setting('max_connections')::int8,
        (SELECT CASE WHEN sum(blks_hit + blks_read) > 0
                THEN (sum(blks_hit)::float8 / sum(blks_hit + blks_read)::float8) END
           FROM pg_stat_database),
        (SELECT EXTRACT(EPOCH FROM max(now() - xact_start))::float8
           FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid())";

/// A project's probes, newest first: those at or after `since` and at or
/// before `before` (each optional), at most `limit`.
fn events(
    conn: &Connection,
    project_id: &str,
    since: Option<&str>,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<ProbeRecord>> {
    let mut stmt = conn.prepare(
        "SELECT event_data, created_at FROM analytics
         WHERE project_id = ?1 AND event_type = ?2
           AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at <= ?4)
         ORDER BY created_at DESC, id DESC LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![project_id, EVENT, since, before, limit as i64],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (data, at) = row?;
        if let Ok(probe) = serde_json::from_str(&data) {
            out.push(ProbeRecord {
                project_id: project_id.to_owned(),
                at,
                probe,
            });
        }
    }
    Ok(out)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Engine {
    /// Probes a project now, records the probe and raises the alerts its
    /// change calls for. An unreachable server is a probe that is not ok,
    /// not an error; errors are for an unknown project or the catalog.
    pub async fn probe_project(&self, key: &str, delivery: &Delivery) -> Result<Probe> {
        let project = self.project(key).await?;
        let probe = match self.connection_info(&project).await {
            Ok(info) => self.measure(&info).await,
            // A locked vault says nothing about the server: no probe.
            Err(e) if e.kind == crate::engine::ErrorKind::Auth => return Err(e),
            Err(e) => Probe {
                error: Some(e.message),
                ..Probe::default()
            },
        };
        let (pid, data, now) = (
            project.id.clone(),
            serde_json::to_value(&probe)?,
            Utc::now(),
        );
        let since = rfc3339(now - chrono::Duration::hours(GROWTH_WINDOW_HOURS));
        let (previous, day_old, watch) = self
            .catalog()
            .call(move |c| {
                let previous = events(c, &pid, None, None, 1)?.into_iter().next();
                let day_old = events(c, &pid, None, Some(&since), 1)?.into_iter().next();
                let alerted: Option<String> = settings::get(c, &size_alerted_key(&pid))?;
                let rules = crate::engine::notify::rules::list(c)?;
                let growth_percent = rules
                    .iter()
                    .filter(|r| r.enabled && r.project_id.as_ref().is_none_or(|id| *id == pid))
                    .filter_map(|r| r.size_growth_percent)
                    .min()
                    .map(f64::from);
                analytics::record(c, Some(&pid), EVENT, &data)?;
                let watch = Watch {
                    growth_percent,
                    size_alerted_at: alerted.as_deref().and_then(parse),
                };
                Ok((previous, day_old, watch))
            })
            .await?;
        let found = changes(
            previous.as_ref().map(|r| &r.probe),
            &probe,
            day_old.as_ref().map(|r| &r.probe),
            watch,
            now,
        );
        for (kind, details) in found {
            if kind == AlertKind::HealthSizeGrew {
                let key = size_alerted_key(&project.id);
                let at = rfc3339(now);
                self.catalog()
                    .call(move |c| settings::set(c, &key, &at))
                    .await?;
            }
            let alert = Alert::health(kind, &project.id, &project.name, details);
            self.dispatch_alert(&alert, delivery).await;
        }
        Ok(probe)
    }

    async fn measure(&self, info: &crate::engine::conninfo::ConnInfo) -> Probe {
        let started = Instant::now();
        let client = match connect::connect(info, Some(PROBE_TIMEOUT)).await {
            Ok(c) => c,
            Err(e) => {
                return Probe {
                    error: Some(e.message),
                    ..Probe::default()
                };
            }
        };
        let row = match tokio::time::timeout(PROBE_TIMEOUT, client.query_one(FIGURES, &[])).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Probe {
                    error: Some(format!(
                        "the server answered but its figures could not be read: {e}"
                    )),
                    ..Probe::default()
                };
            }
            Err(_) => {
                return Probe {
                    error: Some(format!(
                        "the server did not answer within {} s",
                        PROBE_TIMEOUT.as_secs()
                    )),
                    ..Probe::default()
                };
            }
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let major = (row.get::<_, i32>(1) / 10000) as u32;
        let bin = self.pg_bin_dir();
        let tool = tokio::task::spawn_blocking(move || {
            tools::find_for_server("pg_dump", major, bin.as_deref())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))
        .and_then(|r| r);
        let (pg_dump, pg_dump_problem) = match tool {
            Ok(t) => (Some(format!("{} ({})", t.path.display(), t.version)), None),
            Err(e) => (None, Some(e.message)),
        };
        Probe {
            ok: true,
            error: None,
            latency_ms: Some((latency_ms * 10.0).round() / 10.0),
            server_version: Some(row.get(0)),
            server_major: Some(major),
            database_size_bytes: Some(row.get(2)),
            connections: Some(row.get(3)),
            max_connections: Some(row.get(4)),
            cache_hit_ratio: row.get(5),
            longest_transaction_secs: row.get(6),
            pg_dump,
            pg_dump_problem,
        }
    }

    /// A project's probes, newest first (`since`: RFC 3339, or all).
    pub async fn probe_history(
        &self,
        key: &str,
        since: Option<String>,
        limit: usize,
    ) -> Result<Vec<ProbeRecord>> {
        let pid = self.project(key).await?.id;
        self.catalog()
            .call(move |c| events(c, &pid, since.as_deref(), None, limit))
            .await
    }

    /// Minutes between a project's probes (0: off), its own or the default.
    pub async fn probe_interval(&self, key: &str) -> Result<u32> {
        let pid = self.project(key).await?.id;
        self.catalog().call(move |c| interval_for(c, &pid)).await
    }

    /// Sets a project's probe interval in minutes (0 turns its probes off;
    /// `None` goes back to the default).
    pub async fn set_probe_interval(&self, key: &str, minutes: Option<u32>) -> Result<()> {
        if let Some(m) = minutes {
            check_interval(m)?;
        }
        let project = self.project(key).await?;
        let (actor, name) = (self.actor().to_owned(), project.name.clone());
        self.catalog()
            .call(move |c| {
                let key = interval_key(&project.id);
                match minutes {
                    Some(m) => settings::set(c, &key, &m)?,
                    None => settings::remove(c, &key)?,
                }
                crate::engine::catalog::audit::append(
                    c,
                    &actor,
                    "project.probe_interval",
                    Some(&name),
                    &json!({"minutes": minutes}),
                )
            })
            .await
    }

    /// Projects whose next probe is due at `now` (the ticker probes them).
    pub async fn probes_due(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.catalog()
            .call(move |c| {
                let mut due = Vec::new();
                for p in crate::engine::catalog::projects::list(c)? {
                    let minutes = interval_for(c, &p.id)?;
                    if minutes == 0 {
                        continue;
                    }
                    let last = events(c, &p.id, None, None, 1)?
                        .into_iter()
                        .next()
                        .and_then(|r| parse(&r.at));
                    if last.is_none_or(|t| now - t >= chrono::Duration::minutes(i64::from(minutes)))
                    {
                        due.push(p.id);
                    }
                }
                Ok(due)
            })
            .await
    }
}

fn interval_for(c: &Connection, project_id: &str) -> Result<u32> {
    if let Some(m) = settings::get::<u32>(c, &interval_key(project_id))? {
        return Ok(m);
    }
    Ok(settings::get::<u32>(c, DEFAULT_INTERVAL_SETTING)?.unwrap_or(DEFAULT_INTERVAL_MINUTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(size: i64) -> Probe {
        Probe {
            ok: true,
            database_size_bytes: Some(size),
            ..Probe::default()
        }
    }

    fn kinds(v: &[(AlertKind, serde_json::Value)]) -> Vec<AlertKind> {
        v.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn an_outage_alerts_once_and_recovery_is_quiet() {
        let now = Utc::now();
        let down = Probe {
            error: Some("connection refused".into()),
            ..Probe::default()
        };
        assert_eq!(
            kinds(&changes(Some(&up(1)), &down, None, Watch::default(), now)),
            [AlertKind::HealthUnreachable]
        );
        assert_eq!(
            kinds(&changes(None, &down, None, Watch::default(), now)),
            [AlertKind::HealthUnreachable],
            "a project unreachable from its first probe"
        );
        assert!(
            changes(Some(&down), &down, None, Watch::default(), now).is_empty(),
            "once per outage"
        );
        assert!(changes(Some(&down), &up(1), None, Watch::default(), now).is_empty());
    }

    #[test]
    fn a_missing_pg_dump_alerts_until_fixed_then_again_if_it_returns() {
        let now = Utc::now();
        let missing = Probe {
            pg_dump_problem: Some("pg_dump 18 or newer is needed".into()),
            ..up(1)
        };
        let found = changes(Some(&up(1)), &missing, None, Watch::default(), now);
        assert_eq!(kinds(&found), [AlertKind::HealthPgDumpMissing]);
        assert!(found[0].1["error"].as_str().unwrap_or("").contains("18"));
        assert!(changes(Some(&missing), &missing, None, Watch::default(), now).is_empty());
        assert!(changes(Some(&missing), &up(1), None, Watch::default(), now).is_empty());
        assert_eq!(
            kinds(&changes(
                Some(&up(1)),
                &missing,
                None,
                Watch::default(),
                now
            )),
            [AlertKind::HealthPgDumpMissing]
        );
    }

    #[test]
    fn growth_is_measured_over_a_day_against_the_rules_and_alerted_at_most_daily() {
        let now = Utc::now();
        let watch = |limit: f64, alerted: Option<DateTime<Utc>>| Watch {
            growth_percent: Some(limit),
            size_alerted_at: alerted,
        };
        let found = changes(
            Some(&up(140)),
            &up(150),
            Some(&up(100)),
            watch(10.0, None),
            now,
        );
        assert_eq!(kinds(&found), [AlertKind::HealthSizeGrew]);
        assert_eq!(found[0].1["growth_percent"], 50.0);
        assert!(
            changes(
                Some(&up(140)),
                &up(150),
                Some(&up(100)),
                watch(60.0, None),
                now
            )
            .is_empty(),
            "below every rule's percentage"
        );
        assert!(
            changes(
                Some(&up(140)),
                &up(150),
                Some(&up(100)),
                Watch::default(),
                now
            )
            .is_empty(),
            "no rule watches growth"
        );
        assert!(
            changes(Some(&up(140)), &up(150), None, watch(10.0, None), now).is_empty(),
            "no day-old probe yet"
        );
        assert!(
            changes(
                Some(&up(100)),
                &up(90),
                Some(&up(100)),
                watch(1.0, None),
                now
            )
            .is_empty(),
            "shrinking is not growth"
        );
        let an_hour_ago = now - chrono::Duration::hours(1);
        assert!(
            changes(
                Some(&up(140)),
                &up(150),
                Some(&up(100)),
                watch(10.0, Some(an_hour_ago)),
                now
            )
            .is_empty()
        );
        let yesterday = now - chrono::Duration::hours(25);
        assert_eq!(
            changes(
                Some(&up(140)),
                &up(150),
                Some(&up(100)),
                watch(10.0, Some(yesterday)),
                now
            )
            .len(),
            1
        );
    }
}
