//! Alert rules: their shape, validation, storage (JSON in `settings`) and
//! matching. Rules never hold a secret: the webhook signing secret and the
//! SMTP password of a scope (global, or one project) are sealed in the vault.

use lettre::message::Mailbox;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{Alert, AlertKind};
use crate::engine::catalog::{new_id, projects, settings};
use crate::engine::crypto::{Key, Secret};
use crate::engine::error::{Error, Result};
use crate::engine::vault::{self, SecretKind};

/// The `settings` key the rules are stored under.
pub const SETTINGS_KEY: &str = "alerts.rules";
/// The longest stale threshold: a year.
pub const MAX_STALE_HOURS: u32 = 24 * 366;
/// The shortest webhook signing secret accepted.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;
const MAX_RECIPIENTS: usize = 50;

/// When to alert, and through which channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Empty for a rule not saved yet.
    #[serde(default)]
    pub id: String,
    /// An optional label.
    #[serde(default)]
    pub name: String,
    /// The project the rule watches; `None` = every project.
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default)]
    pub on_failure: bool,
    #[serde(default)]
    pub on_success: bool,
    /// Alert when the newest successful backup is older than this.
    #[serde(default)]
    pub stale_after_hours: Option<u32>,
    #[serde(default)]
    pub on_verification_failure: bool,
    /// A restore or a rollback that failed (`restore.failed`,
    /// `rollback.failed`).
    #[serde(default)]
    pub on_restore_failure: bool,
    /// A restore or a rollback that completed.
    #[serde(default)]
    pub on_restore_success: bool,
    /// A retention sweep (or the repository clean-up after it) that failed.
    #[serde(default)]
    pub on_prune_failure: bool,
    /// A scheduled run missed by more than the catch-up grace (the machine
    /// was off or asleep) and therefore skipped.
    #[serde(default)]
    pub on_missed_schedule: bool,
    /// A health probe found the project unreachable (`health.unreachable`).
    #[serde(default)]
    pub on_unreachable: bool,
    /// No pg_dump can dump the server (`health.pg_dump_missing`).
    #[serde(default)]
    pub on_pg_dump_missing: bool,
    /// The database grew by at least this many percent within a day
    /// (`health.size_grew`).
    #[serde(default)]
    pub size_growth_percent: Option<u32>,
    #[serde(default)]
    pub channels: Vec<Channel>,
}

fn enabled_default() -> bool {
    true
}

impl Default for AlertRule {
    fn default() -> Self {
        AlertRule {
            id: String::new(),
            name: String::new(),
            project_id: None,
            enabled: true,
            on_failure: false,
            on_success: false,
            stale_after_hours: None,
            on_verification_failure: false,
            on_restore_failure: false,
            on_restore_success: false,
            on_prune_failure: false,
            on_missed_schedule: false,
            on_unreachable: false,
            on_pg_dump_missing: false,
            size_growth_percent: None,
            channels: Vec::new(),
        }
    }
}

impl AlertRule {
    /// Whether this rule wants `alert` (test alerts match no rule: they are
    /// sent to one rule explicitly).
    pub fn matches(&self, alert: &Alert) -> bool {
        if !self.enabled {
            return false;
        }
        if let Some(p) = &self.project_id
            && alert.project_id.as_deref() != Some(p.as_str())
        {
            return false;
        }
        match alert.event {
            AlertKind::BackupFailed => self.on_failure,
            AlertKind::BackupSucceeded => self.on_success,
            AlertKind::VerificationFailed => self.on_verification_failure,
            AlertKind::RestoreFailed | AlertKind::RollbackFailed => self.on_restore_failure,
            AlertKind::RestoreSucceeded | AlertKind::RollbackSucceeded => self.on_restore_success,
            AlertKind::PruneFailed => self.on_prune_failure,
            AlertKind::ScheduleMissed => self.on_missed_schedule,
            AlertKind::HealthUnreachable => self.on_unreachable,
            AlertKind::HealthPgDumpMissing => self.on_pg_dump_missing,
            AlertKind::HealthSizeGrew => match (
                self.size_growth_percent,
                alert.details.get("growth_percent").and_then(|v| v.as_f64()),
            ) {
                (Some(limit), Some(grew)) => grew >= f64::from(limit),
                _ => false,
            },
            AlertKind::BackupStale => match (self.stale_after_hours, alert.age_hours()) {
                (Some(limit), Some(age)) => age >= u64::from(limit),
                _ => false,
            },
            AlertKind::Test => false,
        }
    }

    /// Its name, or a short description.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            return format!("\"{}\"", self.name);
        }
        let mut on = Vec::new();
        if self.on_failure {
            on.push("failure".to_owned());
        }
        if self.on_success {
            on.push("success".to_owned());
        }
        if self.on_verification_failure {
            on.push("verification failure".to_owned());
        }
        if self.on_restore_failure {
            on.push("restore failure".to_owned());
        }
        if self.on_restore_success {
            on.push("restore success".to_owned());
        }
        if self.on_prune_failure {
            on.push("prune failure".to_owned());
        }
        if self.on_missed_schedule {
            on.push("missed schedule".to_owned());
        }
        if let Some(h) = self.stale_after_hours {
            on.push(format!("no backup for {h} h"));
        }
        if self.on_unreachable {
            on.push("unreachable".to_owned());
        }
        if self.on_pg_dump_missing {
            on.push("pg_dump missing".to_owned());
        }
        if let Some(p) = self.size_growth_percent {
            on.push(format!("growth over {p}% a day"));
        }
        format!("on {}", on.join(", "))
    }

    /// Whether any event is chosen.
    pub fn has_event(&self) -> bool {
        self.on_failure
            || self.on_success
            || self.on_verification_failure
            || self.on_restore_failure
            || self.on_restore_success
            || self.on_prune_failure
            || self.on_missed_schedule
            || self.stale_after_hours.is_some()
            || self.on_unreachable
            || self.on_pg_dump_missing
            || self.size_growth_percent.is_some()
    }

    /// The chat services among its channels.
    pub fn chat_services(&self) -> Vec<ChatService> {
        let mut out: Vec<ChatService> = Vec::new();
        for c in &self.channels {
            if let Channel::Chat(chat) = c
                && !out.contains(&chat.service)
            {
                out.push(chat.service);
            }
        }
        out
    }

    fn needs_webhook_secret(&self) -> bool {
        self.channels
            .iter()
            .any(|c| matches!(c, Channel::Webhook { .. }))
    }

    fn needs_smtp_password(&self) -> bool {
        self.channels
            .iter()
            .any(|c| matches!(c, Channel::Email(e) if e.username.is_some()))
    }
}

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Channel {
    /// A notification on this computer's desktop.
    Desktop,
    /// An HTTPS POST of the alert as JSON, signed with the scope's secret.
    Webhook { url: String },
    /// An e-mail over SMTP.
    Email(EmailChannel),
    /// A message in a chat service's own format (its incoming-webhook URL,
    /// or Telegram's bot token, sealed in the vault).
    Chat(ChatChannel),
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Desktop => "desktop",
            Channel::Webhook { .. } => "webhook",
            Channel::Email(_) => "email",
            Channel::Chat(c) => c.service.as_str(),
        }
    }

    /// The URL, the recipients or the chat; empty for the desktop. Never a
    /// secret (a chat's webhook URL is one: it is not shown).
    pub fn target(&self) -> String {
        match self {
            Channel::Desktop => String::new(),
            Channel::Webhook { url } => url.clone(),
            Channel::Email(e) => e.to.join(", "),
            Channel::Chat(c) => match (&c.chat_id, c.service) {
                (Some(id), _) => format!("{} chat {id}", c.service.label()),
                (None, s) => format!("{} incoming webhook", s.label()),
            },
        }
    }
}

/// A chat service with incoming webhooks (or, for Telegram, a bot API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatService {
    Slack,
    Discord,
    Teams,
    Telegram,
}

impl ChatService {
    pub const ALL: [ChatService; 4] = [
        ChatService::Slack,
        ChatService::Discord,
        ChatService::Teams,
        ChatService::Telegram,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChatService::Slack => "slack",
            ChatService::Discord => "discord",
            ChatService::Teams => "teams",
            ChatService::Telegram => "telegram",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ChatService::Slack => "Slack",
            ChatService::Discord => "Discord",
            ChatService::Teams => "Microsoft Teams",
            ChatService::Telegram => "Telegram",
        }
    }

    pub fn parse(s: &str) -> Result<ChatService> {
        ChatService::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown chat service '{s}'; use slack, discord, teams or telegram"
                ))
            })
    }

    /// The vault entry its secret is sealed under (one per scope).
    pub fn secret_kind(self) -> SecretKind {
        match self {
            ChatService::Slack => SecretKind::SlackWebhook,
            ChatService::Discord => SecretKind::DiscordWebhook,
            ChatService::Teams => SecretKind::TeamsWebhook,
            ChatService::Telegram => SecretKind::TelegramBotToken,
        }
    }

    /// What its secret is, for prompts and errors.
    pub fn secret_name(self) -> &'static str {
        match self {
            ChatService::Telegram => "Telegram bot token",
            ChatService::Slack => "Slack incoming-webhook URL",
            ChatService::Discord => "Discord webhook URL",
            ChatService::Teams => "Teams incoming-webhook (Workflows) URL",
        }
    }

    /// Checks the secret's shape (a URL, or a bot token) before it is sealed.
    pub fn check_secret(self, secret: &Secret) -> Result<()> {
        let s = secret.expose().trim();
        match self {
            ChatService::Telegram => {
                let ok = s.split_once(':').is_some_and(|(id, rest)| {
                    !id.is_empty()
                        && id.bytes().all(|b| b.is_ascii_digit())
                        && rest.len() >= 20
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
                if ok {
                    Ok(())
                } else {
                    Err(Error::invalid("the Telegram bot token is not valid")
                        .with_hint("it looks like 123456789:AA…, as @BotFather gave it"))
                }
            }
            _ => check_webhook_url(s).map(|_| ()).map_err(|e| {
                // The URL is the secret: say what is wrong without it.
                Error::invalid(format!(
                    "the {} is not valid: {}",
                    self.secret_name(),
                    e.message.split(": ").next().unwrap_or("not a URL")
                ))
                .with_hint("paste the URL the service showed when the webhook was created")
            }),
        }
    }
}

/// A chat channel. Its secret (webhook URL or bot token) is in the vault,
/// one per service and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatChannel {
    pub service: ChatService,
    /// Telegram: the chat to post to (a number, or @channelname).
    #[serde(default)]
    pub chat_id: Option<String>,
    /// Telegram: the bot API's address (default `https://api.telegram.org`;
    /// another one for a local Bot API server).
    #[serde(default)]
    pub api_base: Option<String>,
}

/// Telegram's public Bot API.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// An SMTP server and the message's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChannel {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub security: SmtpSecurity,
    /// Log in with this user name and the scope's sealed SMTP password.
    #[serde(default)]
    pub username: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmtpSecurity {
    /// TLS from the first byte (usually port 465).
    #[serde(rename = "tls")]
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required (usually 587).
    #[serde(rename = "starttls")]
    StartTls,
    /// No encryption: only for a relay on this machine (localhost).
    #[serde(rename = "none")]
    None,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::None => "none",
        }
    }

    /// The usual port for this kind of connection.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::None => 25,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    rules: Vec<AlertRule>,
}

fn load_all(conn: &Connection) -> Result<Vec<AlertRule>> {
    Ok(settings::get::<Stored>(conn, SETTINGS_KEY)?
        .map(|s| s.rules)
        .unwrap_or_default())
}

fn store_all(conn: &Connection, rules: Vec<AlertRule>) -> Result<()> {
    settings::set(conn, SETTINGS_KEY, &Stored { version: 1, rules })
}

/// The rules, global ones first, without those of removed projects.
pub fn list(conn: &Connection) -> Result<Vec<AlertRule>> {
    let mut out = Vec::new();
    for rule in load_all(conn)? {
        if let Some(pid) = &rule.project_id
            && projects::get_by_id(conn, pid)?.is_none()
        {
            continue;
        }
        out.push(rule);
    }
    out.sort_by_key(|r| r.project_id.is_some());
    Ok(out)
}

/// One rule by id.
pub fn get(conn: &Connection, id: &str) -> Result<AlertRule> {
    list(conn)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Error::not_found(format!("there is no alert rule with id {id}")))
}

pub(crate) struct Saved {
    pub rule: AlertRule,
    pub webhook_secret_changed: bool,
    pub smtp_password_changed: bool,
    pub chat_secrets_changed: Vec<ChatService>,
}

/// The secrets a rule's channels need, given when it is saved (each
/// replaces the one stored for the rule's scope; `None` keeps it).
#[derive(Debug, Default)]
pub struct RuleSecrets {
    pub webhook: Option<Secret>,
    pub smtp: Option<Secret>,
    /// Per chat service: the incoming-webhook URL, or Telegram's bot token.
    pub chat: Vec<(ChatService, Secret)>,
}

fn has_secret(conn: &Connection, owner: Option<&str>, kind: SecretKind) -> Result<bool> {
    vault::has_secret(conn, owner, kind)
}

/// Validates and stores `rule` (a new id when empty), sealing the secrets
/// given; inside the caller's transaction.
pub(crate) fn save(
    conn: &Connection,
    rule: AlertRule,
    key: Option<&Key>,
    secrets: &RuleSecrets,
) -> Result<Saved> {
    save_checked(conn, rule, key, secrets, true)
}

/// The channel secrets `rule` needs that are neither in `secrets` nor
/// stored for its scope (its project as an id, or global).
pub(crate) fn missing_secrets(
    conn: &Connection,
    rule: &AlertRule,
    secrets: &RuleSecrets,
) -> Result<Vec<&'static str>> {
    let owner = rule.project_id.as_deref();
    let mut out = Vec::new();
    if rule.needs_webhook_secret()
        && secrets.webhook.is_none()
        && !has_secret(conn, owner, SecretKind::WebhookSecret)?
    {
        out.push("webhook signing secret");
    }
    if rule.needs_smtp_password()
        && secrets.smtp.is_none()
        && !has_secret(conn, owner, SecretKind::SmtpPassword)?
    {
        out.push("SMTP password");
    }
    for service in rule.chat_services() {
        if !secrets.chat.iter().any(|(s, _)| *s == service)
            && !has_secret(conn, owner, service.secret_kind())?
        {
            out.push(service.secret_name());
        }
    }
    Ok(out)
}

/// Stores a rule brought from another machine without the secrets its
/// channels need (an export without secrets): it is saved disabled, and
/// saving it again with the secrets, enabled, checks them as usual.
pub(crate) fn save_disabled_without_secrets(
    conn: &Connection,
    rule: AlertRule,
    key: Option<&Key>,
    secrets: &RuleSecrets,
) -> Result<Saved> {
    let rule = AlertRule {
        enabled: false,
        ..rule
    };
    save_checked(conn, rule, key, secrets, false)
}

fn save_checked(
    conn: &Connection,
    rule: AlertRule,
    key: Option<&Key>,
    secrets: &RuleSecrets,
    require_secrets: bool,
) -> Result<Saved> {
    let webhook_secret = secrets.webhook.as_ref();
    let smtp_password = secrets.smtp.as_ref();
    let mut rule = validate(conn, rule)?;
    let mut all = load_all(conn)?;
    let previous = if rule.id.is_empty() {
        rule.id = new_id();
        None
    } else {
        let i = all.iter().position(|r| r.id == rule.id).ok_or_else(|| {
            Error::not_found(format!("there is no alert rule with id {}", rule.id))
        })?;
        Some(all.remove(i))
    };
    let owner = rule.project_id.clone();
    let mut webhook_secret_changed = false;
    let mut smtp_password_changed = false;
    if rule.needs_webhook_secret() {
        match webhook_secret {
            Some(s) => {
                if s.expose().chars().count() < MIN_WEBHOOK_SECRET_LEN {
                    return Err(Error::invalid(format!(
                        "the webhook signing secret must have at least {MIN_WEBHOOK_SECRET_LEN} characters"
                    )));
                }
                let key = key.ok_or_else(|| Error::auth("the vault is locked"))?;
                vault::put_secret(conn, key, owner.as_deref(), SecretKind::WebhookSecret, s)?;
                webhook_secret_changed = true;
            }
            None if require_secrets
                && !has_secret(conn, owner.as_deref(), SecretKind::WebhookSecret)? =>
            {
                return Err(Error::invalid("a webhook needs a signing secret")
                    .with_hint("give the secret the receiver will check the X-Supabackup-Signature header with"));
            }
            None => {}
        }
    }
    if rule.needs_smtp_password() {
        match smtp_password {
            Some(s) => {
                let key = key.ok_or_else(|| Error::auth("the vault is locked"))?;
                vault::put_secret(conn, key, owner.as_deref(), SecretKind::SmtpPassword, s)?;
                smtp_password_changed = true;
            }
            None if require_secrets
                && !has_secret(conn, owner.as_deref(), SecretKind::SmtpPassword)? =>
            {
                return Err(Error::invalid("the SMTP user name needs a password")
                    .with_hint("give the SMTP password, or leave the user name empty for a server that needs no login"));
            }
            None => {}
        }
    }
    let mut chat_secrets_changed = Vec::new();
    for (service, given) in &secrets.chat {
        if !rule.chat_services().contains(service) {
            return Err(Error::invalid(format!(
                "a {} was given, but the rule has no {} channel",
                service.secret_name(),
                service.label()
            )));
        }
        service.check_secret(given)?;
    }
    for service in rule.chat_services() {
        match secrets.chat.iter().find(|(s, _)| *s == service) {
            Some((_, given)) => {
                let key = key.ok_or_else(|| Error::auth("the vault is locked"))?;
                let value = Secret::new(given.expose().trim().to_owned());
                vault::put_secret(conn, key, owner.as_deref(), service.secret_kind(), &value)?;
                chat_secrets_changed.push(service);
            }
            None if require_secrets
                && !has_secret(conn, owner.as_deref(), service.secret_kind())? =>
            {
                return Err(Error::invalid(format!(
                    "a {} channel needs its {}",
                    service.label(),
                    service.secret_name()
                ))
                .with_hint("it is sealed in the vault, never stored in the rule"));
            }
            None => {}
        }
    }
    all.push(rule.clone());
    let mut scopes = vec![owner];
    if let Some(prev) = previous {
        scopes.push(prev.project_id);
    }
    prune_secrets(conn, &all, &scopes)?;
    store_all(conn, all)?;
    Ok(Saved {
        rule,
        webhook_secret_changed,
        smtp_password_changed,
        chat_secrets_changed,
    })
}

/// Removes a rule; returns it.
pub(crate) fn remove(conn: &Connection, id: &str) -> Result<AlertRule> {
    let mut all = load_all(conn)?;
    let i = all
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| Error::not_found(format!("there is no alert rule with id {id}")))?;
    let removed = all.remove(i);
    prune_secrets(conn, &all, std::slice::from_ref(&removed.project_id))?;
    store_all(conn, all)?;
    Ok(removed)
}

/// Deletes the alert secrets of `scopes` that no rule in `all` needs.
fn prune_secrets(conn: &Connection, all: &[AlertRule], scopes: &[Option<String>]) -> Result<()> {
    for scope in scopes {
        let in_scope = || all.iter().filter(|r| r.project_id == *scope);
        if !in_scope().any(AlertRule::needs_webhook_secret) {
            vault::delete_secret(conn, scope.as_deref(), SecretKind::WebhookSecret)?;
        }
        if !in_scope().any(AlertRule::needs_smtp_password) {
            vault::delete_secret(conn, scope.as_deref(), SecretKind::SmtpPassword)?;
        }
        for service in ChatService::ALL {
            if !in_scope().any(|r| r.chat_services().contains(&service)) {
                vault::delete_secret(conn, scope.as_deref(), service.secret_kind())?;
            }
        }
    }
    Ok(())
}

/// Checks a rule and puts it in canonical form (project as id, trimmed
/// fields, no duplicate channel).
pub fn validate(conn: &Connection, rule: AlertRule) -> Result<AlertRule> {
    let mut rule = rule;
    rule.name = rule.name.trim().to_owned();
    if rule.name.chars().count() > 100 {
        return Err(Error::invalid(
            "the rule's name must have at most 100 characters",
        ));
    }
    rule.project_id = match rule.project_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(key) => Some(projects::find(conn, key)?.id),
    };
    if let Some(h) = rule.stale_after_hours
        && !(1..=MAX_STALE_HOURS).contains(&h)
    {
        return Err(Error::invalid(format!(
            "the stale threshold must be between 1 and {MAX_STALE_HOURS} hours"
        )));
    }
    if let Some(p) = rule.size_growth_percent
        && !(1..=10_000).contains(&p)
    {
        return Err(Error::invalid(
            "the size-growth threshold must be between 1 and 10000 percent",
        ));
    }
    if !rule.has_event() {
        return Err(
            Error::invalid("an alert rule needs at least one event").with_hint(
                "choose backup failure or success, verification failure, restore failure or success, prune failure, missed schedule, unreachable, pg_dump missing, a size-growth percentage, or a stale threshold",
            ),
        );
    }
    let mut channels: Vec<Channel> = Vec::new();
    for c in rule.channels {
        let c = validate_channel(c)?;
        if !channels.contains(&c) {
            channels.push(c);
        }
    }
    if channels.is_empty() {
        return Err(Error::invalid("an alert rule needs at least one channel")
            .with_hint("add a desktop notification, a webhook or an e-mail"));
    }
    rule.channels = channels;
    Ok(rule)
}

fn validate_channel(c: Channel) -> Result<Channel> {
    Ok(match c {
        Channel::Desktop => Channel::Desktop,
        Channel::Webhook { url } => Channel::Webhook {
            url: check_webhook_url(&url)?,
        },
        Channel::Email(e) => Channel::Email(check_email(e)?),
        Channel::Chat(c) => Channel::Chat(check_chat(c)?),
    })
}

fn check_chat(c: ChatChannel) -> Result<ChatChannel> {
    let chat_id = c
        .chat_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let api_base = c
        .api_base
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty());
    match c.service {
        ChatService::Telegram => {
            let Some(id) = &chat_id else {
                return Err(Error::invalid("a Telegram channel needs a chat id")
                    .with_hint("the numeric id of the chat or group (e.g. -1001234567890), or @channelname"));
            };
            let digits = id.strip_prefix('-').unwrap_or(id);
            let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            let named = id.len() > 1
                && id.starts_with('@')
                && id[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !numeric && !named {
                return Err(Error::invalid(format!(
                    "the Telegram chat id '{id}' is not a number or an @channelname"
                )));
            }
            let api_base = match api_base {
                Some(b) => Some(check_webhook_url(&b)?.trim_end_matches('/').to_owned()),
                None => None,
            };
            Ok(ChatChannel {
                service: c.service,
                chat_id,
                api_base,
            })
        }
        _ => {
            if chat_id.is_some() || api_base.is_some() {
                return Err(Error::invalid(format!(
                    "a {} channel takes only its webhook URL (chat id and API address are for Telegram)",
                    c.service.label()
                )));
            }
            Ok(ChatChannel {
                service: c.service,
                chat_id: None,
                api_base: None,
            })
        }
    }
}

fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h == "127.0.0.1" || h == "::1"
}

/// A webhook URL: `https://`, or `http://` to this machine only; no user
/// name or password in it.
pub fn check_webhook_url(raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::invalid("the webhook URL is empty"));
    }
    if raw.len() > 2048 {
        return Err(Error::invalid(
            "the webhook URL is too long (over 2048 characters)",
        ));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| Error::invalid(format!("the webhook URL is not valid: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            Error::invalid("the webhook URL must not contain a user name or password")
                .with_hint("the receiver checks the X-Supabackup-Signature header instead"),
        );
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(Error::invalid("the webhook URL has no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_local_host(host) => {}
        _ => {
            return Err(Error::invalid(format!(
                "webhooks must use https:// (http:// only to localhost), not {}://{host}",
                url.scheme()
            )));
        }
    }
    Ok(url.to_string())
}

fn check_mailbox(what: &str, raw: &str) -> Result<String> {
    let raw = raw.trim();
    raw.parse::<Mailbox>()
        .map_err(|e| Error::invalid(format!("the {what} address '{raw}' is not valid: {e}")))?;
    Ok(raw.to_owned())
}

fn check_email(e: EmailChannel) -> Result<EmailChannel> {
    let host = e.smtp_host.trim().to_owned();
    if host.is_empty() {
        return Err(Error::invalid("the SMTP server is empty"));
    }
    if host.len() > 253
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(Error::invalid(format!(
            "the SMTP server '{host}' is not a host name"
        )));
    }
    if e.smtp_port == 0 {
        return Err(Error::invalid("the SMTP port must be between 1 and 65535"));
    }
    if e.security == SmtpSecurity::None && !is_local_host(&host) {
        return Err(Error::invalid(format!(
            "e-mail to {host} must use TLS or STARTTLS (no encryption only for localhost)"
        )));
    }
    let username = e
        .username
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    let from = check_mailbox("sender", &e.from)?;
    let mut to = Vec::new();
    for r in &e.to {
        if r.trim().is_empty() {
            continue;
        }
        let r = check_mailbox("recipient", r)?;
        if !to.contains(&r) {
            to.push(r);
        }
    }
    if to.is_empty() {
        return Err(Error::invalid(
            "an e-mail alert needs at least one recipient",
        ));
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(Error::invalid(format!(
            "an e-mail alert has at most {MAX_RECIPIENTS} recipients"
        )));
    }
    Ok(EmailChannel {
        smtp_host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        smtp_port: e.smtp_port,
        security: e.security,
        username,
        from,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::catalog::Catalog;

    fn email(host: &str, security: SmtpSecurity) -> EmailChannel {
        EmailChannel {
            smtp_host: host.into(),
            smtp_port: 587,
            security,
            username: None,
            from: "Backups <backups@example.com>".into(),
            to: vec!["ops@example.com".into(), " ".into()],
        }
    }

    #[test]
    fn webhook_urls() {
        assert!(check_webhook_url("https://hooks.example.com/x?y=1").is_ok());
        assert!(check_webhook_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_webhook_url("http://localhost/hook").is_ok());
        assert!(check_webhook_url("http://[::1]:9/hook").is_ok());
        let e = check_webhook_url("http://hooks.example.com/x").expect_err("plain http");
        assert!(e.message.contains("https://"), "{e}");
        assert!(check_webhook_url("ftp://example.com/").is_err());
        assert!(check_webhook_url("https://user:pw@example.com/").is_err());
        assert!(check_webhook_url("not a url").is_err());
        assert!(check_webhook_url("").is_err());
    }

    #[test]
    fn email_channels() {
        let ok = check_email(email("smtp.example.com", SmtpSecurity::StartTls)).expect("ok");
        assert_eq!(ok.to, vec!["ops@example.com".to_owned()]);
        assert!(check_email(email("127.0.0.1", SmtpSecurity::None)).is_ok());
        let e = check_email(email("smtp.example.com", SmtpSecurity::None)).expect_err("plain");
        assert!(e.message.contains("TLS"), "{e}");
        let mut bad = email("smtp.example.com", SmtpSecurity::Tls);
        bad.from = "not an address".into();
        assert!(check_email(bad).is_err());
        let mut none = email("smtp.example.com", SmtpSecurity::Tls);
        none.to = vec![];
        assert!(check_email(none).is_err());
    }

    #[test]
    fn rules_need_an_event_and_a_channel() {
        let cat = Catalog::open_in_memory().expect("catalog");
        cat.with(|c| {
            let no_event = AlertRule {
                channels: vec![Channel::Desktop],
                ..AlertRule::default()
            };
            assert!(validate(c, no_event).is_err());
            let no_channel = AlertRule {
                on_failure: true,
                ..AlertRule::default()
            };
            assert!(validate(c, no_channel).is_err());
            let zero = AlertRule {
                stale_after_hours: Some(0),
                channels: vec![Channel::Desktop],
                ..AlertRule::default()
            };
            assert!(validate(c, zero).is_err());
            let dup = AlertRule {
                on_failure: true,
                channels: vec![Channel::Desktop, Channel::Desktop],
                ..AlertRule::default()
            };
            assert_eq!(validate(c, dup)?.channels.len(), 1);
            Ok(())
        })
        .expect("flow");
    }

    #[test]
    fn chat_channels_and_their_secrets() {
        let tg = |id: &str| ChatChannel {
            service: ChatService::Telegram,
            chat_id: Some(id.into()),
            api_base: None,
        };
        assert!(check_chat(tg("-1001234567890")).is_ok());
        assert!(check_chat(tg("42")).is_ok());
        assert!(check_chat(tg("@ops_alerts")).is_ok());
        for bad in ["-", "@", "12a", "@with space", " "] {
            assert!(check_chat(tg(bad)).is_err(), "{bad:?}");
        }
        let slack_with_id = ChatChannel {
            service: ChatService::Slack,
            chat_id: Some("1".into()),
            api_base: None,
        };
        assert!(check_chat(slack_with_id).is_err());
        let tok = |s: &str| ChatService::Telegram.check_secret(&Secret::new(s));
        assert!(tok("123456789:AAEhBP0av28xNbRgR1SsKQk2rC7ZU-dAbc").is_ok());
        assert!(tok("123456789").is_err());
        assert!(tok("abc:AAEhBP0av28xNbRgR1SsKQk2rC7ZU-dAbc").is_err());
        let url = |s: &str| ChatService::Slack.check_secret(&Secret::new(s));
        assert!(url("https://hooks.slack.com/services/T0/B0/xyz").is_ok());
        let e = url("http://hooks.slack.com/services/T0/B0/TOPSECRET").expect_err("plain http");
        assert!(!e.message.contains("TOPSECRET"), "{e}");
        assert!(url("not a url").is_err());
        assert_eq!(ChatService::parse("Teams").ok(), Some(ChatService::Teams));
        assert!(ChatService::parse("irc").is_err());
    }

    #[test]
    fn rule_json_round_trip() {
        let rule = AlertRule {
            id: "r1".into(),
            on_failure: true,
            channels: vec![
                Channel::Desktop,
                Channel::Webhook {
                    url: "https://x.example/h".into(),
                },
                Channel::Email(email("smtp.example.com", SmtpSecurity::StartTls)),
            ],
            ..AlertRule::default()
        };
        let text = serde_json::to_string(&rule).expect("json");
        assert!(text.contains(r#""type":"email""#), "{text}");
        assert!(text.contains(r#""security":"starttls""#), "{text}");
        let back: AlertRule = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, rule);
    }
}
