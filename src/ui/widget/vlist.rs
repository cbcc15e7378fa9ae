//! A virtualised list: only the rows in (and just around) the viewport are
//! built, above and below them stand spacers of the right height. With fixed
//! row heights, 10,000 rows cost the same per frame as 40.

use iced::widget::scrollable::Viewport;
use iced::widget::{Id, column, container, scrollable, space};
use iced::{Element, Length};

/// Rows built beyond the viewport on each side.
pub const OVERSCAN: usize = 6;
/// The viewport height assumed before the first scroll report.
const DEFAULT_VIEWPORT: f32 = 900.0;

/// Where a list is scrolled to; the owning screen keeps it and feeds it
/// scroll reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scroll {
    pub offset: f32,
    pub viewport: f32,
}

impl Scroll {
    pub fn on_scroll(&mut self, v: Viewport) {
        self.offset = v.absolute_offset().y.max(0.0);
        self.viewport = v.bounds().height;
    }

    pub fn reset(&mut self) {
        self.offset = 0.0;
    }

    /// The half-open range of rows to build.
    pub fn window(&self, count: usize, row_height: f32) -> std::ops::Range<usize> {
        if count == 0 || row_height <= 0.0 {
            return 0..0;
        }
        let viewport = if self.viewport > 0.0 {
            self.viewport
        } else {
            DEFAULT_VIEWPORT
        };
        let first = ((self.offset / row_height).floor() as usize).saturating_sub(OVERSCAN);
        let last = (((self.offset + viewport) / row_height).ceil() as usize + OVERSCAN).min(count);
        first.min(last)..last
    }
}

/// The list: `count` rows of `row_height`, built by `row` for the visible
/// window only.
pub fn vlist<'a, M: 'a>(
    id: Id,
    count: usize,
    row_height: f32,
    scroll: &Scroll,
    on_scroll: impl Fn(Viewport) -> M + 'a,
    row: impl Fn(usize) -> Element<'a, M>,
) -> Element<'a, M> {
    let range = scroll.window(count, row_height);
    let above = range.start as f32 * row_height;
    let below = (count - range.end) as f32 * row_height;
    let mut col = column![space().height(Length::Fixed(above))];
    for i in range {
        col = col.push(
            container(row(i))
                .height(Length::Fixed(row_height))
                .width(Length::Fill),
        );
    }
    col = col.push(space().height(Length::Fixed(below)));
    scrollable(col.width(Length::Fill))
        .id(id)
        .on_scroll(on_scroll)
        .height(Length::Fill)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_covers_the_viewport_plus_overscan() {
        let s = Scroll {
            offset: 0.0,
            viewport: 340.0,
        };
        assert_eq!(s.window(10_000, 34.0), 0..(10 + OVERSCAN));
        let s = Scroll {
            offset: 34.0 * 5000.0,
            viewport: 340.0,
        };
        assert_eq!(s.window(10_000, 34.0), (5000 - OVERSCAN)..(5010 + OVERSCAN));
        let s = Scroll {
            offset: 34.0 * 9995.0,
            viewport: 340.0,
        };
        assert_eq!(s.window(10_000, 34.0).end, 10_000);
        assert_eq!(Scroll::default().window(0, 34.0), 0..0);
        // Offsets beyond the end (a list that shrank) stay valid.
        let s = Scroll {
            offset: 1e9,
            viewport: 340.0,
        };
        let w = s.window(10, 34.0);
        assert!(w.start <= w.end && w.end <= 10);
    }
}
