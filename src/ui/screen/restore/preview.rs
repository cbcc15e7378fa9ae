//! The engine's preview, readable: what is created, replaced, skipped as
//! the platform's, left to the platform, and what outside the scope would
//! be dropped — each of those with a box to accept it.

use std::collections::BTreeSet;

use iced::widget::{checkbox, column, row, text};
use iced::{Alignment, Element, Length};

use super::Message;
use crate::engine::restore::RestorePreview;
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

/// A titled list, the first `limit` items shown.
fn list<'a>(
    title: &str,
    items: &[String],
    tone: Tone,
    limit: usize,
) -> Option<Element<'a, Message>> {
    if items.is_empty() {
        return None;
    }
    let mut c = column![text(format!("{title} ({})", items.len())).font(theme::BOLD)].spacing(2);
    for i in items.iter().take(limit) {
        c = c.push(
            text(format!("• {i}"))
                .size(theme::SMALL)
                .style(theme::toned(tone)),
        );
    }
    if items.len() > limit {
        c = c.push(
            text(format!("… and {} more", items.len() - limit))
                .size(theme::SMALL)
                .style(theme::muted),
        );
    }
    Some(c.into())
}

/// The label of the box that accepts dropping `object`.
pub fn accept_label(object: &str) -> String {
    format!("Drop {object}")
}

/// The engine's preview, readable; `accepted` are the objects outside the
/// scope the user ticked (the preview is re-run with them).
pub fn preview_view<'a>(
    p: &RestorePreview,
    accepted: &BTreeSet<String>,
    refreshing: bool,
) -> Element<'a, Message> {
    let verdict = if refreshing {
        widget::badge("checking…", Tone::Info)
    } else if p.allowed {
        widget::badge("ready", Tone::Success)
    } else {
        widget::badge("refused", Tone::Danger)
    };
    let mut col = column![
        row![text("Preview").size(theme::H2).font(theme::BOLD), verdict]
            .spacing(theme::S)
            .align_y(Alignment::Center),
        widget::kv(
            "Target",
            format!("{} (PostgreSQL {})", p.target, p.target_server_version)
        ),
        widget::kv("Estimated time", format::secs(p.estimated_seconds)),
        widget::kv(
            "Safety snapshot",
            if p.snapshot {
                "yes, taken first (rollback possible)"
            } else {
                "not needed"
            }
        ),
        widget::kv(
            "Left alone",
            format!("{} object(s) outside the scope", p.left_alone)
        ),
    ]
    .spacing(theme::S);
    if let Some(r) = &p.refusal {
        col = col.push(text(r.clone()).style(theme::toned(Tone::Danger)));
    }
    if let Some(name) = &p.confirm_name {
        col = col.push(
            text(format!(
                "The next step asks to type {name:?}: the target is not a throw-away database."
            ))
            .size(theme::SMALL)
            .style(theme::toned(Tone::Warning)),
        );
    }
    if !p.dependents.is_empty() {
        let mut c = column![
            text(format!(
                "Outside the scope, depending on what is replaced ({})",
                p.dependents.len()
            ))
            .font(theme::BOLD),
            text("Replacing the scope would drop these. Tick each one you accept to lose, or go back and widen the scope.")
                .size(theme::SMALL)
                .style(theme::muted),
        ]
        .spacing(theme::XS);
        for d in &p.dependents {
            let line: Element<'a, Message> = if d.recreated {
                text(format!("• {} — restored from the backup", d.object))
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Info))
                    .into()
            } else {
                let object = d.object.clone();
                row![
                    checkbox(accepted.contains(&d.object))
                        .label(accept_label(&d.object))
                        .on_toggle(move |on| Message::AllowDrop(object.clone(), on)),
                    text(format!("(depends on {})", d.depends_on))
                        .size(theme::SMALL)
                        .style(theme::muted),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center)
                .into()
            };
            c = c.push(line);
        }
        col = col.push(c);
    }
    for item in [
        list("Created", &p.create, Tone::Success, 15),
        list("Replaced", &p.replace, Tone::Warning, 15),
        list("Changed since the backup", &p.changed, Tone::Warning, 15),
        list(
            "In the backup, not in the target",
            &p.missing_in_target,
            Tone::Info,
            15,
        ),
        list(
            "In the target, not in the backup",
            &p.extra_in_target,
            Tone::Neutral,
            15,
        ),
        list(
            "Created in platform schemas or database-wide",
            &p.platform_created,
            Tone::Success,
            15,
        ),
        list(
            "Replaced with the backup's definition",
            &p.replaced_objects,
            Tone::Warning,
            15,
        ),
        list(
            "Platform objects already in the target (skipped)",
            &p.platform_skipped,
            Tone::Neutral,
            5,
        ),
        list(
            "In the target with another definition (the target's kept)",
            &p.platform_differs,
            Tone::Warning,
            15,
        ),
        list(
            "Platform objects the target lacks (left to the platform)",
            &p.platform_missing,
            Tone::Warning,
            15,
        ),
        list(
            "Left out of schema.sql when the backup was made",
            &p.left_out_at_backup,
            Tone::Neutral,
            5,
        ),
        list("Roles to create", &p.roles_to_create, Tone::Info, 15),
        list("Warnings", &p.warnings, Tone::Warning, 15),
    ]
    .into_iter()
    .flatten()
    {
        col = col.push(item);
    }
    if !p.tables.is_empty() {
        col = col.push(text(format!("Rows per table ({})", p.tables.len())).font(theme::BOLD));
        for t in p.tables.iter().take(25) {
            col = col.push(
                row![
                    text(t.table.clone())
                        .size(theme::SMALL)
                        .font(theme::MONO)
                        .width(Length::Fixed(320.0)),
                    text(match t.rows_now {
                        Some(n) => format!("{n} now"),
                        None => "new table".into(),
                    })
                    .size(theme::SMALL)
                    .width(Length::Fixed(120.0)),
                    text(format!("→ {} after", t.rows_after)).size(theme::SMALL),
                ]
                .spacing(theme::M),
            );
        }
        if p.tables.len() > 25 {
            col = col.push(
                text(format!("… and {} more tables", p.tables.len() - 25))
                    .size(theme::SMALL)
                    .style(theme::muted),
            );
        }
    }
    col.into()
}
