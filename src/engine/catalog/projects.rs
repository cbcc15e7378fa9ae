//! Project rows.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{new_id, now};
use crate::engine::error::{Error, Result};
use crate::engine::project::{Environment, Project, ValidProject, slugify};

const COLUMNS: &str =
    "p.id, p.name, p.slug, p.project_ref, p.db_url, p.environment, p.organization_id,
    p.description, p.created_at, p.updated_at,
    EXISTS (SELECT 1 FROM secrets s WHERE s.project_id = p.id AND s.kind = 'db_password'),
    p.ca_cert";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    let env: String = r.get(5)?;
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        slug: r.get(2)?,
        project_ref: r.get(3)?,
        db_url: r.get(4)?,
        environment: Environment::parse(&env).unwrap_or_default(),
        organization_id: r.get(6)?,
        description: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        has_db_password: r.get(10)?,
        ca_cert: r.get(11)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<Project>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM projects p ORDER BY p.name COLLATE NOCASE"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get_by_id(conn: &Connection, id: &str) -> Result<Option<Project>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM projects p WHERE p.id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

pub fn get_by_name(conn: &Connection, name: &str) -> Result<Option<Project>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM projects p WHERE p.name = ?1 COLLATE NOCASE"),
            [name.trim()],
            from_row,
        )
        .optional()?)
}

/// Finds a project by name (case-insensitive), id, or unambiguous ref.
/// The first project (oldest) with this Supabase ref.
pub fn get_by_ref(conn: &Connection, project_ref: &str) -> Result<Option<Project>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM projects p WHERE p.project_ref = ?1 ORDER BY p.created_at LIMIT 1"
    ))?;
    Ok(stmt
        .query_map([project_ref.trim()], from_row)?
        .next()
        .transpose()?)
}

pub fn find(conn: &Connection, key: &str) -> Result<Project> {
    if let Some(p) = get_by_name(conn, key)? {
        return Ok(p);
    }
    if let Some(p) = get_by_id(conn, key)? {
        return Ok(p);
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM projects p WHERE p.project_ref = ?1"
    ))?;
    let by_ref = stmt
        .query_map([key.trim()], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    match by_ref.len() {
        1 => Ok(by_ref
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("empty match"))?),
        0 => Err(Error::not_found(format!("no project named '{key}'"))
            .with_hint("`supabackup project list` shows the projects")),
        n => Err(Error::invalid(format!("{n} projects have the ref '{key}'"))
            .with_hint("name the project instead")),
    }
}

fn unique_slug(conn: &Connection, name: &str, except_id: Option<&str>) -> Result<String> {
    let base = slugify(name);
    let mut candidate = base.clone();
    let mut n = 2;
    loop {
        let taken: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM projects WHERE slug = ?1 AND id IS NOT ?2)",
            params![candidate, except_id],
            |r| r.get(0),
        )?;
        if !taken {
            return Ok(candidate);
        }
        candidate = format!("{base}-{n}");
        n += 1;
    }
}

fn ensure_name_free(conn: &Connection, name: &str, except_id: Option<&str>) -> Result<()> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM projects WHERE name = ?1 COLLATE NOCASE AND id IS NOT ?2)",
        params![name, except_id],
        |r| r.get(0),
    )?;
    if taken {
        return Err(
            Error::conflict(format!("a project named '{name}' already exists"))
                .with_hint("choose another name, or edit the existing project"),
        );
    }
    Ok(())
}

/// Inserts a validated project (secrets are stored separately by the caller
/// in the same transaction). Returns the new id.
pub fn insert(conn: &Connection, p: &ValidProject) -> Result<String> {
    ensure_name_free(conn, &p.name, None)?;
    let id = new_id();
    let slug = unique_slug(conn, &p.name, None)?;
    let ts = now();
    conn.execute(
        "INSERT INTO projects (id, name, slug, project_ref, db_url, environment, organization_id,
                               description, created_at, updated_at, ca_cert)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
        params![
            id,
            p.name,
            slug,
            p.project_ref,
            p.conn.url_without_password(),
            p.environment.as_str(),
            p.organization_id,
            p.description,
            ts,
            p.ca_cert
        ],
    )?;
    Ok(id)
}

/// Replaces a project's fields (the slug, and so the backup folder, stays).
pub fn update(conn: &Connection, id: &str, p: &ValidProject) -> Result<()> {
    ensure_name_free(conn, &p.name, Some(id))?;
    let n = conn.execute(
        "UPDATE projects SET name = ?2, project_ref = ?3, db_url = ?4, environment = ?5,
                organization_id = ?6, description = ?7, updated_at = ?8, ca_cert = ?9
         WHERE id = ?1",
        params![
            id,
            p.name,
            p.project_ref,
            p.conn.url_without_password(),
            p.environment.as_str(),
            p.organization_id,
            p.description,
            now(),
            p.ca_cert
        ],
    )?;
    if n == 0 {
        return Err(Error::not_found("the project no longer exists"));
    }
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM projects WHERE id = ?1", [id])?;
    Ok(())
}
