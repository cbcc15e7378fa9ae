//! Restores that hold on real Supabase projects: every project here is
//! built from Supabase's own platform code (make_platform.sh), and every
//! restore goes into a second new project, as users do it.

#![allow(clippy::await_holding_lock)]

use std::sync::Arc;

use supabackup::engine::backup::BackupOptions;
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::restore::{RestoreMode, RestoreRequest, RestoreScope, RestoreTarget};
use supabackup::engine::{Engine, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::backup::{backup, engine_for};
use crate::support::compare::{CompareOptions, assert_same, diff_snapshots, report, snapshot};
use crate::support::engine::{TestEngine, input};
use crate::support::pg::{TestDb, roles_lock};
use crate::support::platform::new_project;

pub fn req(
    b: &BackupRecord,
    target: &str,
    scope: RestoreScope,
    mode: RestoreMode,
) -> RestoreRequest {
    RestoreRequest {
        backup: b.id.clone(),
        target: RestoreTarget::Project(target.into()),
        scope,
        mode: Some(mode),
        ..Default::default()
    }
}

pub async fn restore(e: &Engine, r: RestoreRequest) -> supabackup::engine::restore::RestoreRecord {
    let _roles = roles_lock();
    e.run_restore(r, Arc::new(|_| {}), CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e} ({:?})", e.hint))
}

/// An engine with the source and a new project "Target", and a full backup.
pub async fn source_and_target(src: &TestDb, tag: &str) -> (TestEngine, TestDb, BackupRecord) {
    let dst = new_project(&format!("rp_{tag}_dst"));
    let t = engine_for(src, "Source").await;
    let mut target = input("Target", &dst.url());
    target.project_ref = "target-ref".into();
    t.engine.add_project(target).await.expect("target project");
    let b = backup(&t.engine, "Source", BackupOptions::default()).await;
    (t, dst, b)
}

/// Backs `src` up and restores it whole into a new project: no difference.
async fn round_trip(src: &TestDb, tag: &str) -> (TestEngine, TestDb, BackupRecord) {
    let (t, dst, b) = source_and_target(src, tag).await;
    let p = t
        .engine
        .preview_restore(&req(
            &b,
            "Target",
            RestoreScope::default(),
            RestoreMode::New,
        ))
        .await
        .expect("preview");
    assert!(p.allowed, "{:?}", p.refusal);
    assert!(
        p.platform_skipped
            .iter()
            .any(|o| o == "event trigger issue_pg_net_access"),
        "a new project's event triggers are recognised: {:?}",
        p.platform_skipped
    );
    let rec = restore(
        &t.engine,
        req(&b, "Target", RestoreScope::default(), RestoreMode::New),
    )
    .await;
    assert_eq!(rec.status, "completed");
    assert_same(src, &dst, &CompareOptions::default());
    (t, dst, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_project_restores_into_another_new_project() {
    let src = new_project("rp_empty_src");
    round_trip(&src, "empty").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_application_over_the_real_platform_restores_identically() {
    let src = new_project("rp_shared_src");
    src.load_shared_app();
    let (t, dst, b) = round_trip(&src, "shared").await;
    // The user's objects in platform schemas came back.
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_trigger WHERE tgname = 'on_auth_user_created'"),
        "1"
    );
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_policy WHERE polrelid = 'storage.objects'::regclass"),
        src.psql("SELECT count(*) FROM pg_policy WHERE polrelid = 'storage.objects'::regclass")
    );
    // A restore test takes the same path and passes.
    let scratch = Some(crate::support::pg::cluster().url("postgres"));
    let r = t
        .engine
        .restore_test(
            &b.id,
            scratch,
            std::sync::Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("restore test");
    assert!(r.ok, "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_tenant_application_restores_identically() {
    let src = new_project("rp_teams_src");
    src.load_teams_app();
    let (_t, dst, _b) = round_trip(&src, "teams").await;
    // Rows came from the backup, not from triggers firing again.
    assert_eq!(
        dst.psql("SELECT count(*) FROM tenancy.workspaces"),
        src.psql("SELECT count(*) FROM tenancy.workspaces")
    );
}

pub const EDGE_CASES: &str = "
CREATE TABLE public.ledger (id int PRIMARY KEY, amount int NOT NULL, note text);
INSERT INTO public.ledger SELECT g, g - 50, 'row ' || g FROM generate_series(1, 100) g;
-- Older rows violate it: it was added NOT VALID.
ALTER TABLE public.ledger ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;
CREATE TABLE public.counters (name text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
INSERT INTO public.counters VALUES ('ledger_rows', 0), ('ledger_statements', 0);
CREATE FUNCTION public.count_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE public.counters SET n = n + (SELECT count(*) FROM new_rows) WHERE name = 'ledger_rows';
  UPDATE public.counters SET n = n + 1 WHERE name = 'ledger_statements';
  RETURN NULL;
END $$;
-- A statement trigger with a transition table that fires even in replica mode.
CREATE TRIGGER ledger_count AFTER INSERT ON public.ledger
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.count_ledger();
ALTER TABLE public.ledger ENABLE ALWAYS TRIGGER ledger_count;
INSERT INTO public.ledger SELECT g, g, 'later' FROM generate_series(101, 150) g;
-- A row trigger that fires only in replica mode, rewriting rows.
CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL, rewritten boolean NOT NULL DEFAULT false);
CREATE FUNCTION public.rewrite_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.body := upper(NEW.body); NEW.rewritten := true; RETURN NEW; END $$;
CREATE TRIGGER notes_rewrite BEFORE INSERT OR UPDATE ON public.notes
  FOR EACH ROW EXECUTE FUNCTION public.rewrite_note();
ALTER TABLE public.notes ENABLE REPLICA TRIGGER notes_rewrite;
INSERT INTO public.notes VALUES (1, 'lower case', false), (2, 'kept as is', false);
-- A disabled trigger stays disabled.
CREATE TRIGGER notes_never BEFORE DELETE ON public.notes FOR EACH ROW EXECUTE FUNCTION public.rewrite_note();
ALTER TABLE public.notes DISABLE TRIGGER notes_never;
-- Circular deferrable foreign keys.
CREATE TABLE public.chicken (id int PRIMARY KEY, egg_id int NOT NULL);
CREATE TABLE public.egg (id int PRIMARY KEY, chicken_id int NOT NULL
  REFERENCES public.chicken DEFERRABLE INITIALLY DEFERRED);
ALTER TABLE public.chicken ADD CONSTRAINT chicken_egg FOREIGN KEY (egg_id)
  REFERENCES public.egg DEFERRABLE INITIALLY DEFERRED;
INSERT INTO public.chicken VALUES (1, 1), (2, 2);
INSERT INTO public.egg VALUES (1, 1), (2, 2);
-- Materialized views over trigger-maintained columns, one over another.
CREATE MATERIALIZED VIEW public.counter_mv AS SELECT name, n FROM public.counters;
CREATE UNIQUE INDEX counter_mv_name ON public.counter_mv (name);
CREATE MATERIALIZED VIEW public.counter_total_mv AS SELECT sum(n) AS total FROM public.counter_mv;
CREATE MATERIALIZED VIEW public.notes_mv AS SELECT id, body, rewritten FROM public.notes;
CREATE MATERIALIZED VIEW public.never_filled_mv AS SELECT 1 AS one WITH NO DATA;
";

#[tokio::test(flavor = "multi_thread")]
async fn triggers_constraints_and_matviews_load_as_pg_restore_loads_them() {
    let src = new_project("rp_edge_src");
    src.run_sql_file_locked(EDGE_CASES);
    assert_eq!(
        src.psql("SELECT string_agg(n::text, ',' ORDER BY name) FROM public.counters"),
        "50,1"
    );
    let (_t, dst, _b) = round_trip(&src, "edge").await;
    assert_eq!(
        dst.psql("SELECT string_agg(n::text, ',' ORDER BY name) FROM public.counters"),
        "50,1",
        "the ALWAYS trigger did not fire while rows loaded"
    );
    assert_eq!(
        dst.psql("SELECT string_agg(body, ',' ORDER BY id) FROM public.notes"),
        "lower case,kept as is",
        "the REPLICA trigger did not rewrite rows"
    );
    assert_eq!(
        dst.psql("SELECT convalidated FROM pg_constraint WHERE conname = 'amount_positive'"),
        "f"
    );
    assert_eq!(
        dst.psql("SELECT relispopulated FROM pg_class WHERE relname = 'never_filled_mv'"),
        "f"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_replace_refuses_to_drop_what_it_does_not_own_unless_accepted() {
    let src = new_project("rp_scope_src");
    src.run_sql_file_locked(
        "CREATE TYPE public.mood AS ENUM ('happy', 'sad');
         CREATE FUNCTION public.deny() RETURNS boolean LANGUAGE sql STABLE AS 'SELECT false';
         CREATE TABLE public.people (id int PRIMARY KEY, mood public.mood NOT NULL);
         INSERT INTO public.people VALUES (1, 'happy'), (2, 'sad');
         CREATE SCHEMA app;
         CREATE TABLE app.t (id int PRIMARY KEY, mood public.mood, note text);
         INSERT INTO app.t VALUES (1, 'happy', 'one'), (2, 'sad', 'two');
         CREATE TABLE app.x (id int PRIMARY KEY);
         INSERT INTO app.x VALUES (1), (2);
         ALTER TABLE app.x ENABLE ROW LEVEL SECURITY;
         CREATE POLICY allow_all ON app.x FOR SELECT USING (true);
         -- RESTRICTIVE: dropping it would widen access.
         CREATE POLICY deny_some ON app.x AS RESTRICTIVE FOR SELECT USING (public.deny());",
    );
    let t = engine_for(&src, "Source").await;
    let b = backup(&t.engine, "Source", BackupOptions::default()).await;
    // The project drifts after the backup.
    src.psql("UPDATE public.people SET mood = 'sad'; INSERT INTO public.people VALUES (3, 'happy'); UPDATE app.t SET note = 'edited';");
    let scope = RestoreScope {
        schemas: vec!["public".into()],
        roles: false,
        ..Default::default()
    };
    let over_time = CompareOptions {
        include_roles: false,
        ..Default::default()
    };
    let before = snapshot(&src, &over_time);
    let r = req(&b, "Source", scope.clone(), RestoreMode::Replace);
    let p = t.engine.preview_restore(&r).await.expect("preview");
    assert!(!p.allowed, "{p:?}");
    let objects: Vec<&str> = p.dependents.iter().map(|d| d.object.as_str()).collect();
    assert!(
        objects.contains(&"column mood of table app.t")
            && objects.contains(&"policy deny_some on table app.x"),
        "{objects:?}"
    );
    assert!(
        !objects.iter().any(|o| o.contains("allow_all")),
        "{objects:?}"
    );
    let refusal = p.refusal.clone().unwrap_or_default();
    assert!(refusal.contains("column mood of table app.t"), "{refusal}");
    // Refused: nothing changed.
    let err = t
        .engine
        .run_restore(r.clone(), Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(diff_snapshots(&before, &snapshot(&src, &over_time)).is_empty());

    // Accepted by name: exactly those go.
    let mut accepted = r.clone();
    accepted.allow_drop = objects.iter().map(|s| s.to_string()).collect();
    let rec = restore(&t.engine, accepted).await;
    assert_eq!(rec.status, "completed");
    assert_eq!(
        src.psql("SELECT string_agg(mood::text, ',' ORDER BY id) FROM public.people"),
        "happy,sad"
    );
    assert_eq!(
        src.psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 't'"),
        "id,note"
    );
    assert_eq!(
        src.psql("SELECT string_agg(note, ',' ORDER BY id) FROM app.t"),
        "edited,edited"
    );
    assert_eq!(
        src.psql(
            "SELECT string_agg(polname, ',') FROM pg_policy WHERE polrelid = 'app.x'::regclass"
        ),
        "allow_all"
    );
    let after = snapshot(&src, &over_time);
    let changed: Vec<String> = diff_snapshots(&before, &after)
        .into_iter()
        .filter(|d| !d.object.starts_with("schema public") && !d.object.contains(" public."))
        .map(|d| d.object)
        .collect();
    assert!(
        changed
            .iter()
            .all(|o| o.contains("app.t") || o.contains("deny_some")),
        "only the accepted objects changed outside the scope: {changed:?}"
    );

    // Rollback: exactly the state before the restore.
    let _roles = roles_lock();
    let back = t
        .engine
        .rollback_restore(&rec.id, None, Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect("rollback");
    drop(_roles);
    assert_eq!(back.rollback_of.as_deref(), Some(rec.id.as_str()));
    let diffs = diff_snapshots(&before, &snapshot(&src, &over_time));
    assert!(
        diffs.is_empty(),
        "rollback differs:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = report;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollbacks_refuse_after_a_newer_restore_and_busy_urls_need_their_name() {
    let src = new_project("rp_guard_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text);
         INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 50) g;",
    );
    let (t, dst, b) = source_and_target(&src, "guard").await;
    let first = restore(
        &t.engine,
        req(&b, "Target", RestoreScope::default(), RestoreMode::New),
    )
    .await;
    let second = restore(
        &t.engine,
        req(&b, "Target", RestoreScope::default(), RestoreMode::Replace),
    )
    .await;
    let rollback = |id: String| {
        let e = t.engine.clone();
        async move {
            let _roles = roles_lock();
            e.rollback_restore(&id, None, Arc::new(|_| {}), CancellationToken::new())
                .await
        }
    };
    let err = rollback(first.id.clone())
        .await
        .expect_err("a newer restore");
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains(&second.id), "{err}");
    // Undo the newer one first; then the older one rolls back to the empty project.
    rollback(second.id.clone())
        .await
        .expect("rollback of the newer one");
    rollback(first.id.clone())
        .await
        .expect("rollback of the older one");
    assert_eq!(
        dst.psql("SELECT count(*) FROM pg_class WHERE relname = 'items'"),
        "0"
    );

    // A URL target that is not empty needs its database name typed.
    let busy = new_project("rp_guard_url");
    busy.psql("CREATE TABLE public.mine (id int)");
    let mut r = req(&b, "x", RestoreScope::default(), RestoreMode::New);
    r.target = RestoreTarget::Url(busy.url());
    let p = t.engine.preview_restore(&r).await.expect("preview");
    assert_eq!(p.confirm_name.as_deref(), Some(busy.name.as_str()));
    let _roles = roles_lock();
    let err = t
        .engine
        .run_restore(r.clone(), Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect_err("unconfirmed");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(
        err.hint.unwrap_or_default().contains("--confirm"),
        "{}",
        err.message
    );
    r.confirm = Some(busy.name.clone());
    let done = t
        .engine
        .run_restore(r, Arc::new(|_| {}), CancellationToken::new())
        .await
        .expect("confirmed");
    assert_eq!(done.status, "completed");
    assert_eq!(busy.psql("SELECT count(*) FROM public.items"), "50");
}

/// Partitions, keys and indexes of every kind, spread over sessions.
const PARALLEL_SHAPES: &str = "
CREATE SCHEMA metrics;
CREATE TABLE metrics.readings (id bigint NOT NULL, at date NOT NULL, device text NOT NULL, v numeric,
  PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE metrics.readings_2025 PARTITION OF metrics.readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE metrics.readings_2026 PARTITION OF metrics.readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX readings_device ON metrics.readings (device, at DESC);
CREATE INDEX readings_2026_v ON metrics.readings_2026 (v) WHERE v > 0.5;
INSERT INTO metrics.readings SELECT g, date '2025-01-01' + (g % 700), 'dev' || (g % 37), (g % 100) / 100.0
  FROM generate_series(1, 20000) g;
CREATE TABLE metrics.devices (name text PRIMARY KEY, serial text NOT NULL UNIQUE, meta jsonb);
INSERT INTO metrics.devices SELECT 'dev' || g, 'S-' || g, jsonb_build_object('n', g) FROM generate_series(0, 36) g;
CREATE INDEX devices_meta ON metrics.devices USING gin (meta);
CREATE INDEX devices_lower ON metrics.devices ((lower(serial)));
CREATE TABLE metrics.alerts (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, device text NOT NULL
  REFERENCES metrics.devices (name), reading_id bigint, reading_at date,
  FOREIGN KEY (reading_id, reading_at) REFERENCES metrics.readings (id, at),
  EXCLUDE USING btree (device WITH =, reading_id WITH =));
INSERT INTO metrics.alerts (device, reading_id, reading_at)
  SELECT device, id, at FROM metrics.readings WHERE id % 50 = 0;
CREATE MATERIALIZED VIEW metrics.per_device AS SELECT device, count(*) AS n FROM metrics.readings GROUP BY device;
CREATE UNIQUE INDEX per_device_key ON metrics.per_device (device);
COMMENT ON INDEX metrics.readings_device IS 'newest readings per device';
CLUSTER metrics.devices USING devices_pkey;
";

#[tokio::test(flavor = "multi_thread")]
async fn a_parallel_restore_into_a_new_project_is_identical() {
    let src = new_project("rp_par_src");
    src.load_shared_app();
    src.run_sql_file_locked(EDGE_CASES);
    src.run_sql_file_locked(PARALLEL_SHAPES);
    let (t, dst, b) = source_and_target(&src, "par").await;
    let ask = RestoreRequest {
        jobs: 4,
        ..req(&b, "Target", RestoreScope::default(), RestoreMode::New)
    };
    let p = t.engine.preview_restore(&ask).await.expect("preview");
    assert!(p.allowed, "{:?}", p.refusal);
    assert_eq!(p.jobs, 4);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("parallel load") && w.contains("partly restored")),
        "the preview says what a parallel load means: {:?}",
        p.warnings
    );
    let rec = restore(&t.engine, ask).await;
    assert_eq!((rec.status.as_str(), rec.jobs), ("completed", 4));
    assert_same(&src, &dst, &CompareOptions::default());
    assert_eq!(
        dst.psql("SELECT string_agg(n::text, ',' ORDER BY name) FROM public.counters"),
        "50,1",
        "no trigger fired while rows loaded"
    );
    // Too many connections asked: the server's free ones cap it.
    let greedy = RestoreRequest {
        jobs: 9,
        ..req(&b, "Target", RestoreScope::default(), RestoreMode::Replace)
    };
    let err = t.engine.preview_restore(&greedy).await.expect_err("9 jobs");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

/// A parallel load that fails after its schema committed says so, leaves
/// its record "partly applied", and rollback brings the target back.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_parallel_restore_is_recorded_as_partly_applied_and_rolls_back() {
    let src = new_project("rp_parfail_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 5000) g;
         CREATE INDEX items_name ON public.items (name);",
    );
    let (t, dst, b) = source_and_target(&src, "parfail").await;
    // The target refuses index builds outside replica mode: the parallel
    // load's third step (indexes) fails after its first one committed.
    dst.run_sql_file_locked(
        "CREATE FUNCTION public.no_indexes() RETURNS event_trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'index builds are frozen here'; END $$;
         CREATE EVENT TRIGGER freeze_indexes ON ddl_command_start WHEN TAG IN ('CREATE INDEX')
           EXECUTE FUNCTION public.no_indexes();",
    );
    let opts = CompareOptions {
        include_roles: false,
        ..Default::default()
    };
    let before = snapshot(&dst, &opts);
    let ask = RestoreRequest {
        jobs: 2,
        ..req(&b, "Target", RestoreScope::default(), RestoreMode::New)
    };
    let err = {
        let _roles = roles_lock();
        t.engine
            .run_restore(ask, Arc::new(|_| {}), CancellationToken::new())
            .await
            .expect_err("the index step fails")
    };
    assert!(err.message.contains("index builds are frozen"), "{err}");
    assert!(
        err.hint
            .as_deref()
            .is_some_and(|h| h.contains("partly restored")),
        "{:?}",
        err.hint
    );
    let rec = t.engine.list_restores(1).await.expect("list").remove(0);
    assert_eq!(
        (rec.status.as_str(), rec.committed, rec.jobs),
        ("failed", Some(true), 2)
    );
    assert_eq!(rec.status_label(), "failed (partly applied)");
    assert_eq!(dst.psql("SELECT count(*) FROM public.items"), "5000");
    let rolled = {
        let _roles = roles_lock();
        t.engine
            .rollback_restore(&rec.id, None, Arc::new(|_| {}), CancellationToken::new())
            .await
            .expect("rollback of a partly applied restore")
    };
    assert_eq!(rolled.status, "completed");
    let back = snapshot(&dst, &opts);
    let d = diff_snapshots(&before, &back);
    assert!(d.is_empty(), "rollback differs: {}", report(&dst, &dst, &d));
}
