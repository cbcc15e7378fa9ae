//! The restore engine: lossless full restores, selective restores, preview,
//! refusal, atomic failure, replace + rollback, cross-project, restore tests.

// The cluster-wide roles lock is held across a restore on purpose: it only
// serializes tests (each on its own runtime), which is what it is for.
#![allow(clippy::await_holding_lock)]

use std::sync::Arc;

use supabackup::engine::backup::BackupOptions;
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::restore::{RestoreMode, RestoreRequest, RestoreScope, RestoreTarget};
use supabackup::engine::{Engine, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::backup::{backup, engine_for};
use crate::support::compare::{CompareOptions, assert_same, compare, diff_snapshots, snapshot};
use crate::support::engine::{TestEngine, input};
use crate::support::pg::{TestDb, cluster, roles_lock};

fn req(
    b: &BackupRecord,
    target: RestoreTarget,
    scope: RestoreScope,
    mode: Option<RestoreMode>,
) -> RestoreRequest {
    RestoreRequest {
        backup: b.id.clone(),
        target,
        scope,
        mode,
        ..Default::default()
    }
}

async fn restore(e: &Engine, r: RestoreRequest) -> supabackup::engine::restore::RestoreRecord {
    let _roles = roles_lock();
    e.run_restore(r, Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect("restore")
}

/// A fixture source, its full backup, and a platform-only target project.
async fn setup(tag: &str) -> (TestEngine, TestDb, TestDb, BackupRecord) {
    let c = cluster();
    let src = c.create_db(&format!("rs_{tag}_src"));
    src.load_fixture();
    let dst = c.create_db(&format!("rs_{tag}_dst"));
    dst.load_platform_only();
    let t = engine_for(&src, "Source").await;
    let mut target = input("Target", &dst.url());
    target.project_ref = "target-ref".into();
    t.engine.add_project(target).await.expect("target project");
    let b = backup(&t.engine, "Source", BackupOptions::default()).await;
    (t, src, dst, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_restore_into_a_new_project_is_lossless_across_projects() {
    let (t, src, dst, b) = setup("full").await;
    let p = t
        .engine
        .preview_restore(&req(
            &b,
            RestoreTarget::Project("Target".into()),
            RestoreScope::default(),
            Some(RestoreMode::New),
        ))
        .await
        .expect("preview");
    assert!(p.allowed, "{p:?}");
    assert!(
        p.create.iter().any(|o| o == "table public.orders"),
        "{:?}",
        p.create
    );
    assert!(
        p.tables
            .iter()
            .any(|x| x.table == "public.orders" && x.rows_now.unwrap_or(0) == 0)
    );
    let rec = restore(
        &t.engine,
        req(
            &b,
            RestoreTarget::Project("Target".into()),
            RestoreScope::default(),
            Some(RestoreMode::New),
        ),
    )
    .await;
    assert_eq!(rec.status, "completed");
    assert_same(&src, &dst, &CompareOptions::default());
    let listed = t.engine.list_restores(10).await.expect("list");
    assert_eq!(listed[0].id, rec.id);
    let log = t
        .engine
        .audit_log(Some("restore.".into()), 10)
        .await
        .expect("audit");
    assert!(log.iter().any(|e| e.action == "restore.end"));
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_changes_nothing_and_a_non_empty_target_is_refused() {
    let (t, src, _dst, b) = setup("refuse").await;
    // The source itself as target: everything in scope exists.
    let over_time = CompareOptions {
        include_roles: false,
        ..Default::default()
    };
    let before = snapshot(&src, &over_time);
    let r = req(
        &b,
        RestoreTarget::Project("Source".into()),
        RestoreScope::default(),
        None,
    );
    let p = t.engine.preview_restore(&r).await.expect("preview");
    assert!(!p.allowed);
    assert!(
        p.refusal.as_deref().unwrap_or("").contains("replace"),
        "{p:?}"
    );
    assert!(
        p.tables
            .iter()
            .any(|x| x.table == "public.orders" && x.rows_now.unwrap_or(0) > 0)
    );
    let err = t
        .engine
        .run_restore(r, Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Conflict);
    let after = snapshot(&src, &over_time);
    assert!(
        diff_snapshots(&before, &after).is_empty(),
        "preview and refusal changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_failing_half_way_leaves_the_target_as_it_was() {
    let (t, _src, dst, b) = setup("atomic").await;
    let server = restore_alerts(&t.engine).await;
    // The target refuses the rows of auth.users with a trigger that fires
    // whatever the replication role: the restore fails in its data section.
    dst.psql(
        "CREATE TABLE public.keep_me (id int); INSERT INTO public.keep_me VALUES (1), (2);
         CREATE FUNCTION public.no_users() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'no new users here'; END $$;
         CREATE TRIGGER no_users BEFORE INSERT ON auth.users FOR EACH STATEMENT EXECUTE FUNCTION public.no_users();
         ALTER TABLE auth.users ENABLE ALWAYS TRIGGER no_users;",
    );
    let bare = dst;
    let over_time = CompareOptions {
        include_roles: false,
        ..Default::default()
    };
    let before = snapshot(&bare, &over_time);
    let _roles = roles_lock();
    let err = t
        .engine
        .run_restore(
            req(
                &b,
                RestoreTarget::Project("Target".into()),
                RestoreScope::default(),
                Some(RestoreMode::New),
            ),
            Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect_err("must fail");
    assert!(err.message.contains("psql stopped"), "{err}");
    assert!(err.message.contains("no new users here"), "{err}");
    let after = snapshot(&bare, &over_time);
    let diffs = diff_snapshots(&before, &after);
    assert!(
        diffs.is_empty(),
        "target changed: {}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let failed = t.engine.list_restores(1).await.expect("list")[0].clone();
    assert_eq!(failed.status, "failed");
    let alert = crate::notify::one_signed_event(&server, "restore.failed");
    assert_eq!(alert["details"]["restore_id"], failed.id.as_str());
    assert_eq!(alert["details"]["status"], "failed");
    assert_eq!(alert["project"], "Target");
    assert!(
        alert["details"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no new users here")),
        "{alert}"
    );
}

/// A webhook rule for restore and rollback outcomes, on a local server.
async fn restore_alerts(e: &Engine) -> crate::notify::HttpServer {
    let server = crate::notify::HttpServer::start(&[]);
    e.save_alert_rule(
        supabackup::engine::notify::AlertRule {
            on_failure: false,
            on_restore_failure: true,
            on_restore_success: true,
            ..crate::notify::webhook_rule(None, &server.url("/hooks"))
        },
        Some(supabackup::engine::crypto::Secret::new(
            crate::notify::WEBHOOK_SECRET,
        )),
        None,
    )
    .await
    .expect("rule");
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn selective_restores_touch_nothing_else() {
    let (t, src, dst, b) = setup("select").await;
    restore(
        &t.engine,
        req(
            &b,
            RestoreTarget::Project("Target".into()),
            RestoreScope::default(),
            Some(RestoreMode::New),
        ),
    )
    .await;
    // One table's rows: damage them, restore them, the rest is untouched.
    dst.psql("DELETE FROM public.order_items; UPDATE public.profiles SET full_name = 'changed' WHERE id = (SELECT id FROM public.profiles ORDER BY id LIMIT 1);");
    let untouched = CompareOptions::default();
    let scope = RestoreScope {
        tables: vec!["public.order_items".into()],
        roles: false,
        schema: false,
        data: true,
        ..Default::default()
    };
    let refused = t
        .engine
        .preview_restore(&req(
            &b,
            RestoreTarget::Project("Target".into()),
            scope.clone(),
            None,
        ))
        .await
        .expect("preview");
    assert!(
        refused.allowed,
        "an empty table is not a conflict: {refused:?}"
    );
    restore(
        &t.engine,
        req(&b, RestoreTarget::Project("Target".into()), scope, None),
    )
    .await;
    let diffs = compare(&src, &dst, &untouched);
    assert!(
        diffs.iter().all(|d| d.object.contains("profiles")),
        "only the untouched change remains: {diffs:?}"
    );
    assert!(
        !diffs.is_empty(),
        "the change outside the scope was left alone"
    );
    // One schema: drop it, restore it alone.
    dst.psql("DROP SCHEMA billing CASCADE;");
    let scope = RestoreScope {
        schemas: vec!["billing".into()],
        roles: false,
        ..Default::default()
    };
    restore(
        &t.engine,
        req(
            &b,
            RestoreTarget::Project("Target".into()),
            scope,
            Some(RestoreMode::New),
        ),
    )
    .await;
    let billing = CompareOptions {
        schemas: Some(vec!["billing".into()]),
        include_roles: false,
    };
    assert_same(&src, &dst, &billing);
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_then_rollback_returns_the_target_exactly() {
    let (t, src, dst, b) = setup("rollback").await;
    let server = restore_alerts(&t.engine).await;
    restore(
        &t.engine,
        req(
            &b,
            RestoreTarget::Project("Target".into()),
            RestoreScope::default(),
            Some(RestoreMode::New),
        ),
    )
    .await;
    // The target drifts from the backup. (Its materialized view is refreshed:
    // a restore brings a materialized view back by refreshing it, so a stale
    // one cannot be reproduced.)
    dst.psql(
        "DELETE FROM public.order_items WHERE ctid IN (SELECT ctid FROM public.order_items LIMIT 3);
         UPDATE public.products SET name = name || ' (edited)';
         CREATE TABLE public.scratch_notes (id int primary key, note text); INSERT INTO public.scratch_notes VALUES (1, 'x');
         ALTER TABLE public.orders DISABLE TRIGGER ALL;
         REFRESH MATERIALIZED VIEW public.product_sales_mv;",
    );
    let over_time = CompareOptions {
        include_roles: false,
        ..Default::default()
    };
    let drifted = snapshot(&dst, &over_time);
    let rec = restore(
        &t.engine,
        req(
            &b,
            RestoreTarget::Project("Target".into()),
            RestoreScope::default(),
            Some(RestoreMode::Replace),
        ),
    )
    .await;
    assert!(
        rec.snapshot_backup_id.is_some(),
        "replace takes a safety snapshot"
    );
    assert_same(&src, &dst, &CompareOptions::default());
    let _roles = roles_lock();
    let back = t
        .engine
        .rollback_restore(&rec.id, None, Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect("rollback");
    assert_eq!(back.rollback_of.as_deref(), Some(rec.id.as_str()));
    let now = snapshot(&dst, &over_time);
    let diffs = diff_snapshots(&drifted, &now);
    assert!(
        diffs.is_empty(),
        "rollback differs:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        t.engine.restore_record(&rec.id).await.expect("rec").status,
        "rolled_back"
    );
    let events: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.headers["x-supabackup-event"].clone())
        .collect();
    assert_eq!(
        events,
        [
            "restore.succeeded",
            "restore.succeeded",
            "rollback.succeeded"
        ],
        "each restore and the rollback raised its event"
    );
    let rolled = crate::notify::one_signed_event(&server, "rollback.succeeded");
    assert_eq!(rolled["details"]["restore_id"], back.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_restore_test_passes_and_names_a_table_that_does_not_match() {
    let c = cluster();
    let src = c.create_db("rs_rtest_src");
    src.load_fixture();
    let t = engine_for(&src, "Tested").await;
    let b = backup(&t.engine, "Tested", BackupOptions::default()).await;
    let scratch = Some(c.url("postgres"));
    let report = t
        .engine
        .restore_test(
            &b.id,
            scratch.clone(),
            std::sync::Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("restore test");
    assert!(report.ok, "{report:?}");
    assert!(report.tables.len() > 10);
    assert!(
        t.engine
            .backup(&b.id)
            .await
            .expect("rec")
            .verified_restorable_at
            .is_some()
    );
    assert_eq!(
        c.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                report.scratch_database
            )
        ),
        "0",
        "the scratch database was dropped"
    );

    // An edited row count in the manifest is caught and named.
    let dir = std::path::PathBuf::from(b.file_path.clone().expect("folder"));
    let path = dir.join("metadata.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let tables = m["tables"].as_array_mut().expect("tables");
    let victim = tables
        .iter_mut()
        .find(|x| x["name"] == "orders")
        .expect("orders");
    victim["rows"] = serde_json::json!(victim["rows"].as_u64().unwrap_or(0) + 1);
    std::fs::write(&path, serde_json::to_string_pretty(&m).expect("ser")).expect("write");
    let report = t
        .engine
        .restore_test(
            &b.id,
            scratch,
            std::sync::Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("restore test runs");
    assert!(!report.ok);
    assert!(
        report
            .first_failure
            .as_deref()
            .unwrap_or("")
            .contains("public.orders"),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_restore_rolls_back() {
    let c = cluster();
    let src = c.create_db("rs_cancel_src");
    src.psql("CREATE TABLE public.big AS SELECT g AS id, repeat(md5(g::text), 8) AS payload FROM generate_series(1, 200000) g;");
    let dst = c.create_db("rs_cancel_dst");
    let t = engine_for(&src, "Big").await;
    let b = backup(
        &t.engine,
        "Big",
        BackupOptions {
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let progress = Arc::new(move |p: supabackup::engine::restore::RestoreProgress| {
        if p.phase == supabackup::engine::restore::RestorePhase::Loading && p.bytes_applied > 0 {
            trigger.cancel();
        }
    });
    let scope = RestoreScope {
        roles: false,
        ..Default::default()
    };
    let err = t
        .engine
        .run_restore(
            req(
                &b,
                RestoreTarget::Url(dst.url()),
                scope,
                Some(RestoreMode::New),
            ),
            progress,
            cancel,
        )
        .await
        .expect_err("cancelled");
    assert_eq!(err.kind, ErrorKind::Cancelled);
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0",
        "nothing stayed"
    );
    assert_eq!(
        t.engine.list_restores(1).await.expect("list")[0].status,
        "cancelled"
    );
}

#[test]
fn the_cli_previews_restores_guards_production_and_runs_restore_tests() {
    use crate::support::engine::{PASSPHRASE, cli, stderr, stdout};
    let c = cluster();
    let src = c.create_db("rs_cli_src");
    src.psql("CREATE TABLE public.notes (id int primary key, body text); INSERT INTO public.notes VALUES (1, 'a'), (2, 'b');");
    let dst = c.create_db("rs_cli_dst");
    let data = tempfile::tempdir().expect("tmp");
    let env = [
        ("SUPABACKUP_PASSPHRASE", PASSPHRASE),
        ("SUPABACKUP_BACKUP_PASSPHRASE", "cli backup passphrase"),
    ];
    for (name, url, envname) in [
        ("Src", src.url(), "development"),
        ("Prod", dst.url(), "production"),
    ] {
        let out = cli(
            data.path(),
            &[
                "project",
                "add",
                "--name",
                name,
                "--ref",
                &name.to_lowercase(),
                "--db-url",
                &url,
                "--environment",
                envname,
            ],
            &env,
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = cli(data.path(), &["backup", "run", "Src", "--json"], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = rec["id"].as_str().expect("id").to_owned();

    let out = cli(
        data.path(),
        &[
            "restore",
            "preview",
            &id,
            "--to",
            "Prod",
            "--no-roles",
            "--json",
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(p["allowed"], true);
    assert!(
        p["create"].to_string().contains("table public.notes"),
        "{p}"
    );

    let out = cli(
        data.path(),
        &["restore", "run", &id, "--to", "Prod", "--no-roles"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(3), "production needs --yes");
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_class WHERE relname = 'notes'"),
        "0"
    );

    // --yes alone is not enough for production: the name must be typed.
    let out = cli(
        data.path(),
        &["restore", "run", &id, "--to", "Prod", "--no-roles", "--yes"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--confirm 'Prod'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_class WHERE relname = 'notes'"),
        "0"
    );
    let out = cli(
        data.path(),
        &[
            "restore",
            "run",
            &id,
            "--to",
            "Prod",
            "--no-roles",
            "--yes",
            "--confirm",
            "Prod",
            "--json",
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        dst.psql("SELECT string_agg(body, ',' ORDER BY id) FROM public.notes"),
        "a,b"
    );
    // Again without a mode: refused, the target holds the objects.
    let out = cli(
        data.path(),
        &[
            "restore",
            "run",
            &id,
            "--to",
            "Prod",
            "--no-roles",
            "--yes",
            "--confirm",
            "Prod",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let out = cli(data.path(), &["restore", "list", "--json"], &env, None);
    assert!(stdout(&out).contains("\"completed\""));

    let out = cli(
        data.path(),
        &[
            "verify",
            &id,
            "--restore-test",
            "--scratch-url",
            &c.url("postgres"),
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("matched its manifest"));
}
