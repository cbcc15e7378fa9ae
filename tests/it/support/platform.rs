//! New Supabase projects built from Supabase's own platform code
//! (`../shared/fixtures/supabase_platform/make_platform.sh`): the script
//! runs once per test binary into a template database (about 20 s), and
//! every "new project" is a `CREATE DATABASE … TEMPLATE` clone of it.
//!
//! Applications on top of it:
//! * [`TestDb::load_shared_app`]: the application part of the hand-written
//!   `supabase_like.sql` (its part B, with the vault and Database Webhooks
//!   pieces a project with those features has), cut out of the shared file
//!   at test time;
//! * [`TestDb::load_teams_app`]: `tests/fixtures/teams_app.sql`, a
//!   multi-tenant SaaS schema modelled on open-source Supabase starter kits,
//!   with generated data.
//!
//! Fixtures are found in `SUPABACKUP_FIXTURES_DIR` or `../shared/fixtures`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::pg::{Cluster, TestDb, cluster, roles_lock};

/// The folder holding the shared fixtures.
pub fn fixtures_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SUPABACKUP_FIXTURES_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();

fn build_template(c: &'static Cluster) -> Result<String, String> {
    let script = fixtures_dir().join("supabase_platform/make_platform.sh");
    if !script.is_file() {
        return Err(format!(
            "{} is missing (set SUPABACKUP_FIXTURES_DIR)",
            script.display()
        ));
    }
    let name = format!("sb_platform_tpl_{}", std::process::id());
    let log = std::env::temp_dir().join(format!("make_platform.{name}.log"));
    let path = format!(
        "{}:{}",
        c.bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(&name);
    c.pg_env(&mut cmd, "postgres");
    cmd.env("PATH", path).env("LOG", &log);
    let _roles = roles_lock();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run make_platform.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "make_platform.sh failed ({}):\n{}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    let _ = std::fs::remove_file(&log);
    Ok(name)
}

/// The template database of a new project (built on first use).
pub fn template() -> &'static str {
    match TEMPLATE.get_or_init(|| build_template(cluster())) {
        Ok(name) => name,
        Err(e) => panic!("the platform template could not be built:\n{e}"),
    }
}

/// A new, empty Supabase project: a clone of the platform template.
pub fn new_project(prefix: &str) -> TestDb {
    let tpl = template();
    cluster().create_db_from(prefix, tpl)
}

/// The text between the line starting with `from` (included) and the one
/// starting with `to` (excluded).
fn cut<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("the fixture has no line {from:?}"));
    let end = text[start..]
        .find(to)
        .map(|i| start + i)
        .unwrap_or_else(|| panic!("the fixture has no line {to:?} after {from:?}"));
    &text[start..end]
}

impl TestDb {
    /// Runs a SQL file in one transaction, serialized with other fixture
    /// loads (they create cluster-wide roles).
    pub fn run_sql_file_locked(&self, sql: &str) {
        let _roles = roles_lock();
        if let Err(e) = self.try_psql(&format!("BEGIN;\n{sql}\nCOMMIT;\n")) {
            panic!("loading a fixture into {} failed:\n{e}", self.name);
        }
    }

    /// `supabase_like.sql`'s application (part B) over the real platform,
    /// with the Vault and Database Webhooks schemas a project using those
    /// features has (the fixture's A8 and A9).
    pub fn load_shared_app(&self) {
        let text = std::fs::read_to_string(fixtures_dir().join("supabase_like.sql"))
            .expect("supabase_like.sql");
        let features = cut(&text, "-- A8. vault", "-- Stop here for an empty");
        let app = cut(
            &text,
            "-- PART B: USER APPLICATION",
            "\\echo 'supabase_like.sql: platform + application applied'",
        );
        let sql = format!(
            "SET client_min_messages = warning;\nSET search_path = public, extensions;\nSET TimeZone = 'UTC';\n\
             DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_functions_admin') THEN\n\
               CREATE ROLE supabase_functions_admin NOLOGIN NOINHERIT CREATEROLE; END IF; END $$;\n\
             {features}\n{app}\n"
        );
        self.run_sql_file_locked(&sql);
    }

    /// The teams application (tests/fixtures/teams_app.sql).
    pub fn load_teams_app(&self) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/teams_app.sql");
        let sql = std::fs::read_to_string(&path).expect("teams_app.sql");
        self.run_sql_file_locked(&sql);
    }
}
