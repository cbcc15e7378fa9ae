//! Runs the app headless: messages go through `App::update`, the tasks it
//! returns run on tokio and feed their messages back; the view is inspected
//! and clicked through `iced_test`'s simulator.

use std::time::Duration;

use iced::futures::StreamExt;
use iced::{Task, Theme};
use iced_test::Simulator;
use iced_test::runtime::Action;
use supabackup::engine::Engine;
use supabackup::ui::app::{App, BootOptions, Message};
use supabackup::ui::platform::FakePlatform;
use supabackup::ui::theme;
use tokio::sync::mpsc;

pub const SIZE: (f32, f32) = (1280.0, 800.0);

pub struct Driver {
    pub app: App,
    pub platform: FakePlatform,
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Every message processed, for post-mortems.
    pub log: Vec<String>,
}

fn label(m: &Message) -> String {
    let s = format!("{m:?}");
    s.chars().take(160).collect()
}

impl Driver {
    /// Boots the app on `engine` (as the window would) and waits for boot.
    pub async fn boot(engine: Engine) -> Driver {
        let platform = FakePlatform::new();
        let (app, task) = App::boot(BootOptions {
            data_dir: engine.data_dir().clone(),
            platform: std::sync::Arc::new(platform.clone()),
            env_passphrase: None,
            screenshot: None,
            engine: Some(engine),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let mut d = Driver {
            app,
            platform,
            tx,
            rx,
            log: Vec::new(),
        };
        d.run(task);
        d.until("boot", |a| {
            a.is_ready() || a.is_locked() || a.boot_error().is_some()
        })
        .await;
        d.idle().await;
        d
    }

    /// Runs a task in the background; its messages come back to `update`.
    pub fn run(&self, task: Task<Message>) {
        let Some(mut stream) = iced_test::runtime::task::into_stream(task) else {
            return;
        };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(action) = stream.next().await {
                if let Action::Output(m) = action {
                    let _ = tx.send(m);
                }
            }
        });
    }

    /// Updates the app with a message and runs the returned task.
    pub fn send(&mut self, m: Message) {
        self.log.push(label(&m));
        let task = self.app.update(m);
        self.run(task);
    }

    /// Processes messages until `done` holds (checked after each one).
    pub async fn until(&mut self, what: &str, mut done: impl FnMut(&App) -> bool) {
        self.until_for(what, Duration::from_secs(120), &mut done)
            .await;
    }

    pub async fn until_for(
        &mut self,
        what: &str,
        timeout: Duration,
        done: &mut impl FnMut(&App) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => self.send(m),
                Ok(None) => panic!("the message channel closed while waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; last messages:\n{}\nnotices: {:?}",
                    self.log
                        .iter()
                        .rev()
                        .take(15)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.app.notices
                ),
            }
        }
    }

    /// Processes messages until none arrives for a moment.
    pub async fn idle(&mut self) {
        loop {
            match tokio::time::timeout(Duration::from_millis(300), self.rx.recv()).await {
                Ok(Some(m)) => self.send(m),
                _ => return,
            }
        }
    }

    /// A simulator of the current view.
    pub fn sim(&self) -> Simulator<'_, Message> {
        Simulator::with_size(theme::settings(), SIZE, self.app.view())
    }

    /// Interacts with the current view, then feeds the produced messages to
    /// the app.
    pub fn interact(&mut self, f: impl FnOnce(&mut Simulator<'_, Message>)) {
        let messages: Vec<Message> = {
            let mut sim = self.sim();
            f(&mut sim);
            sim.into_messages().collect()
        };
        for m in messages {
            self.send(m);
        }
    }

    /// Clicks the widget showing `text` (panics when absent).
    pub fn click(&mut self, text: &str) {
        let t = text.to_owned();
        self.interact(|s| {
            if let Err(e) = s.click(t.as_str()) {
                panic!("cannot click {t:?}: {e}");
            }
        });
    }

    /// Focuses the input with `id` and types `text` into it.
    pub fn type_into(&mut self, id: &'static str, text: &str) {
        let t = text.to_owned();
        self.interact(|s| {
            if let Err(e) = s.click(iced_test::selector::id(id)) {
                panic!("cannot click input {id}: {e}");
            }
            let _ = s.typewrite(&t);
        });
    }

    /// Scrolls the view (the mouse wheel at the input's column, half-way
    /// down the window) until the input with `id` is visible, then types
    /// `text` into it.
    pub fn scroll_and_type_into(&mut self, id: &'static str, text: &str) {
        use iced::mouse::{Event as Mouse, ScrollDelta};
        let t = text.to_owned();
        self.interact(|s| {
            for _ in 0..60 {
                match s.find(iced_test::selector::id(id)) {
                    Ok(target) if target.visible_bounds().is_some() => break,
                    Ok(target) => {
                        s.point_at(iced::Point::new(target.bounds().center_x(), SIZE.1 / 2.0));
                    }
                    Err(e) => panic!("no input {id}: {e}"),
                }
                let _ = s.simulate([iced::Event::Mouse(Mouse::WheelScrolled {
                    delta: ScrollDelta::Pixels { x: 0.0, y: -120.0 },
                })]);
            }
            if let Err(e) = s.click(iced_test::selector::id(id)) {
                panic!("cannot click input {id} after scrolling: {e}");
            }
            let _ = s.typewrite(&t);
        });
    }

    /// Scrolls (as `scroll_and_type_into`) until the button showing
    /// `label` is visible, then clicks it.
    pub fn scroll_and_click(&mut self, label: &str) {
        use iced::mouse::{Event as Mouse, ScrollDelta};
        let l = label.to_owned();
        self.interact(|s| {
            for _ in 0..60 {
                match s.find(l.as_str()) {
                    Ok(target) if target.visible_bounds().is_some() => break,
                    Ok(target) => {
                        s.point_at(iced::Point::new(target.bounds().center_x(), SIZE.1 / 2.0));
                    }
                    Err(e) => panic!("no {l:?}: {e}"),
                }
                let _ = s.simulate([iced::Event::Mouse(Mouse::WheelScrolled {
                    delta: ScrollDelta::Pixels { x: 0.0, y: -120.0 },
                })]);
            }
            if let Err(e) = s.click(l.as_str()) {
                panic!("cannot click {l:?} after scrolling: {e}");
            }
        });
    }

    /// Types into the input with `id`, then presses `key`.
    pub fn type_and_press(
        &mut self,
        id: &'static str,
        text: &str,
        key: iced::keyboard::key::Named,
    ) {
        let t = text.to_owned();
        self.interact(|s| {
            if let Err(e) = s.click(iced_test::selector::id(id)) {
                panic!("cannot click input {id}: {e}");
            }
            let _ = s.typewrite(&t);
            let _ = s.tap_key(key);
        });
    }

    /// Focuses the input with `id` and presses a key `n` times.
    pub fn press_in(&mut self, id: &'static str, key: iced::keyboard::key::Named, n: usize) {
        self.interact(|s| {
            if let Err(e) = s.click(iced_test::selector::id(id)) {
                panic!("cannot click input {id}: {e}");
            }
            for _ in 0..n {
                let _ = s.tap_key(key);
            }
        });
    }

    pub fn has_text(&self, text: &str) -> bool {
        self.sim().find(text).is_ok()
    }

    pub fn assert_text(&self, text: &str) {
        assert!(
            self.has_text(text),
            "{text:?} is not on screen; notices: {:?}; last messages:\n{}",
            self.app.notices,
            self.log
                .iter()
                .rev()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    pub fn theme(&self) -> Theme {
        self.app.theme()
    }

    /// A software renderer with the embedded fonts loaded.
    pub fn renderer() -> iced::Renderer {
        use iced::advanced::renderer::Headless;
        // Loads the fonts into the shared font system.
        drop(Simulator::<()>::with_settings(
            theme::settings(),
            iced::widget::text("fonts"),
        ));
        iced::futures::executor::block_on(<iced::Renderer as Headless>::new(
            theme::SANS,
            iced::Pixels(theme::TEXT),
            Some("tiny-skia"),
        ))
        .expect("a tiny-skia renderer")
    }

    /// Saves the current view as a PNG (a fresh frame, as when the screen
    /// opens).
    pub fn save_png(&self, frames: &mut Frames, path: &std::path::Path) {
        frames.reset();
        let (pixels, _, _) = frames.frame(self, None, true);
        supabackup::ui::write_png(path, SIZE.0 as u32, SIZE.1 as u32, &pixels).expect("write png");
    }
}

/// Consecutive frames of one window: the renderer and the widget-state cache
/// (text layouts, scroll positions) carry over, as in a running app.
pub struct Frames {
    pub renderer: iced::Renderer,
    cache: Option<iced_test::runtime::user_interface::Cache>,
}

impl Frames {
    pub fn new(renderer: iced::Renderer) -> Self {
        Frames {
            renderer,
            cache: None,
        }
    }

    /// Forgets the widget state (as when a new screen opens).
    pub fn reset(&mut self) {
        self.cache = None;
    }

    /// One frame; `scroll` scrolls a scrollable first; `pixels` returns them.
    pub fn frame(
        &mut self,
        d: &Driver,
        scroll: Option<(&'static str, f32)>,
        pixels: bool,
    ) -> (Vec<u8>, Duration, Duration) {
        use iced::advanced::renderer::Headless;
        use iced_test::runtime::user_interface::UserInterface;
        let size = iced::Size::new(SIZE.0, SIZE.1);
        let theme = d.theme();
        let renderer = &mut self.renderer;
        let t0 = std::time::Instant::now();
        let mut ui = UserInterface::build(
            d.app.view(),
            size,
            self.cache.take().unwrap_or_default(),
            renderer,
        );
        if let Some((id, y)) = scroll {
            let mut op = iced::advanced::widget::operation::scrollable::scroll_to::<()>(
                iced::widget::Id::new(id),
                iced::widget::scrollable::AbsoluteOffset {
                    x: None,
                    y: Some(y),
                },
            );
            ui.operate(renderer, &mut op);
        }
        let built = t0.elapsed();
        let t1 = std::time::Instant::now();
        // Widgets settle their status (hovered, disabled...) on the redraw event.
        let mut messages: Vec<supabackup::ui::app::Message> = Vec::new();
        let _ = ui.update(
            &[iced::Event::Window(iced::window::Event::RedrawRequested(
                iced::time::Instant::now(),
            ))],
            iced::mouse::Cursor::Unavailable,
            renderer,
            &mut iced::advanced::clipboard::Null,
            &mut messages,
        );
        let base = iced::theme::Base::base(&theme);
        ui.draw(
            renderer,
            &theme,
            &iced::advanced::renderer::Style {
                text_color: base.text_color,
            },
            iced::mouse::Cursor::Unavailable,
        );
        let out = renderer.screenshot(
            iced::Size::new(size.width as u32, size.height as u32),
            1.0,
            base.background_color,
        );
        let drawn = t1.elapsed();
        assert_eq!(out.len(), (size.width * size.height * 4.0) as usize);
        self.cache = Some(ui.into_cache());
        (if pixels { out } else { Vec::new() }, built, drawn)
    }
}
