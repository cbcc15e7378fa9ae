//! The Alerts card of Settings: the engine's alert rules — the same ones
//! the CLI (`alert …`), the daemon and the scheduler use — listed, created,
//! edited, turned on and off, tested and removed. A rule says which events
//! (backups, verifications, restores, prunes, missed schedules, no recent
//! backup) go to which channels (desktop, signed webhook, e-mail, Slack,
//! Discord, Teams, Telegram); the channels' secrets are sealed by the
//! engine and never shown again.

use iced::widget::{Column, checkbox, column, pick_list, row, text, text_input, toggler};
use iced::{Alignment, Element, Length, Task};

use super::{Action, Ctx};
use crate::engine::Error;
use crate::engine::crypto::Secret;
use crate::engine::notify::{
    AlertRule, Channel, ChatChannel, ChatService, DeliveryOutcome, EmailChannel, RuleSecrets,
    SmtpSecurity,
};
use crate::ui::theme::{self, Tone};
use crate::ui::widget;

/// The events a rule can listen to (the stale threshold is a field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    BackupFailure,
    BackupSuccess,
    VerificationFailure,
    RestoreFailure,
    RestoreSuccess,
    PruneFailure,
    MissedSchedule,
    Unreachable,
    PgDumpMissing,
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::BackupFailure,
        Event::BackupSuccess,
        Event::VerificationFailure,
        Event::RestoreFailure,
        Event::RestoreSuccess,
        Event::PruneFailure,
        Event::MissedSchedule,
        Event::Unreachable,
        Event::PgDumpMissing,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Event::BackupFailure => "Backup failed",
            Event::BackupSuccess => "Backup completed",
            Event::VerificationFailure => "Verification or restore test failed",
            Event::RestoreFailure => "Restore or rollback failed",
            Event::RestoreSuccess => "Restore or rollback completed",
            Event::PruneFailure => "Pruning old backups failed",
            Event::MissedSchedule => "A scheduled run was missed",
            Event::Unreachable => "A health probe cannot reach the project",
            Event::PgDumpMissing => "No pg_dump here can back the project up",
        }
    }

    fn get(self, r: &AlertRule) -> bool {
        match self {
            Event::BackupFailure => r.on_failure,
            Event::BackupSuccess => r.on_success,
            Event::VerificationFailure => r.on_verification_failure,
            Event::RestoreFailure => r.on_restore_failure,
            Event::RestoreSuccess => r.on_restore_success,
            Event::PruneFailure => r.on_prune_failure,
            Event::MissedSchedule => r.on_missed_schedule,
            Event::Unreachable => r.on_unreachable,
            Event::PgDumpMissing => r.on_pg_dump_missing,
        }
    }

    fn set(self, r: &mut AlertRule, on: bool) {
        match self {
            Event::BackupFailure => r.on_failure = on,
            Event::BackupSuccess => r.on_success = on,
            Event::VerificationFailure => r.on_verification_failure = on,
            Event::RestoreFailure => r.on_restore_failure = on,
            Event::RestoreSuccess => r.on_restore_success = on,
            Event::PruneFailure => r.on_prune_failure = on,
            Event::MissedSchedule => r.on_missed_schedule = on,
            Event::Unreachable => r.on_unreachable = on,
            Event::PgDumpMissing => r.on_pg_dump_missing = on,
        }
    }
}

/// "All projects" or one project, for the scope pick list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub id: Option<String>,
    pub name: String,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn all_projects() -> Scope {
    Scope {
        id: None,
        name: "All projects".into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security(pub SmtpSecurity);

impl Security {
    pub const ALL: [Security; 3] = [
        Security(SmtpSecurity::StartTls),
        Security(SmtpSecurity::Tls),
        Security(SmtpSecurity::None),
    ];
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            SmtpSecurity::StartTls => "STARTTLS (587)",
            SmtpSecurity::Tls => "TLS (465)",
            SmtpSecurity::None => "none (localhost only)",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service(pub ChatService);

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.label())
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Load,
    Loaded(Result<(Vec<AlertRule>, Vec<Scope>), Error>),
    New,
    Edit(String),
    CancelForm,
    Name(String),
    Scope(Scope),
    Event(Event, bool),
    Stale(bool),
    StaleHours(String),
    Growth(bool),
    GrowthPercent(String),
    Desktop(bool),
    UseWebhook(bool),
    WebhookUrl(String),
    WebhookSecret(String),
    UseEmail(bool),
    EmailTo(String),
    EmailFrom(String),
    SmtpHost(String),
    SmtpPort(String),
    SmtpSecurity(Security),
    SmtpUser(String),
    SmtpPassword(String),
    UseChat(bool),
    ChatService(Service),
    ChatSecret(String),
    ChatId(String),
    Save,
    Saved(Result<AlertRule, Error>),
    Toggle(String, bool),
    Toggled(Result<AlertRule, Error>),
    Test(String),
    Tested(String, Result<Vec<DeliveryOutcome>, Error>),
    Remove(String),
    CancelRemove,
    ConfirmRemove,
    Removed(String, Result<(), Error>),
}

/// The rule being created or edited, as typed.
#[derive(Debug, Clone)]
pub struct Form {
    /// Empty for a new rule.
    pub id: String,
    pub rule: AlertRule,
    pub scope: Scope,
    pub stale: bool,
    pub stale_hours: String,
    /// Alert when the database grows by this percentage within a day.
    pub growth: bool,
    pub growth_percent: String,
    pub desktop: bool,
    pub webhook: bool,
    pub webhook_url: String,
    pub webhook_secret: String,
    pub email: bool,
    pub email_to: String,
    pub email_from: String,
    pub smtp_host: String,
    pub smtp_port: String,
    pub smtp_security: SmtpSecurity,
    pub smtp_user: String,
    pub smtp_password: String,
    pub chat: bool,
    pub chat_service: ChatService,
    pub chat_secret: String,
    pub chat_id: String,
    pub chat_api: Option<String>,
}

impl Default for Form {
    fn default() -> Self {
        Form {
            id: String::new(),
            rule: AlertRule {
                on_failure: true,
                ..AlertRule::default()
            },
            scope: all_projects(),
            stale: false,
            stale_hours: "48".into(),
            growth: false,
            growth_percent: "20".into(),
            desktop: true,
            webhook: false,
            webhook_url: String::new(),
            webhook_secret: String::new(),
            email: false,
            email_to: String::new(),
            email_from: String::new(),
            smtp_host: String::new(),
            smtp_port: String::new(),
            smtp_security: SmtpSecurity::StartTls,
            smtp_user: String::new(),
            smtp_password: String::new(),
            chat: false,
            chat_service: ChatService::Slack,
            chat_secret: String::new(),
            chat_id: String::new(),
            chat_api: None,
        }
    }
}

impl Form {
    /// A form showing `rule` (secrets are never shown: blank keeps them).
    fn of(rule: &AlertRule, scopes: &[Scope]) -> Form {
        let mut f = Form {
            id: rule.id.clone(),
            rule: rule.clone(),
            scope: scopes
                .iter()
                .find(|s| s.id == rule.project_id)
                .cloned()
                .unwrap_or_else(all_projects),
            stale: rule.stale_after_hours.is_some(),
            stale_hours: rule.stale_after_hours.unwrap_or(48).to_string(),
            growth: rule.size_growth_percent.is_some(),
            growth_percent: rule.size_growth_percent.unwrap_or(20).to_string(),
            desktop: false,
            ..Form::default()
        };
        for c in &rule.channels {
            match c {
                Channel::Desktop => f.desktop = true,
                Channel::Webhook { url } => {
                    f.webhook = true;
                    f.webhook_url = url.clone();
                }
                Channel::Email(e) => {
                    f.email = true;
                    f.email_to = e.to.join(", ");
                    f.email_from = e.from.clone();
                    f.smtp_host = e.smtp_host.clone();
                    f.smtp_port = e.smtp_port.to_string();
                    f.smtp_security = e.security;
                    f.smtp_user = e.username.clone().unwrap_or_default();
                }
                Channel::Chat(chat) => {
                    f.chat = true;
                    f.chat_service = chat.service;
                    f.chat_id = chat.chat_id.clone().unwrap_or_default();
                    f.chat_api = chat.api_base.clone();
                }
            }
        }
        f
    }

    /// The rule and secrets to save, or what to fix first.
    fn build(&self) -> Result<(AlertRule, RuleSecrets), String> {
        let mut rule = self.rule.clone();
        rule.id = self.id.clone();
        rule.project_id = self.scope.id.clone();
        rule.stale_after_hours = if self.stale {
            match self.stale_hours.trim().parse::<u32>() {
                Ok(h) if h >= 1 => Some(h),
                _ => return Err("the stale threshold is a number of hours (1 or more)".into()),
            }
        } else {
            None
        };
        rule.size_growth_percent = if self.growth {
            match self
                .growth_percent
                .trim()
                .trim_end_matches('%')
                .parse::<u32>()
            {
                Ok(p) if (1..=10_000).contains(&p) => Some(p),
                _ => return Err("the size growth is a percentage between 1 and 10000".into()),
            }
        } else {
            None
        };
        if !rule.has_event() {
            return Err("choose at least one event".into());
        }
        let mut secrets = RuleSecrets::default();
        rule.channels.clear();
        if self.desktop {
            rule.channels.push(Channel::Desktop);
        }
        if self.webhook {
            rule.channels.push(Channel::Webhook {
                url: self.webhook_url.trim().to_owned(),
            });
            secrets.webhook = secret(&self.webhook_secret);
        }
        if self.email {
            let port = match self.smtp_port.trim() {
                "" => self.smtp_security.default_port(),
                p => p
                    .parse::<u16>()
                    .map_err(|_| format!("the SMTP port '{p}' is not a port number"))?,
            };
            let user = self.smtp_user.trim();
            rule.channels.push(Channel::Email(EmailChannel {
                smtp_host: self.smtp_host.trim().to_owned(),
                smtp_port: port,
                security: self.smtp_security,
                username: (!user.is_empty()).then(|| user.to_owned()),
                from: self.email_from.trim().to_owned(),
                to: self
                    .email_to
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            }));
            secrets.smtp = secret(&self.smtp_password);
        }
        if self.chat {
            let telegram = self.chat_service == ChatService::Telegram;
            rule.channels.push(Channel::Chat(ChatChannel {
                service: self.chat_service,
                chat_id: telegram.then(|| self.chat_id.trim().to_owned()),
                api_base: if telegram {
                    self.chat_api.clone()
                } else {
                    None
                },
            }));
            if let Some(s) = secret(&self.chat_secret) {
                secrets.chat.push((self.chat_service, s));
            }
        }
        if rule.channels.is_empty() {
            return Err("choose at least one channel".into());
        }
        Ok((rule, secrets))
    }
}

fn secret(s: &str) -> Option<Secret> {
    (!s.trim().is_empty()).then(|| Secret::new(s.trim().to_owned()))
}

#[derive(Debug, Default)]
pub struct Panel {
    pub rules: Vec<AlertRule>,
    /// "All projects" and every project, for the scope pick list.
    pub scopes: Vec<Scope>,
    /// The rule being created or edited.
    pub form: Option<Form>,
    pub form_error: Option<String>,
    pub saving: bool,
    /// The last test of each rule, by id.
    pub tests: Vec<(String, Result<Vec<DeliveryOutcome>, String>)>,
    pub testing: Option<String>,
    pub removing: Option<String>,
}

impl Panel {
    pub fn load(&self, ctx: &Ctx) -> Task<Message> {
        let engine = ctx.engine.clone();
        Task::perform(
            async move {
                let rules = engine.alert_rules().await?;
                let mut scopes = vec![all_projects()];
                scopes.extend(engine.list_projects().await?.into_iter().map(|p| Scope {
                    id: Some(p.id),
                    name: p.name,
                }));
                Ok((rules, scopes))
            },
            Message::Loaded,
        )
    }

    pub fn test_result(&self, id: &str) -> Option<&Result<Vec<DeliveryOutcome>, String>> {
        self.tests.iter().find(|(i, _)| i == id).map(|(_, r)| r)
    }

    fn scope_name(&self, project_id: Option<&str>) -> String {
        match project_id {
            None => "All projects".into(),
            Some(id) => self
                .scopes
                .iter()
                .find(|s| s.id.as_deref() == Some(id))
                .map(|s| s.name.clone())
                .unwrap_or_else(|| id.to_owned()),
        }
    }

    fn edit(&mut self, f: impl FnOnce(&mut Form)) -> Action<Message> {
        if let Some(form) = self.form.as_mut() {
            f(form);
            self.form_error = None;
        }
        Action::none()
    }

    pub fn update(&mut self, message: Message, ctx: &Ctx) -> Action<Message> {
        match message {
            Message::Load => Action::task(self.load(ctx)),
            Message::Loaded(Ok((rules, scopes))) => {
                self.rules = rules;
                self.scopes = scopes;
                Action::none()
            }
            Message::Loaded(Err(e)) => Action::error(&e),
            Message::New => {
                self.form = Some(Form::default());
                self.form_error = None;
                Action::none()
            }
            Message::Edit(id) => {
                if let Some(r) = self.rules.iter().find(|r| r.id == id) {
                    self.form = Some(Form::of(r, &self.scopes));
                    self.form_error = None;
                }
                Action::none()
            }
            Message::CancelForm => {
                self.form = None;
                self.form_error = None;
                Action::none()
            }
            Message::Name(s) => self.edit(|f| f.rule.name = s),
            Message::Scope(s) => self.edit(|f| f.scope = s),
            Message::Event(e, on) => self.edit(|f| e.set(&mut f.rule, on)),
            Message::Stale(b) => self.edit(|f| f.stale = b),
            Message::StaleHours(s) => self.edit(|f| f.stale_hours = s),
            Message::Growth(b) => self.edit(|f| f.growth = b),
            Message::GrowthPercent(s) => self.edit(|f| f.growth_percent = s),
            Message::Desktop(b) => self.edit(|f| f.desktop = b),
            Message::UseWebhook(b) => self.edit(|f| f.webhook = b),
            Message::WebhookUrl(s) => self.edit(|f| f.webhook_url = s),
            Message::WebhookSecret(s) => self.edit(|f| f.webhook_secret = s),
            Message::UseEmail(b) => self.edit(|f| f.email = b),
            Message::EmailTo(s) => self.edit(|f| f.email_to = s),
            Message::EmailFrom(s) => self.edit(|f| f.email_from = s),
            Message::SmtpHost(s) => self.edit(|f| f.smtp_host = s),
            Message::SmtpPort(s) => self.edit(|f| f.smtp_port = s),
            Message::SmtpSecurity(s) => self.edit(|f| f.smtp_security = s.0),
            Message::SmtpUser(s) => self.edit(|f| f.smtp_user = s),
            Message::SmtpPassword(s) => self.edit(|f| f.smtp_password = s),
            Message::UseChat(b) => self.edit(|f| f.chat = b),
            Message::ChatService(s) => self.edit(|f| f.chat_service = s.0),
            Message::ChatSecret(s) => self.edit(|f| f.chat_secret = s),
            Message::ChatId(s) => self.edit(|f| f.chat_id = s),
            Message::Save => {
                let Some(form) = &self.form else {
                    return Action::none();
                };
                let (rule, secrets) = match form.build() {
                    Ok(x) => x,
                    Err(e) => {
                        self.form_error = Some(e);
                        return Action::none();
                    }
                };
                self.saving = true;
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.save_alert_rule_with(rule, secrets).await },
                    Message::Saved,
                ))
            }
            Message::Saved(Ok(rule)) => {
                self.saving = false;
                self.form = None;
                let label = rule.label();
                match self.rules.iter_mut().find(|r| r.id == rule.id) {
                    Some(r) => *r = rule,
                    None => self.rules.push(rule),
                }
                self.rules.sort_by_key(|r| r.project_id.is_some());
                Action::notice(
                    widget::Notice::success(format!("Alert rule {label} saved"))
                        .with_detail("send a test alert to check its channels"),
                )
            }
            Message::Saved(Err(e)) => {
                self.saving = false;
                self.form_error = Some(match &e.hint {
                    Some(h) => format!("{} ({h})", e.message),
                    None => e.message,
                });
                Action::none()
            }
            Message::Toggle(id, on) => {
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move { engine.set_alert_rule_enabled(&id, on).await },
                    Message::Toggled,
                ))
            }
            Message::Toggled(Ok(rule)) => {
                if let Some(r) = self.rules.iter_mut().find(|r| r.id == rule.id) {
                    *r = rule;
                }
                Action::none()
            }
            Message::Toggled(Err(e)) => Action::error(&e),
            Message::Test(id) => {
                self.testing = Some(id.clone());
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move {
                        let r = engine.send_test_alert(&id, &engine.delivery()).await;
                        (id, r)
                    },
                    |(id, r)| Message::Tested(id, r),
                ))
            }
            Message::Tested(id, r) => {
                self.testing = None;
                self.tests.retain(|(i, _)| i != &id);
                self.tests.push((id, r.map_err(|e| e.message)));
                Action::none()
            }
            Message::Remove(id) => {
                self.removing = Some(id);
                Action::none()
            }
            Message::CancelRemove => {
                self.removing = None;
                Action::none()
            }
            Message::ConfirmRemove => {
                let Some(id) = self.removing.take() else {
                    return Action::none();
                };
                let engine = ctx.engine.clone();
                Action::task(Task::perform(
                    async move {
                        let r = engine.remove_alert_rule(&id).await;
                        (id, r)
                    },
                    |(id, r)| Message::Removed(id, r),
                ))
            }
            Message::Removed(id, Ok(())) => {
                self.rules.retain(|r| r.id != id);
                self.tests.retain(|(i, _)| i != &id);
                Action::notice(widget::Notice::success("Alert rule removed"))
            }
            Message::Removed(_, Err(e)) => Action::error(&e),
        }
    }

    fn rule_line<'a>(&'a self, r: &'a AlertRule) -> Column<'a, Message> {
        let channels: Vec<String> = r
            .channels
            .iter()
            .map(|c| match c {
                Channel::Desktop => "desktop".to_owned(),
                Channel::Webhook { url } => format!("webhook {url}"),
                Channel::Email(e) => format!("e-mail {}", e.to.join(", ")),
                Channel::Chat(c) => c.service.label().to_owned(),
            })
            .collect();
        let id = r.id.clone();
        let testing = self.testing.as_deref() == Some(r.id.as_str());
        let line = row![
            toggler(r.enabled).on_toggle(move |b| Message::Toggle(id.clone(), b)),
            column![
                text(if r.name.is_empty() {
                    r.label()
                } else {
                    r.name.clone()
                })
                .font(theme::BOLD),
                text(format!(
                    "{} · {} → {}",
                    self.scope_name(r.project_id.as_deref()),
                    r.label().trim_start_matches("on ").trim_matches('"'),
                    channels.join(", ")
                ))
                .size(theme::SMALL)
                .style(theme::muted),
            ]
            .width(Length::Fill),
            widget::secondary_button(
                if testing { "Sending…" } else { "Send test" },
                (!testing).then(|| Message::Test(r.id.clone())),
            ),
            widget::secondary_button("Edit", Some(Message::Edit(r.id.clone()))),
            widget::secondary_button("Remove", Some(Message::Remove(r.id.clone()))),
        ]
        .spacing(theme::M)
        .align_y(Alignment::Center);
        let mut col = column![line].spacing(theme::XS);
        match self.test_result(&r.id) {
            Some(Ok(outcomes)) => {
                for o in outcomes {
                    let what = if o.target.is_empty() {
                        o.channel.clone()
                    } else {
                        format!("{} {}", o.channel, o.target)
                    };
                    let (line, tone) = match &o.error {
                        None => (format!("{what}: delivered"), Tone::Success),
                        Some(e) => (format!("{what}: {e}"), Tone::Danger),
                    };
                    col = col.push(text(line).size(theme::SMALL).style(theme::toned(tone)));
                }
            }
            Some(Err(e)) => {
                col = col.push(
                    text(e.clone())
                        .size(theme::SMALL)
                        .style(theme::toned(Tone::Danger)),
                )
            }
            None => {}
        }
        if self.removing.as_deref() == Some(r.id.as_str()) {
            col = col.push(
                row![
                    text("Remove this rule? Its channels' secrets go too when no other rule of its scope needs them.")
                        .size(theme::SMALL)
                        .style(theme::toned(Tone::Warning))
                        .width(Length::Fill),
                    widget::secondary_button("Cancel", Some(Message::CancelRemove)),
                    widget::danger_button("Remove rule", Some(Message::ConfirmRemove)),
                ]
                .spacing(theme::S)
                .align_y(Alignment::Center),
            );
        }
        col
    }

    fn form_view<'a>(&'a self, f: &'a Form) -> Element<'a, Message> {
        let editing = !f.id.is_empty();
        let keep = |what: &str| {
            if editing {
                format!("{what} (blank keeps the stored one)")
            } else {
                what.to_owned()
            }
        };
        let mut events = column![text("When").font(theme::BOLD)].spacing(theme::XS);
        for e in Event::ALL {
            events = events.push(
                checkbox(e.get(&f.rule))
                    .label(e.label())
                    .on_toggle(move |b| Message::Event(e, b)),
            );
        }
        events = events
            .push(threshold(
                f.stale,
                "No good backup for (hours)",
                Message::Stale,
                (
                    "48",
                    &f.stale_hours,
                    "alert-stale-hours",
                    Message::StaleHours,
                ),
            ))
            .push(threshold(
                f.growth,
                "The database grew within a day by more than (%)",
                Message::Growth,
                (
                    "20",
                    &f.growth_percent,
                    "alert-growth-percent",
                    Message::GrowthPercent,
                ),
            ));
        events = events.push(
            text("The stale threshold is also when the dashboard calls a project stale.")
                .size(theme::SMALL)
                .style(theme::muted),
        );

        let mut channels = column![
            text("Send to").font(theme::BOLD),
            checkbox(f.desktop)
                .label("Desktop notification")
                .on_toggle(Message::Desktop),
            checkbox(f.webhook)
                .label("Signed webhook (JSON, HMAC-SHA256)")
                .on_toggle(Message::UseWebhook),
        ]
        .spacing(theme::XS);
        if f.webhook {
            channels = channels.push(
                row![
                    text_input("https://… (http:// only to localhost)", &f.webhook_url)
                        .id("alert-webhook-url")
                        .on_input(Message::WebhookUrl)
                        .padding(theme::S),
                    text_input(&keep("signing secret, 16+ characters"), &f.webhook_secret)
                        .id("alert-webhook-secret")
                        .secure(true)
                        .on_input(Message::WebhookSecret)
                        .padding(theme::S),
                ]
                .spacing(theme::S),
            );
        }
        channels = channels.push(
            checkbox(f.email)
                .label("E-mail (SMTP)")
                .on_toggle(Message::UseEmail),
        );
        if f.email {
            channels = channels.push(
                column![
                    row![
                        text_input("to: ops@example.com, …", &f.email_to)
                            .id("alert-email-to")
                            .on_input(Message::EmailTo)
                            .padding(theme::S),
                        text_input("from: Backups <backups@example.com>", &f.email_from)
                            .id("alert-email-from")
                            .on_input(Message::EmailFrom)
                            .padding(theme::S),
                    ]
                    .spacing(theme::S),
                    row![
                        text_input("SMTP server", &f.smtp_host)
                            .id("alert-smtp-host")
                            .on_input(Message::SmtpHost)
                            .padding(theme::S),
                        text_input("port", &f.smtp_port)
                            .on_input(Message::SmtpPort)
                            .padding(theme::S)
                            .width(90),
                        pick_list(
                            Security::ALL,
                            Some(Security(f.smtp_security)),
                            Message::SmtpSecurity
                        )
                        .padding(theme::S),
                    ]
                    .spacing(theme::S),
                    row![
                        text_input("SMTP user (optional)", &f.smtp_user)
                            .on_input(Message::SmtpUser)
                            .padding(theme::S),
                        text_input(&keep("SMTP password"), &f.smtp_password)
                            .secure(true)
                            .on_input(Message::SmtpPassword)
                            .padding(theme::S),
                    ]
                    .spacing(theme::S),
                ]
                .spacing(theme::S),
            );
        }
        channels = channels.push(
            checkbox(f.chat)
                .label("Chat: Slack, Discord, Microsoft Teams or Telegram")
                .on_toggle(Message::UseChat),
        );
        if f.chat {
            let services: Vec<Service> = ChatService::ALL.into_iter().map(Service).collect();
            let telegram = f.chat_service == ChatService::Telegram;
            let placeholder = keep(if telegram {
                "bot token from @BotFather"
            } else {
                "incoming-webhook URL (sealed in the vault)"
            });
            let mut chat = row![
                pick_list(
                    services,
                    Some(Service(f.chat_service)),
                    Message::ChatService
                )
                .padding(theme::S),
                text_input(&placeholder, &f.chat_secret)
                    .id("alert-chat-secret")
                    .secure(true)
                    .on_input(Message::ChatSecret)
                    .padding(theme::S),
            ]
            .spacing(theme::S);
            if telegram {
                chat = chat.push(
                    text_input("chat id or @channel", &f.chat_id)
                        .id("alert-chat-id")
                        .on_input(Message::ChatId)
                        .padding(theme::S)
                        .width(200),
                );
            }
            channels = channels.push(chat);
        }

        let mut form = column![
            text(if editing {
                "Edit alert rule"
            } else {
                "New alert rule"
            })
            .font(theme::BOLD),
            row![
                widget::field(
                    "Name",
                    text_input("e.g. Production failures", &f.rule.name)
                        .id("alert-name")
                        .on_input(Message::Name)
                        .padding(theme::S),
                    None,
                    None
                ),
                widget::field(
                    "Projects",
                    pick_list(self.scopes.clone(), Some(f.scope.clone()), Message::Scope)
                        .padding(theme::S)
                        .width(Length::Fixed(240.0)),
                    None,
                    None
                ),
            ]
            .spacing(theme::M),
            row![
                events.width(Length::FillPortion(2)),
                channels.width(Length::FillPortion(3))
            ]
            .spacing(theme::L),
        ]
        .spacing(theme::M);
        if let Some(e) = &self.form_error {
            form = form.push(
                text(e.clone())
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Danger)),
            );
        }
        form = form.push(
            row![
                widget::fill(),
                widget::secondary_button("Cancel", Some(Message::CancelForm)),
                widget::primary_button(
                    if self.saving {
                        "Saving…"
                    } else {
                        "Save rule"
                    },
                    (!self.saving).then_some(Message::Save)
                ),
            ]
            .spacing(theme::S),
        );
        form.into()
    }

    pub fn view(&self) -> Element<'_, Message> {
        let mut list: Column<'_, Message> = column![].spacing(theme::S);
        if self.rules.is_empty() {
            list = list.push(
                text("No alert rules: nothing tells anyone when a backup fails.")
                    .size(theme::SMALL)
                    .style(theme::toned(Tone::Warning)),
            );
        }
        for r in &self.rules {
            list = list.push(self.rule_line(r));
        }
        let mut content = column![
            text("Rules decide which events reach which channels, for the app, the CLI and the daemon alike. Every alert sent, or not, is in the audit log.")
                .size(theme::SMALL)
                .style(theme::muted),
            list,
        ]
        .spacing(theme::M);
        match &self.form {
            Some(f) => content = content.push(self.form_view(f)),
            None => {
                content = content.push(row![
                    widget::fill(),
                    widget::primary_button("New alert rule", Some(Message::New))
                ])
            }
        }
        widget::card("Alerts", content)
    }
}

/// An event with a number: its checkbox and, when ticked, the number's
/// input (placeholder, value, widget id, message).
fn threshold<'a>(
    on: bool,
    label: &'static str,
    toggle: fn(bool) -> Message,
    input: (&'static str, &'a str, &'static str, fn(String) -> Message),
) -> Element<'a, Message> {
    let (placeholder, value, id, on_input) = input;
    let mut r = row![checkbox(on).label(label).on_toggle(toggle)]
        .spacing(theme::S)
        .align_y(Alignment::Center);
    if on {
        r = r.push(
            text_input(placeholder, value)
                .id(id)
                .on_input(on_input)
                .padding(theme::S)
                .width(100),
        );
    }
    r.into()
}
#[cfg(test)]
mod tests {
    use super::*;

    async fn settle(p: &mut Panel, a: Action<Message>, ctx: &Ctx) {
        for m in crate::ui::testing::run(a.task).await {
            let next = p.update(m, ctx);
            Box::pin(settle(p, next, ctx)).await;
        }
    }

    #[tokio::test]
    async fn a_rule_is_created_toggled_tested_edited_and_removed_through_tasks() {
        let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
        let mut p = Panel::default();
        let a = p.update(Message::Load, &ctx);
        settle(&mut p, a, &ctx).await;
        assert!(p.rules.is_empty());
        assert_eq!(p.scopes.len(), 1, "All projects");
        let _ = p.update(Message::New, &ctx);
        // No event: refused before any task.
        let _ = p.update(Message::Event(Event::BackupFailure, false), &ctx);
        let a = p.update(Message::Save, &ctx);
        assert!(!a.has_task());
        assert_eq!(p.form_error.as_deref(), Some("choose at least one event"));
        let _ = p.update(Message::Event(Event::RestoreFailure, true), &ctx);
        let _ = p.update(Message::Event(Event::Unreachable, true), &ctx);
        // Size growth: a percentage.
        let _ = p.update(Message::Growth(true), &ctx);
        let _ = p.update(Message::GrowthPercent("lots".into()), &ctx);
        let a = p.update(Message::Save, &ctx);
        assert!(!a.has_task());
        assert!(
            p.form_error
                .as_deref()
                .is_some_and(|e| e.contains("percentage")),
            "{:?}",
            p.form_error
        );
        let _ = p.update(Message::GrowthPercent("25%".into()), &ctx);
        let _ = p.update(Message::Name("Restores".into()), &ctx);
        // A webhook without its secret: the engine says so, the form stays.
        let _ = p.update(Message::UseWebhook(true), &ctx);
        let _ = p.update(Message::WebhookUrl("http://127.0.0.1:9/hook".into()), &ctx);
        let a = p.update(Message::Save, &ctx);
        settle(&mut p, a, &ctx).await;
        assert!(
            p.form_error
                .as_deref()
                .is_some_and(|e| e.contains("signing secret")),
            "{:?}",
            p.form_error
        );
        assert!(p.form.is_some());
        let _ = p.update(Message::UseWebhook(false), &ctx);
        let a = p.update(Message::Save, &ctx);
        settle(&mut p, a, &ctx).await;
        assert!(p.form.is_none(), "{:?}", p.form_error);
        let saved = ctx.engine.alert_rules().await.expect("rules");
        assert_eq!(saved.len(), 1);
        assert!(saved[0].on_restore_failure && !saved[0].on_failure);
        assert!(saved[0].on_unreachable && !saved[0].on_pg_dump_missing);
        assert_eq!(saved[0].size_growth_percent, Some(25));
        assert_eq!(saved[0].channels, vec![Channel::Desktop]);
        let id = saved[0].id.clone();

        let a = p.update(Message::Toggle(id.clone(), false), &ctx);
        settle(&mut p, a, &ctx).await;
        assert!(!ctx.engine.alert_rules().await.expect("rules")[0].enabled);
        assert!(!p.rules[0].enabled);

        let a = p.update(Message::Test(id.clone()), &ctx);
        settle(&mut p, a, &ctx).await;
        assert!(
            matches!(p.test_result(&id), Some(Ok(o)) if o.len() == 1 && o[0].ok),
            "{:?}",
            p.tests
        );

        let _ = p.update(Message::Edit(id.clone()), &ctx);
        assert_eq!(
            p.form.as_ref().map(|f| f.rule.name.as_str()),
            Some("Restores")
        );
        let _ = p.update(Message::Stale(true), &ctx);
        let _ = p.update(Message::StaleHours("12".into()), &ctx);
        let a = p.update(Message::Save, &ctx);
        settle(&mut p, a, &ctx).await;
        let rules = ctx.engine.alert_rules().await.expect("rules");
        assert_eq!(rules.len(), 1, "edited in place");
        assert_eq!(rules[0].stale_after_hours, Some(12));

        let _ = p.update(Message::Remove(id.clone()), &ctx);
        let a = p.update(Message::ConfirmRemove, &ctx);
        settle(&mut p, a, &ctx).await;
        assert!(p.rules.is_empty());
        assert!(ctx.engine.alert_rules().await.expect("rules").is_empty());
    }
}
