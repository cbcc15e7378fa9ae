//! Analytics: backup success rate per project over time, storage used over
//! time per project, duration and throughput per backup (canvas charts from
//! the `analytics` events); and the audit log with filters.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use iced::widget::scrollable::Viewport;
use iced::widget::{Id, button, column, container, pick_list, row, scrollable, text, text_input};
use iced::{Alignment, Element, Length, Task};

use super::choices::ProjectFilter;
use super::{Action, Ctx};
use crate::engine::Error;
use crate::engine::catalog::audit::AuditEntry;
use crate::engine::dashboard::AnalyticsData;
use crate::engine::project::Project;
use crate::ui::theme;
use crate::ui::widget::chart::{Chart, Format, Kind, Series};
use crate::ui::widget::vlist::{self, Scroll};
use crate::ui::{format, widget};

pub const AUDIT_LIMIT: usize = 2000;
/// Bars in the per-backup charts.
pub const RECENT_RUNS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Week,
    Month,
    Quarter,
    Year,
    All,
}

impl Range {
    pub const ALL: [Range; 5] = [
        Range::Week,
        Range::Month,
        Range::Quarter,
        Range::Year,
        Range::All,
    ];
    pub fn days(self) -> Option<i64> {
        match self {
            Range::Week => Some(7),
            Range::Month => Some(30),
            Range::Quarter => Some(90),
            Range::Year => Some(365),
            Range::All => None,
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Range::Week => "Last 7 days",
            Range::Month => "Last 30 days",
            Range::Quarter => "Last 90 days",
            Range::Year => "Last year",
            Range::All => "All time",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFilter(pub Option<&'static str>);

impl ActionFilter {
    pub const ALL: [ActionFilter; 7] = [
        ActionFilter(None),
        ActionFilter(Some("project.")),
        ActionFilter(Some("backup.")),
        ActionFilter(Some("restore.")),
        ActionFilter(Some("job.")),
        ActionFilter(Some("vault.")),
        ActionFilter(Some("catalog.")),
    ];
}

impl std::fmt::Display for ActionFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("All actions"),
            Some(p) => write!(f, "{}*", p),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Charts,
    Audit,
}

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<(AnalyticsData, Vec<Project>), Error>),
    AuditLoaded(Result<Vec<AuditEntry>, Error>),
    Range(Range),
    Project(ProjectFilter),
    Show(View),
    AuditAction(ActionFilter),
    AuditSearch(String),
    AuditScrolled(Viewport),
}

pub struct Analytics {
    pub data: Option<AnalyticsData>,
    pub projects: Vec<Project>,
    pub audit: Vec<AuditEntry>,
    pub audit_visible: Vec<usize>,
    pub error: Option<Error>,
    pub loading: bool,
    pub range: Range,
    pub project: Option<String>,
    pub view: View,
    pub audit_action: ActionFilter,
    pub audit_search: String,
    pub audit_scroll: Scroll,
    pub success: Chart,
    pub storage: Chart,
    pub duration: Chart,
    pub throughput: Chart,
    pub summary: Summary,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("range", &self.range)
            .field("audit", &self.audit.len())
            .finish()
    }
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics {
            data: None,
            projects: Vec::new(),
            audit: Vec::new(),
            audit_visible: Vec::new(),
            error: None,
            loading: false,
            range: Range::Month,
            project: None,
            view: View::Charts,
            audit_action: ActionFilter(None),
            audit_search: String::new(),
            audit_scroll: Scroll::default(),
            success: Chart::new(Kind::Line, Format::Date, Format::Percent).with_y_range(0.0, 1.0),
            storage: Chart::new(Kind::Line, Format::Date, Format::Bytes),
            duration: Chart::new(Kind::Bars, Format::Index, Format::Millis),
            throughput: Chart::new(Kind::Bars, Format::Index, Format::Rate),
            summary: Summary::default(),
        }
    }
}

/// Figures over the selected range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub runs: usize,
    pub completed: usize,
    pub failed: usize,
    pub median_duration_ms: Option<i64>,
    pub median_throughput: Option<f64>,
    pub written_bytes: i64,
}

fn ts(s: &str) -> Option<DateTime<Utc>> {
    format::parse_time(s)
}

/// About a dozen buckets over the range: days for a week, 3 days for a
/// month, weeks for a quarter, 30 days beyond.
fn bucket_secs(from: Option<DateTime<Utc>>, now: DateTime<Utc>) -> i64 {
    const DAY: i64 = 86_400;
    match from.map(|f| (now - f).num_days()) {
        Some(d) if d <= 10 => DAY,
        Some(d) if d <= 45 => 3 * DAY,
        Some(d) if d <= 120 => 7 * DAY,
        _ => 30 * DAY,
    }
}

/// Success rate per project per bucket: completed / (completed + failed).
pub fn success_series(
    data: &AnalyticsData,
    names: &HashMap<String, String>,
    from: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> Vec<Series> {
    let bucket = bucket_secs(from, now);
    let mut per: BTreeMap<String, BTreeMap<i64, (u32, u32)>> = BTreeMap::new();
    for b in &data.backups {
        let Some(pid) = &b.project_id else { continue };
        if only.is_some_and(|o| o != pid) {
            continue;
        }
        let Some(t) = ts(&b.at) else { continue };
        if from.is_some_and(|f| t < f) {
            continue;
        }
        let slot = t.timestamp().div_euclid(bucket) * bucket;
        let e = per
            .entry(pid.clone())
            .or_default()
            .entry(slot)
            .or_insert((0, 0));
        match b.status.as_str() {
            "completed" => e.0 += 1,
            "failed" => e.1 += 1,
            _ => {}
        }
    }
    per.into_iter()
        .enumerate()
        .map(|(i, (pid, buckets))| Series {
            name: names
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| "removed project".into()),
            color: theme::series(i),
            points: buckets
                .into_iter()
                .filter(|(_, (ok, bad))| ok + bad > 0)
                .map(|(x, (ok, bad))| (x as f64, f64::from(ok) / f64::from(ok + bad)))
                .collect(),
        })
        .collect()
}

/// Stored bytes over time per project: completed backups add, deletions
/// (from the audit log, by project name) subtract. Computed from the whole
/// history so the level at the start of the range is right.
pub fn storage_series(
    data: &AnalyticsData,
    names: &HashMap<String, String>,
    from: Option<DateTime<Utc>>,
    only: Option<&str>,
) -> Vec<Series> {
    let by_name: HashMap<&str, &str> = names
        .iter()
        .map(|(id, n)| (n.as_str(), id.as_str()))
        .collect();
    let mut changes: Vec<(DateTime<Utc>, String, i64)> = Vec::new();
    for b in &data.backups {
        if b.status != "completed" {
            continue;
        }
        if let (Some(pid), Some(t), Some(bytes)) = (&b.project_id, ts(&b.at), b.stored_bytes) {
            changes.push((t, pid.clone(), bytes));
        }
    }
    for d in &data.deletions {
        let pid = d.project_name.as_deref().and_then(|n| by_name.get(n));
        if let (Some(pid), Some(t), Some(bytes)) = (pid, ts(&d.at), d.bytes) {
            changes.push((t, (*pid).to_owned(), -bytes));
        }
    }
    changes.sort_by_key(|a| a.0);
    let mut level: BTreeMap<String, i64> = BTreeMap::new();
    let mut points: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (t, pid, delta) in changes {
        if only.is_some_and(|o| o != pid) {
            continue;
        }
        let l = level.entry(pid.clone()).or_insert(0);
        *l = (*l + delta).max(0);
        let p = points.entry(pid).or_default();
        if from.is_some_and(|f| t < f) {
            // Before the range: keep only the latest level, drawn at the start.
            let start = from.map(|f| f.timestamp() as f64).unwrap_or(0.0);
            p.clear();
            p.push((start, *l as f64));
        } else {
            p.push((t.timestamp() as f64, *l as f64));
        }
    }
    points
        .into_iter()
        .enumerate()
        .map(|(i, (pid, pts))| Series {
            name: names
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| "removed project".into()),
            color: theme::series(i),
            points: pts,
        })
        .collect()
}

/// The last completed backups in range: durations and throughputs as bars,
/// and the summary figures.
pub fn recent_runs(
    data: &AnalyticsData,
    from: Option<DateTime<Utc>>,
    only: Option<&str>,
) -> (Series, Series, Summary) {
    let in_range: Vec<_> = data
        .backups
        .iter()
        .filter(|b| only.is_none_or(|o| b.project_id.as_deref() == Some(o)))
        .filter(|b| match (from, ts(&b.at)) {
            (Some(f), Some(t)) => t >= f,
            (None, _) => true,
            (Some(_), None) => false,
        })
        .collect();
    let mut summary = Summary {
        runs: in_range.len(),
        completed: in_range.iter().filter(|b| b.status == "completed").count(),
        failed: in_range.iter().filter(|b| b.status == "failed").count(),
        written_bytes: in_range.iter().filter_map(|b| b.stored_bytes).sum(),
        ..Summary::default()
    };
    let completed: Vec<_> = in_range
        .iter()
        .filter(|b| b.status == "completed")
        .collect();
    let mut durations: Vec<i64> = completed.iter().filter_map(|b| b.duration_ms).collect();
    durations.sort_unstable();
    summary.median_duration_ms = durations.get(durations.len() / 2).copied();
    let mut rates: Vec<f64> = completed.iter().filter_map(|b| b.throughput_bps).collect();
    rates.sort_by(f64::total_cmp);
    summary.median_throughput = rates.get(rates.len() / 2).copied();
    let last: Vec<_> = completed.iter().rev().take(RECENT_RUNS).rev().collect();
    let duration = Series {
        name: "duration".into(),
        color: theme::series(1),
        points: last
            .iter()
            .enumerate()
            .map(|(i, b)| (i as f64, b.duration_ms.unwrap_or(0) as f64))
            .collect(),
    };
    let throughput = Series {
        name: "throughput".into(),
        color: theme::series(0),
        points: last
            .iter()
            .enumerate()
            .map(|(i, b)| (i as f64, b.throughput_bps.unwrap_or(0.0)))
            .collect(),
    };
    (duration, throughput, summary)
}

impl Analytics {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        self.loading = true;
        let engine = ctx.engine.clone();
        let audit_engine = ctx.engine.clone();
        Task::batch([
            Task::perform(
                async move {
                    let (d, p) = tokio::join!(engine.analytics_data(None), engine.list_projects());
                    Ok((d?, p?))
                },
                Message::Loaded,
            ),
            Task::perform(
                async move { audit_engine.audit_log(None, AUDIT_LIMIT).await },
                Message::AuditLoaded,
            ),
        ])
    }

    /// Redraws the charts (after a theme change).
    pub fn invalidate(&self) {
        for c in [
            &self.success,
            &self.storage,
            &self.duration,
            &self.throughput,
        ] {
            c.invalidate();
        }
    }

    fn from(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.range.days().map(|d| now - chrono::Duration::days(d))
    }

    /// Recomputes every chart from the loaded data and the filters.
    pub fn recompute(&mut self) {
        let Some(data) = &self.data else { return };
        let now = Utc::now();
        let from = self.from(now);
        let names: HashMap<String, String> = self
            .projects
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        let only = self.project.as_deref();
        self.success
            .set_series(success_series(data, &names, from, now, only));
        self.storage
            .set_series(storage_series(data, &names, from, only));
        let (d, t, s) = recent_runs(data, from, only);
        self.duration.set_series(vec![d]);
        self.throughput.set_series(vec![t]);
        self.summary = s;
    }

    pub fn refilter_audit(&mut self) {
        let q = self.audit_search.trim().to_lowercase();
        self.audit_visible = self
            .audit
            .iter()
            .enumerate()
            .filter(|(_, e)| self.audit_action.0.is_none_or(|p| e.action.starts_with(p)))
            .filter(|(_, e)| {
                q.is_empty()
                    || e.actor.to_lowercase().contains(&q)
                    || e.action.contains(&q)
                    || e.target
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(&q)
                    || e.details.to_string().to_lowercase().contains(&q)
            })
            .map(|(i, _)| i)
            .collect();
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok((data, projects))) => {
                self.loading = false;
                self.error = None;
                self.data = Some(data);
                self.projects = projects;
                self.recompute();
                Action::none()
            }
            Message::Loaded(Err(e)) | Message::AuditLoaded(Err(e)) => {
                self.loading = false;
                self.error = Some(e);
                Action::none()
            }
            Message::AuditLoaded(Ok(entries)) => {
                self.audit = entries;
                self.refilter_audit();
                Action::none()
            }
            Message::Range(r) => {
                self.range = r;
                self.recompute();
                Action::none()
            }
            Message::Project(p) => {
                self.project = p.0.map(|c| c.id);
                self.recompute();
                Action::none()
            }
            Message::Show(v) => {
                self.view = v;
                Action::none()
            }
            Message::AuditAction(a) => {
                self.audit_action = a;
                self.audit_scroll.reset();
                self.refilter_audit();
                Action::none()
            }
            Message::AuditSearch(s) => {
                self.audit_search = s;
                self.audit_scroll.reset();
                self.refilter_audit();
                Action::none()
            }
            Message::AuditScrolled(v) => {
                self.audit_scroll.on_scroll(v);
                Action::none()
            }
        }
    }

    pub fn view(&self) -> Element<'_, Message> {
        let tab = |label: &'static str, v: View| {
            button(text(label))
                .style(theme::nav_button(self.view == v))
                .padding([6.0, theme::M])
                .on_press(Message::Show(v))
        };
        let header = widget::page_header(
            "Analytics",
            Some(if self.loading {
                "Loading…".into()
            } else {
                "From the catalog's events and audit log".into()
            }),
            row![
                tab("Charts", View::Charts),
                tab("Audit log", View::Audit),
                widget::secondary_button("Refresh", Some(Message::Load))
            ]
            .spacing(theme::S),
        );
        let mut page = column![header].spacing(theme::L);
        if let Some(e) = &self.error {
            page = page.push(widget::banner(&widget::Notice::error(e), Message::Load));
        }
        match self.view {
            View::Charts => page.push(self.charts_view()).into(),
            View::Audit => page.push(self.audit_view()).into(),
        }
    }

    fn charts_view(&self) -> Element<'_, Message> {
        let projects = ProjectFilter::options(&self.projects);
        let selected = ProjectFilter::selected(&self.projects, self.project.as_ref());
        let controls = row![
            pick_list(Range::ALL, Some(self.range), Message::Range).padding(theme::S),
            pick_list(projects, Some(selected), Message::Project).padding(theme::S),
        ]
        .spacing(theme::S);
        if self.data.as_ref().is_some_and(|d| d.backups.is_empty()) {
            return column![
                controls,
                widget::empty(
                    "No backups recorded yet",
                    "Charts fill in as backups run: success rates, storage, durations and throughput.",
                    None
                )
            ]
            .spacing(theme::L)
            .into();
        }
        let s = &self.summary;
        let stats = row![
            widget::stat(
                "Runs",
                s.runs.to_string(),
                Some(format!("{} completed, {} failed", s.completed, s.failed)),
                theme::Tone::Neutral
            ),
            widget::stat(
                "Success rate",
                if s.completed + s.failed > 0 {
                    format::percent(s.completed as f64 / (s.completed + s.failed) as f64)
                } else {
                    "—".into()
                },
                None,
                theme::Tone::Neutral
            ),
            widget::stat(
                "Median duration",
                s.median_duration_ms
                    .map(format::duration_ms)
                    .unwrap_or_else(|| "—".into()),
                None,
                theme::Tone::Neutral
            ),
            widget::stat(
                "Median throughput",
                s.median_throughput
                    .map(format::rate)
                    .unwrap_or_else(|| "—".into()),
                None,
                theme::Tone::Neutral
            ),
            widget::stat(
                "Written",
                format::bytes(s.written_bytes),
                Some("stored bytes".into()),
                theme::Tone::Neutral
            ),
        ]
        .spacing(theme::M);
        scrollable(
            column![
                controls,
                stats,
                row![
                    widget::card("Backup success rate", self.success.view(220.0)),
                    widget::card("Storage used", self.storage.view(220.0)),
                ]
                .spacing(theme::M),
                row![
                    widget::card(
                        &format!("Duration (last {RECENT_RUNS} backups)"),
                        self.duration.view(200.0)
                    ),
                    widget::card(
                        &format!("Throughput (last {RECENT_RUNS} backups)"),
                        self.throughput.view(200.0)
                    ),
                ]
                .spacing(theme::M),
            ]
            .spacing(theme::L)
            .padding(iced::Padding {
                right: theme::M,
                ..iced::Padding::ZERO
            }),
        )
        .height(Length::Fill)
        .into()
    }

    fn audit_view(&self) -> Element<'_, Message> {
        let controls = row![
            pick_list(
                ActionFilter::ALL,
                Some(self.audit_action.clone()),
                Message::AuditAction
            )
            .padding(theme::S),
            text_input("Search actor, target, details", &self.audit_search)
                .on_input(Message::AuditSearch)
                .padding(theme::S),
            text(format!(
                "{} of {}",
                self.audit_visible.len(),
                self.audit.len()
            ))
            .style(theme::muted),
        ]
        .spacing(theme::S)
        .align_y(Alignment::Center);
        if self.audit.is_empty() {
            return column![
                controls,
                widget::empty(
                    "The audit log is empty",
                    "Every change — projects, backups, restores, passphrases — is recorded here.",
                    None
                )
            ]
            .spacing(theme::L)
            .into();
        }
        let header = container(
            row![
                text("When").width(Length::Fixed(140.0)),
                text("Actor").width(Length::Fixed(160.0)),
                text("Action").width(Length::Fixed(170.0)),
                text("Target").width(Length::Fixed(160.0)),
                text("Details").width(Length::Fill),
            ]
            .spacing(theme::M),
        )
        .padding([theme::S, theme::M])
        .style(theme::table_header);
        let list = vlist::vlist(
            Id::new("audit-list"),
            self.audit_visible.len(),
            30.0,
            &self.audit_scroll,
            Message::AuditScrolled,
            |i| {
                let e = &self.audit[self.audit_visible[i]];
                container(
                    row![
                        text(format::local_time(&e.at))
                            .size(theme::SMALL)
                            .width(Length::Fixed(140.0)),
                        text(e.actor.clone())
                            .size(theme::SMALL)
                            .width(Length::Fixed(160.0)),
                        text(e.action.clone())
                            .size(theme::SMALL)
                            .font(theme::MONO)
                            .width(Length::Fixed(170.0)),
                        text(e.target.clone().unwrap_or_default())
                            .size(theme::SMALL)
                            .width(Length::Fixed(160.0)),
                        text(e.details.to_string())
                            .size(theme::SMALL)
                            .font(theme::MONO)
                            .width(Length::Fill)
                            .wrapping(iced::widget::text::Wrapping::None),
                    ]
                    .spacing(theme::M)
                    .align_y(Alignment::Center),
                )
                .padding([0.0, theme::M])
                .height(Length::Fill)
                .align_y(Alignment::Center)
                .clip(true)
                .style(theme::table_row(i, false))
                .into()
            },
        );
        column![controls, header, list]
            .spacing(theme::S)
            .height(Length::Fill)
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dashboard::{BackupPoint, DeletionPoint};

    fn point(pid: &str, at: &str, status: &str, bytes: i64, ms: i64) -> BackupPoint {
        BackupPoint {
            project_id: Some(pid.into()),
            at: at.into(),
            backup_id: None,
            status: status.into(),
            backup_type: Some("full".into()),
            duration_ms: Some(ms),
            stored_bytes: (status == "completed").then_some(bytes),
            plain_bytes: None,
            throughput_bps: Some(bytes as f64 * 1000.0 / ms as f64),
        }
    }

    fn data() -> (AnalyticsData, HashMap<String, String>) {
        let d = AnalyticsData {
            backups: vec![
                point("a", "2024-05-01T01:00:00Z", "completed", 100, 1000),
                point("a", "2024-05-01T02:00:00Z", "failed", 0, 10),
                point("a", "2024-05-02T01:00:00Z", "completed", 200, 2000),
                point("b", "2024-05-02T01:00:00Z", "completed", 50, 500),
            ],
            tests: Vec::new(),
            deletions: vec![DeletionPoint {
                at: "2024-05-03T00:00:00Z".into(),
                project_name: Some("Alpha".into()),
                bytes: Some(100),
            }],
        };
        let names = HashMap::from([
            ("a".to_owned(), "Alpha".to_owned()),
            ("b".to_owned(), "Beta".to_owned()),
        ]);
        (d, names)
    }

    #[test]
    fn success_rate_per_day_and_project() {
        let (d, names) = data();
        let now = ts("2024-05-08T00:00:00Z").expect("now");
        let from = ts("2024-04-30T00:00:00Z");
        let s = success_series(&d, &names, from, now, None);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "Alpha");
        assert_eq!(
            s[0].points.iter().map(|p| p.1).collect::<Vec<_>>(),
            [0.5, 1.0]
        );
        let only = success_series(&d, &names, from, now, Some("b"));
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn storage_adds_completed_and_subtracts_deletions() {
        let (d, names) = data();
        let s = storage_series(&d, &names, None, None);
        let alpha = &s[0];
        assert_eq!(
            alpha.points.iter().map(|p| p.1).collect::<Vec<_>>(),
            [100.0, 300.0, 200.0]
        );
        // Starting the range later keeps the level reached before it.
        let from = ts("2024-05-02T12:00:00Z");
        let s = storage_series(&d, &names, from, Some("a"));
        assert_eq!(
            s[0].points.iter().map(|p| p.1).collect::<Vec<_>>(),
            [300.0, 200.0]
        );
    }

    #[test]
    fn recent_runs_and_summary() {
        let (d, _) = data();
        let (dur, thr, sum) = recent_runs(&d, None, None);
        assert_eq!(dur.points.len(), 3);
        assert_eq!(thr.points.len(), 3);
        assert_eq!(sum.runs, 4);
        assert_eq!((sum.completed, sum.failed), (3, 1));
        assert_eq!(sum.median_duration_ms, Some(1000));
        assert_eq!(sum.written_bytes, 350);
    }

    #[tokio::test]
    async fn audit_filters() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut a = Analytics::default();
        let entry = |action: &str, target: &str| AuditEntry {
            id: 1,
            at: "2024-05-01T00:00:00Z".into(),
            actor: "me (gui)".into(),
            action: action.into(),
            target: Some(target.into()),
            details: serde_json::json!({}),
        };
        let _ = a.update(
            Message::AuditLoaded(Ok(vec![
                entry("project.add", "Shop"),
                entry("backup.delete", "Shop"),
                entry("vault.setup", ""),
            ])),
            &ctx,
        );
        assert_eq!(a.audit_visible.len(), 3);
        let _ = a.update(Message::AuditAction(ActionFilter(Some("backup."))), &ctx);
        assert_eq!(a.audit_visible.len(), 1);
        let _ = a.update(Message::AuditAction(ActionFilter(None)), &ctx);
        let _ = a.update(Message::AuditSearch("shop".into()), &ctx);
        assert_eq!(a.audit_visible.len(), 2);
    }
}
