//! Analytics events (connection tests, backup figures) for dashboards.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::now;
use crate::engine::error::Result;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub id: i64,
    pub project_id: Option<String>,
    pub event_type: String,
    pub event_data: serde_json::Value,
    pub created_at: String,
}

pub fn record(
    conn: &Connection,
    project_id: Option<&str>,
    event_type: &str,
    data: &serde_json::Value,
) -> Result<()> {
    conn.execute(
        "INSERT INTO analytics (project_id, event_type, event_data, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![project_id, event_type, data.to_string(), now()],
    )?;
    Ok(())
}

/// The newest `limit` events of one type for a project, newest first.
pub fn recent(
    conn: &Connection,
    project_id: &str,
    event_type: &str,
    limit: usize,
) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare(
        "SELECT id, project_id, event_type, event_data, created_at FROM analytics
         WHERE project_id = ?1 AND event_type = ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![project_id, event_type, limit as i64], |r| {
        let data: String = r.get(3)?;
        Ok(Event {
            id: r.get(0)?,
            project_id: r.get(1)?,
            event_type: r.get(2)?,
            event_data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            created_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
