//! Projects: a list grouped by environment with search; add/edit with
//! inline validation; connection test with the full report; remove with
//! confirmation; import/export.

use std::collections::HashMap;

use iced::widget::{button, column, container, row, scrollable, text, text_input};
use iced::{Alignment, Element, Length, Task};

use super::project_form::{self, Form};
use super::transfer::{self, Transfer};
use super::{Action, Ctx, Effect, Nav, report};
use crate::engine::Error;
use crate::engine::pg::probe::ConnectionReport;
use crate::engine::project::{Environment, Project};
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

pub const SEARCH_ID: &str = "projects-search";

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<Vec<Project>, Error>),
    Search(String),
    Select(String),
    New,
    Edit(String),
    Form(project_form::Message),
    Test(String),
    Tested(String, Result<ConnectionReport, Error>),
    AskRemove(String),
    ConfirmRemove,
    CancelRemove,
    Removed(Result<Project, Error>),
    OpenTransfer(transfer::Mode),
    Transfer(transfer::Message),
    ShowBackups(String),
    BackUp(String),
    Schedules(String),
    Health(super::health::Message),
    Hooks(super::project_hooks::Message),
    Escape,
}

#[derive(Debug, Default)]
pub struct Projects {
    pub list: Vec<Project>,
    pub loaded: bool,
    pub loading: bool,
    pub error: Option<Error>,
    pub search: String,
    pub selected: Option<String>,
    pub form: Option<Form>,
    /// Connection tests by project id: `None` while running.
    pub tests: HashMap<String, Option<Result<ConnectionReport, Error>>>,
    pub confirm_remove: Option<Project>,
    pub removing: bool,
    pub transfer: Option<Transfer>,
    /// The selected project's live health (probes and their charts).
    pub health: super::health::Panel,
    /// The selected project's manual-backup hooks.
    pub hooks: super::project_hooks::Panel,
}

/// Does `p` match the search text (name, ref, description, environment)?
pub fn matches(p: &Project, search: &str) -> bool {
    let q = search.trim().to_lowercase();
    q.is_empty()
        || p.name.to_lowercase().contains(&q)
        || p.project_ref.contains(&q)
        || p.environment.as_str().contains(&q)
        || p.description
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains(&q)
}

impl Projects {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        self.loading = true;
        let engine = ctx.engine.clone();
        Task::perform(async move { engine.list_projects().await }, Message::Loaded)
    }

    pub fn open_new(&mut self) -> Task<Message> {
        self.form = Some(Form::new());
        iced::widget::operation::focus(project_form::Field::Name.id())
    }

    pub fn select(&mut self, id: String) {
        self.form = None;
        self.selected = Some(id);
    }

    /// Loads the selected project's probe history when it is not shown yet.
    fn load_health(&mut self, ctx: &Ctx) -> Task<Message> {
        match self.selected.clone() {
            Some(id) if self.health.project_id.as_deref() != Some(id.as_str()) => Task::batch([
                self.health.load(ctx, &id).map(Message::Health),
                self.hooks.load(ctx, &id).map(Message::Hooks),
            ]),
            _ => Task::none(),
        }
    }

    pub fn selected_project(&self) -> Option<&Project> {
        let id = self.selected.as_ref()?;
        self.list.iter().find(|p| &p.id == id)
    }

    /// Visible projects grouped by environment (production first).
    pub fn groups(&self) -> Vec<(Environment, Vec<&Project>)> {
        Environment::ALL
            .iter()
            .map(|env| {
                (
                    *env,
                    self.list
                        .iter()
                        .filter(|p| p.environment == *env && matches(p, &self.search))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, g)| !g.is_empty())
            .collect()
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok(list)) => {
                self.loading = false;
                self.loaded = true;
                self.error = None;
                self.list = list;
                if self
                    .selected
                    .as_ref()
                    .is_some_and(|id| !self.list.iter().any(|p| &p.id == id))
                {
                    self.selected = None;
                }
                if self.selected.is_none() {
                    self.selected = self.list.first().map(|p| p.id.clone());
                }
                Action::task(self.load_health(ctx))
            }
            Message::Loaded(Err(e)) => {
                self.loading = false;
                self.error = Some(e);
                Action::none()
            }
            Message::Search(s) => {
                self.search = s;
                Action::none()
            }
            Message::Select(id) => {
                self.select(id);
                Action::task(self.load_health(ctx))
            }
            Message::Health(m) => self.health.update(m, ctx).map(Message::Health),
            Message::Hooks(m) => self.hooks.update(m, ctx).map(Message::Hooks),
            Message::New => Action::task(self.open_new()),
            Message::Edit(id) => {
                if let Some(p) = self.list.iter().find(|p| p.id == id) {
                    self.form = Some(Form::edit(p));
                    return Action::task(iced::widget::operation::focus(
                        project_form::Field::Name.id(),
                    ));
                }
                Action::none()
            }
            Message::Form(m) => {
                let Some(form) = &mut self.form else {
                    return Action::none();
                };
                match form.update(m, ctx) {
                    project_form::Event::None => Action::none(),
                    project_form::Event::Run(t) => Action::task(t.map(Message::Form)),
                    project_form::Event::Cancelled => {
                        self.form = None;
                        Action::none()
                    }
                    project_form::Event::Saved(p) => {
                        let verb = if form.editing.is_some() {
                            "Saved"
                        } else {
                            "Added"
                        };
                        self.form = None;
                        self.selected = Some(p.id.clone());
                        Action::task(self.load(ctx))
                            .with(Effect::Notice(widget::Notice::success(format!(
                                "{verb} project {}",
                                p.name
                            ))))
                            .with(Effect::DataChanged)
                    }
                }
            }
            Message::Test(id) => {
                if matches!(self.tests.get(&id), Some(None)) {
                    return Action::none();
                }
                self.tests.insert(id.clone(), None);
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    {
                        let id = id.clone();
                        async move { engine.test_project(&id).await }
                    },
                    move |r| Message::Tested(id.clone(), r),
                ))
            }
            Message::Tested(id, r) => {
                self.tests.insert(id, Some(r));
                Action::effect(Effect::DataChanged)
            }
            Message::AskRemove(id) => {
                self.confirm_remove = self.list.iter().find(|p| p.id == id).cloned();
                Action::none()
            }
            Message::CancelRemove => {
                if !self.removing {
                    self.confirm_remove = None;
                }
                Action::none()
            }
            Message::ConfirmRemove => {
                let Some(p) = &self.confirm_remove else {
                    return Action::none();
                };
                self.removing = true;
                let engine = ctx.engine.clone();
                let id = p.id.clone();
                Action::task(Task::perform(
                    async move { engine.remove_project(&id).await },
                    Message::Removed,
                ))
            }
            Message::Removed(r) => {
                self.removing = false;
                self.confirm_remove = None;
                match r {
                    Ok(p) => {
                        self.selected = None;
                        self.tests.remove(&p.id);
                        Action::task(self.load(ctx))
                            .with(Effect::Notice(
                                widget::Notice::success(format!("Removed project {}", p.name))
                                    .with_detail(
                                        "its backups stay on disk and in the backups list",
                                    ),
                            ))
                            .with(Effect::DataChanged)
                    }
                    Err(e) => Action::error(&e),
                }
            }
            Message::OpenTransfer(mode) => {
                self.transfer = Some(Transfer::new(mode, ctx.engine.data_dir().exports()));
                Action::none()
            }
            Message::Transfer(m) => {
                let Some(t) = &mut self.transfer else {
                    return Action::none();
                };
                match t.update(m, &ctx.engine, &ctx.platform) {
                    transfer::Event::None => Action::none(),
                    transfer::Event::Run(task) => Action::task(task.map(Message::Transfer)),
                    transfer::Event::Closed => {
                        self.transfer = None;
                        Action::none()
                    }
                    transfer::Event::Changed(what) => Action::task(self.load(ctx))
                        .with(Effect::Notice(widget::Notice::success(what)))
                        .with(Effect::DataChanged),
                }
            }
            Message::ShowBackups(id) => Action::effect(Effect::Navigate(Nav::ProjectBackups(id))),
            Message::BackUp(id) => Action::effect(Effect::Navigate(Nav::BackUp(id))),
            Message::Schedules(id) => Action::effect(Effect::Navigate(Nav::Schedules(id))),
            Message::Escape => {
                if self.transfer.is_some() {
                    self.transfer = None;
                } else if self.confirm_remove.is_some() {
                    return self.update(Message::CancelRemove, ctx);
                } else {
                    self.form = None;
                }
                Action::none()
            }
        }
    }

    // ----- view -------------------------------------------------------------

    pub fn view(&self) -> Element<'_, Message> {
        let header = widget::page_header(
            "Projects",
            Some(format!("{} project(s)", self.list.len())),
            row![
                widget::secondary_button(
                    "Import…",
                    Some(Message::OpenTransfer(transfer::Mode::Import))
                ),
                widget::secondary_button(
                    "Export…",
                    (!self.list.is_empty())
                        .then_some(Message::OpenTransfer(transfer::Mode::Export))
                ),
                widget::primary_button("Add project", Some(Message::New)),
            ]
            .spacing(theme::S),
        );
        let mut page = column![header].spacing(theme::L);
        if let Some(e) = &self.error {
            page = page.push(widget::banner(&widget::Notice::error(e), Message::Load));
        }
        let body: Element<'_, Message> = if !self.loaded {
            text("Loading projects…").style(theme::muted).into()
        } else if self.list.is_empty() && self.form.is_none() {
            widget::empty(
                "No projects yet",
                "Add a project with its Supabase connection URL, or import a list exported from another machine.",
                Some(("Add your first project", Message::New)),
            )
        } else {
            row![
                container(self.list_view()).width(Length::FillPortion(2)),
                container(self.detail_view()).width(Length::FillPortion(3)),
            ]
            .spacing(theme::L)
            .height(Length::Fill)
            .into()
        };
        page = page.push(body);
        let base: Element<'_, Message> = page.into();
        if let Some(p) = &self.confirm_remove {
            let dialog = column![
                text(format!("Remove {}?", p.name)).size(theme::H2).font(theme::BOLD),
                text("Its connection details and sealed credentials are deleted. Its backups stay on disk and in the backups list; its schedules are removed."),
                row![
                    widget::danger_button(if self.removing { "Removing…" } else { "Remove project" }, (!self.removing).then_some(Message::ConfirmRemove)),
                    widget::secondary_button("Keep it", Some(Message::CancelRemove)),
                ]
                .spacing(theme::S),
            ]
            .spacing(theme::M)
            .max_width(520);
            return widget::modal(base, dialog, Message::CancelRemove);
        }
        if let Some(t) = &self.transfer {
            return widget::modal(
                base,
                t.view().map(Message::Transfer),
                Message::Transfer(transfer::Message::Close),
            );
        }
        base
    }

    fn list_view(&self) -> Element<'_, Message> {
        let search = text_input("Search projects (Ctrl+F)", &self.search)
            .id(SEARCH_ID)
            .on_input(Message::Search)
            .padding(theme::S)
            .style(theme::input(false));
        let mut col = column![search].spacing(theme::S);
        let groups = self.groups();
        if groups.is_empty() {
            col = col
                .push(text(format!("No project matches “{}”.", self.search)).style(theme::muted));
        }
        for (env, list) in groups {
            col = col.push(
                row![
                    widget::env_badge(env),
                    text(format!("{}", list.len()))
                        .size(theme::SMALL)
                        .style(theme::muted)
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
            for (i, p) in list.into_iter().enumerate() {
                let selected = self.selected.as_deref() == Some(p.id.as_str());
                let test_dot: Element<'_, Message> = match self.tests.get(&p.id) {
                    Some(Some(Ok(r))) if r.ok => widget::badge("ok", Tone::Success),
                    Some(Some(_)) => widget::badge("failed", Tone::Danger),
                    Some(None) => widget::badge("testing", Tone::Info),
                    None => text("").into(),
                };
                col = col.push(
                    button(
                        row![
                            column![
                                text(p.name.clone()).font(theme::BOLD),
                                text(p.project_ref.clone())
                                    .size(theme::SMALL)
                                    .style(theme::muted),
                            ]
                            .width(Length::Fill),
                            test_dot,
                        ]
                        .align_y(Alignment::Center),
                    )
                    .width(Length::Fill)
                    .padding([theme::S, theme::M])
                    .style(theme::row_button(i, selected))
                    .on_press(Message::Select(p.id.clone())),
                );
            }
        }
        scrollable(col.padding(iced::Padding {
            right: theme::M,
            ..iced::Padding::ZERO
        }))
        .height(Length::Fill)
        .into()
    }

    fn detail_view(&self) -> Element<'_, Message> {
        if let Some(f) = &self.form {
            return scrollable(
                container(f.view().map(Message::Form))
                    .padding(theme::L)
                    .style(theme::card),
            )
            .height(Length::Fill)
            .into();
        }
        let Some(p) = self.selected_project() else {
            return widget::empty(
                "Select a project",
                "Pick a project on the left to see its details and test its connection.",
                None,
            );
        };
        let testing = matches!(self.tests.get(&p.id), Some(None));
        let mut col = column![
            row![
                text(p.name.clone()).size(theme::H2).font(theme::BOLD),
                widget::env_badge(p.environment),
                widget::fill(),
                widget::secondary_button("Edit", Some(Message::Edit(p.id.clone()))),
                widget::danger_button("Remove…", Some(Message::AskRemove(p.id.clone()))),
            ]
            .spacing(theme::S)
            .align_y(Alignment::Center),
            widget::kv("Project ref", p.project_ref.clone()),
            widget::kv("Connection", p.display_url()),
            widget::kv(
                "Password",
                if p.has_db_password {
                    "stored in the vault"
                } else {
                    "none stored"
                }
            ),
            widget::kv(
                "Organization",
                p.organization_id.clone().unwrap_or_else(|| "—".into())
            ),
            widget::kv(
                "Description",
                p.description.clone().unwrap_or_else(|| "—".into())
            ),
            widget::kv("Added", format::local_time(&p.created_at)),
            row![
                widget::primary_button(
                    if testing {
                        "Testing…"
                    } else {
                        "Test connection"
                    },
                    (!testing).then_some(Message::Test(p.id.clone()))
                ),
                widget::secondary_button("Back up now", Some(Message::BackUp(p.id.clone()))),
                widget::secondary_button("Backups", Some(Message::ShowBackups(p.id.clone()))),
                widget::secondary_button("Schedules", Some(Message::Schedules(p.id.clone()))),
            ]
            .spacing(theme::S),
        ]
        .spacing(theme::S);
        match self.tests.get(&p.id) {
            Some(Some(Ok(r))) => col = col.push(report::view(r)),
            Some(Some(Err(e))) => {
                col = col.push(widget::banner(
                    &widget::Notice::error(e),
                    Message::Test(p.id.clone()),
                ))
            }
            _ => {}
        }
        if self.health.project_id.as_deref() == Some(p.id.as_str()) {
            col = col.push(self.health.view().map(Message::Health));
        }
        if self.hooks.project_id.as_deref() == Some(p.id.as_str()) {
            col = col.push(self.hooks.view().map(Message::Hooks));
        }
        scrollable(container(col).padding(theme::L).style(theme::card))
            .height(Length::Fill)
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, env: Environment) -> Project {
        Project {
            id: format!("id-{name}"),
            name: name.into(),
            slug: name.to_lowercase(),
            project_ref: "abcdefghijklmnopqrst".into(),
            db_url: "postgresql://postgres@h:5432/postgres".into(),
            environment: env,
            organization_id: None,
            description: None,
            has_db_password: false,
            ca_cert: None,
            created_at: "2024-01-01T00:00:00Z".into(),
            updated_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn grouping_search_selection_and_removal() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Projects::default();
        let _ = s.update(
            Message::Loaded(Ok(vec![
                project("Shop", Environment::Production),
                project("Blog", Environment::Development),
                project("Shop staging", Environment::Staging),
            ])),
            &ctx,
        );
        assert_eq!(s.selected.as_deref(), Some("id-Shop"));
        let envs: Vec<Environment> = s.groups().iter().map(|g| g.0).collect();
        assert_eq!(
            envs,
            [
                Environment::Production,
                Environment::Staging,
                Environment::Development
            ]
        );
        let _ = s.update(Message::Search("shop".into()), &ctx);
        assert_eq!(s.groups().iter().map(|g| g.1.len()).sum::<usize>(), 2);
        let _ = s.update(Message::Search("development".into()), &ctx);
        assert_eq!(s.groups().len(), 1);

        let _ = s.update(Message::AskRemove("id-Blog".into()), &ctx);
        assert_eq!(
            s.confirm_remove.as_ref().map(|p| p.name.as_str()),
            Some("Blog")
        );
        let _ = s.update(Message::Escape, &ctx);
        assert!(
            s.confirm_remove.is_none(),
            "Escape cancels the confirmation"
        );
        let _ = s.update(Message::AskRemove("id-Blog".into()), &ctx);
        let a = s.update(Message::ConfirmRemove, &ctx);
        assert!(a.has_task() && s.removing);
        let a = s.update(
            Message::Removed(Ok(project("Blog", Environment::Development))),
            &ctx,
        );
        assert!(a.effects.iter().any(|e| matches!(e, Effect::DataChanged)));
        assert!(s.confirm_remove.is_none());
    }

    #[tokio::test]
    async fn form_lifecycle_and_navigation() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut s = Projects::default();
        let _ = s.update(Message::New, &ctx);
        assert!(s.form.is_some());
        let _ = s.update(Message::Form(project_form::Message::Cancel), &ctx);
        assert!(s.form.is_none());
        let a = s.update(Message::BackUp("x".into()), &ctx);
        assert!(matches!(a.effects.as_slice(), [Effect::Navigate(Nav::BackUp(id))] if id == "x"));
        let a = s.update(Message::Test("x".into()), &ctx);
        assert!(a.has_task());
        assert!(
            !s.update(Message::Test("x".into()), &ctx).has_task(),
            "one test at a time"
        );
    }

    #[tokio::test]
    async fn import_reports_rows_through_the_fake_picker() {
        let (ctx, dir, fake) = crate::ui::testing::ctx().await;
        let file = dir.path().join("in.csv");
        std::fs::write(
            &file,
            "name,project_ref,db_url,environment\nGood,abcdefghijklmnopqrst,postgresql://postgres@h:5432/postgres,production\nBad,Not_A_Ref,postgresql://postgres@h:5432/postgres,production\n",
        )
        .expect("write");
        fake.answer_pick(Some(&file));
        let mut s = Projects::default();
        let _ = s.update(Message::OpenTransfer(transfer::Mode::Import), &ctx);
        let a = s.update(Message::Transfer(transfer::Message::Browse), &ctx);
        for m in crate::ui::testing::run(a.task).await {
            let _ = s.update(m, &ctx);
        }
        assert_eq!(
            s.transfer.as_ref().map(|t| t.path.clone()),
            Some(file.display().to_string())
        );
        let a = s.update(
            Message::Transfer(transfer::Message::Run { dry_run: false }),
            &ctx,
        );
        let mut effects = Vec::new();
        for m in crate::ui::testing::run(a.task).await {
            effects.extend(s.update(m, &ctx).effects);
        }
        assert!(effects.is_empty(), "nothing applied");
        let r = s
            .transfer
            .as_ref()
            .and_then(|t| t.report.clone())
            .expect("report");
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].line, 3);
        assert!(!r.applied);
    }
}
