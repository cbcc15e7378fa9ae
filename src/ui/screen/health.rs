//! The project view's live-health card: the newest probe's figures, charts
//! of the probe history (latency, database size, connections against
//! `max_connections`), "Probe now", and how often the scheduler probes
//! the project. The probes themselves are the engine's (`engine::health`).

use iced::widget::{column, pick_list, row, text};
use iced::{Alignment, Element, Task};

use super::{Action, Ctx, Effect};
use crate::engine::Error;
use crate::engine::health::{DEFAULT_INTERVAL_MINUTES, ProbeRecord};
use crate::ui::theme::{self, Tone};
use crate::ui::widget::chart::{Chart, Format, Kind, Series};
use crate::ui::{format, widget};

/// Probes kept in view (15-minute probes: about three days).
const HISTORY: usize = 300;

/// How often the scheduler probes a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalChoice(pub u32);

impl IntervalChoice {
    pub const ALL: [IntervalChoice; 6] = [
        IntervalChoice(0),
        IntervalChoice(5),
        IntervalChoice(15),
        IntervalChoice(30),
        IntervalChoice(60),
        IntervalChoice(240),
    ];
}

impl std::fmt::Display for IntervalChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => f.write_str("never (probes off)"),
            m if m % 60 == 0 => write!(f, "every {} h", m / 60),
            m => write!(f, "every {m} min"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Loaded(String, Result<(Vec<ProbeRecord>, u32), Error>),
    ProbeNow,
    Probed(String, Result<(), Error>),
    Interval(IntervalChoice),
    IntervalSet(String, Result<u32, Error>),
}

#[derive(Debug, Default)]
pub struct Panel {
    /// The project shown.
    pub project_id: Option<String>,
    /// Newest first.
    pub records: Vec<ProbeRecord>,
    pub interval: Option<u32>,
    pub probing: bool,
    pub error: Option<Error>,
    pub latency: Option<Chart>,
    pub size: Option<Chart>,
    pub connections: Option<Chart>,
}

fn time(r: &ProbeRecord) -> Option<f64> {
    format::parse_time(&r.at).map(|t| t.timestamp() as f64)
}

impl Panel {
    /// Shows `project_id`'s history (loading it).
    pub fn load(&mut self, ctx: &Ctx, project_id: &str) -> Task<Message> {
        if self.project_id.as_deref() != Some(project_id) {
            *self = Panel {
                project_id: Some(project_id.to_owned()),
                ..Panel::default()
            };
        }
        let (engine, id) = (ctx.engine.clone(), project_id.to_owned());
        let key = id.clone();
        Task::perform(
            async move {
                let list = engine.probe_history(&key, None, HISTORY).await?;
                let interval = engine.probe_interval(&key).await?;
                Ok((list, interval))
            },
            move |r| Message::Loaded(id.clone(), r),
        )
    }

    fn set_records(&mut self, records: Vec<ProbeRecord>) {
        let ok: Vec<&ProbeRecord> = records.iter().rev().filter(|r| r.probe.ok).collect();
        let line = |name: &str, i: usize, f: &dyn Fn(&ProbeRecord) -> Option<f64>| Series {
            name: name.into(),
            color: theme::series(i),
            points: ok.iter().filter_map(|r| Some((time(r)?, f(r)?))).collect(),
        };
        let mut latency = Chart::new(Kind::Line, Format::Date, Format::Millis);
        latency.set_series(vec![line("latency", 0, &|r| r.probe.latency_ms)]);
        let mut size = Chart::new(Kind::Line, Format::Date, Format::Bytes);
        size.set_series(vec![line("database size", 1, &|r| {
            r.probe.database_size_bytes.map(|b| b as f64)
        })]);
        let mut connections = Chart::new(Kind::Line, Format::Date, Format::Number);
        connections.set_series(vec![
            line("in use", 2, &|r| r.probe.connections.map(|c| c as f64)),
            line("max_connections", 3, &|r| {
                r.probe.max_connections.map(|c| c as f64)
            }),
        ]);
        self.latency = Some(latency);
        self.size = Some(size);
        self.connections = Some(connections);
        self.records = records;
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Loaded(id, r) => {
                if self.project_id.as_deref() != Some(id.as_str()) {
                    return Action::none();
                }
                match r {
                    Ok((list, interval)) => {
                        self.error = None;
                        self.interval = Some(interval);
                        self.set_records(list);
                    }
                    Err(e) => self.error = Some(e),
                }
                Action::none()
            }
            Message::ProbeNow => {
                let Some(id) = self.project_id.clone() else {
                    return Action::none();
                };
                if self.probing {
                    return Action::none();
                }
                self.probing = true;
                let engine = ctx.engine.clone();
                let key = id.clone();
                Action::task(Task::perform(
                    async move {
                        let delivery = engine.delivery();
                        engine.probe_project(&key, &delivery).await.map(|_| ())
                    },
                    move |r| Message::Probed(id.clone(), r),
                ))
            }
            Message::Probed(id, r) => {
                self.probing = false;
                if let Err(e) = r {
                    self.error = Some(e);
                }
                if self.project_id.as_deref() == Some(id.as_str()) {
                    Action::task(self.load(ctx, &id)).with(Effect::DataChanged)
                } else {
                    Action::none()
                }
            }
            Message::Interval(IntervalChoice(m)) => {
                let Some(id) = self.project_id.clone() else {
                    return Action::none();
                };
                let engine = ctx.engine.clone();
                let key = id.clone();
                Action::task(Task::perform(
                    async move {
                        engine.set_probe_interval(&key, Some(m)).await?;
                        engine.probe_interval(&key).await
                    },
                    move |r| Message::IntervalSet(id.clone(), r),
                ))
            }
            Message::IntervalSet(id, r) => {
                if self.project_id.as_deref() == Some(id.as_str()) {
                    match r {
                        Ok(m) => self.interval = Some(m),
                        Err(e) => self.error = Some(e),
                    }
                }
                Action::none()
            }
        }
    }

    /// The newest probe in words: "reachable · 12 ms · PostgreSQL 15.4".
    pub fn summary(&self) -> (String, Tone) {
        match self.records.first() {
            None => ("not probed yet".into(), Tone::Neutral),
            Some(r) if !r.probe.ok => (
                format!(
                    "not reachable ({}): {}",
                    format::local_time(&r.at),
                    r.probe.error.clone().unwrap_or_default()
                ),
                Tone::Danger,
            ),
            Some(r) => {
                let p = &r.probe;
                let mut parts = vec!["reachable".to_owned()];
                if let Some(l) = p.latency_ms {
                    parts.push(format!("{l:.0} ms"));
                }
                if let Some(v) = &p.server_version {
                    parts.push(format!("PostgreSQL {v}"));
                }
                parts.push(format::local_time(&r.at));
                let tone = if p.pg_dump_problem.is_some() {
                    Tone::Warning
                } else {
                    Tone::Success
                };
                (parts.join(" · "), tone)
            }
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let (summary, tone) = self.summary();
        let interval = self.interval.unwrap_or(DEFAULT_INTERVAL_MINUTES);
        let mut col = column![
            row![
                text("Live health").font(theme::BOLD),
                widget::badge(summary, tone),
                widget::fill(),
                text("Probe").size(theme::SMALL),
                pick_list(
                    IntervalChoice::ALL,
                    Some(IntervalChoice(interval)),
                    Message::Interval
                )
                .padding(theme::XS),
                widget::secondary_button(
                    if self.probing {
                        "Probing…"
                    } else {
                        "Probe now"
                    },
                    (!self.probing).then_some(Message::ProbeNow)
                ),
            ]
            .spacing(theme::S)
            .align_y(Alignment::Center)
        ]
        .spacing(theme::S);
        if let Some(e) = &self.error {
            col = col.push(widget::banner(&widget::Notice::error(e), Message::ProbeNow));
        }
        if let Some(r) = self.records.iter().find(|r| r.probe.ok) {
            let p = &r.probe;
            let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
            col = col
                .push(widget::kv(
                    "Database size",
                    opt(p.database_size_bytes.map(format::bytes)),
                ))
                .push(widget::kv(
                    "Connections",
                    match (p.connections, p.max_connections) {
                        (Some(c), Some(m)) => format!("{c} of {m}"),
                        _ => "—".into(),
                    },
                ))
                .push(widget::kv(
                    "Cache hit ratio",
                    opt(p.cache_hit_ratio.map(format::percent)),
                ))
                .push(widget::kv(
                    "Longest transaction",
                    opt(p.longest_transaction_secs.map(format::secs)),
                ))
                .push(widget::kv(
                    "pg_dump",
                    match (&p.pg_dump, &p.pg_dump_problem) {
                        (_, Some(why)) => format!("missing: {why}"),
                        (Some(t), None) => t.clone(),
                        (None, None) => "—".into(),
                    },
                ));
        }
        for (title, chart) in [
            ("Latency", &self.latency),
            ("Database size", &self.size),
            ("Connections", &self.connections),
        ] {
            if let Some(c) = chart.as_ref().filter(|c| !c.is_empty()) {
                col = col
                    .push(text(title).size(theme::SMALL).font(theme::BOLD))
                    .push(c.view(120.0));
            }
        }
        col.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::health::Probe;

    fn rec(at: &str, probe: Probe) -> ProbeRecord {
        ProbeRecord {
            project_id: "p".into(),
            at: at.into(),
            probe,
        }
    }

    #[tokio::test]
    async fn the_history_becomes_charts_and_a_summary() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut h = Panel {
            project_id: Some("p".into()),
            ..Panel::default()
        };
        let up = |size: i64| Probe {
            ok: true,
            latency_ms: Some(12.0),
            server_version: Some("15.4".into()),
            database_size_bytes: Some(size),
            connections: Some(5),
            max_connections: Some(100),
            ..Probe::default()
        };
        let list = vec![
            rec(
                "2024-05-10T12:30:00Z",
                Probe {
                    error: Some("connection refused".into()),
                    ..Probe::default()
                },
            ),
            rec("2024-05-10T12:15:00Z", up(2048)),
            rec("2024-05-10T12:00:00Z", up(1024)),
        ];
        let _ = h.update(Message::Loaded("p".into(), Ok((list, 15))), &ctx);
        let (text, tone) = h.summary();
        assert!(
            text.starts_with("not reachable") && text.contains("refused"),
            "{text}"
        );
        assert_eq!(tone, Tone::Danger);
        let size = h.size.as_ref().expect("size chart");
        assert_eq!(
            size.series[0].points.len(),
            2,
            "only answered probes are charted"
        );
        assert!(
            size.series[0].points[0].0 < size.series[0].points[1].0,
            "oldest first"
        );
        assert_eq!(size.series[0].points[1].1, 2048.0);
        assert_eq!(h.connections.as_ref().expect("conns").series.len(), 2);
        // Another project's late answer is ignored.
        let _ = h.update(Message::Loaded("q".into(), Ok((Vec::new(), 0))), &ctx);
        assert_eq!(h.records.len(), 3);
        let a = h.update(Message::ProbeNow, &ctx);
        assert!(a.has_task() && h.probing);
        assert!(
            !h.update(Message::ProbeNow, &ctx).has_task(),
            "one at a time"
        );
        assert_eq!(IntervalChoice(0).to_string(), "never (probes off)");
        assert_eq!(IntervalChoice(240).to_string(), "every 4 h");
    }
}
