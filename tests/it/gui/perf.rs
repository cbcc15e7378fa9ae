//! Frame time of the backups list with 50 projects and 10,000 backups.
//!
//! A frame here is what the window does per redraw: `view()` builds the
//! widget tree, iced lays it out, draws it, and the software renderer
//! (tiny-skia, no GPU) rasterises the 1280×800 window.

use std::time::{Duration, Instant};

use supabackup::ui::screen::Tab;
use supabackup::ui::widget::vlist::Scroll;

use super::driver::{Driver, Frames};
use super::seed;
use crate::support::engine::unlocked_engine;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_list_with_10k_rows_stays_fast() {
    let t = unlocked_engine().await;
    seed::populate(&t.engine, 50, 10_000).await;
    let mut d = Driver::boot(t.engine.clone()).await;
    // Frames keep their renderer and widget cache, as a window does; a
    // screen's first frame starts with a fresh cache (nothing laid out yet).
    let mut frames = Frames::new(Driver::renderer());
    d.idle().await;
    let mut dash = Vec::new();
    for _ in 0..4 {
        let (_, b, w) = frames.frame(&d, None, false);
        dash.push(b + w);
    }
    let dash_first = dash[0];
    let dash_median = median(dash[1..].to_vec());

    // Opening the screen: the catalog read runs in a task; applying it
    // (filtering, sorting) happens in one update.
    d.send(supabackup::ui::app::Message::Navigate(Tab::Backups));
    let load = Instant::now();
    d.until("the backups to load", |a| a.backups.loaded).await;
    let loaded_in = load.elapsed();
    assert_eq!(d.app.backups.rows.len(), 10_000);
    let rows = d.app.backups.rows.clone();
    let projects = d.app.backups.projects.clone();
    let apply = Instant::now();
    let _ = d.app.update(supabackup::ui::app::Message::Backups(
        supabackup::ui::screen::backups::Message::Loaded(Ok((rows, projects))),
    ));
    let applied = apply.elapsed();

    // The first frame of the list (fresh layout), then frames at the top,
    // the middle, near the end and a quarter down: the list builds only the
    // rows in view, so every position costs the same.
    frames.reset();
    let (_, b, w) = frames.frame(&d, None, false);
    let first = b + w;
    let mut builds = Vec::new();
    let mut draws = Vec::new();
    let mut totals = Vec::new();
    for pos in [0.0, 0.5, 0.999, 0.25] {
        let rows = d.app.backups.visible.len() as f32;
        let offset = pos * rows * supabackup::ui::screen::backups::ROW_HEIGHT;
        d.app.backups.scroll = Scroll {
            offset,
            viewport: 520.0,
        };
        for _ in 0..3 {
            let (_, b, w) = frames.frame(
                &d,
                Some((supabackup::ui::screen::backups::LIST_ID, offset)),
                false,
            );
            builds.push(b);
            draws.push(w);
            totals.push(b + w);
        }
    }
    // Probe: the same screen with no rows.
    d.app.backups.search = "no such backup".into();
    d.app.backups.refilter();
    frames.reset();
    let _ = frames.frame(&d, None, false);
    let (_, pb, pw) = frames.frame(&d, None, false);
    eprintln!("empty list frame: view+layout {pb:?}, draw+raster {pw:?}");
    d.app.backups.search.clear();
    d.app.backups.refilter();
    let worst = totals.iter().copied().max().unwrap_or_default().max(first);
    let (mb, md, mt) = (median(builds), median(draws), median(totals));
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "frame timing ({build} build, software renderer, 1280x800), 50 projects / 10,000 backups:\n  \
         backups: catalog read in a task {loaded_in:?}, applied in one update {applied:?}; \
         first frame {first:?}; then per frame view+layout {mb:?} + draw+raster {md:?} = {mt:?} (median), worst {worst:?}\n  \
         dashboard (50 projects): first frame {dash_first:?}, then {dash_median:?} (median)"
    );
    assert!(
        applied < Duration::from_millis(100),
        "applying the list took {applied:?}"
    );
    // Built rows stay bounded by the viewport, not by the list's length.
    let window = d
        .app
        .backups
        .scroll
        .window(10_000, supabackup::ui::screen::backups::ROW_HEIGHT);
    assert!(window.len() < 40, "{window:?}");
    // The goal is 50 ms per frame; a busy CI machine gets some headroom
    // in debug builds (the figures are printed above).
    assert!(mt < Duration::from_millis(100), "median frame {mt:?}");
    assert!(first < Duration::from_millis(250), "first frame {first:?}");
}
