//! Stale backups: projects whose newest successful backup is older than a
//! rule's threshold, and what the scheduler already alerted about.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rules::AlertRule;
use super::{Alert, AlertKind};
use crate::engine::catalog::projects;
use crate::engine::error::Result;

/// The `settings` key remembering which rules were told about which stale
/// period of which project.
pub const SENT_KEY: &str = "alerts.stale_sent";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SentEntry {
    /// The stale period: the newest success's time, or "never".
    pub since: String,
    /// Rules already alerted for it.
    pub rules: Vec<String>,
}

/// Per project id.
pub type Sent = BTreeMap<String, SentEntry>;

/// Identifies the stale period an alert belongs to.
pub fn since_key(alert: &Alert) -> String {
    alert
        .details
        .get("last_success_at")
        .and_then(|v| v.as_str())
        .unwrap_or("never")
        .to_owned()
}

fn parse(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// When the newest completed backup of a project finished.
fn last_success(conn: &Connection, project_id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT coalesce(completed_at, created_at) FROM backups
             WHERE project_id = ?1 AND status = 'completed'
             ORDER BY julianday(coalesce(completed_at, created_at)) DESC LIMIT 1",
            [project_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The smallest stale threshold of the enabled rules covering the project.
pub fn threshold(rules: &[AlertRule], project_id: &str) -> Option<u32> {
    rules
        .iter()
        .filter(|r| r.enabled && r.project_id.as_ref().is_none_or(|id| id == project_id))
        .filter_map(|r| r.stale_after_hours)
        .min()
}

/// `backup.stale` alerts at `now` for every project past the smallest
/// threshold of the enabled rules covering it.
pub fn find(conn: &Connection, rules: &[AlertRule], now: DateTime<Utc>) -> Result<Vec<Alert>> {
    let mut out = Vec::new();
    for p in projects::list(conn)? {
        let Some(threshold) = threshold(rules, &p.id) else {
            continue;
        };
        let last = last_success(conn, &p.id)?;
        let reference = last.as_deref().unwrap_or(&p.created_at);
        let Some(t) = parse(reference) else {
            tracing::warn!("unreadable time '{reference}' for project {}", p.name);
            continue;
        };
        let age = now.signed_duration_since(t);
        let Ok(age_hours) = u64::try_from(age.num_hours()) else {
            continue;
        };
        if age_hours < u64::from(threshold) {
            continue;
        }
        let body = match &last {
            Some(ts) => format!(
                "The newest successful backup of {} finished {age_hours} hours ago ({ts}); the alert threshold is {threshold} hours.",
                p.name
            ),
            None => format!(
                "{} has never been backed up successfully; it was added {age_hours} hours ago (the alert threshold is {threshold} hours).",
                p.name
            ),
        };
        out.push(Alert {
            event: AlertKind::BackupStale,
            project: Some(p.name.clone()),
            project_id: Some(p.id.clone()),
            title: format!("No recent backup of {}", p.name),
            body,
            backup_id: None,
            at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            details: json!({
                "last_success_at": last,
                "age_hours": age_hours,
                "threshold_hours": threshold,
            }),
        });
    }
    Ok(out)
}
