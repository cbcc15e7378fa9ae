//! Everything a restore decides before it changes anything, and the
//! preview made from it: the target's state, the plan, the backup's files
//! checked, its schema archives decoded and read, the target's own schema
//! dumped and compared entry by entry, the dependents of what replace mode
//! replaces, and every reason to refuse.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::plan::{Plan, TargetState, inspect_target, make_plan, scoped_tables};
use super::scope::{self, Dependent};
use super::select::{self, ArchiveInput, SelectInput, Selection};
use super::verified::VerifiedBackup;
use super::{RestoreMode, RestoreRequest, Target};
use crate::engine::Engine;
use crate::engine::backup::dump::{ToolRun, stream};
use crate::engine::backup::options::Artifact;
use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, Result};
use crate::engine::pg::archive::{self, EntryKey, Toc};
use crate::engine::pg::{connect, tools};

/// A temporary folder removed when dropped. A lock file beside it
/// (`<folder>.lock`) is held meanwhile: start-up recovery removes only the
/// folders of dead processes.
pub(crate) struct WorkDir {
    path: PathBuf,
    lock: PathBuf,
    _file: std::fs::File,
}

impl WorkDir {
    pub fn create(path: PathBuf) -> Result<WorkDir> {
        let lock = lock_path(&path);
        let file = std::fs::File::create(&lock).map_err(|e| Error::io("create", &lock, e))?;
        file.try_lock()
            .map_err(|e| Error::internal(format!("could not lock {}: {e}", lock.display())))?;
        crate::engine::paths::create_dirs_synced(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
        }
        Ok(WorkDir {
            path,
            lock,
            _file: file,
        })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of a work folder.
pub(crate) fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// PostgreSQL's tools of the target's major version.
pub(crate) struct Tools {
    pub psql: PathBuf,
    pub pg_restore: PathBuf,
    pub pg_dump: PathBuf,
}

/// A restore, decided.
pub(crate) struct Prepared {
    pub plan: Plan,
    pub state: TargetState,
    pub selection: Selection,
    pub archives: Vec<ArchiveInput>,
    pub dependents: Vec<Dependent>,
    pub verified: std::sync::Arc<VerifiedBackup>,
    pub tools: Tools,
    pub work: WorkDir,
    /// Connections the load uses (1: one transaction; see parallel.rs).
    pub jobs: usize,
}

impl Prepared {
    /// Why the restore cannot run as asked, if it cannot.
    pub fn refusal(&self) -> Option<&str> {
        self.plan.preview.refusal.as_deref()
    }
}

/// How a restore is prepared.
pub(crate) struct PrepareOptions {
    /// Check every file the restore reads (a run), or only the archives the
    /// preview reads.
    pub for_run: bool,
    /// A rollback: the target becomes exactly the backup.
    pub exact: bool,
}

impl Engine {
    /// psql, pg_restore and pg_dump for a server of `major`.
    pub(crate) async fn client_tools(&self, major: u32) -> Result<Tools> {
        let bin = self.pg_bin_dir();
        let psql = tokio::task::spawn_blocking(move || {
            tools::find_for_server("psql", major, bin.as_deref())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let sibling = |name: &str| {
            psql.path
                .parent()
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
                .ok_or_else(|| {
                    Error::tool(format!("{name} is missing next to {}", psql.path.display()))
                })
        };
        Ok(Tools {
            pg_restore: sibling("pg_restore")?,
            pg_dump: sibling("pg_dump")?,
            psql: psql.path.clone(),
        })
    }

    /// Decides a restore into a resolved target (changes nothing).
    pub(crate) async fn prepare(
        &self,
        req: &RestoreRequest,
        target: &Target,
        work: PathBuf,
        opts: PrepareOptions,
        cancel: &CancellationToken,
    ) -> Result<Prepared> {
        req.scope.validate()?;
        req.validate_jobs()?;
        let mut req = req.clone();
        req.scope = req.scope.normalized()?;
        let req = &req;
        let (_, manifest, _) = self
            .backup_and_manifest(&req.backup, req.from.as_deref())
            .await?;
        super::verified::check_manifest(&manifest)?;
        let client = connect::connect(&target.info, None).await?;
        let tables = scoped_tables(&manifest, &req.scope);
        let state = inspect_target(&client, &tables).await?;
        let tools = self.client_tools(state.major).await?;
        let mut plan = make_plan(
            &manifest,
            &req.scope,
            req.mode,
            opts.exact,
            &state,
            &target.label,
        )?;
        let archives_needed: Vec<Artifact> = if plan.want_schema {
            [Artifact::SchemaArchive, Artifact::PlatformArchive]
                .into_iter()
                .filter(|a| manifest.file(*a).is_some())
                .collect()
        } else {
            Vec::new()
        };
        let mut needed = archives_needed.clone();
        if opts.for_run {
            if plan.roles {
                needed.push(Artifact::Roles);
            }
            if plan.data.is_some() {
                needed.push(Artifact::Data);
            }
            if plan.history {
                needed.push(Artifact::History);
            }
        }
        let verified = self
            .verified_backup(&req.backup, req.from.as_deref(), needed)
            .await?;
        let work = WorkDir::create(work)?;

        // The backup's schema archives and the target's own schema.
        let dir = work.path().to_path_buf();
        let (verified, archives) = tokio::task::spawn_blocking(move || {
            let mut archives = Vec::new();
            for a in &archives_needed {
                let path = dir.join(format!("{}.dump", a.stem()));
                verified.extract(*a, &path)?;
                let toc = archive::read_toc_file(&path)?;
                archives.push(ArchiveInput { path, toc });
            }
            Ok::<_, Error>((verified, archives))
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let target_toc = if plan.want_schema {
            let path = work.path().join("target.dump");
            dump_target_schema(&client, &tools.pg_dump, &target.info, &path, cancel).await?;
            Some(archive::read_toc_file(&path)?)
        } else {
            None
        };

        // What replace mode drops outside the scope.
        let mut dependents = scope::dependents(&client, &plan.replace_schemas).await?;
        for d in &mut dependents {
            // A rollback brings back exactly the snapshot: what is not in
            // it goes, whatever depends on it.
            d.accepted = opts.exact || req.allow_drop.iter().any(|a| a.trim() == d.object);
        }
        let cascaded: HashSet<(u32, u32)> = dependents
            .iter()
            .filter(|d| d.objsubid == 0)
            .map(|d| (d.classid, d.objid))
            .collect();

        let selection = match &target_toc {
            Some(t) => {
                let replaced: BTreeSet<String> = plan.replace_schemas.iter().cloned().collect();
                let suspended = suspended_schemas(&plan);
                select::select(&SelectInput {
                    archives: &archives,
                    target: t,
                    schemas: &req.scope.schemas,
                    replace: req.mode == Some(RestoreMode::Replace),
                    exact: opts.exact,
                    replaced: &replaced,
                    cascaded: &cascaded,
                    current_user: &state.current_user,
                    suspended: &suspended,
                    target_schemas: &state.schemas,
                })
            }
            None => Selection::default(),
        };
        if let Some(t) = &target_toc {
            mark_recreated(&mut dependents, t, &archives, &selection);
        }
        finish_preview(&mut plan, &state, &selection, &dependents, req, target);
        let jobs = load_jobs(&client, req.jobs, &mut plan.preview).await;
        if jobs > 1 && plan.data.is_some() && req.from.as_deref().is_some_and(|f| f != "local") {
            plan.preview.warnings.push(format!(
                "each of the {jobs} connections reads the backup's data file from the destination: it is downloaded {jobs} times"
            ));
        }
        Ok(Prepared {
            plan,
            state,
            selection,
            archives,
            dependents,
            verified: std::sync::Arc::new(verified),
            tools,
            work,
            jobs,
        })
    }
}

/// How many connections the load uses: what was asked, within the
/// server's free connections (two kept for others); the preview says what
/// a parallel load means.
async fn load_jobs(
    client: &tokio_postgres::Client,
    asked: u8,
    preview: &mut super::RestorePreview,
) -> usize {
    let asked = usize::from(asked.max(1));
    if asked == 1 {
        return 1;
    }
    let free = crate::engine::pg::connect::free_connections(client).await;
    let jobs = match free {
        Some(free) => asked.min(usize::try_from(free - 2).unwrap_or(0)).max(1),
        None => asked,
    };
    if jobs < asked {
        preview.warnings.push(format!(
            "the target has {} free connection(s): loading on {jobs} instead of {asked}",
            free.unwrap_or(0)
        ));
    }
    if jobs > 1 {
        preview.warnings.push(format!(
            "parallel load on {jobs} connections: rows and indexes load in several transactions, \
             so the restore is not all-or-nothing — if it fails or is cancelled partway, the \
             target is left partly restored until you roll back to the safety snapshot (or \
             restore again in replace mode), and other sessions can see tables filling in"
        ));
    }
    preview.jobs = jobs as u8;
    jobs
}

/// Schemas in which the restore creates objects: the restoring role's
/// default privileges there are suspended (the backup brings the source's).
pub(crate) fn suspended_schemas(plan: &Plan) -> BTreeSet<String> {
    if plan.want_schema {
        plan.ddl_schemas.clone()
    } else {
        BTreeSet::new()
    }
}

/// A dependent comes back when the backup holds the same object and the
/// selection runs it.
fn mark_recreated(
    dependents: &mut [Dependent],
    target: &Toc,
    archives: &[ArchiveInput],
    sel: &Selection,
) {
    let by_oid: HashMap<(u32, u32), EntryKey> = target
        .entries
        .iter()
        .filter(|e| e.oid != 0)
        .map(|e| ((e.table_oid, e.oid), e.key()))
        .collect();
    let kept: HashSet<EntryKey> = archives
        .iter()
        .zip(&sel.keep)
        .flat_map(|(a, keep)| {
            a.toc
                .entries
                .iter()
                .filter(|e| keep.contains(&e.dump_id))
                .map(|e| e.key())
        })
        .collect();
    for d in dependents {
        if d.objsubid == 0
            && let Some(key) = by_oid.get(&(d.classid, d.objid))
        {
            d.recreated = kept.contains(key);
        }
    }
}

fn list_some(items: &[String], n: usize) -> String {
    let shown: Vec<&str> = items.iter().take(n).map(String::as_str).collect();
    let more = items.len().saturating_sub(n);
    if more > 0 {
        format!("{} … and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// Fills the preview from the selection and adds every refusal.
fn finish_preview(
    plan: &mut Plan,
    state: &TargetState,
    sel: &Selection,
    dependents: &[Dependent],
    req: &RestoreRequest,
    target: &Target,
) {
    let mut refusals: Vec<String> = plan.preview.refusal.take().into_iter().collect();
    let p = &mut plan.preview;
    p.platform_skipped = sel.skipped.clone();
    p.platform_differs = sel.differs.clone();
    p.platform_created = sel.created_platform.clone();
    p.platform_missing = sel.missing_platform.clone();
    p.replaced_objects = sel.replaced.clone();
    p.dependents = dependents.to_vec();
    for s in &sel.skipped_for_deps {
        p.warnings.push(format!("not restored: {s}"));
    }
    if !sel.unsatisfied.is_empty() {
        refusals.push(format!(
            "objects in scope need objects the restore neither brings nor finds in the target: {}; widen the scope",
            list_some(&sel.unsatisfied, 5)
        ));
    }
    // Every table the data loads into must exist.
    if let Some(data) = &plan.data {
        let exists = |s: &str, n: &str| {
            if plan.want_schema {
                sel.tables.contains(&(s.to_owned(), n.to_owned()))
            } else {
                state
                    .objects
                    .iter()
                    .any(|o| o.kind == "table" && o.schema == s && o.name == n)
            }
        };
        let missing: Vec<String> = p
            .tables
            .iter()
            .filter(|t| {
                let (s, n) = (t.schema.as_str(), t.name.as_str());
                (data.tables.is_empty() || data.tables.contains(&(s.to_owned(), n.to_owned())))
                    && !exists(s, n)
            })
            .map(|t| format!("{} ({} rows)", t.table, t.rows_after))
            .collect();
        if !missing.is_empty() {
            refusals.push(format!(
                "the target has no table for rows of {}",
                list_some(&missing, 5)
            ));
        }
    }
    let lost: Vec<String> = dependents
        .iter()
        .filter(|d| !d.recreated && !d.accepted)
        .map(|d| format!("\"{}\" (depends on {})", d.object, d.depends_on))
        .collect();
    if !lost.is_empty() {
        refusals.push(format!(
            "replacing {} would also drop {} object(s) outside the scope: {}; widen the scope or accept each with --allow-drop \"OBJECT\"",
            plan.replace_schemas.join(", "),
            lost.len(),
            list_some(&lost, 8)
        ));
    }
    let unknown: Vec<&String> = req
        .allow_drop
        .iter()
        .filter(|a| !dependents.iter().any(|d| d.object == a.trim()))
        .collect();
    if !unknown.is_empty() {
        refusals.push(format!(
            "--allow-drop names what the restore would not drop: {}",
            unknown
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let production = target
        .project
        .as_ref()
        .is_some_and(|p| p.environment == crate::engine::project::Environment::Production);
    p.confirm_name = if production {
        target.project.as_ref().map(|p| p.name.clone())
    } else if target.project.is_none() && !state.is_empty() {
        Some(target.info.dbname.clone())
    } else {
        None
    };
    p.allowed = refusals.is_empty();
    p.refusal = (!refusals.is_empty()).then(|| refusals.join("; and "));
}

/// Dumps the target's schema (every schema it can read, as backups do) to
/// compare with the backup's.
async fn dump_target_schema(
    client: &tokio_postgres::Client,
    pg_dump: &Path,
    info: &ConnInfo,
    to: &Path,
    cancel: &CancellationToken,
) -> Result<()> {
    let unreadable = crate::engine::backup::source::unreadable_platform_schemas(client).await?;
    let mut args = vec![
        "--schema-only".to_owned(),
        "--quote-all-identifiers".to_owned(),
        "--no-password".to_owned(),
        "--format=custom".to_owned(),
        "--compress=0".to_owned(),
        "--exclude-schema=supabase_migrations".to_owned(),
        "--exclude-schema=*timescaledb_*".to_owned(),
        format!("--file={}", to.display()),
    ];
    for s in unreadable {
        args.push(format!("--exclude-schema={s}"));
    }
    let info = info.clone();
    let pg_dump = pg_dump.to_path_buf();
    let cancel = cancel.clone();
    let passfile_path = to.with_extension("pgpass");
    tokio::task::spawn_blocking(move || -> Result<()> {
        let passfile = crate::engine::backup::dump::PassFile::create(&passfile_path, &info)?;
        let run = ToolRun {
            program: &pg_dump,
            args,
            info: &info,
            passfile: passfile.as_ref().map(|p| p.path()),
        };
        stream(&run, &cancel, &mut |_| Ok(())).map_err(|e| {
            Error::new(
                e.kind,
                format!("could not read the target's schema: {}", e.message),
            )
        })
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))?
}
