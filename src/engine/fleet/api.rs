//! A small client of Supabase's Management API (`/v1/organizations`,
//! `/v1/projects`, `/v1/projects/{ref}/branches`,
//! `/v1/projects/{ref}/config/database/pooler`) and the response shapes it
//! reads (unknown fields ignored, as the API grows). The token goes in the
//! Authorization header only; errors never show it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::crypto::Secret;
use crate::engine::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(20);
const MAX_BODY: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteOrganization {
    pub id: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub name: String,
}

/// A project as listed (older answers carry the ref only as `id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawProject")]
pub struct RemoteProject {
    pub project_ref: String,
    pub name: String,
    pub organization_id: String,
    pub region: String,
    pub status: String,
}

#[derive(Deserialize)]
struct RawProject {
    #[serde(rename = "ref", default)]
    project_ref: Option<String>,
    #[serde(default)]
    id: String,
    name: String,
    #[serde(default)]
    organization_id: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    status: String,
}

impl From<RawProject> for RemoteProject {
    fn from(r: RawProject) -> Self {
        RemoteProject {
            project_ref: r.project_ref.unwrap_or(r.id),
            name: r.name,
            organization_id: r.organization_id,
            region: r.region,
            status: r.status,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RemoteBranch {
    pub name: String,
    pub project_ref: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PoolerConfig {
    #[serde(default)]
    database_type: Option<String>,
    db_user: String,
    db_host: String,
    #[serde(default)]
    db_port: Option<u16>,
    #[serde(default)]
    db_name: Option<String>,
    #[serde(default)]
    pool_mode: Option<String>,
}

/// How a person reads a project status of the API.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "ACTIVE_HEALTHY" => "active",
        "ACTIVE_UNHEALTHY" => "active, unhealthy",
        "INACTIVE" => "paused",
        "PAUSING" => "pausing",
        "PAUSE_FAILED" => "pause failed",
        "RESTORING" => "restoring",
        "RESTORE_FAILED" => "restore failed",
        "COMING_UP" => "starting",
        "GOING_DOWN" => "stopping",
        "RESTARTING" => "restarting",
        "UPGRADING" => "upgrading",
        "RESIZING" => "resizing",
        "INIT_FAILED" => "failed to start",
        "REMOVED" => "removed",
        _ => "unknown",
    }
}

/// The API URL is https (plain http only on this machine, for tests and
/// local proxies).
pub fn check_api_url(text: &str) -> Result<url::Url> {
    let url = url::Url::parse(text.trim()).map_err(|e| {
        Error::invalid(format!("the Management API URL is malformed ({e})"))
            .with_hint(super::DEFAULT_API_URL)
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::engine::notify::webhook::is_local(&url) => Ok(url),
        _ => Err(Error::invalid(
            "the Management API URL must be https (plain http only on this machine)",
        )),
    }
}

pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: Secret,
}

impl Client {
    pub fn new(api_url: &str, token: Secret) -> Result<Client> {
        let base = check_api_url(api_url)?;
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("supabackup/", env!("CARGO_PKG_VERSION")));
        if crate::engine::notify::webhook::is_local(&base) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| Error::internal(format!("the HTTP client could not be set up: {e}")))?;
        Ok(Client { http, base, token })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::internal(format!("bad API path {path}: {e}")))?;
        let what = format!("the Management API ({path})");
        let resp = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| {
                Error::connection(format!(
                    "{what} did not answer: {}",
                    crate::engine::notify::webhook::describe(&e, TIMEOUT)
                ))
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Error::auth(format!("{what} refused the access token ({status})"))
                .with_hint("create a personal access token at supabase.com/dashboard/account/tokens and store it again"));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!("{what}: not found")));
        }
        if !status.is_success() {
            return Err(Error::connection(format!("{what} answered {status}")));
        }
        // An answer is a list of projects: far below this.
        let too_big = || Error::invalid(format!("{what} answered more than 16 MiB"));
        if resp.content_length().is_some_and(|n| n > MAX_BODY) {
            return Err(too_big());
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            Error::connection(format!(
                "{what}: the answer broke off: {}",
                crate::engine::notify::webhook::describe(&e, TIMEOUT)
            ))
        })? {
            if body.len() as u64 + chunk.len() as u64 > MAX_BODY {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| Error::invalid(format!("{what} answered something unexpected: {e}")))
    }

    pub async fn organizations(&self) -> Result<Vec<RemoteOrganization>> {
        self.get("/v1/organizations").await
    }

    /// The identifiers projects may carry for the organization named by its
    /// id, slug or name.
    pub async fn organization_ids(&self, key: &str) -> Result<Vec<String>> {
        let key = key.trim();
        let org = self
            .organizations()
            .await?
            .into_iter()
            .find(|o| {
                o.id == key || o.slug.as_deref() == Some(key) || o.name.eq_ignore_ascii_case(key)
            })
            .ok_or_else(|| {
                Error::not_found(format!("the account has no organization '{key}'"))
                    .with_hint("`supabackup fleet orgs` lists them")
            })?;
        Ok(std::iter::once(org.id).chain(org.slug).collect())
    }

    pub async fn projects(&self) -> Result<Vec<RemoteProject>> {
        self.get("/v1/projects").await
    }

    /// One project (a project's own token may see only it).
    pub async fn project(&self, project_ref: &str) -> Result<RemoteProject> {
        self.get(&format!("/v1/projects/{project_ref}")).await
    }

    /// A project's branches; none when branching is off.
    pub async fn branches(&self, project_ref: &str) -> Result<Vec<RemoteBranch>> {
        self.get(&format!("/v1/projects/{project_ref}/branches"))
            .await
    }

    /// The URL backups use: the pooler's session mode (port 5432, IPv4;
    /// pg_dump needs a session), or the direct host when the API has no
    /// pooler for the project. Never with a password.
    pub async fn session_url(&self, project_ref: &str) -> Result<String> {
        let direct = format!(
            "postgresql://postgres@db.{project_ref}.supabase.co:5432/postgres?sslmode=require"
        );
        let poolers: Vec<PoolerConfig> = match self
            .get(&format!(
                "/v1/projects/{project_ref}/config/database/pooler"
            ))
            .await
        {
            Ok(p) => p,
            Err(e) if e.kind == crate::engine::ErrorKind::NotFound => return Ok(direct),
            Err(e) => return Err(e),
        };
        let Some(p) = poolers
            .iter()
            .find(|p| p.database_type.as_deref().is_none_or(|t| t == "PRIMARY"))
        else {
            return Ok(direct);
        };
        let port = match p.pool_mode.as_deref() {
            Some("session") => p.db_port.unwrap_or(5432),
            _ => 5432,
        };
        Ok(format!(
            "postgresql://{}@{}:{port}/{}?sslmode=require",
            p.db_user,
            p.db_host,
            p.db_name.as_deref().unwrap_or("postgres")
        ))
    }
}
