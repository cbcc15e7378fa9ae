//! Line and bar charts on iced's canvas: axes with a few round ticks, a
//! legend, and a hover read-out of the nearest point. The static part is
//! cached; only the hover marker is redrawn as the mouse moves.

use iced::mouse;
use iced::widget::canvas::{self, Cache, Frame, Geometry, Path, Stroke, Text};
use iced::widget::{Canvas, column, container, row, text};
use iced::{Alignment, Color, Element, Length, Point, Rectangle, Renderer, Size, Theme};

use crate::ui::theme;

/// One line (or one set of bars).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: Color,
    /// (x, y); x is a UNIX time in seconds for time charts, an index for bars.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Line,
    Bars,
}

/// How axis values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Number,
    Percent,
    Bytes,
    Rate,
    Millis,
    /// UNIX seconds as a date.
    Date,
    /// A bar index.
    Index,
}

impl Format {
    pub fn apply(self, v: f64) -> String {
        use crate::ui::format;
        match self {
            Format::Number => {
                if v.abs() >= 100.0 || v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
            Format::Percent => format!("{:.0}%", v * 100.0),
            Format::Bytes => format::bytes(v as i64),
            Format::Rate => format::rate(v),
            Format::Millis => format::duration_ms(v as i64),
            Format::Date => chrono::DateTime::from_timestamp(v as i64, 0)
                .map(|t| t.with_timezone(&chrono::Local).format("%b %d").to_string())
                .unwrap_or_default(),
            Format::Index => format!("#{}", v as i64 + 1),
        }
    }
}

pub struct Chart {
    pub kind: Kind,
    pub series: Vec<Series>,
    pub x_format: Format,
    pub y_format: Format,
    /// Force the y range (e.g. 0..1 for rates).
    pub y_range: Option<(f64, f64)>,
    cache: Cache,
}

impl std::fmt::Debug for Chart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chart")
            .field("kind", &self.kind)
            .field("series", &self.series.len())
            .finish()
    }
}

impl Chart {
    pub fn new(kind: Kind, x_format: Format, y_format: Format) -> Self {
        Chart {
            kind,
            series: Vec::new(),
            x_format,
            y_format,
            y_range: None,
            cache: Cache::new(),
        }
    }

    pub fn with_y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }

    pub fn set_series(&mut self, series: Vec<Series>) {
        self.series = series;
        self.cache.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }

    /// Clears the cached drawing (after a theme change).
    pub fn invalidate(&self) {
        self.cache.clear();
    }

    fn bounds(&self) -> (f64, f64, f64, f64) {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
        if x0 > x1 {
            return (0.0, 1.0, 0.0, 1.0);
        }
        if let Some((lo, hi)) = self.y_range {
            y0 = lo;
            y1 = hi;
        } else {
            y0 = y0.min(0.0);
            if y1 <= y0 {
                y1 = y0 + 1.0;
            }
            y1 = nice_ceiling(y1);
        }
        if self.kind == Kind::Bars {
            x0 -= 0.5;
            x1 += 0.5;
        } else if x1 <= x0 {
            x0 -= 1.0;
            x1 += 1.0;
        }
        (x0, x1, y0, y1)
    }

    /// The chart with its legend, `height` tall.
    pub fn view<'a, M: 'a>(&'a self, height: f32) -> Element<'a, M> {
        let canvas: Element<'a, M> = Canvas::new(self)
            .width(Length::Fill)
            .height(Length::Fixed(height))
            .into();
        if self.series.len() <= 1 {
            return canvas;
        }
        let legend = row(self.series.iter().map(|s| {
            let c = s.color;
            row![
                container(text(""))
                    .width(10)
                    .height(10)
                    .style(move |_t: &Theme| container::Style {
                        background: Some(c.into()),
                        ..container::Style::default()
                    }),
                text(s.name.clone()).size(theme::SMALL),
            ]
            .spacing(theme::XS)
            .align_y(Alignment::Center)
            .into()
        }))
        .spacing(theme::M)
        .wrap();
        column![canvas, legend].spacing(theme::S).into()
    }
}

/// 1, 2, 2.5, 5 × 10^n at or above `v`.
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * base >= v - 1e-9 {
            return m * base;
        }
    }
    10.0 * base
}

const LEFT: f32 = 64.0;
const RIGHT: f32 = 12.0;
const TOP: f32 = 10.0;
const BOTTOM: f32 = 22.0;

struct Plot {
    area: Rectangle,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Plot {
    fn to_screen(&self, x: f64, y: f64) -> Point {
        let fx = ((x - self.x0) / (self.x1 - self.x0)) as f32;
        let fy = ((y - self.y0) / (self.y1 - self.y0)) as f32;
        Point::new(
            self.area.x + fx * self.area.width,
            self.area.y + self.area.height - fy * self.area.height,
        )
    }
}

impl<M> canvas::Program<M> for Chart {
    type State = ();

    fn draw(
        &self,
        _state: &(),
        renderer: &Renderer,
        theme: &Theme,
        bounds: Rectangle,
        cursor: mouse::Cursor,
    ) -> Vec<Geometry> {
        let (x0, x1, y0, y1) = self.bounds();
        let plot = Plot {
            area: Rectangle::new(
                Point::new(LEFT, TOP),
                Size::new(
                    (bounds.width - LEFT - RIGHT).max(1.0),
                    (bounds.height - TOP - BOTTOM).max(1.0),
                ),
            ),
            x0,
            x1,
            y0,
            y1,
        };
        let palette = theme.extended_palette();
        let text_color = Color {
            a: 0.7,
            ..palette.background.base.text
        };
        let grid_color = palette.background.strong.color;
        let stat = self
            .cache
            .draw(renderer, bounds.size(), |frame: &mut Frame| {
                // Grid and y labels.
                for i in 0..=4 {
                    let v = y0 + (y1 - y0) * f64::from(i) / 4.0;
                    let p = plot.to_screen(x0, v);
                    frame.stroke(
                        &Path::line(
                            Point::new(plot.area.x, p.y),
                            Point::new(plot.area.x + plot.area.width, p.y),
                        ),
                        Stroke::default()
                            .with_color(grid_color)
                            .with_width(if i == 0 { 1.5 } else { 0.5 }),
                    );
                    frame.fill_text(Text {
                        content: self.y_format.apply(v),
                        position: Point::new(LEFT - 6.0, p.y),
                        color: text_color,
                        size: 11.0.into(),
                        font: theme::SANS,
                        align_x: iced::widget::text::Alignment::Right,
                        align_y: iced::alignment::Vertical::Center,
                        ..Text::default()
                    });
                }
                if self.is_empty() {
                    frame.fill_text(Text {
                        content: "No data yet".into(),
                        position: plot.area.center(),
                        color: text_color,
                        size: 13.0.into(),
                        font: theme::SANS,
                        align_x: iced::widget::text::Alignment::Center,
                        align_y: iced::alignment::Vertical::Center,
                        ..Text::default()
                    });
                    return;
                }
                // X labels: start, middle, end.
                let ticks: Vec<f64> = if self.kind == Kind::Bars {
                    let n = (x1 - x0).round().max(1.0) as i64;
                    let step = (n / 6).max(1);
                    (0..n).step_by(step as usize).map(|i| i as f64).collect()
                } else {
                    vec![x0, (x0 + x1) / 2.0, x1]
                };
                for (i, x) in ticks.iter().enumerate() {
                    let p = plot.to_screen(*x, y0);
                    let align = if self.kind == Kind::Bars {
                        iced::widget::text::Alignment::Center
                    } else if i == 0 {
                        iced::widget::text::Alignment::Left
                    } else if i + 1 == ticks.len() {
                        iced::widget::text::Alignment::Right
                    } else {
                        iced::widget::text::Alignment::Center
                    };
                    frame.fill_text(Text {
                        content: self.x_format.apply(*x),
                        position: Point::new(p.x, plot.area.y + plot.area.height + 5.0),
                        color: text_color,
                        size: 11.0.into(),
                        font: theme::SANS,
                        align_x: align,
                        ..Text::default()
                    });
                }
                match self.kind {
                    Kind::Line => {
                        for s in &self.series {
                            if s.points.len() > 1 {
                                let path = Path::new(|b| {
                                    for (i, (x, y)) in s.points.iter().enumerate() {
                                        let p = plot.to_screen(*x, *y);
                                        if i == 0 {
                                            b.move_to(p);
                                        } else {
                                            b.line_to(p);
                                        }
                                    }
                                });
                                frame.stroke(
                                    &path,
                                    Stroke::default().with_color(s.color).with_width(2.0),
                                );
                            }
                            if s.points.len() <= 60 {
                                for (x, y) in &s.points {
                                    frame.fill(&Path::circle(plot.to_screen(*x, *y), 2.5), s.color);
                                }
                            }
                        }
                    }
                    Kind::Bars => {
                        let n = self.series.len().max(1) as f32;
                        let slot = plot.area.width / (x1 - x0) as f32;
                        let bar = (slot * 0.8 / n).max(1.0);
                        for (si, s) in self.series.iter().enumerate() {
                            for (x, y) in &s.points {
                                let top = plot.to_screen(*x, *y);
                                let base = plot.to_screen(*x, y0.max(0.0));
                                let left = top.x - slot * 0.4 + si as f32 * bar;
                                frame.fill_rectangle(
                                    Point::new(left, top.y.min(base.y)),
                                    Size::new(bar, (base.y - top.y).abs().max(1.0)),
                                    s.color,
                                );
                            }
                        }
                    }
                }
            });
        let mut out = vec![stat];
        // Hover read-out: the nearest point to the cursor.
        if let Some(pos) = cursor.position_in(bounds)
            && plot.area.contains(pos)
            && !self.is_empty()
        {
            let mut best: Option<(f32, &Series, f64, f64)> = None;
            for s in &self.series {
                for (x, y) in &s.points {
                    let p = plot.to_screen(*x, *y);
                    let d = (p.x - pos.x).abs() + (p.y - pos.y).abs() * 0.25;
                    if best.as_ref().is_none_or(|b| d < b.0) {
                        best = Some((d, s, *x, *y));
                    }
                }
            }
            if let Some((_, s, x, y)) = best {
                let mut frame = Frame::new(renderer, bounds.size());
                let p = plot.to_screen(x, y);
                frame.fill(&Path::circle(p, 4.5), s.color);
                let label = format!(
                    "{}: {} · {}",
                    s.name,
                    self.x_format.apply(x),
                    self.y_format.apply(y)
                );
                let right_half = p.x > plot.area.x + plot.area.width / 2.0;
                frame.fill_text(Text {
                    content: label,
                    position: Point::new(
                        if right_half { p.x - 8.0 } else { p.x + 8.0 },
                        (p.y - 14.0).max(TOP),
                    ),
                    color: palette.background.base.text,
                    size: 12.0.into(),
                    font: theme::BOLD,
                    align_x: if right_half {
                        iced::widget::text::Alignment::Right
                    } else {
                        iced::widget::text::Alignment::Left
                    },
                    ..Text::default()
                });
                out.push(frame.into_geometry());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(18.0), 20.0);
        assert_eq!(nice_ceiling(230.0), 250.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
    }

    #[test]
    fn formats() {
        assert_eq!(Format::Percent.apply(0.5), "50%");
        assert_eq!(Format::Index.apply(0.0), "#1");
        assert_eq!(Format::Bytes.apply(2_000_000.0), "2.0 MB");
    }

    #[test]
    fn bounds_include_zero_and_round_up() {
        let mut c = Chart::new(Kind::Line, Format::Date, Format::Number);
        c.set_series(vec![Series {
            name: "a".into(),
            color: Color::BLACK,
            points: vec![(10.0, 3.0), (20.0, 7.0)],
        }]);
        assert_eq!(c.bounds(), (10.0, 20.0, 0.0, 10.0));
        let c = Chart::new(Kind::Line, Format::Date, Format::Number).with_y_range(0.0, 1.0);
        assert!(c.is_empty());
    }
}
