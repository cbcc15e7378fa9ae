//! Finding PostgreSQL's client programs (pg_dump, pg_dumpall, psql,
//! pg_restore) on this machine and picking the one that fits a server:
//! its major version must be ≥ the server's. Looked up in a configured
//! folder only when one is set (`SUPABACKUP_PG_BIN_DIR`), otherwise in
//! `/usr/lib/postgresql/*/bin` and similar, and `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::engine::error::{Error, Result};

pub const BIN_DIR_ENV: &str = "SUPABACKUP_PG_BIN_DIR";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgTool {
    pub name: String,
    pub path: PathBuf,
    pub major: u32,
    pub version: String,
}

/// Folders to search, most specific first. A configured folder (the
/// engine's option, else `SUPABACKUP_PG_BIN_DIR`) is the only one searched:
/// an explicit choice is never second-guessed by discovery.
pub fn search_dirs(configured: Option<&Path>) -> Vec<PathBuf> {
    if let Some(c) = configured {
        return vec![c.to_path_buf()];
    }
    if let Some(env) = std::env::var_os(BIN_DIR_ENV).filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(env)];
    }
    let mut dirs = Vec::new();
    for root in [
        "/usr/lib/postgresql",
        "/usr/pgsql",
        "/opt/homebrew/opt",
        "/usr/local/opt",
    ] {
        if let Ok(entries) = std::fs::read_dir(root) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.is_dir())
                .collect();
            found.sort();
            found.reverse();
            dirs.extend(found);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Parses `pg_dump (PostgreSQL) 17.2 (Debian ...)` into ("17.2", 17).
pub fn parse_version(output: &str) -> Option<(String, u32)> {
    let after = output.split(')').nth(1)?.trim();
    let version = after.split_whitespace().next()?.to_owned();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version, major))
}

/// Every distinct installed `name` with its version.
pub fn discover(name: &str, configured: Option<&Path>) -> Vec<PgTool> {
    let mut out: Vec<PgTool> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for dir in search_dirs(configured) {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(real) {
            continue;
        }
        let mut probe = Command::new(&path);
        probe.arg("--version");
        crate::engine::childenv::apply(&mut probe);
        let Ok(output) = probe.output() else {
            continue;
        };
        if !output.status.success() {
            continue;
        }
        if let Some((version, major)) = parse_version(&String::from_utf8_lossy(&output.stdout)) {
            // A wrapper (Debian's /usr/bin/pg_dump) reporting a version
            // already found in a versioned folder adds nothing.
            if out.iter().any(|t| t.version == version) {
                continue;
            }
            out.push(PgTool {
                name: name.to_owned(),
                path,
                major,
                version,
            });
        }
    }
    out
}

/// Whether the libpq a client program links can refuse a clear-text
/// password request (`require_auth`, libpq 16+). Asked of the library
/// itself: a libpq that knows the setting rejects a bogus value before
/// connecting; an older one ignores it and tries to connect (to a socket
/// folder that does not exist, so nothing leaves the machine).
pub fn libpq_can_refuse_cleartext(tool: &Path) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().ok().and_then(|c| c.get(tool).copied()) {
        return v;
    }
    let mut cmd = Command::new(tool);
    crate::engine::childenv::apply(&mut cmd);
    cmd.env("PGREQUIREAUTH", "supabackup-probe")
        .env("PGHOST", "/nonexistent/supabackup-probe")
        .env("PGDATABASE", "probe")
        .env("PGCONNECT_TIMEOUT", "2")
        .stdin(std::process::Stdio::null());
    if tool.file_name().is_some_and(|n| n == "psql") {
        cmd.args(["-X", "-c", ""]);
    } else {
        cmd.arg("--schema-only");
    }
    let knows = cmd
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).contains("require_auth"))
        .unwrap_or(false);
    if let Ok(mut c) = cache.lock() {
        c.insert(tool.to_path_buf(), knows);
    }
    knows
}

/// What to install to get client tools of `major`.
pub fn install_hint(major: u32) -> String {
    format!(
        "install PostgreSQL {major} client tools (Debian/Ubuntu: apt install postgresql-client-{major} from apt.postgresql.org; macOS: brew install postgresql@{major}), or set {BIN_DIR_ENV} to their folder"
    )
}

/// Picks the installed tool whose major is ≥ `server_major`, preferring the
/// closest (an exact match first).
pub fn choose(tools: &[PgTool], name: &str, server_major: u32) -> Result<PgTool> {
    tools
        .iter()
        .filter(|t| t.major >= server_major)
        .min_by_key(|t| t.major)
        .cloned()
        .ok_or_else(|| {
            let found: Vec<String> = tools.iter().map(|t| format!("{} {}", t.name, t.version)).collect();
            let found = if found.is_empty() {
                format!("no {name} was found")
            } else {
                format!("only {} found", found.join(", "))
            };
            Error::tool(format!(
                "{name} {server_major} or newer is needed for a PostgreSQL {server_major} server; {found}"
            ))
            .with_hint(install_hint(server_major))
        })
}

/// Finds and picks `name` for a server of `server_major` in one step.
pub fn find_for_server(name: &str, server_major: u32, configured: Option<&Path>) -> Result<PgTool> {
    choose(&discover(name, configured), name, server_major)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(major: u32) -> PgTool {
        PgTool {
            name: "pg_dump".into(),
            path: PathBuf::from(format!("/x/{major}/pg_dump")),
            major,
            version: format!("{major}.1"),
        }
    }

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(("15.20".into(), 15))
        );
        assert_eq!(
            parse_version("psql (PostgreSQL) 17beta1"),
            Some(("17beta1".into(), 17))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn chooses_the_closest_major_at_or_above_the_server() {
        let tools = [tool(14), tool(17), tool(15)];
        assert_eq!(choose(&tools, "pg_dump", 15).expect("15").major, 15);
        assert_eq!(choose(&tools, "pg_dump", 16).expect("17").major, 17);
        let err = choose(&tools, "pg_dump", 18).expect_err("too old");
        assert!(err.message.contains("pg_dump 18 or newer"), "{err}");
        assert!(
            err.hint
                .as_deref()
                .unwrap_or("")
                .contains("postgresql-client-18")
        );
        let err = choose(&[], "pg_dump", 15).expect_err("none");
        assert!(err.message.contains("no pg_dump was found"), "{err}");
    }
}
