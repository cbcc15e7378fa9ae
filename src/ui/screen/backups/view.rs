//! The backups screen's view: the list, its header and rows, the
//! selected backup's detail, and the dialogs over them.

use super::*;
use iced::widget::{column, row};

impl Backups {
    pub fn view<'a>(&'a self, jobs: &'a [Job]) -> Element<'a, Message> {
        let project_name = self
            .project
            .as_ref()
            .and_then(|id| self.projects.iter().find(|p| &p.id == id))
            .map(|p| p.name.clone());
        let subtitle = match (&project_name, self.loaded) {
            (_, false) => "Loading…".to_owned(),
            (Some(n), true) => format!(
                "{} of {} backup(s) · project {n}",
                self.visible.len(),
                self.rows.len()
            ),
            (None, true) => format!("{} of {} backup(s)", self.visible.len(), self.rows.len()),
        };
        let header = widget::page_header(
            "Backups",
            Some(subtitle),
            row![
                widget::secondary_button("Refresh", Some(Message::Load)),
                widget::secondary_button("Versions…", Some(Message::OpenHistory)),
                widget::secondary_button("Migration assistant…", Some(Message::OpenMigrate)),
                widget::primary_button(
                    "Back up now",
                    Some(Message::OpenDialog(self.project.clone()))
                ),
            ]
            .spacing(theme::S),
        );
        let mut page = column![header].spacing(theme::M);
        if let Some(e) = &self.error {
            page = page.push(widget::banner(&widget::Notice::error(e), Message::Load));
        }
        for j in jobs {
            page = page.push(jobs::view(j, Message::CancelJob(j.id)));
        }
        let filters = row![
            text_input("Search project, id, error (Ctrl+F)", &self.search)
                .id(SEARCH_ID)
                .on_input(Message::Search)
                .padding(theme::S)
                .width(Length::FillPortion(3)),
            pick_list(
                ProjectFilter::options(&self.projects),
                Some(ProjectFilter::selected(
                    &self.projects,
                    self.project.as_ref()
                )),
                Message::Project
            )
            .padding(theme::S)
            .width(Length::FillPortion(2)),
            pick_list(StatusFilter::ALL, Some(self.status), Message::Status)
                .padding(theme::S)
                .width(Length::FillPortion(1)),
            pick_list(self.types(), Some(self.kind.clone()), Message::Type)
                .padding(theme::S)
                .width(Length::FillPortion(1)),
        ]
        .spacing(theme::S);
        page = page.push(filters);

        let body: Element<'a, Message> = if !self.loaded {
            text("Loading backups…").style(theme::muted).into()
        } else if self.rows.is_empty() {
            widget::empty(
                "No backups yet",
                if self.projects.is_empty() {
                    "Add a project first, then back it up here or on a schedule."
                } else {
                    "Start the first one: it dumps roles, schema and data, compressed and encrypted, into a folder you can browse."
                },
                Some(("Back up now", Message::OpenDialog(self.project.clone()))),
            )
        } else if self.visible.is_empty() {
            widget::empty(
                "Nothing matches",
                "No backup matches these filters; clear the search or pick another status.",
                None,
            )
        } else {
            column![
                self.header_row(),
                vlist::vlist(
                    Id::new(LIST_ID),
                    self.visible.len(),
                    ROW_HEIGHT,
                    &self.scroll,
                    Message::Scrolled,
                    |i| self.row_view(i),
                ),
            ]
            .spacing(2)
            .height(Length::Fill)
            .into()
        };
        page = page.push(container(body).height(Length::Fill));
        if let Some(r) = self.selected_row() {
            page = page.push(self.detail_view(r));
        }
        let base: Element<'a, Message> = page.into();
        if let Some(d) = &self.dialog {
            return widget::modal(
                base,
                d.view().map(Message::Dialog),
                Message::Dialog(backup_dialog::Message::Cancel),
            );
        }
        if let Some(d) = &self.history {
            return widget::modal(
                base,
                d.view().map(Message::History),
                Message::History(history::Message::Cancel),
            );
        }
        if let Some(d) = &self.migrate {
            return widget::modal(
                base,
                d.view().map(Message::Migrate),
                Message::Migrate(migrate::Message::Cancel),
            );
        }
        if let Some(rec) = &self.confirm_delete {
            let dialog = column![
                text(format!("Delete backup {}?", format::short_id(&rec.id))).size(theme::H2).font(theme::BOLD),
                text(format!(
                    "{} · {} · {} · {}. Its folder and files are removed from disk; this cannot be undone.",
                    rec.project_name,
                    rec.backup_type,
                    format::local_time(&rec.created_at),
                    format::bytes(rec.file_size.unwrap_or(0))
                )),
                row![
                    widget::danger_button("Delete backup", Some(Message::ConfirmDelete)),
                    widget::secondary_button("Keep it", Some(Message::CancelDelete)),
                ]
                .spacing(theme::S),
            ]
            .spacing(theme::M)
            .max_width(520);
            return widget::modal(base, dialog, Message::CancelDelete);
        }
        base
    }

    fn header_row(&self) -> Element<'_, Message> {
        let head = |label: &'static str, key: SortKey, width: Length| -> Element<'_, Message> {
            let arrow = if self.sort == key {
                if self.descending { " ▼" } else { " ▲" }
            } else {
                ""
            };
            button(
                text(format!("{label}{arrow}"))
                    .size(theme::SMALL)
                    .font(theme::BOLD),
            )
            .style(theme::link)
            .padding(0)
            .width(width)
            .on_press(Message::Sort(key))
            .into()
        };
        container(
            row![
                head("Date", SortKey::Date, Length::Fixed(140.0)),
                head("Project", SortKey::Project, Length::FillPortion(3)),
                head("Type", SortKey::Type, Length::Fixed(90.0)),
                head("Status", SortKey::Status, Length::Fixed(100.0)),
                head("Size", SortKey::Size, Length::Fixed(80.0)),
                head("Duration", SortKey::Duration, Length::Fixed(100.0)),
                text("Checks")
                    .size(theme::SMALL)
                    .font(theme::BOLD)
                    .width(Length::Fixed(170.0)),
            ]
            .spacing(theme::M),
        )
        .padding([theme::S, theme::M])
        .style(theme::table_header)
        .into()
    }

    fn row_view(&self, i: usize) -> Element<'_, Message> {
        let r = &self.rows[self.visible[i]];
        let b = &r.rec;
        let selected = self.selected.as_ref() == Some(&b.id);
        let mut checks = row![].spacing(theme::XS);
        if b.verified_at.is_some() {
            checks = checks.push(widget::badge("✓ verified", Tone::Success));
        }
        if b.verified_restorable_at.is_some() {
            checks = checks.push(widget::badge("✓ restores", Tone::Success));
        }
        if let Some(what) = self.busy.get(&b.id) {
            let label = match self.rtest_progress.get(&b.id) {
                Some(p) => rtest_label(p),
                None => (*what).to_owned(),
            };
            checks = checks.push(widget::badge(label, Tone::Info));
        }
        let stored = r.copies.iter().filter(|c| c.status == "stored").count();
        if stored > 0 {
            let bad = r.copies.iter().any(|c| c.error.is_some());
            checks = checks.push(widget::badge(
                format!("+{stored} off-site"),
                if bad { Tone::Warning } else { Tone::Info },
            ));
        }
        if b.local_state != "present" && b.status == "completed" {
            checks = checks.push(widget::badge("off-site only", Tone::Neutral));
        }
        button(
            row![
                text(r.date.clone())
                    .size(theme::SMALL)
                    .width(Length::Fixed(140.0)),
                text(b.project_name.clone()).width(Length::FillPortion(3)),
                text(b.backup_type.clone())
                    .size(theme::SMALL)
                    .width(Length::Fixed(90.0)),
                container(widget::status_badge(&b.status)).width(Length::Fixed(100.0)),
                text(b.file_size.map(format::bytes).unwrap_or_else(|| "—".into()))
                    .size(theme::SMALL)
                    .width(Length::Fixed(80.0)),
                text(
                    r.duration_ms
                        .map(format::duration_ms)
                        .unwrap_or_else(|| "—".into())
                )
                .size(theme::SMALL)
                .width(Length::Fixed(100.0)),
                container(checks).width(Length::Fixed(170.0)),
            ]
            .spacing(theme::M)
            .height(Length::Fill)
            .align_y(Alignment::Center),
        )
        .width(Length::Fill)
        .height(Length::Fill)
        .padding([0.0, theme::M])
        .style(theme::row_button(i, selected))
        .on_press(Message::Select(b.id.clone()))
        .into()
    }

    fn detail_view<'a>(&'a self, r: &'a Row) -> Element<'a, Message> {
        let b = &r.rec;
        let id = b.id.clone();
        let completed = b.status == "completed";
        let busy = self.busy.contains_key(&b.id);
        let mut info = column![
            row![
                text(format!("Backup {}", format::short_id(&b.id))).font(theme::BOLD),
                widget::status_badge(&b.status),
                text(format!(
                    "{} · {} · {}",
                    b.project_name, b.backup_type, r.date
                ))
                .style(theme::muted),
            ]
            .spacing(theme::S)
            .align_y(Alignment::Center),
        ]
        .spacing(theme::XS);
        if let Some(e) = &b.error_message {
            info = info.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        if let Some(p) = &b.file_path {
            info = info.push(text(p.clone()).size(theme::SMALL).font(theme::MONO));
        }
        if let Some(c) = &b.checksum {
            info = info.push(
                text(format!(
                    "checksum {}",
                    c.chars().take(24).collect::<String>()
                ))
                .size(theme::SMALL)
                .font(theme::MONO)
                .style(theme::muted),
            );
        }
        if b.status == "completed" {
            info = info.push(
                text(match b.local_state.as_str() {
                    "present" => "This machine: stored".to_owned(),
                    "removing" => "This machine: being removed".to_owned(),
                    _ => "This machine: no copy (restores read a destination)".to_owned(),
                })
                .size(theme::SMALL),
            );
        }
        for c in &r.copies {
            let (tone, what) = match (c.status.as_str(), &c.error, &c.verified_at) {
                ("stored", Some(e), _) => (Tone::Danger, format!("stored, last check failed: {e}")),
                ("stored", None, Some(v)) => (
                    Tone::Success,
                    format!("stored, verified {}", format::local_time(v)),
                ),
                ("stored", None, None) => (Tone::Info, "stored".to_owned()),
                (s, Some(e), _) => (Tone::Danger, format!("{s}: {e}")),
                (s, None, _) => (Tone::Neutral, s.to_owned()),
            };
            let failover = if c.failover_for.is_some() {
                " (failover copy)"
            } else {
                ""
            };
            info = info.push(
                text(format!("{}: {what}{failover}", c.destination))
                    .size(theme::SMALL)
                    .style(theme::toned(tone)),
            );
        }
        let actions = row![
            widget::secondary_button(
                "Verify",
                (completed && !busy).then(|| Message::Verify(id.clone()))
            ),
            iced::widget::tooltip(
                widget::secondary_button(
                    "Restore test",
                    (completed && !busy).then(|| Message::RestoreTest(id.clone()))
                ),
                container(
                    text("Restores into a throw-away database on the scratch server (Settings) and compares every table")
                        .size(theme::SMALL)
                )
                .padding(theme::S)
                .max_width(320)
                .style(theme::card),
                iced::widget::tooltip::Position::Top,
            ),
            widget::primary_button("Restore…", completed.then(|| Message::Restore(id.clone()))),
            widget::secondary_button(
                "Open folder",
                (completed && b.local_state == "present").then(|| Message::OpenFolder(id.clone()))
            ),
            widget::danger_button(
                "Delete…",
                (!busy && b.status != "running").then(|| Message::AskDelete(id.clone()))
            ),
        ]
        .spacing(theme::S);
        container(column![info, actions].spacing(theme::S))
            .padding(theme::M)
            .width(Length::Fill)
            .style(theme::card)
            .into()
    }
}

/// A running restore test's badge: its phase and, while loading, how much.
pub(super) fn rtest_label(p: &crate::engine::restore::RestoreProgress) -> String {
    use crate::engine::restore::RestorePhase;
    match p.phase {
        RestorePhase::Loading if p.total_bytes > 0 => format!(
            "restore test: loading {}%",
            (p.bytes_applied.saturating_mul(100) / p.total_bytes).min(100)
        ),
        RestorePhase::Loading => "restore test: loading".into(),
        RestorePhase::Checking => "restore test: checking tables".into(),
        RestorePhase::Preparing | RestorePhase::Snapshot => "restore test: preparing".into(),
    }
}
