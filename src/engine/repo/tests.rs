//! The repository on real files: round trips, deduplication, resistance to
//! shifted content, index recovery from pack trailers, garbage collection
//! and damage detection.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::chunks::{ChunkReader, ChunkSink, SinkStats};
use super::gc;
use super::index::Index;
use super::{PACK_TARGET, Repo};
use crate::engine::backup::manifest::{Manifest, RepoFileRef, RepoSection};
use crate::engine::crypto::{KdfParams, Secret};

fn repo(dir: &Path) -> Arc<Repo> {
    Arc::new(
        Repo::open_or_create(
            &dir.join("repo"),
            &Secret::new("repository test passphrase"),
            KdfParams::insecure_for_tests(),
        )
        .expect("repo"),
    )
}

/// Deterministic, poorly compressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn store(repo: &Arc<Repo>, list: &Path, data: &[u8]) -> SinkStats {
    store_after(repo, list, data, None)
}

fn store_after(repo: &Arc<Repo>, list: &Path, data: &[u8], previous: Option<&Path>) -> SinkStats {
    let mut sink = ChunkSink::create(repo.clone(), list, 3, Arc::new(AtomicU64::new(0)), previous)
        .expect("sink");
    // Odd write sizes: boundaries must not depend on how bytes arrive.
    for part in data.chunks(7_777) {
        sink.write_all(part).expect("write");
    }
    sink.finish().expect("finish")
}

fn load(repo: &Arc<Repo>, list: &Path, stats: &SinkStats) -> Vec<u8> {
    let mut out = Vec::new();
    ChunkReader::open(repo.clone(), list, &stats.list_sha256)
        .expect("reader")
        .read_to_end(&mut out)
        .expect("read back");
    out
}

#[test]
fn a_stream_round_trips_and_a_second_copy_costs_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = repo(dir.path());
    let data = noise(2_000_000, 1);
    let a = store(&r, &dir.path().join("a.chunks"), &data);
    assert!(a.chunks > 10, "{a:?}");
    assert_eq!(a.new_chunks, a.chunks);
    assert_eq!(load(&r, &dir.path().join("a.chunks"), &a), data);
    let b = store(&r, &dir.path().join("b.chunks"), &data);
    assert_eq!(b.new_chunks, 0, "{b:?}");
    assert_eq!(b.list_sha256, a.list_sha256);
    // Nothing in the pack is plain.
    let packs: Vec<_> = walk(&dir.path().join("repo/packs"));
    assert!(!packs.is_empty());
    for p in packs {
        let bytes = std::fs::read(&p).expect("pack");
        assert!(
            !bytes.windows(64).any(|w| w == &data[1000..1064]),
            "plain bytes in {}",
            p.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "pack") {
            out.push(p);
        }
    }
    out
}

#[test]
fn bytes_inserted_near_the_start_leave_most_chunks_shared() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = repo(dir.path());
    let data = noise(2_000_000, 2);
    let a = store(&r, &dir.path().join("a.chunks"), &data);
    let mut shifted = b"a new row that moves everything after it\n".to_vec();
    shifted.extend_from_slice(&data[..500]);
    shifted.extend_from_slice(b"and another one");
    shifted.extend_from_slice(&data[500..]);
    let b = store(&r, &dir.path().join("b.chunks"), &shifted);
    assert!(
        b.new_chunks <= 3,
        "{} of {} chunks were new after a small insert ({a:?})",
        b.new_chunks,
        b.chunks
    );
    assert_eq!(load(&r, &dir.path().join("b.chunks"), &b), shifted);
}

/// A snapshot folder holding one stream, as a backup writes it.
fn snapshot(dir: &Path, r: &Arc<Repo>, data: &[u8], previous: Option<&Path>) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let stats = store_after(r, &dir.join("data.sql.chunks"), data, previous);
    let json = serde_json::json!({
        "format": "supabackup.backup", "version": 2, "id": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        "status": "completed",
        "project": {"id": null, "name": "p", "project_ref": "r", "slug": "p"},
        "options": crate::engine::backup::BackupOptions::default(),
        "tool": "t", "pg_dump": {"path": "", "version": ""},
        "server_version": "", "server_major": 16, "database_size_bytes": 0, "snapshot": null,
        "files": [], "tables": [], "sequences": [], "matviews": [], "roles": [],
        "timings": {"started_at": "", "completed_at": "", "duration_ms": 0},
        "warnings": [], "encryption": null,
    });
    let mut m: Manifest = serde_json::from_value(json).expect("manifest");
    m.repo = Some(RepoSection {
        id: r.config.id.clone(),
        files: vec![RepoFileRef {
            name: "data.sql".into(),
            list: "data.sql.chunks".into(),
            list_sha256: stats.list_sha256,
            chunks: stats.chunks,
            new_chunks: stats.new_chunks,
            new_bytes: stats.new_bytes,
        }],
    });
    m.write(dir).expect("manifest");
    dir.to_path_buf()
}

#[test]
fn garbage_collection_frees_what_no_snapshot_uses_and_keeps_the_rest_readable() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = repo(dir.path());
    let backups = dir.path().join("backups");
    let one = noise(PACK_TARGET as usize + 3_000_000, 3);
    let mut two = one[..one.len() / 3].to_vec();
    two.extend_from_slice(&noise(1_000_000, 4));
    let a = snapshot(&backups.join("p/2026-01-01/a"), &r, &one, None);
    let b = snapshot(&backups.join("p/2026-01-02/b"), &r, &two, None);
    // An unreferenced pack, as a killed backup leaves it.
    store(&r, &dir.path().join("orphan.chunks"), &noise(300_000, 5));

    let dirs = gc::snapshot_dirs(&backups, &r.config.id).expect("snapshots");
    assert_eq!(dirs, vec![a.clone(), b.clone()]);
    let dry = gc::collect(&r, &dirs, true).expect("dry run");
    assert!(dry.packs_deleted >= 1 && dry.bytes_freed > 0, "{dry:?}");
    let kept = gc::collect(&r, &dirs, false).expect("gc");
    assert_eq!(kept.packs_deleted, dry.packs_deleted, "{kept:?}");
    assert!(gc::check(&r).expect("check").errors.is_empty());

    // Snapshot a goes: its own chunks go, b still reads back whole.
    std::fs::remove_dir_all(&a).expect("rm");
    let dirs = gc::snapshot_dirs(&backups, &r.config.id).expect("snapshots");
    let report = gc::collect(&r, &dirs, false).expect("gc");
    assert!(
        report.packs_repacked + report.packs_deleted >= 1,
        "{report:?}"
    );
    let m = Manifest::read(&b).expect("manifest");
    let f = &m.repo.as_ref().expect("repo").files[0];
    let stats = SinkStats {
        list_sha256: f.list_sha256.clone(),
        ..Default::default()
    };
    assert_eq!(load(&r, &b.join("data.sql.chunks"), &stats), two);
    assert!(gc::check(&r).expect("check").errors.is_empty());
    let total: u64 = walk(&dir.path().join("repo/packs"))
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        total < (two.len() as u64) * 13 / 10,
        "{total} bytes of packs for a {} byte snapshot",
        two.len()
    );
}

#[test]
fn a_lost_index_is_rebuilt_from_the_pack_trailers() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = repo(dir.path());
    let data = noise(900_000, 6);
    let list = dir.path().join("a.chunks");
    let stats = store(&r, &list, &data);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", r.index_path().display()));
    }
    let mut index = Index::open(&r).expect("index");
    let mut warnings = Vec::new();
    let added = gc::reindex(&r, &mut index, &mut warnings).expect("reindex");
    assert_eq!(added, 1, "{warnings:?}");
    assert_eq!(load(&r, &list, &stats), data);
}

#[test]
fn a_flipped_byte_a_swapped_list_and_a_wrong_passphrase_are_each_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = repo(dir.path());
    let data = noise(400_000, 7);
    let list = dir.path().join("a.chunks");
    let stats = store(&r, &list, &data);
    let pack = walk(&dir.path().join("repo/packs")).remove(0);
    let mut bytes = std::fs::read(&pack).expect("pack");
    bytes[1000] ^= 1;
    std::fs::write(&pack, &bytes).expect("write");
    let mut out = Vec::new();
    let err = ChunkReader::open(r.clone(), &list, &stats.list_sha256)
        .expect("reader")
        .read_to_end(&mut out)
        .expect_err("a damaged chunk was read");
    assert!(err.to_string().contains("altered"), "{err}");
    let check = gc::check(&r).expect("check");
    assert_eq!(check.errors.len(), 1, "{check:?}");

    // A list that is not the one the manifest names.
    let other = dir.path().join("b.chunks");
    store(&r, &other, &noise(50_000, 8));
    let mut out = Vec::new();
    let err = ChunkReader::open(r.clone(), &other, &stats.list_sha256)
        .expect("reader")
        .read_to_end(&mut out)
        .expect_err("a swapped list was read");
    assert!(
        err.to_string().contains("differs from the manifest"),
        "{err}"
    );

    let wrong = Repo::open(&dir.path().join("repo"), &Secret::new("another passphrase"))
        .expect_err("opened with a wrong passphrase");
    assert_eq!(wrong.kind, crate::engine::error::ErrorKind::Auth);
    // After a rewrap only the new passphrase opens it, and the data reads.
    r.rewrap(
        &Secret::new("the new passphrase"),
        KdfParams::insecure_for_tests(),
    )
    .expect("rewrap");
    assert!(
        Repo::open(
            &dir.path().join("repo"),
            &Secret::new("repository test passphrase")
        )
        .is_err()
    );
    let again = Arc::new(
        Repo::open(&dir.path().join("repo"), &Secret::new("the new passphrase")).expect("open"),
    );
    let small = noise(10_000, 9);
    let l2 = dir.path().join("c.chunks");
    let s2 = store(&again, &l2, &small);
    assert_eq!(load(&again, &l2, &s2), small);
}

/// Rows like a table's COPY lines: compressible text with an id.
fn rows(n: usize, edit: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let tag = if edit(i) { "edited" } else { "original" };
        out.extend_from_slice(
            format!(
                "{i}\t{:x}\t{tag} row with some text {}\n",
                i * 2_654_435_761 % 1_000_003,
                i % 97
            )
            .as_bytes(),
        );
    }
    out
}

#[test]
fn changed_chunks_are_stored_against_the_ones_they_replace_and_survive_their_bases_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = repo(dir.path());
    let backups = dir.path().join("backups");
    let day0 = rows(60_000, |_| false);
    // 1 % of the rows change, spread over the whole stream.
    let day1 = rows(60_000, |i| i % 100 == 7);
    let a = snapshot(&backups.join("p/2026-01-01/a"), &r, &day0, None);
    let b = snapshot(
        &backups.join("p/2026-01-02/b"),
        &r,
        &day1,
        Some(&a.join("data.sql.chunks")),
    );
    let first = Manifest::read(&a).expect("a").repo.expect("repo").files[0].new_bytes;
    let m = Manifest::read(&b).expect("b");
    let f = &m.repo.as_ref().expect("repo").files[0];
    assert!(
        f.new_chunks * 2 > f.chunks,
        "most chunks hold an edited row: {f:?}"
    );
    assert!(
        f.new_bytes * 10 < first,
        "the changed chunks cost {} bytes, the whole first day {first}: no deltas",
        f.new_bytes
    );
    let stats = |f: &RepoFileRef| SinkStats {
        list_sha256: f.list_sha256.clone(),
        ..Default::default()
    };
    assert_eq!(load(&r, &b.join("data.sql.chunks"), &stats(f)), day1);

    // The first snapshot goes; its chunks stay as the bases of the second's.
    std::fs::remove_dir_all(&a).expect("rm");
    let dirs = gc::snapshot_dirs(&backups, &r.config.id).expect("snapshots");
    let report = gc::collect(&r, &dirs, false).expect("gc");
    assert!(report.live_chunks > f.chunks, "bases are live: {report:?}");
    assert_eq!(load(&r, &b.join("data.sql.chunks"), &stats(f)), day1);
    assert!(gc::check(&r).expect("check").errors.is_empty());
    // And after the index is lost, the trailers bring the bases back.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", r.index_path().display()));
    }
    let mut index = Index::open(&r).expect("index");
    gc::reindex(&r, &mut index, &mut Vec::new()).expect("reindex");
    assert_eq!(load(&r, &b.join("data.sql.chunks"), &stats(f)), day1);
}
