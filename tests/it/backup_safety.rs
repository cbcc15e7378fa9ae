//! What must hold when things go wrong: corruption is detected, a killed or
//! cancelled backup is never `completed`, secrets stay out of argv, missing
//! tools and wrong passphrases give clear errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use supabackup::engine::backup::{BackupOptions, BackupRequest, Codec, Phase};
use supabackup::engine::crypto::{KdfParams, Secret};
use supabackup::engine::paths::DataDir;
use supabackup::engine::vault::NoKeychain;
use supabackup::engine::{Engine, EngineOptions, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::backup::{BACKUP_PASS, backup, engine_for};
use crate::support::engine::{PASSPHRASE, cli, input, stderr};
use crate::support::pg::{TestDb, cluster};

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_catches_a_flipped_byte_and_a_truncation_in_every_artifact() {
    let c = cluster();
    let src = c.create_db("bk_verify");
    src.load_fixture();
    let t = engine_for(&src, "Verify").await;
    for options in [
        BackupOptions::default(),
        BackupOptions {
            encrypt: false,
            ..Default::default()
        },
        BackupOptions {
            encrypt: false,
            codec: Codec::None,
            ..Default::default()
        },
    ] {
        let rec = backup(&t.engine, "Verify", options.clone()).await;
        let report = t.engine.verify_backup(&rec.id).await.expect("verify");
        assert!(report.ok, "{report:?}");
        assert!(
            t.engine
                .backup(&rec.id)
                .await
                .expect("rec")
                .verified_at
                .is_some()
        );
        let dir = PathBuf::from(rec.file_path.clone().expect("folder"));
        let m = t.engine.backup_manifest(&rec.id).await.expect("manifest");
        for f in &m.files {
            let path = dir.join(&f.name);
            let original = std::fs::read(&path).expect("read");
            for at in [0, original.len() / 2, original.len() - 1] {
                flip_byte(&path, at);
                let r = t.engine.verify_backup(&rec.id).await.expect("verify runs");
                assert!(!r.ok, "{options:?} {} flipped at {at} undetected", f.name);
                assert!(
                    r.first_failure
                        .as_deref()
                        .unwrap_or("")
                        .starts_with(&f.name),
                    "{r:?}"
                );
                std::fs::write(&path, &original).expect("restore");
            }
            for len in [original.len() - 1, original.len() / 2, 10] {
                std::fs::write(&path, &original[..len]).expect("truncate");
                let r = t.engine.verify_backup(&rec.id).await.expect("verify runs");
                assert!(
                    !r.ok
                        && r.first_failure
                            .as_deref()
                            .unwrap_or("")
                            .starts_with(&f.name),
                    "{r:?}"
                );
                std::fs::write(&path, &original).expect("restore");
            }
        }
        // The CLI names the bad file and exits 9.
        let data_file = m
            .files
            .iter()
            .find(|f| f.name.starts_with("data"))
            .expect("data");
        let path = dir.join(&data_file.name);
        let original = std::fs::read(&path).expect("read");
        flip_byte(&path, original.len() / 3);
        let out = cli(
            t.dir.path(),
            &["verify", &rec.id],
            &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
            None,
        );
        // The test engine uses cheap KDF parameters; the CLI reads them from the catalog.
        assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
        assert!(stderr(&out).contains(&data_file.name));
        std::fs::write(&path, &original).expect("restore");
    }
}

/// Fills a table with ~60 MB so a backup takes long enough to observe.
fn big_table(db: &TestDb) {
    db.psql(
        "CREATE TABLE public.big AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 6) AS payload
         FROM generate_series(1, 300000) g",
    );
}

fn pg_dump_cmdlines() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&raw).replace('\0', " ");
            if text.contains("pg_dump") && !text.contains("cargo") {
                out.push(text);
            }
        }
    }
    out
}

#[test]
fn a_killed_backup_is_never_completed_and_start_up_cleans_it() {
    let c = cluster();
    let db = c.create_db("bk_kill");
    big_table(&db);
    let data = tempfile::tempdir().expect("tmp");
    let env = [("SUPABACKUP_PASSPHRASE", PASSPHRASE)];
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "Kill",
            "--ref",
            "kill",
            "--db-url",
            &db.url(),
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_supabackup"))
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "backup",
            "run",
            "Kill",
            "--no-encrypt",
            "--compression",
            "xz",
            "--level",
            "9",
        ])
        .env("SUPABACKUP_NO_KEYCHAIN", "1")
        .env("SUPABACKUP_PASSPHRASE", PASSPHRASE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn backup");
    // Wait until pg_dump streams, then look at every pg_dump's argv.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = pg_dump_cmdlines();
        let temp_busy = std::fs::read_dir(data.path().join("temp"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if temp_busy && !seen.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!seen.is_empty(), "pg_dump never showed up");
    for cmdline in &seen {
        assert!(
            !cmdline.contains(&c.password),
            "password in argv: {cmdline}"
        );
        assert!(
            !cmdline.contains("postgresql://"),
            "no URL in argv: {cmdline}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("kill -9");
    let _ = child.wait();

    let catalog = data.path().join("catalog.sqlite");
    let conn = rusqlite::Connection::open(&catalog).expect("catalog");
    let (id, status): (String, String) = conn
        .query_row("SELECT id, status FROM backups", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("one backup row");
    drop(conn);
    assert_eq!(status, "running", "a killed backup is not completed");
    let project_dir = data.path().join("backups/kill");
    assert!(!project_dir.exists(), "nothing outside temp/");
    assert!(data.path().join("temp").join(&id).exists());

    // Start-up (any command) recovers it.
    let out = cli(data.path(), &["backup", "list", "--json"], &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list[0]["status"], "failed");
    assert!(
        list[0]["error_message"]
            .as_str()
            .unwrap_or("")
            .contains("interrupted")
    );
    assert!(
        !data.path().join("temp").join(&id).exists(),
        "temp files removed"
    );
    assert!(
        !data
            .path()
            .join("temp")
            .join(format!("{id}.pgpass"))
            .exists(),
        "passfile removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_backup_cleans_up_and_is_recorded() {
    let c = cluster();
    let db = c.create_db("bk_cancel");
    big_table(&db);
    let t = engine_for(&db, "Cancel").await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let progress = Arc::new(move |p: supabackup::engine::backup::BackupProgress| {
        if p.phase == Phase::Dumping && p.bytes_read > 0 {
            trigger.cancel();
        }
    });
    let err = t
        .engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: "Cancel".into(),
                options: BackupOptions {
                    codec: Codec::Xz,
                    level: Some(9),
                    ..Default::default()
                },
                job_id: None,
                store: Default::default(),
            },
            progress,
            cancel,
        )
        .await
        .expect_err("cancelled");
    assert_eq!(err.kind, ErrorKind::Cancelled);
    let list = t.engine.list_backups(None, 10).await.expect("list");
    assert_eq!(list[0].status, "cancelled");
    assert!(!t.engine.data_dir().backups().join("cancel").exists());
    let leftovers: Vec<_> = std::fs::read_dir(t.engine.data_dir().temp())
        .expect("temp")
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        pg_dump_cmdlines().iter().all(|l| !l.contains(&db.name)),
        "pg_dump was stopped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_too_old_pg_dump_is_a_clear_error() {
    let c = cluster();
    let db = c.create_db("bk_tools");
    for (script, needle) in [
        (None, "no pg_dump was found"),
        (
            Some("#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.3'\n"),
            "only pg_dump 12.3 found",
        ),
    ] {
        let bin = tempfile::tempdir().expect("tmp");
        if let Some(s) = script {
            let p = bin.path().join("pg_dump");
            std::fs::write(&p, s).expect("script");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let data = tempfile::tempdir().expect("tmp");
        let mut opts = EngineOptions::new(DataDir::at(data.path()), "test");
        opts.keystore = Arc::new(NoKeychain);
        opts.kdf = KdfParams::insecure_for_tests();
        opts.pg_bin_dir = Some(bin.path().to_path_buf());
        let engine = Engine::open(opts).await.expect("engine");
        engine
            .setup_vault(Some(Secret::new(PASSPHRASE)))
            .await
            .expect("vault");
        engine
            .add_project(input("Tools", &db.url()))
            .await
            .expect("add");
        let err = engine
            .run_backup(
                BackupRequest {
                    no_hooks: false,
                    project: "Tools".into(),
                    options: BackupOptions {
                        encrypt: false,
                        ..Default::default()
                    },
                    job_id: None,
                    store: Default::default(),
                },
                Arc::new(|_| {}),
                CancellationToken::new(),
            )
            .await
            .expect_err("no usable pg_dump");
        assert_eq!(err.kind, ErrorKind::Tool);
        assert!(err.message.contains(needle), "{err}");
        assert!(
            err.message
                .contains(&format!("pg_dump {} or newer", c.server_major())),
            "{err}"
        );
        assert!(
            err.hint.as_deref().unwrap_or("").contains("install"),
            "{err:?}"
        );
        let list = engine.list_backups(None, 10).await.expect("list");
        assert_eq!(list[0].status, "failed");
    }
}

#[test]
fn a_wrong_backup_passphrase_fails_decrypt_clearly() {
    let c = cluster();
    let db = c.create_db("bk_wrongpass");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let (t, rec) = rt.block_on(async {
        let t = engine_for(&db, "Pass").await;
        let rec = backup(
            &t.engine,
            "Pass",
            BackupOptions {
                kind: supabackup::engine::backup::BackupKind::Schema,
                ..Default::default()
            },
        )
        .await;
        (t, rec)
    });
    let file = PathBuf::from(rec.file_path.clone().expect("folder")).join("schema.sql.zst.enc");
    let out_path = t.dir.path().join("out.sql.zst");
    let out = cli(
        t.dir.path(),
        &[
            "decrypt",
            file.to_str().expect("utf8"),
            "-o",
            out_path.to_str().expect("utf8"),
        ],
        &[("SUPABACKUP_BACKUP_PASSPHRASE", "not the backup passphrase")],
        None,
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong backup passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(!out_path.exists(), "no partial output");
    let ok = cli(
        t.dir.path(),
        &[
            "decrypt",
            file.to_str().expect("utf8"),
            "-o",
            out_path.to_str().expect("utf8"),
        ],
        &[("SUPABACKUP_BACKUP_PASSPHRASE", BACKUP_PASS)],
        None,
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(out_path.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_rebuild_recreates_rows_from_manifests() {
    let c = cluster();
    let db = c.create_db("bk_rebuild");
    db.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10);");
    let t = engine_for(&db, "Rebuild").await;
    let a = backup(
        &t.engine,
        "Rebuild",
        BackupOptions {
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    let b = backup(&t.engine, "Rebuild", BackupOptions::default()).await;
    t.engine
        .catalog()
        .with(|c| Ok(c.execute("DELETE FROM backups", [])?))
        .expect("wipe");
    let r = t.engine.rebuild_catalog().await.expect("rebuild");
    assert_eq!((r.manifests, r.added), (2, 2), "{r:?}");
    for orig in [a, b] {
        let again = t.engine.backup(&orig.id).await.expect("back");
        assert_eq!(again.checksum, orig.checksum);
        assert_eq!(again.file_size, orig.file_size);
        assert_eq!(again.project_id, orig.project_id);
        assert!(t.engine.verify_backup(&orig.id).await.expect("verify").ok);
    }
}
