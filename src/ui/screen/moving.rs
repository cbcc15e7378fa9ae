//! Settings' "Move to a new machine" card: export the whole configuration
//! to one file, or import one written on another machine (the dialog is the
//! project transfer's, on the whole configuration).

use iced::widget::{column, row, text};
use iced::{Element, Task};

use super::transfer::{self, Transfer};
use super::{Action, Ctx, Effect};
use crate::ui::theme;
use crate::ui::widget;

#[derive(Debug, Clone)]
pub enum Message {
    Open(transfer::Mode),
    Transfer(transfer::Message),
    /// The desktop app's preferences, read again after an import.
    PrefsLoaded(Result<crate::ui::prefs::Prefs, crate::engine::Error>),
}

#[derive(Debug, Default)]
pub struct Panel {
    pub dialog: Option<Transfer>,
}

impl Panel {
    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Open(mode) => {
                self.dialog = Some(Transfer::everything(mode, ctx.engine.data_dir().exports()));
                Action::none()
            }
            Message::Transfer(m) => {
                let Some(t) = &mut self.dialog else {
                    return Action::none();
                };
                match t.update(m, &ctx.engine, &ctx.platform) {
                    transfer::Event::None => Action::none(),
                    transfer::Event::Run(task) => Action::task(task.map(Message::Transfer)),
                    transfer::Event::Closed => {
                        self.dialog = None;
                        Action::none()
                    }
                    transfer::Event::Changed(what) => Action::task(Task::perform(
                        crate::ui::prefs::load_async(crate::ui::prefs::path(ctx.engine.data_dir())),
                        Message::PrefsLoaded,
                    ))
                    .with(Effect::Notice(widget::Notice::success(what)))
                    .with(Effect::DataChanged),
                }
            }
            Message::PrefsLoaded(Ok(p)) => Action::effect(Effect::PrefsChanged(p)),
            Message::PrefsLoaded(Err(e)) => Action::error(&e),
        }
    }

    pub fn card(&self) -> Element<'_, Message> {
        widget::card(
            "Move to a new machine",
            column![
                text("One file with your projects, their hooks and probe intervals, destinations, schedules, alert rules and settings. Export it here, import it on the new machine; with the secrets included (encrypted with a passphrase you choose) nothing needs typing again. Backups stay where they are: once the destination is here, its \"Find backups\" (Destinations, above) lists them again.")
                    .size(theme::SMALL)
                    .style(theme::muted),
                row![
                    widget::secondary_button(
                        "Export configuration…",
                        Some(Message::Open(transfer::Mode::Export))
                    ),
                    widget::secondary_button(
                        "Import configuration…",
                        Some(Message::Open(transfer::Mode::Import))
                    ),
                ]
                .spacing(theme::S),
            ]
            .spacing(theme::S),
        )
    }

    /// The page with the dialog over it, when one is open.
    pub fn overlay<'a, M: Clone + 'a>(
        &'a self,
        base: Element<'a, M>,
        wrap: fn(Message) -> M,
    ) -> Element<'a, M> {
        match &self.dialog {
            Some(t) => widget::modal(
                base,
                t.view().map(move |m| wrap(Message::Transfer(m))),
                wrap(Message::Transfer(transfer::Message::Close)),
            ),
            None => base,
        }
    }
}
