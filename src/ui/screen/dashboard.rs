//! Real-time status of every project and job: health, last backup, next
//! run, storage; failing and stale projects first; running jobs with live
//! progress; totals.

use chrono::{DateTime, Utc};
use iced::widget::{button, column, container, row, scrollable, text};
use iced::{Alignment, Element, Length, Task};

use super::{Action, Ctx, Effect, Nav};
use crate::engine::Error;
use crate::engine::dashboard::{Overview, ProjectSummary};
use crate::ui::jobs::{self, Job};
use crate::ui::theme::{self, Tone};
use crate::ui::{format, widget};

/// The success-rate window.
pub const RECENT_DAYS: i64 = 30;

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<Overview, Error>),
    /// The clock moved (ages in the view).
    Tick(DateTime<Utc>),
    OpenProject(String),
    ShowBackups(String),
    BackUp(String),
    AddProject,
    CancelJob(u64),
}

/// How a project is doing, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Failing,
    Stale,
    Healthy,
}

impl Health {
    pub fn label(self) -> &'static str {
        match self {
            Health::Failing => "failing",
            Health::Stale => "stale",
            Health::Healthy => "healthy",
        }
    }
    pub fn tone(self) -> Tone {
        match self {
            Health::Failing => Tone::Danger,
            Health::Stale => Tone::Warning,
            Health::Healthy => Tone::Success,
        }
    }
}

/// A project's health and the one-line reason for it.
/// A project is stale after its own threshold (`stale_after_hours`: the
/// one its alert rules use).
pub fn health(s: &ProjectSummary, now: DateTime<Utc>) -> (Health, String) {
    let stale_after_hours = s.stale_after_hours;
    if let Some(b) = &s.last_backup
        && b.status == "failed"
    {
        let why = b
            .error_message
            .clone()
            .unwrap_or_else(|| "no reason recorded".into());
        return (Health::Failing, format!("last backup failed: {why}"));
    }
    if let Some(t) = &s.last_test
        && !t.ok
    {
        let why = t
            .error
            .clone()
            .unwrap_or_else(|| "see the test report".into());
        return (Health::Failing, format!("health check failed: {why}"));
    }
    if let Some(t) = &s.last_restore_test
        && !t.ok
    {
        return (
            Health::Failing,
            format!(
                "restore test failed {}: {}",
                format::age_of(Some(&t.at), now),
                t.failure
                    .as_deref()
                    .unwrap_or("see the backup's restore tests")
            ),
        );
    }
    if let Some(p) = &s.platform_status
        && !p.is_up()
    {
        return (
            Health::Stale,
            format!(
                "{} on Supabase (seen {}): backups cannot reach it",
                p.label(),
                format::age_of(Some(&p.seen_at), now)
            ),
        );
    }
    match s.last_success_at.as_deref().and_then(format::parse_time) {
        None => (Health::Stale, "never backed up".into()),
        Some(t) if (now - t).num_hours() >= i64::from(stale_after_hours) => (
            Health::Stale,
            format!("last good backup {}", format::age(t, now)),
        ),
        Some(t) => {
            let tested = match &s.last_test {
                Some(t) => format!(
                    "reachable{}",
                    t.latency_ms
                        .map(|l| format!(", {l:.0} ms"))
                        .unwrap_or_default()
                ),
                None => "connection not tested yet".into(),
            };
            (
                Health::Healthy,
                format!("backed up {} · {tested}", format::age(t, now)),
            )
        }
    }
}

/// "restore-tested 3 days ago: passed", or that it never was.
pub fn restore_tested(s: &ProjectSummary, now: DateTime<Utc>) -> String {
    match &s.last_restore_test {
        Some(t) => format!(
            "restore-tested {}: {}",
            format::age_of(Some(&t.at), now),
            if t.ok { "passed" } else { "failed" }
        ),
        None => "never restore-tested".into(),
    }
}

/// Indices of `projects`, failing first, then stale, then by name.
pub fn order(projects: &[ProjectSummary], now: DateTime<Utc>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..projects.len()).collect();
    idx.sort_by_cached_key(|i| {
        let p = &projects[*i];
        (health(p, now).0, p.project.name.to_lowercase())
    });
    idx
}

#[derive(Debug)]
pub struct Dashboard {
    pub overview: Option<Overview>,
    pub loading: bool,
    pub error: Option<Error>,
    pub now: DateTime<Utc>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            overview: None,
            loading: false,
            error: None,
            now: Utc::now(),
        }
    }
}

impl Dashboard {
    pub fn load(&mut self, ctx: &Ctx) -> Task<Message> {
        self.loading = true;
        let engine = ctx.engine.clone();
        let since = (Utc::now() - chrono::Duration::days(RECENT_DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Task::perform(async move { engine.overview(since).await }, Message::Loaded)
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok(o)) => {
                self.loading = false;
                self.error = None;
                self.overview = Some(o);
                self.now = Utc::now();
                Action::none()
            }
            Message::Loaded(Err(e)) => {
                self.loading = false;
                self.error = Some(e);
                Action::none()
            }
            Message::Tick(now) => {
                self.now = now;
                Action::none()
            }
            Message::OpenProject(id) => Action::effect(Effect::Navigate(Nav::Project(id))),
            Message::ShowBackups(id) => Action::effect(Effect::Navigate(Nav::ProjectBackups(id))),
            Message::BackUp(id) => Action::effect(Effect::Navigate(Nav::BackUp(id))),
            Message::AddProject => Action::effect(Effect::Navigate(Nav::NewProject)),
            Message::CancelJob(id) => Action::effect(Effect::CancelJob(id)),
        }
    }

    pub fn view<'a>(&'a self, jobs: &'a [Job]) -> Element<'a, Message> {
        let subtitle = match (&self.overview, self.loading) {
            (_, true) => Some("Refreshing…".to_owned()),
            (Some(o), false) => Some(format!(
                "{} project{} · updated {}",
                o.projects.len(),
                if o.projects.len() == 1 { "" } else { "s" },
                format::age(self.now, Utc::now())
            )),
            (None, false) => None,
        };
        let header = widget::page_header(
            "Dashboard",
            subtitle,
            row![
                widget::secondary_button("Refresh", Some(Message::Load)),
                widget::primary_button("Add project", Some(Message::AddProject)),
            ]
            .spacing(theme::S),
        );
        let mut body = column![header].spacing(theme::L);
        if let Some(e) = &self.error {
            body = body.push(widget::banner(&widget::Notice::error(e), Message::Load));
        }
        let Some(o) = &self.overview else {
            body = body.push(text("Loading the overview…").style(theme::muted));
            return body.into();
        };
        if o.projects.is_empty() {
            body = body.push(widget::empty(
                "No projects yet",
                "Add a Supabase project with its connection URL; supabackup tests the connection and can back it up right away.",
                Some(("Add your first project", Message::AddProject)),
            ));
            return body.into();
        }

        let order = order(&o.projects, self.now);
        let attention = order
            .iter()
            .filter(|i| health(&o.projects[**i], self.now).0 != Health::Healthy)
            .count();
        let t = &o.totals;
        let recent = t.recent_completed + t.recent_failed;
        let rate = (recent > 0).then(|| t.recent_completed as f64 / recent as f64);
        body = body.push(
            row![
                widget::stat(
                    "Projects",
                    t.projects.to_string(),
                    Some(format!("{attention} need attention")),
                    if attention > 0 {
                        Tone::Warning
                    } else {
                        Tone::Neutral
                    }
                ),
                widget::stat(
                    "Backups",
                    t.completed_backups.to_string(),
                    Some("completed and kept".into()),
                    Tone::Neutral
                ),
                widget::stat(
                    "Storage used",
                    format::bytes(t.storage_bytes),
                    Some(if t.orphaned_backups > 0 {
                        format!("{} from removed projects", format::bytes(t.orphaned_bytes))
                    } else {
                        "compressed, on disk".into()
                    }),
                    Tone::Neutral
                ),
                widget::stat(
                    "Success rate",
                    rate.map(format::percent).unwrap_or_else(|| "—".into()),
                    Some(format!("{recent} runs in {RECENT_DAYS} days")),
                    match rate {
                        Some(r) if r < 0.9 => Tone::Danger,
                        Some(_) => Tone::Success,
                        None => Tone::Neutral,
                    }
                ),
                widget::stat(
                    "Running",
                    jobs.len().to_string(),
                    Some("jobs now".into()),
                    if jobs.is_empty() {
                        Tone::Neutral
                    } else {
                        Tone::Info
                    }
                ),
            ]
            .spacing(theme::M),
        );
        if !jobs.is_empty() {
            let list = column(jobs.iter().map(|j| jobs::view(j, Message::CancelJob(j.id))))
                .spacing(theme::S);
            body = body.push(widget::card("Running jobs", list));
        }

        let header_row = container(
            row![
                text("Project").width(Length::FillPortion(4)),
                text("Health").width(Length::FillPortion(6)),
                text("Last backup").width(Length::FillPortion(3)),
                text("Next run").width(Length::FillPortion(2)),
                text("Storage").width(Length::FillPortion(2)),
                text("Success").width(Length::FillPortion(2)),
                text("").width(Length::Fixed(200.0)),
            ]
            .spacing(theme::M),
        )
        .padding([theme::S, theme::M])
        .style(theme::table_header);
        let rows = column(order.iter().enumerate().map(|(n, i)| {
            let s = &o.projects[*i];
            self.project_row(n, s)
        }));
        body = body.push(widget::card(
            "Projects",
            column![header_row, rows].spacing(2),
        ));
        scrollable(body.padding(iced::Padding {
            right: theme::M,
            ..iced::Padding::ZERO
        }))
        .height(Length::Fill)
        .into()
    }

    fn project_row<'a>(&'a self, n: usize, s: &'a ProjectSummary) -> Element<'a, Message> {
        let (h, why) = health(s, self.now);
        let last = match &s.last_backup {
            Some(b) => column![
                widget::status_badge(&b.status),
                text(format::age_of(
                    b.completed_at.as_deref().or(Some(b.created_at.as_str())),
                    self.now
                ))
                .size(theme::SMALL)
                .style(theme::muted),
            ]
            .spacing(2)
            .into(),
            None => Element::from(text("never").size(theme::SMALL).style(theme::muted)),
        };
        let next = match &s.next_run_at {
            Some(t) => format::age_of(Some(t), self.now),
            None if s.enabled_jobs == 0 => "no schedule".into(),
            None => "—".into(),
        };
        let id = s.project.id.clone();
        let content = row![
            column![
                button(text(s.project.name.clone()).font(theme::BOLD))
                    .style(theme::link)
                    .padding(0)
                    .on_press(Message::OpenProject(id.clone())),
                row![widget::env_badge(s.project.environment)]
                    .push(
                        (!s.project.tls_verification().0)
                            .then(|| widget::badge("server not verified", Tone::Warning)),
                    )
                    .push(s.platform_status.as_ref().map(|p| {
                        widget::badge(
                            match &p.region {
                                Some(r) => format!("Supabase: {} · {r}", p.label()),
                                None => format!("Supabase: {}", p.label()),
                            },
                            if p.is_up() {
                                Tone::Success
                            } else {
                                Tone::Warning
                            },
                        )
                    }))
                    .spacing(theme::XS),
            ]
            .spacing(theme::XS)
            .width(Length::FillPortion(4)),
            column![
                row![
                    widget::badge(h.label(), h.tone()),
                    text(why)
                        .size(theme::SMALL)
                        .wrapping(iced::widget::text::Wrapping::WordOrGlyph),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
                text(restore_tested(s, self.now))
                    .size(theme::SMALL)
                    .style(theme::muted),
            ]
            .spacing(2)
            .width(Length::FillPortion(6)),
            container(last).width(Length::FillPortion(3)),
            text(next).size(theme::SMALL).width(Length::FillPortion(2)),
            text(format::bytes(s.storage_bytes))
                .size(theme::SMALL)
                .width(Length::FillPortion(2)),
            text(
                s.success_rate()
                    .map(format::percent)
                    .unwrap_or_else(|| "—".into())
            )
            .size(theme::SMALL)
            .width(Length::FillPortion(2)),
            row![
                widget::secondary_button("Backups", Some(Message::ShowBackups(id.clone()))),
                widget::primary_button("Back up", Some(Message::BackUp(id))),
            ]
            .spacing(theme::XS)
            .width(Length::Fixed(200.0)),
        ]
        .spacing(theme::M)
        .align_y(Alignment::Center);
        container(content)
            .padding([theme::S, theme::M])
            .style(theme::table_row(n, false))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dashboard::{BackupBrief, HealthCheck};
    use crate::engine::project::{Environment, Project};

    pub(crate) fn summary(name: &str) -> ProjectSummary {
        ProjectSummary {
            project: Project {
                id: format!("id-{name}"),
                name: name.into(),
                slug: name.into(),
                project_ref: "abc".into(),
                db_url: "postgresql://u@h/db".into(),
                environment: Environment::Production,
                organization_id: None,
                description: None,
                has_db_password: true,
                ca_cert: None,
                created_at: String::new(),
                updated_at: String::new(),
            },
            last_backup: None,
            last_success_at: None,
            completed_backups: 0,
            storage_bytes: 0,
            recent_completed: 0,
            recent_failed: 0,
            last_test: None,
            last_restore_test: None,
            next_run_at: None,
            enabled_jobs: 0,
            stale_after_hours: 48,
            platform_status: None,
        }
    }

    #[test]
    fn failing_then_stale_then_healthy() {
        let now = format::parse_time("2024-05-10T12:00:00Z").expect("now");
        let mut ok = summary("a-ok");
        ok.last_success_at = Some("2024-05-10T10:00:00Z".into());
        ok.last_test = Some(HealthCheck {
            ok: true,
            at: "x".into(),
            latency_ms: Some(4.0),
            server_version: None,
            error: None,
        });
        let mut old = summary("b-old");
        old.last_success_at = Some("2024-05-01T10:00:00Z".into());
        let never = summary("c-never");
        let mut failed = summary("d-failed");
        failed.last_success_at = Some("2024-05-10T10:00:00Z".into());
        failed.last_backup = Some(BackupBrief {
            id: "1".into(),
            status: "failed".into(),
            backup_type: "full".into(),
            created_at: "2024-05-10T11:00:00Z".into(),
            completed_at: None,
            file_size: None,
            error_message: Some("pg_dump 15 is too old".into()),
        });
        let list = vec![ok, old, never, failed];
        assert_eq!(health(&list[0], now).0, Health::Healthy);
        assert!(health(&list[0], now).1.contains("4 ms"));
        assert_eq!(
            health(&list[1], now),
            (Health::Stale, "last good backup 9 days ago".into())
        );
        assert_eq!(health(&list[2], now).1, "never backed up");
        assert!(health(&list[3], now).1.contains("too old"));
        assert_eq!(order(&list, now), [3, 1, 2, 0]);
        // Each project's own threshold (its alert rules') decides.
        let mut lenient = list[1].clone();
        lenient.stale_after_hours = 24 * 30;
        assert_eq!(health(&lenient, now).0, Health::Healthy);
    }

    #[test]
    fn the_newest_restore_test_is_shown_and_a_failed_one_fails_the_project() {
        use crate::engine::dashboard::RestoreTestBrief;
        let now = format::parse_time("2024-05-10T12:00:00Z").expect("now");
        let mut p = summary("p");
        p.last_success_at = Some("2024-05-10T10:00:00Z".into());
        assert_eq!(restore_tested(&p, now), "never restore-tested");
        // A project the platform reports paused cannot be backed up.
        let mut paused = summary("Paused");
        paused.last_success_at = Some(now.to_rfc3339());
        paused.platform_status = Some(crate::engine::fleet::PlatformStatus {
            status: "INACTIVE".into(),
            seen_at: now.to_rfc3339(),
            region: None,
        });
        let (h, why) = health(&paused, now);
        assert_eq!(h, Health::Stale);
        assert!(why.starts_with("paused on Supabase"), "{why}");
        assert_eq!(health(&p, now).0, Health::Healthy);
        p.last_restore_test = Some(RestoreTestBrief {
            ok: true,
            at: "2024-05-07T12:00:00Z".into(),
            backup_id: Some("b1".into()),
            failure: None,
        });
        assert_eq!(restore_tested(&p, now), "restore-tested 3 days ago: passed");
        assert_eq!(health(&p, now).0, Health::Healthy);
        p.last_restore_test = Some(RestoreTestBrief {
            ok: false,
            at: "2024-05-10T11:00:00Z".into(),
            backup_id: Some("b2".into()),
            failure: Some("table public.t: 3 rows restored, the backup recorded 4".into()),
        });
        assert_eq!(restore_tested(&p, now), "restore-tested 60 min ago: failed");
        let (h, why) = health(&p, now);
        assert_eq!(h, Health::Failing);
        assert!(why.contains("3 rows restored"), "{why}");
    }

    #[tokio::test]
    async fn navigation_actions() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut d = Dashboard::default();
        let a = d.update(Message::BackUp("p".into()), &ctx);
        assert!(matches!(a.effects.as_slice(), [Effect::Navigate(Nav::BackUp(id))] if id == "p"));
        let a = d.update(Message::CancelJob(3), &ctx);
        assert!(matches!(a.effects.as_slice(), [Effect::CancelJob(3)]));
        let a = d.update(Message::Load, &ctx);
        assert!(a.has_task() && d.loading);
        let _ = d.update(Message::Loaded(Err(Error::internal("boom"))), &ctx);
        assert!(!d.loading && d.error.is_some());
    }
}
