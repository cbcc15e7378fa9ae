//! Settings' passphrases card: the master passphrase (re-wraps the vault's
//! key) and the backup passphrase (encrypts new backup files).

use iced::widget::{column, row, text, text_input};
use iced::{Element, Task};

use super::{Action, Ctx};
use crate::engine::Error;
use crate::engine::crypto::Secret;
use crate::engine::vault::MIN_PASSPHRASE_LEN;
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

#[derive(Debug, Clone)]
pub enum Message {
    NewPassphrase(String),
    ConfirmPassphrase(String),
    ChangePassphrase,
    PassphraseChanged(Result<(), Error>),
    BackupPassphrase(String),
    ConfirmBackupPassphrase(String),
    SetBackupPassphrase,
    BackupPassphraseSet(Result<(), Error>),
}

#[derive(Debug, Default)]
pub struct Panel {
    pub new_passphrase: String,
    pub confirm_passphrase: String,
    pub passphrase_error: Option<String>,
    pub passphrase_busy: bool,
    pub backup_passphrase: String,
    pub confirm_backup_passphrase: String,
    pub backup_passphrase_error: Option<String>,
    pub backup_passphrase_busy: bool,
}

impl Panel {
    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::NewPassphrase(p) => {
                self.new_passphrase = p;
                self.passphrase_error = None;
                Action::none()
            }
            Message::ConfirmPassphrase(p) => {
                self.confirm_passphrase = p;
                self.passphrase_error = None;
                Action::none()
            }
            Message::ChangePassphrase => {
                if self.new_passphrase.chars().count() < MIN_PASSPHRASE_LEN {
                    self.passphrase_error =
                        Some(format!("at least {MIN_PASSPHRASE_LEN} characters"));
                    return Action::none();
                }
                if self.new_passphrase != self.confirm_passphrase {
                    self.passphrase_error = Some("the two passphrases differ".into());
                    return Action::none();
                }
                self.passphrase_busy = true;
                let engine = ctx.engine.clone();
                let p = Secret::new(self.new_passphrase.clone());
                Action::task(Task::perform(
                    async move { engine.change_passphrase(p).await },
                    Message::PassphraseChanged,
                ))
            }
            Message::PassphraseChanged(r) => {
                self.passphrase_busy = false;
                match r {
                    Ok(()) => {
                        self.new_passphrase.clear();
                        self.confirm_passphrase.clear();
                        Action::notice(widget::Notice::success("Master passphrase changed"))
                    }
                    Err(e) => {
                        self.passphrase_error = Some(e.message);
                        Action::none()
                    }
                }
            }
            Message::BackupPassphrase(p) => {
                self.backup_passphrase = p;
                self.backup_passphrase_error = None;
                Action::none()
            }
            Message::ConfirmBackupPassphrase(p) => {
                self.confirm_backup_passphrase = p;
                self.backup_passphrase_error = None;
                Action::none()
            }
            Message::SetBackupPassphrase => {
                if self.backup_passphrase.chars().count() < MIN_PASSPHRASE_LEN {
                    self.backup_passphrase_error =
                        Some(format!("at least {MIN_PASSPHRASE_LEN} characters"));
                    return Action::none();
                }
                if self.backup_passphrase != self.confirm_backup_passphrase {
                    self.backup_passphrase_error = Some("the two passphrases differ".into());
                    return Action::none();
                }
                self.backup_passphrase_busy = true;
                let engine = ctx.engine.clone();
                let p = Secret::new(self.backup_passphrase.clone());
                Action::task(Task::perform(
                    async move { engine.set_backup_passphrase(p).await },
                    Message::BackupPassphraseSet,
                ))
            }
            Message::BackupPassphraseSet(r) => {
                self.backup_passphrase_busy = false;
                match r {
                    Ok(()) => {
                        self.backup_passphrase.clear();
                        self.confirm_backup_passphrase.clear();
                        Action::notice(
                            widget::Notice::success("Backup passphrase set")
                                .with_detail("new backups use it; older ones still need the passphrase they were made with"),
                        )
                    }
                    Err(e) => {
                        self.backup_passphrase_error = Some(e.message);
                        Action::none()
                    }
                }
            }
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut master = column![
            text("Re-wraps the vault's master key; stored credentials are untouched.")
                .size(theme::SMALL)
                .style(theme::muted),
            row![
                text_input("new passphrase", &self.new_passphrase)
                    .secure(true)
                    .on_input(Message::NewPassphrase)
                    .padding(theme::S),
                text_input("repeat it", &self.confirm_passphrase)
                    .secure(true)
                    .on_input(Message::ConfirmPassphrase)
                    .on_submit(Message::ChangePassphrase)
                    .padding(theme::S),
                widget::secondary_button(
                    if self.passphrase_busy {
                        "Changing…"
                    } else {
                        "Change"
                    },
                    (!self.passphrase_busy).then_some(Message::ChangePassphrase)
                ),
            ]
            .spacing(theme::S),
        ]
        .spacing(theme::S);
        if let Some(e) = &self.passphrase_error {
            master = master.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        let mut backup = column![
            text("Encrypts new backup files. Keep a copy: restoring on another machine needs it. Older backups keep needing the passphrase they were made with.")
                .size(theme::SMALL)
                .style(theme::toned(Tone::Warning)),
            row![
                text_input("backup passphrase", &self.backup_passphrase).secure(true).on_input(Message::BackupPassphrase).padding(theme::S),
                text_input("repeat it", &self.confirm_backup_passphrase).secure(true).on_input(Message::ConfirmBackupPassphrase).on_submit(Message::SetBackupPassphrase).padding(theme::S),
                widget::secondary_button(if self.backup_passphrase_busy { "Saving…" } else { "Set" }, (!self.backup_passphrase_busy).then_some(Message::SetBackupPassphrase)),
            ]
            .spacing(theme::S),
        ]
        .spacing(theme::S);
        if let Some(e) = &self.backup_passphrase_error {
            backup = backup.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        widget::card(
            "Passphrases",
            column![
                text("Master passphrase").font(theme::BOLD),
                master,
                text("Backup passphrase").font(theme::BOLD),
                backup
            ]
            .spacing(theme::S),
        )
    }
}
