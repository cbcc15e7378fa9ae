//! Settings → "Move to a new machine": the whole configuration exported
//! from one app through the (fake) save dialog, then checked and imported
//! in another app on an empty data folder through the (fake) file picker.

use supabackup::ui::app::Message as M;
use supabackup::ui::screen::moving::Message as Mv;
use supabackup::ui::screen::settings::Message as S;
use supabackup::ui::screen::transfer::Message as T;

use super::driver::Driver;
use crate::config::{EXPORT_PASSPHRASE, configured};
use crate::support::engine::unlocked_engine;

fn dialog(m: T) -> M {
    M::Settings(S::Moving(Mv::Transfer(m)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configuration_moves_to_a_new_machine_through_settings() {
    let old = configured("https://hooks.example.com/x").await;
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("moving.json");

    let prefs = supabackup::ui::prefs::Prefs {
        theme: supabackup::ui::prefs::ThemeChoice::Light,
        ..Default::default()
    };
    supabackup::ui::prefs::save(&old.engine.data_dir().app_prefs(), &prefs).expect("prefs");
    let mut d = Driver::boot(old.engine.clone()).await;
    d.click("Settings");
    d.idle().await;
    d.scroll_and_click("Export configuration…");
    d.assert_text("Export the configuration");
    d.platform.answer_save(Some(&file));
    d.click("Browse…");
    d.idle().await;
    d.send(dialog(T::IncludeSecrets(true)));
    // Secrets are never written without a passphrase to seal them.
    d.click("Export");
    d.idle().await;
    d.assert_text("secrets are exported encrypted: choose an export passphrase");
    assert!(!file.exists());
    d.send(dialog(T::PassphraseChanged(EXPORT_PASSPHRASE.into())));
    d.click("Export");
    d.until("the export", |a| {
        a.settings
            .moving
            .dialog
            .as_ref()
            .is_some_and(|t| t.config_summary.is_some() || t.error.is_some())
    })
    .await;
    d.idle().await;
    d.assert_text(&format!(
        "Exported 2 project(s), 2 destination(s), 2 schedule(s) and 3 alert rule(s) to {}",
        file.display()
    ));
    assert!(file.exists());

    let new = unlocked_engine().await;
    let mut n = Driver::boot(new.engine.clone()).await;
    n.click("Settings");
    n.idle().await;
    n.scroll_and_click("Import configuration…");
    n.assert_text("Import a configuration");
    n.platform.answer_pick(Some(&file));
    n.click("Browse…");
    n.idle().await;
    n.send(dialog(T::PassphraseChanged(EXPORT_PASSPHRASE.into())));
    n.click("Check file");
    let checked = |a: &supabackup::ui::app::App| {
        a.settings
            .moving
            .dialog
            .as_ref()
            .is_some_and(|t| t.config_report.is_some() || t.error.is_some())
    };
    n.until("the check", checked).await;
    n.idle().await;
    n.assert_text("ready to import (not yet imported)");
    n.assert_text("Schedules: 2 new");
    // This app made its own desktop rule at first start: the file's equal
    // one is kept as here, not doubled.
    n.assert_text("Alert rules: 2 new, 1 already here (kept)");
    assert!(new.engine.list_jobs().await.expect("jobs").is_empty());
    n.click("Import");
    n.until("the import", |a| {
        a.settings
            .moving
            .dialog
            .as_ref()
            .and_then(|t| t.config_report.as_ref())
            .is_some_and(|r| r.applied)
    })
    .await;
    n.idle().await;
    n.assert_text("imported");
    n.assert_text("Imported 2 project(s), 2 destination(s), 2 schedule(s) and 2 alert rule(s)");
    assert_eq!(new.engine.list_jobs().await.expect("jobs").len(), 2);
    assert_eq!(new.engine.list_destinations().await.expect("d").len(), 2);
    // The old machine's preferences apply at once (the light theme here).
    n.until("the preferences", |a| a.prefs() == prefs).await;
    assert_eq!(n.app.settings.draft.theme, prefs.theme);
    // The page behind the dialog shows what came in.
    n.click("Close");
    n.idle().await;
    n.assert_text("offsite");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_imported_without_its_secret_gets_it_in_settings() {
    use supabackup::engine::config::{ConfigExportOptions, ConfigImportOptions};
    use supabackup::ui::screen::destinations::Message as D;
    let old = configured("https://hooks.example.com/x").await;
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("plain.json");
    old.engine
        .export_config(&file, ConfigExportOptions::default())
        .await
        .expect("export without secrets");
    let new = unlocked_engine().await;
    let r = new
        .engine
        .import_config(&file, ConfigImportOptions::default())
        .await
        .expect("import");
    assert!(r.applied, "{:?}", r.problems);
    let mut d = Driver::boot(new.engine.clone()).await;
    d.click("Settings");
    d.idle().await;
    d.assert_text("It has no secret (imported without it): give the secret access key.");
    d.send(M::Settings(S::Destinations(D::SecretFor(
        "offsite".into(),
        "S3-Secret-Key-0123456789".into(),
    ))));
    d.scroll_and_click("Seal secret");
    d.until("the secret to be sealed", |a| {
        a.settings
            .destinations
            .list
            .iter()
            .any(|x| x.name == "offsite" && x.has_secret)
    })
    .await;
    d.idle().await;
    assert!(
        new.engine
            .destination("offsite")
            .await
            .expect("d")
            .has_secret
    );
    assert!(!d.has_text("It has no secret (imported without it): give the secret access key."));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_new_machine_the_old_backups_are_found_at_the_destination() {
    use supabackup::engine::config::{ConfigExportOptions, ConfigImportOptions};
    use supabackup::engine::crypto::Secret;
    use supabackup::engine::destination::DestinationInput;
    let db = crate::support::pg::cluster().create_db("gui_move_find");
    db.load_fixture();
    let old = unlocked_engine().await;
    old.engine
        .add_project(crate::support::engine::input("Shop", &db.url()))
        .await
        .expect("project");
    old.engine
        .set_backup_passphrase(Secret::new("moving backup passphrase"))
        .await
        .expect("passphrase");
    let nas = tempfile::tempdir().expect("nas");
    old.engine
        .add_destination(DestinationInput {
            name: "nas".into(),
            url: format!("file://{}", nas.path().display()),
            ..Default::default()
        })
        .await
        .expect("nas");
    let b =
        crate::destinations::backup_to(&old.engine, "Shop", crate::destinations::plan(&["nas"]))
            .await;
    let out = tempfile::tempdir().expect("out");
    let file = out.path().join("move.json");
    old.engine
        .export_config(
            &file,
            ConfigExportOptions {
                secrets_passphrase: Some(Secret::new(EXPORT_PASSPHRASE)),
            },
        )
        .await
        .expect("export");

    let new = unlocked_engine().await;
    let r = new
        .engine
        .import_config(
            &file,
            ConfigImportOptions {
                secrets_passphrase: Some(Secret::new(EXPORT_PASSPHRASE)),
                ..Default::default()
            },
        )
        .await
        .expect("import");
    assert!(r.applied, "{:?}", r.problems);
    assert!(
        new.engine
            .list_backups(None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    let mut d = Driver::boot(new.engine.clone()).await;
    d.click("Settings");
    d.idle().await;
    d.click("Find backups");
    d.until("the search", |a| !a.settings.destinations.found.is_empty())
        .await;
    d.idle().await;
    d.assert_text("1 backup(s) there: 1 new in this catalog, 0 updated");
    let list = new.engine.list_backups(None, 10).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, b.id);
    assert_eq!(list[0].status, "completed");
    // It belongs to the imported project, and verifies from the copy.
    let shop = new.engine.project("Shop").await.expect("Shop");
    assert_eq!(list[0].project_id.as_deref(), Some(shop.id.as_str()));
    let v = new
        .engine
        .verify_backup_from(&b.id, Some("nas"))
        .await
        .expect("verify");
    assert!(v.ok, "{v:?}");
}
