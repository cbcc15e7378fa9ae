//! App-level `update()`: keyboard navigation, notices, the window title.

use std::time::{Duration, Instant};

use iced::keyboard::{self, Key, Location, Modifiers, key};
use supabackup::ui::app::Message;
use supabackup::ui::screen::Tab;
use supabackup::ui::widget::Notice;

use super::driver::Driver;
use crate::support::engine::{input, unlocked_engine};

fn press(key: Key, modifiers: Modifiers) -> Message {
    Message::Key(keyboard::Event::KeyPressed {
        modified_key: key.clone(),
        key,
        physical_key: key::Physical::Unidentified(key::NativeCode::Unidentified),
        location: Location::Standard,
        modifiers,
        text: None,
        repeat: false,
    })
}

fn ctrl(c: &str) -> Message {
    press(Key::Character(c.into()), Modifiers::CTRL)
}

#[tokio::test(flavor = "multi_thread")]
async fn keyboard_shortcuts_navigate_and_close_dialogs() {
    let t = unlocked_engine().await;
    t.engine
        .add_project(input(
            "Shop",
            "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres",
        ))
        .await
        .expect("project");
    let mut d = Driver::boot(t.engine.clone()).await;
    assert_eq!(d.app.title(), "supabackup — Dashboard");
    for (c, tab) in [
        ("2", Tab::Projects),
        ("3", Tab::Backups),
        ("6", Tab::Analytics),
        ("7", Tab::Settings),
        ("1", Tab::Dashboard),
    ] {
        d.send(ctrl(c));
        assert_eq!(d.app.tab, tab, "Ctrl+{c}");
        assert_eq!(d.app.title(), format!("supabackup — {}", tab.title()));
    }
    d.idle().await;
    d.send(ctrl("n"));
    assert_eq!(d.app.tab, Tab::Projects);
    assert!(d.app.projects.form.is_some(), "Ctrl+N opens the add form");
    d.send(press(Key::Named(key::Named::Escape), Modifiers::empty()));
    assert!(d.app.projects.form.is_none(), "Escape closes it");
    d.send(ctrl("b"));
    assert_eq!(d.app.tab, Tab::Backups);
    assert!(d.app.backups.dialog.is_some(), "Ctrl+B opens Back up now");
    d.idle().await;
    d.send(press(Key::Named(key::Named::Escape), Modifiers::empty()));
    assert!(d.app.backups.dialog.is_none());
    // Without Ctrl, digits do nothing (they belong to text fields).
    d.send(press(Key::Character("2".into()), Modifiers::empty()));
    assert_eq!(d.app.tab, Tab::Backups);
    d.send(ctrl("l"));
    assert!(d.app.is_locked(), "Ctrl+L locks the vault");
    assert!(!t.engine.is_unlocked());
    // Locked: shortcuts do nothing.
    d.send(ctrl("2"));
    assert!(d.app.is_locked());
}

#[tokio::test(flavor = "multi_thread")]
async fn notices_fade_except_errors() {
    let t = unlocked_engine().await;
    let mut d = Driver::boot(t.engine.clone()).await;
    d.app.push_notice(Notice::success("done"));
    d.app.push_notice(Notice::success("done"));
    assert_eq!(d.app.notices.len(), 1, "repeats are shown once");
    d.app
        .push_notice(Notice::error(&supabackup::engine::Error::connection(
            "unreachable",
        )));
    d.app.push_notice(Notice::warning("careful"));
    d.app
        .expire_notices(Instant::now() + Duration::from_secs(9));
    let titles: Vec<&str> = d.app.notices.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["unreachable", "careful"]);
    d.app
        .expire_notices(Instant::now() + Duration::from_secs(60));
    assert_eq!(d.app.notices.len(), 1, "errors stay until dismissed");
    d.send(Message::DismissNotice(0));
    assert!(d.app.notices.is_empty());
    for i in 0..5 {
        d.app
            .push_notice(Notice::error(&supabackup::engine::Error::internal(
                format!("e{i}"),
            )));
    }
    assert_eq!(d.app.notices.len(), 3, "at most three at a time");
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_while_a_backup_runs_asks_first() {
    let db = crate::support::pg::cluster().create_db("gui_close");
    db.load_fixture();
    let t = crate::backup::engine_for(&db, "Shop").await;
    let mut d = Driver::boot(t.engine.clone()).await;
    let window = iced::window::Id::unique();
    // Nothing running: the window just closes (no dialog).
    d.send(Message::CloseRequested(window));
    assert!(d.app.close_requested.is_none());

    d.click("Backups");
    d.idle().await;
    d.click("Back up now");
    d.until("the dialog", |a| {
        a.backups.dialog.as_ref().is_some_and(|x| !x.loading)
    })
    .await;
    d.click("Start backup");
    assert!(d.app.busy());
    d.send(Message::CloseRequested(window));
    assert_eq!(d.app.close_requested, Some(window));
    d.assert_text("Quit supabackup?");
    d.click("Keep running");
    assert!(
        d.app.close_requested.is_none() && d.app.busy(),
        "the job goes on"
    );
    d.send(Message::CloseRequested(window));
    d.click("Cancel jobs and quit");
    assert!(d.app.quitting);
    assert!(d.app.jobs.iter().all(|j| j.cancelling));
    d.until("the job to stop", |a| !a.busy()).await;
    let list = t.engine.list_backups(None, 5).await.expect("list");
    assert!(
        matches!(list[0].status.as_str(), "cancelled" | "completed"),
        "the engine finished its own clean-up: {}",
        list[0].status
    );
}
