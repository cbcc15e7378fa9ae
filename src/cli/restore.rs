//! `supabackup restore ...` and `verify --restore-test`.

use std::io::IsTerminal;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{cancel_on_ctrl_c, output, prompt};
use crate::engine::migrate::{CloneInput, CloneWhat};
use crate::engine::restore::{
    RestoreMode, RestorePreview, RestoreProgress, RestoreRequest, RestoreScope, RestoreTarget,
};
use crate::engine::{Engine, Error, ErrorKind, Result};

#[derive(Debug, Subcommand)]
pub enum RestoreCmd {
    /// Restore a backup (asks for confirmation on a terminal unless --yes).
    Run {
        /// The backup to restore: id or a unique prefix of it.
        backup_id: String,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        /// new: the target has nothing in scope; replace: replace what is there.
        #[arg(long, value_parser = ["new", "replace"])]
        mode: Option<String>,
        /// Accept that replacing the scope drops this object outside it, named
        /// as the preview lists it (repeat for each).
        #[arg(long = "allow-drop", value_name = "OBJECT")]
        allow_drop: Vec<String>,
        /// The target's name typed again: required for production projects and
        /// for URL targets that are not empty (--yes alone is not enough there).
        #[arg(long, value_name = "NAME")]
        confirm: Option<String>,
        /// Read the backup from this destination's copy (or `local`), streaming:
        /// no full local copy is made.
        #[arg(long, value_name = "DESTINATION")]
        from: Option<String>,
        /// Load on N connections side by side (2–8), as pg_restore --jobs:
        /// faster when the server has cores to spare, but not all-or-nothing
        /// — a failure partway leaves the target partly restored until
        /// rolled back. 1: one transaction.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u8).range(1..=8))]
        jobs: u8,
        /// Do not ask before restoring.
        #[arg(long)]
        yes: bool,
        /// Print the restore record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what a restore would do, changing nothing.
    Preview {
        /// The backup to restore: id or a unique prefix of it.
        backup_id: String,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        /// new: the target has nothing in scope; replace: replace what is there.
        #[arg(long, value_parser = ["new", "replace"])]
        mode: Option<String>,
        /// Objects outside the scope to accept losing (as the preview lists them).
        #[arg(long = "allow-drop", value_name = "OBJECT")]
        allow_drop: Vec<String>,
        /// Read the backup from this destination's copy (or `local`), streaming.
        #[arg(long, value_name = "DESTINATION")]
        from: Option<String>,
        /// Load on N connections side by side (2–8), as pg_restore --jobs:
        /// faster when the server has cores to spare, but not all-or-nothing
        /// — a failure partway leaves the target partly restored until
        /// rolled back. 1: one transaction.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u8).range(1..=8))]
        jobs: u8,
        /// Print the preview as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clone an environment: restore project SOURCE's newest full backup
    /// (or --backup) into project TARGET, with the preview first.
    /// --schema-only for dev → prod promotion; schema and data (the default)
    /// for prod → staging.
    Clone {
        /// The project to copy from.
        source: String,
        /// The project to restore into.
        target: String,
        /// A backup of SOURCE (id or unique prefix); by default its newest
        /// completed full backup.
        #[arg(long, value_name = "ID")]
        backup: Option<String>,
        /// Roles and schema only, no table data.
        #[arg(long)]
        schema_only: bool,
        /// new: the target has nothing in scope; replace: replace what is there.
        #[arg(long, value_parser = ["new", "replace"])]
        mode: Option<String>,
        /// Accept that replacing drops this object, as the preview names it.
        #[arg(long = "allow-drop", value_name = "OBJECT")]
        allow_drop: Vec<String>,
        /// The target's name typed again (production targets).
        #[arg(long, value_name = "NAME")]
        confirm: Option<String>,
        /// Read the backup from this destination's copy (or `local`).
        #[arg(long, value_name = "DESTINATION")]
        from: Option<String>,
        /// Load on N connections side by side (2–8), as pg_restore --jobs:
        /// faster when the server has cores to spare, but not all-or-nothing
        /// — a failure partway leaves the target partly restored until
        /// rolled back. 1: one transaction.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u8).range(1..=8))]
        jobs: u8,
        /// Only show the preview; change nothing.
        #[arg(long)]
        preview: bool,
        /// Do not ask before restoring.
        #[arg(long)]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Undo a restore by restoring its safety snapshot exactly.
    Rollback {
        /// The restore to undo (`restore list` shows the ids).
        restore_id: String,
        /// The target's name typed again (production projects, non-empty URL targets).
        #[arg(long, value_name = "NAME")]
        confirm: Option<String>,
        /// Do not ask before rolling back.
        #[arg(long)]
        yes: bool,
    },
    /// List restores, newest first.
    List {
        /// At most this many restores.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A project of the catalog (name, id or ref).
    #[arg(long = "to")]
    to: Option<String>,
    /// Any PostgreSQL database, postgresql://USER@HOST:PORT/DB[?sslmode=…];
    /// its password from --to-url-password-stdin or SUPABACKUP_TARGET_PASSWORD.
    #[arg(long = "to-url")]
    to_url: Option<String>,
    /// Read the --to-url database's password from standard input.
    #[arg(long, requires = "to_url")]
    to_url_password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Only these schemas, by exact name (case matters; comma-separated or
    /// repeated; quote a name holding a comma or dot: '"a.b"').
    #[arg(long)]
    schema: Vec<String>,
    /// Only these tables' rows, as schema.table (the tables must exist in
    /// the target; comma-separated or repeated; quote parts holding a dot).
    #[arg(long)]
    table: Vec<String>,
    /// Restore roles (default with a whole-backup scope).
    #[arg(long, overrides_with = "no_roles")]
    roles: bool,
    /// Do not restore roles.
    #[arg(long)]
    no_roles: bool,
    /// Only the schema (no data).
    #[arg(long, conflicts_with = "data_only")]
    schema_only: bool,
    /// Only the data.
    #[arg(long)]
    data_only: bool,
}

impl TargetArgs {
    fn target(&self) -> Result<RestoreTarget> {
        match (&self.to, &self.to_url) {
            (Some(p), None) => Ok(RestoreTarget::Project(p.clone())),
            (None, Some(u)) => {
                super::warn_password_in_argv(
                    u,
                    "--to-url-password-stdin",
                    "SUPABACKUP_TARGET_PASSWORD",
                );
                let pw = super::password_for_url(
                    self.to_url_password_stdin,
                    "SUPABACKUP_TARGET_PASSWORD",
                )?;
                Ok(RestoreTarget::Url(
                    crate::engine::restore::url_with_password(u, pw)?,
                ))
            }
            _ => Err(Error::invalid(
                "give exactly one of --to PROJECT or --to-url URL",
            )),
        }
    }
}

impl ScopeArgs {
    fn scope(&self) -> RestoreScope {
        RestoreScope {
            schemas: super::names(&self.schema),
            tables: super::names(&self.table),
            roles: !self.no_roles
                && !self.data_only
                && (self.roles || (self.schema.is_empty() && self.table.is_empty())),
            schema: !self.data_only && self.table.is_empty(),
            data: !self.schema_only,
        }
    }
}

/// Previews, asks (unless `yes`), then runs a restore: the one path of
/// `restore run` and `restore clone`.
async fn execute(engine: &Engine, mut req: RestoreRequest, yes: bool, json: bool) -> Result<i32> {
    let preview = engine.preview_restore(&req).await?;
    if let Some(r) = &preview.refusal {
        return Err(Error::conflict(r.clone()).with_hint(
            "run `supabackup restore preview` to see the details; nothing was changed",
        ));
    }
    if !yes {
        if !json && std::io::stdout().is_terminal() {
            print_preview(&preview);
        }
        if !prompt::confirm("Go ahead with this restore?") {
            return Err(Error::invalid("restore not confirmed; nothing was changed")
                .with_hint("pass --yes to skip the question"));
        }
    }
    if let Some(name) = &preview.confirm_name
        && req.confirm.is_none()
        && prompt::interactive()
    {
        req.confirm = prompt::line(&format!(
            "{} needs its name typed to restore into it. Name: ",
            preview.target
        ));
        if req.confirm.as_deref().map(str::trim) != Some(name.as_str()) {
            return Err(Error::invalid(
                "the name does not match; nothing was changed",
            ));
        }
    }
    let bar = super::progress::Bar::new();
    let rec = engine
        .run_restore(req, progress_fn(&bar), cancel_on_ctrl_c())
        .await;
    bar.finish();
    let rec = rec?;
    if json {
        output::json(&rec)?;
    } else {
        println!("{}", rec.id);
        eprintln!(
            "Restore completed{}.",
            rec.snapshot_backup_id
                .as_ref()
                .map(|s| format!(
                    "; undo it with `supabackup restore rollback {}` (snapshot {s})",
                    rec.id
                ))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

fn print_preview(p: &RestorePreview) {
    println!(
        "Restore preview of backup {} into {}",
        p.backup_id, p.target
    );
    println!("  Target server:   PostgreSQL {}", p.target_server_version);
    println!("  Create:          {} object(s)", p.create.len());
    for o in p.create.iter().take(15) {
        println!("    + {o}");
    }
    if p.create.len() > 15 {
        println!("    … and {} more", p.create.len() - 15);
    }
    println!("  Replace:         {} object(s)", p.replace.len());
    for o in p.replace.iter().take(15) {
        println!("    ~ {o}");
    }
    println!(
        "  Left alone:      {} object(s) outside the scope",
        p.left_alone
    );
    if !p.changed.is_empty() {
        println!("  Differ from the backup: {}", p.changed.join(", "));
    }
    if !p.extra_in_target.is_empty() {
        println!(
            "  Only in the target (within scope): {}",
            p.extra_in_target.join(", ")
        );
    }
    if !p.tables.is_empty() {
        println!("  Rows (now → after):");
        for t in &p.tables {
            println!(
                "    {:<40} {:>10} → {}",
                t.table,
                t.rows_now
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                t.rows_after
            );
        }
    }
    if !p.roles_to_create.is_empty() {
        println!("  Roles to create: {}", p.roles_to_create.join(", "));
    }
    let list = |title: &str, items: &[String], limit: usize| {
        if items.is_empty() {
            return;
        }
        println!("  {title}: {}", items.len());
        for o in items.iter().take(limit) {
            println!("    {o}");
        }
        if items.len() > limit {
            println!("    … and {} more", items.len() - limit);
        }
    };
    list(
        "Platform objects already in the target (skipped)",
        &p.platform_skipped,
        5,
    );
    list(
        "In the target with another definition (the target's kept)",
        &p.platform_differs,
        15,
    );
    list(
        "Created in platform schemas or database-wide",
        &p.platform_created,
        15,
    );
    list(
        "Platform objects the target lacks (left to the platform)",
        &p.platform_missing,
        15,
    );
    list(
        "Replaced with the backup's definition",
        &p.replaced_objects,
        15,
    );
    list(
        "Left out of schema.sql at backup time",
        &p.left_out_at_backup,
        10,
    );
    if !p.dependents.is_empty() {
        println!(
            "  Outside the scope, depending on what is replaced: {}",
            p.dependents.len()
        );
        for d in &p.dependents {
            let what = if d.recreated {
                "restored from the backup"
            } else if d.accepted {
                "DROPPED (accepted)"
            } else {
                "would be DROPPED: accept with --allow-drop, or widen the scope"
            };
            println!("    \"{}\" (depends on {}): {what}", d.object, d.depends_on);
        }
    }
    if let Some(name) = &p.confirm_name {
        println!("  Confirmation:    type the target's name: --confirm '{name}'");
    }
    println!(
        "  Estimated time:  {}",
        crate::engine::units::duration_secs(p.estimated_seconds)
    );
    println!(
        "  Safety snapshot: {}",
        if p.snapshot {
            "yes (rollback possible)"
        } else {
            "no"
        }
    );
    for w in &p.warnings {
        println!("  warning: {w}");
    }
    match &p.refusal {
        Some(r) => println!("  NOT ALLOWED: {r}"),
        None => println!("  Allowed."),
    }
}

/// Progress of a restore on a bar (hidden off a terminal); the bar is
/// cleared by `finish` once the call returns.
fn progress_fn(bar: &super::progress::Bar) -> crate::engine::restore::RestoreProgressFn {
    let bar = bar.clone();
    Arc::new(move |p: RestoreProgress| bar.restore(&p))
}

pub async fn run(engine: &Engine, cmd: RestoreCmd) -> Result<i32> {
    match cmd {
        RestoreCmd::Preview {
            backup_id,
            target,
            scope,
            mode,
            allow_drop,
            from,
            jobs,
            json,
        } => {
            prompt::unlock(engine).await?;
            let req = RestoreRequest {
                backup: backup_id,
                target: target.target()?,
                scope: scope.scope(),
                mode: mode.as_deref().map(RestoreMode::parse).transpose()?,
                allow_drop,
                confirm: None,
                from,
                jobs,
            };
            let p = engine.preview_restore(&req).await?;
            if json {
                output::json(&p)?;
            } else {
                print_preview(&p);
            }
            Ok(0)
        }
        RestoreCmd::Run {
            backup_id,
            target,
            scope,
            mode,
            allow_drop,
            confirm,
            from,
            jobs,
            yes,
            json,
        } => {
            prompt::unlock(engine).await?;
            let req = RestoreRequest {
                backup: backup_id,
                target: target.target()?,
                scope: scope.scope(),
                mode: mode.as_deref().map(RestoreMode::parse).transpose()?,
                allow_drop,
                confirm,
                from,
                jobs,
            };
            execute(engine, req, yes, json).await
        }
        RestoreCmd::Clone {
            source,
            target,
            backup,
            schema_only,
            mode,
            allow_drop,
            confirm,
            from,
            jobs,
            preview,
            yes,
            json,
        } => {
            prompt::unlock(engine).await?;
            let mut req = engine
                .clone_request(&CloneInput {
                    source,
                    target,
                    backup,
                    what: if schema_only {
                        CloneWhat::SchemaOnly
                    } else {
                        CloneWhat::SchemaAndData
                    },
                    mode: mode.as_deref().map(RestoreMode::parse).transpose()?,
                    from,
                    allow_drop,
                    confirm,
                })
                .await?;
            req.jobs = jobs;
            if preview {
                let p = engine.preview_restore(&req).await?;
                if json {
                    output::json(&p)?;
                } else {
                    print_preview(&p);
                }
                return Ok(0);
            }
            eprintln!("Cloning with backup {}.", req.backup);
            execute(engine, req, yes, json).await
        }
        RestoreCmd::Rollback {
            restore_id,
            confirm,
            yes,
        } => {
            prompt::unlock(engine).await?;
            let r = engine.restore_record(&restore_id).await?;
            if !yes && !prompt::confirm(&format!("Roll back restore {} into {}?", r.id, r.target)) {
                return Err(
                    Error::invalid("rollback not confirmed; nothing was changed")
                        .with_hint("pass --yes"),
                );
            }
            let bar = super::progress::Bar::new();
            let rec = engine
                .rollback_restore(&r.id, confirm, progress_fn(&bar), cancel_on_ctrl_c())
                .await;
            bar.finish();
            let rec = rec?;
            println!("{}", rec.id);
            eprintln!("Restore {} was rolled back.", r.id);
            Ok(0)
        }
        RestoreCmd::List { limit, json } => {
            // Unlocked, interrupted restores learn whether they committed.
            prompt::try_unlock(engine).await;
            let list = engine.list_restores(limit).await?;
            if json {
                return output::json(&list).map(|_| 0);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.backup_id.clone(),
                        r.target.clone(),
                        if r.jobs > 1 {
                            format!("{} ({} connections)", r.mode, r.jobs)
                        } else {
                            r.mode.clone()
                        },
                        r.status_label(),
                        r.snapshot_backup_id.clone().unwrap_or_else(|| "-".into()),
                        r.started_at.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID", "BACKUP", "TARGET", "MODE", "STATUS", "SNAPSHOT", "STARTED",
                ],
                &rows,
            );
            Ok(0)
        }
    }
}

/// `supabackup verify ID --restore-test`
pub async fn restore_test(
    engine: &Engine,
    id: &str,
    scratch: Option<String>,
    from: Option<String>,
    json: bool,
) -> Result<i32> {
    prompt::unlock(engine).await?;
    let bar = super::progress::Bar::new();
    let report = engine
        .restore_test_from(id, scratch, from, progress_fn(&bar), cancel_on_ctrl_c())
        .await;
    bar.finish();
    let report = report?;
    if json {
        output::json(&report)?;
    } else {
        for t in &report.tables {
            let ok = t.actual_rows == t.expected_rows && t.checksum_matches;
            println!(
                "{:<48} {:>10} rows {}",
                t.table,
                t.actual_rows,
                if ok { "ok" } else { "MISMATCH" }
            );
        }
    }
    if report.ok {
        if !json {
            println!(
                "Backup {} restored and matched its manifest ({} tables).",
                report.backup_id,
                report.tables.len()
            );
        }
        Ok(0)
    } else {
        Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "the restore test of {} failed: {}",
                report.backup_id,
                report.first_failure.unwrap_or_default()
            ),
        ))
    }
}
