//! Parallel data streams (src/engine/backup/merge.rs): a full backup whose
//! largest tables are dumped by extra pg_dump processes holds exactly the
//! rows of a one-stream backup, passes its restore test, and restores into
//! a new project identically.

use std::sync::Arc;

use supabackup::engine::backup::manifest::Manifest;
use supabackup::engine::backup::options::Artifact;
use supabackup::engine::backup::{BackupOptions, BackupRequest, Codec};
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::restore::{RestoreMode, RestoreScope};
use supabackup::engine::{Engine, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::backup::{backup, plain, with_source};
use crate::restore_platform::{req, restore};
use crate::support::compare::{CompareOptions, assert_same};
use crate::support::engine::{TestEngine, input, unlocked_engine_with};
use crate::support::pg::TestDb;
use crate::support::platform::new_project;

/// Three tables of a few MB (one with a name pg_dump patterns must take
/// literally), rows with tabs, newlines and NULLs, and owned sequences.
const BIG_TABLES: &str = r#"
CREATE TABLE public.app_events (id bigserial PRIMARY KEY, kind text NOT NULL, payload jsonb, at timestamptz NOT NULL DEFAULT '2026-01-01');
INSERT INTO public.app_events (kind, payload)
  SELECT 'k' || (g % 13), jsonb_build_object('n', g, 'text', repeat(md5(g::text), 8)) FROM generate_series(1, 20000) g;
CREATE TABLE public.blobs (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text, note text);
INSERT INTO public.blobs (body, note)
  SELECT repeat(md5(g::text), 20), CASE WHEN g % 7 = 0 THEN E'tab\there\nnew line \\ back' END FROM generate_series(1, 8000) g;
CREATE TABLE public."Odd*Name.x" (v text NOT NULL);
INSERT INTO public."Odd*Name.x" SELECT repeat(chr(65 + g % 26), 300) FROM generate_series(1, 9000) g;
CREATE TABLE public."Odd" (v text);
INSERT INTO public."Odd" VALUES ('must not be taken for Odd*Name.x');
ANALYZE;
"#;

/// An engine that moves tables of 1 MiB and more to extra streams.
async fn engine_for(db: &TestDb) -> TestEngine {
    let t = unlocked_engine_with(|o| o.stream_min_bytes = 1 << 20).await;
    with_source(t, db, "Source").await
}

fn options(streams: u8) -> BackupOptions {
    BackupOptions {
        streams: Some(streams),
        ..Default::default()
    }
}

fn manifest(b: &BackupRecord) -> Manifest {
    Manifest::read(std::path::Path::new(
        b.file_path.as_deref().expect("folder"),
    ))
    .expect("manifest")
}

fn sorted_tables(m: &Manifest) -> Vec<(String, String, u64, String)> {
    let mut t: Vec<_> = m
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone(), t.rows, t.checksum.clone()))
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_streams_hold_the_same_rows_and_restore_identically() {
    let src = new_project("st_src");
    src.load_shared_app();
    src.psql(BIG_TABLES);
    let t = engine_for(&src).await;
    let e: &Engine = &t.engine;
    let parallel = backup(e, "Source", options(4)).await;
    let single = backup(e, "Source", options(1)).await;
    let (mp, ms) = (manifest(&parallel), manifest(&single));
    // Three extra streams ran: each stream's completion marker is there.
    let markers = |b: &BackupRecord| {
        plain(b, Artifact::Data)
            .matches("-- PostgreSQL database dump complete")
            .count()
    };
    assert_eq!(markers(&single), 1);
    assert_eq!(markers(&parallel), 4, "warnings: {:?}", mp.warnings);
    // The same rows of the same tables, and every sequence once.
    assert_eq!(sorted_tables(&mp), sorted_tables(&ms));
    let seqs = |m: &Manifest| {
        let mut s = m.sequences.clone();
        s.sort_by(|a, b| a.name.cmp(&b.name));
        s
    };
    assert_eq!(seqs(&mp), seqs(&ms));
    assert_eq!(mp.sequences.len(), ms.sequences.len(), "no setval twice");
    let events = mp
        .tables
        .iter()
        .find(|t| t.name == "app_events")
        .expect("app_events");
    assert_eq!(events.rows, 20000);
    assert!(
        mp.tables
            .iter()
            .any(|t| t.name == "Odd*Name.x" && t.rows == 9000)
    );
    assert!(mp.tables.iter().any(|t| t.name == "Odd" && t.rows == 1));
    // Verified and restore-tested like any backup.
    let v = e.verify_backup(&parallel.id).await.expect("verify");
    assert!(v.ok, "{v:?}");
    let scratch = Some(crate::support::pg::cluster().url("postgres"));
    let r = e
        .restore_test(
            &parallel.id,
            scratch,
            std::sync::Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("restore test");
    assert!(r.ok, "{r:?}");
    // Into a new project, as users restore: no difference.
    let dst = new_project("st_dst");
    let mut target = input("Target", &dst.url());
    target.project_ref = "target-ref".into();
    e.add_project(target).await.expect("target project");
    let rec = restore(
        e,
        req(
            &parallel,
            "Target",
            RestoreScope::default(),
            RestoreMode::New,
        ),
    )
    .await;
    assert_eq!(rec.status, "completed");
    assert_same(&src, &dst, &CompareOptions::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_parallel_backup_leaves_nothing_complete_and_no_dump_running() {
    let src = new_project("st_cancel");
    src.psql(BIG_TABLES);
    // More rows, so the streams are still running when the cancel comes.
    src.psql("INSERT INTO public.app_events (kind, payload) SELECT 'more', jsonb_build_object('t', repeat('x', 2000)) FROM generate_series(1, 60000)");
    let t = engine_for(&src).await;
    let cancel = CancellationToken::new();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = started.clone();
    let c = cancel.clone();
    let progress: supabackup::engine::backup::ProgressFn = Arc::new(move |p| {
        if p.bytes_written > 2 << 20 && !seen.swap(true, std::sync::atomic::Ordering::SeqCst) {
            c.cancel();
        }
    });
    let err = t
        .engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: "Source".into(),
                options: BackupOptions {
                    codec: Codec::None,
                    encrypt: false,
                    ..options(4)
                },
                job_id: None,
                store: Default::default(),
            },
            progress,
            cancel,
        )
        .await
        .expect_err("cancelled");
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
    assert!(started.load(std::sync::atomic::Ordering::SeqCst));
    let list = t
        .engine
        .list_backups(Some("Source"), 10)
        .await
        .expect("list");
    assert!(list.iter().all(|b| b.status != "completed"), "{list:?}");
    // No pg_dump of this database is left connected (a killed client's
    // server process may take a moment to notice).
    let query = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'pg_dump'",
        src.name
    );
    let mut left = src.psql(&query);
    for _ in 0..50 {
        if left == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = src.psql(&query);
    }
    assert_eq!(left, "0");
}
