//! Which sealed credentials a project has (never their values).

use rusqlite::Connection;

use crate::engine::error::Result;

/// The kinds of credential stored for a project, e.g. `["db_password"]`.
pub fn kinds_for(conn: &Connection, project_id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT kind FROM secrets WHERE project_id = ?1 ORDER BY kind")?;
    let rows = stmt.query_map([project_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}
