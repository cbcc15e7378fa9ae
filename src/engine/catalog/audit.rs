//! The audit log: who did what, when. Callers pass details that hold no
//! secret (URLs redacted, passwords never included).

use rusqlite::{Connection, params};
use serde::Serialize;

use super::now;
use crate::engine::error::Result;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: serde_json::Value,
}

/// The actor recorded for actions: the OS user and the front-end.
pub fn actor(front_end: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user} ({front_end})")
}

pub fn append(
    conn: &Connection,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &serde_json::Value,
) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now(), actor, action, target, details.to_string()],
    )?;
    Ok(())
}

/// The newest `limit` entries, optionally only those whose action starts with `prefix`.
pub fn list(conn: &Connection, prefix: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
    let pattern = format!("{}%", prefix.unwrap_or(""));
    let mut stmt = conn.prepare(
        "SELECT id, at, actor, action, target, details FROM audit_log
         WHERE action LIKE ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![pattern, limit as i64], |r| {
        let details: String = r.get(5)?;
        Ok(AuditEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
