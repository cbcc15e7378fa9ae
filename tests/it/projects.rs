//! Project management through the engine: add/edit/remove, sealing,
//! import/export round trips and bad files.

use std::io::Write;

use supabackup::engine::crypto::Secret;
use supabackup::engine::transfer::{ExportOptions, ImportOptions};
use supabackup::engine::{ErrorKind, ProjectPatch};

use crate::support::engine::{PASSPHRASE, engine, files_containing, input, unlocked_engine};

const URL: &str =
    "postgresql://postgres:S3cretDbPass@db.abcdefghijklmnopqrst.supabase.co:5432/postgres";

#[tokio::test(flavor = "multi_thread")]
async fn add_edit_remove_and_the_password_stays_sealed() {
    let t = unlocked_engine().await;
    let p = t.engine.add_project(input("Shop", URL)).await.expect("add");
    assert!(p.has_db_password);
    assert!(!p.db_url.contains("S3cretDbPass"));
    assert!(p.display_url().contains("postgres:****@"));
    let info = t.engine.connection_info(&p).await.expect("info");
    assert_eq!(
        info.password.as_ref().map(Secret::expose),
        Some("S3cretDbPass")
    );

    let err = t
        .engine
        .add_project(input("shop", URL))
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind, ErrorKind::Conflict);

    let edited = t
        .engine
        .edit_project(
            "Shop",
            ProjectPatch {
                environment: Some("production".into()),
                db_password: Some(Secret::new("N3wPass")),
                db_url: Some(
                    "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres"
                        .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .expect("edit");
    assert_eq!(edited.environment.as_str(), "production");
    assert_eq!(edited.slug, p.slug, "the backup folder does not move");
    let info = t.engine.connection_info(&edited).await.expect("info");
    assert_eq!(info.password.as_ref().map(Secret::expose), Some("N3wPass"));

    let log = t
        .engine
        .audit_log(Some("project.".into()), 10)
        .await
        .expect("audit");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["project.edit", "project.add"]);
    assert!(log.iter().all(|e| !e.details.to_string().contains("Pass")));

    t.engine.remove_project("Shop").await.expect("remove");
    assert!(t.engine.list_projects().await.expect("list").is_empty());
    let err = t.engine.project("Shop").await.expect_err("gone");
    assert_eq!(err.kind, ErrorKind::NotFound);

    assert!(files_containing(t.dir.path(), b"S3cretDbPass").is_empty());
    assert!(files_containing(t.dir.path(), b"N3wPass").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_vault_refuses_to_store_a_password_and_unlocks_only_with_the_right_passphrase() {
    let t = engine().await;
    let err = t
        .engine
        .add_project(input("A", URL))
        .await
        .expect_err("locked");
    assert_eq!(err.kind, ErrorKind::Auth);
    t.engine
        .setup_vault(Some(Secret::new(PASSPHRASE)))
        .await
        .expect("setup");
    t.engine.add_project(input("A", URL)).await.expect("add");
    t.engine.lock();
    let err = t
        .engine
        .unlock(Some(Secret::new("not the passphrase")))
        .await
        .expect_err("wrong");
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("wrong master passphrase"));
    assert!(!t.engine.is_unlocked());
    t.engine
        .unlock(Some(Secret::new(PASSPHRASE)))
        .await
        .expect("right");
    t.engine
        .change_passphrase(Secret::new("another passphrase"))
        .await
        .expect("change");
    t.engine.lock();
    t.engine
        .unlock(Some(Secret::new("another passphrase")))
        .await
        .expect("new one works");
    let p = t.engine.project("A").await.expect("project");
    let info = t.engine.connection_info(&p).await.expect("still opens");
    assert_eq!(
        info.password.as_ref().map(Secret::expose),
        Some("S3cretDbPass")
    );
}

async fn seeded() -> crate::support::engine::TestEngine {
    let t = unlocked_engine().await;
    let mut a = input("Alpha, \"quoted\"", URL);
    a.environment = "production".into();
    a.organization_id = Some("7f1b6a3e-1d2c-4b5a-9e8f-0a1b2c3d4e5f".into());
    a.description = Some("line one\nline two".into());
    a.service_role_key = Some(Secret::new("srk-VALUE-123"));
    t.engine.add_project(a).await.expect("a");
    let mut b = input(
        "Beta",
        "postgresql://reader@localhost:6000/app?sslmode=verify-full&connect_timeout=5",
    );
    b.project_ref = "beta-ref".into();
    t.engine.add_project(b).await.expect("b");
    t
}

async fn round_trip(ext: &str) {
    let src = seeded().await;
    let file = src.dir.path().join(format!("exports/all.{ext}"));
    let summary = src
        .engine
        .export_projects(
            &file,
            ExportOptions {
                secrets_passphrase: Some(Secret::new("export passphrase")),
            },
        )
        .await
        .expect("export");
    assert_eq!(summary.projects, 2);
    let text = std::fs::read_to_string(&file).expect("read export");
    assert!(
        !text.contains("S3cretDbPass") && !text.contains("srk-VALUE-123"),
        "secrets are encrypted"
    );
    assert!(text.contains("enc:v1:"));

    let dst = unlocked_engine().await;
    // Without the passphrase the encrypted rows are rejected, nothing is written.
    let report = dst
        .engine
        .import_projects(&file, ImportOptions::default())
        .await
        .expect("report");
    assert!(!report.applied);
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert!(report.rejected[0].reason.contains("passphrase"));
    let wrong = ImportOptions {
        secrets_passphrase: Some(Secret::new("wrong passphrase")),
        ..Default::default()
    };
    let report = dst
        .engine
        .import_projects(&file, wrong)
        .await
        .expect("report");
    assert!(
        report.rejected[0].reason.contains("wrong passphrase"),
        "{:?}",
        report.rejected
    );
    assert!(dst.engine.list_projects().await.expect("list").is_empty());

    let right = ImportOptions {
        secrets_passphrase: Some(Secret::new("export passphrase")),
        ..Default::default()
    };
    let report = dst
        .engine
        .import_projects(&file, right)
        .await
        .expect("import");
    assert!(report.applied && report.rejected.is_empty(), "{report:?}");
    let before = src.engine.list_projects().await.expect("src");
    let after = dst.engine.list_projects().await.expect("dst");
    let key = |p: &supabackup::engine::project::Project| {
        (
            p.name.clone(),
            p.project_ref.clone(),
            p.db_url.clone(),
            p.environment,
            p.organization_id.clone(),
            p.description.clone(),
            p.has_db_password,
        )
    };
    assert_eq!(
        before.iter().map(key).collect::<Vec<_>>(),
        after.iter().map(key).collect::<Vec<_>>()
    );
    let alpha = dst
        .engine
        .project("Alpha, \"quoted\"")
        .await
        .expect("alpha");
    let info = dst.engine.connection_info(&alpha).await.expect("info");
    assert_eq!(
        info.password.as_ref().map(Secret::expose),
        Some("S3cretDbPass")
    );
    assert_eq!(
        dst.engine
            .project_secret_kinds(&alpha.id)
            .await
            .expect("kinds"),
        ["db_password", "service_role_key"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_round_trip_with_encrypted_secrets() {
    round_trip("json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_round_trip_with_encrypted_secrets() {
    round_trip("csv").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_without_secrets_leaves_them_out() {
    let t = seeded().await;
    let file = t.dir.path().join("plain.json");
    let s = t
        .engine
        .export_projects(&file, ExportOptions::default())
        .await
        .expect("export");
    assert!(!s.secrets_included);
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(!text.contains("S3cretDbPass") && !text.contains("enc:v1:") && !text.contains("srk-"));
    assert!(text.contains("\"format\": \"supabackup.projects\""));
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_are_reported_by_line_and_partial_import_needs_consent() {
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Existing", "postgresql://u@h/db"))
        .await
        .expect("existing");
    let csv = "name,project_ref,db_url,environment\n\
               Good One,good-ref,postgresql://u@h1/db,production\n\
               Bad Ref,BAD_REF,postgresql://u@h2/db,staging\n\
               Existing,ex-ref,postgresql://u@h3/db,development\n\
               Bad Url,ok-ref,mysql://nope,development\n\
               good one,dup-ref,postgresql://u@h4/db,development\n\
               Good Two,good-two,postgresql://u:pw2@h5/db,qa\n\
               Good Three,good-three,postgresql://u:pw3@h6/db,staging\n";
    let file = write(t.dir.path(), "in.csv", csv);
    let report = t
        .engine
        .import_projects(&file, ImportOptions::default())
        .await
        .expect("report");
    assert!(!report.applied);
    let lines: Vec<usize> = report.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7], "{:?}", report.rejected);
    assert!(report.rejected[0].reason.contains("project_ref"));
    assert!(report.rejected[1].reason.contains("already exists"));
    assert!(report.rejected[2].reason.contains("db_url"));
    assert!(report.rejected[3].reason.contains("more than once"));
    assert!(report.rejected[4].reason.contains("environment"));
    assert_eq!(report.valid, ["Good One", "Good Three"]);
    assert_eq!(
        t.engine.list_projects().await.expect("list").len(),
        1,
        "nothing written"
    );

    let partial = ImportOptions {
        accept_partial: true,
        ..Default::default()
    };
    let report = t
        .engine
        .import_projects(&file, partial)
        .await
        .expect("partial");
    assert!(report.applied);
    let names: Vec<String> = t
        .engine
        .list_projects()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Existing", "Good One", "Good Three"]);
    let three = t.engine.project("Good Three").await.expect("three");
    assert!(three.has_db_password && !three.db_url.contains("pw3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_rows_report_their_line_and_malformed_files_are_one_clear_error() {
    let t = unlocked_engine().await;
    let json = r#"{
  "format": "supabackup.projects",
  "version": 1,
  "projects": [
    {"name": "Fine", "project_ref": "fine", "db_url": "postgresql://u@h/db"},
    {
      "name": "Typo",
      "project_ref": "typo",
      "db_urll": "postgresql://u@h/db"
    }
  ]
}"#;
    let file = write(t.dir.path(), "in.json", json);
    let report = t
        .engine
        .import_projects(&file, ImportOptions::default())
        .await
        .expect("report");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].line, 6);
    assert!(
        report.rejected[0].reason.contains("db_urll"),
        "{:?}",
        report.rejected
    );

    let broken = write(
        t.dir.path(),
        "broken.json",
        "{\"format\": \"supabackup.projects\", \"projects\": [\n{,}]}",
    );
    let err = t
        .engine
        .import_projects(&broken, ImportOptions::default())
        .await
        .expect_err("malformed");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("line 2"), "{err}");

    let other = write(
        t.dir.path(),
        "other.json",
        "{\"format\": \"something-else\", \"version\": 1, \"projects\": []}",
    );
    let err = t
        .engine
        .import_projects(&other, ImportOptions::default())
        .await
        .expect_err("wrong format");
    assert!(
        err.message.contains("not a supabackup project export"),
        "{err}"
    );

    let bad_csv = write(t.dir.path(), "bad.csv", "nom,ref\nx,y\n");
    let err = t
        .engine
        .import_projects(&bad_csv, ImportOptions::default())
        .await
        .expect_err("bad header");
    assert!(err.message.contains("unknown CSV column 'nom'"), "{err}");

    let txt = write(t.dir.path(), "projects.txt", "");
    let err = t
        .engine
        .import_projects(&txt, ImportOptions::default())
        .await
        .expect_err("extension");
    assert!(err.message.contains(".json or .csv"), "{err}");
    assert!(t.engine.list_projects().await.expect("list").is_empty());
}
