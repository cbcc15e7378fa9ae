//! Incremental backups in the content-addressed repository, on real
//! Supabase projects: a week of churn, each snapshot restored into a new
//! project and compared with that day's database after the oldest were
//! pruned; kill -9 during backups and garbage collection; export loaded
//! with Supabase's documented psql procedure.

#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use supabackup::engine::Engine;
use supabackup::engine::backup::{BackupKind, BackupOptions};
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::restore::{RestoreMode, RestoreRequest, RestoreScope};
use supabackup::engine::schedule::Retention;

use crate::backup::{backup, engine_for};
use crate::restore_kill::{ENV, kill_at};
use crate::restore_platform::{req, restore};
use crate::support::compare::{CompareOptions, assert_same};
use crate::support::engine::{cli, input, stderr, stdout};
use crate::support::pg::{TestDb, cluster, roles_lock};
use crate::support::platform::new_project;

/// A documents table of text and jsonb, pgbench-like accounts, an archive
/// that never changes, a log without a primary key, a sequence, policies
/// and grants.
const APP: &str = "
CREATE TABLE public.documents (
    id bigint PRIMARY KEY,
    title text NOT NULL,
    body text NOT NULL,
    meta jsonb NOT NULL DEFAULT '{}'
);
ALTER TABLE public.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_read ON public.documents FOR SELECT TO authenticated USING (true);
GRANT SELECT ON public.documents TO authenticated;
INSERT INTO public.documents
SELECT g, 'doc ' || g,
       (SELECT string_agg(md5(g::text || '-' || i), ' ') FROM generate_series(1, 40) i),
       jsonb_build_object('rev', 0, 'tags', jsonb_build_array('a', g % 7))
  FROM generate_series(1, 4000) g;
CREATE TABLE public.accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
INSERT INTO public.accounts SELECT g, g % 10, 0, '' FROM generate_series(1, 5000) g;
CREATE TABLE public.archive (id int PRIMARY KEY, payload text NOT NULL);
INSERT INTO public.archive
SELECT g, (SELECT string_agg(md5(i || ':' || g), '') FROM generate_series(1, 12) i)
  FROM generate_series(1, 3000) g;
CREATE TABLE public.events (at timestamptz NOT NULL DEFAULT now(), what text);
INSERT INTO public.events (what) SELECT 'boot ' || g FROM generate_series(1, 200) g;
CREATE SEQUENCE public.ticket_seq START 100;
SELECT setval('public.ticket_seq', 4242);
COMMENT ON TABLE public.documents IS 'versioned by supabackup';
";

/// Day `day`'s changes: about 1 % of documents and accounts updated, some
/// deleted and inserted, a log appended; on day 4 a schema change.
fn churn(day: u32) -> String {
    let mut sql = format!(
        "UPDATE public.documents SET body = body || ' edit {day}', meta = jsonb_set(meta, '{{rev}}', '{day}')
           WHERE id % 100 = {day};
         DELETE FROM public.documents WHERE id % 1000 = {day} + 50;
         INSERT INTO public.documents (id, title, body)
           SELECT 10000 * {day} + g, 'new ' || g, md5(g::text) FROM generate_series(1, 20) g;
         UPDATE public.accounts SET abalance = abalance + {day} WHERE aid % 100 = {day};
         INSERT INTO public.events (what) SELECT 'day {day} ' || g FROM generate_series(1, 10) g;
         SELECT nextval('public.ticket_seq');"
    );
    if day == 4 {
        sql.push_str(
            "ALTER TABLE public.documents ADD COLUMN archived boolean NOT NULL DEFAULT false;
             CREATE INDEX documents_title ON public.documents (title);
             CREATE FUNCTION public.doc_count() RETURNS bigint LANGUAGE sql STABLE
               AS 'SELECT count(*) FROM public.documents';",
        );
    }
    sql
}

fn incremental() -> BackupOptions {
    BackupOptions {
        kind: BackupKind::Incremental,
        ..Default::default()
    }
}

/// What a snapshot added to the repository.
async fn added(e: &Engine, b: &BackupRecord) -> u64 {
    let m = e.backup_manifest(&b.id).await.expect("manifest");
    m.repo
        .expect("a repository snapshot")
        .files
        .iter()
        .map(|f| f.new_bytes)
        .sum()
}

/// A copy of `db` as it is now, to compare a restore with later.
fn freeze(db: &TestDb, tag: &str) -> TestDb {
    cluster().create_db_from(tag, &db.name)
}

async fn add_target(e: &Engine, name: &str, db: &TestDb) {
    let mut target = input(name, &db.url());
    target.project_ref = format!("{}-ref", name.to_lowercase());
    e.add_project(target).await.expect("target project");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_week_of_churn_gives_snapshots_that_each_restore_exactly_after_the_oldest_are_pruned() {
    let src = new_project("repo_week_src");
    src.run_sql_file_locked(APP);
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    let mut snaps = Vec::new();
    let mut days = Vec::new();
    for day in 1..=7u32 {
        if day > 1 {
            src.psql(&churn(day));
        }
        let b = backup(e, "Source", incremental()).await;
        assert_eq!(b.backup_type, "incremental");
        assert_eq!(b.status, "completed");
        days.push(freeze(&src, &format!("repo_week_day{day}")));
        snaps.push(b);
    }

    // The first snapshot stores everything; a day of 1 % churn costs a
    // fraction of it (day 4's new column rewrites every documents row, so
    // that day is left out), and nothing in the repository is readable text.
    let first = added(e, &snaps[0]).await;
    assert!(first > 100_000, "the first snapshot added {first} bytes");
    for (i, b) in snaps.iter().enumerate().skip(1) {
        if i == 3 {
            continue;
        }
        let a = added(e, b).await;
        assert!(
            a * 2 < first,
            "snapshot {} added {a} bytes, the first {first}: nothing was deduplicated",
            b.id
        );
    }
    assert!(
        crate::support::engine::files_containing(&t.dir.path().join("repo"), b"doc 3999")
            .is_empty(),
        "the repository holds plain row text"
    );

    // Retention drops the three oldest; garbage collection frees their chunks.
    let report = e
        .prune_project(
            "Source",
            &Retention {
                keep_last: Some(4),
                ..Default::default()
            },
            false,
            Utc::now(),
        )
        .await
        .expect("prune");
    assert_eq!(report.deleted.len(), 3, "{report:?}");
    // (What the pruned days alone used goes; their chunks that kept days'
    // chunks are stored against stay.)
    let gc = report.repo_gc.clone().expect("garbage collection ran");
    assert_eq!(gc.snapshots, 4, "{gc:?}");
    assert!(gc.live_chunks > 0, "{gc:?}");
    let check = e.repo_check().await.expect("repo check");
    assert!(check.errors.is_empty(), "{check:?}");

    // Every kept snapshot verifies and restores into a new project exactly
    // as its day's database was.
    for (i, (b, day)) in snaps.iter().zip(&days).enumerate().skip(3) {
        let v = e.verify_backup(&b.id).await.expect("verify");
        assert!(v.ok, "day {}: {v:?}", i + 1);
        let dst = new_project(&format!("repo_week_dst{i}"));
        let name = format!("Target{i}");
        add_target(e, &name, &dst).await;
        // Every other one loads in parallel, its sessions reading the
        // snapshot's chunks side by side.
        let r = RestoreRequest {
            jobs: if i % 2 == 0 { 3 } else { 1 },
            ..req(b, &name, RestoreScope::default(), RestoreMode::New)
        };
        let rec = restore(e, r).await;
        assert_eq!(rec.status, "completed", "day {}", i + 1);
        assert_same(day, &dst, &CompareOptions::default());
    }

    // With every snapshot gone, garbage collection leaves no pack behind
    // (the restores' safety snapshots of the targets are full backups,
    // outside the repository).
    for b in &snaps[3..] {
        e.delete_backup(&b.id).await.expect("delete");
    }
    let gc = e.repo_gc(false, true).await.expect("gc").expect("report");
    assert_eq!(gc.snapshots, 0, "{gc:?}");
    let packs =
        crate::support::engine::files_containing(&t.dir.path().join("repo/packs"), b"SBPACK01");
    assert!(
        packs.is_empty(),
        "packs left after every snapshot went: {packs:?} {gc:?}"
    );
}

/// Runs the CLI with the test environment, returning once it exits.
fn run(data: &Path, args: &[&str]) -> std::process::Output {
    cli(data, args, &ENV, None)
}

fn ids_of(data: &Path) -> Vec<(String, String)> {
    let out = run(data, &["backup", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    v.as_array()
        .expect("list")
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap_or_default().to_owned(),
                b["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Every completed backup verifies and the repository checks clean.
fn all_verify(data: &Path, moment: &str) -> usize {
    let mut n = 0;
    for (id, status) in ids_of(data) {
        if status != "completed" {
            continue;
        }
        let out = run(data, &["verify", &id]);
        assert!(
            out.status.success(),
            "after {moment}: backup {id} does not verify: {}{}",
            stdout(&out),
            stderr(&out)
        );
        n += 1;
    }
    let out = run(data, &["repo", "check"]);
    assert!(
        out.status.success(),
        "after {moment}: repo check: {}{}",
        stdout(&out),
        stderr(&out)
    );
    n
}

/// Starts a backup and kills it with SIGKILL after `after`.
fn kill_after(data: &Path, args: &[&str], after: Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supabackup"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn kill_nine_during_backups_and_garbage_collection_never_breaks_a_kept_snapshot() {
    let src = new_project("repo_kill_src");
    src.run_sql_file_locked(APP);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().to_path_buf();
    let add = run(
        &data,
        &[
            "project",
            "add",
            "--name",
            "Source",
            "--ref",
            "repo-kill-ref",
            "--db-url",
            &src.url(),
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let inc = ["backup", "run", "Source", "--type", "incremental"];
    let ok = run(&data, &inc);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // A backup killed just before a pack is renamed into place, and one
    // killed just after a pack was indexed (a pack no snapshot will use).
    src.psql(&churn(2));
    kill_at(&data, &inc, "repo.pack.before_rename");
    assert_eq!(all_verify(&data, "a kill before a pack's rename"), 1);
    kill_at(&data, &inc, "repo.pack.after_index");
    assert_eq!(all_verify(&data, "a kill after a pack was indexed"), 1);

    // Backups killed at five moments of their run (seven kills in all).
    for (i, ms) in [150u64, 400, 700, 1000, 1500].into_iter().enumerate() {
        src.psql(&churn(3 + i as u32));
        kill_after(&data, &inc, Duration::from_millis(ms));
        all_verify(&data, &format!("a kill {ms} ms into a backup"));
    }

    // Snapshots for garbage collection to work on: W holds a bulk table
    // whose first half is deleted before the next ones (the half of W's
    // pack that only W used dies, the rest stays: it is repacked), then X
    // with a table that is gone by the next one.
    src.psql(
        "CREATE TABLE public.bulk AS
           SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) AS v
             FROM generate_series(1, 60000) g;",
    );
    let w = run(&data, &inc);
    assert!(w.status.success(), "{}", stderr(&w));
    src.psql("DELETE FROM public.bulk WHERE id <= 30000;");
    src.psql(
        "CREATE TABLE public.scratch AS
           SELECT g AS id, (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 30) i) AS junk
             FROM generate_series(1, 3000) g;",
    );
    let x = run(&data, &inc);
    assert!(x.status.success(), "{}", stderr(&x));
    src.psql(
        "DROP TABLE public.scratch;
         UPDATE public.documents SET body = md5(body) WHERE id % 2 = 0;",
    );
    for day in [9, 10] {
        src.psql(&churn(day));
        let b = run(&data, &inc);
        assert!(b.status.success(), "{}", stderr(&b));
    }
    let kept_before = all_verify(&data, "the last backups");
    assert!(kept_before >= 4, "{kept_before} snapshots");

    // Prune to the newest two, killed once after a dead pack is unindexed
    // and once after a repacked pack is sealed; then run to the end.
    let prune = ["prune", "Source", "--keep-last", "2"];
    kill_at(&data, &prune, "repo.gc.after_unindex");
    all_verify(&data, "a kill after unindexing a dead pack");
    let gc = ["repo", "gc"];
    kill_at(&data, &gc, "repo.gc.after_repack_seal");
    all_verify(&data, "a kill after sealing a repacked pack");
    let out = run(&data, &["repo", "gc", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["snapshots"], 2, "{report}");
    assert_eq!(all_verify(&data, "the garbage collection"), 2);

    // The newest snapshot still restores into a new project exactly.
    let newest = ids_of(&data)
        .into_iter()
        .find(|(_, s)| s == "completed")
        .expect("a snapshot")
        .0;
    let dst = new_project("repo_kill_dst");
    let add = run(
        &data,
        &[
            "project",
            "add",
            "--name",
            "Target",
            "--ref",
            "repo-kill-dst",
            "--db-url",
            &dst.url(),
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let _roles = roles_lock();
    let out = run(
        &data,
        &[
            "restore", "run", &newest, "--to", "Target", "--mode", "new", "--yes",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    drop(_roles);
    assert_same(&src, &dst, &CompareOptions::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_snapshot_loads_with_supabases_documented_psql_procedure() {
    let src = new_project("repo_export_src");
    src.run_sql_file_locked(APP);
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    backup(e, "Source", incremental()).await;
    src.psql(&churn(2));
    let b = backup(e, "Source", incremental()).await;
    let out = tempfile::tempdir().expect("tmp");
    let dir: PathBuf = out.path().join("export");
    let r = e
        .export_backup(&b.id, &dir, supabackup::engine::backup::Codec::None, None)
        .await
        .expect("export");
    // (No history.sql: the project has no migration history.)
    for f in ["roles.sql", "schema.sql", "schema.dump", "data.sql"] {
        assert!(r.files.iter().any(|n| n == f), "{f} missing: {r:?}");
    }
    // A second export into the same folder refuses to overwrite.
    let again = e
        .export_backup(&b.id, &dir, supabackup::engine::backup::Codec::None, None)
        .await;
    assert!(again.is_err(), "export overwrote files");

    let dst = new_project("repo_export_dst");
    let c = cluster();
    let _roles = roles_lock();
    let mut cmd = Command::new(c.bin("psql"));
    c.pg_env(&mut cmd, &dst.name);
    let status = cmd
        .current_dir(&dir)
        .args([
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-q",
            "-f",
            "roles.sql",
            "-f",
            "schema.sql",
            "-c",
            "SET session_replication_role = replica",
            "-f",
            "data.sql",
        ])
        .output()
        .expect("psql");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    drop(_roles);
    assert_same(&src, &dst, &CompareOptions::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_restore_tests_and_a_damaged_chunk_fails_verify_and_repo_check() {
    let src = new_project("repo_tamper_src");
    src.run_sql_file_locked(APP);
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    let b = backup(e, "Source", incremental()).await;
    assert!(e.verify_backup(&b.id).await.expect("verify").ok);
    // A restore test of a snapshot takes the same path as any backup's.
    let rt = {
        let _roles = roles_lock();
        e.restore_test_from(
            &b.id,
            Some(cluster().url("postgres")),
            None,
            std::sync::Arc::new(|_| {}),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("restore test")
    };
    assert!(rt.ok, "{rt:?}");
    // Unencrypted incremental backups are refused with a reason.
    let err = BackupOptions {
        kind: BackupKind::Incremental,
        encrypt: false,
        ..Default::default()
    }
    .validate()
    .expect_err("unencrypted incremental");
    assert!(err.message.contains("encrypted"), "{err}");
    // An incremental job with off-site copies is refused when it is saved,
    // not on its first night.
    let folder = tempfile::tempdir().expect("tmp");
    e.add_destination(supabackup::engine::destination::DestinationInput {
        name: "nas".into(),
        url: format!("file://{}", folder.path().display()),
        ..Default::default()
    })
    .await
    .expect("destination");
    let job = e
        .add_job(supabackup::engine::schedule::JobInput {
            project: "Source".into(),
            name: None,
            cron: "0 3 * * *".into(),
            timezone: supabackup::engine::schedule::JobTz::Utc,
            config: supabackup::engine::schedule::JobConfig {
                backup: incremental(),
                store: supabackup::engine::destination::copies::StorePlan {
                    destinations: vec!["nas".into()],
                    ..Default::default()
                },
                ..Default::default()
            },
            retention: Retention::default(),
            enabled: true,
        })
        .await
        .expect_err("an incremental job with copies");
    assert!(job.message.contains("repository"), "{job}");
    let copy = e
        .store_copy(
            &b.id,
            "nas",
            None,
            &|_| {},
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect_err("a snapshot copied off-site");
    assert!(copy.message.contains("not supported yet"), "{copy}");

    // Flip one byte in the middle of the biggest pack.
    let packs = t.dir.path().join("repo").join("packs");
    let mut biggest: Option<(u64, PathBuf)> = None;
    for sub in std::fs::read_dir(&packs).expect("packs").flatten() {
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if f.path().extension().is_some_and(|x| x == "pack")
                && biggest.as_ref().is_none_or(|(l, _)| len > *l)
            {
                biggest = Some((len, f.path()));
            }
        }
    }
    let (len, victim) = biggest.expect("a pack");
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[(len / 2) as usize] ^= 0x40;
    std::fs::write(&victim, bytes).expect("write");
    let v = e.verify_backup(&b.id).await.expect("verify");
    assert!(!v.ok, "verify passed over a flipped byte");
    let why = v.first_failure.clone().unwrap_or_default();
    assert!(why.contains("chunk"), "{why}");
    let check = e.repo_check().await.expect("check");
    assert_eq!(check.errors.len(), 1, "{check:?}");

    // The repository opens only with its passphrase.
    let wrong = supabackup::engine::repo::Repo::open(
        &t.dir.path().join("repo"),
        &supabackup::engine::crypto::Secret::new("not the passphrase at all"),
    )
    .expect_err("opened with a wrong passphrase");
    assert_eq!(wrong.kind, supabackup::engine::ErrorKind::Auth, "{wrong}");
}

/// Per table of `db`: primary key (or, without one, nothing) → md5 of the
/// row, as SQL sees it.
fn rows_in_sql(db: &TestDb, table: &str, key: Option<&str>) -> Vec<(String, String)> {
    let sql = match key {
        Some(k) => format!("SELECT {k}::text, md5(t::text) FROM {table} t ORDER BY 1"),
        None => format!("SELECT '', md5(t::text) FROM {table} t ORDER BY 2"),
    };
    db.psql(&format!(
        "\\pset format unaligned\n\\pset tuples_only on\n\\pset fieldsep '|'\n{sql}"
    ))
    .lines()
    .filter(|l| l.contains('|'))
    .map(|l| {
        let (k, h) = l.split_once('|').unwrap_or_default();
        (k.to_owned(), h.to_owned())
    })
    .collect()
}

/// (added, removed, changed) between two row lists, keyed or as multisets.
fn sql_difference(a: &[(String, String)], b: &[(String, String)], keyed: bool) -> (u64, u64, u64) {
    use std::collections::HashMap;
    if keyed {
        let am: HashMap<_, _> = a.iter().cloned().collect();
        let bm: HashMap<_, _> = b.iter().cloned().collect();
        let added = bm.keys().filter(|k| !am.contains_key(*k)).count() as u64;
        let removed = am.keys().filter(|k| !bm.contains_key(*k)).count() as u64;
        let changed = am
            .iter()
            .filter(|(k, v)| bm.get(*k).is_some_and(|w| w != *v))
            .count() as u64;
        (added, removed, changed)
    } else {
        let mut count: HashMap<&str, i64> = HashMap::new();
        for (_, h) in a {
            *count.entry(h).or_default() -= 1;
        }
        for (_, h) in b {
            *count.entry(h).or_default() += 1;
        }
        let added = count.values().filter(|v| **v > 0).sum::<i64>() as u64;
        let removed = (-count.values().filter(|v| **v < 0).sum::<i64>()) as u64;
        (added, removed, 0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_diff_of_two_snapshots_equals_the_difference_computed_in_sql() {
    let src = new_project("repo_diff_src");
    src.run_sql_file_locked(APP);
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    let a = backup(e, "Source", incremental()).await;
    let before = freeze(&src, "repo_diff_a");
    src.psql(&churn(2));
    src.psql(&churn(3));
    src.psql(
        "UPDATE public.accounts SET filler = 'x' WHERE aid BETWEEN 100 AND 160;
         DELETE FROM public.events WHERE what LIKE 'boot 1%';
         CREATE TABLE public.tags (id int PRIMARY KEY, label text);
         INSERT INTO public.tags SELECT g, 'tag ' || g FROM generate_series(1, 30) g;
         ALTER POLICY documents_read ON public.documents USING (id > 0);
         CREATE FUNCTION public.doc_count() RETURNS bigint LANGUAGE sql STABLE
           AS 'SELECT count(*) FROM public.documents';
         CREATE ROLE repo_diff_reader NOLOGIN;",
    );
    let b = backup(e, "Source", incremental()).await;
    let d = e
        .diff_backups(&a.id, &b.id, tokio_util::sync::CancellationToken::new())
        .await
        .expect("diff");

    // Rows: what SQL says changed between the two databases.
    for (table, key) in [
        ("public.documents", Some("id")),
        ("public.accounts", Some("aid")),
        ("public.events", None),
        ("public.tags", Some("id")),
        ("public.archive", Some("id")),
    ] {
        let truth = sql_difference(
            &if table == "public.tags" {
                Vec::new()
            } else {
                rows_in_sql(&before, table, key)
            },
            &rows_in_sql(&src, table, key),
            key.is_some(),
        );
        let got = d
            .tables
            .iter()
            .find(|x| x.table == table)
            .map(|x| (x.added, x.removed, x.changed))
            .unwrap_or((0, 0, 0));
        assert_eq!(got, truth, "{table}: {d:#?}");
        if let Some(x) = d.tables.iter().find(|x| x.table == table) {
            assert_eq!(x.keyed, key.is_some(), "{x:?}");
        }
    }
    assert!(d.unchanged_tables >= 1, "the archive did not change");

    // Objects.
    let has = |v: &[supabackup::engine::history::diff::ObjectRef], kind: &str, name: &str| {
        v.iter().any(|o| o.kind == kind && o.name == name)
    };
    assert!(has(&d.schema.added, "TABLE", "tags"), "{:#?}", d.schema);
    assert!(
        has(&d.schema.added, "FUNCTION", "doc_count()"),
        "{:#?}",
        d.schema
    );
    let policy = d
        .schema
        .changed
        .iter()
        .find(|c| c.kind == "POLICY")
        .expect("the changed policy");
    assert!(
        policy.diff.contains("+CREATE POLICY") && policy.diff.contains("\"id\" > 0"),
        "{}",
        policy.diff
    );
    assert!(d.schema.removed.is_empty(), "{:#?}", d.schema.removed);
    assert!(
        d.roles.added.iter().any(|r| r.contains("repo_diff_reader")),
        "{:?}",
        d.roles
    );
    src.psql("DROP ROLE repo_diff_reader;");

    // The CLI prints the same.
    let out = cli(
        t.dir.path(),
        &["backup", "diff", &a.id, &b.id, "--json"],
        &[("SUPABACKUP_PASSPHRASE", crate::support::engine::PASSPHRASE)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["tables"].as_array().map(Vec::len), Some(d.tables.len()));
    let out = cli(
        t.dir.path(),
        &["backup", "history", "Source"],
        &[("SUPABACKUP_PASSPHRASE", crate::support::engine::PASSPHRASE)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.find(&a.id)
            .is_some_and(|i| text.find(&b.id).is_some_and(|j| i < j)),
        "the timeline is not oldest first: {text}"
    );
}
