//! The sync the scheduler runs: every project's platform status (through
//! the account's token, else a project's own) and, with auto-add, the
//! account's new projects.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::json;

use super::{
    Client, FleetConfig, FleetEntry, LAST_SYNC_KEY, PlatformStatus, SyncReport, config_in,
    status_key,
};
use crate::engine::Engine;
use crate::engine::catalog::{audit, now, projects, settings};
use crate::engine::error::Result;
use crate::engine::vault::{self, SecretKind};

impl Engine {
    /// Records the platform status of every project here (through the
    /// account's token, else a project's own) and, with `auto_add`, adds
    /// the account's new projects.
    pub async fn fleet_sync(&self) -> Result<SyncReport> {
        // The attempt counts: an API that is down is asked again after the
        // interval, not on every tick.
        self.catalog()
            .call(|c| settings::set(c, LAST_SYNC_KEY, &now()))
            .await?;
        let has_account = self.has_fleet_token().await?;
        let entries = if has_account {
            self.fleet_projects(None).await?
        } else {
            Vec::new()
        };
        let config = self.fleet_config().await?;
        let seen = entries.clone();
        let mut statuses = self
            .catalog()
            .call(move |c| {
                let mut n = 0;
                for e in &seen {
                    if let Some(p) = projects::get_by_ref(c, &e.project_ref)? {
                        settings::set(
                            c,
                            &status_key(&p.id),
                            &PlatformStatus {
                                status: e.status.clone(),
                                seen_at: now(),
                                region: Some(e.region.clone()).filter(|r| !r.is_empty()),
                            },
                        )?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await?;
        statuses += self.sync_with_project_tokens(&config, &entries).await?;
        let mut report = SyncReport {
            statuses,
            ..Default::default()
        };
        if config.auto_add && has_account {
            let new: Vec<String> = entries
                .iter()
                .filter(|e| e.added_as.is_none() && e.status != "REMOVED")
                .map(|e| e.project_ref.clone())
                .collect();
            if !new.is_empty() {
                report.added = self.fleet_add(&new, None).await?;
                let actor = self.actor().to_owned();
                let added = report.added.clone();
                self.catalog()
                    .call(move |c| {
                        audit::append(
                            c,
                            &actor,
                            "fleet.auto_add",
                            None,
                            &json!({"added": added.added, "failed": added.failed}),
                        )
                    })
                    .await?;
            }
        }
        Ok(report)
    }

    /// The platform status of the projects the account listing did not
    /// cover (no account token, or another account), asked with each
    /// project's own access token (the one the project form takes). A
    /// refused or failed request leaves that project's status as it was.
    async fn sync_with_project_tokens(
        &self,
        config: &FleetConfig,
        covered: &[FleetEntry],
    ) -> Result<usize> {
        let key = self.master_key()?;
        let refs: Vec<String> = covered.iter().map(|e| e.project_ref.clone()).collect();
        let own = self
            .catalog()
            .call(move |c| {
                let mut out = Vec::new();
                for p in projects::list(c)? {
                    if refs.contains(&p.project_ref) {
                        continue;
                    }
                    if let Some(t) =
                        vault::get_secret(c, &key, Some(&p.id), SecretKind::AccessToken)?
                    {
                        out.push((p.id, p.project_ref, t));
                    }
                }
                Ok(out)
            })
            .await?;
        let mut n = 0;
        for (pid, project_ref, token) in own {
            let remote = match Client::new(&config.api_url, token)?
                .project(&project_ref)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("platform status of {project_ref}: {e}");
                    continue;
                }
            };
            self.catalog()
                .call(move |c| {
                    settings::set(
                        c,
                        &status_key(&pid),
                        &PlatformStatus {
                            status: remote.status,
                            seen_at: now(),
                            region: Some(remote.region).filter(|r| !r.is_empty()),
                        },
                    )
                })
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether a sync is due at `now`: a token is stored and the interval
    /// passed since the last one.
    pub async fn fleet_sync_due(&self, now: DateTime<Utc>) -> Result<bool> {
        self.catalog()
            .call(move |c| {
                // The account's token, or any project's own.
                let any_token: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM secrets WHERE kind = ?1)",
                    [SecretKind::AccessToken.as_str()],
                    |r| r.get(0),
                )?;
                if !any_token {
                    return Ok(false);
                }
                let config = config_in(c)?;
                let last: Option<String> = settings::get(c, LAST_SYNC_KEY)?;
                Ok(
                    match last.and_then(|l| DateTime::parse_from_rfc3339(&l).ok()) {
                        None => true,
                        Some(l) => {
                            now.signed_duration_since(l.with_timezone(&Utc))
                                >= chrono::Duration::minutes(i64::from(config.interval_minutes))
                        }
                    },
                )
            })
            .await
    }
}

/// The platform statuses recorded for the projects here (by project id).
pub(crate) fn statuses(
    c: &Connection,
) -> Result<std::collections::HashMap<String, PlatformStatus>> {
    let mut out = std::collections::HashMap::new();
    for p in projects::list(c)? {
        if let Some(s) = settings::get::<PlatformStatus>(c, &status_key(&p.id))? {
            out.insert(p.id, s);
        }
    }
    Ok(out)
}
