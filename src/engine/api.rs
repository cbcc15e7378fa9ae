//! The engine's front door: one async method per user action. The CLI, the
//! GUI and the scheduler all call these; none of them touches the catalog,
//! the vault or PostgreSQL directly.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde_json::json;

use crate::engine::catalog::{self, Catalog, analytics, audit, projects};
use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::{KdfParams, Key, Secret};
use crate::engine::error::{Error, Result};
use crate::engine::paths::DataDir;
use crate::engine::pg::probe::{self, ConnectionReport};
use crate::engine::project::{self, Project, ProjectInput, ValidProject};
use crate::engine::vault::{self, KeyStore, NoKeychain, OsKeychain, SecretKind, VaultStatus};

/// The environment variable that turns the OS keychain off.
pub const NO_KEYCHAIN_ENV: &str = "SUPABACKUP_NO_KEYCHAIN";

/// How to open an engine.
pub struct EngineOptions {
    pub data_dir: DataDir,
    pub keystore: Arc<dyn KeyStore>,
    pub kdf: KdfParams,
    /// Recorded in the audit log, e.g. "alice (cli)".
    pub actor: String,
    /// A folder holding pg_dump & co., searched first.
    pub pg_bin_dir: Option<PathBuf>,
    /// Tables smaller than this stay in the main data stream of a backup
    /// (parallel streams, backup/merge.rs); `SUPABACKUP_STREAM_MIN_MB` or
    /// 64 MiB by default.
    pub stream_min_bytes: i64,
    /// How alerts are delivered (the desktop notifier, timeouts, retries):
    /// every event of every front-end goes through it to the alert rules.
    pub delivery: crate::engine::notify::Delivery,
}

impl EngineOptions {
    /// Product defaults: the OS keychain unless `SUPABACKUP_NO_KEYCHAIN` is
    /// set, default Argon2id parameters.
    pub fn new(data_dir: DataDir, front_end: &str) -> Self {
        let no_keychain =
            std::env::var_os(NO_KEYCHAIN_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let keystore: Arc<dyn KeyStore> = if no_keychain {
            Arc::new(NoKeychain)
        } else {
            Arc::new(OsKeychain)
        };
        EngineOptions {
            data_dir,
            keystore,
            kdf: KdfParams::default(),
            actor: audit::actor(front_end),
            pg_bin_dir: None,
            stream_min_bytes: crate::engine::backup::source::stream_min_bytes_from_env(),
            delivery: Default::default(),
        }
    }
}

struct Inner {
    dirs: DataDir,
    catalog: Catalog,
    keystore: Arc<dyn KeyStore>,
    kdf: KdfParams,
    actor: String,
    pg_bin_dir: Option<PathBuf>,
    stream_min_bytes: i64,
    delivery: crate::engine::notify::Delivery,
    key: RwLock<Option<Key>>,
}

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.0.dirs.root().display())
    }
}

/// Changes to a project; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub project_ref: Option<String>,
    pub db_url: Option<String>,
    pub db_password: Option<Secret>,
    pub environment: Option<String>,
    /// `Some("")` clears it.
    pub organization_id: Option<String>,
    /// `Some("")` clears it.
    pub description: Option<String>,
    pub access_token: Option<Secret>,
    pub service_role_key: Option<Secret>,
    /// The server's CA certificate (PEM); `Some("")` removes it.
    pub ca_cert: Option<String>,
}

impl Engine {
    /// Opens the data directory (creating it) and its catalog.
    pub async fn open(opts: EngineOptions) -> Result<Engine> {
        let dirs = opts.data_dir.clone();
        let catalog = tokio::task::spawn_blocking(move || {
            dirs.ensure()?;
            Catalog::open(&dirs.catalog())
        })
        .await
        .map_err(|e| Error::internal(format!("opening the catalog failed: {e}")))??;
        let engine = Engine(Arc::new(Inner {
            dirs: opts.data_dir,
            catalog,
            keystore: opts.keystore,
            kdf: opts.kdf,
            actor: opts.actor,
            pg_bin_dir: opts.pg_bin_dir,
            stream_min_bytes: opts.stream_min_bytes,
            delivery: opts.delivery,
            key: RwLock::new(None),
        }));
        match engine.recover_interrupted().await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!("recovered {} interrupted backup(s)", ids.len())
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("could not recover interrupted backups: {e}"),
        }
        match engine.recover_interrupted_restores().await {
            Ok(n) if n > 0 => tracing::warn!("recovered {n} interrupted restore(s)"),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not recover interrupted restores: {e}"),
        }
        match engine.recover_copies().await {
            Ok(n) if n > 0 => tracing::warn!("recovered {n} interrupted copy operation(s)"),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not recover interrupted copies: {e}"),
        }
        Ok(engine)
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.0.dirs
    }

    pub fn catalog(&self) -> &Catalog {
        &self.0.catalog
    }

    pub fn actor(&self) -> &str {
        &self.0.actor
    }

    pub fn pg_bin_dir(&self) -> Option<PathBuf> {
        self.0.pg_bin_dir.clone()
    }

    // ----- vault -------------------------------------------------------

    fn key(&self) -> Result<Key> {
        let guard = self.0.key.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or_else(|| {
            Error::auth("the vault is locked: the master passphrase is needed")
                .with_hint("set SUPABACKUP_PASSPHRASE, or unlock in the app")
        })
    }

    fn set_key(&self, key: Option<Key>) {
        let mut guard = self.0.key.write().unwrap_or_else(|p| p.into_inner());
        *guard = key;
    }

    pub fn is_unlocked(&self) -> bool {
        self.0.key.read().map(|g| g.is_some()).unwrap_or(false)
    }

    pub fn lock(&self) {
        self.set_key(None);
    }

    pub async fn vault_status(&self) -> Result<VaultStatus> {
        self.0.catalog.call(|c| vault::status(c)).await
    }

    /// Creates the vault (first use). With a passphrase the master key is
    /// wrapped under it; the OS keychain also keeps it where one answers.
    pub async fn setup_vault(&self, passphrase: Option<Secret>) -> Result<()> {
        let keystore = self.0.keystore.clone();
        let kdf = self.0.kdf;
        let actor = self.0.actor.clone();
        let key = self
            .0
            .catalog
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let key = vault::initialize(&tx, passphrase.as_ref(), keystore.as_ref(), kdf)?;
                let st = vault::status(&tx)?;
                audit::append(
                    &tx,
                    &actor,
                    "vault.setup",
                    None,
                    &json!({"passphrase": st.has_passphrase, "keychain": st.keychain}),
                )?;
                tx.commit()?;
                Ok(key)
            })
            .await?;
        self.set_key(Some(key));
        Ok(())
    }

    /// Unlocks with the keychain, or with `passphrase`. A wrong passphrase
    /// gives an `Auth` error and changes nothing.
    pub async fn unlock(&self, passphrase: Option<Secret>) -> Result<()> {
        let keystore = self.0.keystore.clone();
        let key = self
            .0
            .catalog
            .call(move |c| vault::unlock(c, passphrase.as_ref(), keystore.as_ref()))
            .await?;
        self.set_key(Some(key));
        // What a crash left behind on servers needs their passwords.
        match tokio::time::timeout(std::time::Duration::from_secs(60), self.finish_recovery()).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("could not finish recovering interrupted restores: {e}"),
            Err(_) => tracing::warn!(
                "recovering interrupted restores took too long; retried at the next unlock"
            ),
        }
        // Destinations may be slow or away: cleaning up what interrupted
        // copies left there runs in the background.
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.finish_copy_recovery().await {
                tracing::warn!("could not finish recovering interrupted copies: {e}");
            }
        });
        Ok(())
    }

    /// Sets a new master passphrase (the vault must be unlocked).
    pub async fn change_passphrase(&self, new: Secret) -> Result<()> {
        let key = self.key()?;
        let kdf = self.0.kdf;
        let actor = self.0.actor.clone();
        self.0
            .catalog
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                vault::change_passphrase(&tx, &key, &new, kdf)?;
                audit::append(&tx, &actor, "vault.passphrase_change", None, &json!({}))?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    // ----- projects ----------------------------------------------------

    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        self.0.catalog.call(|c| projects::list(c)).await
    }

    /// A project by name, id or unambiguous ref.
    pub async fn project(&self, key: &str) -> Result<Project> {
        let key = key.to_owned();
        self.0.catalog.call(move |c| projects::find(c, &key)).await
    }

    /// The kinds of credential stored for a project (never their values).
    pub async fn project_secret_kinds(&self, project_id: &str) -> Result<Vec<String>> {
        let id = project_id.to_owned();
        self.0
            .catalog
            .call(move |c| catalog::secrets::kinds_for(c, &id))
            .await
    }

    pub(crate) fn secrets_of(v: &ValidProject) -> Vec<(SecretKind, Secret)> {
        let mut out = Vec::new();
        if let Some(p) = &v.conn.password {
            out.push((SecretKind::DbPassword, p.clone()));
        }
        if let Some(t) = &v.access_token {
            out.push((SecretKind::AccessToken, t.clone()));
        }
        if let Some(k) = &v.service_role_key {
            out.push((SecretKind::ServiceRoleKey, k.clone()));
        }
        out
    }

    /// Validates and stores a new project; its credentials are sealed.
    pub async fn add_project(&self, input: ProjectInput) -> Result<Project> {
        let valid = project::validate(&input).map_err(|e| project::field_errors_to_error(&e))?;
        let secrets = Self::secrets_of(&valid);
        let key = if secrets.is_empty() {
            None
        } else {
            Some(self.key()?)
        };
        let actor = self.0.actor.clone();
        self.0
            .catalog
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let id = insert_project(&tx, &actor, &valid, key.as_ref(), &secrets)?;
                let p = projects::get_by_id(&tx, &id)?
                    .ok_or_else(|| Error::internal("inserted project vanished"))?;
                tx.commit()?;
                Ok(p)
            })
            .await
    }

    /// Applies `patch` to a project.
    pub async fn edit_project(&self, key: &str, patch: ProjectPatch) -> Result<Project> {
        let current = self.project(key).await?;
        let mut url_info = ConnInfo::parse(&current.db_url)?;
        url_info.password = None;
        let input = ProjectInput {
            name: patch.name.clone().unwrap_or_else(|| current.name.clone()),
            project_ref: patch
                .project_ref
                .clone()
                .unwrap_or_else(|| current.project_ref.clone()),
            db_url: patch
                .db_url
                .clone()
                .unwrap_or_else(|| current.db_url.clone()),
            db_password: patch.db_password.clone(),
            environment: patch
                .environment
                .clone()
                .unwrap_or_else(|| current.environment.as_str().to_owned()),
            organization_id: patch
                .organization_id
                .clone()
                .or_else(|| current.organization_id.clone()),
            description: patch
                .description
                .clone()
                .or_else(|| current.description.clone()),
            access_token: patch.access_token.clone(),
            service_role_key: patch.service_role_key.clone(),
            ca_cert: patch.ca_cert.clone().or_else(|| current.ca_cert.clone()),
        };
        let valid = project::validate(&input).map_err(|e| project::field_errors_to_error(&e))?;
        let secrets = Self::secrets_of(&valid);
        let key = if secrets.is_empty() {
            None
        } else {
            Some(self.key()?)
        };
        let mut changed = Vec::new();
        if valid.name != current.name {
            changed.push("name");
        }
        if valid.project_ref != current.project_ref {
            changed.push("project_ref");
        }
        if valid.conn.url_without_password() != current.db_url {
            changed.push("db_url");
        }
        if valid.environment != current.environment {
            changed.push("environment");
        }
        if valid.organization_id != current.organization_id {
            changed.push("organization_id");
        }
        if valid.description != current.description {
            changed.push("description");
        }
        if valid.ca_cert != current.ca_cert {
            changed.push("ca_cert");
        }
        for (kind, _) in &secrets {
            changed.push(kind.as_str());
        }
        let actor = self.0.actor.clone();
        let id = current.id.clone();
        self.0
            .catalog
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                projects::update(&tx, &id, &valid)?;
                if let Some(key) = &key {
                    for (kind, value) in &secrets {
                        vault::put_secret(&tx, key, Some(&id), *kind, value)?;
                    }
                }
                audit::append(
                    &tx,
                    &actor,
                    "project.edit",
                    Some(&valid.name),
                    &json!({ "changed": changed }),
                )?;
                let p = projects::get_by_id(&tx, &id)?
                    .ok_or_else(|| Error::internal("edited project vanished"))?;
                tx.commit()?;
                Ok(p)
            })
            .await
    }

    /// Removes a project and its sealed credentials. Its backups stay on
    /// disk and in the catalog, marked with the project's name.
    pub async fn remove_project(&self, key: &str) -> Result<Project> {
        let p = self.project(key).await?;
        let actor = self.0.actor.clone();
        let removed = p.clone();
        self.0
            .catalog
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                projects::delete(&tx, &removed.id)?;
                audit::append(
                    &tx,
                    &actor,
                    "project.remove",
                    Some(&removed.name),
                    &json!({"ref": removed.project_ref, "id": removed.id}),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(p)
    }

    /// The project's connection details with its password opened from the
    /// vault (the vault must be unlocked when a password is stored).
    pub async fn connection_info(&self, p: &Project) -> Result<ConnInfo> {
        let mut info = ConnInfo::parse(&p.db_url)?;
        if p.has_db_password {
            let key = self.key()?;
            let id = p.id.clone();
            info.password = self
                .0
                .catalog
                .call(move |c| vault::get_secret(c, &key, Some(&id), SecretKind::DbPassword))
                .await?;
        }
        if let Some(pem) = &p.ca_cert {
            self.apply_ca_cert(&mut info, pem)?;
        }
        crate::engine::pg::pgpass::fill(&mut info);
        Ok(info)
    }

    /// Makes a connection verify the server against a project's CA
    /// certificate, kept as a file because libpq tools need a path.
    fn apply_ca_cert(&self, info: &mut ConnInfo, pem: &str) -> Result<()> {
        use sha2::Digest;
        if info.sslrootcert.is_some() {
            return Ok(());
        }
        let digest = crate::engine::crypto::hex(&sha2::Sha256::digest(pem.as_bytes()));
        let dir = self.0.dirs.config().join("ca");
        let path = dir.join(format!("{}.crt", &digest[..32]));
        if !path.exists() {
            crate::engine::paths::create_dirs_synced(&dir)?;
            crate::engine::paths::write_atomic(&path, pem.as_bytes())?;
        }
        crate::engine::pg::tls::use_project_ca(info, path.to_string_lossy().into_owned());
        Ok(())
    }

    /// Tests a project's connection and pre-flight; the outcome (good or
    /// bad) is recorded as an analytics event for its health history.
    pub async fn test_project(&self, key: &str) -> Result<ConnectionReport> {
        let p = self.project(key).await?;
        let info = self.connection_info(&p).await?;
        let result = probe::test_connection(&info, self.0.pg_bin_dir.as_deref()).await;
        let event = match &result {
            Ok(r) => json!({
                "ok": r.ok,
                "server_version": r.server_version,
                "database_size_bytes": r.database_size_bytes,
                "latency_ms": r.latency_ms,
                "connect_ms": r.connect_ms,
                "problems": r.problems,
                "warnings": r.warnings,
            }),
            Err(e) => json!({"ok": false, "error": e.message}),
        };
        let id = p.id.clone();
        self.0
            .catalog
            .call(move |c| analytics::record(c, Some(&id), "connection_test", &event))
            .await?;
        result
    }

    /// Tests a URL that is not (yet) a project, e.g. from the add form.
    pub async fn test_url(&self, url: &str, password: Option<Secret>) -> Result<ConnectionReport> {
        self.test_url_with_ca(url, password, None).await
    }

    /// Tests a URL with the CA certificate (PEM) a project would use.
    pub async fn test_url_with_ca(
        &self,
        url: &str,
        password: Option<Secret>,
        ca_cert: Option<String>,
    ) -> Result<ConnectionReport> {
        let mut info = ConnInfo::parse(url)?;
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            info.password = Some(p);
        }
        if let Some(pem) = ca_cert.filter(|p| !p.trim().is_empty()) {
            project::validate_ca_cert(&pem).map_err(Error::invalid)?;
            self.apply_ca_cert(&mut info, &pem)?;
        }
        crate::engine::pg::pgpass::fill(&mut info);
        probe::test_connection(&info, self.0.pg_bin_dir.as_deref()).await
    }

    /// The last connection tests of a project, newest first.
    pub async fn health_history(
        &self,
        project_id: &str,
        limit: usize,
    ) -> Result<Vec<analytics::Event>> {
        let id = project_id.to_owned();
        self.0
            .catalog
            .call(move |c| analytics::recent(c, &id, "connection_test", limit))
            .await
    }

    pub async fn audit_log(
        &self,
        prefix: Option<String>,
        limit: usize,
    ) -> Result<Vec<audit::AuditEntry>> {
        self.0
            .catalog
            .call(move |c| audit::list(c, prefix.as_deref(), limit))
            .await
    }

    /// The unlocked master key, for engine modules that seal data.
    pub(crate) fn master_key(&self) -> Result<Key> {
        self.key()
    }

    pub(crate) fn kdf(&self) -> KdfParams {
        self.0.kdf
    }

    /// How this engine delivers alerts (EngineOptions::delivery).
    pub fn delivery(&self) -> crate::engine::notify::Delivery {
        self.0.delivery.clone()
    }

    pub(crate) fn stream_min_bytes(&self) -> i64 {
        self.0.stream_min_bytes
    }
}

/// Inserts a project with its sealed credentials and an audit entry, inside
/// the caller's transaction.
pub(crate) fn insert_project(
    conn: &rusqlite::Connection,
    actor: &str,
    valid: &ValidProject,
    key: Option<&Key>,
    secrets: &[(SecretKind, Secret)],
) -> Result<String> {
    let id = projects::insert(conn, valid)?;
    if !secrets.is_empty() {
        let key = key.ok_or_else(|| Error::auth("the vault is locked"))?;
        for (kind, value) in secrets {
            vault::put_secret(conn, key, Some(&id), *kind, value)?;
        }
    }
    audit::append(
        conn,
        actor,
        "project.add",
        Some(&valid.name),
        &json!({
            "ref": valid.project_ref,
            "environment": valid.environment.as_str(),
            "url": valid.conn.url_without_password(),
            "credentials": secrets.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        }),
    )?;
    Ok(id)
}
