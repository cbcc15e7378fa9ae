//! The headless front-end: `supabackup <command>`. Every command is a thin
//! call into the engine; errors print as one sentence plus a hint on stderr
//! (and, with `--json`, as a JSON object on stdout)
//! and map to the exit codes listed in `--help`.

pub mod alert;
pub mod backup;
pub mod config;
pub mod destination;
pub mod fleet;
pub mod job;
pub mod output;
pub mod progress;
pub mod project;
pub mod prompt;
pub mod repo;
pub mod restore;
pub mod vault;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::paths::DataDir;
use crate::engine::{Engine, EngineOptions, Error, Result};

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    internal error
  2    bad command line
  3    invalid input (name, ref, URL, file...)
  4    not found
  5    conflict with existing state
  6    vault locked or wrong passphrase
  7    connection or pre-flight failure
  8    a required PostgreSQL tool is missing or too old
  9    integrity check failed (corrupt or tampered data)
  10   file-system error (disk full, permissions...)
  130  cancelled
With --json, an error is also printed on stdout as
  {\"error\": {\"kind\": \"not_found\", \"message\": \"...\", \"hint\": \"...\"}}

Environment:
  SUPABACKUP_DATA_DIR           data directory (same as --data-dir)
  SUPABACKUP_PASSPHRASE         master passphrase for headless use
  SUPABACKUP_NEW_PASSPHRASE     new master passphrase for `vault change-passphrase`
  SUPABACKUP_EXPORT_PASSPHRASE  passphrase for credentials in export files
  SUPABACKUP_BACKUP_PASSPHRASE  backup-encryption passphrase (first use, decrypt)
  SUPABACKUP_WEBHOOK_SECRET     webhook signing secret for `alert add --webhook`
  SUPABACKUP_SMTP_PASSWORD      SMTP password for `alert add --smtp-user`
  SUPABACKUP_ACCESS_TOKEN       Supabase personal access token for `fleet token`
  SUPABACKUP_DEST_SECRET        destination secret for `destination add` / `set-secret`
  SUPABACKUP_NO_KEYCHAIN=1      never use the OS keychain
  SUPABACKUP_PG_BIN_DIR         folder with pg_dump/psql to prefer
  SUPABACKUP_LOG                log filter, e.g. debug (logs go to stderr)";

/// Back up, verify and restore many Supabase projects.
///
/// Without a command, opens the desktop app.
#[derive(Debug, Parser)]
#[command(name = "supabackup", version, about, long_about = None, after_long_help = EXIT_CODES, after_help = "Run `supabackup --help` for exit codes and environment variables.")]
pub struct Cli {
    /// Data directory (catalog, backups, logs).
    #[arg(long, global = true, env = "SUPABACKUP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Allow encrypted files whose header asks Argon2 for more than 1 GiB,
    /// 10 passes or 8 lanes (what supabackup writes is far below): memory
    /// in MiB, e.g. m=2048,t=20,p=16. Only for files you trust.
    #[arg(
        long,
        global = true,
        env = "SUPABACKUP_KDF_LIMIT",
        value_name = "m=MIB,t=PASSES,p=LANES"
    )]
    pub kdf_limit: Option<String>,

    /// Save a screenshot of the first frames of the app to PATH and exit.
    #[arg(long, value_name = "PATH", hide = true)]
    pub screenshot: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, edit, list, test, import and export projects.
    #[command(subcommand)]
    Project(project::ProjectCmd),
    /// The credential vault: status and passphrase.
    #[command(subcommand)]
    Vault(vault::VaultCmd),
    /// Run, list, show and delete backups.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Restore backups: preview, run, roll back, list.
    #[command(subcommand)]
    Restore(restore::RestoreCmd),
    /// Re-read every file of a backup and check it against its manifest;
    /// with --restore-test also restore it into a throw-away database.
    Verify {
        /// Backup id (or a unique prefix of it).
        id: String,
        /// Restore into a scratch database and compare every table.
        #[arg(long)]
        restore_test: bool,
        /// The scratch server, postgresql://USER@HOST:PORT/DB (default: the
        /// configured one, else a local PostgreSQL); its password from
        /// --scratch-password-stdin, SUPABACKUP_SCRATCH_PASSWORD or ~/.pgpass.
        #[arg(long, requires = "restore_test")]
        scratch_url: Option<String>,
        /// Read the scratch server's password from standard input.
        #[arg(long, requires = "scratch_url")]
        scratch_password_stdin: bool,
        /// Check the copy at this destination (or `local`) instead of the
        /// default one; it is read back in full, streaming.
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Places backups are copied to: folders, S3 and S3-compatible, GCS, Azure.
    #[command(subcommand)]
    Destination(destination::DestinationCmd),
    /// Decrypt a backup file (.enc) with the backup passphrase.
    ///
    /// Works without a catalog: FILE plus the passphrase (SUPABACKUP_BACKUP_PASSPHRASE,
    /// --key-file, or a prompt) is enough. See docs/FORMAT.md.
    Decrypt {
        /// The encrypted file (name ending in .enc).
        file: PathBuf,
        /// Where to write the decrypted (still compressed) file.
        #[arg(short, long)]
        output: PathBuf,
        /// A key file whose content is the passphrase.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Scheduled backups.
    #[command(subcommand)]
    Job(job::JobCmd),
    /// The Supabase account (Management API): list its projects, add them
    /// in one step, pick up new ones automatically.
    #[command(subcommand)]
    Fleet(fleet::FleetCmd),
    /// The whole configuration in one file, e.g. to move to a new machine:
    /// projects, destinations, jobs, alert rules, settings.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Alert rules: desktop, webhook, e-mail.
    #[command(subcommand)]
    Alert(alert::AlertCmd),
    /// Run the schedule headless until stopped (see docs/SCHEDULING.md).
    Daemon {
        /// Seconds between schedule checks.
        #[arg(long, default_value_t = 20)]
        interval: u64,
        /// Jobs running at once.
        #[arg(long, default_value_t = 2)]
        max_concurrent: usize,
    },
    /// Apply retention rules now (each job's, or the ones given).
    Prune(job::PruneArgs),
    /// The catalog itself.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// The repository incremental backups live in: garbage collection, check.
    #[command(subcommand)]
    Repo(repo::RepoCmd),
    /// Write a backup's roles.sql, schema.sql, data.sql and history.sql
    /// into a folder, checked against its manifest, for restoring with
    /// psql alone (works for every backup type).
    Export {
        /// Backup id (or a unique prefix of it).
        id: String,
        /// The folder to write into (created; must not hold these files).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// none (plain .sql, the default) or zstd (.sql.zst).
        #[arg(long, default_value = "none", value_parser = ["none", "zstd"])]
        compression: String,
        /// Read the copy at this destination instead of the local one.
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the audit log (newest first).
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only actions starting with this prefix, e.g. `project.`.
        #[arg(long)]
        action: Option<String>,
        /// Print the entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the log files of the GUI, the CLI and the daemon
    /// (<data>/logs, one file per day, 14 days kept; secrets redacted).
    Logs {
        /// How many of the last lines to print.
        #[arg(short = 'n', long, default_value_t = 200)]
        lines: usize,
        /// Keep printing lines as they are written (Ctrl+C stops).
        #[arg(short, long)]
        follow: bool,
        /// Print the log folder's path and exit.
        #[arg(long)]
        path: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell), e.g. `supabackup completions bash > /etc/bash_completion.d/supabackup`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (supabackup.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Manpages {
        /// The folder to write them into (created when missing).
        dir: PathBuf,
    },
}

/// Writes `shell`'s completion script for the whole command line.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "supabackup", out);
}

/// Writes `supabackup.1` and `supabackup-<sub>[-<subsub>].1` into `dir`;
/// returns the files written.
pub fn manpages(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let mut written = Vec::new();
    fn walk(
        cmd: clap::Command,
        name: String,
        dir: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let cmd = cmd.name(name.clone());
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .render(&mut buf)
            .map_err(|e| Error::io("render", &path, e))?;
        std::fs::write(&path, buf).map_err(|e| Error::io("write", &path, e))?;
        written.push(path);
        // clap's generated `help` subcommands get no page of their own.
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            walk(
                sub.clone(),
                format!("{name}-{}", sub.get_name()),
                dir,
                written,
            )?;
        }
        Ok(())
    }
    let mut root = Cli::command();
    root.build();
    walk(root, "supabackup".into(), dir, &mut written)?;
    Ok(written)
}

#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Recreate the catalog's backup entries from the manifests on disk, or
    /// (disaster recovery on a new machine) from those at a destination.
    Rebuild {
        /// Read the manifests at this destination (add it first with
        /// `destination add`); its copies are recorded as stored.
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Applies process-wide options (the Argon2 caps) for the GUI and the CLI.
pub fn apply_globals(cli: &Cli) -> Result<()> {
    if let Some(text) = &cli.kdf_limit {
        crate::engine::crypto::set_kdf_limits(crate::engine::crypto::KdfLimits::parse(text)?);
    }
    Ok(())
}

/// Opens the engine for a CLI run.
pub async fn open_engine(data_dir: Option<PathBuf>) -> Result<Engine> {
    let dir = DataDir::resolve(data_dir)?;
    Engine::open(EngineOptions::new(dir, "cli")).await
}

/// Runs one command; returns the process exit code.
pub async fn run(cli: Cli, command: Command) -> i32 {
    match dispatch(cli.data_dir, command).await {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            e.kind.exit_code()
        }
    }
}

/// `supabackup logs`: the last lines, then (with --follow) new ones.
async fn logs(data_dir: Option<PathBuf>, lines: usize, follow: bool, path: bool) -> Result<i32> {
    use crate::engine::logging;
    let dir = DataDir::resolve(data_dir)?.logs();
    if path {
        println!("{}", dir.display());
        return Ok(0);
    }
    let (last, mut follower) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let follower = if follow {
                Some(logging::Follower::new(&dir)?)
            } else {
                None
            };
            Ok((logging::tail(&dir, lines)?, follower))
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??
    };
    if last.is_empty() && !follow {
        eprintln!("No log lines yet in {}.", dir.display());
    }
    for l in &last {
        println!("{l}");
    }
    let Some(f) = follower.as_mut() else {
        return Ok(0);
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        for l in f.poll()? {
            println!("{l}");
        }
    }
}

/// Prints an error as one sentence plus a hint on stderr; when the command
/// was asked for `--json`, also as `{"error": {"kind", "message", "hint"}}`
/// on stdout, where a script reads the answer.
pub fn report(e: &Error) {
    tracing::info!(kind = ?e.kind, "command failed: {}", e.message);
    eprintln!("error: {}", e.message);
    if let Some(h) = &e.hint {
        eprintln!("hint: {h}");
    }
    if std::env::args().skip(1).any(|a| a == "--json") {
        println!("{}", error_json(e));
    }
}

/// The JSON form of an error (`--json`).
pub fn error_json(e: &Error) -> serde_json::Value {
    serde_json::json!({ "error": e })
}

async fn dispatch(data_dir: Option<PathBuf>, command: Command) -> Result<i32> {
    // Decrypting needs no data directory at all.
    if let Command::Decrypt {
        file,
        output,
        key_file,
    } = &command
    {
        return backup::decrypt(file, output, key_file.as_ref());
    }
    if let Command::Logs {
        lines,
        follow,
        path,
    } = &command
    {
        return logs(data_dir, *lines, *follow, *path).await;
    }
    // Completions and man pages need no data directory either.
    match &command {
        Command::Completions { shell } => {
            completions(*shell, &mut std::io::stdout());
            return Ok(0);
        }
        Command::Manpages { dir } => {
            for p in manpages(dir)? {
                println!("{}", p.display());
            }
            return Ok(0);
        }
        _ => {}
    }
    let engine = open_engine(data_dir).await?;
    match command {
        Command::Backup(cmd) => backup::run(&engine, cmd).await,
        Command::Restore(cmd) => restore::run(&engine, cmd).await,
        Command::Job(cmd) => job::run(&engine, cmd).await,
        Command::Config(cmd) => config::run(&engine, cmd).await,
        Command::Fleet(cmd) => fleet::run(&engine, cmd).await,
        Command::Alert(cmd) => alert::run(&engine, cmd).await,
        Command::Daemon {
            interval,
            max_concurrent,
        } => job::daemon(&engine, interval, max_concurrent).await,
        Command::Prune(a) => {
            let rules = crate::engine::schedule::Retention {
                keep_last: a.keep_last,
                keep_days: a.keep_days,
                gfs: None,
            };
            job::prune(&engine, a.project, a.destination, rules, a.dry_run, a.json).await
        }
        Command::Verify {
            id,
            restore_test: true,
            scratch_url,
            scratch_password_stdin,
            destination,
            json,
        } => {
            let scratch = match scratch_url {
                Some(url) => {
                    warn_password_in_argv(
                        &url,
                        "--scratch-password-stdin",
                        "SUPABACKUP_SCRATCH_PASSWORD",
                    );
                    let pw =
                        password_for_url(scratch_password_stdin, "SUPABACKUP_SCRATCH_PASSWORD")?;
                    Some(crate::engine::restore::url_with_password(&url, pw)?)
                }
                None => None,
            };
            restore::restore_test(&engine, &id, scratch, destination, json).await
        }
        Command::Verify {
            id,
            destination,
            json,
            ..
        } => backup::verify(&engine, &id, destination.as_deref(), json).await,
        Command::Destination(cmd) => destination::run(&engine, cmd).await,
        Command::Repo(cmd) => repo::run(&engine, cmd).await,
        Command::Export {
            id,
            to,
            compression,
            from,
            json,
        } => repo::export(&engine, &id, &to, &compression, from.as_deref(), json).await,
        Command::Decrypt { .. }
        | Command::Logs { .. }
        | Command::Completions { .. }
        | Command::Manpages { .. } => Ok(0),
        Command::Catalog(CatalogCmd::Rebuild { from, json }) => {
            let r = match from {
                Some(d) => {
                    prompt::unlock(&engine).await?;
                    engine.rebuild_catalog_from(&d).await?
                }
                None => engine.rebuild_catalog().await?,
            };
            if json {
                output::json(&r)?;
            } else {
                println!(
                    "Read {} manifest(s): {} added, {} updated.",
                    r.manifests, r.added, r.updated
                );
                for s in &r.skipped {
                    eprintln!("skipped {s}");
                }
            }
            Ok(0)
        }
        Command::Project(cmd) => project::run(&engine, cmd).await,
        Command::Vault(cmd) => vault::run(&engine, cmd).await,
        Command::Audit {
            limit,
            action,
            json,
        } => {
            let entries = engine.audit_log(action, limit).await?;
            if json {
                output::json(&entries)?;
            } else {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.at.clone(),
                            e.actor.clone(),
                            e.action.clone(),
                            e.target.clone().unwrap_or_default(),
                            e.details.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["AT", "ACTOR", "ACTION", "TARGET", "DETAILS"], &rows);
            }
            Ok(0)
        }
    }
}

/// Names given as repeated flags and/or comma-separated lists (commas
/// inside double quotes belong to the name).
pub(crate) fn names(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| crate::engine::ident::split_list(v))
        .collect()
}

/// Warns when a URL given on the command line holds a password (other
/// users see argv in the process list; shells keep history).
pub(crate) fn warn_password_in_argv(url: &str, flag: &str, var: &str) {
    if crate::engine::conninfo::ConnInfo::parse(url).is_ok_and(|i| i.password.is_some()) {
        eprintln!(
            "warning: the URL on the command line holds a password, which other users can read in the process list and your shell keeps in its history; give the password with {flag} or {var} instead"
        );
    }
}

/// A password for a URL: from standard input (`from_stdin`) or `var`.
pub(crate) fn password_for_url(
    from_stdin: bool,
    var: &str,
) -> Result<Option<crate::engine::crypto::Secret>> {
    if from_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
            crate::engine::Error::invalid(format!(
                "could not read the password from standard input: {e}"
            ))
        })?;
        let trimmed = s.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            return Err(crate::engine::Error::invalid(
                "standard input held no password",
            ));
        }
        return Ok(Some(crate::engine::crypto::Secret::new(trimmed)));
    }
    Ok(std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(crate::engine::crypto::Secret::new))
}

/// A token cancelled by Ctrl+C (long jobs stop cleanly).
fn cancel_on_ctrl_c() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    cancel
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it does.
    #[test]
    fn every_argument_has_a_help_sentence() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if help.trim().len() < 8 {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (no description)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "supabackup", &mut missing);
        assert!(
            missing.is_empty(),
            "{} argument(s) without help:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }
}
