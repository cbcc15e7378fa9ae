//! Renders every main screen from a realistic catalog (seeded history plus a
//! real project on the harness cluster) and checks each image has content.
//! With `SUPABACKUP_UPDATE_SCREENSHOTS=1` the images are written to
//! `docs/screenshots/` (the README shows them); otherwise to a temp dir.

use std::path::PathBuf;

use iced::keyboard::key::Named;
use supabackup::engine::crypto::Secret;
use supabackup::ui::app::Message;
use supabackup::ui::prefs::ThemeChoice;
use supabackup::ui::screen::backup_dialog;
use supabackup::ui::screen::choices::ProjectChoice;
use supabackup::ui::screen::project_form::Field;
use supabackup::ui::screen::{Tab, analytics, backups, projects, restore, schedules, settings};

use super::driver::{Driver, Frames};
use super::seed;
use super::smoke::assert_not_blank;
use crate::support::engine::{input, unlocked_engine};
use crate::support::pg::cluster;

#[tokio::test(flavor = "multi_thread")]
async fn every_main_screen_renders() {
    let keep = std::env::var("SUPABACKUP_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out: PathBuf = if keep {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        tmp.path().to_path_buf()
    };
    std::fs::create_dir_all(&out).expect("screenshot dir");

    let db = cluster().create_db("gui_shots");
    db.load_fixture();
    let t = unlocked_engine().await;
    seed::populate(&t.engine, 10, 1500).await;
    let mut demo = input("Local demo", &db.url());
    demo.environment = "staging".into();
    let demo = t.engine.add_project(demo).await.expect("demo project");
    t.engine
        .set_backup_passphrase(Secret::new("screenshots passphrase"))
        .await
        .expect("backup passphrase");

    let mut d = Driver::boot(t.engine.clone()).await;
    let mut r = Frames::new(Driver::renderer());
    let mut shoot = |d: &Driver, name: &str| {
        let path = out.join(name);
        d.save_png(&mut r, &path);
        assert_not_blank(&path);
    };

    d.idle().await;
    shoot(&d, "dashboard.png");

    // Projects: the real project, tested against the cluster.
    d.send(Message::Navigate(Tab::Projects));
    d.idle().await;
    d.send(Message::Projects(projects::Message::Select(
        demo.id.clone(),
    )));
    d.click("Test connection");
    d.until("the connection test", |a| {
        a.projects.tests.get(&demo.id).is_some_and(|r| r.is_some())
    })
    .await;
    d.idle().await;
    shoot(&d, "projects.png");

    d.click("Add project");
    d.type_into(Field::Name.id(), "Shop");
    d.type_into(Field::Ref.id(), "Shop_Prod");
    d.type_into(Field::Url.id(), "postgres://db.example.com");
    shoot(&d, "project-form.png");
    d.send(Message::Projects(projects::Message::Escape));

    // Backups: the list, a selected row, the dialog, a running job.
    d.send(Message::Navigate(Tab::Backups));
    d.until("backups", |a| a.backups.loaded).await;
    let first = d
        .app
        .backups
        .visible
        .get(2)
        .map(|i| d.app.backups.rows[*i].rec.id.clone());
    if let Some(id) = first {
        d.send(Message::Backups(backups::Message::Select(id)));
    }
    shoot(&d, "backups.png");

    d.click("Back up now");
    d.until("the dialog", |a| {
        a.backups.dialog.as_ref().is_some_and(|x| !x.loading)
    })
    .await;
    d.send(Message::Backups(backups::Message::Dialog(
        backup_dialog::Message::Project(ProjectChoice {
            id: demo.id.clone(),
            name: demo.name.clone(),
        }),
    )));
    shoot(&d, "backup-dialog.png");
    d.click("Start backup");
    d.until("progress", |a| {
        a.jobs.first().is_some_and(|j| j.progress.is_some())
    })
    .await;
    // The fixture is small: the dump is over before its first 250 ms report.
    // Show what a larger database looks like mid-dump.
    if let Some(job) = d.app.jobs.first() {
        let (id, backup_id) = (
            job.id,
            job.progress
                .as_ref()
                .map(|p| p.backup_id.clone())
                .unwrap_or_default(),
        );
        d.send(Message::Job(
            id,
            supabackup::ui::jobs::JobEvent::Progress(supabackup::engine::backup::BackupProgress {
                backup_id,
                phase: supabackup::engine::backup::Phase::Dumping,
                current_table: Some("public.order_items".into()),
                bytes_read: 734_003_200,
                bytes_written: 161_480_704,
                rate: 48_234_496.0,
                estimated_total: Some(1_932_735_283),
                eta_secs: Some(24.8),
                elapsed_secs: 15.2,
                destination: None,
            }),
        ));
    }
    shoot(&d, "backup-progress.png");
    d.until("the backup to end", |a| a.jobs.is_empty()).await;
    d.idle().await;

    // The restore wizard, at its preview, from the backup just made.
    let made = t
        .engine
        .list_backups(Some(&demo.id), 1)
        .await
        .expect("list");
    d.send(Message::Backups(backups::Message::Restore(
        made[0].id.clone(),
    )));
    d.until("the restore lists", |a| a.restore.loaded).await;
    for m in [
        restore::Message::Next,
        restore::Message::Next,
        restore::Message::Mode(supabackup::engine::restore::RestoreMode::Replace),
        restore::Message::Next,
    ] {
        d.send(Message::Restore(m));
    }
    d.until("the preview", |a| a.restore.preview.is_some())
        .await;
    shoot(&d, "restore-preview.png");
    d.send(Message::Restore(restore::Message::StartOver));

    // Schedules, with the form showing the next runs.
    d.send(Message::Navigate(Tab::Schedules));
    d.until("schedules", |a| a.schedules.loaded).await;
    d.send(Message::Schedules(schedules::Message::New));
    d.send(Message::Schedules(schedules::Message::Project(
        ProjectChoice {
            id: demo.id.clone(),
            name: demo.name.clone(),
        },
    )));
    d.send(Message::Schedules(schedules::Message::Preset(
        "0 3 * * SUN",
    )));
    shoot(&d, "schedules.png");
    d.send(Message::Schedules(schedules::Message::CancelForm));

    // Analytics and the audit log.
    d.send(Message::Navigate(Tab::Analytics));
    d.until("analytics", |a| {
        a.analytics.data.is_some() && !a.analytics.audit.is_empty()
    })
    .await;
    d.idle().await;
    shoot(&d, "analytics.png");
    d.send(Message::Analytics(analytics::Message::Show(
        analytics::View::Audit,
    )));
    shoot(&d, "audit-log.png");

    d.send(Message::Navigate(Tab::Settings));
    d.idle().await;
    shoot(&d, "settings.png");

    // The light theme.
    d.send(Message::Settings(settings::Message::Theme(
        ThemeChoice::Light,
    )));
    d.send(Message::Settings(settings::Message::Save));
    d.send(Message::Navigate(Tab::Dashboard));
    d.idle().await;
    shoot(&d, "dashboard-light.png");
    d.send(Message::Settings(settings::Message::Theme(
        ThemeChoice::Dark,
    )));
    d.send(Message::Settings(settings::Message::Save));

    d.send(Message::Lock);
    d.idle().await;
    d.interact(|s| {
        let _ = s.click(iced_test::selector::id(
            supabackup::ui::screen::unlock::PASSPHRASE_ID,
        ));
        let _ = s.typewrite("wrong");
        let _ = s.tap_key(Named::Enter);
    });
    d.until("the refusal", |a| {
        a.unlock_screen()
            .is_some_and(|u| u.error.is_some() && !u.busy)
    })
    .await;
    shoot(&d, "unlock.png");
}
