//! Reusable pieces of the interface: badges, banners, empty states, form
//! fields, stat tiles, dialogs, a virtualised list and canvas charts.

pub mod chart;
pub mod vlist;

use iced::widget::{
    Space, button, center, column, container, mouse_area, opaque, row, stack, text,
};
use iced::{Alignment, Element, Length, Padding};

use crate::engine::Error;
use crate::engine::project::Environment;
use crate::ui::theme::{self, Tone};

/// A message shown in the banner strip.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub tone: Tone,
    pub title: String,
    pub detail: Option<String>,
}

impl Notice {
    pub fn error(e: &Error) -> Self {
        Notice {
            tone: Tone::Danger,
            title: e.message.clone(),
            detail: e.hint.clone(),
        }
    }
    pub fn success(title: impl Into<String>) -> Self {
        Notice {
            tone: Tone::Success,
            title: title.into(),
            detail: None,
        }
    }
    pub fn info(title: impl Into<String>) -> Self {
        Notice {
            tone: Tone::Info,
            title: title.into(),
            detail: None,
        }
    }
    pub fn warning(title: impl Into<String>) -> Self {
        Notice {
            tone: Tone::Warning,
            title: title.into(),
            detail: None,
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// A small coloured pill.
pub fn badge<'a, M: 'a>(label: impl Into<String>, tone: Tone) -> Element<'a, M> {
    container(text(label.into()).size(theme::SMALL))
        .padding(Padding::from([1.0, 8.0]))
        .style(theme::badge(tone))
        .into()
}

pub fn env_tone(env: Environment) -> Tone {
    match env {
        Environment::Production => Tone::Danger,
        Environment::Staging => Tone::Warning,
        Environment::Development => Tone::Info,
    }
}

/// `PRODUCTION` / `STAGING` / `DEVELOPMENT`.
pub fn env_badge<'a, M: 'a>(env: Environment) -> Element<'a, M> {
    let label = match env {
        Environment::Production => "production",
        Environment::Staging => "staging",
        Environment::Development => "development",
    };
    badge(label, env_tone(env))
}

pub fn status_tone(status: &str) -> Tone {
    match status {
        "completed" | "ok" | "passed" | "enabled" => Tone::Success,
        "failed" | "error" => Tone::Danger,
        "running" | "pending" => Tone::Info,
        "cancelled" | "stale" | "disabled" => Tone::Warning,
        _ => Tone::Neutral,
    }
}

/// A backup (or job) status.
pub fn status_badge<'a, M: 'a>(status: &str) -> Element<'a, M> {
    badge(status.to_owned(), status_tone(status))
}

/// The banner strip: title, optional detail, a dismiss button.
pub fn banner<'a, M: Clone + 'a>(notice: &Notice, on_dismiss: M) -> Element<'a, M> {
    let mut body = column![text(notice.title.clone()).font(theme::BOLD)].spacing(2);
    if let Some(d) = &notice.detail {
        body = body.push(text(d.clone()).size(theme::SMALL));
    }
    container(
        row![
            body.width(Length::Fill),
            button(text("Dismiss").size(theme::SMALL))
                .style(theme::link)
                .on_press(on_dismiss)
        ]
        .spacing(theme::M)
        .align_y(Alignment::Center),
    )
    .padding([theme::S, theme::M])
    .width(Length::Fill)
    .style(theme::banner(notice.tone))
    .into()
}

/// What to show when a list is empty: what it is and what to do next.
pub fn empty<'a, M: Clone + 'a>(
    title: &str,
    body: &str,
    action: Option<(&str, M)>,
) -> Element<'a, M> {
    let mut col = column![
        text(title.to_owned()).size(theme::H2).font(theme::BOLD),
        text(body.to_owned()).style(theme::muted),
    ]
    .spacing(theme::S)
    .align_x(Alignment::Center)
    .max_width(520);
    if let Some((label, msg)) = action {
        col = col.push(
            button(text(label.to_owned()))
                .style(theme::primary)
                .padding([theme::S, theme::L])
                .on_press(msg),
        );
    }
    container(col)
        .padding(theme::XL)
        .center_x(Length::Fill)
        .into()
}

/// A labelled form field with an inline error or help line.
pub fn field<'a, M: 'a>(
    label: &str,
    input: impl Into<Element<'a, M>>,
    error: Option<&str>,
    help: Option<&str>,
) -> Element<'a, M> {
    let mut col = column![
        text(label.to_owned()).size(theme::SMALL).font(theme::BOLD),
        input.into()
    ]
    .spacing(theme::XS);
    if let Some(e) = error {
        col = col.push(
            text(e.to_owned())
                .size(theme::SMALL)
                .style(theme::toned(Tone::Danger)),
        );
    } else if let Some(h) = help {
        col = col.push(text(h.to_owned()).size(theme::SMALL).style(theme::muted));
    }
    col.into()
}

/// A figure with a caption, for the dashboard's totals.
pub fn stat<'a, M: 'a>(
    label: &str,
    value: String,
    sub: Option<String>,
    tone: Tone,
) -> Element<'a, M> {
    let mut col = column![
        text(label.to_owned())
            .size(theme::SMALL)
            .style(theme::muted),
        text(value)
            .size(theme::H1)
            .font(theme::BOLD)
            .style(move |t: &iced::Theme| {
                if tone == Tone::Neutral {
                    iced::widget::text::Style::default()
                } else {
                    theme::toned(tone)(t)
                }
            }),
    ]
    .spacing(theme::XS);
    if let Some(s) = sub {
        col = col.push(text(s).size(theme::SMALL).style(theme::muted));
    }
    container(col)
        .padding(theme::M)
        .width(Length::Fill)
        .style(theme::card)
        .into()
}

/// A panel with a title.
pub fn card<'a, M: 'a>(title: &str, content: impl Into<Element<'a, M>>) -> Element<'a, M> {
    container(
        column![
            text(title.to_owned()).size(theme::H2).font(theme::BOLD),
            content.into()
        ]
        .spacing(theme::M),
    )
    .padding(theme::L)
    .width(Length::Fill)
    .style(theme::card)
    .into()
}

/// `label: value` on one line.
pub fn kv<'a, M: 'a>(label: &str, value: impl Into<String>) -> Element<'a, M> {
    row![
        text(label.to_owned())
            .size(theme::SMALL)
            .style(theme::muted)
            .width(Length::Fixed(150.0)),
        text(value.into()).size(theme::SMALL),
    ]
    .spacing(theme::S)
    .into()
}

pub fn primary_button<'a, M: Clone + 'a>(
    label: &str,
    on_press: Option<M>,
) -> button::Button<'a, M> {
    button(text(label.to_owned()))
        .style(theme::primary)
        .padding([6.0, theme::M])
        .on_press_maybe(on_press)
}

pub fn secondary_button<'a, M: Clone + 'a>(
    label: &str,
    on_press: Option<M>,
) -> button::Button<'a, M> {
    button(text(label.to_owned()))
        .style(theme::secondary)
        .padding([6.0, theme::M])
        .on_press_maybe(on_press)
}

pub fn danger_button<'a, M: Clone + 'a>(label: &str, on_press: Option<M>) -> button::Button<'a, M> {
    button(text(label.to_owned()))
        .style(theme::danger)
        .padding([6.0, theme::M])
        .on_press_maybe(on_press)
}

/// `content` above `base`, with a dimmed backdrop; clicking the backdrop
/// sends `on_blur`.
pub fn modal<'a, M: Clone + 'a>(
    base: impl Into<Element<'a, M>>,
    content: impl Into<Element<'a, M>>,
    on_blur: M,
) -> Element<'a, M> {
    stack![
        base.into(),
        opaque(
            mouse_area(
                center(opaque(
                    container(content)
                        .padding(theme::XL)
                        .max_width(760)
                        .style(theme::dialog)
                ))
                .style(theme::backdrop)
            )
            .on_press(on_blur)
        )
    ]
    .into()
}

/// One option of a choice, as a clickable card: a title, a line of
/// explanation, highlighted when selected.
pub fn choice<'a, M: Clone + 'a>(
    title: &str,
    detail: &str,
    selected: bool,
    on_press: M,
) -> Element<'a, M> {
    button(
        column![
            row![
                text(if selected { "●" } else { "○" }).style(move |t: &iced::Theme| {
                    if selected {
                        theme::toned(Tone::Info)(t)
                    } else {
                        theme::muted(t)
                    }
                }),
                text(title.to_owned()).font(theme::BOLD),
            ]
            .spacing(theme::S),
            text(detail.to_owned())
                .size(theme::SMALL)
                .style(theme::muted),
        ]
        .spacing(2),
    )
    .width(Length::Fill)
    .padding([theme::S, theme::M])
    .style(theme::choice(selected))
    .on_press(on_press)
    .into()
}

/// Horizontal filler.
pub fn fill() -> Space {
    iced::widget::space::horizontal()
}

/// A page title with actions on the right.
pub fn page_header<'a, M: 'a>(
    title: &str,
    subtitle: Option<String>,
    actions: impl Into<Element<'a, M>>,
) -> Element<'a, M> {
    let mut left = column![text(title.to_owned()).size(theme::H1).font(theme::BOLD)].spacing(2);
    if let Some(s) = subtitle {
        left = left.push(text(s).size(theme::SMALL).style(theme::muted));
    }
    row![left, fill(), actions.into()]
        .spacing(theme::M)
        .align_y(Alignment::Center)
        .into()
}

/// Names to pick from (schemas, tables): one small button each, ticked when
/// `on(name)`; `press(name)` toggles it. At most `limit` are shown.
pub fn name_picker<'a, M: Clone + 'a>(
    names: &[String],
    on: &dyn Fn(&str) -> bool,
    press: &dyn Fn(String) -> M,
    limit: usize,
) -> Element<'a, M> {
    let mut r = iced::widget::row![].spacing(theme::XS);
    for n in names.iter().take(limit) {
        let ticked = on(n);
        let label = if ticked {
            format!("✓ {n}")
        } else {
            n.clone()
        };
        r = r.push(
            iced::widget::button(iced::widget::text(label).size(theme::SMALL))
                .padding([2.0, theme::S])
                .style(if ticked {
                    iced::widget::button::primary
                } else {
                    iced::widget::button::secondary
                })
                .on_press(press(n.clone())),
        );
    }
    let mut col = iced::widget::column![r.wrap()].spacing(theme::XS);
    if names.len() > limit {
        col = col.push(
            iced::widget::text(format!("… and {} more: type them", names.len() - limit))
                .size(theme::SMALL)
                .style(theme::muted),
        );
    }
    col.into()
}

/// Adds `name` to a comma-separated list of names, or removes it.
pub fn toggle_name(list: &str, name: &str) -> String {
    let mut names = crate::engine::ident::split_list(list);
    if let Some(i) = names.iter().position(|n| n == name) {
        names.remove(i);
    } else {
        names.push(name.to_owned());
    }
    names.join(", ")
}
