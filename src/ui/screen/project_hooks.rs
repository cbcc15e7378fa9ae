//! The project view's hooks card: the commands run before and after the
//! project's backups started by hand (the backup dialog can skip them for
//! one run), with their timeout and failure policy. Schedules keep hooks
//! of their own (the schedule form).

use iced::widget::{column, text};
use iced::{Element, Task};

use super::job_options::{HookFields, hook_inputs, typed_hook};
use super::{Action, Ctx};
use crate::engine::Error;
use crate::engine::schedule::HookPolicy;
use crate::engine::schedule::hooks::ProjectHooks;
use crate::ui::theme;
use crate::ui::widget;

pub const PRE_ID: &str = "project-hook-pre";
pub const POST_ID: &str = "project-hook-post";
pub const TIMEOUT_ID: &str = "project-hook-timeout";

#[derive(Debug, Clone)]
pub enum Message {
    Loaded(String, Result<ProjectHooks, Error>),
    Pre(String),
    Post(String),
    Timeout(String),
    WarnOnly(bool),
    Save,
    Saved(String, Result<ProjectHooks, Error>),
}

#[derive(Debug, Default)]
pub struct Panel {
    pub project_id: Option<String>,
    pub saved: Option<ProjectHooks>,
    pub pre: String,
    pub post: String,
    pub timeout: String,
    pub warn_only: bool,
    pub saving: bool,
    pub error: Option<String>,
    pub notice: Option<String>,
}

impl Panel {
    pub fn load(&mut self, ctx: &Ctx, project_id: &str) -> Task<Message> {
        *self = Panel {
            project_id: Some(project_id.to_owned()),
            timeout: "300".into(),
            ..Panel::default()
        };
        let (engine, id) = (ctx.engine.clone(), project_id.to_owned());
        let key = id.clone();
        Task::perform(async move { engine.project_hooks(&key).await }, move |r| {
            Message::Loaded(id.clone(), r)
        })
    }

    fn show(&mut self, h: ProjectHooks) {
        self.pre = h
            .pre
            .as_ref()
            .map(|x| x.command.clone())
            .unwrap_or_default();
        self.post = h
            .post
            .as_ref()
            .map(|x| x.command.clone())
            .unwrap_or_default();
        if let Some(x) = h.pre.as_ref().or(h.post.as_ref()) {
            self.timeout = x.timeout_secs.to_string();
            self.warn_only = x.on_failure == HookPolicy::Warn;
        }
        self.saved = Some(h);
    }

    /// The hooks as typed, or what to fix.
    pub fn hooks(&self) -> Result<ProjectHooks, String> {
        Ok(ProjectHooks {
            pre: typed_hook(&self.pre, &self.timeout, self.warn_only)?,
            post: typed_hook(&self.post, &self.timeout, self.warn_only)?,
        })
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Loaded(id, r) | Message::Saved(id, r) => {
                if self.project_id.as_deref() != Some(id.as_str()) {
                    return Action::none();
                }
                let was_saving = std::mem::take(&mut self.saving);
                match r {
                    Ok(h) => {
                        self.error = None;
                        self.show(h);
                        if was_saving {
                            self.notice = Some("Hooks saved".into());
                        }
                    }
                    Err(e) => self.error = Some(e.message),
                }
                Action::none()
            }
            Message::Pre(s) => self.edit(|p| p.pre = s),
            Message::Post(s) => self.edit(|p| p.post = s),
            Message::Timeout(s) => self.edit(|p| p.timeout = s),
            Message::WarnOnly(b) => self.edit(|p| p.warn_only = b),
            Message::Save => {
                let Some(id) = self.project_id.clone() else {
                    return Action::none();
                };
                if self.saving {
                    return Action::none();
                }
                let hooks = match self.hooks() {
                    Ok(h) => h,
                    Err(e) => {
                        self.error = Some(e);
                        return Action::none();
                    }
                };
                self.saving = true;
                let engine = ctx.engine.clone();
                let key = id.clone();
                Action::task(Task::perform(
                    async move {
                        engine.set_project_hooks(&key, hooks).await?;
                        engine.project_hooks(&key).await
                    },
                    move |r| Message::Saved(id.clone(), r),
                ))
            }
        }
    }

    fn edit(&mut self, f: impl FnOnce(&mut Self)) -> Action<Message> {
        f(self);
        self.error = None;
        self.notice = None;
        Action::none()
    }

    pub fn view(&self) -> Element<'_, Message> {
        let changed = self
            .saved
            .as_ref()
            .is_some_and(|s| self.hooks().ok().as_ref() != Some(s));
        let (commands, limits) = hook_inputs(HookFields {
            pre: &self.pre,
            post: &self.post,
            timeout: &self.timeout,
            warn_only: self.warn_only,
            ids: [PRE_ID, POST_ID, TIMEOUT_ID],
            on_pre: Message::Pre,
            on_post: Message::Post,
            on_timeout: Message::Timeout,
            on_warn: Message::WarnOnly,
        });
        let save = iced::widget::row![
            widget::fill(),
            widget::secondary_button(
                if self.saving {
                    "Saving…"
                } else {
                    "Save hooks"
                },
                (changed && !self.saving).then_some(Message::Save),
            )
        ];
        let mut col = column![
            text("Hooks of manual backups").font(theme::BOLD),
            text("Run around \u{201c}Back up now\u{201d} and `backup run` (the backup dialog can skip them once); schedules have their own.")
                .size(theme::SMALL)
                .style(theme::muted),
            commands,
            limits,
            save,
        ]
        .spacing(theme::S);
        if let Some(e) = &self.error {
            col = col.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(theme::Tone::Danger)),
            );
        }
        if let Some(n) = &self.notice {
            col = col.push(text(n.clone()).size(theme::SMALL).style(theme::muted));
        }
        col.into()
    }
}
