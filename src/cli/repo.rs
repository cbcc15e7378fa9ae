//! `supabackup repo ...` (the repository incremental backups live in) and
//! `supabackup export` (any backup's plain files, for stock tools).

use clap::Subcommand;

use super::{output, prompt};
use crate::engine::backup::Codec;
use crate::engine::{Engine, Result};

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Remove chunks no snapshot references (prune does this after it
    /// deletes snapshots); waits for running backups.
    Gc {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read every chunk of the repository: pack trailers against the
    /// index, and each chunk authenticated, decompressed and compared with
    /// its name. Exits 1 when anything is wrong.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(engine: &Engine, cmd: RepoCmd) -> Result<i32> {
    prompt::unlock(engine).await?;
    match cmd {
        RepoCmd::Gc { dry_run, json } => {
            let r = engine.repo_gc(dry_run, true).await?.unwrap_or_default();
            if json {
                output::json(&r)?;
            } else {
                println!(
                    "{}{} snapshot(s), {} live chunk(s); {} of {} pack(s) {}, {} repacked; {} {}.",
                    if dry_run { "Dry run: " } else { "" },
                    r.snapshots,
                    r.live_chunks,
                    r.packs_deleted,
                    r.packs_before,
                    if dry_run { "would go" } else { "deleted" },
                    r.packs_repacked,
                    output::bytes(r.bytes_freed as i64),
                    if dry_run { "would be freed" } else { "freed" },
                );
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
            }
            Ok(0)
        }
        RepoCmd::Check { json } => {
            let r = engine.repo_check().await?;
            if json {
                output::json(&r)?;
            } else if r.errors.is_empty() {
                println!(
                    "Repository OK: {} pack(s), {} chunk(s), {}.",
                    r.packs,
                    r.chunks,
                    output::bytes(r.bytes as i64)
                );
            } else {
                for e in &r.errors {
                    eprintln!("error: {e}");
                }
                eprintln!(
                    "Repository damaged: {} problem(s) in {} pack(s).",
                    r.errors.len(),
                    r.packs
                );
            }
            Ok(if r.errors.is_empty() { 0 } else { 1 })
        }
    }
}

/// `supabackup export ID --to DIR`.
pub async fn export(
    engine: &Engine,
    id: &str,
    to: &std::path::Path,
    compression: &str,
    from: Option<&str>,
    json: bool,
) -> Result<i32> {
    prompt::unlock(engine).await?;
    let codec = Codec::parse(compression)?;
    let r = engine.export_backup(id, to, codec, from).await?;
    if json {
        output::json(&r)?;
    } else {
        println!(
            "Exported {} file(s), {}, to {}: {}",
            r.files.len(),
            output::bytes(r.bytes as i64),
            r.dir,
            r.files.join(", ")
        );
        println!(
            "Load them with psql (docs/REPOSITORY.md): psql --single-transaction -v ON_ERROR_STOP=1 -f roles.sql -f schema.sql -f data.sql -f history.sql -d \"$TARGET_URL\""
        );
    }
    Ok(0)
}
