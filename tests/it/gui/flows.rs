//! User flows through the simulator, with the real engine underneath.

use iced::keyboard::key::Named;
use supabackup::engine::crypto::Secret;
use supabackup::ui::screen::project_form::Field;
use supabackup::ui::screen::{Tab, unlock};

use super::driver::Driver;
use crate::support::engine::{PASSPHRASE, engine, input, unlocked_engine};
use crate::support::pg::cluster;

#[tokio::test(flavor = "multi_thread")]
async fn unlocking_with_a_wrong_then_the_right_passphrase() {
    let t = engine().await;
    t.engine
        .setup_vault(Some(Secret::new(PASSPHRASE)))
        .await
        .expect("vault");
    t.engine.lock();
    let mut d = Driver::boot(t.engine.clone()).await;
    assert!(d.app.is_locked(), "a locked vault shows the unlock screen");
    assert_eq!(d.app.title(), "supabackup — locked");
    d.assert_text("Unlock supabackup");

    d.type_and_press(unlock::PASSPHRASE_ID, "not the passphrase", Named::Enter);
    d.until("the wrong passphrase to be refused", |a| {
        a.unlock_screen()
            .is_some_and(|u| !u.busy && u.error.is_some())
    })
    .await;
    assert!(d.app.is_locked());
    d.assert_text("wrong master passphrase");
    assert!(!t.engine.is_unlocked());

    d.type_into(unlock::PASSPHRASE_ID, PASSPHRASE);
    d.click("Unlock");
    d.until("the vault to open", |a| a.is_ready()).await;
    assert!(t.engine.is_unlocked());
    d.idle().await;
    d.assert_text("Dashboard");
    d.assert_text("No projects yet");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_creates_the_vault() {
    let t = engine().await;
    let mut d = Driver::boot(t.engine.clone()).await;
    d.assert_text("Create your vault");
    d.type_into(unlock::PASSPHRASE_ID, "a new passphrase");
    d.type_and_press(unlock::CONFIRM_ID, "a new passphrase", Named::Enter);
    d.until("the vault to be created", |a| a.is_ready()).await;
    assert!(t.engine.vault_status().await.expect("status").initialized);
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_a_project_with_an_invalid_then_a_valid_ref() {
    let t = unlocked_engine().await;
    let mut d = Driver::boot(t.engine.clone()).await;
    assert!(d.app.is_ready());
    d.click("Projects");
    d.idle().await;
    assert_eq!(d.app.tab, Tab::Projects);
    d.assert_text("No projects yet");
    d.click("Add your first project");
    d.idle().await;
    d.assert_text("Add a project");

    d.type_into(Field::Name.id(), "Shop");
    d.type_into(Field::Ref.id(), "Shop_Prod");
    d.assert_text(
        "the project ref may contain only lower-case letters, digits and '-' (found 'S')",
    );
    // Nothing else complains yet: the URL was not touched.
    assert!(!d.has_text("a connection URL is required"));

    d.press_in(Field::Ref.id(), Named::Backspace, "Shop_Prod".len());
    d.type_into(Field::Ref.id(), "abcdefghijklmnopqrst");
    assert!(!d.has_text(
        "the project ref may contain only lower-case letters, digits and '-' (found 'S')"
    ));
    d.type_into(
        Field::Url.id(),
        "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres",
    );
    d.type_and_press(Field::Password.id(), "s3cret", Named::Enter);
    d.until("the project to be saved", |a| a.projects.form.is_none())
        .await;
    d.idle().await;
    d.assert_text("Added project Shop");
    let list = t.engine.list_projects().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].project_ref, "abcdefghijklmnopqrst");
    assert!(list[0].has_db_password, "the password went to the vault");
    // The list shows it under its environment.
    d.assert_text("Shop");
    d.assert_text("development");
}

#[tokio::test(flavor = "multi_thread")]
async fn backing_up_shows_progress_then_completion() {
    let db = cluster().create_db("gui_backup");
    db.load_fixture();
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Shop", &db.url()))
        .await
        .expect("project");
    t.engine
        .set_backup_passphrase(Secret::new("gui backup passphrase"))
        .await
        .expect("backup passphrase");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Backups");
    d.idle().await;
    d.assert_text("No backups yet");
    d.click("Back up now");
    d.until("the dialog to load", |a| {
        a.backups.dialog.as_ref().is_some_and(|x| !x.loading)
    })
    .await;
    d.assert_text("Start backup");
    assert_eq!(
        d.app
            .backups
            .dialog
            .as_ref()
            .and_then(|x| x.project.as_ref())
            .map(|p| p.name.clone()),
        Some("Shop".to_owned()),
        "the only project is preselected"
    );
    d.click("Start backup");
    assert_eq!(d.app.jobs.len(), 1, "the job started");
    assert!(
        d.app.title().starts_with("supabackup — backing up Shop"),
        "{}",
        d.app.title()
    );

    d.until("a progress report", |a| {
        a.jobs.first().is_some_and(|j| j.progress.is_some())
    })
    .await;
    // The running job shows with its phase and a Cancel button.
    d.assert_text("Shop · full backup");
    d.assert_text("Cancel");

    d.until("the backup to finish", |a| a.jobs.is_empty()).await;
    d.idle().await;
    let list = t.engine.list_backups(None, 10).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, "completed", "{:?}", list[0].error_message);
    let size = supabackup::ui::format::bytes(list[0].file_size.unwrap_or(0));
    d.assert_text(&format!("Backup of Shop completed ({size})"));
    assert_eq!(d.app.backups.rows.len(), 1, "the list reloaded");
    assert_eq!(d.app.backups.selected.as_deref(), Some(list[0].id.as_str()));
    assert_eq!(d.app.title(), "supabackup — Backups");
    // Failure notifications are on by default, success ones off.
    assert!(d.platform.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_backup_marks_it_cancelled() {
    let db = cluster().create_db("gui_cancel");
    db.load_fixture();
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Shop", &db.url()))
        .await
        .expect("project");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Backups");
    d.idle().await;
    d.click("Back up now");
    d.until("the dialog to load", |a| {
        a.backups.dialog.as_ref().is_some_and(|x| !x.loading)
    })
    .await;
    // No backup passphrase: turn encryption off instead.
    if let Some(dialog) = &mut d.app.backups.dialog {
        dialog.encrypt = false;
    }
    d.click("Start backup");
    assert_eq!(d.app.jobs.len(), 1);
    let id = d.app.jobs[0].id;
    d.send(supabackup::ui::app::Message::CancelJob(id));
    assert!(d.app.jobs[0].cancelling);
    d.until("the job to end", |a| a.jobs.is_empty()).await;
    d.idle().await;
    let list = t.engine.list_backups(None, 10).await.expect("list");
    // The backup may have won the race on a fast machine.
    assert!(
        matches!(list[0].status.as_str(), "cancelled" | "completed"),
        "{}",
        list[0].status
    );
    if list[0].status == "cancelled" {
        d.assert_text("Backup of Shop cancelled");
    }
}

#[test]
fn the_simulator_renders_with_tiny_skia() {
    // Set by .cargo/config.toml for every `cargo test`; no GPU is needed.
    let backend = std::env::var("ICED_TEST_BACKEND").unwrap_or_default();
    assert!(
        matches!(backend.as_str(), "tiny-skia" | "tiny_skia"),
        "ICED_TEST_BACKEND={backend:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn walking_the_restore_wizard_to_the_preview_and_back() {
    use supabackup::ui::screen::restore::Step;
    let db = cluster().create_db("gui_restore");
    db.load_fixture();
    let t = crate::backup::engine_for(&db, "Shop").await;
    let rec = crate::backup::backup(&t.engine, "Shop", Default::default()).await;
    let mut d = Driver::boot(t.engine.clone()).await;

    d.click("Restore");
    d.until("the backups to load", |a| a.restore.loaded).await;
    assert_eq!(d.app.restore.step, Step::Backup);
    d.assert_text("Which backup?");
    d.click("Next");
    d.assert_text("choose a backup to restore");
    d.click("Shop");
    assert_eq!(d.app.restore.backup.as_deref(), Some(rec.id.as_str()));
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Target);
    d.assert_text("The same project (Shop)");
    d.click("A database URL");
    assert_eq!(
        d.app.restore.target_kind,
        supabackup::ui::screen::restore::TargetKind::Url
    );
    d.click("The same project (Shop)");
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Scope);
    d.assert_text("What to restore");
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Mode);
    d.click("Replace what is in scope");
    assert_eq!(
        d.app.restore.mode,
        supabackup::engine::restore::RestoreMode::Replace
    );
    d.click("Preview");
    assert_eq!(d.app.restore.step, Step::Preview);
    d.until("the preview", |a| a.restore.preview.is_some())
        .await;
    let preview = match d.app.restore.preview.clone() {
        Some(Ok(p)) => p,
        other => panic!("the preview failed: {other:?}"),
    };
    assert!(preview.allowed, "{:?}", preview.refusal);
    assert!(preview.snapshot, "replacing takes a safety snapshot");
    assert!(
        !preview.replace.is_empty(),
        "the same database: objects are replaced"
    );
    d.assert_text("ready");
    d.assert_text(&format!("Replaced ({})", preview.replace.len()));
    d.assert_text("yes, taken first (rollback possible)");
    // Nothing changed: a dry run.
    assert!(
        t.engine
            .list_restores(10)
            .await
            .expect("restores")
            .is_empty()
    );

    d.click("Back");
    assert_eq!(d.app.restore.step, Step::Mode);
    assert!(d.app.restore.preview.is_none());
    d.assert_text("If the target already has these objects");
    d.click("Back");
    assert_eq!(d.app.restore.step, Step::Scope);
    d.click("Back");
    d.click("Back");
    assert_eq!(d.app.restore.step, Step::Backup);
    d.assert_text("Which backup?");
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_schedule_with_an_invalid_then_a_valid_cron() {
    use supabackup::engine::schedule::JobTz;
    use supabackup::ui::screen::schedules::{self, CRON_ID, next_runs, run_time};
    let t = unlocked_engine().await;
    t.engine
        .add_project(input(
            "Shop",
            "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres",
        ))
        .await
        .expect("project");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Schedules");
    d.idle().await;
    d.assert_text("No schedules");
    d.click("New schedule");
    d.assert_text("New schedule");
    let prefilled = d
        .app
        .schedules
        .form
        .as_ref()
        .map(|f| f.cron.clone())
        .expect("form");

    d.press_in(CRON_ID, Named::Backspace, prefilled.len());
    d.type_into(CRON_ID, "*/5 * *");
    let now = chrono::Utc::now();
    let error = next_runs("*/5 * *", JobTz::Local, now, 5).expect_err("invalid");
    d.assert_text(&error);
    assert!(error.contains("3 fields"), "{error}");

    d.press_in(CRON_ID, Named::Backspace, "*/5 * *".len());
    d.type_into(CRON_ID, "30 2 * * *");
    assert!(!d.has_text(&error));
    let runs = next_runs("30 2 * * *", JobTz::Local, chrono::Utc::now(), 5).expect("valid");
    for r in &runs {
        d.assert_text(&run_time(*r, JobTz::Local));
    }
    // Scheduled restore tests: every 3rd backup, and Sundays at 04:00.
    d.scroll_and_type_into(schedules::RESTORE_EVERY_ID, "3");
    d.scroll_and_type_into(schedules::RESTORE_CRON_ID, "0 4 * * 0");
    d.click("Create schedule");
    d.until("the schedule to be saved", |a| a.schedules.form.is_none())
        .await;
    d.idle().await;
    let jobs = t.engine.list_jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].cron, "30 2 * * *");
    assert!(jobs[0].enabled && jobs[0].next_run_at.is_some());
    assert_eq!(jobs[0].retention.keep_last, Some(14));
    assert_eq!(jobs[0].config.restore_test.every, Some(3));
    assert_eq!(
        jobs[0].config.restore_test.cron.as_deref(),
        Some("0 4 * * 0")
    );
    d.assert_text(&format!("Created the schedule “{}”", jobs[0].name));
    d.assert_text("30 2 * * *");
    d.assert_text(
        "full backup · keep last 14 · restore test after every 3 backups and on '0 4 * * 0' · last run",
    );
    // Disable it from the list.
    let id = jobs[0].id.clone();
    d.send(supabackup::ui::app::Message::Schedules(
        schedules::Message::Toggle(id, false),
    ));
    d.until("the toggle", |a| a.schedules.busy.is_empty()).await;
    assert!(!t.engine.list_jobs().await.expect("jobs")[0].enabled);
}

#[tokio::test(flavor = "multi_thread")]
async fn restoring_one_table_then_rolling_it_back() {
    use supabackup::engine::restore::RestoreMode;
    use supabackup::ui::app::Message as M;
    use supabackup::ui::screen::restore::{Message as R, Step};
    let db = cluster().create_db("gui_rollback");
    db.load_fixture();
    let t = crate::backup::engine_for(&db, "Shop").await;
    let rec = crate::backup::backup(&t.engine, "Shop", Default::default()).await;
    let count = || db.psql("SELECT count(*) FROM public.order_items");
    let full = count();
    db.psql("DELETE FROM public.order_items WHERE ctid IN (SELECT ctid FROM public.order_items LIMIT 1)");
    let damaged = count();
    assert_ne!(full, damaged);

    let mut d = Driver::boot(t.engine.clone()).await;
    d.send(M::Navigate(Tab::Restore));
    d.until("the backups", |a| a.restore.loaded).await;
    for m in [
        R::PickBackup(rec.id.clone()),
        R::Next,
        R::Next,
        R::Roles(false),
        R::Schema(false),
        R::Tables("public.order_items".into()),
        R::Next,
        R::Mode(RestoreMode::Replace),
        R::Next,
    ] {
        d.send(M::Restore(m));
    }
    d.until("the preview", |a| a.restore.preview.is_some())
        .await;
    assert!(
        matches!(&d.app.restore.preview, Some(Ok(p)) if p.allowed),
        "{:?}",
        d.app.restore.preview
    );
    d.click("Next");
    assert_eq!(d.app.restore.step, Step::Confirm);
    assert!(
        !d.app.restore.needs_typed_confirmation(),
        "a staging target"
    );
    d.click("Restore now");
    assert_eq!(d.app.restore.step, Step::Progress);
    assert!(
        d.app.title().contains("restoring Shop"),
        "{}",
        d.app.title()
    );
    d.until("the restore to end", |a| a.restore.running.is_none())
        .await;
    d.idle().await;
    assert!(
        matches!(&d.app.restore.result, Some(Ok(_))),
        "{:?}",
        d.app.restore.result
    );
    d.assert_text("Restore completed");
    assert_eq!(count(), full, "the rows are back");

    d.click("Roll back this restore");
    d.until("the rollback to end", |a| a.restore.running.is_none())
        .await;
    d.idle().await;
    assert!(
        matches!(&d.app.restore.result, Some(Ok(_))),
        "{:?}",
        d.app.restore.result
    );
    d.assert_text("Rolled back");
    assert_eq!(
        count(),
        damaged,
        "the rollback put the table back as it was"
    );
    let restores = t.engine.list_restores(10).await.expect("restores");
    assert!(
        restores.iter().any(|r| r.status == "rolled_back"),
        "{restores:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_runs_due_scheduled_jobs() {
    use supabackup::engine::schedule::{JobConfig, JobInput, JobTz, Retention};
    use supabackup::ui::app::Message as M;
    let db = cluster().create_db("gui_sched");
    db.load_fixture();
    let t = crate::backup::engine_for(&db, "Shop").await;
    let job = t
        .engine
        .add_job(JobInput {
            project: "Shop".into(),
            name: Some("nightly".into()),
            cron: "0 3 * * *".into(),
            timezone: JobTz::Utc,
            config: JobConfig::default(),
            retention: Retention::default(),
            enabled: true,
        })
        .await
        .expect("job");
    // Due a minute ago.
    let due = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let id = job.id.clone();
    t.engine
        .catalog()
        .call(move |c| {
            c.execute(
                "UPDATE backup_jobs SET next_run_at = ?2 WHERE id = ?1",
                [&id, &due],
            )?;
            Ok(())
        })
        .await
        .expect("make due");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.send(M::SchedulerTick);
    d.until("the tick", |a| a.schedule_leader.is_some()).await;
    assert_eq!(d.app.schedule_leader, Some(true));
    d.until("the scheduled backup", |a| {
        a.notices.iter().any(|n| {
            n.title.contains("scheduled backup completed")
                || n.title.contains("scheduled backup failed")
        })
    })
    .await;
    let backups = t.engine.list_backups(None, 10).await.expect("backups");
    assert_eq!(backups.len(), 1);
    assert_eq!(
        backups[0].status, "completed",
        "{:?}",
        backups[0].error_message
    );
    assert_eq!(backups[0].job_id.as_deref(), Some(job.id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_certificate_picked_in_the_form_makes_the_server_verified() {
    let c = cluster();
    let db = c.create_db("gui_ca");
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Unverified", &db.url()))
        .await
        .expect("project");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.assert_text("server not verified");
    d.click("Projects");
    d.idle().await;
    d.click("Add project");
    d.idle().await;
    d.type_into(Field::Name.id(), "Verified");
    d.type_into(Field::Ref.id(), "abcdefghijklmnopqrst");
    d.type_into(Field::Url.id(), &db.url());
    d.assert_text("none: the connection is encrypted but the server is NOT verified");
    // A file that is no certificate: a clear error, nothing kept.
    let junk = t.dir.path().join("junk.crt");
    std::fs::write(&junk, "hello\n").expect("write");
    d.platform.answer_pick(Some(&junk));
    d.click("Browse…");
    d.until("the file to be read", |a| {
        a.projects
            .form
            .as_ref()
            .is_some_and(|f| f.ca_error.is_some())
    })
    .await;
    let shown = d
        .app
        .projects
        .form
        .as_ref()
        .and_then(|f| f.ca_error.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(shown.contains("no certificate found"), "{shown}");
    d.assert_text(&shown);
    d.platform.answer_pick(Some(&c.ca_cert()));
    d.click("Browse…");
    d.until("the certificate to load", |a| {
        a.projects
            .form
            .as_ref()
            .is_some_and(|f| f.ca_cert.is_some())
    })
    .await;
    d.assert_text("loaded: connections will verify the server (verify-full)");
    d.click("Test connection");
    d.until("the test to finish", |a| {
        a.projects
            .form
            .as_ref()
            .is_some_and(|f| f.test.is_some() && !f.testing)
    })
    .await;
    assert!(
        d.has_text("TLS TLSv1.3 — TLS verified (certificate and host name)"),
        "{:?}",
        d.app.projects.form.as_ref().map(|f| &f.test)
    );
    d.type_and_press(Field::Description.id(), "verified", Named::Enter);
    d.until("the project to be saved", |a| a.projects.form.is_none())
        .await;
    let p = t.engine.project("Verified").await.expect("saved");
    assert!(p.ca_cert.is_some() && p.tls_verification().0);
    let other = t.engine.project("Unverified").await.expect("other");
    assert!(!other.tls_verification().0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_added_in_settings_takes_a_copy_from_the_backup_dialog() {
    use supabackup::ui::app::Message as M;
    use supabackup::ui::screen::destinations::Message as D;
    use supabackup::ui::screen::settings::Message as S;
    let db = cluster().create_db("gui_dest");
    db.load_fixture();
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Shop", &db.url()))
        .await
        .expect("project");
    t.engine
        .set_backup_passphrase(Secret::new("gui backup passphrase"))
        .await
        .expect("backup passphrase");
    let nas = tempfile::tempdir().expect("tempdir");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Settings");
    d.idle().await;
    d.assert_text(
        "No destinations yet: every backup lives only in the data folder on this machine.",
    );
    d.send(M::Settings(S::Destinations(D::Name("nas".into()))));
    d.send(M::Settings(S::Destinations(D::Url(format!(
        "file://{}",
        nas.path().display()
    )))));
    d.click("Add");
    d.until("the destination to be added", |a| {
        !a.settings.destinations.list.is_empty()
    })
    .await;
    d.idle().await;
    d.click("Test");
    d.until("the test", |a| {
        a.settings.destinations.test_result("nas").is_some()
    })
    .await;
    d.idle().await;
    assert!(
        matches!(d.app.settings.destinations.test_result("nas"), Some(Ok(r)) if r.ok),
        "{:?}",
        d.app.settings.destinations.tests
    );

    d.click("Backups");
    d.idle().await;
    d.click("Back up now");
    d.until("the dialog to load", |a| {
        a.backups
            .dialog
            .as_ref()
            .is_some_and(|x| !x.loading && !x.destinations.is_empty())
    })
    .await;
    d.assert_text("Copy to");
    d.click("nas");
    let dialog = d.app.backups.dialog.as_ref().expect("dialog");
    assert_eq!(dialog.copy_to, ["nas"]);
    assert!(dialog.keep_local, "the local copy stays by default");
    d.click("Start backup");
    d.until("the backup to finish", |a| a.jobs.is_empty()).await;
    d.idle().await;
    let list = t.engine.list_backups(None, 10).await.expect("list");
    assert_eq!(list[0].status, "completed", "{:?}", list[0].error_message);
    let copies = t.engine.backup_copies(&list[0].id).await.expect("copies");
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].status, "stored");
    assert!(copies[0].verified_at.is_some());
    d.assert_text("+1 off-site");
    let verified =
        supabackup::ui::format::local_time(copies[0].verified_at.as_deref().unwrap_or(""));
    d.assert_text(&format!("nas: stored, verified {verified}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_migration_assistant_moves_a_backup_and_opens_a_clone_at_the_preview() {
    use supabackup::ui::app::Message as M;
    use supabackup::ui::screen::backups::Message as B;
    use supabackup::ui::screen::migrate::{Message as G, Place};
    use supabackup::ui::screen::restore::Step;
    let db = cluster().create_db("gui_migrate");
    db.load_fixture();
    let other = cluster().create_db("gui_migrate_dst");
    let t = crate::backup::engine_for(&db, "Shop").await;
    let mut i = input("Staging", &other.url());
    i.project_ref = "staging-ref".into();
    t.engine.add_project(i).await.expect("target");
    let nas = tempfile::tempdir().expect("tempdir");
    t.engine
        .add_destination(supabackup::engine::destination::DestinationInput {
            name: "nas".into(),
            url: format!("file://{}", nas.path().display()),
            ..Default::default()
        })
        .await
        .expect("destination");
    let rec = crate::backup::backup(&t.engine, "Shop", Default::default()).await;
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Backups");
    d.until("the list", |a| a.backups.loaded).await;
    d.send(M::Backups(B::Select(rec.id.clone())));
    d.click("Migration assistant…");
    d.until("the destinations", |a| {
        a.backups
            .migrate
            .as_ref()
            .is_some_and(|m| !m.destinations.is_empty())
    })
    .await;
    d.assert_text("Copy or move a backup");
    d.send(M::Backups(B::Migrate(G::To(Place(Some("nas".into()))))));
    d.send(M::Backups(B::Migrate(G::Move(true))));
    d.click("Move");
    d.until("the move", |a| a.backups.migrate.is_none()).await;
    d.idle().await;
    let after = t.engine.backup(&rec.id).await.expect("backup");
    assert_eq!(after.local_state, "absent", "moved off this machine");
    let copies = t.engine.backup_copies(&rec.id).await.expect("copies");
    assert!(
        copies
            .iter()
            .any(|c| c.destination == "nas" && c.status == "stored")
    );
    d.assert_text("off-site only");

    // Clone: Shop → Staging, schema only, lands on the restore wizard's scope.
    d.click("Migration assistant…");
    d.click("Clone an environment");
    let staging = t.engine.project("Staging").await.expect("staging");
    let shop = t.engine.project("Shop").await.expect("shop");
    d.send(M::Backups(B::Migrate(G::Source((&shop).into()))));
    d.send(M::Backups(B::Migrate(G::Target((&staging).into()))));
    d.send(M::Backups(B::Migrate(G::What(
        supabackup::ui::screen::migrate::WhatChoice(
            supabackup::engine::migrate::CloneWhat::SchemaOnly,
        ),
    ))));
    d.click("Continue to the preview");
    d.until("the restore wizard's lists", |a| a.restore.loaded)
        .await;
    assert_eq!(d.app.restore.step, Step::Scope);
    assert_eq!(d.app.restore.backup.as_deref(), Some(rec.id.as_str()));
    assert_eq!(
        d.app.restore.target_project.as_ref().map(|p| p.id.clone()),
        Some(staging.id.clone())
    );
    assert!(!d.app.restore.data, "schema only");
    d.click("Next");
    d.click("Preview");
    d.until("the preview", |a| a.restore.preview.is_some())
        .await;
    match d.app.restore.preview.clone() {
        Some(Ok(p)) => assert!(p.allowed, "{:?}", p.refusal),
        other => panic!("the preview failed: {other:?}"),
    }
    // The backup is read from the nas copy (nothing is on this machine).
    assert!(
        t.engine
            .list_restores(10)
            .await
            .expect("restores")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_versions_view_diffs_two_backups_and_restores_one_of_them() {
    use supabackup::engine::backup::{BackupKind, BackupOptions};
    use supabackup::ui::app::Message as M;
    use supabackup::ui::screen::backups::Message as B;
    use supabackup::ui::screen::history::Message as H;
    let db = cluster().create_db("gui_versions");
    db.psql(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text);
         INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 50) g;",
    );
    let t = crate::backup::engine_for(&db, "Shop").await;
    let inc = BackupOptions {
        kind: BackupKind::Incremental,
        ..Default::default()
    };
    let a = crate::backup::backup(&t.engine, "Shop", inc.clone()).await;
    db.psql(
        "UPDATE public.items SET name = 'renamed' WHERE id IN (3, 4);
         DELETE FROM public.items WHERE id = 50;
         INSERT INTO public.items VALUES (51, 'new'), (52, 'newer'), (53, 'newest');
         CREATE VIEW public.item_names AS SELECT name FROM public.items;",
    );
    let b = crate::backup::backup(&t.engine, "Shop", inc).await;
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Backups");
    d.until("the list", |a| a.backups.loaded).await;
    d.send(M::Backups(B::Select(b.id.clone())));
    d.click("Versions…");
    d.until("the versions", |a| {
        a.backups.history.as_ref().is_some_and(|h| !h.loading)
    })
    .await;
    d.assert_text("Versions of Shop");
    {
        let h = d.app.backups.history.as_ref().expect("dialog");
        assert_eq!(h.entries.len(), 2);
        assert_eq!(
            h.b.as_deref(),
            Some(b.id.as_str()),
            "the selected backup is B"
        );
        assert_eq!(
            h.a.as_deref(),
            Some(a.id.as_str()),
            "the one before it is A"
        );
    }
    d.click("Compare");
    d.until("the diff", |a| {
        a.backups
            .history
            .as_ref()
            .is_some_and(|h| h.diff.is_some() || h.error.is_some())
    })
    .await;
    let diff = {
        let h = d.app.backups.history.as_ref().expect("dialog");
        assert_eq!(h.error, None);
        h.diff.clone().expect("diff")
    };
    let items = diff
        .tables
        .iter()
        .find(|t| t.table == "public.items")
        .expect("items changed");
    assert_eq!(
        (items.added, items.removed, items.changed),
        (3, 1, 2),
        "{items:?}"
    );
    d.assert_text("public.items: +3 −1 ~2  (50 → 52 rows)");
    d.assert_text("+ VIEW public.item_names");

    // Restore the older version: the wizard opens on it.
    d.send(M::Backups(B::History(H::Restore(a.id.clone()))));
    d.until("the restore wizard", |app| app.restore.backup.is_some())
        .await;
    assert_eq!(d.app.restore.backup.as_deref(), Some(a.id.as_str()));
    assert!(d.app.backups.history.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_rule_made_in_settings_hears_a_backup_started_in_the_gui_fail() {
    use supabackup::engine::notify::{Channel, ChatService, Delivery, RecordingNotifier};
    const SLACK_PATH: &str = "/services/T9/B9/GuiSlackS3cret";
    let desktop = RecordingNotifier::new();
    let recorder = desktop.clone();
    let t = crate::support::engine::unlocked_engine_with(move |o| {
        o.delivery = Delivery::with_desktop(std::sync::Arc::new(recorder));
    })
    .await;
    // Nothing listens on the discard port.
    t.engine
        .add_project(input("Down", "postgresql://postgres@127.0.0.1:9/postgres"))
        .await
        .expect("project");
    t.engine
        .set_backup_passphrase(Secret::new("gui backup passphrase"))
        .await
        .expect("backup passphrase");
    let server = crate::notify::HttpServer::start(&[]);
    t.engine
        .save_alert_rule(
            crate::notify::webhook_rule(None, &server.url("/hooks")),
            Some(Secret::new(crate::notify::WEBHOOK_SECRET)),
            None,
        )
        .await
        .expect("webhook rule");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.idle().await;
    // The app's own notifications are a rule like any other.
    let rules = t.engine.alert_rules().await.expect("rules");
    assert!(
        rules.iter().any(|r| r.name == "Desktop notifications"),
        "{rules:?}"
    );
    d.click("Settings");
    d.idle().await;
    d.assert_text("Desktop notifications");
    d.click("New alert rule");
    d.assert_text("New alert rule");
    d.type_into("alert-name", "Ops chat");
    // Not the desktop (the default rule has it), a Slack webhook instead.
    d.click("Desktop notification");
    d.click("Chat: Slack, Discord, Microsoft Teams or Telegram");
    d.type_into("alert-chat-secret", &server.url(SLACK_PATH));
    d.click("Save rule");
    d.until("the rule to be saved", |a| a.settings.alerts.form.is_none())
        .await;
    d.idle().await;
    d.assert_text("Ops chat");
    let rules = t.engine.alert_rules().await.expect("rules");
    let ops = rules
        .iter()
        .find(|r| r.name == "Ops chat")
        .expect("the rule made in the GUI");
    assert!(ops.on_failure && ops.enabled);
    assert!(
        matches!(ops.channels.as_slice(), [Channel::Chat(c)] if c.service == ChatService::Slack),
        "{ops:?}"
    );

    d.click("Backups");
    d.idle().await;
    d.click("Back up now");
    d.until("the dialog to load", |a| {
        a.backups.dialog.as_ref().is_some_and(|x| !x.loading)
    })
    .await;
    d.click("Start backup");
    d.until("the backup to fail", |a| a.jobs.is_empty()).await;
    d.idle().await;
    let body = crate::notify::one_signed_event(&server, "backup.failed");
    assert_eq!(body["project"], "Down");
    let slack: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == SLACK_PATH)
        .collect();
    assert_eq!(slack.len(), 1, "one Slack message");
    let msg: serde_json::Value = serde_json::from_slice(&slack[0].body).expect("json");
    assert!(
        msg["text"]
            .as_str()
            .is_some_and(|x| x.contains("Backup of Down failed")),
        "{msg}"
    );
    let shown = desktop.calls();
    assert_eq!(shown.len(), 1, "one desktop notification: {shown:?}");
    assert!(shown[0].0.contains("Backup of Down failed"), "{shown:?}");
}

/// A chain made in the schedule form through `update()` messages — three
/// projects, the order changed once, stop at the first failure, a
/// pre-hook with its own timeout that only warns, "run only when the
/// schema changed" — is saved as such and runs the projects in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_made_in_the_schedule_form_runs_in_order() {
    use supabackup::engine::schedule::{ChainPolicy, Condition, HookPolicy, ticker::run_job};
    use supabackup::ui::app::Message as M;
    use supabackup::ui::screen::choices::ProjectChoice;
    use supabackup::ui::screen::job_options::Message as O;
    use supabackup::ui::screen::schedules::Message as S;
    let t = unlocked_engine().await;
    let mut ids = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let db = cluster().create_db(&format!("gui_chain_{}", name.to_lowercase()));
        db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
        let mut i = input(name, &db.url());
        i.project_ref = name.to_lowercase();
        ids.push(t.engine.add_project(i).await.expect("project").id);
    }
    let choice = |i: usize, name: &str| ProjectChoice {
        id: ids[i].clone(),
        name: name.into(),
    };
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Schedules");
    d.idle().await;
    d.click("New schedule");
    for m in [
        S::Project(choice(0, "Alpha")),
        S::Encrypt(false),
        S::Options(O::ChainAdd(choice(2, "Gamma"))),
        S::Options(O::ChainAdd(choice(1, "Beta"))),
        S::Options(O::ChainUp(1)),
        S::Options(O::ChainStop(true)),
        S::Options(O::PreHook("echo checking".into())),
        S::Options(O::HookTimeout("30".into())),
        S::Options(O::HookWarn(true)),
        S::Options(O::WhenSchema(true)),
    ] {
        d.send(M::Schedules(m));
    }
    d.assert_text("1. Beta");
    d.assert_text("2. Gamma");
    d.click("Create schedule");
    d.until("the schedule to be saved", |a| a.schedules.form.is_none())
        .await;
    d.idle().await;
    let jobs = t.engine.list_jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.project_id, ids[0]);
    assert_eq!(job.config.chain, [ids[1].clone(), ids[2].clone()]);
    assert_eq!(job.config.chain_policy, ChainPolicy::Stop);
    let hook = job.config.pre_hook.clone().expect("pre-hook");
    assert_eq!((hook.timeout_secs, hook.on_failure), (30, HookPolicy::Warn));
    assert_eq!(job.config.when, [Condition::Schema]);
    d.assert_text("full backup · keep last 14 · only when the schema changed · last run");
    let delivery = supabackup::engine::notify::Delivery::with_desktop(std::sync::Arc::new(
        supabackup::engine::notify::RecordingNotifier::new(),
    ));
    let out = run_job(
        &t.engine,
        job,
        tokio_util::sync::CancellationToken::new(),
        &delivery,
    )
    .await;
    assert_eq!(
        out.steps
            .iter()
            .map(|s| (s.project.as_str(), s.status.as_str()))
            .collect::<Vec<_>>(),
        [
            ("Alpha", "completed"),
            ("Beta", "completed"),
            ("Gamma", "completed")
        ],
        "{out:?}"
    );
    // Backed up in that order.
    let mut backups = t.engine.list_backups(None, 10).await.expect("backups");
    backups.reverse();
    assert_eq!(
        backups
            .iter()
            .map(|b| b.project_name.as_str())
            .collect::<Vec<_>>(),
        ["Alpha", "Beta", "Gamma"]
    );
}

/// Hooks typed into the project view run around a backup started from
/// the backup dialog, and the dialog's switch skips them for one run.
#[tokio::test(flavor = "multi_thread")]
async fn project_hooks_set_in_the_project_view_run_around_a_gui_backup() {
    use supabackup::ui::screen::project_hooks::{POST_ID, PRE_ID};
    let db = cluster().create_db("gui_hooks");
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Hooked", &db.url()))
        .await
        .expect("project");
    t.engine
        .set_backup_passphrase(Secret::new("gui hooks passphrase"))
        .await
        .expect("backup passphrase");
    let log = t.dir.path().join("gui-hooks.log");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Projects");
    d.until("the hooks to load", |a| a.projects.hooks.saved.is_some())
        .await;
    d.scroll_and_type_into(PRE_ID, &format!("echo pre >> {}", log.display()));
    d.scroll_and_type_into(
        POST_ID,
        &format!("echo \"post $SUPABACKUP_STATUS\" >> {}", log.display()),
    );
    d.scroll_and_click("Save hooks");
    d.until("the hooks to be saved", |a| {
        a.projects.hooks.notice.is_some() || a.projects.hooks.error.is_some()
    })
    .await;
    assert_eq!(d.app.projects.hooks.error, None);
    let saved = t.engine.project_hooks("Hooked").await.expect("hooks");
    assert_eq!(saved.pre.as_ref().map(|h| h.timeout_secs), Some(300));

    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    let label = format!(
        "Run the project's hooks (before: echo pre >> {} · after: echo \"post $SUPABACKUP_STATUS\" >> {})",
        log.display(),
        log.display()
    );
    // With the hooks (the default), then without.
    for run_hooks in [true, false] {
        d.click("Backups");
        d.idle().await;
        d.click("Back up now");
        d.until("the dialog to load its hooks", |a| {
            a.backups
                .dialog
                .as_ref()
                .is_some_and(|x| !x.loading && x.hooks.is_some())
        })
        .await;
        d.assert_text(&label);
        if !run_hooks {
            d.send(supabackup::ui::app::Message::Backups(
                supabackup::ui::screen::backups::Message::Dialog(
                    supabackup::ui::screen::backup_dialog::Message::RunHooks(false),
                ),
            ));
        }
        d.click("Start backup");
        d.until("the backup to finish", |a| a.jobs.is_empty()).await;
        d.idle().await;
    }
    assert_eq!(
        lines(),
        "pre\npost completed\n",
        "hooks ran once, for the first backup"
    );
    assert_eq!(
        t.engine.list_backups(None, 10).await.expect("list").len(),
        2
    );
}

/// The project view's Live health card: "Probe now" probes the server
/// through the engine (kept in the history, shown with its figures), and
/// the interval picked there is the scheduler's.
#[tokio::test(flavor = "multi_thread")]
async fn the_project_view_probes_now_and_sets_the_probe_interval() {
    use supabackup::ui::app::Message as M;
    use supabackup::ui::screen::health::{IntervalChoice, Message as H};
    use supabackup::ui::screen::projects::Message as P;
    let db = cluster().create_db("gui_health");
    let t = unlocked_engine().await;
    t.engine
        .add_project(input("Watched", &db.url()))
        .await
        .expect("project");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Projects");
    d.until("the health card", |a| a.projects.health.interval.is_some())
        .await;
    d.assert_text("not probed yet");
    assert_eq!(d.app.projects.health.interval, Some(15), "the default");
    d.scroll_and_click("Probe now");
    d.until("the probe", |a| !a.projects.health.records.is_empty())
        .await;
    d.idle().await;
    let history = t
        .engine
        .probe_history("Watched", None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert!(history[0].probe.ok, "{:?}", history[0].probe);
    let (summary, _) = d.app.projects.health.summary();
    assert!(summary.starts_with("reachable · "), "{summary}");
    d.assert_text(&summary);
    d.assert_text("Connections");
    d.send(M::Projects(P::Health(H::Interval(IntervalChoice(0)))));
    d.until("the interval", |a| a.projects.health.interval == Some(0))
        .await;
    assert_eq!(
        t.engine.probe_interval("Watched").await.expect("interval"),
        0
    );
}
