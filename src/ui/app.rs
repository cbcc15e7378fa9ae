//! The application: state, top-level messages, update and view.

use iced::widget::{column, container, row, scrollable, text};
use iced::{Element, Length, Task, Theme};

use crate::engine::paths::DataDir;
use crate::engine::project::{Environment, Project};
use crate::engine::{Engine, EngineOptions, Error};

#[derive(Debug, Clone)]
pub enum Message {
    /// The engine opened (or failed to).
    Opened(Result<Engine, Error>),
    /// The project list arrived.
    ProjectsLoaded(Result<Vec<Project>, Error>),
}

pub struct App {
    data_dir: DataDir,
    engine: Option<Engine>,
    projects: Option<Vec<Project>>,
    error: Option<Error>,
}

impl App {
    pub fn boot(data_dir: DataDir) -> (Self, Task<Message>) {
        let opts = EngineOptions::new(data_dir.clone(), "gui");
        (
            App {
                data_dir,
                engine: None,
                projects: None,
                error: None,
            },
            Task::perform(Engine::open(opts), Message::Opened),
        )
    }

    pub fn title(&self) -> String {
        "supabackup".into()
    }

    pub fn theme(&self) -> Theme {
        Theme::Dark
    }

    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Opened(Ok(engine)) => {
                self.engine = Some(engine.clone());
                Task::perform(
                    async move { engine.list_projects().await },
                    Message::ProjectsLoaded,
                )
            }
            Message::Opened(Err(e)) | Message::ProjectsLoaded(Err(e)) => {
                self.error = Some(e);
                Task::none()
            }
            Message::ProjectsLoaded(Ok(list)) => {
                self.projects = Some(list);
                Task::none()
            }
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let header = column![
            text("supabackup").size(28),
            text(format!("Data: {}", self.data_dir.root().display())).size(13),
        ]
        .spacing(4);
        let body: Element<'_, Message> = if let Some(e) = &self.error {
            text(format!("Error: {e}")).into()
        } else {
            match &self.projects {
                None => text("Loading…").into(),
                Some(list) if list.is_empty() => {
                    text("No projects yet. Add one with `supabackup project add --name NAME --ref REF --db-url URL`.").into()
                }
                Some(list) => {
                    let mut col = column![].spacing(12);
                    for env in Environment::ALL {
                        let group: Vec<&Project> = list.iter().filter(|p| p.environment == env).collect();
                        if group.is_empty() {
                            continue;
                        }
                        col = col.push(text(format!("{} ({})", env.as_str().to_uppercase(), group.len())).size(16));
                        for p in group {
                            col = col.push(
                                row![
                                    text(&p.name).width(Length::FillPortion(2)),
                                    text(&p.project_ref).width(Length::FillPortion(2)),
                                    text(p.display_url()).width(Length::FillPortion(5)),
                                ]
                                .spacing(12),
                            );
                        }
                    }
                    scrollable(col).into()
                }
            }
        };
        container(column![header, body].spacing(20))
            .padding(24)
            .width(Length::Fill)
            .height(Length::Fill)
            .into()
    }
}
