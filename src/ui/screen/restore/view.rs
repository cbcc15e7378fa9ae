//! The wizard's steps as widgets.

use iced::widget::{
    button, checkbox, column, container, pick_list, progress_bar, row, scrollable, text, text_input,
};
use iced::{Alignment, Element, Length};

use super::{
    CONFIRM_ID, FromChoice, Message, Restore, SCHEMAS_ID, SEARCH_ID, Step, TargetKind, URL_ID,
};
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::restore::{RestoreMode, RestorePhase};

/// Connections the parallel choice starts with.
const DEFAULT_JOBS: u8 = 4;
use crate::ui::screen::choices::ProjectChoice;
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

impl Restore {
    pub fn view(&self) -> Element<'_, Message> {
        let header = widget::page_header(
            "Restore",
            Some("Step by step: nothing changes before you confirm, and a replaced database can be rolled back.".into()),
            row![widget::secondary_button("Start over", (self.running.is_none() && self.step != Step::Backup).then_some(Message::StartOver))],
        );
        let steps = row(Step::SHOWN.iter().enumerate().map(|(i, s)| {
            let current = *s == self.step || (*s == Step::Result && self.step == Step::Progress);
            let done = *s < self.step;
            let tone = if current {
                Tone::Info
            } else if done {
                Tone::Success
            } else {
                Tone::Neutral
            };
            widget::badge(format!("{} {}", i + 1, s.label()), tone)
        }))
        .spacing(theme::S);
        let body: Element<'_, Message> = match self.step {
            Step::Backup => self.backup_step(),
            Step::Target => self.target_step(),
            Step::Scope => self.scope_step(),
            Step::Mode => self.mode_step(),
            Step::Preview => self.preview_step(),
            Step::Confirm => self.confirm_step(),
            Step::Progress => self.progress_step(),
            Step::Result => self.result_step(),
        };
        let mut page = column![header, steps].spacing(theme::L);
        if let Some(b) = self.selected_backup()
            && self.step != Step::Backup
        {
            page = page.push(
                text(format!(
                    "Backup {} · {} · {} · {} · {}",
                    format::short_id(&b.id),
                    b.project_name,
                    b.backup_type,
                    format::local_time(&b.created_at),
                    format::bytes(b.file_size.unwrap_or(0))
                ))
                .size(theme::SMALL)
                .style(theme::muted),
            );
        }
        page = page.push(
            container(scrollable(container(body).width(Length::Fill)).height(Length::Fill))
                .padding(theme::L)
                .height(Length::Fill)
                .style(theme::card),
        );
        if let Some(e) = &self.error {
            page = page.push(text(e.clone()).style(theme::toned(Tone::Danger)));
        }
        page = page.push(self.nav_buttons());
        page.into()
    }

    fn nav_buttons(&self) -> Element<'_, Message> {
        let back = matches!(
            self.step,
            Step::Target | Step::Scope | Step::Mode | Step::Preview | Step::Confirm
        );
        let next: Option<Element<'_, Message>> = match self.step {
            Step::Backup | Step::Target | Step::Scope => {
                Some(widget::primary_button("Next", Some(Message::Next)).into())
            }
            Step::Mode => Some(widget::primary_button("Preview", Some(Message::Next)).into()),
            Step::Preview => Some(
                widget::primary_button(
                    "Next",
                    matches!(&self.preview, Some(Ok(p)) if p.allowed).then_some(Message::Next),
                )
                .into(),
            ),
            Step::Confirm => Some(
                widget::danger_button("Restore now", self.confirmed().then_some(Message::Start))
                    .into(),
            ),
            Step::Progress | Step::Result => None,
        };
        let mut r = row![
            widget::secondary_button("Back", back.then_some(Message::Back)),
            widget::fill()
        ]
        .spacing(theme::S);
        if let Some(n) = next {
            r = r.push(n);
        }
        r.into()
    }

    fn backup_step(&self) -> Element<'_, Message> {
        if !self.loaded {
            return text("Loading backups…").style(theme::muted).into();
        }
        if self.backups.is_empty() {
            return widget::empty(
                "No completed backup to restore",
                "Back up a project first; completed backups appear here.",
                None,
            );
        }
        let q = self.search.trim().to_lowercase();
        let list: Vec<&BackupRecord> = self
            .backups
            .iter()
            .filter(|b| {
                q.is_empty() || b.project_name.to_lowercase().contains(&q) || b.id.starts_with(&q)
            })
            .take(200)
            .collect();
        let mut col = column![
            text("Which backup?").size(theme::H2).font(theme::BOLD),
            text_input("Filter by project or id", &self.search)
                .id(SEARCH_ID)
                .on_input(Message::Search)
                .padding(theme::S),
        ]
        .spacing(theme::S);
        for (i, b) in list.into_iter().enumerate() {
            let selected = self.backup.as_ref() == Some(&b.id);
            let mut checks = row![].spacing(theme::XS);
            if b.verified_at.is_some() {
                checks = checks.push(widget::badge("✓ verified", Tone::Success));
            }
            if b.verified_restorable_at.is_some() {
                checks = checks.push(widget::badge("✓ restores", Tone::Success));
            }
            col = col.push(
                button(
                    row![
                        text(format::local_time(&b.created_at))
                            .size(theme::SMALL)
                            .width(Length::Fixed(140.0)),
                        text(b.project_name.clone()).width(Length::Fill),
                        text(b.backup_type.clone())
                            .size(theme::SMALL)
                            .width(Length::Fixed(90.0)),
                        text(format::bytes(b.file_size.unwrap_or(0)))
                            .size(theme::SMALL)
                            .width(Length::Fixed(80.0)),
                        container(checks).width(Length::Fixed(180.0)),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                )
                .width(Length::Fill)
                .padding([theme::S, theme::M])
                .style(theme::row_button(i, selected))
                .on_press(Message::PickBackup(b.id.clone())),
            );
        }
        if let Some(p) = self.read_from_picker() {
            col = col.push(p);
        }
        if !self.history.is_empty() {
            col = col.push(text("Recent restores").font(theme::BOLD));
            for r in self.history.iter().take(5) {
                // A partly applied parallel load is rolled back from here.
                let undo = (r.status != "completed"
                    && Restore::can_roll_back_record(r)
                    && self.running.is_none())
                .then(|| {
                    button(text("Roll back").size(theme::SMALL))
                        .style(theme::link)
                        .on_press(Message::RollbackOf(r.id.clone()))
                });
                col = col.push(
                    row![
                        widget::badge(r.status_label(), widget::status_tone(&r.status)),
                        text(format!(
                            "{} → {} · {}",
                            format::short_id(&r.backup_id),
                            r.target,
                            format::local_time(&r.started_at)
                        ))
                        .size(theme::SMALL),
                    ]
                    .push(undo)
                    .spacing(theme::S)
                    .align_y(Alignment::Center),
                );
            }
        }
        col.into()
    }

    /// "Read from": shown when the backup has copies elsewhere.
    fn read_from_picker(&self) -> Option<Element<'_, Message>> {
        let choices = self.from_choices();
        if choices.len() < 2 && choices.first().is_none_or(|c| c.0.is_none()) {
            return None;
        }
        let current = FromChoice(self.from.clone());
        let selected = choices
            .iter()
            .find(|c| **c == current)
            .cloned()
            .or_else(|| choices.first().cloned());
        Some(
            row![
                text("Read from").width(Length::Fixed(120.0)),
                iced::widget::pick_list(choices, selected, Message::From).padding(theme::S),
                text("Every file is checked against the manifest as it streams in; nothing is copied here first.")
                    .size(theme::SMALL)
                    .style(theme::muted),
            ]
            .spacing(theme::M)
            .align_y(Alignment::Center)
            .into(),
        )
    }

    fn target_step(&self) -> Element<'_, Message> {
        let same_label = match self
            .selected_backup()
            .and_then(|b| b.project_id.as_deref())
            .and_then(|id| self.project(id))
        {
            Some(p) => format!("The same project ({})", p.name),
            None => "The same project (removed)".to_owned(),
        };
        let mut col = column![
            text("Restore into…").size(theme::H2).font(theme::BOLD),
            widget::choice(
                &same_label,
                "Put the project back as it was at backup time",
                self.target_kind == TargetKind::Same,
                Message::TargetKind(TargetKind::Same)
            ),
            widget::choice(
                "Another project",
                "Copy the data into another project of yours, e.g. production into staging",
                self.target_kind == TargetKind::Project,
                Message::TargetKind(TargetKind::Project)
            ),
            widget::choice(
                "A database URL",
                "Any PostgreSQL, e.g. a local database for inspection",
                self.target_kind == TargetKind::Url,
                Message::TargetKind(TargetKind::Url)
            ),
        ]
        .spacing(theme::M);
        match self.target_kind {
            TargetKind::Project => {
                let choices: Vec<ProjectChoice> =
                    self.projects.iter().map(ProjectChoice::from).collect();
                col = col.push(
                    pick_list(choices, self.target_project.clone(), Message::TargetProject)
                        .placeholder("Choose a project")
                        .padding(theme::S),
                );
            }
            TargetKind::Url => {
                col = col.push(widget::field(
                    "Connection URL",
                    text_input("postgresql://user@host:5432/database", &self.url)
                        .id(URL_ID)
                        .on_input(Message::Url)
                        .padding(theme::S),
                    None,
                    Some("any PostgreSQL the role can create objects in"),
                ));
                col = col.push(widget::field(
                    "Password",
                    text_input("if not in the URL", &self.url_password)
                        .secure(true)
                        .on_input(Message::UrlPassword)
                        .padding(theme::S),
                    None,
                    None,
                ));
            }
            TargetKind::Same => {}
        }
        if let Some(p) = self.target_project() {
            col = col.push(
                row![
                    text("Target environment:").style(theme::muted),
                    widget::env_badge(p.environment)
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
        }
        if let Some(p) = self.read_from_picker() {
            col = col.push(p);
        }
        col.into()
    }

    fn scope_step(&self) -> Element<'_, Message> {
        let mut col = column![
            text("What to restore").size(theme::H2).font(theme::BOLD),
            row![
                checkbox(self.roles)
                    .label("Roles")
                    .on_toggle(Message::Roles),
                checkbox(self.schema)
                    .label("Schema (tables, functions, policies…)")
                    .on_toggle(Message::Schema),
                checkbox(self.data).label("Data").on_toggle(Message::Data),
            ]
            .spacing(theme::L),
            widget::field(
                "Only these schemas",
                text_input("everything in the backup", &self.schemas)
                    .id(SCHEMAS_ID)
                    .on_input(Message::Schemas)
                    .padding(theme::S),
                None,
                Some("exact names, comma-separated; quote one holding a dot: \"a.b\""),
            ),
        ]
        .spacing(theme::M);
        let chosen = crate::engine::ident::split_list(&self.schemas);
        let picked = crate::engine::ident::split_list(&self.tables);
        if let Some((schemas, _)) = &self.names {
            col = col.push(widget::name_picker(
                schemas,
                &|n| chosen.iter().any(|c| c == n),
                &|n| Message::PickSchema(n),
                40,
            ));
        }
        col = col.push(widget::field(
            "…or only these tables' rows",
            text_input("schema.table, …", &self.tables)
                .on_input(Message::Tables)
                .padding(theme::S),
            None,
            Some("the tables must exist in the target; choose schemas or tables, not both"),
        ));
        if let Some((_, tables)) = &self.names {
            col = col.push(widget::name_picker(
                tables,
                &|n| picked.iter().any(|c| c == n),
                &|n| Message::PickTable(n),
                60,
            ));
        }
        col.into()
    }

    fn mode_step(&self) -> Element<'_, Message> {
        column![
            text("If the target already has these objects").size(theme::H2).font(theme::BOLD),
            widget::choice(
                "Only into an empty target (new)",
                "Stop, changing nothing, if the target already holds objects in scope",
                self.mode == RestoreMode::New,
                Message::Mode(RestoreMode::New)
            ),
            widget::choice(
                "Replace what is in scope",
                "A safety snapshot of the objects in scope is taken first, so the restore can be rolled back",
                self.mode == RestoreMode::Replace,
                Message::Mode(RestoreMode::Replace)
            ),
            text("How to load").size(theme::H2).font(theme::BOLD),
            widget::choice(
                "In one transaction",
                "All or nothing: a failed or cancelled restore changes nothing",
                self.jobs <= 1,
                Message::Jobs(1)
            ),
            widget::choice(
                "In parallel, on several connections",
                "Faster when the server has cores to spare, but not all or nothing: a failure partway leaves the target partly restored until you roll it back to the safety snapshot",
                self.jobs > 1,
                Message::Jobs(if self.jobs > 1 { self.jobs } else { DEFAULT_JOBS })
            ),
        ]
        .spacing(theme::M)
        .push((self.jobs > 1).then(|| {
            row![
                text("Connections").width(Length::Fixed(140.0)),
                pick_list(
                    (2..=crate::engine::restore::MAX_JOBS).collect::<Vec<u8>>(),
                    Some(self.jobs),
                    Message::Jobs
                )
                .padding(theme::S),
            ]
            .spacing(theme::S)
            .align_y(Alignment::Center)
        }))
        .push(
            text("The next step is a dry run: it reads the target and shows exactly what would change, without changing anything.")
                .size(theme::SMALL)
                .style(theme::muted),
        )
        .into()
    }

    fn preview_step(&self) -> Element<'_, Message> {
        match &self.preview {
            None => column![
                text("Preview").size(theme::H2).font(theme::BOLD),
                text(if self.previewing {
                    "Reading the target and the backup…"
                } else {
                    "No preview yet."
                })
                .style(theme::muted),
            ]
            .spacing(theme::M)
            .into(),
            Some(Err(e)) => column![
                text("Preview").size(theme::H2).font(theme::BOLD),
                widget::banner(&widget::Notice::error(e), Message::Back),
                text("Go back to change the target or the scope.").style(theme::muted),
            ]
            .spacing(theme::M)
            .into(),
            Some(Ok(p)) => super::preview::preview_view(p, &self.allow_drop, self.previewing),
        }
    }

    fn confirm_step(&self) -> Element<'_, Message> {
        let scope = self.scope();
        let what: Vec<&str> = [
            (scope.roles, "roles"),
            (scope.schema, "schema"),
            (scope.data, "data"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        let mut col = column![
            text("Confirm").size(theme::H2).font(theme::BOLD),
            widget::kv("Target", self.target_label()),
            widget::kv("Restores", what.join(", ")),
            widget::kv(
                "Limited to",
                match (scope.schemas.is_empty(), scope.tables.is_empty()) {
                    (true, true) => "everything in the backup".to_owned(),
                    (false, _) => format!("schemas {}", scope.schemas.join(", ")),
                    (_, false) => format!("tables {}", scope.tables.join(", ")),
                },
            ),
            widget::kv("Mode", self.mode.as_str()),
        ]
        .spacing(theme::S);
        if let Some(Ok(p)) = &self.preview {
            col = col.push(widget::kv(
                "Changes",
                format!("{} created, {} replaced", p.create.len(), p.replace.len()),
            ));
        }
        if !self.allow_drop.is_empty() {
            col = col.push(
                text(format!(
                    "Also dropped, outside the scope, as you accepted: {}",
                    self.allow_drop
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
                .style(theme::toned(Tone::Warning)),
            );
        }
        if let Some(name) = self.confirm_name() {
            let why = match self.target_project() {
                Some(p) if p.environment == crate::engine::project::Environment::Production => {
                    format!(
                        "{} is a production project. Type its name to confirm.",
                        p.name
                    )
                }
                _ => {
                    format!("The target database is not empty. Type its name ({name}) to confirm.")
                }
            };
            col = col.push(text(why).style(theme::toned(Tone::Danger)));
            col = col.push(
                text_input(&name, &self.confirm_text)
                    .id(CONFIRM_ID)
                    .on_input(Message::ConfirmText)
                    .on_submit(Message::Start)
                    .padding(theme::S)
                    .style(theme::input(
                        !self.confirm_text.is_empty() && !self.confirmed(),
                    )),
            );
        }
        col.into()
    }

    fn progress_step(&self) -> Element<'_, Message> {
        let Some(r) = &self.running else {
            return text("Starting…").into();
        };
        let phase = match r.progress.as_ref().map(|p| p.phase) {
            _ if r.cancelling => "Cancelling…",
            None => "Starting…",
            Some(RestorePhase::Preparing) => "Preparing",
            Some(RestorePhase::Snapshot) => "Taking the safety snapshot",
            Some(RestorePhase::Loading) => "Loading",
            Some(RestorePhase::Checking) => "Checking",
        };
        let (fraction, detail) = match &r.progress {
            Some(p) if p.total_bytes > 0 => (
                (p.bytes_applied as f64 / p.total_bytes as f64).clamp(0.0, 1.0) as f32,
                format!(
                    "{} of {} · {}{} · elapsed {}",
                    format::bytes(p.bytes_applied as i64),
                    format::bytes(p.total_bytes as i64),
                    format::rate(p.rate),
                    p.eta_secs
                        .map(|e| format!(" · ETA {}", format::secs(e)))
                        .unwrap_or_default(),
                    format::secs(p.elapsed_secs)
                ),
            ),
            _ => (
                0.0,
                format!(
                    "elapsed {}",
                    format::secs(r.started.elapsed().as_secs_f64())
                ),
            ),
        };
        column![
            text(if r.rollback {
                "Rolling back"
            } else {
                "Restoring"
            })
            .size(theme::H2)
            .font(theme::BOLD),
            row![
                text(phase).font(theme::BOLD),
                widget::fill(),
                text(format::percent(f64::from(fraction)))
            ],
            progress_bar(0.0..=1.0, fraction).girth(8),
            text(detail).size(theme::SMALL).style(theme::muted),
            row![widget::secondary_button(
                "Cancel",
                (!r.cancelling).then_some(Message::Cancel)
            )],
            text(if self.jobs > 1 {
                "Parallel load: the schema commits first, then rows and indexes on several connections; a cancelled or failed restore can leave the target partly restored (roll it back afterwards)."
            } else {
                "Everything runs in one transaction: a cancelled or failed restore changes nothing."
            })
            .size(theme::SMALL)
            .style(theme::muted),
        ]
        .spacing(theme::M)
        .into()
    }

    fn result_step(&self) -> Element<'_, Message> {
        let mut col = column![].spacing(theme::M);
        match &self.result {
            Some(Ok(rec)) => {
                col = col
                    .push(
                        text(if self.result_is_rollback {
                            "Rolled back"
                        } else {
                            "Restore completed"
                        })
                        .size(theme::H2)
                        .font(theme::BOLD),
                    )
                    .push(widget::kv("Restore", format::short_id(&rec.id)))
                    .push(widget::kv("Target", rec.target.clone()))
                    .push(widget::kv("Status", rec.status.clone()))
                    .push(widget::kv("Mode", rec.mode.clone()));
                if let Some(s) = &rec.snapshot_backup_id {
                    col = col.push(widget::kv(
                        "Safety snapshot",
                        format!("backup {}", format::short_id(s)),
                    ));
                }
            }
            Some(Err(e)) => {
                col = col
                    .push(
                        text(if self.result_is_rollback {
                            "The rollback did not complete"
                        } else {
                            "The restore did not complete"
                        })
                        .size(theme::H2)
                        .font(theme::BOLD),
                    )
                    .push(widget::banner(
                        &widget::Notice::error(e),
                        Message::StartOver,
                    ))
                    .push(
                        text(match &self.last_restore {
                            Some(r) if self.failed_id.as_deref() == Some(r.id.as_str()) => {
                                "The parallel load had committed part of the restore: the target is partly restored. Roll it back to the safety snapshot, or restore again in replace mode."
                            }
                            _ if self.jobs > 1 => {
                                "A parallel load may have committed part of the restore: check the target, or roll the restore back from the restores list."
                            }
                            _ => "The restore runs in one transaction: the target was left as it was.",
                        })
                        .style(theme::muted),
                    );
            }
            None => {}
        }
        let can_rollback = self.can_roll_back();
        let mut actions = row![widget::secondary_button(
            "Start another restore",
            Some(Message::StartOver)
        )]
        .spacing(theme::S);
        if can_rollback {
            actions = actions.push(widget::danger_button(
                "Roll back this restore",
                Some(Message::Rollback),
            ));
        }
        col.push(actions).into()
    }
}
