//! `supabackup alert ...`: alert rules and test alerts.

use clap::{Args, Subcommand};

use super::{output, prompt};
use crate::engine::notify::{
    AlertRule, Channel, ChatChannel, ChatService, EmailChannel, RuleSecrets, SmtpSecurity,
};
use crate::engine::{Engine, Error, Result};

/// Environment variables for the channels' secrets (or a prompt).
pub const WEBHOOK_SECRET_ENV: &str = "SUPABACKUP_WEBHOOK_SECRET";
pub const SMTP_PASSWORD_ENV: &str = "SUPABACKUP_SMTP_PASSWORD";
/// The chat services' secrets: their incoming-webhook URLs are credentials,
/// so they never go on the command line.
pub const SLACK_URL_ENV: &str = "SUPABACKUP_SLACK_WEBHOOK_URL";
pub const DISCORD_URL_ENV: &str = "SUPABACKUP_DISCORD_WEBHOOK_URL";
pub const TEAMS_URL_ENV: &str = "SUPABACKUP_TEAMS_WEBHOOK_URL";
pub const TELEGRAM_TOKEN_ENV: &str = "SUPABACKUP_TELEGRAM_BOT_TOKEN";

fn chat_env(service: ChatService) -> &'static str {
    match service {
        ChatService::Slack => SLACK_URL_ENV,
        ChatService::Discord => DISCORD_URL_ENV,
        ChatService::Teams => TEAMS_URL_ENV,
        ChatService::Telegram => TELEGRAM_TOKEN_ENV,
    }
}

#[derive(Debug, Subcommand)]
pub enum AlertCmd {
    /// Add an alert rule (see docs/ALERTS.md).
    Add(Box<AddArgs>),
    /// List alert rules.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an alert rule.
    Remove {
        /// Rule id (`alert list` shows them).
        id: String,
    },
    /// Send a test alert through every channel of a rule.
    Test {
        /// Rule id (`alert list` shows them).
        id: String,
    },
    /// Turn a rule on.
    Enable {
        /// Rule id (`alert list` shows them).
        id: String,
    },
    /// Turn a rule off (it is kept, and can still be tested).
    Disable {
        /// Rule id (`alert list` shows them).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Only this project (default: every project).
    #[arg(long)]
    project: Option<String>,
    /// A name for the rule (default: made from its events and channels).
    #[arg(long)]
    name: Option<String>,
    /// Alert on failed backups.
    #[arg(long)]
    on_failure: bool,
    /// Alert on completed backups.
    #[arg(long)]
    on_success: bool,
    /// Alert on failed verifications and restore tests.
    #[arg(long)]
    on_verification_failure: bool,
    /// Alert on failed restores and rollbacks.
    #[arg(long)]
    on_restore_failure: bool,
    /// Alert on completed restores and rollbacks.
    #[arg(long)]
    on_restore_success: bool,
    /// Alert when a retention sweep (or the repository clean-up) fails.
    #[arg(long)]
    on_prune_failure: bool,
    /// Alert when a scheduled run is missed (the machine was off) and skipped.
    #[arg(long)]
    on_missed_schedule: bool,
    /// Alert when a health probe cannot reach the project (once per outage).
    #[arg(long)]
    on_unreachable: bool,
    /// Alert when no pg_dump on this machine can dump the project's server.
    #[arg(long)]
    on_pg_dump_missing: bool,
    /// Alert when the database grew by at least this many percent within a
    /// day (measured by the health probes).
    #[arg(long, value_name = "PERCENT")]
    size_growth: Option<u32>,
    /// Alert when the newest successful backup is older than this many hours.
    #[arg(long)]
    stale_hours: Option<u32>,
    /// Show a desktop notification.
    #[arg(long)]
    desktop: bool,
    /// POST a signed JSON payload here (secret from SUPABACKUP_WEBHOOK_SECRET or a prompt).
    #[arg(long)]
    webhook: Option<String>,
    /// E-mail these addresses (comma-separated).
    #[arg(long, value_delimiter = ',')]
    email_to: Vec<String>,
    /// The sender address of alert e-mails.
    #[arg(long)]
    email_from: Option<String>,
    /// The SMTP server that sends them.
    #[arg(long)]
    smtp_host: Option<String>,
    /// Its port (default: 465 for tls, 587 for starttls, 25 for none).
    #[arg(long)]
    smtp_port: Option<u16>,
    /// tls (implicit, 465), starttls (587) or none (localhost only).
    #[arg(long, default_value = "starttls", value_parser = ["tls", "starttls", "none"])]
    smtp_security: String,
    /// SMTP user (password from SUPABACKUP_SMTP_PASSWORD or a prompt).
    #[arg(long)]
    smtp_user: Option<String>,
    /// Post to a Slack incoming webhook (its URL from SUPABACKUP_SLACK_WEBHOOK_URL or a prompt).
    #[arg(long)]
    slack: bool,
    /// Post to a Discord webhook (URL from SUPABACKUP_DISCORD_WEBHOOK_URL or a prompt).
    #[arg(long)]
    discord: bool,
    /// Post to a Microsoft Teams Workflows webhook (URL from SUPABACKUP_TEAMS_WEBHOOK_URL or a prompt).
    #[arg(long)]
    teams: bool,
    /// Send to this Telegram chat id or @channel (bot token from SUPABACKUP_TELEGRAM_BOT_TOKEN or a prompt).
    #[arg(long)]
    telegram_chat: Option<String>,
    /// Another Telegram Bot API server (default https://api.telegram.org).
    #[arg(long, requires = "telegram_chat")]
    telegram_api: Option<String>,
}

pub async fn run(engine: &Engine, cmd: AlertCmd) -> Result<i32> {
    match cmd {
        AlertCmd::Add(a) => {
            prompt::unlock(engine).await?;
            let mut channels = Vec::new();
            if a.desktop {
                channels.push(Channel::Desktop);
            }
            let mut webhook_secret = None;
            if let Some(url) = &a.webhook {
                channels.push(Channel::Webhook { url: url.clone() });
                webhook_secret =
                    prompt::passphrase(WEBHOOK_SECRET_ENV, "Webhook signing secret: ", true)?;
            }
            let mut smtp_password = None;
            if !a.email_to.is_empty() {
                let security = match a.smtp_security.as_str() {
                    "tls" => SmtpSecurity::Tls,
                    "none" => SmtpSecurity::None,
                    _ => SmtpSecurity::StartTls,
                };
                let host = a
                    .smtp_host
                    .clone()
                    .ok_or_else(|| Error::invalid("e-mail alerts need --smtp-host"))?;
                channels.push(Channel::Email(EmailChannel {
                    smtp_port: a.smtp_port.unwrap_or(security.default_port()),
                    smtp_host: host,
                    security,
                    username: a.smtp_user.clone(),
                    from: a
                        .email_from
                        .clone()
                        .ok_or_else(|| Error::invalid("e-mail alerts need --email-from"))?,
                    to: a.email_to.clone(),
                }));
                if a.smtp_user.is_some() {
                    smtp_password =
                        prompt::passphrase(SMTP_PASSWORD_ENV, "SMTP password: ", false)?;
                }
            }
            let mut chat = Vec::new();
            let chats = [
                (a.slack, ChatService::Slack),
                (a.discord, ChatService::Discord),
                (a.teams, ChatService::Teams),
                (a.telegram_chat.is_some(), ChatService::Telegram),
            ];
            for (wanted, service) in chats {
                if !wanted {
                    continue;
                }
                channels.push(Channel::Chat(ChatChannel {
                    service,
                    chat_id: (service == ChatService::Telegram)
                        .then(|| a.telegram_chat.clone())
                        .flatten(),
                    api_base: (service == ChatService::Telegram)
                        .then(|| a.telegram_api.clone())
                        .flatten(),
                }));
                if let Some(secret) = prompt::passphrase(
                    chat_env(service),
                    &format!("{}: ", service.secret_name()),
                    false,
                )? {
                    chat.push((service, secret));
                }
            }
            if channels.is_empty() {
                return Err(Error::invalid(
                    "an alert rule needs a channel: --desktop, --webhook URL, --email-to, --slack, --discord, --teams or --telegram-chat",
                ));
            }
            let rule = AlertRule {
                name: a.name.clone().unwrap_or_default(),
                project_id: a.project.clone(),
                on_failure: a.on_failure,
                on_success: a.on_success,
                on_verification_failure: a.on_verification_failure,
                on_restore_failure: a.on_restore_failure,
                on_restore_success: a.on_restore_success,
                on_prune_failure: a.on_prune_failure,
                on_missed_schedule: a.on_missed_schedule,
                on_unreachable: a.on_unreachable,
                on_pg_dump_missing: a.on_pg_dump_missing,
                size_growth_percent: a.size_growth,
                stale_after_hours: a.stale_hours,
                channels,
                ..Default::default()
            };
            let saved = engine
                .save_alert_rule_with(
                    rule,
                    RuleSecrets {
                        webhook: webhook_secret,
                        smtp: smtp_password,
                        chat,
                    },
                )
                .await?;
            println!("{}", saved.id);
            Ok(0)
        }
        AlertCmd::List { json } => {
            let rules = engine.alert_rules().await?;
            if json {
                return output::json(&rules).map(|_| 0);
            }
            let names: std::collections::HashMap<String, String> = engine
                .list_projects()
                .await?
                .into_iter()
                .map(|p| (p.id, p.name))
                .collect();
            let rows: Vec<Vec<String>> = rules
                .iter()
                .map(|r| {
                    let mut on = Vec::new();
                    if r.on_failure {
                        on.push("failure".to_string());
                    }
                    if r.on_success {
                        on.push("success".into());
                    }
                    if r.on_verification_failure {
                        on.push("verification".into());
                    }
                    if r.on_restore_failure {
                        on.push("restore-failure".into());
                    }
                    if r.on_restore_success {
                        on.push("restore-success".into());
                    }
                    if r.on_prune_failure {
                        on.push("prune-failure".into());
                    }
                    if r.on_missed_schedule {
                        on.push("missed".into());
                    }
                    if let Some(h) = r.stale_after_hours {
                        on.push(format!("stale>{h}h"));
                    }
                    if r.on_unreachable {
                        on.push("unreachable".into());
                    }
                    if r.on_pg_dump_missing {
                        on.push("pg-dump-missing".into());
                    }
                    if let Some(p) = r.size_growth_percent {
                        on.push(format!("growth>{p}%"));
                    }
                    vec![
                        r.id.clone(),
                        match &r.project_id {
                            Some(id) => names.get(id).cloned().unwrap_or_else(|| id.clone()),
                            None => "all".into(),
                        },
                        if r.enabled { "yes" } else { "no" }.into(),
                        on.join(","),
                        r.channels
                            .iter()
                            .map(|c| format!("{} {}", c.kind(), c.target()))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ]
                })
                .collect();
            output::table(&["ID", "PROJECT", "ENABLED", "ON", "CHANNELS"], &rows);
            Ok(0)
        }
        AlertCmd::Remove { id } => {
            prompt::unlock(engine).await?;
            engine.remove_alert_rule(&id).await?;
            println!("Removed alert rule {id}.");
            Ok(0)
        }
        AlertCmd::Test { id } => {
            prompt::unlock(engine).await?;
            let outcomes = engine.send_test_alert(&id, &engine.delivery()).await?;
            output::json(&outcomes)?;
            Ok(if outcomes.iter().all(|o| o.error.is_none()) {
                0
            } else {
                7
            })
        }
        AlertCmd::Enable { id } => set_enabled(engine, &id, true).await,
        AlertCmd::Disable { id } => set_enabled(engine, &id, false).await,
    }
}

async fn set_enabled(engine: &Engine, id: &str, enabled: bool) -> Result<i32> {
    prompt::unlock(engine).await?;
    let saved = engine.set_alert_rule_enabled(id, enabled).await?;
    println!(
        "Alert rule {} is {}.",
        saved.id,
        if saved.enabled { "on" } else { "off" }
    );
    Ok(0)
}
