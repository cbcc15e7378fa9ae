//! A project's versions (a dialog over the backups list): its completed
//! backups as a timeline, the difference between any two (schema objects
//! with their changed definitions, rows per table, roles), and "restore
//! this version", which hands the backup to the restore wizard.

use iced::widget::{button, column, container, row, scrollable, text};
use iced::{Alignment, Element, Length, Task};
use tokio_util::sync::CancellationToken;

use crate::engine::history::{BackupDiff, HistoryEntry};
use crate::engine::{Engine, Error};
use crate::ui::format;
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

#[derive(Debug, Clone)]
pub enum Message {
    Loaded(Result<Vec<HistoryEntry>, Error>),
    /// Pick a version as the older (A) or newer (B) side.
    PickA(String),
    PickB(String),
    Compare,
    Diffed(Result<BackupDiff, Error>),
    /// Show or hide one changed definition.
    Toggle(usize),
    Restore(String),
    Cancel,
}

/// What the dialog asks of the backups screen.
pub enum Event {
    None,
    Run(Task<Message>),
    Restore(String),
    Closed,
}

#[derive(Debug)]
pub struct HistoryDialog {
    pub project: String,
    pub entries: Vec<HistoryEntry>,
    pub loading: bool,
    pub a: Option<String>,
    pub b: Option<String>,
    pub diff: Option<BackupDiff>,
    pub comparing: bool,
    pub expanded: Option<usize>,
    pub error: Option<String>,
    cancel: CancellationToken,
}

impl HistoryDialog {
    /// Opens on `project` (name or id); `selected` starts as the newer side.
    pub fn open(
        project: String,
        selected: Option<String>,
        engine: &Engine,
    ) -> (Self, Task<Message>) {
        let e = engine.clone();
        let p = project.clone();
        let d = HistoryDialog {
            project,
            entries: Vec::new(),
            loading: true,
            a: None,
            b: selected,
            diff: None,
            comparing: false,
            expanded: None,
            error: None,
            cancel: CancellationToken::new(),
        };
        (
            d,
            Task::perform(async move { e.backup_history(&p).await }, Message::Loaded),
        )
    }

    pub fn update(&mut self, message: Message, engine: &Engine) -> Event {
        match message {
            Message::Loaded(Ok(list)) => {
                self.loading = false;
                self.entries = list
                    .into_iter()
                    .filter(|h| h.status == "completed")
                    .collect();
                // By default: the newest against the one before it.
                let n = self.entries.len();
                if self
                    .b
                    .as_ref()
                    .is_none_or(|b| !self.entries.iter().any(|e| &e.id == b))
                {
                    self.b = self.entries.last().map(|e| e.id.clone());
                }
                if let Some(bi) = self.index_of(self.b.as_deref()) {
                    self.a = bi.checked_sub(1).map(|i| self.entries[i].id.clone());
                } else if n >= 2 {
                    self.a = Some(self.entries[n - 2].id.clone());
                }
                Event::None
            }
            Message::Loaded(Err(e)) => {
                self.loading = false;
                self.error = Some(e.message);
                Event::None
            }
            Message::PickA(id) => {
                self.a = Some(id);
                self.diff = None;
                Event::None
            }
            Message::PickB(id) => {
                self.b = Some(id);
                self.diff = None;
                Event::None
            }
            Message::Compare => {
                let (Some(a), Some(b)) = (self.a.clone(), self.b.clone()) else {
                    self.error = Some("pick two versions to compare".into());
                    return Event::None;
                };
                if a == b {
                    self.error = Some("pick two different versions".into());
                    return Event::None;
                }
                // The older one is always A.
                let (a, b) = match (self.index_of(Some(&a)), self.index_of(Some(&b))) {
                    (Some(i), Some(j)) if i > j => (b, a),
                    _ => (a, b),
                };
                self.error = None;
                self.comparing = true;
                self.diff = None;
                self.expanded = None;
                self.cancel = CancellationToken::new();
                let (e, c) = (engine.clone(), self.cancel.clone());
                Event::Run(Task::perform(
                    async move { e.diff_backups(&a, &b, c).await },
                    Message::Diffed,
                ))
            }
            Message::Diffed(r) => {
                self.comparing = false;
                match r {
                    Ok(d) => self.diff = Some(d),
                    Err(e) => self.error = Some(e.message),
                }
                Event::None
            }
            Message::Toggle(i) => {
                self.expanded = if self.expanded == Some(i) {
                    None
                } else {
                    Some(i)
                };
                Event::None
            }
            Message::Restore(id) => {
                self.cancel.cancel();
                Event::Restore(id)
            }
            Message::Cancel => {
                self.cancel.cancel();
                Event::Closed
            }
        }
    }

    fn index_of(&self, id: Option<&str>) -> Option<usize> {
        id.and_then(|id| self.entries.iter().position(|e| e.id == id))
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut col = column![
            text(format!("Versions of {}", self.project))
                .size(theme::H2)
                .font(theme::BOLD),
            text("Pick an older version (A) and a newer one (B), then compare: the difference is read from the backups themselves.")
                .style(theme::muted),
        ]
        .spacing(theme::M);
        if self.loading {
            col = col.push(text("Loading versions…").style(theme::muted));
        } else if self.entries.is_empty() {
            col = col.push(text("This project has no completed backups yet.").style(theme::muted));
        }
        let mut list = column![].spacing(2);
        for e in self.entries.iter().rev() {
            let is_a = self.a.as_deref() == Some(e.id.as_str());
            let is_b = self.b.as_deref() == Some(e.id.as_str());
            let pick = |label: &'static str, on: bool, msg: Message| {
                let b = button(text(label).size(theme::SMALL))
                    .on_press(msg)
                    .padding([2, 8]);
                if on {
                    b.style(theme::primary)
                } else {
                    b.style(theme::secondary)
                }
            };
            list = list.push(
                row![
                    pick("A", is_a, Message::PickA(e.id.clone())),
                    pick("B", is_b, Message::PickB(e.id.clone())),
                    text(format::local_time(&e.created_at)).width(Length::FillPortion(3)),
                    text(e.backup_type.clone()).width(Length::FillPortion(2)),
                    text(format::bytes(e.stored_bytes.unwrap_or(0))).width(Length::FillPortion(2)),
                    text(format::short_id(&e.id))
                        .style(theme::muted)
                        .width(Length::FillPortion(2)),
                    widget::secondary_button(
                        "Restore this version",
                        Some(Message::Restore(e.id.clone()))
                    ),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
        }
        col = col.push(scrollable(list).height(Length::Fixed(180.0)));
        col = col.push(
            row![
                widget::primary_button(
                    if self.comparing {
                        "Comparing…"
                    } else {
                        "Compare"
                    },
                    (!self.comparing && self.a.is_some() && self.b.is_some())
                        .then_some(Message::Compare),
                ),
                widget::secondary_button("Close", Some(Message::Cancel)),
            ]
            .spacing(theme::S),
        );
        if let Some(e) = &self.error {
            col = col.push(text(e.clone()).style(theme::toned(Tone::Danger)));
        }
        if let Some(d) = &self.diff {
            col = col.push(scrollable(self.diff_view(d)).height(Length::Fill));
        }
        container(col).height(Length::Fixed(620.0)).into()
    }

    fn diff_view<'a>(&'a self, d: &'a BackupDiff) -> Element<'a, Message> {
        let mut col = column![].spacing(theme::S);
        if d.is_empty() {
            col = col.push(
                text("No differences between these versions.").style(theme::toned(Tone::Success)),
            );
        }
        let s = &d.schema;
        col = col.push(
            text(format!(
                "Schema: {} added, {} removed, {} changed",
                s.added.len(),
                s.removed.len(),
                s.changed.len()
            ))
            .font(theme::BOLD),
        );
        for o in &s.added {
            col = col.push(
                text(format!("+ {} {}.{}", o.kind, o.schema, o.name))
                    .style(theme::toned(Tone::Success)),
            );
        }
        for o in &s.removed {
            col = col.push(
                text(format!("− {} {}.{}", o.kind, o.schema, o.name))
                    .style(theme::toned(Tone::Danger)),
            );
        }
        for (i, o) in s.changed.iter().enumerate() {
            col = col.push(
                button(text(format!("~ {} {}.{}", o.kind, o.schema, o.name)))
                    .style(theme::link)
                    .padding(0)
                    .on_press(Message::Toggle(i)),
            );
            if self.expanded == Some(i) {
                col = col.push(
                    container(text(o.diff.clone()).font(theme::MONO).size(theme::SMALL))
                        .padding(theme::S)
                        .style(container::bordered_box),
                );
            }
        }
        col = col.push(
            text(format!(
                "Data: {} table(s) changed, {} unchanged",
                d.tables.len(),
                d.unchanged_tables
            ))
            .font(theme::BOLD),
        );
        for t in &d.tables {
            col = col.push(text(format!(
                "{}: +{} −{} ~{}  ({} → {} rows{})",
                t.table,
                t.added,
                t.removed,
                t.changed,
                t.rows_a,
                t.rows_b,
                if t.keyed {
                    ""
                } else {
                    "; no primary key: an update counts as − and +"
                }
            )));
        }
        let r = &d.roles;
        if !(r.added.is_empty() && r.removed.is_empty() && r.changed.is_empty()) {
            col = col.push(text(format!(
                "Roles: added {}, removed {}, changed {}",
                list(&r.added),
                list(&r.removed),
                list(&r.changed)
            )));
        }
        for n in &d.notes {
            col = col.push(text(n.clone()).style(theme::muted));
        }
        col.into()
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
