//! `supabackup backup ...`, `verify`, `decrypt`, `catalog rebuild`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{output, prompt};
use crate::engine::backup::{BackupKind, BackupOptions, BackupProgress, BackupRequest, Codec};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::crypto::Secret;
use crate::engine::destination::copies::StorePlan;
use crate::engine::{Engine, Error, ErrorKind, Result};

/// The environment variable for the backup-encryption passphrase.
pub const BACKUP_PASSPHRASE_ENV: &str = "SUPABACKUP_BACKUP_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Back up a project now. Prints the backup id (with --json, the catalog record).
    Run(RunArgs),
    /// List backups, newest first.
    List {
        /// Only this project's backups.
        project: Option<String>,
        /// At most this many backups.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one backup with its manifest.
    Show {
        /// Backup id (or a unique prefix of it).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a backup to a destination (uploaded, then read back and
    /// checked before it counts).
    Copy {
        /// Backup id (or a unique prefix of it).
        id: String,
        /// The destination's name.
        #[arg(long, value_name = "NAME")]
        to: String,
        /// Then remove the local folder (a move).
        #[arg(long)]
        drop_local: bool,
        /// Print the copy as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a backup's copy to a destination: the new copy is uploaded and
    /// read back, then the old one (this machine's folder unless --from)
    /// is removed.
    Move {
        /// Backup id (or a unique prefix of it).
        id: String,
        /// Where it is now: a destination's name, or `local` (the default).
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// The destination it moves to.
        #[arg(long, value_name = "NAME")]
        to: String,
        /// Print the new copy as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A project's backups as a timeline, oldest first.
    History {
        /// Project name, id or ref.
        project: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What changed from backup A to backup B (of one project or two), read
    /// from their files: schema objects added, removed and changed (with a
    /// unified diff of each definition), rows added, removed and changed per
    /// table (matched by primary key), and roles.
    Diff {
        /// The older backup (id or unique prefix).
        a: String,
        /// The newer backup (id or unique prefix).
        b: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a backup's files (here and at every destination) and catalog entry.
    Delete {
        /// Backup id (or a unique prefix of it).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Project name, id or ref.
    project: String,
    /// full = roles + schema + data + migration history, as files of their
    /// own; incremental = the same, in the deduplicating repository (only
    /// what changed is stored; always encrypted).
    #[arg(long = "type", default_value = "full", value_parser = ["full", "incremental", "schema", "data", "roles"])]
    kind: String,
    /// Only these schemas, by exact name (case matters; comma-separated or
    /// repeated; quote a name holding a comma or dot: '"a.b"').
    #[arg(long)]
    schema: Vec<String>,
    /// Leave these tables' rows out, as schema.table (comma-separated or
    /// repeated; quote parts holding a dot: '"My.App"."Tab le"').
    #[arg(long = "exclude-table")]
    exclude_table: Vec<String>,
    /// zstd (fast, the default), xz (smaller, slower) or none.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "xz", "none"])]
    compression: String,
    /// Compression level 0–9 (default: zstd 3, xz 6).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    level: Option<u8>,
    /// pg_dump processes dumping the largest tables' rows side by side, from
    /// one snapshot (1–8; default 2; incremental backups always use 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8))]
    streams: Option<u8>,
    /// Encrypt the files (the default) with the backup passphrase.
    #[arg(long, overrides_with = "no_encrypt")]
    encrypt: bool,
    /// Store the files unencrypted.
    #[arg(long)]
    no_encrypt: bool,
    /// Also copy it to these destinations (comma-separated names); each copy
    /// is read back and checked before it counts.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    destination: Vec<String>,
    /// Used instead of a destination that cannot be reached.
    #[arg(long, value_name = "NAME", requires = "destination")]
    failover: Option<String>,
    /// Keep no local copy: the folder is removed once every copy is stored
    /// and verified (it stays when one failed).
    #[arg(long, requires = "destination")]
    no_local: bool,
    /// Do not run the project's hooks (`project hooks`) around this backup.
    #[arg(long)]
    no_hooks: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// ", verified …" / ", failed: …" after a copy's status.
fn copy_note(c: &crate::engine::destination::copies::BackupCopy) -> String {
    let mut out = String::new();
    if let Some(v) = &c.verified_at {
        out.push_str(&format!(", verified {v}"));
    }
    if c.failover_for.is_some() {
        out.push_str(", failover copy");
    }
    if let Some(e) = &c.error {
        out.push_str(&format!(": {e}"));
    }
    out
}

/// Makes sure a backup passphrase is stored when encrypting.
async fn ensure_backup_passphrase(engine: &Engine) -> Result<()> {
    if engine.backup_passphrase().await?.is_some() {
        return Ok(());
    }
    let p = prompt::passphrase(
        BACKUP_PASSPHRASE_ENV,
        "New backup passphrase (keep a copy!): ",
        true,
    )?;
    match p {
        Some(p) => engine.set_backup_passphrase(p).await,
        None => Err(Error::auth("encryption is on but no backup passphrase is set")
            .with_hint("run `supabackup vault set-backup-passphrase` (or set SUPABACKUP_BACKUP_PASSPHRASE), or use --no-encrypt")),
    }
}

pub async fn run(engine: &Engine, cmd: BackupCmd) -> Result<i32> {
    match cmd {
        BackupCmd::Run(a) => {
            let options = BackupOptions {
                kind: BackupKind::parse(&a.kind)?,
                schemas: super::names(&a.schema),
                exclude_tables: super::names(&a.exclude_table),
                codec: Codec::parse(&a.compression)?,
                level: a.level,
                encrypt: !a.no_encrypt,
                streams: a.streams,
            };
            options.validate()?;
            prompt::unlock(engine).await?;
            if options.encrypt {
                ensure_backup_passphrase(engine).await?;
            }
            let bar = super::progress::Bar::new();
            let shown = bar.clone();
            let progress: crate::engine::backup::ProgressFn =
                Arc::new(move |p: BackupProgress| shown.backup(&p));
            let cancel = super::cancel_on_ctrl_c();
            let result = engine
                .run_backup(
                    BackupRequest {
                        no_hooks: a.no_hooks,
                        project: a.project,
                        options,
                        job_id: None,
                        store: StorePlan {
                            destinations: a.destination.clone(),
                            drop_local: a.no_local,
                            failover: a.failover.clone(),
                        },
                    },
                    progress,
                    cancel,
                )
                .await;
            bar.finish();
            let rec = result?;
            let copies = engine.backup_copies(&rec.id).await?;
            if a.json {
                let mut v =
                    serde_json::to_value(&rec).map_err(|e| Error::internal(e.to_string()))?;
                v["copies"] = serde_json::to_value(&copies).unwrap_or_default();
                output::json(&v)?;
            } else {
                println!("{}", rec.id);
                eprintln!(
                    "Backup completed: {} in {}",
                    output::bytes(rec.file_size.unwrap_or(0)),
                    if rec.local_state == "present" {
                        rec.file_path.as_deref().unwrap_or("")
                    } else {
                        "(no local copy)"
                    }
                );
                for c in &copies {
                    eprintln!(
                        "  copy at '{}': {}{}",
                        c.destination,
                        c.status,
                        copy_note(c)
                    );
                }
            }
            // Every requested copy must exist somewhere (a failover counts).
            let missing: Vec<&String> = a
                .destination
                .iter()
                .filter(|d| {
                    !copies.iter().any(|c| {
                        c.status == "stored"
                            && (c.destination.eq_ignore_ascii_case(d) || c.failover_for.is_some())
                    })
                })
                .collect();
            if !missing.is_empty() {
                return Err(Error::connection(format!(
                    "the backup completed here, but its copy to {} failed",
                    missing
                        .iter()
                        .map(|m| format!("'{m}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_hint(format!(
                    "retry with `supabackup backup copy {} --to NAME`",
                    rec.id
                )));
            }
            Ok(0)
        }
        BackupCmd::Move { id, from, to, json } => {
            prompt::unlock(engine).await?;
            let cancel = super::cancel_on_ctrl_c();
            let copy = engine
                .move_backup(&id, from.as_deref(), &to, &|_| {}, &cancel)
                .await?;
            if json {
                output::json(&copy)?;
            } else {
                println!(
                    "Moved backup {} from {} to '{}' ({}, read back and checked).",
                    copy.backup_id,
                    from.as_deref()
                        .map_or("this machine".to_owned(), |f| format!("'{f}'")),
                    copy.destination,
                    output::bytes(copy.stored_bytes.unwrap_or(0))
                );
            }
            Ok(0)
        }
        BackupCmd::Copy {
            id,
            to,
            drop_local,
            json,
        } => {
            prompt::unlock(engine).await?;
            let tty = std::io::stderr().is_terminal();
            let cancel = super::cancel_on_ctrl_c();
            let copy = engine
                .store_copy(
                    &id,
                    &to,
                    None,
                    &|n| {
                        if tty {
                            eprint!("\r\x1b[2Kuploading {}", output::bytes(n as i64));
                        }
                    },
                    &cancel,
                )
                .await;
            if tty {
                eprint!("\r\x1b[2K");
            }
            let copy = copy?;
            if drop_local {
                engine.drop_local_copy(&copy.backup_id).await?;
            }
            if json {
                output::json(&copy)?;
            } else {
                println!(
                    "Copied backup {} to '{}' ({}, read back and checked).",
                    copy.backup_id,
                    copy.destination,
                    output::bytes(copy.stored_bytes.unwrap_or(0))
                );
            }
            Ok(0)
        }
        BackupCmd::List {
            project,
            limit,
            json,
        } => {
            let list = engine.list_backups(project.as_deref(), limit).await?;
            if json {
                return output::json(&list).map(|_| 0);
            }
            if list.is_empty() {
                println!("No backups yet. Make one with `supabackup backup run PROJECT`.");
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = list.iter().map(row).collect();
            output::table(
                &[
                    "ID", "PROJECT", "TYPE", "STATUS", "SIZE", "CREATED", "VERIFIED",
                ],
                &rows,
            );
            Ok(0)
        }
        BackupCmd::History { project, json } => {
            let list = engine.backup_history(&project).await?;
            if json {
                return output::json(&list).map(|_| 0);
            }
            if list.is_empty() {
                println!("No backups of {project} yet.");
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|h| {
                    vec![
                        h.created_at.clone(),
                        h.id.clone(),
                        h.backup_type.clone(),
                        h.status.clone(),
                        h.stored_bytes
                            .map(output::bytes)
                            .unwrap_or_else(|| "-".into()),
                        match (&h.verified_restorable_at, &h.verified_at) {
                            (Some(_), _) => "restore-tested".into(),
                            (None, Some(_)) => "verified".into(),
                            _ => "-".into(),
                        },
                    ]
                })
                .collect();
            output::table(
                &["CREATED", "ID", "TYPE", "STATUS", "STORED", "CHECKED"],
                &rows,
            );
            Ok(0)
        }
        BackupCmd::Diff { a, b, json } => {
            prompt::unlock(engine).await?;
            let cancel = super::cancel_on_ctrl_c();
            let d = engine.diff_backups(&a, &b, cancel).await?;
            if json {
                return output::json(&d).map(|_| 0);
            }
            print_diff(&d);
            Ok(0)
        }
        BackupCmd::Show { id, json } => {
            let rec = engine.backup(&id).await?;
            let manifest = if rec.status == "completed" {
                engine.backup_manifest(&rec.id).await.ok()
            } else {
                None
            };
            if json {
                let mut v =
                    serde_json::to_value(&rec).map_err(|e| Error::internal(e.to_string()))?;
                v["manifest"] = serde_json::to_value(&manifest).unwrap_or_default();
                v["copies"] =
                    serde_json::to_value(engine.backup_copies(&rec.id).await?).unwrap_or_default();
                return output::json(&v).map(|_| 0);
            }
            println!("Id:        {}", rec.id);
            println!("Project:   {} ({})", rec.project_name, rec.project_ref);
            println!("Type:      {}", rec.backup_type);
            println!("Status:    {}", rec.status);
            if let Some(e) = &rec.error_message {
                println!("Error:     {e}");
            }
            println!(
                "Folder:    {}{}",
                rec.file_path.as_deref().unwrap_or("-"),
                match rec.local_state.as_str() {
                    "present" => "",
                    "removing" => " (being removed)",
                    _ => " (removed: copies elsewhere only)",
                }
            );
            let copies = engine.backup_copies(&rec.id).await?;
            for c in &copies {
                println!(
                    "Copy:      {} — {}{}",
                    c.destination,
                    c.status,
                    copy_note(c)
                );
            }
            println!("Size:      {}", output::bytes(rec.file_size.unwrap_or(0)));
            println!("Created:   {}", rec.created_at);
            println!(
                "Verified:  {}",
                rec.verified_at.as_deref().unwrap_or("never")
            );
            if let Some(m) = manifest {
                println!(
                    "Server:    PostgreSQL {} (pg_dump {})",
                    m.server_version, m.pg_dump.version
                );
                println!(
                    "Duration:  {}",
                    crate::engine::units::duration_ms(m.timings.duration_ms as i64)
                );
                for f in &m.files {
                    println!(
                        "  {:<22} {:>10} plain {:>10} stored  sha256 {}",
                        f.name,
                        output::bytes(f.plain_size as i64),
                        output::bytes(f.stored_size as i64),
                        &f.stored_sha256[..16]
                    );
                }
                println!(
                    "Tables:    {} ({} rows)",
                    m.tables.len(),
                    m.tables.iter().map(|t| t.rows).sum::<u64>()
                );
                for w in &m.warnings {
                    println!("warning: {w}");
                }
            }
            Ok(0)
        }
        BackupCmd::Delete { id, yes } => {
            let rec = engine.backup(&id).await?;
            if !yes
                && !prompt::confirm(&format!(
                    "Delete backup {} of '{}'?",
                    rec.id, rec.project_name
                ))
            {
                return Err(Error::invalid("not deleting without confirmation")
                    .with_hint("pass --yes to confirm"));
            }
            engine.delete_backup(&rec.id).await?;
            println!("Deleted backup {}.", rec.id);
            Ok(0)
        }
    }
}

fn print_diff(d: &crate::engine::history::BackupDiff) {
    println!(
        "{} ({}) → {} ({})",
        d.a, d.a_created_at, d.b, d.b_created_at
    );
    if d.is_empty() {
        println!("No differences.");
    }
    let s = &d.schema;
    println!(
        "Schema: {} added, {} removed, {} changed",
        s.added.len(),
        s.removed.len(),
        s.changed.len()
    );
    for o in &s.added {
        println!("  + {} {}.{}", o.kind, o.schema, o.name);
    }
    for o in &s.removed {
        println!("  - {} {}.{}", o.kind, o.schema, o.name);
    }
    for o in &s.changed {
        println!("  ~ {} {}.{}", o.kind, o.schema, o.name);
        for line in o.diff.lines() {
            println!("      {line}");
        }
    }
    println!(
        "Data: {} table(s) changed, {} unchanged",
        d.tables.len(),
        d.unchanged_tables
    );
    if !d.tables.is_empty() {
        let rows: Vec<Vec<String>> = d
            .tables
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    t.rows_a.to_string(),
                    t.rows_b.to_string(),
                    format!("+{}", t.added),
                    format!("-{}", t.removed),
                    if t.keyed {
                        format!("~{}", t.changed)
                    } else {
                        "(no key)".into()
                    },
                ]
            })
            .collect();
        output::table(
            &["TABLE", "ROWS A", "ROWS B", "ADDED", "REMOVED", "CHANGED"],
            &rows,
        );
    }
    let r = &d.roles;
    if !(r.added.is_empty() && r.removed.is_empty() && r.changed.is_empty()) {
        println!(
            "Roles: added {:?}, removed {:?}, changed {:?}",
            r.added, r.removed, r.changed
        );
    }
    for n in &d.notes {
        println!("note: {n}");
    }
}

fn row(b: &BackupRecord) -> Vec<String> {
    vec![
        b.id.clone(),
        b.project_name.clone(),
        b.backup_type.clone(),
        b.status.clone(),
        b.file_size.map(output::bytes).unwrap_or_else(|| "-".into()),
        b.created_at.clone(),
        b.verified_at.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// `supabackup verify ID`
pub async fn verify(engine: &Engine, id: &str, from: Option<&str>, json: bool) -> Result<i32> {
    let rec = engine.backup(id).await?;
    let remote =
        from.is_some_and(|f| !f.eq_ignore_ascii_case("local")) || rec.local_state != "present";
    if remote {
        // A destination's secret is sealed in the vault.
        prompt::unlock(engine).await?;
    }
    let manifest = engine.backup_manifest(&rec.id).await?;
    if !remote && (manifest.files.iter().any(|f| f.encrypted) || manifest.repo.is_some()) {
        prompt::unlock(engine).await?;
    }
    let report = engine.verify_backup_from(&rec.id, from).await?;
    if json {
        output::json(&report)?;
    } else {
        for f in &report.files {
            println!(
                "{:<24} {}",
                f.name,
                if f.ok {
                    "ok".into()
                } else {
                    format!("FAILED: {}", f.error.clone().unwrap_or_default())
                }
            );
        }
    }
    if report.ok {
        if !json {
            println!("Backup {} is intact.", report.backup_id);
        }
        Ok(0)
    } else {
        Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "backup {} failed verification: {}",
                report.backup_id,
                report.first_failure.unwrap_or_default()
            ),
        ))
    }
}

/// `supabackup decrypt FILE -o OUT`
pub fn decrypt(file: &Path, out: &Path, key_file: Option<&PathBuf>) -> Result<i32> {
    let passphrase: Secret = match key_file {
        Some(k) => crate::engine::backup::crypt::passphrase_from_key_file(k)?,
        None => prompt::passphrase(BACKUP_PASSPHRASE_ENV, "Backup passphrase: ", false)?
            .ok_or_else(|| {
                Error::auth("the backup passphrase is needed").with_hint(
                    "set SUPABACKUP_BACKUP_PASSPHRASE, pass --key-file, or run in a terminal",
                )
            })?,
    };
    let n = crate::engine::backup::crypt::decrypt_file(file, out, &passphrase)?;
    eprintln!(
        "Decrypted {} to {}.",
        output::bytes(n as i64),
        out.display()
    );
    Ok(0)
}
