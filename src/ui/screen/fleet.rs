//! Settings' "Supabase account" card: the personal access token (checked
//! and sealed by the engine), the account's projects and branches with
//! checkboxes to add them in one step with a schedule, and "add new
//! projects automatically" for the scheduler's tick.

use std::collections::BTreeSet;

use iced::widget::{checkbox, column, row, text, text_input, toggler};
use iced::{Alignment, Element, Length, Task};

use super::{Action, Ctx, Effect};
use crate::engine::Error;
use crate::engine::crypto::Secret;
use crate::engine::fleet::{FleetAddReport, FleetConfig, FleetEntry, JobTemplate, api};
use crate::engine::schedule::Retention;
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

pub const TOKEN_ID: &str = "fleet-token";

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<(FleetConfig, bool), Error>),
    Token(String),
    Connect,
    Connected(Result<usize, Error>),
    Forget,
    Forgot(Result<(), Error>),
    Refresh,
    Listed(Result<Vec<FleetEntry>, Error>),
    Toggle(String, bool),
    Cron(String),
    Org(String),
    AutoAdd(bool),
    Add,
    Added(Result<FleetAddReport, Error>),
    SaveAuto,
    AutoSaved(Result<FleetConfig, Error>),
}

#[derive(Debug, Default)]
pub struct Panel {
    pub config: FleetConfig,
    pub has_token: bool,
    pub token: String,
    pub entries: Vec<FleetEntry>,
    /// Refs chosen to add.
    pub chosen: BTreeSet<String>,
    /// The schedule added projects get ("" for none).
    pub cron: String,
    /// Only this organization (id, slug or name; "" for every one).
    pub org: String,
    pub auto_add: bool,
    pub busy: bool,
    pub error: Option<String>,
    pub report: Option<FleetAddReport>,
}

impl Panel {
    pub fn load(&self, ctx: &Ctx) -> Task<Message> {
        let engine = ctx.engine.clone();
        Task::perform(
            async move {
                let c = engine.fleet_config().await?;
                Ok((c, engine.has_fleet_token().await?))
            },
            Message::Loaded,
        )
    }

    fn list(&self, ctx: &Ctx) -> Task<Message> {
        let engine = ctx.engine.clone();
        Task::perform(
            async move { engine.fleet_projects(None).await },
            Message::Listed,
        )
    }

    fn template(&self) -> Option<JobTemplate> {
        let cron = self.cron.trim();
        (!cron.is_empty()).then(|| JobTemplate {
            cron: cron.to_owned(),
            timezone: String::new(),
            retention: self
                .config
                .template
                .as_ref()
                .map(|t| t.retention)
                .unwrap_or(Retention {
                    keep_last: Some(14),
                    ..Default::default()
                }),
            backup: Default::default(),
        })
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok((config, has_token))) => {
                self.cron = config
                    .template
                    .as_ref()
                    .map(|t| t.cron.clone())
                    .unwrap_or_else(|| "0 3 * * *".into());
                self.auto_add = config.auto_add;
                self.org = config.organization.clone().unwrap_or_default();
                self.config = config;
                self.has_token = has_token;
                if has_token && self.entries.is_empty() {
                    self.busy = true;
                    return Action::task(self.list(ctx));
                }
                Action::none()
            }
            Message::Loaded(Err(e)) => Action::error(&e),
            Message::Token(t) => {
                self.token = t;
                self.error = None;
                Action::none()
            }
            Message::Connect => {
                if self.token.trim().is_empty() {
                    self.error = Some("paste a personal access token first".into());
                    return Action::none();
                }
                self.busy = true;
                let (engine, token) = (ctx.engine.clone(), Secret::new(self.token.clone()));
                Action::task(Task::perform(
                    async move { engine.set_fleet_token(token).await },
                    Message::Connected,
                ))
            }
            Message::Connected(r) => {
                self.busy = false;
                match r {
                    Ok(n) => {
                        self.token.clear();
                        self.has_token = true;
                        self.busy = true;
                        Action::task(self.list(ctx)).with(Effect::Notice(widget::Notice::success(
                            format!("Connected to the Supabase account ({n} organization(s))"),
                        )))
                    }
                    Err(e) => {
                        self.error = Some(e.message);
                        Action::none()
                    }
                }
            }
            Message::Forget => {
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.remove_fleet_token().await },
                    Message::Forgot,
                ))
            }
            Message::Forgot(r) => match r {
                Ok(()) => {
                    self.has_token = false;
                    self.entries.clear();
                    self.chosen.clear();
                    Action::none()
                }
                Err(e) => Action::error(&e),
            },
            Message::Refresh => {
                self.busy = true;
                Action::task(self.list(ctx))
            }
            Message::Listed(r) => {
                self.busy = false;
                match r {
                    Ok(list) => {
                        self.chosen.retain(|c| {
                            list.iter()
                                .any(|e| e.project_ref == *c && e.added_as.is_none())
                        });
                        self.entries = list;
                        self.error = None;
                    }
                    Err(e) => self.error = Some(e.message),
                }
                Action::none()
            }
            Message::Toggle(r, on) => {
                if on {
                    self.chosen.insert(r);
                } else {
                    self.chosen.remove(&r);
                }
                Action::none()
            }
            Message::Cron(c) => {
                self.cron = c;
                Action::none()
            }
            Message::Org(o) => {
                self.org = o;
                Action::none()
            }
            Message::AutoAdd(b) => {
                self.auto_add = b;
                Action::none()
            }
            Message::Add => {
                if self.chosen.is_empty() || self.busy {
                    return Action::none();
                }
                self.busy = true;
                self.report = None;
                let (engine, refs, template) = (
                    ctx.engine.clone(),
                    self.chosen.iter().cloned().collect::<Vec<_>>(),
                    self.template(),
                );
                Action::task(Task::perform(
                    async move { engine.fleet_add(&refs, template).await },
                    Message::Added,
                ))
            }
            Message::Added(r) => {
                self.busy = false;
                match r {
                    Ok(report) => {
                        let n = report.added.len();
                        self.report = Some(report);
                        self.chosen.clear();
                        self.busy = true;
                        Action::task(self.list(ctx))
                            .with(Effect::Notice(
                                widget::Notice::success(format!("Added {n} project(s) from the Supabase account"))
                                    .with_detail("give each its database password in Projects (the API does not share them)"),
                            ))
                            .with(Effect::DataChanged)
                    }
                    Err(e) => {
                        self.error = Some(e.message);
                        Action::none()
                    }
                }
            }
            Message::SaveAuto => {
                let config = FleetConfig {
                    auto_add: self.auto_add,
                    template: self.template(),
                    organization: Some(self.org.trim().to_owned()).filter(|o| !o.is_empty()),
                    ..self.config.clone()
                };
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.set_fleet_config(config).await },
                    Message::AutoSaved,
                ))
            }
            Message::AutoSaved(r) => match r {
                Ok(c) => {
                    self.config = c;
                    self.error = None;
                    // The organization may have changed what is listed.
                    self.busy = true;
                    Action::task(self.list(ctx)).with(Effect::Notice(widget::Notice::success(
                        "Supabase account settings saved",
                    )))
                }
                Err(e) => {
                    self.error = Some(e.message);
                    Action::none()
                }
            },
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut col = column![
            text("Add every project of your organization at once, and pick up new ones by themselves. A personal access token (supabase.com/dashboard/account/tokens) lists them; it is checked, then sealed in the vault.")
                .size(theme::SMALL)
                .style(theme::muted),
        ]
        .spacing(theme::S);
        if !self.has_token {
            col = col.push(
                row![
                    text_input("sbp_…", &self.token)
                        .id(TOKEN_ID)
                        .secure(true)
                        .on_input(Message::Token)
                        .on_submit(Message::Connect)
                        .padding(theme::S),
                    widget::primary_button(
                        if self.busy {
                            "Connecting…"
                        } else {
                            "Connect"
                        },
                        (!self.busy).then_some(Message::Connect)
                    ),
                ]
                .spacing(theme::S),
            );
        } else {
            col = col.push(
                row![
                    text(format!(
                        "{} project(s) and branches in the account",
                        self.entries.len()
                    ))
                    .width(Length::Fill),
                    widget::secondary_button(
                        if self.busy { "Loading…" } else { "Refresh" },
                        (!self.busy).then_some(Message::Refresh)
                    ),
                    widget::secondary_button("Forget token", Some(Message::Forget)),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
            for e in &self.entries {
                let line = format!(
                    "{} · {} · {} · {}",
                    e.name,
                    e.project_ref,
                    e.environment.as_str(),
                    api::status_label(&e.status)
                );
                col = col.push(match &e.added_as {
                    Some(name) => Element::from(
                        row![
                            text(line).size(theme::SMALL).width(Length::Fill),
                            widget::badge(format!("here as {name}"), Tone::Success),
                        ]
                        .spacing(theme::S),
                    ),
                    None => checkbox(self.chosen.contains(&e.project_ref))
                        .label(line)
                        .on_toggle({
                            let r = e.project_ref.clone();
                            move |on| Message::Toggle(r.clone(), on)
                        })
                        .into(),
                });
            }
            col = col.push(
                row![
                    widget::field(
                        "Schedule for added projects",
                        text_input("0 3 * * * (empty: none)", &self.cron)
                            .on_input(Message::Cron)
                            .padding(theme::S),
                        None,
                        None,
                    ),
                    text(format!("{} chosen", self.chosen.len())).size(theme::SMALL),
                    widget::primary_button(
                        "Add selected",
                        (!self.chosen.is_empty() && !self.busy).then_some(Message::Add)
                    ),
                ]
                .spacing(theme::M)
                .align_y(Alignment::End),
            );
            col = col.push(
                row![
                    text_input("organization (id, slug or name; empty: all)", &self.org)
                        .on_input(Message::Org)
                        .padding(theme::S)
                        .width(Length::Fixed(320.0)),
                    toggler(self.auto_add)
                        .label("Add new projects automatically (checked every few minutes)")
                        .on_toggle(Message::AutoAdd),
                    widget::secondary_button("Save", Some(Message::SaveAuto)),
                ]
                .spacing(theme::M)
                .align_y(Alignment::Center),
            );
        }
        if let Some(r) = &self.report {
            for (r, why) in &r.failed {
                col = col.push(
                    text(format!("{r}: {why}"))
                        .size(theme::SMALL)
                        .style(theme::toned(Tone::Danger)),
                );
            }
        }
        if let Some(e) = &self.error {
            col = col.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        widget::card("Supabase account", col)
    }
}
