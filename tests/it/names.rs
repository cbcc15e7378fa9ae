//! Names are identifiers, never patterns: odd schema and table names go
//! through filtered backups, a full backup, and scoped restores exactly.

#![allow(clippy::await_holding_lock)]

use std::sync::Arc;

use supabackup::engine::ErrorKind;
use supabackup::engine::backup::{BackupOptions, BackupRequest};
use supabackup::engine::restore::{RestoreMode, RestoreScope};
use tokio_util::sync::CancellationToken;

use crate::backup::backup;
use crate::restore_platform::{req, restore, source_and_target};
use crate::support::compare::{CompareOptions, assert_same};
use crate::support::platform::new_project;

const ODD: &str = r#"
CREATE TABLE public.orders (id int PRIMARY KEY, total int);
INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 20) g;
CREATE SCHEMA "MyApp";
CREATE TABLE "MyApp"."Users" (id int PRIMARY KEY, "Name" text);
INSERT INTO "MyApp"."Users" VALUES (1, 'Ada'), (2, 'Linus');
CREATE SCHEMA "zz|public";
CREATE TABLE "zz|public".t (id int PRIMARY KEY);
INSERT INTO "zz|public".t VALUES (1);
CREATE SCHEMA "a.b";
CREATE TABLE "a.b"."x.y" (id int PRIMARY KEY, note text);
INSERT INTO "a.b"."x.y" VALUES (1, 'dotted'), (2, 'names');
CREATE SCHEMA "Ünïcødé";
CREATE TABLE "Ünïcødé"."δοκιμή" (id int PRIMARY KEY, v text);
INSERT INTO "Ünïcødé"."δοκιμή" VALUES (1, 'ναι');
CREATE SCHEMA "it's x";
CREATE TABLE "it's x"."Tab le" (id int PRIMARY KEY, "quo""te" text);
INSERT INTO "it's x"."Tab le" VALUES (1, 'a'), (2, 'b'), (3, 'c');
"#;

fn tables_in(m: &supabackup::engine::backup::manifest::Manifest) -> Vec<String> {
    let mut v: Vec<String> = m
        .tables
        .iter()
        .map(|t| format!("{}|{}", t.schema, t.name))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_names_are_matched_exactly_in_backups_and_restores() {
    let src = new_project("names_src");
    src.run_sql_file_locked(ODD);
    let (t, dst, full) = source_and_target(&src, "names").await;
    let opts = |schemas: &[&str], exclude: &[&str]| BackupOptions {
        schemas: schemas.iter().map(|s| s.to_string()).collect(),
        exclude_tables: exclude.iter().map(|s| s.to_string()).collect(),
        encrypt: false,
        ..Default::default()
    };

    // `public` is public, not every schema matching the pattern zz|public.
    let b = backup(&t.engine, "Source", opts(&["public"], &[])).await;
    let m = t.engine.backup_manifest(&b.id).await.expect("manifest");
    assert_eq!(tables_in(&m), ["public|orders"]);
    let b = backup(&t.engine, "Source", opts(&["zz|public"], &[])).await;
    let m = t.engine.backup_manifest(&b.id).await.expect("manifest");
    assert_eq!(tables_in(&m), ["zz|public|t"]);
    // Case matters, with quotes or without.
    for name in ["MyApp", "\"MyApp\""] {
        let b = backup(&t.engine, "Source", opts(&[name], &[])).await;
        let m = t.engine.backup_manifest(&b.id).await.expect("manifest");
        assert_eq!(tables_in(&m), ["MyApp|Users"], "{name}");
    }
    let err = t
        .engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: "Source".into(),
                options: opts(&["myapp"], &[]),
                job_id: None,
                store: Default::default(),
            },
            Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect_err("no such schema");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("no schema myapp"), "{err}");
    assert!(
        err.hint.unwrap_or_default().contains("MyApp"),
        "close matches are offered"
    );
    // Dots, quotes, spaces and Unicode, quoted where needed.
    let b = backup(
        &t.engine,
        "Source",
        opts(&["\"a.b\"", "Ünïcødé", "it's x"], &["\"a.b\".\"x.y\""]),
    )
    .await;
    let m = t.engine.backup_manifest(&b.id).await.expect("manifest");
    assert_eq!(
        tables_in(&m),
        ["it's x|Tab le", "Ünïcødé|δοκιμή"],
        "a.b's rows excluded"
    );
    let err = t
        .engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: "Source".into(),
                options: opts(&[], &["a.b.x.y"]),
                job_id: None,
                store: Default::default(),
            },
            Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect_err("ambiguous");
    assert!(err.message.contains("schema.table"), "{err}");

    // The full backup restores every odd name identically.
    let rec = restore(
        &t.engine,
        req(&full, "Target", RestoreScope::default(), RestoreMode::New),
    )
    .await;
    assert_eq!(rec.status, "completed");
    assert_same(&src, &dst, &CompareOptions::default());

    // A scoped restore of one odd schema; a table-scoped restore of another's rows.
    dst.psql("DROP SCHEMA \"a.b\" CASCADE; DELETE FROM \"it's x\".\"Tab le\";");
    let scope = RestoreScope {
        schemas: vec!["\"a.b\"".into()],
        roles: false,
        ..Default::default()
    };
    restore(&t.engine, req(&full, "Target", scope, RestoreMode::New)).await;
    let scope = RestoreScope {
        tables: vec!["it's x.\"Tab le\"".into()],
        roles: false,
        schema: false,
        data: true,
        ..Default::default()
    };
    restore(&t.engine, req(&full, "Target", scope, RestoreMode::New)).await;
    assert_same(&src, &dst, &CompareOptions::default());
    let unknown = t
        .engine
        .preview_restore(&req(
            &full,
            "Target",
            RestoreScope {
                schemas: vec!["myapp".into()],
                roles: false,
                ..Default::default()
            },
            RestoreMode::New,
        ))
        .await
        .expect_err("unknown schema");
    assert!(
        unknown.hint.unwrap_or_default().contains("MyApp"),
        "{}",
        unknown.message
    );
}
