//! Fleet onboarding through Supabase's Management API: with the account's
//! personal access token (sealed in the vault, global), list an
//! organization's projects and their branches, add chosen ones in one step
//! (name, ref, region, the pooler's session-mode URL, environment from the
//! project or branch name) with a default schedule, keep each project's
//! platform status (active, paused, restoring…) for the dashboard, and —
//! when asked — add every new project on the scheduler's tick. This module
//! owns the client, the fleet settings and the sync; `api` holds the
//! documented response shapes.

pub mod api;
mod sync;

pub(crate) use sync::statuses;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::backup::BackupOptions;
use crate::engine::catalog::{audit, now, projects, settings};
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, Result};
use crate::engine::project::{Environment, ProjectInput};
use crate::engine::schedule::{JobConfig, JobInput, JobTz, Retention};
use crate::engine::vault::{self, SecretKind};

pub use api::{Client, RemoteBranch, RemoteOrganization, RemoteProject};

/// Where Supabase's Management API answers.
pub const DEFAULT_API_URL: &str = "https://api.supabase.com";
/// The `settings` key of the fleet's settings.
pub const SETTINGS_KEY: &str = "fleet.config";
pub(crate) const LAST_SYNC_KEY: &str = "fleet.last_sync";
const DEFAULT_INTERVAL_MINUTES: u32 = 15;

pub(crate) fn status_key(project_id: &str) -> String {
    format!("fleet.status.{project_id}")
}

/// The schedule projects added from the account get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTemplate {
    pub cron: String,
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub backup: BackupOptions,
}

/// How the account is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetConfig {
    /// The Management API (Supabase's, or a proxy of it).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Only this organization (its id or slug); none: every one the token
    /// sees.
    #[serde(default)]
    pub organization: Option<String>,
    /// Add every new project (and branch) on the scheduler's tick.
    #[serde(default)]
    pub auto_add: bool,
    /// The schedule added projects get (none: no schedule).
    #[serde(default)]
    pub template: Option<JobTemplate>,
    /// Minutes between syncs (statuses; new projects when `auto_add`).
    #[serde(default = "default_interval")]
    pub interval_minutes: u32,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_interval() -> u32 {
    DEFAULT_INTERVAL_MINUTES
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            api_url: default_api_url(),
            organization: None,
            auto_add: false,
            template: None,
            interval_minutes: DEFAULT_INTERVAL_MINUTES,
        }
    }
}

/// A project's state on the platform, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformStatus {
    /// The API's status: ACTIVE_HEALTHY, INACTIVE (paused), RESTORING, …
    pub status: String,
    pub seen_at: String,
    /// The region it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl PlatformStatus {
    /// How a person reads it.
    pub fn label(&self) -> &'static str {
        api::status_label(&self.status)
    }

    /// Whether backups can reach the database.
    pub fn is_up(&self) -> bool {
        self.status.starts_with("ACTIVE")
    }
}

/// One project (or branch) the account has, and whether it is here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetEntry {
    pub project_ref: String,
    pub name: String,
    pub organization_id: String,
    pub region: String,
    pub status: String,
    /// The parent project's ref, for a branch.
    pub parent_ref: Option<String>,
    pub environment: Environment,
    /// The local project with this ref.
    pub added_as: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetAddReport {
    /// (local name, ref)
    pub added: Vec<(String, String)>,
    /// Refs already here.
    pub present: Vec<String>,
    /// (ref, why)
    pub failed: Vec<(String, String)>,
    /// Jobs made from the template (names).
    pub jobs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Projects here whose platform status was recorded.
    pub statuses: usize,
    pub added: FleetAddReport,
}

/// The environment a project's or branch's name suggests.
pub fn environment_of(name: &str) -> Environment {
    let n = name.to_ascii_lowercase();
    let words: Vec<&str> = n
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |names: &[&str]| words.iter().any(|w| names.contains(w));
    if has(&["prod", "production", "live", "main", "master"]) {
        Environment::Production
    } else if has(&["staging", "stage", "stg", "preview", "uat", "qa"]) {
        Environment::Staging
    } else {
        Environment::Development
    }
}

pub(crate) fn config_in(c: &Connection) -> Result<FleetConfig> {
    Ok(settings::get(c, SETTINGS_KEY)?.unwrap_or_default())
}

/// A name for a new project: the remote one, or with its ref when taken.
fn free_name(c: &Connection, name: &str, project_ref: &str) -> Result<String> {
    // Room for " (ref)" within the 100 characters a name may have.
    let base: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(crate::engine::project::MAX_NAME_LEN.saturating_sub(project_ref.chars().count() + 3))
        .collect();
    let base = if base.is_empty() {
        project_ref.to_owned()
    } else {
        base
    };
    if projects::get_by_name(c, &base)?.is_none() {
        return Ok(base);
    }
    Ok(format!("{base} ({project_ref})"))
}

impl Engine {
    pub async fn fleet_config(&self) -> Result<FleetConfig> {
        self.catalog().call(|c| config_in(c)).await
    }

    /// Checks and stores the fleet settings.
    pub async fn set_fleet_config(&self, config: FleetConfig) -> Result<FleetConfig> {
        check_config(&config)?;
        let config = FleetConfig {
            organization: config
                .organization
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty()),
            ..config
        };
        let actor = self.actor().to_owned();
        let saved = config.clone();
        self.catalog()
            .call(move |c| {
                settings::set(c, SETTINGS_KEY, &saved)?;
                audit::append(
                    c,
                    &actor,
                    "fleet.config",
                    None,
                    &json!({"api_url": saved.api_url, "organization": saved.organization,
                            "auto_add": saved.auto_add, "schedule": saved.template.as_ref().map(|t| &t.cron)}),
                )
            })
            .await?;
        Ok(config)
    }

    /// Whether an account token is stored.
    pub async fn has_fleet_token(&self) -> Result<bool> {
        self.catalog()
            .call(|c| vault::has_secret(c, None, SecretKind::AccessToken))
            .await
    }

    /// Checks the token with the API (it must list organizations), then
    /// seals it; returns how many organizations it sees.
    pub async fn set_fleet_token(&self, token: Secret) -> Result<usize> {
        let token = Secret::new(token.expose().trim().to_owned());
        if token.is_empty() {
            return Err(Error::invalid("the access token is empty"));
        }
        let config = self.fleet_config().await?;
        let orgs = Client::new(&config.api_url, token.clone())?
            .organizations()
            .await?;
        let key = self.master_key()?;
        let actor = self.actor().to_owned();
        let n = orgs.len();
        self.catalog()
            .call(move |c| {
                vault::put_secret(c, &key, None, SecretKind::AccessToken, &token)?;
                audit::append(
                    c,
                    &actor,
                    "fleet.token_set",
                    None,
                    &json!({"organizations": n}),
                )
            })
            .await?;
        Ok(n)
    }

    /// Forgets the token (the projects added stay).
    pub async fn remove_fleet_token(&self) -> Result<()> {
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                vault::delete_secret(c, None, SecretKind::AccessToken)?;
                audit::append(c, &actor, "fleet.token_removed", None, &json!({}))
            })
            .await
    }

    async fn fleet_client(&self) -> Result<(Client, FleetConfig)> {
        let config = self.fleet_config().await?;
        let key = self.master_key()?;
        let token = self
            .catalog()
            .call(move |c| vault::get_secret(c, &key, None, SecretKind::AccessToken))
            .await?
            .ok_or_else(|| {
                Error::not_found("no Supabase access token is stored").with_hint(
                    "create one at supabase.com/dashboard/account/tokens, then `supabackup fleet token --stdin`",
                )
            })?;
        Ok((Client::new(&config.api_url, token)?, config))
    }

    /// The organizations the token sees.
    pub async fn fleet_organizations(&self) -> Result<Vec<RemoteOrganization>> {
        let (client, _) = self.fleet_client().await?;
        client.organizations().await
    }

    /// The account's projects and branches (of the configured organization
    /// or `organization`), each with the local project that has its ref.
    pub async fn fleet_projects(&self, organization: Option<&str>) -> Result<Vec<FleetEntry>> {
        let (client, config) = self.fleet_client().await?;
        let org = organization
            .map(str::to_owned)
            .or(config.organization.clone());
        let org_ids = match &org {
            Some(o) => Some(client.organization_ids(o).await?),
            None => None,
        };
        let remote = client.projects().await?;
        let mut entries = Vec::new();
        for p in remote {
            if let Some(ids) = &org_ids
                && !ids.contains(&p.organization_id)
            {
                continue;
            }
            let branches = client.branches(&p.project_ref).await.unwrap_or_default();
            entries.push(FleetEntry {
                environment: environment_of(&p.name),
                project_ref: p.project_ref.clone(),
                name: p.name.clone(),
                organization_id: p.organization_id.clone(),
                region: p.region.clone(),
                status: p.status.clone(),
                parent_ref: None,
                added_as: None,
            });
            for b in branches.into_iter().filter(|b| !b.is_default) {
                if b.project_ref == p.project_ref {
                    continue;
                }
                entries.push(FleetEntry {
                    environment: environment_of(&b.name),
                    project_ref: b.project_ref.clone(),
                    name: format!("{} ({})", p.name, b.name),
                    organization_id: p.organization_id.clone(),
                    region: p.region.clone(),
                    status: b.status.clone().unwrap_or_else(|| p.status.clone()),
                    parent_ref: Some(p.project_ref.clone()),
                    added_as: None,
                });
            }
        }
        let refs: Vec<String> = entries.iter().map(|e| e.project_ref.clone()).collect();
        let here = self
            .catalog()
            .call(move |c| {
                let mut out = Vec::new();
                for r in &refs {
                    out.push(projects::get_by_ref(c, r)?.map(|p| p.name));
                }
                Ok(out)
            })
            .await?;
        for (e, h) in entries.iter_mut().zip(here) {
            e.added_as = h;
        }
        Ok(entries)
    }

    /// Adds the projects (or branches) with these refs from the account,
    /// each with a job from `template` (or the configured one) when given.
    pub async fn fleet_add(
        &self,
        refs: &[String],
        template: Option<JobTemplate>,
    ) -> Result<FleetAddReport> {
        let entries = self.fleet_projects(None).await?;
        let (client, config) = self.fleet_client().await?;
        let template = template.or(config.template.clone());
        let mut report = FleetAddReport::default();
        for r in refs {
            let Some(e) = entries.iter().find(|e| e.project_ref == *r) else {
                report.failed.push((
                    r.clone(),
                    "the account has no such project (or it is in another organization)".into(),
                ));
                continue;
            };
            if e.added_as.is_some() {
                report.present.push(r.clone());
                continue;
            }
            match self.add_fleet_entry(&client, e, template.as_ref()).await {
                Ok((name, job)) => {
                    report.added.push((name, r.clone()));
                    report.jobs.extend(job);
                }
                Err(err) => report.failed.push((r.clone(), err.message)),
            }
        }
        Ok(report)
    }

    async fn add_fleet_entry(
        &self,
        client: &Client,
        e: &FleetEntry,
        template: Option<&JobTemplate>,
    ) -> Result<(String, Option<String>)> {
        let db_url = client.session_url(&e.project_ref).await?;
        let (name_src, r) = (e.name.clone(), e.project_ref.clone());
        let name = self
            .catalog()
            .call(move |c| free_name(c, &name_src, &r))
            .await?;
        let project = self
            .add_project(ProjectInput {
                name: name.clone(),
                project_ref: e.project_ref.clone(),
                db_url,
                environment: e.environment.as_str().to_owned(),
                organization_id: Some(e.organization_id.clone()),
                description: Some(format!(
                    "Added from the Supabase account ({}{}).",
                    e.region,
                    e.parent_ref
                        .as_ref()
                        .map(|p| format!(", a branch of {p}"))
                        .unwrap_or_default()
                )),
                ..Default::default()
            })
            .await?;
        let (pid, status, region) = (project.id.clone(), e.status.clone(), e.region.clone());
        self.catalog()
            .call(move |c| {
                settings::set(
                    c,
                    &status_key(&pid),
                    &PlatformStatus {
                        status,
                        seen_at: now(),
                        region: Some(region).filter(|r| !r.is_empty()),
                    },
                )
            })
            .await?;
        let job = match template {
            Some(t) => Some(self.add_job(template_input(t, &project.name)?).await?.name),
            None => None,
        };
        Ok((project.name, job))
    }
}

/// The fleet settings are usable: an https API (http only on this
/// machine), a sane interval, a valid schedule.
pub fn check_config(config: &FleetConfig) -> Result<()> {
    api::check_api_url(&config.api_url)?;
    if !(1..=24 * 60).contains(&config.interval_minutes) {
        return Err(Error::invalid(
            "the sync interval must be between 1 minute and a day",
        ));
    }
    if let Some(t) = &config.template {
        crate::engine::schedule::jobs::check_input(&template_input(t, "check")?)?;
    }
    Ok(())
}

/// The job a template makes for `project`.
fn template_input(t: &JobTemplate, project: &str) -> Result<JobInput> {
    Ok(JobInput {
        project: project.to_owned(),
        name: Some(format!("{project} {}", t.cron.trim())),
        cron: t.cron.clone(),
        timezone: if t.timezone.trim().is_empty() {
            JobTz::default()
        } else {
            JobTz::parse(&t.timezone)?
        },
        config: JobConfig {
            backup: t.backup.clone(),
            ..Default::default()
        },
        retention: t.retention,
        enabled: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_suggest_environments() {
        for (name, env) in [
            ("shop-production", Environment::Production),
            ("Shop Prod", Environment::Production),
            ("main", Environment::Production),
            ("shop-staging", Environment::Staging),
            ("preview-123", Environment::Staging),
            ("feature/login", Environment::Development),
            ("producer-app", Environment::Development),
        ] {
            assert_eq!(environment_of(name), env, "{name}");
        }
    }
}
