//! Untrusted Argon2 parameters are bounded: a file whose header asks for
//! more memory, passes or lanes than supabackup ever writes is refused at
//! once by decrypt, verify, restore and project import — even when the
//! manifest and the catalog were forged to match — unless the user allows
//! more with `--kdf-limit`.

#![allow(clippy::await_holding_lock)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use supabackup::engine::backup::BackupOptions;
use supabackup::engine::backup::manifest::Manifest;
use supabackup::engine::crypto::{b64, sha256_hex};
use supabackup::engine::restore::{RestoreMode, RestoreScope};
use supabackup::engine::transfer::ImportOptions;
use tokio_util::sync::CancellationToken;

use crate::backup::{BACKUP_PASS, backup, engine_for};
use crate::restore_platform::req;
use crate::support::engine::{cli, input, stderr};
use crate::support::pg::{cluster, roles_lock};

const CAPPED: &str = "more than allowed";

/// Rewrites the Argon2 parameters in an encrypted file's header.
fn set_params(bytes: &mut [u8], m_kib: u32, t: u32, p: u32) {
    bytes[9..13].copy_from_slice(&m_kib.to_be_bytes());
    bytes[13..17].copy_from_slice(&t.to_be_bytes());
    bytes[17..21].copy_from_slice(&p.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn crafted_argon2_headers_fail_fast_everywhere() {
    let c = cluster();
    let src = c.create_db("kdf_src");
    src.psql("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t SELECT generate_series(1, 100);");
    let dst = c.create_db("kdf_dst");
    let t = engine_for(&src, "Source").await;
    let mut target = input("Target", &dst.url());
    target.project_ref = "target-ref".into();
    t.engine.add_project(target).await.expect("target");
    let b = backup(&t.engine, "Source", BackupOptions::default()).await;
    let dir = PathBuf::from(b.file_path.clone().expect("folder"));

    // Forge the data file's header (2 GiB of memory: under the old 4 GiB
    // sanity bound, far over what is written) and make the manifest and
    // the catalog agree with it.
    let mut m = Manifest::read(&dir).expect("manifest");
    let data = m
        .files
        .iter_mut()
        .find(|f| f.name.starts_with("data.") && f.name.ends_with(".enc"))
        .expect("an encrypted data file");
    let path = dir.join(&data.name);
    let mut bytes = std::fs::read(&path).expect("read");
    set_params(&mut bytes, 2 * 1024 * 1024, 1, 1);
    std::fs::write(&path, &bytes).expect("forge");
    data.stored_sha256 = sha256_hex(&bytes);
    let forged_file = path.clone();
    m.write(&dir).expect("write manifest");
    let conn = rusqlite::Connection::open(t.engine.data_dir().catalog()).expect("catalog");
    conn.execute(
        "UPDATE backups SET checksum = ?2 WHERE id = ?1",
        rusqlite::params![b.id, m.digest()],
    )
    .expect("forge the catalog");
    drop(conn);

    // verify
    let started = Instant::now();
    let report = t.engine.verify_backup(&b.id).await.expect("verify runs");
    assert!(!report.ok);
    let why = report.first_failure.clone().unwrap_or_default();
    assert!(why.contains(CAPPED), "{why}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // restore
    let started = Instant::now();
    let err = {
        let _roles = roles_lock();
        t.engine
            .run_restore(
                req(&b, "Target", RestoreScope::default(), RestoreMode::New),
                Arc::new(|_| {}),
                CancellationToken::new(),
            )
            .await
            .expect_err("refused")
    };
    assert!(err.to_string().contains(CAPPED), "{err} ({:?})", err.hint);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );

    // decrypt (no catalog), exit code 9 (corrupt) with the override named.
    let out_dir = tempfile::tempdir().expect("out");
    let key = out_dir.path().join("key");
    std::fs::write(&key, BACKUP_PASS).expect("key file");
    let plain_out = out_dir.path().join("data.sql.zst");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "decrypt",
                &forged_file.display().to_string(),
                "-o",
                &plain_out.display().to_string(),
                "--key-file",
                &key.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        cli(out_dir.path(), &refs, &[], None)
    };
    let started = Instant::now();
    let out = run(args(&[]));
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains(CAPPED), "{}", stderr(&out));
    assert!(stderr(&out).contains("--kdf-limit"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!plain_out.exists());

    // With an explicit override the cap no longer applies: a header asking
    // for 11 passes (over the cap of 10, cheap with this file's memory)
    // reaches decryption, which then fails on the altered header.
    let mut bytes = std::fs::read(&forged_file).expect("read");
    set_params(&mut bytes, 1024, 11, 1);
    std::fs::write(&forged_file, &bytes).expect("forge");
    let out = run(args(&[]));
    assert!(stderr(&out).contains(CAPPED), "{}", stderr(&out));
    let out = run(args(&["--kdf-limit", "t=11"]));
    assert!(!out.status.success());
    assert!(!stderr(&out).contains(CAPPED), "{}", stderr(&out));
    let out = run(args(&["--kdf-limit", "t=eleven"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("m=MIB,t=PASSES,p=LANES"),
        "{}",
        stderr(&out)
    );

    // project import: an exported credential with crafted parameters.
    let file = out_dir.path().join("projects.json");
    let sealed = format!(
        "enc:v1:{},1,1:{}:{}:{}",
        2 * 1024 * 1024,
        b64(&[7u8; 16]),
        b64(&[1u8; 12]),
        b64(&[2u8; 32])
    );
    std::fs::write(
        &file,
        serde_json::json!({
            "format": "supabackup.projects",
            "version": 1,
            "projects": [{
                "name": "Crafted",
                "project_ref": "crafted",
                "db_url": "postgresql://postgres@db.crafted.supabase.co:5432/postgres",
                "db_password": sealed,
            }]
        })
        .to_string(),
    )
    .expect("write import");
    let started = Instant::now();
    let report = t
        .engine
        .import_projects(
            &file,
            ImportOptions {
                secrets_passphrase: Some(supabackup::engine::crypto::Secret::new(
                    "export passphrase",
                )),
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .expect("import checks");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(report.rejected[0].reason.contains(CAPPED), "{report:?}");
}
