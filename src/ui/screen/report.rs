//! The connection test report, readable: version, size, latency, TLS, the
//! permission pre-flight, the pg_dump match, problems and warnings.

use iced::widget::{column, row, text};
use iced::{Alignment, Element};

use crate::engine::pg::probe::ConnectionReport;
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

pub fn view<'a, M: Clone + 'a>(r: &ConnectionReport) -> Element<'a, M> {
    let verdict = if r.ok {
        widget::badge("ready to back up", Tone::Success)
    } else {
        widget::badge("not ready", Tone::Danger)
    };
    let mut col = column![
        row![text("Connection test").font(theme::BOLD), verdict]
            .spacing(theme::S)
            .align_y(Alignment::Center),
        widget::kv(
            "Server",
            format!("PostgreSQL {} (major {})", r.server_version, r.server_major)
        ),
        widget::kv("Database size", format::bytes(r.database_size_bytes)),
        widget::kv(
            "Latency",
            format!("{:.1} ms (connect {:.0} ms)", r.latency_ms, r.connect_ms)
        ),
        widget::kv(
            "Encryption",
            if r.tls {
                format!(
                    "TLS {} — {}",
                    r.tls_version.clone().unwrap_or_default(),
                    r.verification
                )
            } else {
                "none".to_owned()
            },
        ),
        widget::kv(
            "Role",
            format!(
                "{}{}",
                r.current_user,
                if r.superuser { " (superuser)" } else { "" }
            ),
        ),
        widget::kv(
            "pg_dump",
            match &r.pg_dump {
                Some(t) => format!("{} — {}", t.version, t.path),
                None => "no matching pg_dump installed".to_owned(),
            },
        ),
        widget::kv(
            "Pre-flight",
            format!(
                "{} schema(s), {} table(s), {} sequence(s) checked; roles {}",
                r.preflight.schemas.len(),
                r.preflight.tables_checked,
                r.preflight.sequences_checked,
                if r.preflight.roles_readable {
                    "readable"
                } else {
                    "NOT readable"
                }
            ),
        ),
    ]
    .spacing(theme::XS);
    if !r.preflight.denied.is_empty() {
        col = col.push(
            text("Missing privileges")
                .font(theme::BOLD)
                .size(theme::SMALL),
        );
        for d in r.preflight.denied.iter().take(12) {
            col = col.push(text(format!("• {d}")).size(theme::SMALL));
        }
        if r.preflight.denied.len() > 12 {
            col = col.push(
                text(format!("… and {} more", r.preflight.denied.len() - 12))
                    .size(theme::SMALL)
                    .style(theme::muted),
            );
        }
    }
    for p in &r.problems {
        col = col.push(
            text(format!("✗ {p}"))
                .size(theme::SMALL)
                .style(theme::toned(Tone::Danger)),
        );
    }
    for w in &r.warnings {
        col = col.push(
            text(format!("! {w}"))
                .size(theme::SMALL)
                .style(theme::toned(Tone::Warning)),
        );
    }
    iced::widget::container(col)
        .padding(theme::M)
        .width(iced::Length::Fill)
        .style(theme::card)
        .into()
}
