//! Import: a [`ConfigFile`] applied inside one transaction, every item
//! checked as when it is added by hand; problems, skips and notes recorded
//! in the report.

use rusqlite::Connection;

use super::*;
use crate::engine::api::insert_project;
use crate::engine::catalog::{projects, settings};
use crate::engine::crypto::{Key, Secret};
use crate::engine::destination::{self, DestinationInput};
use crate::engine::health;
use crate::engine::notify::{AlertRule, RuleSecrets, rules};
use crate::engine::schedule::JobTz;
use crate::engine::schedule::hooks::{check_hook, hooks_key};
use crate::engine::schedule::jobs::{self, JobInput};
use crate::engine::sealed::Opener;
use crate::engine::transfer;
use crate::engine::vault::{self, SecretKind};

/// The file's secrets, opened (the values to write), with the reason for
/// each that could not be.
#[derive(Default)]
pub(super) struct Opened {
    /// Per project record: the project ready to insert, or why not.
    pub(super) projects: Vec<std::result::Result<crate::engine::project::ValidProject, String>>,
    pub(super) destinations: Vec<std::result::Result<Option<Secret>, String>>,
    /// (scope project name, kind, value)
    pub(super) alert: Vec<(Option<String>, SecretKind, Secret)>,
    pub(super) backup_passphrase: Option<Secret>,
    pub(super) fleet_token: Option<Secret>,
    pub(super) problems: Vec<Problem>,
}

pub(super) fn has_sealed(file: &ConfigFile) -> bool {
    let sealed = |v: &Option<String>| v.as_deref().is_some_and(Opener::is_sealed);
    file.projects
        .iter()
        .any(|p| sealed(&p.db_password) || sealed(&p.access_token) || sealed(&p.service_role_key))
        || file.destinations.iter().any(|d| sealed(&d.secret))
        || !file.alert_secrets.is_empty()
        || sealed(&file.settings.backup_passphrase)
        || sealed(&file.settings.fleet_token)
}

/// Opens every sealed value (Argon2id: off the runtime). Without a
/// passphrase (`without_secrets`) they are dropped instead.
pub(super) fn open_all(file: &mut ConfigFile, passphrase: Option<&Secret>) -> Opened {
    let mut opener = Opener::new(passphrase);
    let mut out = Opened::default();
    let drop_secrets = passphrase.is_none();
    for rec in &mut file.projects {
        if drop_secrets {
            rec.db_password = None;
            rec.access_token = None;
            rec.service_role_key = None;
        }
        out.projects
            .push(transfer::record_to_valid(rec.clone(), &mut opener));
    }
    for d in &file.destinations {
        let secret = match (&d.secret, drop_secrets) {
            (Some(v), false) => opener.open_labeled(DESTINATION_SECRET, v).map(Some),
            _ => Ok(None),
        };
        out.destinations.push(secret);
    }
    if !drop_secrets {
        for s in &file.alert_secrets {
            let scope = s.project.clone().unwrap_or_else(|| "every project".into());
            let Some(kind) = kind_named(&s.kind) else {
                out.problems.push(Problem {
                    section: "alert_secrets".into(),
                    item: scope,
                    reason: format!("unknown secret kind '{}'", s.kind),
                });
                continue;
            };
            match opener.open(kind, &s.value) {
                Ok(v) => out.alert.push((s.project.clone(), kind, v)),
                Err(reason) => out.problems.push(Problem {
                    section: "alert_secrets".into(),
                    item: format!("{scope}: {}", s.kind),
                    reason,
                }),
            }
        }
        if let Some(v) = &file.settings.fleet_token {
            match opener.open(SecretKind::AccessToken, v) {
                Ok(t) => out.fleet_token = Some(t),
                Err(reason) => out.problems.push(Problem {
                    section: "settings".into(),
                    item: "fleet_token".into(),
                    reason,
                }),
            }
        }
        if let Some(v) = &file.settings.backup_passphrase {
            match opener.open(SecretKind::BackupPassphrase, v) {
                Ok(p) => out.backup_passphrase = Some(p),
                Err(reason) => out.problems.push(Problem {
                    section: "settings".into(),
                    item: "backup_passphrase".into(),
                    reason,
                }),
            }
        }
    }
    out
}

/// Applies the file inside the caller's transaction, recording what it
/// added, skipped, or could not.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply(
    tx: &Connection,
    actor: &str,
    file: &ConfigFile,
    opened: Opened,
    key: Option<&Key>,
    key_is_real: bool,
    opts: &ConfigImportOptions,
    report: &mut ConfigImportReport,
) -> Result<()> {
    report.problems.extend(opened.problems);
    // Projects: the names new here are those the file's project settings
    // may touch (an existing project keeps its own).
    let mut new_projects: Vec<String> = Vec::new();
    for (rec, valid) in file.projects.iter().zip(opened.projects) {
        let valid = match valid {
            Ok(v) => v,
            Err(reason) => {
                report.problem("projects", &rec.name, reason);
                continue;
            }
        };
        if new_projects
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&valid.name))
        {
            report.problem(
                "projects",
                &valid.name,
                "the name appears more than once in the file",
            );
            continue;
        }
        if projects::get_by_name(tx, &valid.name)?.is_some() {
            if opts.skip_existing {
                report.projects.skipped.push(valid.name.clone());
            } else {
                report.problem(
                    "projects",
                    &valid.name,
                    format!("a project named '{}' exists here", valid.name),
                );
            }
            continue;
        }
        let secrets = Engine::secrets_of(&valid);
        match insert_project(tx, actor, &valid, key, &secrets) {
            Ok(_) => {
                new_projects.push(valid.name.clone());
                report.projects.added.push(valid.name.clone());
            }
            Err(e) => report.problem("projects", &valid.name, e.message),
        }
    }
    for ps in &file.project_settings {
        let Some(p) = projects::get_by_name(tx, &ps.project)? else {
            report.problem(
                "project_settings",
                &ps.project,
                "no project of that name is in the file or here",
            );
            continue;
        };
        if !new_projects.iter().any(|n| n.eq_ignore_ascii_case(&p.name)) {
            continue;
        }
        if let Some(h) = &ps.hooks {
            match [&h.pre, &h.post]
                .into_iter()
                .flatten()
                .try_for_each(check_hook)
            {
                Ok(()) => settings::set(tx, &hooks_key(&p.id), h)?,
                Err(e) => report.problem(
                    "project_settings",
                    &ps.project,
                    format!("hooks: {}", e.message),
                ),
            }
        }
        if let Some(m) = ps.probe_interval_minutes {
            match health::check_interval(m) {
                Ok(()) => settings::set(tx, &health::interval_key(&p.id), &m)?,
                Err(e) => report.problem("project_settings", &ps.project, e.message),
            }
        }
    }
    for (d, secret) in file.destinations.iter().zip(opened.destinations) {
        let secret = match secret {
            Ok(s) => s,
            Err(reason) => {
                report.problem("destinations", &d.name, reason);
                continue;
            }
        };
        let input = DestinationInput {
            name: d.name.clone(),
            url: d.url.clone(),
            endpoint: d.endpoint.clone(),
            region: d.region.clone(),
            path_style: d.path_style,
            allow_http: d.allow_http,
            access_key_id: d.access_key_id.clone(),
            secret,
        };
        // A secret left out (an import without secrets) is given later
        // (`destination set-secret`); the rest is checked as if it were here.
        let secret_left_out = (d.has_secret || d.secret.is_some()) && input.secret.is_none();
        let checked = if secret_left_out {
            destination::validate(&DestinationInput {
                secret: Some(Secret::new("left out")),
                ..input.clone()
            })
        } else {
            destination::validate(&input)
        };
        if let Err(e) = checked {
            report.problem("destinations", &d.name, e.message);
            continue;
        }
        if secret_left_out {
            report.warnings.push(format!(
                "destination '{}' was imported without its secret: give it with `supabackup destination set-secret {}`",
                d.name.trim(),
                d.name.trim()
            ));
        }
        if destination::find(tx, d.name.trim()).is_ok() {
            if opts.skip_existing {
                report.destinations.skipped.push(d.name.clone());
            } else {
                report.problem(
                    "destinations",
                    &d.name,
                    format!("a destination named '{}' exists here", d.name.trim()),
                );
            }
            continue;
        }
        match destination::insert(tx, &input, key) {
            Ok(_) => report.destinations.added.push(d.name.trim().to_owned()),
            Err(e) => report.problem("destinations", &d.name, e.message),
        }
    }
    for j in &file.jobs {
        if let Err(reason) = import_job(tx, actor, j, opts, report) {
            report.problem("jobs", &j.name, reason);
        }
    }
    import_rules(tx, file, &opened.alert, key, report)?;
    import_settings(
        tx,
        key,
        key_is_real,
        &file.settings,
        (opened.backup_passphrase, opened.fleet_token),
        opts,
        report,
    )?;
    Ok(())
}

fn import_job(
    tx: &Connection,
    actor: &str,
    j: &JobRecord,
    opts: &ConfigImportOptions,
    report: &mut ConfigImportReport,
) -> std::result::Result<(), String> {
    let project = projects::get_by_name(tx, &j.project)
        .map_err(|e| e.message)?
        .ok_or_else(|| {
            format!(
                "its project '{}' is neither in the file nor here",
                j.project
            )
        })?;
    let timezone = if j.timezone.trim().is_empty() {
        JobTz::default()
    } else {
        JobTz::parse(&j.timezone).map_err(|e| e.message)?
    };
    let mut config = j.config.clone();
    let mut chain = Vec::new();
    for name in &config.chain {
        let p = projects::get_by_name(tx, name)
            .map_err(|e| e.message)?
            .ok_or_else(|| {
                format!("its chain names '{name}', which is neither in the file nor here")
            })?;
        chain.push(p.id);
    }
    config.chain = chain;
    let input = JobInput {
        project: project.name.clone(),
        name: Some(j.name.clone()),
        cron: j.cron.clone(),
        timezone,
        config,
        retention: j.retention,
        enabled: j.enabled,
    };
    let cron = jobs::check_input(&input).map_err(|e| e.message)?;
    jobs::check_destinations(tx, &input.config).map_err(|e| e.message)?;
    if jobs::exists(tx, &project.id, &j.name).map_err(|e| e.message)? {
        if opts.skip_existing {
            report.jobs.skipped.push(j.name.clone());
            return Ok(());
        }
        return Err(format!(
            "'{}' already has a job named '{}' here",
            project.name, j.name
        ));
    }
    jobs::insert(tx, actor, &project, &cron, &input).map_err(|e| e.message)?;
    report.jobs.added.push(j.name.clone());
    Ok(())
}

/// Rules, each given the secrets of its scope from the file; a rule the
/// same as one here is skipped (the desktop app's default rule, say).
fn import_rules(
    tx: &Connection,
    file: &ConfigFile,
    alert_secrets: &[(Option<String>, SecretKind, Secret)],
    key: Option<&Key>,
    report: &mut ConfigImportReport,
) -> Result<()> {
    for rec in &file.alert_rules {
        let label = match rec.rule.name.trim() {
            "" => format!("({})", rec.rule.label()),
            _ => rec.rule.label(),
        };
        let scope_id = match &rec.project {
            Some(name) => match projects::get_by_name(tx, name)? {
                Some(p) => Some(p.id),
                None => {
                    report.problem(
                        "alert_rules",
                        &label,
                        format!("its project '{name}' is neither in the file nor here"),
                    );
                    continue;
                }
            },
            None => None,
        };
        let rule = AlertRule {
            id: String::new(),
            project_id: scope_id,
            ..rec.rule.clone()
        };
        let canonical = match rules::validate(tx, rule) {
            Ok(r) => r,
            Err(e) => {
                report.problem("alert_rules", &label, e.message);
                continue;
            }
        };
        // The same events and channels for the same scope is the same rule,
        // enabled or not (one imported before without its secret, say).
        let same = |r: &AlertRule| {
            AlertRule {
                id: String::new(),
                enabled: canonical.enabled,
                ..r.clone()
            } == canonical
        };
        if rules::list(tx)?.iter().any(same) {
            report.alert_rules.skipped.push(label);
            continue;
        }
        // The scope's secret from the file, unless this machine keeps one
        // for the scope already (its rules use it: it is not replaced).
        let scope = canonical.project_id.clone();
        let stored = |kind: SecretKind| vault::has_secret(tx, scope.as_deref(), kind);
        let mut kept = Vec::new();
        for kind in [SecretKind::WebhookSecret, SecretKind::SmtpPassword]
            .into_iter()
            .chain(
                canonical
                    .chat_services()
                    .into_iter()
                    .map(|s| s.secret_kind()),
            )
        {
            if stored(kind)? {
                kept.push(kind);
            }
        }
        let in_scope = |kind: SecretKind| {
            if kept.contains(&kind) {
                return None;
            }
            alert_secrets
                .iter()
                .find(|(p, k, _)| {
                    *k == kind
                        && p.as_deref().map(str::to_lowercase)
                            == rec.project.as_deref().map(str::to_lowercase)
                })
                .map(|(_, _, v)| v.clone())
        };
        let secrets = RuleSecrets {
            webhook: in_scope(SecretKind::WebhookSecret),
            smtp: in_scope(SecretKind::SmtpPassword),
            chat: canonical
                .chat_services()
                .into_iter()
                .filter_map(|s| in_scope(s.secret_kind()).map(|v| (s, v)))
                .collect(),
        };
        let missing = rules::missing_secrets(tx, &canonical, &secrets)?;
        let saved = if missing.is_empty() {
            rules::save(tx, canonical, key, &secrets)
        } else {
            if canonical.enabled {
                report.warnings.push(format!(
                    "alert rule {label} was imported disabled: it needs its {} (edit it, give it, and enable it)",
                    missing.join(", ")
                ));
            }
            rules::save_disabled_without_secrets(tx, canonical, key, &secrets)
        };
        match saved {
            Ok(_) => report.alert_rules.added.push(label),
            Err(e) => report.problem("alert_rules", &label, e.message),
        }
    }
    Ok(())
}

/// A setting from the file: set when unset here or the same; another value
/// here is a problem, or kept with `skip_existing`.
fn import_setting<T: Serialize + serde::de::DeserializeOwned + PartialEq>(
    tx: &Connection,
    key: &str,
    name: &str,
    value: &T,
    opts: &ConfigImportOptions,
    report: &mut ConfigImportReport,
) -> Result<()> {
    match settings::get::<T>(tx, key)? {
        Some(here) if here == *value => {}
        Some(_) if opts.skip_existing => {
            report
                .warnings
                .push(format!("{name}: the value here was kept"));
        }
        Some(_) => report.problem("settings", name, "this machine has another value"),
        None => {
            settings::set(tx, key, value)?;
            report.settings.push(name.to_owned());
        }
    }
    Ok(())
}

fn import_settings(
    tx: &Connection,
    key: Option<&Key>,
    key_is_real: bool,
    s: &ToolSettings,
    (backup_passphrase, fleet_token): (Option<Secret>, Option<Secret>),
    opts: &ConfigImportOptions,
    report: &mut ConfigImportReport,
) -> Result<()> {
    if let Some(url) = &s.scratch_url {
        match crate::engine::restore::check_scratch_url(url) {
            Ok(url) => import_setting(
                tx,
                crate::engine::restore::SCRATCH_SETTING,
                "scratch_url",
                &url,
                opts,
                report,
            )?,
            Err(e) => report.problem("settings", "scratch_url", e.message),
        }
    }
    if let Some(m) = s.probe_interval_minutes {
        match health::check_interval(m) {
            Ok(()) => import_setting(
                tx,
                health::DEFAULT_INTERVAL_SETTING,
                "probe_interval_minutes",
                &m,
                opts,
                report,
            )?,
            Err(e) => report.problem("settings", "probe_interval_minutes", e.message),
        }
    }
    if s.default_alert_rule_added {
        settings::set(tx, crate::engine::notify::DEFAULT_RULE_KEY, &true)?;
    }
    import_global_secret(
        tx,
        (key, key_is_real),
        SecretKind::BackupPassphrase,
        backup_passphrase,
        s.backup_passphrase.is_some(),
        "the backup passphrase was left out: set it (Settings, or `vault set-backup-passphrase`) before restoring backups made with it",
        opts,
        report,
    )?;
    if let Some(f) = &s.fleet {
        match crate::engine::fleet::check_config(f) {
            Ok(()) => import_setting(
                tx,
                crate::engine::fleet::SETTINGS_KEY,
                "fleet",
                f,
                opts,
                report,
            )?,
            Err(e) => report.problem("settings", "fleet", e.message),
        }
    }
    import_global_secret(
        tx,
        (key, key_is_real),
        SecretKind::AccessToken,
        fleet_token,
        s.fleet_token.is_some(),
        "the Supabase access token was left out: give it again (Settings → Supabase account, or `fleet token`)",
        opts,
        report,
    )?;
    Ok(())
}

/// A global secret from the file (the backup passphrase, the Supabase
/// token): stored when there is none here; the same one is fine; another
/// one here is a problem, or kept with `skip_existing`.
#[allow(clippy::too_many_arguments)]
fn import_global_secret(
    tx: &Connection,
    (key, key_is_real): (Option<&Key>, bool),
    kind: SecretKind,
    value: Option<Secret>,
    in_file: bool,
    left_out: &str,
    opts: &ConfigImportOptions,
    report: &mut ConfigImportReport,
) -> Result<()> {
    let name = kind.as_str();
    match (value, key) {
        (Some(_), Some(_))
            if opts.dry_run && !key_is_real && vault::has_secret(tx, None, kind)? =>
        {
            report.warnings.push(format!(
                "the vault is locked: the {} here was not compared with the file's",
                name.replace('_', " ")
            ));
        }
        (Some(v), Some(key)) => match vault::get_secret(tx, key, None, kind)? {
            Some(here) if here == v => {}
            Some(_) if opts.skip_existing => report
                .warnings
                .push(format!("{name}: the one here was kept")),
            Some(_) => report.problem(
                "settings",
                name,
                format!("this machine has another {}", name.replace('_', " ")),
            ),
            None => {
                vault::put_secret(tx, key, None, kind, &v)?;
                report.settings.push(name.to_owned());
            }
        },
        (Some(_), None) => return Err(Error::auth("the vault is locked")),
        (None, _) if in_file => report.warnings.push(left_out.to_owned()),
        (None, _) => {}
    }
    Ok(())
}

/// The desktop app's preferences from the file: the bytes to write (after
/// the catalog commits), replacing those here unless they are the same or
/// `skip_existing` keeps them.
pub(super) fn app_prefs(
    here: &std::path::Path,
    from_file: Option<&serde_json::Value>,
    opts: &ConfigImportOptions,
    report: &mut ConfigImportReport,
) -> Result<Option<Vec<u8>>> {
    let Some(v) = from_file else {
        return Ok(None);
    };
    if !v.is_object() {
        report.problem(
            "settings",
            "app_prefs",
            "the desktop app's preferences are not an object",
        );
        return Ok(None);
    }
    let current = super::export::app_prefs(here)?;
    match current {
        Some(c) if c == *v => Ok(None),
        Some(_) if opts.skip_existing => {
            report
                .warnings
                .push("app_prefs: the desktop app's preferences here were kept".into());
            Ok(None)
        }
        // Preferences, not data: the file's replace those here.
        Some(_) | None => {
            report.settings.push("app_prefs".into());
            let mut bytes = serde_json::to_vec_pretty(v)?;
            bytes.push(b'\n');
            Ok(Some(bytes))
        }
    }
}
