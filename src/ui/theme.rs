//! Look and feel: the embedded fonts, the two palettes, spacing and type
//! scales, and the style functions every screen uses (so a colour or a
//! radius is decided once, here).

use std::borrow::Cow;

use iced::border::Radius;
use iced::font::Weight;
use iced::theme::Palette;
use iced::widget::{button, container, text_input};
use iced::{Background, Border, Color, Font, Shadow, Theme, Vector, color};

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/LICENSE-DejaVu.txt`).
pub const FONT_REGULAR_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub const FONT_BOLD_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");
pub const FONT_MONO_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

pub const SANS: Font = Font::with_name("DejaVu Sans");
pub const BOLD: Font = Font {
    weight: Weight::Bold,
    ..SANS
};
pub const MONO: Font = Font::with_name("DejaVu Sans Mono");

/// The fonts to load at start-up (window and simulator alike).
pub fn fonts() -> Vec<Cow<'static, [u8]>> {
    vec![
        Cow::Borrowed(FONT_REGULAR_BYTES),
        Cow::Borrowed(FONT_BOLD_BYTES),
        Cow::Borrowed(FONT_MONO_BYTES),
    ]
}

/// iced settings with the embedded fonts and the default text size.
pub fn settings() -> iced::Settings {
    iced::Settings {
        fonts: fonts(),
        default_font: SANS,
        default_text_size: iced::Pixels(TEXT),
        ..iced::Settings::default()
    }
}

// ----- scales ----------------------------------------------------------------

/// Spacing scale (logical pixels).
pub const XS: f32 = 4.0;
pub const S: f32 = 8.0;
pub const M: f32 = 12.0;
pub const L: f32 = 16.0;
pub const XL: f32 = 24.0;

/// Type scale.
pub const H1: f32 = 22.0;
pub const H2: f32 = 17.0;
pub const TEXT: f32 = 14.0;
pub const SMALL: f32 = 12.0;

pub const RADIUS: f32 = 6.0;

// ----- themes ----------------------------------------------------------------

/// Supabase-ish green on warm greys.
pub fn dark() -> Theme {
    Theme::custom(
        "supabackup dark",
        Palette {
            background: color!(0x1c1c1c),
            text: color!(0xededed),
            primary: color!(0x3ecf8e),
            success: color!(0x3ecf8e),
            warning: color!(0xf5a524),
            danger: color!(0xf0616d),
        },
    )
}

pub fn light() -> Theme {
    Theme::custom(
        "supabackup light",
        Palette {
            background: color!(0xfcfcfc),
            text: color!(0x1c1c1c),
            primary: color!(0x1f9d63),
            success: color!(0x1f9d63),
            warning: color!(0xb7791f),
            danger: color!(0xc9353f),
        },
    )
}

/// What a badge, banner or status dot means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Neutral,
    Info,
    Success,
    Warning,
    Danger,
}

impl Tone {
    pub fn color(self, theme: &Theme) -> Color {
        let p = theme.extended_palette();
        match self {
            Tone::Neutral => p.background.strong.color,
            Tone::Info => p.primary.base.color,
            Tone::Success => p.success.base.color,
            Tone::Warning => p.warning.base.color,
            Tone::Danger => p.danger.base.color,
        }
    }
}

fn with_alpha(c: Color, a: f32) -> Color {
    Color { a, ..c }
}

// ----- containers -------------------------------------------------------------

/// A raised panel.
pub fn card(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.weakest.color)),
        border: Border {
            color: p.background.weak.color,
            width: 1.0,
            radius: Radius::from(RADIUS),
        },
        // No shadow: the software renderer blurs every pixel of a shadowed
        // box, which made tall cards cost tens of milliseconds per frame.
        ..container::Style::default()
    }
}

/// The navigation column.
pub fn sidebar(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.weak.color)),
        ..container::Style::default()
    }
}

/// A coloured pill.
pub fn badge(tone: Tone) -> impl Fn(&Theme) -> container::Style {
    move |theme| {
        let c = tone.color(theme);
        container::Style {
            background: Some(Background::Color(with_alpha(c, 0.18))),
            text_color: Some(if tone == Tone::Neutral {
                theme.palette().text
            } else {
                c
            }),
            border: Border {
                color: with_alpha(c, 0.55),
                width: 1.0,
                radius: Radius::from(10.0),
            },
            ..container::Style::default()
        }
    }
}

/// A message strip across the top of the content.
pub fn banner(tone: Tone) -> impl Fn(&Theme) -> container::Style {
    move |theme| {
        let c = tone.color(theme);
        container::Style {
            background: Some(Background::Color(with_alpha(c, 0.14))),
            text_color: Some(theme.palette().text),
            border: Border {
                color: c,
                width: 1.0,
                radius: Radius::from(RADIUS),
            },
            ..container::Style::default()
        }
    }
}

/// The header row of a table.
pub fn table_header(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.weak.color)),
        border: Border {
            radius: Radius::from(RADIUS),
            ..Border::default()
        },
        ..container::Style::default()
    }
}

/// A table row, zebra-striped; `selected` highlights it.
pub fn table_row(index: usize, selected: bool) -> impl Fn(&Theme) -> container::Style {
    move |theme| {
        let p = theme.extended_palette();
        let bg = if selected {
            Some(Background::Color(with_alpha(p.primary.base.color, 0.16)))
        } else if index % 2 == 1 {
            Some(Background::Color(with_alpha(p.background.weak.color, 0.55)))
        } else {
            None
        };
        container::Style {
            background: bg,
            ..container::Style::default()
        }
    }
}

/// The dimmed layer behind a dialog.
pub fn backdrop(_theme: &Theme) -> container::Style {
    container::Style {
        background: Some(Background::Color(with_alpha(Color::BLACK, 0.55))),
        ..container::Style::default()
    }
}

/// A dialog box.
pub fn dialog(theme: &Theme) -> container::Style {
    let p = theme.extended_palette();
    container::Style {
        background: Some(Background::Color(p.background.base.color)),
        border: Border {
            color: p.background.strong.color,
            width: 1.0,
            radius: Radius::from(RADIUS * 1.5),
        },
        shadow: Shadow {
            color: with_alpha(Color::BLACK, 0.4),
            offset: Vector::new(0.0, 6.0),
            blur_radius: 24.0,
        },
        ..container::Style::default()
    }
}

// ----- buttons ----------------------------------------------------------------

/// A navigation entry; `active` marks the current screen.
pub fn nav_button(active: bool) -> impl Fn(&Theme, button::Status) -> button::Style {
    move |theme, status| {
        let p = theme.extended_palette();
        let bg = match (active, status) {
            (true, _) => Some(Background::Color(with_alpha(p.primary.base.color, 0.22))),
            (false, button::Status::Hovered) => Some(Background::Color(p.background.strong.color)),
            _ => None,
        };
        button::Style {
            background: bg,
            text_color: if active {
                p.primary.strong.color
            } else {
                theme.palette().text
            },
            border: Border {
                radius: Radius::from(RADIUS),
                ..Border::default()
            },
            ..button::Style::default()
        }
    }
}

/// A clickable table row.
pub fn row_button(
    index: usize,
    selected: bool,
) -> impl Fn(&Theme, button::Status) -> button::Style {
    move |theme, status| {
        let p = theme.extended_palette();
        let base = table_row(index, selected)(theme);
        let background = match status {
            button::Status::Hovered if !selected => {
                Some(Background::Color(with_alpha(p.primary.base.color, 0.08)))
            }
            _ => base.background,
        };
        button::Style {
            background,
            text_color: theme.palette().text,
            border: Border::default(),
            ..button::Style::default()
        }
    }
}

/// A selectable option card.
pub fn choice(selected: bool) -> impl Fn(&Theme, button::Status) -> button::Style {
    move |theme, status| {
        let p = theme.extended_palette();
        let border = if selected {
            p.primary.base.color
        } else {
            p.background.strong.color
        };
        let background = match (selected, status) {
            (true, _) => Some(Background::Color(with_alpha(p.primary.base.color, 0.12))),
            (false, button::Status::Hovered) => Some(Background::Color(p.background.weak.color)),
            _ => None,
        };
        button::Style {
            background,
            text_color: theme.palette().text,
            border: Border {
                color: border,
                width: 1.0,
                radius: Radius::from(RADIUS),
            },
            ..button::Style::default()
        }
    }
}

/// A quiet button for column headers and links.
pub fn link(theme: &Theme, status: button::Status) -> button::Style {
    let p = theme.extended_palette();
    button::Style {
        background: None,
        text_color: match status {
            button::Status::Hovered => p.primary.strong.color,
            button::Status::Disabled => p.background.strong.color,
            _ => theme.palette().text,
        },
        ..button::Style::default()
    }
}

pub fn primary(theme: &Theme, status: button::Status) -> button::Style {
    rounded(button::primary(theme, status))
}

/// A quiet, outlined button (most actions).
pub fn secondary(theme: &Theme, status: button::Status) -> button::Style {
    let p = theme.extended_palette();
    let (background, text_color) = match status {
        button::Status::Hovered => (p.background.strong.color, theme.palette().text),
        button::Status::Pressed => (p.background.stronger.color, theme.palette().text),
        button::Status::Disabled => (
            p.background.weak.color,
            with_alpha(theme.palette().text, 0.4),
        ),
        button::Status::Active => (p.background.weak.color, theme.palette().text),
    };
    button::Style {
        background: Some(Background::Color(background)),
        text_color,
        border: Border {
            color: p.background.strong.color,
            width: 1.0,
            radius: Radius::from(RADIUS),
        },
        ..button::Style::default()
    }
}

pub fn danger(theme: &Theme, status: button::Status) -> button::Style {
    rounded(button::danger(theme, status))
}

fn rounded(mut s: button::Style) -> button::Style {
    s.border.radius = Radius::from(RADIUS);
    s
}

/// A text input drawn red when its value is invalid.
pub fn input(invalid: bool) -> impl Fn(&Theme, text_input::Status) -> text_input::Style {
    move |theme, status| {
        let mut s = text_input::default(theme, status);
        s.border.radius = Radius::from(RADIUS);
        if invalid {
            s.border.color = theme.extended_palette().danger.base.color;
        }
        s
    }
}

/// Muted text colour (secondary information).
pub fn muted(theme: &Theme) -> iced::widget::text::Style {
    let p = theme.extended_palette();
    iced::widget::text::Style {
        color: Some(with_alpha(p.background.base.text, 0.62)),
    }
}

/// Text in a tone's colour.
pub fn toned(tone: Tone) -> impl Fn(&Theme) -> iced::widget::text::Style {
    move |theme| iced::widget::text::Style {
        color: Some(tone.color(theme)),
    }
}

/// Series colours for charts, distinguishable on both themes.
pub const SERIES: [Color; 8] = [
    color!(0x3ecf8e),
    color!(0x4f8cff),
    color!(0xf5a524),
    color!(0xe25cc5),
    color!(0x2bc3d6),
    color!(0xf0616d),
    color!(0x9b7bff),
    color!(0xa3b43a),
];

pub fn series(i: usize) -> Color {
    SERIES[i % SERIES.len()]
}
