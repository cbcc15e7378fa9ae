//! Export: the catalog's configuration as a [`ConfigFile`], secrets
//! sealed when asked for.

use rusqlite::Connection;

use super::*;
use crate::engine::catalog::{now, projects, settings};
use crate::engine::crypto::Key;
use crate::engine::destination;
use crate::engine::health;
use crate::engine::notify::{AlertRule, rules};
use crate::engine::schedule::hooks::hooks_key;
use crate::engine::schedule::jobs;
use crate::engine::sealed::Sealer;
use crate::engine::transfer;
use crate::engine::vault::{self, SecretKind};

fn project_name(c: &Connection, id: &str) -> Result<Option<String>> {
    Ok(projects::get_by_id(c, id)?.map(|p| p.name))
}

/// The configuration as a file; secrets sealed when `seal_with` is given.
pub(super) fn collect(c: &Connection, seal_with: Option<(&Sealer, &Key)>) -> Result<ConfigFile> {
    let mut file = ConfigFile {
        format: FORMAT_NAME.to_owned(),
        version: VERSION,
        exported_at: Some(now()),
        secrets_included: seal_with.is_some(),
        ..Default::default()
    };
    let all_projects = projects::list(c)?;
    for p in &all_projects {
        file.projects
            .push(transfer::project_record(c, p, seal_with)?);
        let entry = ProjectSettings {
            project: p.name.clone(),
            hooks: settings::get(c, &hooks_key(&p.id))?,
            probe_interval_minutes: settings::get(c, &health::interval_key(&p.id))?,
        };
        if entry.hooks.is_some() || entry.probe_interval_minutes.is_some() {
            file.project_settings.push(entry);
        }
    }
    for d in destination::list(c)? {
        let secret = match seal_with {
            Some((sealer, key)) => destination::secret(c, key, &d.id)?
                .map(|s| sealer.seal_labeled(DESTINATION_SECRET, &s))
                .transpose()?,
            None => None,
        };
        file.destinations.push(DestinationRecord {
            name: d.name,
            url: d.url,
            endpoint: d.endpoint,
            region: d.region,
            path_style: d.path_style,
            allow_http: d.allow_http,
            access_key_id: d.access_key_id,
            secret,
            has_secret: d.has_secret,
        });
    }
    for j in jobs::list(c)? {
        let Some(project) = project_name(c, &j.project_id)? else {
            continue;
        };
        let mut config = j.config;
        let mut chain = Vec::new();
        for id in &config.chain {
            // A project removed since the job was set up is not in its chain.
            if let Some(name) = project_name(c, id)? {
                chain.push(name);
            }
        }
        config.chain = chain;
        file.jobs.push(JobRecord {
            name: j.name,
            project,
            cron: j.cron,
            timezone: j.timezone.as_str().to_owned(),
            enabled: j.enabled,
            retention: j.retention,
            config,
        });
    }
    let mut scopes: Vec<Option<String>> = vec![None];
    for r in rules::list(c)? {
        let project = match &r.project_id {
            Some(id) => {
                if !scopes.contains(&Some(id.clone())) {
                    scopes.push(Some(id.clone()));
                }
                project_name(c, id)?
            }
            None => None,
        };
        file.alert_rules.push(RuleRecord {
            project,
            rule: AlertRule {
                id: String::new(),
                project_id: None,
                ..r
            },
        });
    }
    if let Some((sealer, key)) = seal_with {
        for scope in &scopes {
            for kind in ALERT_SECRET_KINDS {
                if let Some(v) = vault::get_secret(c, key, scope.as_deref(), kind)? {
                    file.alert_secrets.push(ScopedSecret {
                        project: match scope {
                            Some(id) => project_name(c, id)?,
                            None => None,
                        },
                        kind: kind.as_str().to_owned(),
                        value: sealer.seal(kind, &v)?,
                    });
                }
            }
        }
        file.settings.backup_passphrase =
            vault::get_secret(c, key, None, SecretKind::BackupPassphrase)?
                .map(|p| sealer.seal(SecretKind::BackupPassphrase, &p))
                .transpose()?;
    }
    file.settings.scratch_url = settings::get(c, crate::engine::restore::SCRATCH_SETTING)?;
    file.settings.probe_interval_minutes = settings::get(c, health::DEFAULT_INTERVAL_SETTING)?;
    file.settings.fleet = settings::get(c, crate::engine::fleet::SETTINGS_KEY)?;
    if let Some((sealer, key)) = seal_with {
        file.settings.fleet_token = vault::get_secret(c, key, None, SecretKind::AccessToken)?
            .map(|t| sealer.seal(SecretKind::AccessToken, &t))
            .transpose()?;
    }
    file.settings.default_alert_rule_added =
        settings::get::<bool>(c, crate::engine::notify::DEFAULT_RULE_KEY)?.unwrap_or(false);
    Ok(file)
}

/// The desktop app's preferences file as JSON, when there is one.
pub(super) fn app_prefs(file: &std::path::Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::engine::error::Error::io("read", file, e)),
    }
}
