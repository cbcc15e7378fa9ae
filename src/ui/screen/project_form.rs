//! Add or edit a project, with inline validation as the user types and a
//! connection test before saving.

use std::collections::HashSet;
use std::path::PathBuf;

use iced::widget::{column, pick_list, row, text, text_input};
use iced::{Element, Length, Task};

use super::{Ctx, report};
use crate::engine::crypto::Secret;
use crate::engine::pg::probe::ConnectionReport;
use crate::engine::project::{self, Environment, FieldError, Project, ProjectInput};
use crate::engine::{Error, ProjectPatch};
use crate::ui::platform::Filter;
use crate::ui::theme;
use crate::ui::widget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Ref,
    Url,
    Password,
    Organization,
    Description,
    AccessToken,
    ServiceRoleKey,
}

impl Field {
    /// The engine's name for the field (see `project::FieldError`).
    pub fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Ref => "project_ref",
            Field::Url => "db_url",
            Field::Password => "db_password",
            Field::Organization => "organization_id",
            Field::Description => "description",
            Field::AccessToken => "access_token",
            Field::ServiceRoleKey => "service_role_key",
        }
    }

    /// The widget id of its input.
    pub fn id(self) -> &'static str {
        match self {
            Field::Name => "project-name",
            Field::Ref => "project-ref",
            Field::Url => "project-url",
            Field::Password => "project-password",
            Field::Organization => "project-org",
            Field::Description => "project-description",
            Field::AccessToken => "project-access-token",
            Field::ServiceRoleKey => "project-service-key",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Changed(Field, String),
    Environment(Environment),
    /// The CA certificate path typed in.
    CaPath(String),
    /// Read the typed path.
    LoadCa,
    BrowseCa,
    CaPicked(Option<PathBuf>),
    CaLoaded(Result<String, Error>),
    RemoveCa,
    Test,
    Tested(Result<ConnectionReport, Error>),
    Save,
    Saved(Result<Project, Error>),
    Cancel,
}

/// What the form tells its screen.
#[derive(Debug)]
pub enum Event {
    None,
    Run(Task<Message>),
    Saved(Project),
    Cancelled,
}

#[derive(Debug, Default)]
pub struct Form {
    /// The project being edited; `None` when adding.
    pub editing: Option<Project>,
    pub name: String,
    pub project_ref: String,
    pub db_url: String,
    pub db_password: String,
    pub environment: Environment,
    pub organization_id: String,
    pub description: String,
    pub access_token: String,
    pub service_role_key: String,
    /// The CA certificate (PEM) connections verify the server with.
    pub ca_cert: Option<String>,
    /// Where it was read from (shown; empty for a stored one).
    pub ca_path: String,
    pub ca_error: Option<Error>,
    /// The certificate was added, replaced or removed in this form.
    pub ca_changed: bool,
    /// Fields the user has typed in (their errors show).
    pub touched: HashSet<Field>,
    /// Save was pressed (every error shows).
    pub submitted: bool,
    pub errors: Vec<FieldError>,
    pub saving: bool,
    pub testing: bool,
    pub test: Option<Result<ConnectionReport, Error>>,
    pub server_error: Option<Error>,
}

impl Form {
    pub fn new() -> Self {
        let mut f = Form::default();
        f.validate();
        f
    }

    pub fn edit(p: &Project) -> Self {
        let mut f = Form {
            editing: Some(p.clone()),
            name: p.name.clone(),
            project_ref: p.project_ref.clone(),
            db_url: p.db_url.clone(),
            environment: p.environment,
            organization_id: p.organization_id.clone().unwrap_or_default(),
            description: p.description.clone().unwrap_or_default(),
            ca_cert: p.ca_cert.clone(),
            ..Form::default()
        };
        f.validate();
        f
    }

    fn value_mut(&mut self, field: Field) -> &mut String {
        match field {
            Field::Name => &mut self.name,
            Field::Ref => &mut self.project_ref,
            Field::Url => &mut self.db_url,
            Field::Password => &mut self.db_password,
            Field::Organization => &mut self.organization_id,
            Field::Description => &mut self.description,
            Field::AccessToken => &mut self.access_token,
            Field::ServiceRoleKey => &mut self.service_role_key,
        }
    }

    fn secret(s: &str) -> Option<Secret> {
        (!s.is_empty()).then(|| Secret::new(s))
    }

    pub fn input(&self) -> ProjectInput {
        ProjectInput {
            name: self.name.clone(),
            project_ref: self.project_ref.clone(),
            db_url: self.db_url.clone(),
            db_password: Self::secret(&self.db_password),
            environment: self.environment.as_str().to_owned(),
            organization_id: Some(self.organization_id.clone()),
            description: Some(self.description.clone()),
            access_token: Self::secret(&self.access_token),
            service_role_key: Self::secret(&self.service_role_key),
            ca_cert: self.ca_cert.clone(),
        }
    }

    pub fn validate(&mut self) {
        self.errors = match project::validate(&self.input()) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        };
    }

    /// The error shown under a field (only once it was touched or Save pressed).
    pub fn error(&self, field: Field) -> Option<&str> {
        if !self.submitted && !self.touched.contains(&field) {
            return None;
        }
        self.errors
            .iter()
            .find(|e| e.field == field.key())
            .map(|e| e.message.as_str())
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Event {
        let engine = &ctx.engine;
        match message {
            Message::Changed(field, value) => {
                *self.value_mut(field) = value;
                self.touched.insert(field);
                self.server_error = None;
                self.validate();
                Event::None
            }
            Message::Environment(env) => {
                self.environment = env;
                self.validate();
                Event::None
            }
            Message::CaPath(p) => {
                self.ca_path = p;
                self.ca_error = None;
                Event::None
            }
            Message::LoadCa => {
                let path = PathBuf::from(self.ca_path.trim());
                if self.ca_path.trim().is_empty() {
                    return Event::None;
                }
                Event::Run(Self::load_ca(path))
            }
            Message::BrowseCa => Event::Run(Task::perform(
                ctx.platform.pick_file(
                    "The project's CA certificate".into(),
                    vec![Filter::new("Certificates", &["crt", "pem", "cer"])],
                ),
                Message::CaPicked,
            )),
            Message::CaPicked(Some(path)) => {
                self.ca_path = path.display().to_string();
                Event::Run(Self::load_ca(path))
            }
            Message::CaPicked(None) => Event::None,
            Message::CaLoaded(Ok(pem)) => {
                self.ca_cert = Some(pem);
                self.ca_changed = true;
                self.ca_error = None;
                self.test = None;
                self.validate();
                Event::None
            }
            Message::CaLoaded(Err(e)) => {
                self.ca_error = Some(e);
                Event::None
            }
            Message::RemoveCa => {
                self.ca_cert = None;
                self.ca_path.clear();
                self.ca_changed = true;
                self.ca_error = None;
                self.test = None;
                self.validate();
                Event::None
            }
            Message::Test => {
                if self.testing {
                    return Event::None;
                }
                self.touched.insert(Field::Url);
                if self
                    .errors
                    .iter()
                    .any(|e| e.field == "db_url" || e.field == "db_password")
                {
                    return Event::None;
                }
                self.testing = true;
                self.test = None;
                let engine = engine.clone();
                let url = self.db_url.clone();
                let password = Self::secret(&self.db_password);
                let editing = self.editing.clone();
                let ca = self.ca_cert.clone();
                let ca_changed = self.ca_changed;
                Event::Run(Task::perform(
                    async move {
                        match editing {
                            // An unchanged URL with no new password: test the
                            // stored project (its sealed password included).
                            Some(p) if p.db_url == url && password.is_none() && !ca_changed => {
                                engine.test_project(&p.id).await
                            }
                            _ => engine.test_url_with_ca(&url, password, ca).await,
                        }
                    },
                    Message::Tested,
                ))
            }
            Message::Tested(r) => {
                self.testing = false;
                self.test = Some(r);
                Event::None
            }
            Message::Save => {
                self.submitted = true;
                self.validate();
                if !self.is_valid() || self.saving {
                    return Event::None;
                }
                self.saving = true;
                self.server_error = None;
                let engine = engine.clone();
                let task = match &self.editing {
                    None => {
                        let input = self.input();
                        Task::perform(
                            async move { engine.add_project(input).await },
                            Message::Saved,
                        )
                    }
                    Some(p) => {
                        let id = p.id.clone();
                        let patch = self.patch();
                        Task::perform(
                            async move { engine.edit_project(&id, patch).await },
                            Message::Saved,
                        )
                    }
                };
                Event::Run(task)
            }
            Message::Saved(Ok(p)) => {
                self.saving = false;
                Event::Saved(p)
            }
            Message::Saved(Err(e)) => {
                self.saving = false;
                self.server_error = Some(e);
                Event::None
            }
            Message::Cancel => Event::Cancelled,
        }
    }

    fn patch(&self) -> ProjectPatch {
        ProjectPatch {
            name: Some(self.name.clone()),
            project_ref: Some(self.project_ref.clone()),
            db_url: Some(self.db_url.clone()),
            db_password: Self::secret(&self.db_password),
            environment: Some(self.environment.as_str().to_owned()),
            organization_id: Some(self.organization_id.clone()),
            description: Some(self.description.clone()),
            access_token: Self::secret(&self.access_token),
            service_role_key: Self::secret(&self.service_role_key),
            ca_cert: self
                .ca_changed
                .then(|| self.ca_cert.clone().unwrap_or_default()),
        }
    }

    /// Reads and checks a CA file off the UI thread.
    fn load_ca(path: PathBuf) -> Task<Message> {
        Task::perform(
            async move {
                tokio::task::spawn_blocking(move || crate::engine::project::read_ca_file(&path))
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?
            },
            Message::CaLoaded,
        )
    }

    fn ca_view(&self) -> Element<'_, Message> {
        let status = match (&self.ca_cert, self.ca_changed) {
            (Some(_), true) => "loaded: connections will verify the server (verify-full)",
            (Some(_), false) => "stored: connections verify the server",
            (None, _) => "none: the connection is encrypted but the server is NOT verified",
        };
        let mut col = column![
            text("CA certificate").size(theme::SMALL).font(theme::BOLD),
            row![
                text_input("path to prod-ca-2021.crt", &self.ca_path)
                    .id("project-ca-path")
                    .on_input(Message::CaPath)
                    .on_submit(Message::LoadCa)
                    .padding(theme::S),
                widget::secondary_button("Browse…", Some(Message::BrowseCa)),
                widget::secondary_button(
                    "Remove",
                    self.ca_cert.is_some().then_some(Message::RemoveCa)
                ),
            ]
            .spacing(theme::S),
            text(status)
                .size(theme::SMALL)
                .style(theme::toned(if self.ca_cert.is_some() {
                    theme::Tone::Success
                } else {
                    theme::Tone::Warning
                })),
            text(
                "Supabase dashboard → Database Settings → SSL Configuration → Download certificate"
            )
            .size(theme::SMALL),
        ]
        .spacing(theme::XS);
        if let Some(e) = &self.ca_error {
            col = col.push(
                text(e.to_string())
                    .size(theme::SMALL)
                    .style(theme::toned(theme::Tone::Danger)),
            );
        }
        col.into()
    }

    fn input_for<'a>(
        &'a self,
        field: Field,
        placeholder: &str,
        value: &'a str,
        secure: bool,
    ) -> Element<'a, Message> {
        text_input(placeholder, value)
            .id(field.id())
            .secure(secure)
            .on_input(move |v| Message::Changed(field, v))
            .on_submit(Message::Save)
            .padding(theme::S)
            .style(theme::input(self.error(field).is_some()))
            .into()
    }

    pub fn view(&self) -> Element<'_, Message> {
        let editing = self.editing.is_some();
        let title = if editing {
            "Edit project"
        } else {
            "Add a project"
        };
        let password_help = if editing {
            "leave empty to keep the stored password"
        } else {
            "optional when the URL holds it; stored sealed in the vault"
        };
        let mut col = column![
            text(title).size(theme::H2).font(theme::BOLD),
            row![
                widget::field(
                    "Name",
                    self.input_for(Field::Name, "Shop (production)", &self.name, false),
                    self.error(Field::Name),
                    None
                ),
                widget::field(
                    "Environment",
                    pick_list(
                        Environment::ALL,
                        Some(self.environment),
                        Message::Environment
                    )
                    .padding(theme::S),
                    None,
                    None
                ),
            ]
            .spacing(theme::M),
            widget::field(
                "Project ref",
                self.input_for(Field::Ref, "abcdefghijklmnopqrst", &self.project_ref, false),
                self.error(Field::Ref),
                Some("Supabase dashboard → Project Settings → General"),
            ),
            widget::field(
                "Connection URL",
                self.input_for(
                    Field::Url,
                    "postgresql://postgres.<ref>@aws-0-<region>.pooler.supabase.com:5432/postgres",
                    &self.db_url,
                    false
                ),
                self.error(Field::Url),
                Some("direct (db.<ref>.supabase.co) or session pooler, port 5432"),
            ),
            widget::field(
                "Database password",
                self.input_for(Field::Password, "password", &self.db_password, true),
                self.error(Field::Password),
                Some(password_help),
            ),
            self.ca_view(),
            row![
                widget::field(
                    "Organization id",
                    self.input_for(
                        Field::Organization,
                        "optional: the organization slug",
                        &self.organization_id,
                        false
                    ),
                    self.error(Field::Organization),
                    None
                ),
                widget::field(
                    "Description",
                    self.input_for(Field::Description, "optional", &self.description, false),
                    self.error(Field::Description),
                    None
                ),
            ]
            .spacing(theme::M),
            row![
                widget::field(
                    "Access token",
                    self.input_for(
                        Field::AccessToken,
                        "optional (sbp_…)",
                        &self.access_token,
                        true
                    ),
                    None,
                    Some("gives the dashboard its platform status (active, paused…)")
                ),
                widget::field(
                    "Service role key",
                    self.input_for(
                        Field::ServiceRoleKey,
                        "optional",
                        &self.service_role_key,
                        true
                    ),
                    None,
                    None
                ),
            ]
            .spacing(theme::M),
        ]
        .spacing(theme::M);
        if let Some(e) = &self.server_error {
            col = col.push(widget::banner(
                &widget::Notice::error(e),
                Message::Changed(Field::Name, self.name.clone()),
            ));
        }
        let save_label = match (self.saving, editing) {
            (true, _) => "Saving…",
            (false, true) => "Save changes",
            (false, false) => "Add project",
        };
        col = col.push(
            row![
                widget::primary_button(save_label, (!self.saving).then_some(Message::Save)),
                widget::secondary_button(
                    if self.testing {
                        "Testing…"
                    } else {
                        "Test connection"
                    },
                    (!self.testing).then_some(Message::Test)
                ),
                widget::fill(),
                widget::secondary_button("Cancel", Some(Message::Cancel)),
            ]
            .spacing(theme::S),
        );
        if self.submitted && !self.is_valid() {
            col = col.push(
                text(format!("{} field(s) need attention", self.errors.len()))
                    .size(theme::SMALL)
                    .style(theme::toned(theme::Tone::Danger)),
            );
        }
        match &self.test {
            Some(Ok(r)) => col = col.push(report::view(r)),
            Some(Err(e)) => {
                col = col.push(widget::banner(&widget::Notice::error(e), Message::Test));
            }
            None => {}
        }
        column![col].width(Length::Fill).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inline_errors_follow_typing() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut f = Form::new();
        // Nothing shows before typing.
        assert!(f.error(Field::Ref).is_none());
        assert!(!f.is_valid());
        let _ = f.update(Message::Changed(Field::Ref, "Bad_Ref".into()), &ctx);
        assert!(
            f.error(Field::Ref)
                .is_some_and(|e| e.contains("lower-case"))
        );
        assert!(
            f.error(Field::Name).is_none(),
            "untouched fields stay quiet"
        );
        let _ = f.update(
            Message::Changed(Field::Ref, "abcdefghijklmnopqrst".into()),
            &ctx,
        );
        assert!(f.error(Field::Ref).is_none());
        // Save with missing fields shows every error and runs nothing.
        let e = f.update(Message::Save, &ctx);
        assert!(matches!(e, Event::None));
        assert!(f.error(Field::Name).is_some() && f.error(Field::Url).is_some());
        let _ = f.update(Message::Changed(Field::Name, "Shop".into()), &ctx);
        let _ = f.update(
            Message::Changed(
                Field::Url,
                "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres".into(),
            ),
            &ctx,
        );
        assert!(f.is_valid(), "{:?}", f.errors);
        assert!(matches!(f.update(Message::Save, &ctx), Event::Run(_)));
        assert!(f.saving);
        let e = f.update(
            Message::Saved(Err(Error::conflict(
                "a project named 'Shop' already exists",
            ))),
            &ctx,
        );
        assert!(matches!(e, Event::None));
        assert!(f.server_error.is_some() && !f.saving);
    }

    #[test]
    fn edit_prefills_and_patches() {
        let p = Project {
            id: "id".into(),
            name: "Shop".into(),
            slug: "shop".into(),
            project_ref: "abc".into(),
            db_url: "postgresql://postgres@h:5432/postgres".into(),
            environment: Environment::Staging,
            organization_id: None,
            description: Some("d".into()),
            has_db_password: true,
            ca_cert: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let f = Form::edit(&p);
        assert!(f.is_valid());
        let patch = f.patch();
        assert!(
            patch.db_password.is_none(),
            "an empty password keeps the stored one"
        );
        assert_eq!(patch.environment.as_deref(), Some("staging"));
        assert_eq!(patch.description.as_deref(), Some("d"));
    }
}
