//! Unlock (or, on first use, create) the credential vault.

use iced::widget::{column, container, text, text_input};
use iced::{Alignment, Element, Length, Task};

use super::{Action, Effect};
use crate::engine::crypto::Secret;
use crate::engine::vault::MIN_PASSPHRASE_LEN;
use crate::engine::{Engine, Error};
use crate::ui::theme;
use crate::ui::widget;

pub const PASSPHRASE_ID: &str = "unlock-passphrase";
pub const CONFIRM_ID: &str = "unlock-confirm";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The vault exists: type its passphrase.
    Unlock,
    /// First use: choose a passphrase.
    Create,
}

#[derive(Debug, Clone)]
pub enum Message {
    PassphraseChanged(String),
    ConfirmChanged(String),
    Submit,
    Done(Result<(), Error>),
}

#[derive(Debug)]
pub struct Unlock {
    pub mode: Mode,
    pub passphrase: String,
    pub confirm: String,
    pub error: Option<String>,
    pub busy: bool,
}

impl Unlock {
    pub fn new(mode: Mode, error: Option<&Error>) -> Self {
        Unlock {
            mode,
            passphrase: String::new(),
            confirm: String::new(),
            error: error.map(|e| e.message.clone()),
            busy: false,
        }
    }

    /// Focus the passphrase field.
    pub fn focus<M: Send + 'static>() -> Task<M> {
        iced::widget::operation::focus(PASSPHRASE_ID)
    }

    pub fn update(&mut self, message: Message, engine: &Engine) -> Action<Message> {
        match message {
            Message::PassphraseChanged(p) => {
                self.passphrase = p;
                self.error = None;
                Action::none()
            }
            Message::ConfirmChanged(p) => {
                self.confirm = p;
                self.error = None;
                Action::none()
            }
            Message::Submit => {
                if self.busy {
                    return Action::none();
                }
                if self.passphrase.is_empty() {
                    self.error = Some("type the master passphrase".into());
                    return Action::none();
                }
                if self.mode == Mode::Create {
                    if self.passphrase.chars().count() < MIN_PASSPHRASE_LEN {
                        self.error =
                            Some(format!("choose at least {MIN_PASSPHRASE_LEN} characters"));
                        return Action::none();
                    }
                    if self.passphrase != self.confirm {
                        self.error = Some("the two passphrases differ".into());
                        return Action::none();
                    }
                }
                self.busy = true;
                let secret = Secret::new(self.passphrase.clone());
                let engine = engine.clone();
                let mode = self.mode;
                Action::task(Task::perform(
                    async move {
                        match mode {
                            Mode::Unlock => engine.unlock(Some(secret)).await,
                            Mode::Create => engine.setup_vault(Some(secret)).await,
                        }
                    },
                    Message::Done,
                ))
            }
            Message::Done(Ok(())) => {
                self.busy = false;
                self.passphrase.clear();
                self.confirm.clear();
                Action::effect(Effect::Unlocked)
            }
            Message::Done(Err(e)) => {
                self.busy = false;
                self.passphrase.clear();
                self.error = Some(match &e.hint {
                    Some(h) if e.kind != crate::engine::ErrorKind::Auth => {
                        format!("{} ({h})", e.message)
                    }
                    _ => e.message.clone(),
                });
                Action::task(Self::focus())
            }
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let (title, intro, button) = match self.mode {
            Mode::Unlock => (
                "Unlock supabackup",
                "Your project credentials are sealed in a vault. Type the master passphrase to open it.",
                "Unlock",
            ),
            Mode::Create => (
                "Create your vault",
                "Choose a master passphrase. It seals every database password and key you add; keep it somewhere safe.",
                "Create vault",
            ),
        };
        let submit = (!self.busy).then_some(Message::Submit);
        let mut form = column![
            text(title).size(theme::H1).font(theme::BOLD),
            text(intro).style(theme::muted),
            widget::field(
                "Master passphrase",
                text_input("passphrase", &self.passphrase)
                    .id(PASSPHRASE_ID)
                    .secure(true)
                    .on_input(Message::PassphraseChanged)
                    .on_submit_maybe(submit.clone())
                    .padding(theme::S)
                    .style(theme::input(self.error.is_some())),
                None,
                None,
            ),
        ]
        .spacing(theme::M);
        if self.mode == Mode::Create {
            form = form.push(widget::field(
                "Repeat it",
                text_input("passphrase again", &self.confirm)
                    .id(CONFIRM_ID)
                    .secure(true)
                    .on_input(Message::ConfirmChanged)
                    .on_submit_maybe(submit.clone())
                    .padding(theme::S)
                    .style(theme::input(false)),
                None,
                Some("at least 8 characters"),
            ));
        }
        if let Some(e) = &self.error {
            form = form.push(text(e.clone()).style(theme::toned(theme::Tone::Danger)));
        }
        form = form.push(
            widget::primary_button(if self.busy { "Opening…" } else { button }, submit)
                .width(Length::Fill),
        );
        container(
            container(form.align_x(Alignment::Start))
                .padding(theme::XL)
                .max_width(440)
                .style(theme::card),
        )
        .center(Length::Fill)
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn validates_before_calling_the_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = crate::engine::EngineOptions::new(
            crate::engine::paths::DataDir::at(dir.path()),
            "test",
        );
        opts.keystore = std::sync::Arc::new(crate::engine::vault::NoKeychain);
        let engine = Engine::open(opts).await.expect("engine");
        let mut s = Unlock::new(Mode::Create, None);
        let a = s.update(Message::Submit, &engine);
        assert!(!a.has_task());
        assert_eq!(s.error.as_deref(), Some("type the master passphrase"));
        let _ = s.update(Message::PassphraseChanged("short".into()), &engine);
        let _ = s.update(Message::Submit, &engine);
        assert!(s.error.as_deref().is_some_and(|e| e.contains("at least")));
        let _ = s.update(Message::PassphraseChanged("long enough".into()), &engine);
        let _ = s.update(Message::ConfirmChanged("different".into()), &engine);
        let _ = s.update(Message::Submit, &engine);
        assert_eq!(s.error.as_deref(), Some("the two passphrases differ"));
        let _ = s.update(Message::ConfirmChanged("long enough".into()), &engine);
        let a = s.update(Message::Submit, &engine);
        assert!(a.has_task() && s.busy);
        // A second submit while busy does nothing.
        assert!(!s.update(Message::Submit, &engine).has_task());
        let a = s.update(
            Message::Done(Err(Error::auth("wrong master passphrase"))),
            &engine,
        );
        assert!(a.effects.is_empty());
        assert_eq!(s.error.as_deref(), Some("wrong master passphrase"));
        assert!(s.passphrase.is_empty() && !s.busy);
        let a = s.update(Message::Done(Ok(())), &engine);
        assert!(matches!(a.effects.as_slice(), [Effect::Unlocked]));
    }
}
