//! The whole tool's configuration in one file, to move it to a new machine
//! or keep it in version control: projects, their hooks and probe
//! intervals, destinations, jobs, alert rules with their channels, and the
//! settings (scratch server, default probe interval). This module owns the
//! file format (`supabackup.config`, JSON, docs/CONFIG.md) and its export
//! and import; projects, destinations, jobs and rules are checked by the
//! same code that checks them when a person adds them.
//!
//! Secrets (database passwords, tokens, destination keys, channel secrets,
//! the backup passphrase) are left out unless asked for; when included
//! they are sealed with an export passphrase (Argon2id + AES-256-GCM, each
//! value bound to what it is), as the project export does. An import is
//! all or nothing: every problem is reported, and nothing is written
//! unless there is none (a dry run checks the same way and writes nothing).

mod export;
mod import;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::catalog::audit;
use crate::engine::crypto::{self, Secret};
use crate::engine::error::{Error, Result};
use crate::engine::notify::AlertRule;
use crate::engine::paths::write_atomic;
use crate::engine::schedule::Retention;
use crate::engine::schedule::hooks::ProjectHooks;
use crate::engine::schedule::jobs::JobConfig;
use crate::engine::transfer::{self, ProjectRecord};
use crate::engine::vault::SecretKind;

pub const FORMAT_NAME: &str = "supabackup.config";
pub const VERSION: u32 = 1;
/// A configuration file larger than this is not one.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// What a sealed destination secret is bound to.
const DESTINATION_SECRET: &str = "destination_secret";
/// The secrets alert channels keep per scope (global or a project).
const ALERT_SECRET_KINDS: [SecretKind; 6] = [
    SecretKind::WebhookSecret,
    SecretKind::SmtpPassword,
    SecretKind::SlackWebhook,
    SecretKind::DiscordWebhook,
    SecretKind::TeamsWebhook,
    SecretKind::TelegramBotToken,
];

/// The file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub format: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<String>,
    /// Whether the secrets are in the file (sealed).
    #[serde(default)]
    pub secrets_included: bool,
    #[serde(default)]
    pub projects: Vec<ProjectRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project_settings: Vec<ProjectSettings>,
    #[serde(default)]
    pub destinations: Vec<DestinationRecord>,
    #[serde(default)]
    pub jobs: Vec<JobRecord>,
    #[serde(default)]
    pub alert_rules: Vec<RuleRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_secrets: Vec<ScopedSecret>,
    #[serde(default)]
    pub settings: ToolSettings,
}

/// A project's own settings besides its record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// The project's name.
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<ProjectHooks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_interval_minutes: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRecord {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The S3 secret key, Azure account key or GCS service-account JSON,
    /// sealed (`enc:v1:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The destination has a secret (in `secret` when the export includes
    /// secrets): imported without it, it waits for `destination set-secret`.
    #[serde(default)]
    pub has_secret: bool,
}

/// A job; projects (its own and its chain) by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    pub name: String,
    pub project: String,
    pub cron: String,
    #[serde(default)]
    pub timezone: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub config: JobConfig,
}

fn yes() -> bool {
    true
}

/// An alert rule with its channels; its project by name (none: every
/// project). The rule's own `id` and `project_id` are not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub rule: AlertRule,
}

/// A secret alert channels of one scope share (webhook signing secret,
/// SMTP password, chat webhook URL or bot token), sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedSecret {
    /// The project's name; none for the global scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSettings {
    /// The restore tests' scratch server (no password in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_url: Option<String>,
    /// Minutes between health probes for projects without their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_interval_minutes: Option<u32>,
    /// The passphrase backups are encrypted with, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_passphrase: Option<String>,
    /// How the Supabase account is used (fleet onboarding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::engine::fleet::FleetConfig>,
    /// The Supabase personal access token, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_token: Option<String>,
    /// The desktop app's preferences (theme, default backup options), as
    /// the app wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_prefs: Option<serde_json::Value>,
    /// The desktop app added its default alert rule once (so it does not
    /// add it again where it was removed on purpose).
    #[serde(default)]
    pub default_alert_rule_added: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigExportOptions {
    /// Include the secrets, sealed with this passphrase.
    pub secrets_passphrase: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigExportSummary {
    pub path: PathBuf,
    pub projects: usize,
    pub destinations: usize,
    pub jobs: usize,
    pub alert_rules: usize,
    pub settings: usize,
    pub secrets_included: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigImportOptions {
    /// Opens the sealed secrets in the file.
    pub secrets_passphrase: Option<Secret>,
    /// Import a file with sealed secrets without them (rules whose
    /// channels then lack a secret are imported disabled).
    pub without_secrets: bool,
    /// Leave what already exists here (same name, or same setting with
    /// another value) as it is, instead of refusing the import.
    pub skip_existing: bool,
    /// Check everything, write nothing.
    pub dry_run: bool,
}

/// What happened (or would happen) to one section's items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub added: Vec<String>,
    /// Left as they were: they already exist here.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `projects`, `destinations`, `jobs`, `alert_rules`, `settings`, …
    pub section: String,
    pub item: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigImportReport {
    pub projects: Tally,
    pub destinations: Tally,
    pub jobs: Tally,
    pub alert_rules: Tally,
    /// Settings set (or that would be).
    pub settings: Vec<String>,
    /// What stops the import; none when it can be (or was) applied.
    pub problems: Vec<Problem>,
    /// What the user should know: secrets left out, rules disabled.
    pub warnings: Vec<String>,
    pub applied: bool,
    pub dry_run: bool,
}

impl ConfigImportReport {
    fn problem(&mut self, section: &str, item: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            section: section.to_owned(),
            item: item.to_owned(),
            reason: reason.into(),
        });
    }
}

fn kind_named(name: &str) -> Option<SecretKind> {
    ALERT_SECRET_KINDS.into_iter().find(|k| k.as_str() == name)
}

/// Reads and checks a configuration file (not its items).
pub fn read_file(path: &Path) -> Result<ConfigFile> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::not_found(format!("{} does not exist", path.display()))
        }
        _ => Error::io("read", path, e),
    })?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(Error::invalid(format!(
            "{} is not a supabackup configuration file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            Error::invalid(format!("{} is not UTF-8 text", path.display()))
        }
        _ => Error::io("read", path, e),
    })?;
    // The format first, so another kind of file gets a plain answer.
    let head: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!("{} is not valid JSON: {e}", path.display())).with_hint(format!(
            "a configuration export is a JSON object with \"format\": \"{FORMAT_NAME}\""
        ))
    })?;
    match head.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT_NAME) => {}
        Some(transfer::FORMAT_NAME) => {
            return Err(Error::invalid(format!(
                "{} is a project export, not a whole configuration",
                path.display()
            ))
            .with_hint("import it with `supabackup project import`"));
        }
        other => {
            return Err(Error::invalid(format!(
                "{} is not a supabackup configuration export (format {})",
                path.display(),
                other.map_or("missing".to_owned(), |f| format!("'{f}'"))
            )));
        }
    }
    let version = head.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(VERSION)) {
        return Err(Error::invalid(format!(
            "{} has configuration version {}; this supabackup reads version {VERSION}",
            path.display(),
            version.map_or("(none)".to_owned(), |v| v.to_string())
        )));
    }
    serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "{} is not a valid configuration export: {e}",
            path.display()
        ))
    })
}

impl Engine {
    /// Writes the whole configuration to `path` (JSON).
    pub async fn export_config(
        &self,
        path: &Path,
        opts: ConfigExportOptions,
    ) -> Result<ConfigExportSummary> {
        let (key, sealer) = match &opts.secrets_passphrase {
            Some(p) => (
                Some(self.master_key()?),
                Some(crate::engine::sealed::sealer_for(p, self.kdf()).await?),
            ),
            None => (None, None),
        };
        let path_buf = path.to_path_buf();
        let actor = self.actor().to_owned();
        let prefs_file = self.data_dir().app_prefs();
        self.catalog()
            .call(move |c| {
                let seal_with = sealer.as_ref().zip(key.as_ref());
                let mut file = export::collect(c, seal_with)?;
                file.settings.app_prefs = export::app_prefs(&prefs_file)?;
                let mut bytes = serde_json::to_vec_pretty(&file)?;
                bytes.push(b'\n');
                write_atomic(&path_buf, &bytes)?;
                let s = &file.settings;
                let summary = ConfigExportSummary {
                    path: path_buf.clone(),
                    projects: file.projects.len(),
                    destinations: file.destinations.len(),
                    jobs: file.jobs.len(),
                    alert_rules: file.alert_rules.len(),
                    settings: [
                        s.scratch_url.is_some(),
                        s.probe_interval_minutes.is_some(),
                        s.fleet.is_some(),
                    ]
                    .iter()
                    .filter(|b| **b)
                    .count()
                        + file.project_settings.len(),
                    secrets_included: file.secrets_included,
                };
                audit::append(
                    c,
                    &actor,
                    "config.export",
                    Some(&path_buf.display().to_string()),
                    &json!({
                        "projects": summary.projects,
                        "destinations": summary.destinations,
                        "jobs": summary.jobs,
                        "alert_rules": summary.alert_rules,
                        "secrets_included": summary.secrets_included,
                    }),
                )?;
                Ok(summary)
            })
            .await
    }

    /// Imports a configuration file: all of it, or (with any problem, or a
    /// dry run) nothing. The secrets in it need the vault unlocked.
    pub async fn import_config(
        &self,
        path: &Path,
        opts: ConfigImportOptions,
    ) -> Result<ConfigImportReport> {
        let path_buf = path.to_path_buf();
        let mut file = tokio::task::spawn_blocking(move || read_file(&path_buf))
            .await
            .map_err(|e| Error::internal(e.to_string()))??;
        let sealed = import::has_sealed(&file);
        if sealed && opts.secrets_passphrase.is_none() && !opts.without_secrets {
            return Err(Error::invalid(format!(
                "{} holds encrypted secrets: give the passphrase it was exported with",
                path.display()
            ))
            .with_hint(
                "or import it without its secrets (--without-secrets) and enter them again",
            ));
        }
        let passphrase = if opts.without_secrets {
            None
        } else {
            opts.secrets_passphrase.clone()
        };
        let (file, opened) = tokio::task::spawn_blocking(move || {
            let opened = import::open_all(&mut file, passphrase.as_ref());
            (file, opened)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
        let writes_secrets = opened
            .projects
            .iter()
            .any(|p| p.as_ref().is_ok_and(|v| !Engine::secrets_of(v).is_empty()))
            || opened.destinations.iter().any(|d| matches!(d, Ok(Some(_))))
            || !opened.alert.is_empty()
            || opened.backup_passphrase.is_some()
            || opened.fleet_token.is_some();
        // A dry run rolls everything back: a locked vault is no reason to
        // refuse checking the file, so a throw-away key stands in.
        let (key, key_is_real) = match (writes_secrets, opts.dry_run) {
            (false, _) => (None, false),
            (true, true) if !self.is_unlocked() => (Some(crypto::random_key()?), false),
            (true, _) => (Some(self.master_key()?), true),
        };
        let actor = self.actor().to_owned();
        let file_name = path.display().to_string();
        let without_secrets = sealed && opts.without_secrets;
        let prefs_file = self.data_dir().app_prefs();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let mut report = ConfigImportReport {
                    dry_run: opts.dry_run,
                    ..Default::default()
                };
                if without_secrets {
                    report.warnings.push(
                        "the file's secrets were left out: enter the projects' passwords, the destinations' keys and the channels' secrets again".into(),
                    );
                }
                import::apply(&tx, &actor, &file, opened, key.as_ref(), key_is_real, &opts, &mut report)?;
                let write_prefs =
                    import::app_prefs(&prefs_file, file.settings.app_prefs.as_ref(), &opts, &mut report)?;
                if report.problems.is_empty() && !opts.dry_run {
                    audit::append(
                        &tx,
                        &actor,
                        "config.import",
                        Some(&file_name),
                        &json!({
                            "projects": report.projects.added.len(),
                            "destinations": report.destinations.added.len(),
                            "jobs": report.jobs.added.len(),
                            "alert_rules": report.alert_rules.added.len(),
                            "settings": report.settings,
                            "skipped": report.projects.skipped.len() + report.destinations.skipped.len()
                                + report.jobs.skipped.len() + report.alert_rules.skipped.len(),
                        }),
                    )?;
                    tx.commit()?;
                    report.applied = true;
                    // A file, not the catalog: written once the rest is in.
                    if let Some(prefs) = write_prefs
                        && let Err(e) = crate::engine::paths::create_dirs_synced(
                            prefs_file.parent().unwrap_or(&prefs_file),
                        )
                        .and_then(|()| crate::engine::paths::write_atomic(&prefs_file, &prefs))
                    {
                        report.warnings.push(format!(
                            "the desktop app's preferences could not be written: {}",
                            e.message
                        ));
                    }
                }
                Ok(report)
            })
            .await
    }
}
