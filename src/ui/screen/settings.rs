//! Settings: alert rules (the app's notifications among them), the data
//! folder, destinations, the Supabase account, moving the configuration to
//! a new machine, appearance, the options "Back up now" starts from, the
//! scratch server for restore tests, and the master and backup passphrases
//! (cards of their own modules where they hold state of their own).

use std::path::Path;

use iced::widget::{column, pick_list, row, scrollable, text, text_input, toggler};
use iced::{Alignment, Element, Length, Task};

use super::choices::{CodecChoice, KindChoice, LevelChoice, StreamsChoice};
use super::{Action, Ctx, Effect};
use crate::engine::Error;
use crate::engine::conninfo::ConnInfo;
use crate::engine::pg::probe::ConnectionReport;
use crate::ui::prefs::{Prefs, ThemeChoice};
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    OpenDataDir,
    OpenLogs,
    Opened(Result<(), String>),
    Theme(ThemeChoice),
    Kind(KindChoice),
    Codec(CodecChoice),
    Level(LevelChoice),
    Streams(StreamsChoice),
    Encrypt(bool),
    Schemas(String),
    Exclude(String),
    ScratchLoaded(Result<Option<String>, Error>),
    ScratchUrl(String),
    ScratchSaved(Result<String, Error>),
    TestScratch,
    ScratchTested(Result<ConnectionReport, Error>),
    Save,
    Revert,
    Destinations(super::destinations::Message),
    Alerts(super::alerts::Message),
    Moving(super::moving::Message),
    Fleet(super::fleet::Message),
    Passphrases(super::passphrases::Message),
}

#[derive(Debug, Default)]
pub struct Settings {
    pub saved: Prefs,
    pub draft: Prefs,
    pub schemas: String,
    pub exclude: String,
    /// The engine's scratch server setting, as saved and as typed.
    pub scratch_saved: String,
    pub scratch_url: String,
    pub errors: Vec<(&'static str, String)>,
    pub scratch_test: Option<Result<ConnectionReport, Error>>,
    pub scratch_testing: bool,
    pub destinations: super::destinations::Panel,
    pub alerts: super::alerts::Panel,
    pub moving: super::moving::Panel,
    pub fleet: super::fleet::Panel,
    pub passphrases: super::passphrases::Panel,
}

impl Settings {
    /// Starts from the saved preferences.
    pub fn reset(&mut self, prefs: &Prefs) {
        self.saved = prefs.clone();
        self.draft = prefs.clone();
        self.schemas = prefs.default_backup.schemas.join(", ");
        self.exclude = prefs.default_backup.exclude_tables.join(", ");
        self.errors.clear();
    }

    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        if self.draft == self.saved {
            self.reset(&ctx.prefs);
        }
        let engine = ctx.engine.clone();
        Task::batch([
            Task::perform(
                async move { engine.scratch_server_url().await },
                Message::ScratchLoaded,
            ),
            self.destinations.load(ctx).map(Message::Destinations),
            self.alerts.load(ctx).map(Message::Alerts),
            self.fleet.load(ctx).map(Message::Fleet),
        ])
    }

    /// Folds the text fields into the draft and checks everything.
    fn validate(&mut self) {
        self.errors.clear();
        self.draft.default_backup.schemas = format::split_list(&self.schemas);
        self.draft.default_backup.exclude_tables = format::split_list(&self.exclude);
        if let Err(e) = self.draft.default_backup.validate() {
            self.errors.push(("defaults", e.message));
        }
        let url = self.scratch_url.trim();
        if url != self.scratch_saved {
            match ConnInfo::parse(url) {
                Err(e) => self.errors.push(("scratch", e.message)),
                Ok(i) if i.password.is_some() => self.errors.push((
                    "scratch",
                    "leave the password out: use a passwordless local role or ~/.pgpass".into(),
                )),
                Ok(_) => {}
            }
        }
    }

    pub fn error(&self, key: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, m)| m.as_str())
    }

    pub fn dirty(&self) -> bool {
        self.draft != self.saved || self.scratch_url.trim() != self.scratch_saved
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Destinations(m) => self.destinations.update(m, ctx).map(Message::Destinations),
            Message::Alerts(m) => self.alerts.update(m, ctx).map(Message::Alerts),
            Message::Fleet(m) => self.fleet.update(m, ctx).map(Message::Fleet),
            Message::Passphrases(m) => self.passphrases.update(m, ctx).map(Message::Passphrases),
            Message::Moving(super::moving::Message::PrefsLoaded(Ok(p))) => {
                // Imported preferences show at once (unless edits are open).
                if !self.dirty() {
                    self.reset(&p);
                }
                self.moving
                    .update(super::moving::Message::PrefsLoaded(Ok(p)), ctx)
                    .map(Message::Moving)
            }
            Message::Moving(m) => {
                let action = self.moving.update(m, ctx).map(Message::Moving);
                // An import changes what this page shows.
                if action
                    .effects
                    .iter()
                    .any(|e| matches!(e, Effect::DataChanged))
                {
                    let reload = self.load(ctx);
                    return Action {
                        task: Task::batch([action.task, reload]),
                        effects: action.effects,
                    };
                }
                action
            }
            Message::OpenDataDir => Action::task(Task::perform(
                ctx.platform
                    .open_path(ctx.engine.data_dir().root().to_path_buf()),
                Message::Opened,
            )),
            Message::OpenLogs => Action::task(Task::perform(
                ctx.platform.open_path(ctx.engine.data_dir().logs()),
                Message::Opened,
            )),
            Message::Opened(r) => match r {
                Ok(()) => Action::none(),
                Err(e) => Action::notice(widget::Notice::warning(e)),
            },
            Message::Theme(t) => {
                self.draft.theme = t;
                self.validate();
                Action::none()
            }
            Message::Kind(k) => {
                self.draft.default_backup.kind = k.0;
                self.validate();
                Action::none()
            }
            Message::Codec(c) => {
                self.draft.default_backup.codec = c.0;
                Action::none()
            }
            Message::Level(l) => {
                self.draft.default_backup.level = l.0;
                Action::none()
            }
            Message::Streams(s) => {
                self.draft.default_backup.streams = s.0;
                Action::none()
            }
            Message::Encrypt(b) => {
                self.draft.default_backup.encrypt = b;
                Action::none()
            }
            Message::Schemas(s) => {
                self.schemas = s;
                self.validate();
                Action::none()
            }
            Message::Exclude(s) => {
                self.exclude = s;
                self.validate();
                Action::none()
            }
            Message::ScratchLoaded(Ok(url)) => {
                let url = url.unwrap_or_default();
                if self.scratch_url == self.scratch_saved {
                    self.scratch_url = url.clone();
                }
                self.scratch_saved = url;
                Action::none()
            }
            Message::ScratchLoaded(Err(e)) => Action::error(&e),
            Message::ScratchSaved(Ok(url)) => {
                self.scratch_saved = url;
                Action::notice(widget::Notice::success("Scratch server saved"))
            }
            Message::ScratchSaved(Err(e)) => {
                self.errors.push(("scratch", e.message.clone()));
                Action::error(&e)
            }
            Message::ScratchUrl(s) => {
                self.scratch_url = s;
                self.scratch_test = None;
                self.validate();
                Action::none()
            }
            Message::TestScratch => {
                self.validate();
                if self.error("scratch").is_some() || self.scratch_url.trim().is_empty() {
                    return Action::none();
                }
                self.scratch_testing = true;
                let engine = ctx.engine.clone();
                let url = self.scratch_url.trim().to_owned();
                Action::task(Task::perform(
                    async move { engine.test_url(&url, None).await },
                    Message::ScratchTested,
                ))
            }
            Message::ScratchTested(r) => {
                self.scratch_testing = false;
                self.scratch_test = Some(r);
                Action::none()
            }
            Message::Save => {
                self.validate();
                if !self.errors.is_empty() {
                    return Action::none();
                }
                let mut action = Action::none();
                if self.draft != self.saved {
                    self.saved = self.draft.clone();
                    action = action
                        .with(Effect::PrefsChanged(self.draft.clone()))
                        .with(Effect::Notice(widget::Notice::success("Settings saved")));
                }
                let url = self.scratch_url.trim().to_owned();
                if url != self.scratch_saved && !url.is_empty() {
                    let engine = ctx.engine.clone();
                    action.task = Task::perform(
                        async move { engine.set_scratch_url(&url).await.map(|()| url) },
                        Message::ScratchSaved,
                    );
                }
                action
            }
            Message::Revert => {
                let saved = self.saved.clone();
                self.reset(&saved);
                Action::none()
            }
        }
    }

    pub fn view(&self, data_dir: &Path) -> Element<'_, Message> {
        let d = &self.draft;
        let header = widget::page_header(
            "Settings",
            Some(if self.dirty() {
                "Unsaved changes".into()
            } else {
                "All changes saved".into()
            }),
            row![
                widget::secondary_button("Revert", self.dirty().then_some(Message::Revert)),
                widget::primary_button(
                    "Save settings",
                    (self.dirty() && self.errors.is_empty()).then_some(Message::Save)
                ),
            ]
            .spacing(theme::S),
        );
        let storage = widget::card(
            "Data",
            column![
                row![
                    text(data_dir.display().to_string()).font(theme::MONO).width(Length::Fill),
                    widget::secondary_button("Open folder", Some(Message::OpenDataDir)),
                    widget::secondary_button("Open logs", Some(Message::OpenLogs)),
                ]
                .spacing(theme::M)
                .align_y(Alignment::Center),
                text("Catalog, backups, logs and exports live here. Choose another with --data-dir or SUPABACKUP_DATA_DIR. Logs: one file per day, 14 days kept, secrets redacted; `supabackup logs --follow` prints them.")
                    .size(theme::SMALL)
                    .style(theme::muted),
            ]
            .spacing(theme::S),
        );
        let look = widget::card(
            "Appearance",
            column![
                row![
                    text("Theme").width(Length::Fixed(200.0)),
                    pick_list(ThemeChoice::ALL, Some(d.theme), Message::Theme).padding(theme::S),
                ]
                .align_y(Alignment::Center),
            ]
            .spacing(theme::M),
        );
        let defaults = widget::card(
            "Default backup options",
            column![
                row![
                    widget::field(
                        "Type",
                        pick_list(
                            KindChoice::ALL,
                            Some(KindChoice(d.default_backup.kind)),
                            Message::Kind
                        )
                        .padding(theme::S)
                        .width(Length::Fill),
                        None,
                        None
                    ),
                    widget::field(
                        "Compression",
                        pick_list(
                            CodecChoice::ALL,
                            Some(CodecChoice(d.default_backup.codec)),
                            Message::Codec
                        )
                        .padding(theme::S)
                        .width(Length::Fill),
                        None,
                        None
                    ),
                    widget::field(
                        "Level",
                        pick_list(
                            LevelChoice::all(),
                            Some(LevelChoice(d.default_backup.level)),
                            Message::Level
                        )
                        .padding(theme::S)
                        .width(Length::Fill),
                        None,
                        None
                    ),
                    widget::field(
                        "Data streams",
                        pick_list(
                            StreamsChoice::all(),
                            Some(StreamsChoice(d.default_backup.streams)),
                            Message::Streams
                        )
                        .padding(theme::S)
                        .width(Length::Fill),
                        None,
                        None
                    ),
                    widget::field(
                        "Encryption",
                        toggler(d.default_backup.encrypt).on_toggle(Message::Encrypt),
                        None,
                        None
                    ),
                ]
                .spacing(theme::M),
                row![
                    widget::field(
                        "Only these schemas",
                        text_input("all user schemas", &self.schemas)
                            .on_input(Message::Schemas)
                            .padding(theme::S),
                        None,
                        None
                    ),
                    widget::field(
                        "Leave out table data",
                        text_input("schema.table, …", &self.exclude)
                            .on_input(Message::Exclude)
                            .padding(theme::S),
                        self.error("defaults"),
                        None
                    ),
                ]
                .spacing(theme::M),
            ]
            .spacing(theme::M),
        );
        let mut scratch_col = column![
            text("Restore tests create a throw-away database on this server, restore a backup into it, compare every table, and drop it. Without a setting, a local PostgreSQL on port 5432 is tried. No password in the URL: use a local role or ~/.pgpass.")
                .size(theme::SMALL)
                .style(theme::muted),
            row![
                text_input("postgresql://postgres@localhost:5432/postgres", &self.scratch_url)
                    .on_input(Message::ScratchUrl)
                    .padding(theme::S)
                    .style(theme::input(self.error("scratch").is_some())),
                widget::secondary_button(
                    if self.scratch_testing { "Testing…" } else { "Test" },
                    (!self.scratch_testing && !self.scratch_url.trim().is_empty()).then_some(Message::TestScratch)
                ),
            ]
            .spacing(theme::S),
        ]
        .spacing(theme::S);
        if let Some(e) = self.error("scratch") {
            scratch_col = scratch_col.push(
                text(e.to_owned())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        match &self.scratch_test {
            Some(Ok(r)) => scratch_col = scratch_col.push(super::report::view(r)),
            Some(Err(e)) => {
                scratch_col = scratch_col.push(
                    text(e.message.clone())
                        .size(theme::SMALL)
                        .style(theme::toned(Tone::Danger)),
                )
            }
            None => {}
        }
        let scratch = widget::card("Scratch server for restore tests", scratch_col);

        let page = scrollable(
            column![
                header,
                self.alerts.view().map(Message::Alerts),
                storage,
                self.destinations.view().map(Message::Destinations),
                self.fleet.view().map(Message::Fleet),
                self.moving.card().map(Message::Moving),
                look,
                defaults,
                scratch,
                self.passphrases.view().map(Message::Passphrases)
            ]
            .spacing(theme::L)
            .padding(iced::Padding {
                right: theme::M,
                ..iced::Padding::ZERO
            }),
        )
        .height(Length::Fill);
        self.moving.overlay(page.into(), Message::Moving)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drafts_validate_and_save_as_an_effect() {
        let (ctx, _dir, fake) = crate::ui::testing::ctx().await;
        let mut s = Settings::default();
        s.reset(&Prefs::default());
        assert!(!s.dirty());
        let _ = s.update(Message::Theme(ThemeChoice::Light), &ctx);
        assert!(s.dirty());
        let _ = s.update(Message::Exclude("nodot".into()), &ctx);
        assert!(s.error("defaults").is_some());
        assert!(
            s.update(Message::Save, &ctx).effects.is_empty(),
            "invalid drafts are not saved"
        );
        let _ = s.update(Message::Exclude("public.audit".into()), &ctx);
        let _ = s.update(Message::ScratchUrl("not a url".into()), &ctx);
        assert!(s.error("scratch").is_some());
        let _ = s.update(
            Message::ScratchUrl("postgresql://u:pw@localhost/db".into()),
            &ctx,
        );
        assert!(s.error("scratch").is_some_and(|e| e.contains("password")));
        let _ = s.update(Message::ScratchUrl(String::new()), &ctx);
        let a = s.update(Message::Save, &ctx);
        match a.effects.first() {
            Some(Effect::PrefsChanged(p)) => {
                assert_eq!(p.theme, ThemeChoice::Light);
                assert_eq!(p.default_backup.exclude_tables, ["public.audit"]);
            }
            other => panic!("expected PrefsChanged, got {other:?}"),
        }
        assert!(!s.dirty());
        // The passphrase forms check before calling the engine.
        use super::super::passphrases::Message as P;
        let _ = s.update(Message::Passphrases(P::NewPassphrase("short".into())), &ctx);
        assert!(
            !s.update(Message::Passphrases(P::ChangePassphrase), &ctx)
                .has_task()
        );
        assert!(s.passphrases.passphrase_error.is_some());
        // Nothing touched the platform (dialogs, openers).
        assert!(fake.calls().is_empty());
    }
}
