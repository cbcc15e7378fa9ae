//! Garbage collection and checking. The caller holds the repository lock
//! exclusively, so no backup writes meanwhile.
//!
//! Order of operations (each step leaves a state the next run repairs):
//! 1. unfinished packs under `packs/tmp/` go (no writer is running);
//! 2. packs the index lacks are read back from their trailers (a crash
//!    between a pack's rename and its indexing loses nothing);
//! 3. every snapshot under `backups/` is read — all its chunk lists, each
//!    checked against its SHA-256 — into a set of live chunks; if any
//!    cannot be read, nothing is deleted;
//! 4. a pack with no live chunk is unindexed, then deleted;
//! 5. a pack at least a quarter dead has its live chunks (authenticated
//!    first) copied into a new pack, which is sealed and indexed before the
//!    old one goes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::params;
use serde::Serialize;

use super::Repo;
use super::chunks::LIST_MAGIC;
use super::chunks::Resolver;
use super::index::Index;
use super::pack::{PackWriter, read_blob, read_trailer};
use crate::engine::backup::manifest::{MANIFEST_FILE, Manifest};
use crate::engine::error::{Error, Result};

/// A pack is rewritten when at least this share of its chunk bytes is
/// dead, and at least [`REPACK_MIN_DEAD`] bytes (small packs are left as
/// they are: rewriting them frees nothing but their trailer).
const REPACK_DEAD_SHARE: f64 = 0.25;
const REPACK_MIN_DEAD: u64 = 256 * 1024;
/// Magic, trailer nonce and tag, length and end marker of a pack.
const PACK_FIXED: u64 = 8 + 12 + 16 + 4 + 8;
/// A trailer entry, compressed (a name and a base name do not compress).
const TRAILER_ENTRY: u64 = 80;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub live_chunks: u64,
    pub packs_before: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_reindexed: usize,
    pub bytes_before: u64,
    pub bytes_freed: u64,
    pub warnings: Vec<String>,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::internal(format!("the repository index failed: {e}"))
}

/// Every snapshot folder of this repository under `backups` (strict: a
/// folder that cannot be read is an error, never "no snapshots").
pub fn snapshot_dirs(backups: &Path, repo_id: &str) -> Result<Vec<PathBuf>> {
    let level = |p: &Path| -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read", p, e)),
        };
        for e in rd {
            let e = e.map_err(|e| Error::io("read", p, e))?;
            if e.file_type()
                .map_err(|er| Error::io("read", &e.path(), er))?
                .is_dir()
            {
                out.push(e.path());
            }
        }
        Ok(out)
    };
    let mut out = Vec::new();
    for slug in level(backups)? {
        for date in level(&slug)? {
            for b in level(&date)? {
                let path = b.join(MANIFEST_FILE);
                if !path.exists() {
                    continue;
                }
                let m = Manifest::read(&b)?;
                if m.repo.as_ref().is_some_and(|r| r.id == repo_id) {
                    out.push(b);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Pack files on disk, by id.
fn pack_files(repo: &Repo) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let root = repo.packs_dir();
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("read", &root, e)),
    };
    for sub in rd {
        let sub = sub.map_err(|e| Error::io("read", &root, e))?.path();
        if !sub.is_dir() || sub.file_name().is_some_and(|n| n == "tmp") {
            continue;
        }
        for f in std::fs::read_dir(&sub).map_err(|e| Error::io("read", &sub, e))? {
            let p = f.map_err(|e| Error::io("read", &sub, e))?.path();
            if let Some(id) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pack"))
            {
                out.push((id.to_owned(), p.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Steps 1 and 2: drops unfinished packs, indexes packs the index lacks,
/// forgets indexed packs whose file is gone. Returns packs re-indexed.
pub fn reindex(repo: &Repo, index: &mut Index, warnings: &mut Vec<String>) -> Result<usize> {
    let tmp = repo.packs_dir().join("tmp");
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let files = pack_files(repo)?;
    let mut added = 0;
    for (id, path) in &files {
        if index.has_pack(id)? {
            continue;
        }
        match read_trailer(repo, id, path) {
            Ok(entries) => {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                index.add_pack(id, size, &entries)?;
                added += 1;
            }
            Err(e) => warnings.push(format!("{} was left alone: {}", path.display(), e.message)),
        }
    }
    let on_disk: std::collections::HashSet<&str> = files.iter().map(|(i, _)| i.as_str()).collect();
    for (id, _) in index.packs()? {
        if !on_disk.contains(id.as_str()) {
            warnings.push(format!("pack {id} is missing from the repository"));
            index.remove_pack(&id)?;
        }
    }
    Ok(added)
}

/// Reads a chunk list (checking its SHA-256) and hands each name to `f`.
fn each_listed(
    path: &Path,
    sha256: &str,
    mut f: impl FnMut(&[u8; 32]) -> Result<()>,
) -> Result<()> {
    use sha2::{Digest, Sha256};
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut r = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut hash = Sha256::new();
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|e| Error::corrupt(format!("{}: {e}", path.display())))?;
    if &magic != LIST_MAGIC {
        return Err(Error::corrupt(format!(
            "{} is not a chunk list",
            path.display()
        )));
    }
    hash.update(magic);
    let mut entry = [0u8; 36];
    loop {
        match r.read_exact(&mut entry) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Error::io("read", path, e)),
        }
        hash.update(entry);
        let mut id = [0u8; 32];
        id.copy_from_slice(&entry[..32]);
        f(&id)?;
    }
    if crate::engine::crypto::hex(&hash.finalize()) != sha256 {
        return Err(Error::corrupt(format!(
            "{} differs from its manifest (altered or truncated)",
            path.display()
        )));
    }
    Ok(())
}

/// Runs garbage collection over `snapshots` (every snapshot that exists:
/// see [`snapshot_dirs`]). With `dry_run`, only reports.
pub fn collect(repo: &Arc<Repo>, snapshots: &[PathBuf], dry_run: bool) -> Result<GcReport> {
    let mut index = Index::open(repo)?;
    let mut report = GcReport {
        dry_run,
        ..Default::default()
    };
    if !dry_run {
        report.packs_reindexed = reindex(repo, &mut index, &mut report.warnings)?;
    }
    let conn = index.conn();
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.live;
         CREATE TEMP TABLE live (id BLOB PRIMARY KEY) WITHOUT ROWID;",
    )
    .map_err(db_err)?;
    {
        let mut ins = conn
            .prepare("INSERT OR IGNORE INTO temp.live (id) VALUES (?1)")
            .map_err(db_err)?;
        for dir in snapshots {
            let m = Manifest::read(dir)?;
            let section = m
                .repo
                .as_ref()
                .ok_or_else(|| Error::internal(format!("{} is not a snapshot", dir.display())))?;
            for f in &section.files {
                each_listed(&dir.join(&f.list), &f.list_sha256, |id| {
                    ins.execute([&id[..]]).map(|_| ()).map_err(db_err)
                })
                .map_err(|e| {
                    Error::new(
                        e.kind,
                        format!(
                            "garbage collection stopped, nothing was deleted: {}",
                            e.message
                        ),
                    )
                })?;
            }
            report.snapshots += 1;
        }
    }
    // A live chunk's bases are live too (transitively; chains are short).
    loop {
        let added = conn
            .execute(
                "INSERT OR IGNORE INTO temp.live (id)
                 SELECT c.base FROM chunks c JOIN temp.live l ON l.id = c.id
                  WHERE c.base IS NOT NULL
                 UNION
                 SELECT c.base2 FROM chunks c JOIN temp.live l ON l.id = c.id
                  WHERE c.base2 IS NOT NULL",
                [],
            )
            .map_err(db_err)?;
        if added == 0 {
            break;
        }
    }
    report.live_chunks = conn
        .query_row("SELECT COUNT(*) FROM temp.live", [], |r| r.get::<_, i64>(0))
        .map_err(db_err)? as u64;
    // Per pack: size, live bytes, live chunks, indexed chunks.
    let stats: Vec<(String, u64, u64, u64, u64)> = {
        let mut s = conn
            .prepare(
                "SELECT p.id, p.size,
                        COALESCE(SUM(CASE WHEN l.id IS NOT NULL THEN c.len END), 0),
                        COUNT(l.id), COUNT(c.id)
                   FROM packs p
                   LEFT JOIN chunks c ON c.pack = p.id
                   LEFT JOIN temp.live l ON l.id = c.id
                  GROUP BY p.id, p.size ORDER BY p.id",
            )
            .map_err(db_err)?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? as u64,
                ))
            })
            .map_err(db_err)?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(db_err)?
    };
    report.packs_before = stats.len();
    report.bytes_before = stats.iter().map(|s| s.1).sum();
    // Dead packs first, then repacks.
    for (pack, size, ..) in stats.iter().filter(|s| s.3 == 0) {
        report.packs_deleted += 1;
        report.bytes_freed += size;
        if !dry_run {
            index.remove_pack(pack)?;
            crate::engine::failpoint::pause("repo.gc.after_unindex");
            remove_file(&repo.pack_path(pack))?;
        }
    }
    for (pack, size, live_bytes, _, indexed) in stats.into_iter().filter(|s| s.3 > 0) {
        let path = repo.pack_path(&pack);
        let data = size.saturating_sub(PACK_FIXED + TRAILER_ENTRY * indexed);
        let dead = data.saturating_sub(live_bytes);
        if data > 0 && dead >= REPACK_MIN_DEAD && dead as f64 / data as f64 >= REPACK_DEAD_SHARE {
            report.packs_repacked += 1;
            if !dry_run {
                let new_size = repack(repo, &mut index, &pack, &path)?;
                report.bytes_freed += size.saturating_sub(new_size);
            } else {
                report.bytes_freed += size.saturating_sub(live_bytes);
            }
        }
    }
    let _ = index
        .conn()
        .execute_batch("DROP TABLE IF EXISTS temp.live;");
    Ok(report)
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete", path, e)),
    }
}

/// Copies a pack's live chunks into a new pack; returns the new size.
fn repack(repo: &Arc<Repo>, index: &mut Index, pack: &str, path: &Path) -> Result<u64> {
    let live: Vec<super::pack::PackEntry> = {
        let mut s = index
            .conn()
            .prepare(
                "SELECT c.id, c.offset, c.len, c.plain_len, c.depth, c.base, c.base2 FROM chunks c
                   JOIN temp.live l ON l.id = c.id WHERE c.pack = ?1 ORDER BY c.offset",
            )
            .map_err(db_err)?;
        let rows = s
            .query_map(params![pack], |r| {
                let v: Vec<u8> = r.get(0)?;
                let mut id = [0u8; 32];
                if v.len() == 32 {
                    id.copy_from_slice(&v);
                }
                Ok(super::pack::PackEntry {
                    id,
                    offset: r.get::<_, i64>(1)? as u64,
                    len: r.get::<_, i64>(2)? as u32,
                    plain_len: r.get::<_, i64>(3)? as u32,
                    depth: r.get::<_, i64>(4)? as u8,
                    bases: super::index::bases(r.get(5)?, r.get(6)?),
                })
            })
            .map_err(db_err)?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(db_err)?
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut resolver = Resolver::new(repo.clone())?;
    let mut out = PackWriter::create(repo)?;
    for e in &live {
        let blob = read_blob(&file, path, e.offset, e.len)?;
        // Never carry damaged bytes forward (the chunk and its bases read
        // and checked through the index, which points here).
        if let Err(err) = resolver.plain(&e.id) {
            out.discard();
            return Err(err);
        }
        out.push(e.id, &blob, e.plain_len, &e.bases, e.depth)?;
    }
    let (new_id, new_size, entries) = out.seal(repo)?;
    crate::engine::failpoint::pause("repo.gc.after_repack_seal");
    index.move_to_pack(&new_id, new_size, &entries)?;
    index.remove_pack(pack)?;
    remove_file(path)?;
    Ok(new_size)
}

/// What `repo check` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckReport {
    pub packs: usize,
    pub chunks: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
}

/// Reads every pack: trailer against the index, every chunk authenticated,
/// decompressed and compared with its name.
pub fn check(repo: &Arc<Repo>) -> Result<CheckReport> {
    let index = Index::open(repo)?;
    let mut resolver = Resolver::new(repo.clone())?;
    let mut report = CheckReport::default();
    for (pack, size) in index.packs()? {
        report.packs += 1;
        report.bytes += size;
        let path = repo.pack_path(&pack);
        let trailer = match read_trailer(repo, &pack, &path) {
            Ok(t) => t,
            Err(e) => {
                report.errors.push(e.message);
                continue;
            }
        };
        let indexed = index.chunks_in(&pack)?;
        for e in &indexed {
            if !trailer.contains(e) {
                report.errors.push(format!(
                    "the index places chunk {} in pack {pack}, whose trailer disagrees",
                    &crate::engine::crypto::hex(&e.id)[..12]
                ));
                continue;
            }
            report.chunks += 1;
            match resolver.plain(&e.id) {
                Ok(_) => {}
                Err(err) => report.errors.push(format!("pack {pack}: {}", err.message)),
            }
        }
    }
    Ok(report)
}
