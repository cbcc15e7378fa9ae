//! Restores: a backup into the same project, another project or any URL —
//! whole or by schema/table, roles/schema/data separately — with a preview,
//! a safety snapshot and a rollback, in one transaction (or, when asked, on
//! several connections in several transactions), loaded the way pg_restore
//! loads (pre-data, data, post-data). And the automated
//! restore test, which takes the same path into a throw-away database.
//!
//! - `plan`: the target as it is, conflicts, what replace mode replaces;
//! - `verified`: only bytes that match the manifest and the catalog;
//! - `select`: which archive entries run, compared with the target's own;
//! - `scope`: what outside a replaced scope depends on it;
//! - `prepare`: all of the above, the preview;
//! - `load`: the one psql session; `parallel`: the load on several
//!   connections outside one transaction; `guard`: what psql may be sent;
//! - `exec`: restores, rollbacks and their records; `recover`: after a
//!   crash; `rtest`: restore tests.

pub mod datafilter;
mod exec;
pub mod guard;
mod load;
mod parallel;
mod plan;
mod prepare;
mod recover;
mod rtest;
pub mod scope;
mod select;
pub(crate) mod verified;

use serde::{Deserialize, Serialize};

pub use plan::{RestorePreview, TableChange};
pub use rtest::{RestoreTestReport, TableCheck};
pub(crate) use rtest::{SCRATCH_SETTING, check_scratch_url};

use crate::engine::crypto::Secret;
use crate::engine::error::{Error, Result};

/// Where to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// A project of the catalog (name, id or ref).
    Project(String),
    /// Any PostgreSQL URL (its password may be in it).
    Url(String),
}

/// What to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreScope {
    /// Only these schemas (empty: everything in the backup).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Only these tables' rows, as `schema.table` (the tables must exist).
    #[serde(default)]
    pub tables: Vec<String>,
    pub roles: bool,
    pub schema: bool,
    pub data: bool,
}

impl Default for RestoreScope {
    fn default() -> Self {
        RestoreScope {
            schemas: Vec::new(),
            tables: Vec::new(),
            roles: true,
            schema: true,
            data: true,
        }
    }
}

impl RestoreScope {
    pub fn is_whole(&self) -> bool {
        self.schemas.is_empty() && self.tables.is_empty()
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.roles || self.schema || self.data) {
            return Err(Error::invalid(
                "nothing to restore: roles, schema and data are all off",
            ));
        }
        self.normalized()?;
        if !self.tables.is_empty() && !self.schemas.is_empty() {
            return Err(Error::invalid("choose schemas or tables, not both"));
        }
        Ok(())
    }

    /// The same scope with names read as identifiers (`ident.rs`): schemas
    /// exact, tables as `schema.table` written so they read back.
    pub fn normalized(&self) -> Result<RestoreScope> {
        let mut s = self.clone();
        s.schemas = self
            .schemas
            .iter()
            .map(|x| crate::engine::ident::parse_schema(x))
            .collect::<Result<_>>()?;
        s.tables = self
            .tables
            .iter()
            .map(|t| {
                crate::engine::ident::parse_table(t)
                    .map(|(a, b)| crate::engine::ident::render_table(&a, &b))
            })
            .collect::<Result<_>>()?;
        Ok(s)
    }

    /// (schema, table) pairs of `tables`.
    pub fn table_pairs(&self) -> Vec<(String, String)> {
        self.tables
            .iter()
            .filter_map(|t| crate::engine::ident::parse_table(t).ok())
            .collect()
    }
}

/// `new`: the target has nothing in scope; `replace`: what is in scope is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreMode {
    New,
    Replace,
}

impl RestoreMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "new" => Ok(RestoreMode::New),
            "replace" => Ok(RestoreMode::Replace),
            other => Err(Error::invalid(format!(
                "unknown restore mode '{other}': use new or replace"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreMode::New => "new",
            RestoreMode::Replace => "replace",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Backup id (or unique prefix).
    pub backup: String,
    pub target: RestoreTarget,
    pub scope: RestoreScope,
    /// `None`: refuse when the target already holds objects in scope.
    pub mode: Option<RestoreMode>,
    /// Objects outside the scope the user accepts to lose, as the preview
    /// lists them (`column mood of table app.t`).
    pub allow_drop: Vec<String>,
    /// The target's name typed again: required for production projects and
    /// for URL targets that are not empty.
    pub confirm: Option<String>,
    /// Read the backup from this destination (or `local`); by default the
    /// local folder, else a stored copy.
    pub from: Option<String>,
    /// Parallel load: 0 or 1 loads everything in one transaction (the
    /// default); 2–[`MAX_JOBS`] loads rows and builds indexes on that many
    /// connections, in several transactions (see `parallel.rs`).
    pub jobs: u8,
}

/// The most connections a parallel restore loads on.
pub const MAX_JOBS: u8 = 8;

impl RestoreRequest {
    /// Refuses a parallel load of more than [`MAX_JOBS`] connections.
    pub fn validate_jobs(&self) -> Result<()> {
        if self.jobs > MAX_JOBS {
            return Err(Error::invalid(format!(
                "a restore loads on 1 to {MAX_JOBS} connections, not {}",
                self.jobs
            )));
        }
        Ok(())
    }
}

impl Default for RestoreTarget {
    fn default() -> Self {
        RestoreTarget::Project(String::new())
    }
}

/// A restore as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub id: String,
    pub backup_id: String,
    pub target_project_id: Option<String>,
    pub target: String,
    pub scope: serde_json::Value,
    pub mode: String,
    pub status: String,
    pub snapshot_backup_id: Option<String>,
    pub rollback_of: Option<String>,
    pub error_message: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
    /// For an interrupted restore: whether its transaction committed
    /// (`None`: not known yet).
    #[serde(default)]
    pub committed: Option<bool>,
    /// Objects outside the scope it was allowed to drop.
    #[serde(default)]
    pub allow_drop: Vec<String>,
    /// Connections it loaded on (1: one transaction; more: a parallel load,
    /// which can leave the target partly restored when it fails).
    #[serde(default = "one")]
    pub jobs: u8,
}

fn one() -> u8 {
    1
}

impl RestoreRecord {
    /// The status as the GUI and the CLI show it: with, for a restore
    /// that did not complete, whether it changed the target.
    pub fn status_label(&self) -> String {
        let partly = self.jobs > 1;
        match (self.status.as_str(), self.committed) {
            ("interrupted", Some(true)) if partly => "interrupted (partly applied)".into(),
            ("interrupted", Some(true)) => "interrupted (committed)".into(),
            ("interrupted", Some(false)) => "interrupted (rolled back)".into(),
            ("interrupted", None) => "interrupted (commit unknown)".into(),
            ("failed" | "cancelled", Some(true)) => format!("{} (partly applied)", self.status),
            (s, _) => s.to_owned(),
        }
    }

    /// Whether rollback applies: the restore changed the target.
    pub fn changed_target(&self) -> bool {
        self.status == "completed"
            || (matches!(self.status.as_str(), "interrupted" | "failed" | "cancelled")
                && self.committed == Some(true))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestorePhase {
    Preparing,
    Snapshot,
    Loading,
    /// A restore test compares what it restored with the manifest.
    Checking,
}

/// A progress report of a restore.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreProgress {
    pub restore_id: String,
    pub phase: RestorePhase,
    /// Plain SQL bytes sent to psql.
    pub bytes_applied: u64,
    pub total_bytes: u64,
    pub rate: f64,
    pub eta_secs: Option<f64>,
    pub elapsed_secs: f64,
}

impl RestoreProgress {
    /// A report for `id` in `phase`, `sent` of `total` bytes, with the
    /// rate and ETA measured since `started`.
    pub fn measured(
        id: &str,
        phase: RestorePhase,
        sent: u64,
        total: u64,
        started: std::time::Instant,
    ) -> RestoreProgress {
        let elapsed = started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        };
        RestoreProgress {
            restore_id: id.to_owned(),
            phase,
            bytes_applied: sent,
            total_bytes: total,
            rate,
            eta_secs: (rate > 0.0 && total > sent).then(|| (total - sent) as f64 / rate),
            elapsed_secs: elapsed,
        }
    }
}

pub type RestoreProgressFn = std::sync::Arc<dyn Fn(RestoreProgress) + Send + Sync>;

/// A resolved target: its connection and how to show it.
pub(crate) struct Target {
    pub info: crate::engine::conninfo::ConnInfo,
    pub project: Option<crate::engine::project::Project>,
    pub label: String,
}

impl crate::engine::Engine {
    pub(crate) async fn resolve_target(&self, target: &RestoreTarget) -> Result<Target> {
        match target {
            RestoreTarget::Project(key) => {
                let p = self.project(key).await?;
                let info = self.connection_info(&p).await?;
                Ok(Target {
                    label: p.name.clone(),
                    info,
                    project: Some(p),
                })
            }
            RestoreTarget::Url(url) => {
                let mut info = crate::engine::conninfo::ConnInfo::parse(url)?;
                let label = info.redacted();
                crate::engine::pg::pgpass::fill(&mut info);
                Ok(Target {
                    label,
                    info,
                    project: None,
                })
            }
        }
    }
}

/// A URL target with a separately given password.
pub fn url_with_password(url: &str, password: Option<Secret>) -> Result<String> {
    let mut info = crate::engine::conninfo::ConnInfo::parse(url)?;
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        info.password = Some(p);
    }
    Ok(info.url_with_password())
}
