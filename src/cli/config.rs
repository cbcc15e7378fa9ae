//! `supabackup config export|import`: the whole tool's configuration in one
//! file (see docs/CONFIG.md).

use std::path::PathBuf;

use clap::Subcommand;

use super::{output, prompt};
use crate::engine::config::{ConfigExportOptions, ConfigImportOptions, ConfigImportReport, Tally};
use crate::engine::{Engine, Error, ErrorKind, Result};

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Write projects, their hooks and probe intervals, destinations, jobs,
    /// alert rules with their channels, and settings to one JSON file.
    ///
    /// Secrets are left out unless --include-secrets is given; they are then
    /// encrypted with an export passphrase (SUPABACKUP_EXPORT_PASSPHRASE or a
    /// prompt), the backup passphrase among them.
    Export {
        /// Where to write (JSON).
        file: PathBuf,
        /// Include the secrets, encrypted with an export passphrase.
        #[arg(long)]
        include_secrets: bool,
    },
    /// Import a file written by `config export`: all of it or nothing.
    ///
    /// Every problem is reported; nothing is written unless there is none.
    /// What exists here already (same name) is a problem unless
    /// --skip-existing keeps it as it is. Encrypted secrets need the export
    /// passphrase (SUPABACKUP_EXPORT_PASSPHRASE or a prompt).
    Import {
        /// The file (as written by `config export`).
        file: PathBuf,
        /// Keep what exists here (same name, or a setting with another
        /// value) and import the rest.
        #[arg(long)]
        skip_existing: bool,
        /// Leave the file's encrypted secrets out (alert rules that then
        /// lack a channel secret are imported disabled).
        #[arg(long)]
        without_secrets: bool,
        /// Check the file against this machine, import nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(engine: &Engine, cmd: ConfigCmd) -> Result<i32> {
    match cmd {
        ConfigCmd::Export {
            file,
            include_secrets,
        } => {
            let secrets_passphrase = prompt::export_passphrase(engine, include_secrets).await?;
            let s = engine
                .export_config(&file, ConfigExportOptions { secrets_passphrase })
                .await?;
            println!(
                "Exported {} project(s), {} destination(s), {} job(s), {} alert rule(s) and {} setting(s) to {}{}.",
                s.projects,
                s.destinations,
                s.jobs,
                s.alert_rules,
                s.settings,
                s.path.display(),
                if s.secrets_included {
                    " with encrypted secrets"
                } else {
                    " without secrets"
                }
            );
            Ok(0)
        }
        ConfigCmd::Import {
            file,
            skip_existing,
            without_secrets,
            dry_run,
            json,
        } => {
            let sealed = !without_secrets
                && crate::engine::config::read_file(&file)
                    .is_ok_and(|f| f.secrets_included || !f.alert_secrets.is_empty());
            let secrets_passphrase = prompt::import_passphrase(sealed)?;
            let opts = ConfigImportOptions {
                secrets_passphrase,
                without_secrets,
                skip_existing,
                dry_run,
            };
            // Secrets in the file need the vault.
            let report =
                prompt::retry_unlocked(engine, || engine.import_config(&file, opts.clone()))
                    .await?;
            if json {
                output::json(&report)?;
            } else {
                print_report(&report);
            }
            if report.problems.is_empty() {
                Ok(0)
            } else {
                let has = |what: &str| report.problems.iter().any(|p| p.reason.contains(what));
                let (kind, hint) = if has("could not be decrypted") {
                    (
                        ErrorKind::Auth,
                        "give the passphrase the file was exported with, or import it --without-secrets",
                    )
                } else if has("exists here") || has("another value") {
                    (
                        ErrorKind::Conflict,
                        "pass --skip-existing to keep what exists here and import the rest",
                    )
                } else {
                    (ErrorKind::Invalid, "fix the file and import it again")
                };
                Err(Error::new(
                    kind,
                    format!(
                        "{} problem(s) in {}; nothing was imported",
                        report.problems.len(),
                        file.display()
                    ),
                )
                .with_hint(hint))
            }
        }
    }
}

fn print_report(r: &ConfigImportReport) {
    for p in &r.problems {
        eprintln!("{} '{}': {}", p.section, p.item, p.reason);
    }
    // Notes are about what the import does: with problems it does nothing.
    if !r.problems.is_empty() {
        return;
    }
    for w in &r.warnings {
        eprintln!("note: {w}");
    }
    let verb = if r.applied {
        "Imported"
    } else {
        "Dry run: would import"
    };
    let line = |what: &str, t: &Tally| {
        let mut s = format!("{} {what}", t.added.len());
        if !t.skipped.is_empty() {
            s.push_str(&format!(" ({} already here, kept)", t.skipped.len()));
        }
        s
    };
    println!(
        "{verb} {}, {}, {}, {} and {} setting(s).",
        line("project(s)", &r.projects),
        line("destination(s)", &r.destinations),
        line("job(s)", &r.jobs),
        line("alert rule(s)", &r.alert_rules),
        r.settings.len()
    );
}
