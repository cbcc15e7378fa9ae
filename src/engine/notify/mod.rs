//! Alerts: rules that say which events (a failed or successful backup, a
//! failed verification, no recent backup) go to which channels (a desktop
//! notification, a signed HTTPS webhook, an e-mail over SMTP).
//!
//! Rules are kept as JSON in the catalog's `settings` (key
//! [`rules::SETTINGS_KEY`]); they hold no secret. The webhook signing secret
//! and the SMTP password are sealed in the vault, one of each per scope (the
//! global scope, or a project). Delivering an alert never fails the caller:
//! every channel reports a [`DeliveryOutcome`], failures are logged and an
//! `alert` analytics event records what happened. See `docs/ALERTS.md`.

pub mod chat;
pub mod desktop;
pub mod email;
pub mod rules;
mod stale;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::api::Engine;
use crate::engine::catalog::backups::BackupRecord;
use crate::engine::catalog::{analytics, audit, now, settings};
use crate::engine::crypto::Secret;
use crate::engine::error::Result;
use crate::engine::vault::{self, SecretKind};

pub use desktop::{DesktopNotifier, RecordingNotifier, SystemNotifier};
pub use rules::{
    AlertRule, Channel, ChatChannel, ChatService, EmailChannel, RuleSecrets, SmtpSecurity,
};
pub use stale::threshold as stale_threshold;
pub use webhook::RetryPolicy;

/// The stale threshold where no alert rule sets one (the dashboard's).
pub const DEFAULT_STALE_HOURS: u32 = 48;

/// What an alert is about. Serialized as the payload's `event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    #[serde(rename = "backup.failed")]
    BackupFailed,
    #[serde(rename = "backup.succeeded")]
    BackupSucceeded,
    /// No successful backup for longer than a rule's threshold.
    #[serde(rename = "backup.stale")]
    BackupStale,
    #[serde(rename = "verification.failed")]
    VerificationFailed,
    #[serde(rename = "restore.failed")]
    RestoreFailed,
    #[serde(rename = "restore.succeeded")]
    RestoreSucceeded,
    #[serde(rename = "rollback.failed")]
    RollbackFailed,
    #[serde(rename = "rollback.succeeded")]
    RollbackSucceeded,
    /// A retention sweep, or the repository clean-up after it, failed.
    #[serde(rename = "prune.failed")]
    PruneFailed,
    /// A scheduled run came too late to catch up and was skipped.
    #[serde(rename = "schedule.missed")]
    ScheduleMissed,
    /// A health probe found the project's server not answering (once per
    /// outage).
    #[serde(rename = "health.unreachable")]
    HealthUnreachable,
    /// The database grew by more than a rule's percentage within a day.
    #[serde(rename = "health.size_grew")]
    HealthSizeGrew,
    /// No pg_dump on this machine can dump the server's major version.
    #[serde(rename = "health.pg_dump_missing")]
    HealthPgDumpMissing,
    /// Sent by "send test alert"; matches no rule by itself.
    #[serde(rename = "test")]
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BackupFailed => "backup.failed",
            AlertKind::BackupSucceeded => "backup.succeeded",
            AlertKind::BackupStale => "backup.stale",
            AlertKind::VerificationFailed => "verification.failed",
            AlertKind::RestoreFailed => "restore.failed",
            AlertKind::RestoreSucceeded => "restore.succeeded",
            AlertKind::RollbackFailed => "rollback.failed",
            AlertKind::RollbackSucceeded => "rollback.succeeded",
            AlertKind::PruneFailed => "prune.failed",
            AlertKind::ScheduleMissed => "schedule.missed",
            AlertKind::HealthUnreachable => "health.unreachable",
            AlertKind::HealthSizeGrew => "health.size_grew",
            AlertKind::HealthPgDumpMissing => "health.pg_dump_missing",
            AlertKind::Test => "test",
        }
    }
}

/// What a finished restore or rollback alert says about it.
#[derive(Debug, Clone)]
pub struct RestoreOutcome<'a> {
    /// A rollback rather than a restore.
    pub rollback: bool,
    /// The target project's id and name, when the target is a project.
    pub project_id: Option<&'a str>,
    pub project: Option<&'a str>,
    /// How the target is shown (a project's name or a redacted URL).
    pub target: &'a str,
    pub backup_id: &'a str,
    /// The restore's id, when it got one.
    pub restore_id: Option<&'a str>,
    /// `None` when it completed.
    pub error: Option<&'a str>,
    /// `completed`, `failed (partly applied)`…
    pub status: &'a str,
}

/// One alert. Its JSON form is the webhook payload (documented in
/// `docs/ALERTS.md`); it never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub event: AlertKind,
    /// The project's name, when the alert concerns one.
    pub project: Option<String>,
    /// The project's catalog id (rules match on it).
    pub project_id: Option<String>,
    /// One line, e.g. "Backup of Shop failed".
    pub title: String,
    /// A few sentences for people.
    pub body: String,
    pub backup_id: Option<String>,
    /// When the event happened (UTC RFC 3339).
    pub at: String,
    /// Event-specific fields (see `docs/ALERTS.md`).
    pub details: serde_json::Value,
}

impl Alert {
    /// A backup that failed; `error` is the engine's one-line message.
    pub fn backup_failed(
        project_id: Option<&str>,
        project: &str,
        backup_id: Option<&str>,
        error: &str,
    ) -> Alert {
        Alert {
            event: AlertKind::BackupFailed,
            project: Some(project.to_owned()),
            project_id: project_id.map(str::to_owned),
            title: format!("Backup of {project} failed"),
            body: format!("The backup of {project} failed: {error}"),
            backup_id: backup_id.map(str::to_owned),
            at: now(),
            details: json!({ "error": error }),
        }
    }

    /// A backup that completed; `details` may hold figures such as
    /// `size_bytes` or `duration_ms`.
    pub fn backup_succeeded(
        project_id: Option<&str>,
        project: &str,
        backup_id: &str,
        details: serde_json::Value,
    ) -> Alert {
        Alert {
            event: AlertKind::BackupSucceeded,
            project: Some(project.to_owned()),
            project_id: project_id.map(str::to_owned),
            title: format!("Backup of {project} completed"),
            body: format!("The backup {backup_id} of {project} completed."),
            backup_id: Some(backup_id.to_owned()),
            at: now(),
            details,
        }
    }

    /// A backup whose verification (checksums, test restore) failed.
    pub fn verification_failed(
        project_id: Option<&str>,
        project: &str,
        backup_id: &str,
        problem: &str,
    ) -> Alert {
        Alert {
            event: AlertKind::VerificationFailed,
            project: Some(project.to_owned()),
            project_id: project_id.map(str::to_owned),
            title: format!("Verification of a backup of {project} failed"),
            body: format!(
                "The backup {backup_id} of {project} did not pass verification: {problem}"
            ),
            backup_id: Some(backup_id.to_owned()),
            at: now(),
            details: json!({ "error": problem }),
        }
    }

    /// A restore or rollback that completed or failed.
    pub fn restore_finished(o: &RestoreOutcome<'_>) -> Alert {
        let what = if o.rollback { "Rollback" } else { "Restore" };
        let (event, title, body) = match (o.error, o.rollback) {
            (Some(e), rollback) => (
                if rollback {
                    AlertKind::RollbackFailed
                } else {
                    AlertKind::RestoreFailed
                },
                format!("{what} into {} failed", o.target),
                format!(
                    "The {} of backup {} into {} failed ({}): {e}",
                    what.to_lowercase(),
                    o.backup_id,
                    o.target,
                    o.status
                ),
            ),
            (None, rollback) => (
                if rollback {
                    AlertKind::RollbackSucceeded
                } else {
                    AlertKind::RestoreSucceeded
                },
                format!("{what} into {} completed", o.target),
                format!(
                    "The {} of backup {} into {} completed.",
                    what.to_lowercase(),
                    o.backup_id,
                    o.target
                ),
            ),
        };
        Alert {
            event,
            project: o.project.map(str::to_owned),
            project_id: o.project_id.map(str::to_owned),
            title,
            body,
            backup_id: Some(o.backup_id.to_owned()),
            at: now(),
            details: json!({
                "restore_id": o.restore_id,
                "target": o.target,
                "status": o.status,
                "error": o.error,
            }),
        }
    }

    /// A retention sweep of `project` (at `place`: `local` or a
    /// destination) that failed.
    pub fn prune_failed(project_id: &str, project: &str, place: &str, error: &str) -> Alert {
        Alert {
            event: AlertKind::PruneFailed,
            project: Some(project.to_owned()),
            project_id: Some(project_id.to_owned()),
            title: format!("Pruning old backups of {project} failed"),
            body: format!("Retention of {project}'s backups ({place}) failed: {error}"),
            backup_id: None,
            at: now(),
            details: json!({ "at": place, "error": error }),
        }
    }

    /// What a health probe found (`health.*`); `details` are the probe's
    /// facts (the error, the growth, the missing tool).
    pub fn health(
        kind: AlertKind,
        project_id: &str,
        project: &str,
        details: serde_json::Value,
    ) -> Alert {
        let error = details
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given")
            .to_owned();
        let (title, body) = match kind {
            AlertKind::HealthUnreachable => (
                format!("{project} is not reachable"),
                format!(
                    "The health probe could not reach the database of {project}: {error}. Backups of it will fail until it answers again."
                ),
            ),
            AlertKind::HealthSizeGrew => (
                format!("The database of {project} grew fast"),
                format!(
                    "The database of {project} grew by {}% within {} hours, to {}.",
                    details
                        .get("growth_percent")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0),
                    details
                        .get("window_hours")
                        .and_then(|v| v.as_i64())
                        .unwrap_or(24),
                    crate::engine::units::bytes(
                        details
                            .get("size_bytes")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0)
                    )
                ),
            ),
            _ => (
                format!("No pg_dump can back up {project}"),
                format!("Backups of {project} will fail: {error}."),
            ),
        };
        Alert {
            event: kind,
            project: Some(project.to_owned()),
            project_id: Some(project_id.to_owned()),
            title,
            body,
            backup_id: None,
            at: now(),
            details,
        }
    }

    /// A scheduled run that was skipped because it came too late.
    pub fn schedule_missed(
        project_id: &str,
        project: &str,
        job_id: &str,
        job: &str,
        missed_runs: usize,
        due_at: &str,
    ) -> Alert {
        Alert {
            event: AlertKind::ScheduleMissed,
            project: Some(project.to_owned()),
            project_id: Some(project_id.to_owned()),
            title: format!("Scheduled backup of {project} missed"),
            body: format!(
                "The schedule '{job}' of {project} was due at {due_at} but the scheduler was not running then; {missed_runs} run(s) were skipped. The next one runs as planned."
            ),
            backup_id: None,
            at: now(),
            details: json!({ "job_id": job_id, "job": job, "missed_runs": missed_runs, "due_at": due_at }),
        }
    }

    /// The alert for a finished backup row: `backup.failed` or
    /// `backup.succeeded`; `None` for pending, running or cancelled backups.
    pub fn from_backup(b: &BackupRecord) -> Option<Alert> {
        let mut alert = match b.status.as_str() {
            "failed" => Alert::backup_failed(
                b.project_id.as_deref(),
                &b.project_name,
                Some(&b.id),
                b.error_message.as_deref().unwrap_or("no reason recorded"),
            ),
            "completed" => Alert::backup_succeeded(
                b.project_id.as_deref(),
                &b.project_name,
                &b.id,
                json!({
                    "backup_type": b.backup_type,
                    "size_bytes": b.file_size,
                    "started_at": b.started_at,
                    "completed_at": b.completed_at,
                }),
            ),
            _ => return None,
        };
        if let Some(at) = b.completed_at.as_ref() {
            alert.at = at.clone();
        }
        Some(alert)
    }

    /// For stale alerts: how old the newest successful backup is.
    pub fn age_hours(&self) -> Option<u64> {
        self.details.get("age_hours").and_then(|v| v.as_u64())
    }

    /// The alert as plain text (e-mail body).
    pub fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.body);
        out.push_str("\n\n");
        out.push_str(&format!("Event:   {}\n", self.event.as_str()));
        if let Some(p) = &self.project {
            out.push_str(&format!("Project: {p}\n"));
        }
        if let Some(b) = &self.backup_id {
            out.push_str(&format!("Backup:  {b}\n"));
        }
        out.push_str(&format!("At:      {}\n", self.at));
        if let Some(map) = self.details.as_object() {
            for (k, v) in map {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => continue,
                    other => other.to_string(),
                };
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        out.push_str("\n-- \nsupabackup ");
        out.push_str(env!("CARGO_PKG_VERSION"));
        out.push('\n');
        out
    }
}

/// How one channel fared with one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryOutcome {
    /// The rule the channel belongs to (the first one, when several rules
    /// share an identical channel: it is used once).
    pub rule_id: String,
    /// `desktop`, `webhook` or `email`.
    pub channel: String,
    /// The URL, or the recipients; empty for the desktop.
    pub target: String,
    pub ok: bool,
    /// Sending attempts made (webhooks retry).
    pub attempts: u32,
    /// Why it failed; never contains a secret.
    pub error: Option<String>,
}

/// How alerts are delivered: the desktop notifier and the channels'
/// timeouts and retries. [`Delivery::default`] is the product's setting.
#[derive(Clone)]
pub struct Delivery {
    pub desktop: Arc<dyn DesktopNotifier>,
    /// The longest a desktop notification may take before it counts as
    /// failed (the call is left to finish in the background).
    pub desktop_timeout: Duration,
    pub webhook: RetryPolicy,
    /// The SMTP timeout (per command; the whole send gets twice as much).
    pub email_timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery::with_desktop(Arc::new(SystemNotifier))
    }
}

impl Delivery {
    /// Product timeouts and retries with another desktop notifier.
    pub fn with_desktop(desktop: Arc<dyn DesktopNotifier>) -> Self {
        Delivery {
            desktop,
            desktop_timeout: Duration::from_secs(3),
            webhook: RetryPolicy::default(),
            email_timeout: Duration::from_secs(20),
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("desktop_timeout", &self.desktop_timeout)
            .field("webhook", &self.webhook)
            .field("email_timeout", &self.email_timeout)
            .finish_non_exhaustive()
    }
}

/// The `settings` key saying the default desktop rule was offered once.
pub(crate) const DEFAULT_RULE_KEY: &str = "alerts.default_rule_added";

/// The rule the desktop app starts with.
pub fn default_rule() -> AlertRule {
    AlertRule {
        name: "Desktop notifications".into(),
        on_failure: true,
        on_verification_failure: true,
        on_restore_failure: true,
        on_prune_failure: true,
        on_missed_schedule: true,
        on_unreachable: true,
        on_pg_dump_missing: true,
        stale_after_hours: Some(DEFAULT_STALE_HOURS),
        channels: vec![Channel::Desktop],
        ..AlertRule::default()
    }
}

/// A channel to use once for an alert, with the scope its secrets live in.
struct Target {
    rule_id: String,
    owner: Option<String>,
    channel: Channel,
}

/// The secrets the targets need, opened from the vault.
#[derive(Default)]
struct Secrets {
    webhook: BTreeMap<Option<String>, Secret>,
    smtp: BTreeMap<Option<String>, Secret>,
    chat: BTreeMap<(Option<String>, ChatService), Secret>,
    locked: bool,
}

/// Distinct channels of `rules`: a desktop notification is shown once; a
/// webhook or e-mail channel is used once per secret scope.
fn plan(rules: &[AlertRule]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for rule in rules {
        for channel in &rule.channels {
            let owner = match channel {
                Channel::Desktop => None,
                _ => rule.project_id.clone(),
            };
            if out
                .iter()
                .any(|t| t.owner == owner && t.channel == *channel)
            {
                continue;
            }
            out.push(Target {
                rule_id: rule.id.clone(),
                owner,
                channel: channel.clone(),
            });
        }
    }
    out
}

fn outcome(t: &Target, ok: bool, attempts: u32, error: Option<String>) -> DeliveryOutcome {
    DeliveryOutcome {
        rule_id: t.rule_id.clone(),
        channel: t.channel.kind().to_owned(),
        target: t.channel.target(),
        ok,
        attempts,
        error,
    }
}

impl Engine {
    /// All alert rules, global ones first. Rules of a removed project are
    /// left out.
    pub async fn alert_rules(&self) -> Result<Vec<AlertRule>> {
        self.catalog().call(|c| rules::list(c)).await
    }

    /// Creates (empty `id`) or replaces an alert rule. `project_id` may name
    /// the project by name, id or ref; it is stored as the id. A given
    /// `webhook_secret` / `smtp_password` is sealed in the vault for the
    /// rule's scope (global or the project), replacing the one stored; a
    /// webhook channel needs a signing secret and an e-mail channel with a
    /// user name a password, given now or stored before.
    pub async fn save_alert_rule(
        &self,
        rule: AlertRule,
        webhook_secret: Option<Secret>,
        smtp_password: Option<Secret>,
    ) -> Result<AlertRule> {
        self.save_alert_rule_with(
            rule,
            RuleSecrets {
                webhook: webhook_secret,
                smtp: smtp_password,
                chat: Vec::new(),
            },
        )
        .await
    }

    /// [`Engine::save_alert_rule`] with every kind of channel secret: a
    /// chat channel needs its service's webhook URL or bot token, given
    /// now or stored before for the rule's scope.
    pub async fn save_alert_rule_with(
        &self,
        rule: AlertRule,
        secrets: RuleSecrets,
    ) -> Result<AlertRule> {
        let secrets = RuleSecrets {
            webhook: secrets.webhook.filter(|s| !s.is_empty()),
            smtp: secrets.smtp.filter(|s| !s.is_empty()),
            chat: secrets
                .chat
                .into_iter()
                .filter(|(_, s)| !s.expose().trim().is_empty())
                .collect(),
        };
        let key = if secrets.webhook.is_some() || secrets.smtp.is_some() || !secrets.chat.is_empty()
        {
            Some(self.master_key()?)
        } else {
            None
        };
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let saved = rules::save(&tx, rule, key.as_ref(), &secrets)?;
                audit::append(
                    &tx,
                    &actor,
                    "alert.rule_save",
                    Some(&saved.rule.id),
                    &json!({
                        "project_id": saved.rule.project_id,
                        "enabled": saved.rule.enabled,
                        "on_failure": saved.rule.on_failure,
                        "on_success": saved.rule.on_success,
                        "on_verification_failure": saved.rule.on_verification_failure,
                        "on_restore_failure": saved.rule.on_restore_failure,
                        "on_restore_success": saved.rule.on_restore_success,
                        "on_prune_failure": saved.rule.on_prune_failure,
                        "on_missed_schedule": saved.rule.on_missed_schedule,
                        "stale_after_hours": saved.rule.stale_after_hours,
                        "channels": saved.rule.channels.iter().map(Channel::kind).collect::<Vec<_>>(),
                        "webhook_secret_changed": saved.webhook_secret_changed,
                        "smtp_password_changed": saved.smtp_password_changed,
                        "chat_secrets_changed": saved.chat_secrets_changed.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    }),
                )?;
                tx.commit()?;
                Ok(saved.rule)
            })
            .await
    }

    /// The desktop app's notifications are an ordinary rule: the first
    /// time the app opens a catalog, it adds "Desktop notifications" (any
    /// project: failed backups, verifications and restores, missed
    /// schedules, no good backup for 48 hours) unless a rule with a
    /// desktop channel exists. Edited, disabled or removed, it stays so.
    /// Returns the rule added, if one was.
    pub async fn ensure_default_alert_rule(&self) -> Result<Option<AlertRule>> {
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                if settings::get::<bool>(&tx, DEFAULT_RULE_KEY)?.unwrap_or(false) {
                    return Ok(None);
                }
                settings::set(&tx, DEFAULT_RULE_KEY, &true)?;
                let exists = rules::list(&tx)?
                    .iter()
                    .any(|r| r.channels.contains(&Channel::Desktop));
                let added = if exists {
                    None
                } else {
                    let saved = rules::save(&tx, default_rule(), None, &RuleSecrets::default())?;
                    audit::append(
                        &tx,
                        &actor,
                        "alert.rule_save",
                        Some(&saved.rule.id),
                        &json!({"default": true, "channels": ["desktop"]}),
                    )?;
                    Some(saved.rule)
                };
                tx.commit()?;
                Ok(added)
            })
            .await
    }

    /// Turns a rule on or off (its secrets stay).
    pub async fn set_alert_rule_enabled(&self, id: &str, enabled: bool) -> Result<AlertRule> {
        let id = id.to_owned();
        let rule = self.catalog().call(move |c| rules::get(c, &id)).await?;
        self.save_alert_rule(AlertRule { enabled, ..rule }, None, None)
            .await
    }

    /// Removes an alert rule; secrets no other rule of its scope needs are
    /// deleted from the vault.
    pub async fn remove_alert_rule(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let removed = rules::remove(&tx, &id)?;
                audit::append(
                    &tx,
                    &actor,
                    "alert.rule_remove",
                    Some(&removed.id),
                    &json!({ "project_id": removed.project_id }),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// Sends `alert` through every channel of every enabled rule that
    /// matches it, each distinct channel once. Never fails: each channel
    /// reports an outcome; failures are logged and the whole delivery is
    /// recorded as an `alert` analytics event.
    pub async fn dispatch_alert(&self, alert: &Alert, delivery: &Delivery) -> Vec<DeliveryOutcome> {
        let rules = match self.alert_rules().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "alert {} not sent: the rules could not be read: {e}",
                    alert.event.as_str()
                );
                return Vec::new();
            }
        };
        let matching: Vec<AlertRule> = rules.into_iter().filter(|r| r.matches(alert)).collect();
        self.deliver(alert, &matching, delivery).await
    }

    /// Sends a test alert through every channel of one rule (enabled or
    /// not), whatever its triggers.
    pub async fn send_test_alert(
        &self,
        rule_id: &str,
        delivery: &Delivery,
    ) -> Result<Vec<DeliveryOutcome>> {
        let id = rule_id.to_owned();
        let (rule, project) = self
            .catalog()
            .call(move |c| {
                let rule = rules::get(c, &id)?;
                let project = match &rule.project_id {
                    Some(pid) => crate::engine::catalog::projects::get_by_id(c, pid)?,
                    None => None,
                };
                Ok((rule, project))
            })
            .await?;
        let scope = match &project {
            Some(p) => format!("the project {}", p.name),
            None => "all projects".to_owned(),
        };
        let alert = Alert {
            event: AlertKind::Test,
            project: project.as_ref().map(|p| p.name.clone()),
            project_id: rule.project_id.clone(),
            title: "supabackup test alert".to_owned(),
            body: format!(
                "This is a test of the alert rule {} for {scope}. If you can read it, the channel works.",
                rule.label()
            ),
            backup_id: None,
            at: now(),
            details: json!({ "rule_id": rule.id }),
        };
        let outcomes = self
            .deliver(&alert, std::slice::from_ref(&rule), delivery)
            .await;
        let actor = self.actor().to_owned();
        let details = json!({
            "delivered": outcomes.iter().filter(|o| o.ok).count(),
            "failed": outcomes.iter().filter(|o| !o.ok).count(),
        });
        let rid = rule.id.clone();
        if let Err(e) = self
            .catalog()
            .call(move |c| audit::append(c, &actor, "alert.test", Some(&rid), &details))
            .await
        {
            tracing::warn!("could not record the test alert in the audit log: {e}");
        }
        Ok(outcomes)
    }

    /// Projects with no successful backup for longer than the smallest
    /// threshold of the enabled stale rules that cover them (a project never
    /// backed up counts from when it was added), as `backup.stale` alerts at
    /// `now`.
    pub async fn stale_alerts(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<Alert>> {
        self.catalog()
            .call(move |c| {
                let rules = rules::list(c)?;
                stale::find(c, &rules, now)
            })
            .await
    }

    /// The scheduler's stale check: sends each `backup.stale` alert to the
    /// rules whose threshold it passed, once per stale period (a rule is
    /// alerted again only after a newer successful backup went stale too).
    pub async fn check_stale(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        delivery: &Delivery,
    ) -> Result<Vec<DeliveryOutcome>> {
        let (alerts, rules, mut sent) = self
            .catalog()
            .call(move |c| {
                let rules = rules::list(c)?;
                let alerts = stale::find(c, &rules, now)?;
                let sent: stale::Sent = settings::get(c, stale::SENT_KEY)?.unwrap_or_default();
                Ok((alerts, rules, sent))
            })
            .await?;
        let mut outcomes = Vec::new();
        let mut next = stale::Sent::default();
        for alert in &alerts {
            let Some(pid) = alert.project_id.clone() else {
                continue;
            };
            let since = stale::since_key(alert);
            let mut done = match sent.remove(&pid) {
                Some(s) if s.since == since => s.rules,
                _ => Vec::new(),
            };
            let todo: Vec<AlertRule> = rules
                .iter()
                .filter(|r| r.matches(alert) && !done.contains(&r.id))
                .cloned()
                .collect();
            if !todo.is_empty() {
                outcomes.extend(self.deliver(alert, &todo, delivery).await);
                done.extend(todo.into_iter().map(|r| r.id));
            }
            next.insert(pid, stale::SentEntry { since, rules: done });
        }
        self.catalog()
            .call(move |c| settings::set(c, stale::SENT_KEY, &next))
            .await?;
        Ok(outcomes)
    }

    async fn open_secrets(&self, targets: &[Target]) -> Secrets {
        let mut webhook_owners = Vec::new();
        let mut smtp_owners = Vec::new();
        let mut chat_owners = Vec::new();
        for t in targets {
            match &t.channel {
                Channel::Webhook { .. } => webhook_owners.push(t.owner.clone()),
                Channel::Email(e) if e.username.is_some() => smtp_owners.push(t.owner.clone()),
                Channel::Chat(c) => chat_owners.push((t.owner.clone(), c.service)),
                _ => {}
            }
        }
        if webhook_owners.is_empty() && smtp_owners.is_empty() && chat_owners.is_empty() {
            return Secrets::default();
        }
        let Ok(key) = self.master_key() else {
            return Secrets {
                locked: true,
                ..Secrets::default()
            };
        };
        let opened = self
            .catalog()
            .call(move |c| {
                let mut s = Secrets::default();
                for owner in webhook_owners {
                    match vault::get_secret(c, &key, owner.as_deref(), SecretKind::WebhookSecret) {
                        Ok(Some(v)) => {
                            s.webhook.insert(owner, v);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!("the webhook secret could not be opened: {e}"),
                    }
                }
                for owner in smtp_owners {
                    match vault::get_secret(c, &key, owner.as_deref(), SecretKind::SmtpPassword) {
                        Ok(Some(v)) => {
                            s.smtp.insert(owner, v);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!("the SMTP password could not be opened: {e}"),
                    }
                }
                for (owner, service) in chat_owners {
                    match vault::get_secret(c, &key, owner.as_deref(), service.secret_kind()) {
                        Ok(Some(v)) => {
                            s.chat.insert((owner, service), v);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("the {} could not be opened: {e}", service.secret_name())
                        }
                    }
                }
                Ok(s)
            })
            .await;
        opened.unwrap_or_else(|e| {
            tracing::warn!("alert secrets could not be read: {e}");
            Secrets::default()
        })
    }

    /// Sends `alert` through the distinct channels of `rules` at once.
    async fn deliver(
        &self,
        alert: &Alert,
        rules: &[AlertRule],
        delivery: &Delivery,
    ) -> Vec<DeliveryOutcome> {
        let targets = plan(rules);
        if targets.is_empty() {
            return Vec::new();
        }
        let secrets = self.open_secrets(&targets).await;
        let sends = targets
            .iter()
            .map(|t| send_one(t, alert, delivery, &secrets));
        let outcomes = join_all(sends).await;
        for o in outcomes.iter().filter(|o| !o.ok) {
            tracing::warn!(
                "alert {} through {} {} failed: {}",
                alert.event.as_str(),
                o.channel,
                o.target,
                o.error.as_deref().unwrap_or("unknown error")
            );
        }
        let data = json!({
            "event": alert.event.as_str(),
            "backup_id": alert.backup_id,
            "outcomes": outcomes,
        });
        let project_id = alert.project_id.clone();
        let actor = self.actor().to_owned();
        let audited: Vec<(String, String, serde_json::Value)> = outcomes
            .iter()
            .map(|o| {
                (
                    if o.ok { "alert.sent" } else { "alert.failed" }.to_owned(),
                    o.rule_id.clone(),
                    json!({
                        "event": alert.event.as_str(),
                        "project_id": alert.project_id,
                        "backup_id": alert.backup_id,
                        "channel": o.channel,
                        "target": o.target,
                        "attempts": o.attempts,
                        "error": o.error,
                    }),
                )
            })
            .collect();
        let recorded = self
            .catalog()
            .call(move |c| {
                // The project may be gone (its backups outlive it).
                let pid = match project_id {
                    Some(id) if crate::engine::catalog::projects::get_by_id(c, &id)?.is_some() => {
                        Some(id)
                    }
                    _ => None,
                };
                analytics::record(c, pid.as_deref(), "alert", &data)?;
                // Every send, delivered or not, in the audit log too.
                for (action, rule, details) in &audited {
                    audit::append(c, &actor, action, Some(rule), details)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!("could not record the alert delivery: {e}");
        }
        outcomes
    }
}

async fn send_one(
    t: &Target,
    alert: &Alert,
    delivery: &Delivery,
    secrets: &Secrets,
) -> DeliveryOutcome {
    match &t.channel {
        Channel::Desktop => {
            let r = desktop::show(
                delivery.desktop.clone(),
                &alert.title,
                &alert.body,
                delivery.desktop_timeout,
            )
            .await;
            outcome(t, r.is_ok(), 1, r.err())
        }
        Channel::Webhook { url } => {
            let Some(secret) = secrets.webhook.get(&t.owner) else {
                return outcome(
                    t,
                    false,
                    0,
                    Some(missing_secret(secrets.locked, "webhook signing secret")),
                );
            };
            let r = webhook::send(url, secret, alert, &delivery.webhook).await;
            outcome(t, r.error.is_none(), r.attempts, r.error)
        }
        Channel::Email(e) => {
            let password = match &e.username {
                None => None,
                Some(_) => match secrets.smtp.get(&t.owner) {
                    Some(p) => Some(p),
                    None => {
                        return outcome(
                            t,
                            false,
                            0,
                            Some(missing_secret(secrets.locked, "SMTP password")),
                        );
                    }
                },
            };
            let r = email::send(e, password, alert, delivery.email_timeout).await;
            outcome(t, r.is_ok(), 1, r.err())
        }
        Channel::Chat(c) => {
            let Some(secret) = secrets.chat.get(&(t.owner.clone(), c.service)) else {
                return outcome(
                    t,
                    false,
                    0,
                    Some(missing_secret(secrets.locked, c.service.secret_name())),
                );
            };
            let r = chat::send(c, secret, alert, &delivery.webhook).await;
            outcome(t, r.error.is_none(), r.attempts, r.error)
        }
    }
}

fn missing_secret(locked: bool, what: &str) -> String {
    if locked {
        format!("the vault is locked, so the {what} cannot be read")
    } else {
        format!("no {what} is stored for this rule's scope; save the rule with one")
    }
}
