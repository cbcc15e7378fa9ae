//! The restore wizard on a real new project: a scoped replace that would
//! drop objects outside its scope is refused in the preview, and goes
//! ahead once each of them is ticked — dropping exactly those.

#![allow(clippy::await_holding_lock)]

use supabackup::ui::screen::restore::{Step, preview::accept_label};

use super::driver::Driver;
use crate::support::pg::roles_lock;
use crate::support::platform::new_project;

const APP: &str = "CREATE TYPE public.mood AS ENUM ('happy', 'sad');
CREATE FUNCTION public.deny() RETURNS boolean LANGUAGE sql STABLE AS 'SELECT false';
CREATE TABLE public.people (id int PRIMARY KEY, mood public.mood NOT NULL);
INSERT INTO public.people VALUES (1, 'happy'), (2, 'sad');
CREATE SCHEMA app;
CREATE TABLE app.t (id int PRIMARY KEY, mood public.mood, note text);
INSERT INTO app.t VALUES (1, 'happy', 'one');
CREATE TABLE app.x (id int PRIMARY KEY);
ALTER TABLE app.x ENABLE ROW LEVEL SECURITY;
CREATE POLICY deny_some ON app.x AS RESTRICTIVE FOR SELECT USING (public.deny());";

#[tokio::test(flavor = "multi_thread")]
async fn the_wizard_refuses_a_scoped_replace_until_each_dependent_is_ticked() {
    let db = new_project("gui_scope");
    db.run_sql_file_locked(APP);
    let t = crate::backup::engine_for(&db, "Shop").await;
    let rec = crate::backup::backup(&t.engine, "Shop", Default::default()).await;
    db.psql("UPDATE public.people SET mood = 'sad'");
    let mut d = Driver::boot(t.engine.clone()).await;
    // The backup dialog offers the project's real schemas and tables.
    d.click("Backups");
    d.idle().await;
    d.click("Back up now");
    d.until("the project's names", |a| {
        a.backups.dialog.as_ref().is_some_and(|x| x.names.is_some())
    })
    .await;
    d.click("app");
    d.click("app.x");
    let dialog = d.app.backups.dialog.as_ref().expect("dialog");
    assert_eq!(dialog.schemas, "app");
    assert_eq!(dialog.exclude, "app.x");
    d.click("Cancel");
    d.click("Restore");
    d.until("the backups to load", |a| a.restore.loaded).await;
    d.click("Shop");
    assert_eq!(d.app.restore.backup.as_deref(), Some(rec.id.as_str()));
    d.click("Next");
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Scope);
    // The scope pickers list the backup's own schemas.
    d.until("the backup's names", |a| a.restore.names.is_some())
        .await;
    d.click("public");
    assert_eq!(d.app.restore.schemas, "public");
    d.click("Next");
    d.click("Replace what is in scope");
    d.click("Preview");
    d.until("the preview", |a| {
        a.restore.preview.is_some() && !a.restore.previewing
    })
    .await;
    d.assert_text("refused");
    let column = accept_label("column mood of table app.t");
    let policy = accept_label("policy deny_some on table app.x");
    d.assert_text(&column);
    d.assert_text(&policy);
    // Nothing moves on while refused.
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Preview);

    d.click(&column);
    d.until("the preview again", |a| !a.restore.previewing)
        .await;
    d.assert_text("refused");
    d.click(&policy);
    d.until("the preview again", |a| !a.restore.previewing)
        .await;
    d.assert_text("ready");
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Confirm);
    d.assert_text("Also dropped, outside the scope, as you accepted: column mood of table app.t; policy deny_some on table app.x");
    let _roles = roles_lock();
    d.click("Restore now");
    d.until("the restore", |a| a.restore.step == Step::Result)
        .await;
    drop(_roles);
    assert!(
        matches!(&d.app.restore.result, Some(Ok(r)) if r.status == "completed"),
        "{:?}",
        d.app.restore.result
    );
    assert_eq!(
        db.psql("SELECT string_agg(mood::text, ',' ORDER BY id) FROM public.people"),
        "happy,sad"
    );
    assert_eq!(
        db.psql("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'app.t'::regclass AND attnum > 0 AND NOT attisdropped"),
        "id,note"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_policy WHERE polname = 'deny_some'"),
        "0"
    );
}
