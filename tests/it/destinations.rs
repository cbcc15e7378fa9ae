//! Off-site copies on real object stores: a folder, moto's S3 server and
//! Azurite, all on loopback. Every restore goes into a new Supabase project
//! and is compared object by object with the source.

#![allow(clippy::await_holding_lock)]

use std::path::Path;
use std::sync::Arc;

use chrono::{Duration as Days, Utc};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use supabackup::engine::Engine;
use supabackup::engine::backup::{BackupOptions, BackupRequest};
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::crypto::Secret;
use supabackup::engine::destination::DestinationInput;
use supabackup::engine::destination::copies::StorePlan;
use supabackup::engine::restore::{RestoreMode, RestoreScope};
use supabackup::engine::schedule::ticker::run_job;
use supabackup::engine::schedule::{JobConfig, JobInput, JobTz, Retention};
use tokio_util::sync::CancellationToken;

use crate::backup::engine_for;
use crate::restore_kill::{ENV, kill_at};
use crate::restore_platform::{req, restore};
use crate::support::compare::{CompareOptions, assert_same};
use crate::support::engine::{cli, input, stderr, stdout};
use crate::support::objstore::{
    AZURITE_ACCOUNT, AZURITE_KEY, S3_KEY_ID, S3_SECRET, azure_endpoint, closed_port, create_bucket,
    create_container, s3,
};
use crate::support::pg::{TestDb, roles_lock};
use crate::support::platform::new_project;

const APP: &str = "
CREATE TABLE public.notes (id int PRIMARY KEY, owner uuid, body text NOT NULL);
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_owner ON public.notes FOR SELECT TO authenticated USING (owner = auth.uid());
GRANT SELECT ON public.notes TO authenticated;
INSERT INTO public.notes SELECT g, NULL, repeat('note ' || g, 20) FROM generate_series(1, 5000) g;
CREATE SEQUENCE public.ticket_seq START 100;
SELECT setval('public.ticket_seq', 4242);
COMMENT ON TABLE public.notes IS 'copied off-site';
";

fn s3_input(name: &str, bucket: &str, prefix: &str) -> DestinationInput {
    DestinationInput {
        name: name.into(),
        url: format!("s3://{bucket}/{prefix}"),
        endpoint: Some(s3().endpoint()),
        region: Some("us-east-1".into()),
        path_style: true,
        access_key_id: Some(S3_KEY_ID.into()),
        secret: Some(Secret::new(S3_SECRET)),
        ..Default::default()
    }
}

fn azure_input(name: &str, container: &str) -> DestinationInput {
    DestinationInput {
        name: name.into(),
        url: format!("az://{container}/backups"),
        endpoint: Some(azure_endpoint()),
        access_key_id: Some(AZURITE_ACCOUNT.into()),
        secret: Some(Secret::new(AZURITE_KEY)),
        ..Default::default()
    }
}

fn folder_input(name: &str, dir: &Path) -> DestinationInput {
    DestinationInput {
        name: name.into(),
        url: format!("file://{}", dir.display()),
        ..Default::default()
    }
}

pub(crate) async fn backup_to(engine: &Engine, project: &str, plan: StorePlan) -> BackupRecord {
    engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: project.into(),
                options: BackupOptions::default(),
                job_id: None,
                store: plan,
            },
            Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("backup completes")
}

pub(crate) fn plan(names: &[&str]) -> StorePlan {
    StorePlan {
        destinations: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A source project with the app above, and a new project to restore into.
fn source_and_target(tag: &str) -> (TestDb, TestDb) {
    let src = new_project(&format!("dst_{tag}_src"));
    src.run_sql_file_locked(APP);
    let dst = new_project(&format!("dst_{tag}_dst"));
    (src, dst)
}

async fn add_target(engine: &Engine, dst: &TestDb) {
    let mut target = input("Target", &dst.url());
    target.project_ref = "target-ref".into();
    engine.add_project(target).await.expect("target project");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_copied_to_s3_azure_and_a_folder_verifies_restores_and_detects_a_flipped_byte() {
    let (src, dst) = source_and_target("three");
    create_bucket("three-bucket");
    create_container("three-container");
    let nas = tempfile::tempdir().expect("tempdir");
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    add_target(e, &dst).await;
    e.add_destination(s3_input("bucket", "three-bucket", "team/prod"))
        .await
        .expect("s3 destination");
    e.add_destination(azure_input("azure", "three-container"))
        .await
        .expect("azure destination");
    e.add_destination(folder_input("nas", nas.path()))
        .await
        .expect("folder destination");
    for name in ["bucket", "azure", "nas"] {
        let r = e.test_destination(name).await.expect("destination test");
        assert!(r.ok, "{name}: {r:?}");
    }

    let b = backup_to(e, "Source", plan(&["bucket", "azure", "nas"])).await;
    let copies = e.backup_copies(&b.id).await.expect("copies");
    assert_eq!(copies.len(), 3, "{copies:?}");
    for c in &copies {
        assert_eq!(c.status, "stored", "{c:?}");
        assert!(c.verified_at.is_some(), "every copy was read back: {c:?}");
        assert!(c.stored_bytes.unwrap_or(0) > 0, "{c:?}");
    }
    // Off-site objects are the encrypted files: no row text in them.
    assert!(
        crate::support::engine::files_containing(nas.path(), b"note 4999").is_empty(),
        "the folder copy holds plain data"
    );
    for name in ["bucket", "azure", "nas"] {
        let v = e
            .verify_backup_from(&b.id, Some(name))
            .await
            .expect("verify");
        assert!(v.ok, "{name}: {v:?}");
    }

    // With no local folder at all, restore and restore-test read the bucket.
    e.drop_local_copy(&b.id).await.expect("drop local copy");
    assert!(!Path::new(b.file_path.as_deref().unwrap_or_default()).exists());
    let scratch = Some(crate::support::pg::cluster().url("postgres"));
    let rt = {
        let _roles = roles_lock();
        e.restore_test_from(
            &b.id,
            scratch,
            Some("bucket".into()),
            std::sync::Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("restore test from the bucket")
    };
    assert!(rt.ok, "{rt:?}");
    let mut r = req(&b, "Target", RestoreScope::default(), RestoreMode::New);
    r.from = Some("bucket".into());
    let rec = restore(e, r).await;
    assert_eq!(rec.status, "completed");
    assert_same(&src, &dst, &CompareOptions::default());

    // One flipped byte in a remote object: verify of that copy fails and
    // names the file; the other copies still verify.
    let (_, place) = e.open_destination("bucket").await.expect("open");
    let copy = copies
        .iter()
        .find(|c| c.destination == "bucket")
        .expect("copy");
    let listed: Vec<_> = {
        use futures_util::TryStreamExt;
        place
            .store
            .list(Some(&place.path(&copy.location)))
            .try_collect::<Vec<_>>()
            .await
            .expect("list")
    };
    let victim = listed
        .iter()
        .filter(|o| !o.location.as_ref().ends_with("metadata.json"))
        .max_by_key(|o| o.size)
        .expect("a data object");
    let mut bytes = place
        .store
        .get(&victim.location)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    place
        .store
        .put(&victim.location, PutPayload::from(bytes))
        .await
        .expect("put");
    let v = e
        .verify_backup_from(&b.id, Some("bucket"))
        .await
        .expect("verify runs");
    assert!(!v.ok, "a flipped byte must fail verification: {v:?}");
    let why = v.first_failure.clone().unwrap_or_default();
    let file = victim.location.filename().unwrap_or_default();
    assert!(why.contains(file), "names {file}: {why}");
    let again = e.backup_copies(&b.id).await.expect("copies");
    let bucket_copy = again
        .iter()
        .find(|c| c.destination == "bucket")
        .expect("copy");
    assert!(
        bucket_copy
            .error
            .as_deref()
            .is_some_and(|e| e.contains(file)),
        "the failed verification is recorded on the copy: {bucket_copy:?}"
    );
    assert!(
        e.verify_backup_from(&b.id, Some("azure"))
            .await
            .expect("verify")
            .ok
    );
}

#[test]
fn after_losing_the_machine_catalog_rebuild_from_the_bucket_restores_everything() {
    let (src, dst) = source_and_target("dr");
    create_bucket("dr-bucket");
    let endpoint = s3().endpoint();
    let add_bucket = |data: &Path| {
        let out = cli(
            data,
            &[
                "destination",
                "add",
                "offsite",
                "--url",
                "s3://dr-bucket/supabackup",
                "--endpoint",
                &endpoint,
                "--path-style",
                "--access-key-id",
                S3_KEY_ID,
                "--secret-stdin",
            ],
            &ENV,
            Some(S3_SECRET),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let add_project = |data: &Path, name: &str, db: &TestDb| {
        let out = cli(
            data,
            &[
                "project",
                "add",
                "--name",
                name,
                "--ref",
                &name.to_lowercase(),
                "--db-url",
                &db.url(),
            ],
            &ENV,
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };

    let first = tempfile::tempdir().expect("tempdir");
    add_project(first.path(), "Source", &src);
    add_bucket(first.path());
    let out = cli(
        first.path(),
        &[
            "backup",
            "run",
            "Source",
            "--destination",
            "offsite",
            "--json",
        ],
        &ENV,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = rec["id"].as_str().expect("id").to_owned();
    drop(first); // the laptop is gone, with its catalog and backups

    let fresh = tempfile::tempdir().expect("tempdir");
    add_bucket(fresh.path());
    let out = cli(
        fresh.path(),
        &["catalog", "rebuild", "--from", "offsite"],
        &ENV,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Read 1 manifest(s): 1 added"),
        "{}",
        stdout(&out)
    );
    let out = cli(fresh.path(), &["backup", "show", &id], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("offsite"), "{}", stdout(&out));

    // The one thing the bucket cannot give back: the backup passphrase.
    let out = cli(
        fresh.path(),
        &["vault", "set-backup-passphrase"],
        &ENV,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    add_project(fresh.path(), "Target", &dst);
    let _roles = roles_lock();
    let out = cli(
        fresh.path(),
        &[
            "restore", "run", &id, "--from", "offsite", "--to", "Target", "--mode", "new", "--yes",
        ],
        &ENV,
        None,
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    drop(_roles);
    assert_same(&src, &dst, &CompareOptions::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_primary_fails_over_and_the_job_alerts() {
    let src = new_project("dst_failover_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);",
    );
    create_bucket("failover-bucket");
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    let mut down = s3_input("primary", "nowhere", "x");
    down.endpoint = Some(format!("http://127.0.0.1:{}", closed_port()));
    e.add_destination(down).await.expect("primary");
    e.add_destination(s3_input("spare", "failover-bucket", "dr"))
        .await
        .expect("spare");
    let mut p = plan(&["primary"]);
    p.failover = Some("spare".into());
    let b = backup_to(e, "Source", p.clone()).await;
    let copies = e.backup_copies(&b.id).await.expect("copies");
    let spare = copies
        .iter()
        .find(|c| c.destination == "spare")
        .unwrap_or_else(|| panic!("the failover took the copy: {copies:?}"));
    assert_eq!(spare.status, "stored");
    let primary_id = e.destination("primary").await.expect("primary").id;
    assert_eq!(spare.failover_for.as_deref(), Some(primary_id.as_str()));
    assert!(
        e.verify_backup_from(&b.id, Some("spare"))
            .await
            .expect("verify")
            .ok
    );

    // The same through a scheduled job: the run completes and alerts.
    let rule = supabackup::engine::notify::AlertRule {
        on_failure: true,
        channels: vec![supabackup::engine::notify::Channel::Desktop],
        ..Default::default()
    };
    e.save_alert_rule(rule, None, None).await.expect("rule");
    let notifier = Arc::new(supabackup::engine::notify::RecordingNotifier::new());
    let delivery = supabackup::engine::notify::Delivery::with_desktop(notifier.clone());
    let job = e
        .add_job(JobInput {
            project: "Source".into(),
            name: None,
            cron: "0 3 * * *".into(),
            timezone: JobTz::Utc,
            config: JobConfig {
                store: p,
                ..Default::default()
            },
            retention: Retention::default(),
            enabled: true,
        })
        .await
        .expect("job");
    let out = run_job(e, &job, CancellationToken::new(), &delivery).await;
    assert_eq!(out.status, "completed", "{out:?}");
    let step = &out.steps[0];
    let why = step.failover.clone().unwrap_or_default();
    assert!(why.contains("primary") && why.contains("spare"), "{out:?}");
    let calls = notifier.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.0.contains("used the failover destination")),
        "{calls:?}"
    );
    let copies = e
        .backup_copies(step.backup_id.as_deref().expect("backup id"))
        .await
        .expect("copies");
    assert!(
        copies
            .iter()
            .any(|c| c.destination == "spare" && c.status == "stored"),
        "{copies:?}"
    );
    // A job naming a destination that does not exist is refused.
    let err = e
        .add_job(JobInput {
            project: "Source".into(),
            name: None,
            cron: "0 4 * * *".into(),
            timezone: JobTz::Utc,
            config: JobConfig {
                store: plan(&["no-such-place"]),
                ..Default::default()
            },
            retention: Retention::default(),
            enabled: true,
        })
        .await
        .expect_err("unknown destination");
    assert!(err.message.contains("no-such-place"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_each_destination_by_its_own_rules() {
    let src = new_project("dst_retention_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);",
    );
    create_bucket("retention-bucket");
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    e.add_destination(s3_input("bucket", "retention-bucket", "r"))
        .await
        .expect("bucket");
    // Six backups, one a day back from today, each copied to the bucket.
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(backup_to(e, "Source", plan(&["bucket"])).await.id);
    }
    let db = t.dir.path().join("catalog.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("catalog");
    for (age, id) in ids.iter().rev().enumerate() {
        let at = (Utc::now() - Days::days(age as i64)).to_rfc3339();
        conn.execute(
            "UPDATE backups SET created_at = ?1 WHERE id = ?2",
            rusqlite::params![at, id],
        )
        .expect("age");
    }
    drop(conn);
    let keep = |n| Retention {
        keep_last: Some(n),
        ..Default::default()
    };
    // Dry run first: nothing changes.
    let dry = e
        .prune_at("Source", Some("bucket"), &keep(2), true, Utc::now())
        .await
        .expect("dry run");
    assert_eq!(dry.deleted.len(), 4);
    assert_eq!(stored_at(e, &ids, "bucket").await, 6);
    // Locally keep 4, in the bucket keep 2.
    let local = e
        .prune_at("Source", None, &keep(4), false, Utc::now())
        .await
        .expect("local prune");
    assert_eq!(local.deleted.len(), 2);
    let remote = e
        .prune_at("Source", Some("bucket"), &keep(2), false, Utc::now())
        .await
        .expect("bucket prune");
    assert_eq!(remote.deleted.len(), 4);
    // Newest two: here and in the bucket. Next two: here only. Oldest two:
    // only in... nowhere: their last copy went, so the backups went.
    let (_, place) = e.open_destination("bucket").await.expect("open");
    for (i, id) in ids.iter().enumerate() {
        let rec = e.backup(id).await;
        let copies = e.backup_copies(id).await.unwrap_or_default();
        let in_bucket = copies
            .iter()
            .any(|c| c.destination == "bucket" && c.status == "stored");
        match i {
            0 | 1 => assert!(rec.is_err(), "oldest backups are gone: {id}"),
            2 | 3 => {
                let rec = rec.expect("kept locally");
                assert_eq!(rec.local_state, "present");
                assert!(!in_bucket, "{id} pruned from the bucket");
            }
            _ => {
                let rec = rec.expect("kept");
                assert_eq!(rec.local_state, "present");
                assert!(in_bucket, "{id} kept in the bucket");
            }
        }
        if !in_bucket {
            let location = copies
                .iter()
                .find(|c| c.destination == "bucket")
                .map(|c| c.location.clone());
            if let Some(l) = location {
                assert_eq!(object_count(&place, &l).await, 0, "objects of {id} deleted");
            }
        }
    }
    // Remote objects of pruned copies are gone too.
    let total = object_count(&place, "").await;
    let per_backup = total / 2;
    assert!(
        total > 0 && total == per_backup * 2,
        "two copies remain: {total} objects"
    );
}

async fn stored_at(e: &Engine, ids: &[String], dest: &str) -> usize {
    let mut n = 0;
    for id in ids {
        n += e
            .backup_copies(id)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|c| c.destination == dest && c.status == "stored")
            .count();
    }
    n
}

async fn object_count(place: &supabackup::engine::destination::Place, rel: &str) -> usize {
    use futures_util::TryStreamExt;
    let prefix = if rel.is_empty() {
        place.prefix.clone()
    } else {
        place.path(rel)
    };
    place
        .store
        .list(Some(&prefix))
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .len()
}

#[test]
fn a_kill_during_an_upload_never_leaves_a_copy_marked_stored() {
    let src = new_project("dst_kill_src");
    src.run_sql_file_locked(APP);
    create_bucket("kill-bucket");
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let out = cli(
        d,
        &[
            "project",
            "add",
            "--name",
            "Source",
            "--ref",
            "source",
            "--db-url",
            &src.url(),
        ],
        &ENV,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(
        d,
        &[
            "destination",
            "add",
            "bucket",
            "--url",
            "s3://kill-bucket/k",
            "--endpoint",
            &s3().endpoint(),
            "--path-style",
            "--access-key-id",
            S3_KEY_ID,
        ],
        &[ENV[0], ENV[1], ("SUPABACKUP_DEST_SECRET", S3_SECRET)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(d, &["backup", "run", "Source", "--json"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = rec["id"].as_str().expect("id").to_owned();

    kill_at(d, &["backup", "copy", &id, "--to", "bucket"], "copy.upload");

    // The next start finds the upload abandoned: failed, never stored.
    let out = cli(d, &["backup", "show", &id, "--json"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let copies = show["copies"].as_array().cloned().unwrap_or_default();
    assert_eq!(copies.len(), 1, "{show}");
    assert_eq!(copies[0]["status"], "failed", "{show}");
    assert!(
        copies[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{show}"
    );
    let out = cli(d, &["verify", &id, "--destination", "bucket"], &ENV, None);
    assert!(!out.status.success(), "a failed copy does not verify");
    // The local backup is untouched and a new copy succeeds.
    let out = cli(d, &["verify", &id], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(d, &["backup", "copy", &id, "--to", "bucket"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(d, &["verify", &id, "--destination", "bucket"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn destination_add_keeps_the_secret_out_of_the_catalog_and_list_shows_no_secret() {
    create_bucket("secret-bucket");
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let out = cli(
        d,
        &[
            "destination",
            "add",
            "bucket",
            "--url",
            "s3://secret-bucket",
            "--endpoint",
            &s3().endpoint(),
            "--path-style",
            "--access-key-id",
            S3_KEY_ID,
            "--secret-stdin",
        ],
        &ENV,
        Some("a-very-distinctive-secret-value"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        crate::support::engine::files_containing(d, b"a-very-distinctive-secret-value").is_empty()
    );
    let out = cli(d, &["destination", "list", "--json"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("distinctive"));
    let out = cli(d, &["destination", "test", "bucket"], &ENV, None);
    // The secret is wrong for nothing (moto accepts any), so the test passes.
    assert!(out.status.success(), "{}", stderr(&out));
    // A malformed URL is refused clearly.
    let out = cli(
        d,
        &["destination", "add", "bad", "--url", "ftp://x/y"],
        &ENV,
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ftp"), "{}", stderr(&out));
    // A plain-HTTP endpoint off this machine is refused without --allow-http.
    let out = cli(
        d,
        &[
            "destination",
            "add",
            "far",
            "--url",
            "s3://b",
            "--endpoint",
            "http://example.com:9000",
        ],
        &ENV,
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("http"), "{}", stderr(&out));
    let out = cli(d, &["destination", "remove", "bucket", "--yes"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_migration_assistant_moves_backups_and_clones_an_environment() {
    let (src, dst) = source_and_target("migrate");
    create_bucket("migrate-bucket");
    let nas = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let run = |args: &[&str]| {
        let out = cli(d, args, &ENV, None);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    run(&[
        "project",
        "add",
        "--name",
        "Prod",
        "--ref",
        "prod",
        "--db-url",
        &src.url(),
    ]);
    run(&[
        "project",
        "add",
        "--name",
        "Staging",
        "--ref",
        "staging",
        "--db-url",
        &dst.url(),
    ]);
    run(&[
        "destination",
        "add",
        "nas",
        "--url",
        &format!("file://{}", nas.path().display()),
    ]);
    let out = cli(
        d,
        &[
            "destination",
            "add",
            "bucket",
            "--url",
            "s3://migrate-bucket/m",
            "--endpoint",
            &s3().endpoint(),
            "--path-style",
            "--access-key-id",
            S3_KEY_ID,
        ],
        &[ENV[0], ENV[1], ("SUPABACKUP_DEST_SECRET", S3_SECRET)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rec: serde_json::Value =
        serde_json::from_str(&run(&["backup", "run", "Prod", "--json"])).expect("json");
    let id = rec["id"].as_str().expect("id").to_owned();

    // Move: this machine → nas → bucket; each step verified, the old copy gone.
    run(&["backup", "move", &id, "--to", "nas"]);
    let show: serde_json::Value =
        serde_json::from_str(&run(&["backup", "show", &id, "--json"])).expect("json");
    assert_eq!(show["local_state"], "absent", "{show}");
    run(&["backup", "move", &id, "--from", "nas", "--to", "bucket"]);
    let show: serde_json::Value =
        serde_json::from_str(&run(&["backup", "show", &id, "--json"])).expect("json");
    let copies = show["copies"].as_array().cloned().unwrap_or_default();
    assert_eq!(copies.len(), 1, "{show}");
    assert_eq!(copies[0]["destination"], "bucket");
    assert_eq!(copies[0]["status"], "stored");
    assert_eq!(files_under(nas.path()), 0, "the nas copy's files are gone");
    // Moving from a place that has no copy is refused clearly.
    let out = cli(d, &["backup", "move", &id, "--to", "nas"], &ENV, None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no copy on this machine"),
        "{}",
        stderr(&out)
    );

    // Clone: preview first (nothing changes), then schema only, then all.
    let before = dst.psql("SELECT count(*) FROM pg_class WHERE relname = 'notes'");
    assert_eq!(before, "0");
    let preview = run(&["restore", "clone", "Prod", "Staging", "--preview"]);
    assert!(preview.contains("Restore preview"), "{preview}");
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_class WHERE relname = 'notes'"),
        "0"
    );
    let _roles = roles_lock();
    run(&[
        "restore",
        "clone",
        "Prod",
        "Staging",
        "--schema-only",
        "--mode",
        "new",
        "--yes",
    ]);
    assert_eq!(
        dst.psql("SELECT count(*) FROM public.notes"),
        "0",
        "schema only"
    );
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_policy WHERE polname = 'notes_owner'"),
        "1"
    );
    run(&[
        "restore", "clone", "Prod", "Staging", "--mode", "replace", "--yes",
    ]);
    drop(_roles);
    assert_same(&src, &dst, &CompareOptions::default());
    // A clone into itself is refused.
    let out = cli(
        d,
        &["restore", "clone", "Prod", "Prod", "--preview"],
        &ENV,
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("same project"), "{}", stderr(&out));
}

fn files_under(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_dr_drill_restore_tests_the_off_site_copy() {
    let src = new_project("dst_drill_src");
    src.run_sql_file_locked(APP);
    create_bucket("drill-bucket");
    let t = engine_for(&src, "Source").await;
    let e = &t.engine;
    e.add_destination(s3_input("bucket", "drill-bucket", "d"))
        .await
        .expect("bucket");
    // The scratch server as users set it: no password in the URL, the
    // password in a passfile (given to the daemon process below).
    let (scratch, passfile) = crate::support::pg::cluster().scratch(t.dir.path());
    e.set_scratch_url(&scratch).await.expect("scratch");
    let input = |drill: &str| JobInput {
        project: "Source".into(),
        name: None,
        cron: "0 3 * * *".into(),
        timezone: JobTz::Utc,
        config: JobConfig {
            store: plan(&["bucket"]),
            drill_from: Some(drill.into()),
            ..Default::default()
        },
        retention: Retention::default(),
        enabled: true,
    };
    // A drill must read a copy the job makes.
    e.add_destination(folder_input("nas", t.dir.path().join("nas").as_path()))
        .await
        .expect("nas");
    let err = e.add_job(input("nas")).await.expect_err("not copied there");
    assert!(err.message.contains("does not copy to"), "{err}");
    let job = e.add_job(input("bucket")).await.expect("job");
    let past = (Utc::now() - Days::minutes(1)).to_rfc3339();
    let id = job.id.clone();
    e.catalog()
        .with(move |c| {
            Ok(c.execute(
                "UPDATE backup_jobs SET next_run_at = ?2 WHERE id = ?1",
                [id, past],
            )?)
        })
        .expect("due");
    let run_due = || {
        let _roles = roles_lock();
        cli(
            t.dir.path(),
            &["job", "run-due", "--json"],
            &[
                ("SUPABACKUP_PASSPHRASE", crate::support::engine::PASSPHRASE),
                ("PGPASSFILE", passfile.to_str().expect("utf-8")),
            ],
            None,
        )
    };
    let out = run_due();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let jobs = e.list_jobs().await.expect("jobs");
    let j = jobs.iter().find(|j| j.id == job.id).expect("job");
    assert_eq!(
        j.last_status.as_deref(),
        Some("completed"),
        "{}",
        stdout(&out)
    );
    let list = e.list_backups(Some("Source"), 5).await.expect("list");
    assert_eq!(list.len(), 1);
    assert!(
        list[0].verified_restorable_at.is_some(),
        "the drill's restore test passed and is recorded: {:?}",
        list[0]
    );

    // A scheduled restore test of a backup kept only in the bucket reads
    // it from there.
    let off_site = e
        .add_job(JobInput {
            config: JobConfig {
                store: StorePlan {
                    destinations: vec!["bucket".into()],
                    drop_local: true,
                    failover: None,
                },
                restore_test: supabackup::engine::schedule::RestoreTestPlan {
                    every: Some(1),
                    cron: None,
                },
                ..Default::default()
            },
            ..input("bucket")
        })
        .await
        .expect("off-site job");
    let (id, past) = (
        off_site.id.clone(),
        (Utc::now() - Days::minutes(1)).to_rfc3339(),
    );
    e.catalog()
        .with(move |c| {
            Ok(c.execute(
                "UPDATE backup_jobs SET next_run_at = ?2 WHERE id = ?1",
                [id, past],
            )?)
        })
        .expect("due");
    let out = run_due();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let newest = &e.list_backups(Some("Source"), 5).await.expect("list")[0];
    assert_ne!(newest.local_state, "present", "no local copy: {newest:?}");
    assert!(
        newest.verified_restorable_at.is_some(),
        "restore-tested from the bucket: {}",
        stdout(&out)
    );
}
