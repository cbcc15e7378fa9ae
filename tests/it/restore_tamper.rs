//! A restore runs only bytes that match: altered backup folders are refused
//! before any statement runs, the target stays exactly as it was, and no
//! command hidden in a file ever executes.

#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use supabackup::engine::ErrorKind;
use supabackup::engine::backup::BackupOptions;
use supabackup::engine::backup::manifest::Manifest;
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::crypto::sha256_hex;
use supabackup::engine::restore::{RestoreMode, RestoreScope};
use tokio_util::sync::CancellationToken;

use crate::backup::{backup, engine_for};
use crate::restore_platform::req;
use crate::support::compare::{CompareOptions, diff_snapshots, snapshot};
use crate::support::engine::input;
use crate::support::pg::roles_lock;
use crate::support::platform::new_project;

fn folder(b: &BackupRecord) -> PathBuf {
    PathBuf::from(b.file_path.clone().expect("folder"))
}

fn zstd_of(text: &str) -> Vec<u8> {
    zstd::encode_all(text.as_bytes(), 3).expect("zstd")
}

fn sh(script: &str) {
    let out = Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a backup folder aside and back, so each case starts clean.
struct Saved {
    dir: PathBuf,
    copy: tempfile::TempDir,
}

impl Saved {
    fn new(dir: &Path) -> Saved {
        let copy = tempfile::tempdir().expect("tmp");
        sh(&format!(
            "cp -a '{}/.' '{}/'",
            dir.display(),
            copy.path().display()
        ));
        Saved {
            dir: dir.to_path_buf(),
            copy,
        }
    }
    fn restore(&self) {
        sh(&format!(
            "rm -rf '{d}' && mkdir -p '{d}' && cp -a '{c}/.' '{d}/'",
            d = self.dir.display(),
            c = self.copy.path().display()
        ));
    }
}

fn data_name(dir: &Path) -> String {
    Manifest::read(dir)
        .expect("manifest")
        .files
        .iter()
        .find(|f| f.name.starts_with("data."))
        .expect("data file")
        .name
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn altered_backups_are_refused_before_anything_runs() {
    let src = new_project("tm_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.notes (id int PRIMARY KEY, body text);
         INSERT INTO public.notes SELECT g, 'note ' || g FROM generate_series(1, 500) g;",
    );
    let dst = new_project("tm_dst");
    let t = engine_for(&src, "Source").await;
    let mut target = input("Target", &dst.url());
    target.project_ref = "target-ref".into();
    t.engine.add_project(target).await.expect("target");
    let b1 = backup(&t.engine, "Source", BackupOptions::default()).await;
    src.psql("INSERT INTO public.notes VALUES (501, 'later')");
    let b2 = backup(&t.engine, "Source", BackupOptions::default()).await;
    let plain = backup(
        &t.engine,
        "Source",
        BackupOptions {
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    let marker_dir = tempfile::tempdir().expect("tmp");
    let marker = marker_dir.path().join("pwned");
    let evil = format!("\\! touch {}\nSELECT 1;\n", marker.display());
    let opts = CompareOptions {
        include_roles: false,
        ..Default::default()
    };
    let before = snapshot(&dst, &opts);

    let attempt = |b: BackupRecord| {
        let engine = t.engine.clone();
        async move {
            let _roles = roles_lock();
            engine
                .run_restore(
                    req(&b, "Target", RestoreScope::default(), RestoreMode::New),
                    Arc::new(|_| {}),
                    CancellationToken::new(),
                )
                .await
        }
    };
    let check = |what: &str, err: supabackup::engine::Error, names: &str| {
        assert_eq!(err.kind, ErrorKind::Corrupt, "{what}: {err}");
        assert!(err.message.contains("refused"), "{what}: {err}");
        assert!(err.message.contains(names), "{what}: names {names}: {err}");
        assert!(!marker.exists(), "{what}: a hidden command ran");
        let diffs = diff_snapshots(&before, &snapshot(&dst, &opts));
        assert!(diffs.is_empty(), "{what}: the target changed: {diffs:?}");
    };

    let d1 = folder(&b1);
    let data1 = data_name(&d1);
    let saved = Saved::new(&d1);

    // 1. Another backup's data file in its place.
    std::fs::copy(folder(&b2).join(data_name(&folder(&b2))), d1.join(&data1)).expect("swap");
    check(
        "swapped",
        attempt(b1.clone()).await.expect_err("swapped"),
        &data1,
    );
    saved.restore();

    // 2. Truncated.
    let len = std::fs::metadata(d1.join(&data1)).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(d1.join(&data1))
        .expect("open")
        .set_len(len - 100)
        .expect("truncate");
    check(
        "truncated",
        attempt(b1.clone()).await.expect_err("truncated"),
        &data1,
    );
    saved.restore();

    // 3. A plain file where an encrypted one belongs.
    std::fs::write(d1.join(&data1), zstd_of(&evil)).expect("plain");
    check(
        "plain for encrypted",
        attempt(b1.clone()).await.expect_err("plain"),
        &data1,
    );
    saved.restore();

    // 4. Renamed: the schema archive under the data file's name.
    let schema_dump = Manifest::read(&d1)
        .expect("manifest")
        .files
        .iter()
        .find(|f| f.name.starts_with("schema.dump"))
        .expect("archive")
        .name
        .clone();
    std::fs::rename(d1.join(&schema_dump), d1.join(&data1)).expect("rename");
    check(
        "renamed",
        attempt(b1.clone()).await.expect_err("renamed"),
        "",
    );
    saved.restore();

    // 5. A manifest naming a file outside the folder.
    std::fs::write(d1.parent().expect("parent").join("x"), zstd_of(&evil)).expect("outside");
    let path = d1.join("metadata.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    for f in m["files"].as_array_mut().expect("files") {
        if f["name"].as_str().is_some_and(|n| n.starts_with("data.")) {
            f["name"] = serde_json::json!("../x");
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&m).expect("ser")).expect("write");
    check(
        "../x",
        attempt(b1.clone()).await.expect_err("../x"),
        "metadata.json",
    );
    saved.restore();

    // 6. Re-compressed (same content, other bytes) in an unencrypted backup.
    let dp = folder(&plain);
    let data_plain = data_name(&dp);
    let saved_plain = Saved::new(&dp);
    sh(&format!(
        "f='{}'; zstd -q -d -c \"$f\" | zstd -q -19 -c > \"$f.new\" && mv \"$f.new\" \"$f\"",
        dp.join(&data_plain).display()
    ));
    check(
        "re-compressed",
        attempt(plain.clone()).await.expect_err("recompressed"),
        &data_plain,
    );
    saved_plain.restore();

    // 7. A forgery consistent with the manifest and the catalog: the guard
    // still refuses the psql command, and nothing stays.
    let bytes = zstd_of(&format!(
        "SET session_replication_role = replica;\n{evil}-- supabackup data dump complete\n"
    ));
    std::fs::write(dp.join(&data_plain), &bytes).expect("forge");
    let mut m = Manifest::read(&dp).expect("manifest");
    for f in &mut m.files {
        if f.name == data_plain {
            f.stored_size = bytes.len() as u64;
            f.stored_sha256 = sha256_hex(&bytes);
            let text = format!(
                "SET session_replication_role = replica;\n{evil}-- supabackup data dump complete\n"
            );
            f.plain_size = text.len() as u64;
            f.plain_sha256 = sha256_hex(text.as_bytes());
        }
    }
    m.write(&dp).expect("write manifest");
    let conn = rusqlite::Connection::open(t.engine.data_dir().catalog()).expect("catalog");
    conn.execute(
        "UPDATE backups SET checksum = ?2 WHERE id = ?1",
        rusqlite::params![plain.id, m.digest()],
    )
    .expect("forge the catalog");
    drop(conn);
    let err = attempt(plain.clone()).await.expect_err("forged");
    assert!(err.message.contains("psql command"), "{err}");
    check("forged", err, &data_plain);
    saved_plain.restore();

    // The untouched backup restores.
    let ok = attempt(b1.clone())
        .await
        .expect("the untouched backup restores");
    assert_eq!(ok.status, "completed");
    assert_eq!(dst.psql("SELECT count(*) FROM public.notes"), "500");
}
