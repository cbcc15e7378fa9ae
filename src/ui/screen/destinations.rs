//! The Destinations card of Settings: list, add (secret sealed by the
//! engine), test and remove the places backups are copied to.

use iced::widget::{Column, column, row, text, text_input, toggler};
use iced::{Alignment, Element, Length, Task};

use super::{Action, Ctx};
use crate::engine::Error;
use crate::engine::backup::store::RebuildReport;
use crate::engine::crypto::Secret;
use crate::engine::destination::{Destination, DestinationInput, DestinationTest};
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<Vec<Destination>, Error>),
    Name(String),
    Url(String),
    Endpoint(String),
    Region(String),
    PathStyle(bool),
    AllowHttp(bool),
    KeyId(String),
    Secret(String),
    Add,
    Added(Result<Destination, Error>),
    Test(String),
    Tested(String, Result<DestinationTest, Error>),
    Remove(String),
    CancelRemove,
    ConfirmRemove,
    Removed(Result<Destination, Error>),
    /// A secret typed for a destination that lacks one (imported without).
    SecretFor(String, String),
    SealSecret(String),
    SecretSealed(Result<Destination, Error>),
    /// List the backups a destination holds in this catalog (after moving
    /// to a new machine, or losing this one's catalog).
    FindBackups(String),
    Found(String, Result<RebuildReport, Error>),
}

#[derive(Debug, Default)]
pub struct Form {
    pub name: String,
    pub url: String,
    pub endpoint: String,
    pub region: String,
    pub path_style: bool,
    pub allow_http: bool,
    pub key_id: String,
    pub secret: String,
}

#[derive(Debug, Default)]
pub struct Panel {
    pub list: Vec<Destination>,
    pub form: Form,
    pub form_error: Option<String>,
    pub busy: bool,
    /// The last test of each destination, by name.
    pub tests: Vec<(String, Result<DestinationTest, String>)>,
    pub testing: Option<String>,
    /// A removal waiting for confirmation.
    pub removing: Option<String>,
    /// Secrets being typed for destinations that lack theirs, by name.
    pub missing_secrets: Vec<(String, String)>,
    /// A search for backups running at this destination.
    pub finding: Option<String>,
    /// The last search's outcome, by destination name.
    pub found: Vec<(String, Result<RebuildReport, String>)>,
}

/// An S3 destination with an access key id but no secret (brought from
/// another machine without it) cannot be used until it gets one.
pub fn lacks_secret(d: &Destination) -> bool {
    d.kind == crate::engine::destination::Kind::S3 && d.access_key_id.is_some() && !d.has_secret
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl Panel {
    pub fn load(&self, ctx: &Ctx) -> Task<Message> {
        let engine = ctx.engine.clone();
        Task::perform(
            async move { engine.list_destinations().await },
            Message::Loaded,
        )
    }

    fn input(&self) -> DestinationInput {
        let f = &self.form;
        DestinationInput {
            name: f.name.trim().to_owned(),
            url: f.url.trim().to_owned(),
            endpoint: opt(&f.endpoint),
            region: opt(&f.region),
            path_style: f.path_style,
            allow_http: f.allow_http,
            access_key_id: opt(&f.key_id),
            secret: (!f.secret.is_empty()).then(|| Secret::new(f.secret.clone())),
        }
    }

    pub fn test_result(&self, name: &str) -> Option<&Result<DestinationTest, String>> {
        self.tests.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok(list)) => {
                self.list = list;
                Action::none()
            }
            Message::Loaded(Err(e)) => Action::error(&e),
            Message::Name(s) => {
                self.form.name = s;
                self.form_error = None;
                Action::none()
            }
            Message::Url(s) => {
                self.form.url = s;
                self.form_error = None;
                Action::none()
            }
            Message::Endpoint(s) => {
                self.form.endpoint = s;
                self.form_error = None;
                Action::none()
            }
            Message::Region(s) => {
                self.form.region = s;
                Action::none()
            }
            Message::PathStyle(b) => {
                self.form.path_style = b;
                Action::none()
            }
            Message::AllowHttp(b) => {
                self.form.allow_http = b;
                self.form_error = None;
                Action::none()
            }
            Message::KeyId(s) => {
                self.form.key_id = s;
                Action::none()
            }
            Message::Secret(s) => {
                self.form.secret = s;
                Action::none()
            }
            Message::Add => {
                let input = self.input();
                // The same checks the engine makes, before any I/O.
                if let Err(e) = crate::engine::destination::validate(&input) {
                    self.form_error = Some(e.message);
                    return Action::none();
                }
                self.busy = true;
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.add_destination(input).await },
                    Message::Added,
                ))
            }
            Message::Added(Ok(d)) => {
                self.busy = false;
                self.form = Form::default();
                let name = d.name.clone();
                self.list.push(d);
                self.list.sort_by(|a, b| a.name.cmp(&b.name));
                Action::notice(widget::Notice::success(format!(
                    "Destination '{name}' added. Test it before the first backup."
                )))
            }
            Message::Added(Err(e)) => {
                self.busy = false;
                self.form_error = Some(e.message);
                Action::none()
            }
            Message::Test(name) => {
                self.testing = Some(name.clone());
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move {
                        let r = engine.test_destination(&name).await;
                        (name, r)
                    },
                    |(n, r)| Message::Tested(n, r),
                ))
            }
            Message::Tested(name, r) => {
                self.testing = None;
                self.tests.retain(|(n, _)| n != &name);
                self.tests.push((name, r.map_err(|e| e.message)));
                Action::none()
            }
            Message::Remove(name) => {
                self.removing = Some(name);
                Action::none()
            }
            Message::CancelRemove => {
                self.removing = None;
                Action::none()
            }
            Message::ConfirmRemove => {
                let Some(name) = self.removing.take() else {
                    return Action::none();
                };
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.remove_destination(&name, false).await },
                    Message::Removed,
                ))
            }
            Message::Removed(Ok(d)) => {
                self.list.retain(|x| x.id != d.id);
                self.tests.retain(|(n, _)| n != &d.name);
                Action::notice(widget::Notice::success(format!(
                    "Destination '{}' removed.",
                    d.name
                )))
            }
            Message::Removed(Err(e)) => Action::error(&e),
            Message::SecretFor(name, value) => {
                self.missing_secrets.retain(|(n, _)| *n != name);
                self.missing_secrets.push((name, value));
                Action::none()
            }
            Message::SealSecret(name) => {
                let Some(value) = self
                    .missing_secrets
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.trim().is_empty())
                else {
                    return Action::none();
                };
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move {
                        engine
                            .set_destination_secret(&name, Secret::new(value))
                            .await
                    },
                    Message::SecretSealed,
                ))
            }
            Message::SecretSealed(Ok(d)) => {
                self.missing_secrets.retain(|(n, _)| *n != d.name);
                let name = d.name.clone();
                if let Some(x) = self.list.iter_mut().find(|x| x.id == d.id) {
                    *x = d;
                }
                Action::notice(widget::Notice::success(format!(
                    "The secret of '{name}' is sealed. Test it now."
                )))
            }
            Message::SecretSealed(Err(e)) => Action::error(&e),
            Message::FindBackups(name) => {
                if self.finding.is_some() {
                    return Action::none();
                }
                self.finding = Some(name.clone());
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move {
                        let r = engine.rebuild_catalog_from(&name).await;
                        (name, r)
                    },
                    |(n, r)| Message::Found(n, r),
                ))
            }
            Message::Found(name, r) => {
                self.finding = None;
                self.found.retain(|(n, _)| *n != name);
                let changed = r.as_ref().is_ok_and(|r| r.added + r.updated > 0);
                self.found.push((name, r.map_err(|e| e.message)));
                if changed {
                    Action::effect(super::Effect::DataChanged)
                } else {
                    Action::none()
                }
            }
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut list: Column<'_, Message> = column![].spacing(theme::S);
        if self.list.is_empty() {
            list = list.push(
                text("No destinations yet: every backup lives only in the data folder on this machine.")
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Warning)),
            );
        }
        for d in &self.list {
            let mut line = row![
                text(d.name.clone())
                    .font(theme::BOLD)
                    .width(Length::Fixed(140.0)),
                text(d.url.clone()).font(theme::MONO).width(Length::Fill),
                text(d.kind.as_str()).size(theme::SMALL).style(theme::muted),
            ]
            .spacing(theme::M)
            .align_y(Alignment::Center);
            let testing = self.testing.as_deref() == Some(d.name.as_str());
            line = line.push(widget::secondary_button(
                if testing { "Testing…" } else { "Test" },
                (!testing).then(|| Message::Test(d.name.clone())),
            ));
            let finding = self.finding.as_deref() == Some(d.name.as_str());
            line = line.push(widget::secondary_button(
                if finding {
                    "Searching…"
                } else {
                    "Find backups"
                },
                self.finding
                    .is_none()
                    .then(|| Message::FindBackups(d.name.clone())),
            ));
            line = line.push(widget::secondary_button(
                "Remove",
                Some(Message::Remove(d.name.clone())),
            ));
            list = list.push(line);
            match self
                .found
                .iter()
                .find(|(n, _)| *n == d.name)
                .map(|(_, r)| r)
            {
                Some(Ok(r)) => {
                    let mut t = format!(
                        "{} backup(s) there: {} new in this catalog, {} updated",
                        r.manifests, r.added, r.updated
                    );
                    if !r.skipped.is_empty() {
                        t.push_str(&format!("; {} unreadable", r.skipped.len()));
                    }
                    list = list.push(
                        text(t)
                            .size(theme::SMALL)
                            .style(theme::toned(Tone::Success)),
                    );
                }
                Some(Err(e)) => {
                    list = list.push(
                        text(e.clone())
                            .size(theme::SMALL)
                            .style(theme::toned(Tone::Danger)),
                    )
                }
                None => {}
            }
            if lacks_secret(d) {
                let typed = self
                    .missing_secrets
                    .iter()
                    .find(|(n, _)| *n == d.name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                let name = d.name.clone();
                list = list.push(
                    row![
                        text("It has no secret (imported without it): give the secret access key.")
                            .size(theme::SMALL)
                            .style(theme::toned(Tone::Warning)),
                        text_input("secret access key", typed)
                            .secure(true)
                            .on_input(move |v| Message::SecretFor(name.clone(), v))
                            .on_submit(Message::SealSecret(d.name.clone()))
                            .padding(theme::S)
                            .width(Length::Fixed(240.0)),
                        widget::secondary_button(
                            "Seal secret",
                            Some(Message::SealSecret(d.name.clone()))
                        ),
                    ]
                    .spacing(theme::S)
                    .align_y(Alignment::Center),
                );
            }
            match self.test_result(&d.name) {
                Some(Ok(t)) => {
                    list = list.push(
                        text(format!(
                            "{} — {} ({:.0} ms)",
                            if t.ok { "works" } else { "failed" },
                            t.steps.join(", "),
                            t.latency_ms
                        ))
                        .size(theme::SMALL)
                        .style(theme::toned(if t.ok {
                            Tone::Success
                        } else {
                            Tone::Danger
                        })),
                    )
                }
                Some(Err(e)) => {
                    list = list.push(
                        text(e.clone())
                            .size(theme::SMALL)
                            .style(theme::toned(Tone::Danger)),
                    )
                }
                None => {}
            }
            if self.removing.as_deref() == Some(d.name.as_str()) {
                list = list.push(
                    row![
                        text(format!("Remove '{}'? Backups copied there stay there, but this machine forgets it (refused while the catalog lists copies there).", d.name))
                            .size(theme::SMALL)
                            .style(theme::toned(Tone::Warning))
                            .width(Length::Fill),
                        widget::secondary_button("Cancel", Some(Message::CancelRemove)),
                        widget::danger_button("Remove", Some(Message::ConfirmRemove)),
                    ]
                    .spacing(theme::S)
                    .align_y(Alignment::Center),
                );
            }
        }
        let f = &self.form;
        let mut form = column![
            text("Add a destination").font(theme::BOLD),
            row![
                text_input("name, e.g. offsite", &f.name)
                    .on_input(Message::Name)
                    .padding(theme::S)
                    .width(Length::Fixed(180.0)),
                text_input(
                    "s3://bucket/prefix · gs://bucket · az://container · file:///mnt/nas",
                    &f.url
                )
                .on_input(Message::Url)
                .padding(theme::S),
            ]
            .spacing(theme::S),
            row![
                text_input("endpoint (S3-compatible services, Azurite)", &f.endpoint)
                    .on_input(Message::Endpoint)
                    .padding(theme::S),
                text_input("region", &f.region)
                    .on_input(Message::Region)
                    .padding(theme::S)
                    .width(Length::Fixed(140.0)),
            ]
            .spacing(theme::S),
            row![
                text_input("access key id / account name", &f.key_id)
                    .on_input(Message::KeyId)
                    .padding(theme::S),
                text_input("secret (sealed in the vault)", &f.secret)
                    .secure(true)
                    .on_input(Message::Secret)
                    .on_submit(Message::Add)
                    .padding(theme::S),
            ]
            .spacing(theme::S),
            row![
                toggler(f.path_style)
                    .label("Path-style requests (MinIO and others)")
                    .on_toggle(Message::PathStyle),
                toggler(f.allow_http)
                    .label("Allow plain HTTP off this machine")
                    .on_toggle(Message::AllowHttp),
                widget::primary_button(
                    if self.busy { "Adding…" } else { "Add" },
                    (!self.busy).then_some(Message::Add)
                ),
            ]
            .spacing(theme::M)
            .align_y(Alignment::Center),
        ]
        .spacing(theme::S);
        if let Some(e) = &self.form_error {
            form = form.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        widget::card(
            "Destinations",
            column![
                text("Each backup can be copied to folders, S3 and S3-compatible services, Google Cloud Storage or Azure Blob. A copy counts once every file was read back and matched.")
                    .size(theme::SMALL)
                    .style(theme::muted),
                list,
                form
            ]
            .spacing(theme::M),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_destination_is_added_tested_and_removed_through_tasks() {
        let (ctx, dir, _fake) = crate::ui::testing::ctx().await;
        let mut p = Panel::default();
        // A bad URL is refused before any task.
        let _ = p.update(Message::Name("nas".into()), &ctx);
        let _ = p.update(Message::Url("ftp://host/x".into()), &ctx);
        let a = p.update(Message::Add, &ctx);
        assert!(!a.has_task());
        assert!(p.form_error.as_deref().is_some_and(|e| e.contains("ftp")));
        let folder = dir.path().join("nas-folder");
        let _ = p.update(Message::Url(format!("file://{}", folder.display())), &ctx);
        let a = p.update(Message::Add, &ctx);
        let msgs = crate::ui::testing::run(a.task).await;
        for m in msgs {
            let _ = p.update(m, &ctx);
        }
        assert_eq!(p.list.len(), 1, "{:?}", p.form_error);
        assert!(p.form.name.is_empty(), "the form clears");
        let a = p.update(Message::Test("nas".into()), &ctx);
        for m in crate::ui::testing::run(a.task).await {
            let _ = p.update(m, &ctx);
        }
        assert!(
            matches!(p.test_result("nas"), Some(Ok(t)) if t.ok),
            "{:?}",
            p.tests
        );
        let _ = p.update(Message::Remove("nas".into()), &ctx);
        assert_eq!(p.removing.as_deref(), Some("nas"));
        let a = p.update(Message::ConfirmRemove, &ctx);
        for m in crate::ui::testing::run(a.task).await {
            let _ = p.update(m, &ctx);
        }
        assert!(p.list.is_empty());
        assert!(
            ctx.engine
                .list_destinations()
                .await
                .unwrap_or_default()
                .is_empty()
        );
    }
}
