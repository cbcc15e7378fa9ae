//! Bulk import and export of project configurations as JSON or CSV (format
//! from the file extension). Exports leave credentials out unless asked;
//! included credentials are encrypted with an export passphrase (Argon2id +
//! AES-256-GCM, self-contained `enc:v1:` values). Imports report every bad
//! row by line with its reason, and write nothing unless every row is good
//! or the caller accepts a partial import.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

use crate::engine::api::{Engine, insert_project};
use crate::engine::catalog::{audit, now, projects};
use crate::engine::crypto::{Key, Secret};
use crate::engine::error::{Error, Result};
use crate::engine::paths::write_atomic;
use crate::engine::project::{self, ProjectInput};
use crate::engine::sealed::{Opener, Sealer};
use crate::engine::vault::{self, SecretKind};

pub const FORMAT_NAME: &str = "supabackup.projects";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Csv,
}

impl FileFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Ok(FileFormat::Json),
            Some("csv") => Ok(FileFormat::Csv),
            _ => Err(Error::invalid(format!(
                "cannot tell the format of {}: use a .json or .csv file name",
                path.display()
            ))),
        }
    }
}

/// One project in an export file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectRecord {
    pub name: String,
    pub project_ref: String,
    pub db_url: String,
    #[serde(default)]
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role_key: Option<String>,
    /// The server's CA certificate, PEM (public; not sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JsonFile<P> {
    format: String,
    version: u32,
    #[serde(default)]
    exported_at: Option<String>,
    projects: Vec<P>,
}

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Include credentials, encrypted with this passphrase.
    pub secrets_passphrase: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    pub path: PathBuf,
    pub projects: usize,
    pub secrets_included: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Keep the good rows when some are bad.
    pub accept_partial: bool,
    /// Passphrase for `enc:v1:` credentials in the file.
    pub secrets_passphrase: Option<Secret>,
    /// Check everything, write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line in the file where the row starts.
    pub line: usize,
    pub name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub total: usize,
    /// Names of the good rows (imported when `applied`).
    pub valid: Vec<String>,
    pub rejected: Vec<RowError>,
    /// Whether anything was written to the catalog.
    pub applied: bool,
}

/// A project as an export row; its credentials sealed when `seal_with`
/// (the export's sealer and the vault's key) is given, else left out.
pub(crate) fn project_record(
    c: &rusqlite::Connection,
    p: &crate::engine::project::Project,
    seal_with: Option<(&Sealer, &Key)>,
) -> Result<ProjectRecord> {
    let mut rec = ProjectRecord {
        name: p.name.clone(),
        project_ref: p.project_ref.clone(),
        db_url: p.db_url.clone(),
        environment: p.environment.as_str().to_owned(),
        organization_id: p.organization_id.clone(),
        description: p.description.clone(),
        ca_cert: p.ca_cert.clone(),
        ..Default::default()
    };
    if let Some((sealer, key)) = seal_with {
        for kind in SecretKind::PROJECT_KINDS {
            if let Some(v) = vault::get_secret(c, key, Some(&p.id), kind)? {
                let sealed = Some(sealer.seal(kind, &v)?);
                match kind {
                    SecretKind::DbPassword => rec.db_password = sealed,
                    SecretKind::AccessToken => rec.access_token = sealed,
                    _ => rec.service_role_key = sealed,
                }
            }
        }
    }
    Ok(rec)
}

/// A project row as what a person would type to add it, its sealed
/// credentials opened; a reason when it cannot be opened or is invalid.
pub(crate) fn record_to_valid(
    rec: ProjectRecord,
    opener: &mut Opener<'_>,
) -> std::result::Result<project::ValidProject, String> {
    let mut open =
        |kind, v: &Option<String>| v.as_deref().map(|s| opener.open(kind, s)).transpose();
    let input = ProjectInput {
        name: rec.name,
        project_ref: rec.project_ref,
        db_url: rec.db_url,
        db_password: open(SecretKind::DbPassword, &rec.db_password)?,
        environment: rec.environment,
        organization_id: rec.organization_id,
        description: rec.description,
        access_token: open(SecretKind::AccessToken, &rec.access_token)?,
        service_role_key: open(SecretKind::ServiceRoleKey, &rec.service_role_key)?,
        ca_cert: rec.ca_cert,
    };
    project::validate(&input).map_err(|errs| {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

// ----- reading ------------------------------------------------------------

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parses a file into (line, record-or-reason) rows. A file that is not an
/// export at all is one error for the whole file.
pub fn read_records(
    path: &Path,
) -> Result<Vec<(usize, std::result::Result<ProjectRecord, String>)>> {
    let format = FileFormat::from_path(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            Error::invalid(format!("{} is not UTF-8 text", path.display()))
        }
        std::io::ErrorKind::NotFound => {
            Error::not_found(format!("{} does not exist", path.display()))
        }
        _ => Error::io("read", path, e),
    })?;
    match format {
        FileFormat::Json => read_json(path, &text),
        FileFormat::Csv => read_csv(path, &text),
    }
}

fn read_json(
    path: &Path,
    text: &str,
) -> Result<Vec<(usize, std::result::Result<ProjectRecord, String>)>> {
    let file: JsonFile<&RawValue> = serde_json::from_str(text).map_err(|e| {
        Error::invalid(format!(
            "{} is not a valid project export: {e}",
            path.display()
        ))
        .with_hint(format!(
            "expected a JSON object with \"format\": \"{FORMAT_NAME}\" and a \"projects\" array"
        ))
    })?;
    if file.format != FORMAT_NAME {
        return Err(Error::invalid(format!(
            "{} is not a supabackup project export (format '{}')",
            path.display(),
            file.format
        )));
    }
    if file.version != 1 {
        return Err(Error::invalid(format!(
            "{} has export version {}; this supabackup reads version 1",
            path.display(),
            file.version
        )));
    }
    let base = text.as_ptr() as usize;
    Ok(file
        .projects
        .into_iter()
        .map(|raw| {
            let line = line_of(text, (raw.get().as_ptr() as usize).saturating_sub(base));
            let rec = serde_json::from_str::<ProjectRecord>(raw.get()).map_err(|e| {
                let msg = e.to_string();
                // serde's positions are relative to the row; drop them.
                msg.split(" at line ").next().unwrap_or(&msg).to_owned()
            });
            (line, rec)
        })
        .collect())
}

const CSV_HEADERS: [&str; 10] = [
    "name",
    "project_ref",
    "db_url",
    "environment",
    "organization_id",
    "description",
    "db_password",
    "access_token",
    "service_role_key",
    "ca_cert",
];

fn read_csv(
    path: &Path,
    text: &str,
) -> Result<Vec<(usize, std::result::Result<ProjectRecord, String>)>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid(format!("{} is not valid CSV: {e}", path.display())))?
        .clone();
    let known: HashSet<&str> = CSV_HEADERS.iter().copied().collect();
    if let Some(bad) = headers.iter().find(|h| !known.contains(h)) {
        return Err(
            Error::invalid(format!("{}: unknown CSV column '{bad}'", path.display()))
                .with_hint(format!("columns: {}", CSV_HEADERS.join(","))),
        );
    }
    for required in ["name", "project_ref", "db_url"] {
        if !headers.iter().any(|h| h == required) {
            return Err(Error::invalid(format!(
                "{}: the CSV header lacks the '{required}' column",
                path.display()
            ))
            .with_hint(format!("columns: {}", CSV_HEADERS.join(","))));
        }
    }
    let mut rows = Vec::new();
    for result in reader.records() {
        match result {
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                rows.push((line, Err(format!("unreadable CSV row: {e}"))));
            }
            Ok(record) => {
                let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
                if record.len() != headers.len() {
                    rows.push((
                        line,
                        Err(format!(
                            "expected {} fields, found {}",
                            headers.len(),
                            record.len()
                        )),
                    ));
                    continue;
                }
                let get = |col: &str| -> Option<String> {
                    headers
                        .iter()
                        .position(|h| h == col)
                        .and_then(|i| record.get(i))
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                };
                rows.push((
                    line,
                    Ok(ProjectRecord {
                        name: get("name").unwrap_or_default(),
                        project_ref: get("project_ref").unwrap_or_default(),
                        db_url: get("db_url").unwrap_or_default(),
                        environment: get("environment").unwrap_or_default(),
                        organization_id: get("organization_id"),
                        description: get("description"),
                        db_password: get("db_password"),
                        access_token: get("access_token"),
                        service_role_key: get("service_role_key"),
                        ca_cert: get("ca_cert"),
                    }),
                ));
            }
        }
    }
    Ok(rows)
}

impl Engine {
    /// Exports every project to `path` (.json or .csv).
    pub async fn export_projects(&self, path: &Path, opts: ExportOptions) -> Result<ExportSummary> {
        let format = FileFormat::from_path(path)?;
        let key = match opts.secrets_passphrase {
            Some(_) => Some(self.master_key()?),
            None => None,
        };
        let sealer = match &opts.secrets_passphrase {
            Some(p) => Some(crate::engine::sealed::sealer_for(p, self.kdf()).await?),
            None => None,
        };
        let path_buf = path.to_path_buf();
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let list = projects::list(c)?;
                let mut records = Vec::with_capacity(list.len());
                for p in &list {
                    let seal_with = sealer.as_ref().zip(key.as_ref());
                    records.push(project_record(c, p, seal_with)?);
                }
                let bytes = match format {
                    FileFormat::Json => {
                        let file = JsonFile {
                            format: FORMAT_NAME.to_owned(),
                            version: 1,
                            exported_at: Some(now()),
                            projects: records,
                        };
                        let mut b = serde_json::to_vec_pretty(&file)?;
                        b.push(b'\n');
                        b
                    }
                    FileFormat::Csv => {
                        let mut w = csv::Writer::from_writer(Vec::new());
                        w.write_record(CSV_HEADERS)
                            .map_err(|e| Error::internal(format!("CSV: {e}")))?;
                        for r in &records {
                            let cells = [
                                r.name.as_str(),
                                &r.project_ref,
                                &r.db_url,
                                &r.environment,
                                r.organization_id.as_deref().unwrap_or(""),
                                r.description.as_deref().unwrap_or(""),
                                r.db_password.as_deref().unwrap_or(""),
                                r.access_token.as_deref().unwrap_or(""),
                                r.service_role_key.as_deref().unwrap_or(""),
                                r.ca_cert.as_deref().unwrap_or(""),
                            ];
                            w.write_record(cells).map_err(|e| Error::internal(format!("CSV: {e}")))?;
                        }
                        w.into_inner().map_err(|e| Error::internal(format!("CSV: {e}")))?
                    }
                };
                write_atomic(&path_buf, &bytes)?;
                let summary = ExportSummary {
                    path: path_buf.clone(),
                    projects: list.len(),
                    secrets_included: sealer.is_some(),
                };
                audit::append(
                    c,
                    &actor,
                    "project.export",
                    Some(&path_buf.display().to_string()),
                    &json!({"projects": summary.projects, "secrets_included": summary.secrets_included}),
                )?;
                Ok(summary)
            })
            .await
    }

    /// Imports projects from `path`. Every bad row is reported by line;
    /// nothing is written unless all rows are good or `accept_partial`.
    pub async fn import_projects(&self, path: &Path, opts: ImportOptions) -> Result<ImportReport> {
        let path_buf = path.to_path_buf();
        let passphrase = opts.secrets_passphrase.clone();
        let prepared = tokio::task::spawn_blocking(move || -> Result<_> {
            let rows = read_records(&path_buf)?;
            let mut opener = Opener::new(passphrase.as_ref());
            let mut out = Vec::with_capacity(rows.len());
            for (line, row) in rows {
                out.push((line, row.and_then(|rec| record_to_valid(rec, &mut opener))));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;

        let needs_key = prepared.iter().any(|(_, r)| {
            r.as_ref().is_ok_and(|v| {
                v.conn.password.is_some()
                    || v.access_token.is_some()
                    || v.service_role_key.is_some()
            })
        });
        let key = if needs_key && !opts.dry_run {
            Some(self.master_key()?)
        } else {
            None
        };
        let actor = self.actor().to_owned();
        let file = path.display().to_string();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let mut seen: HashSet<String> = HashSet::new();
                let mut report = ImportReport {
                    total: prepared.len(),
                    valid: Vec::new(),
                    rejected: Vec::new(),
                    applied: false,
                };
                let mut good = Vec::new();
                for (line, row) in prepared {
                    match row {
                        Err(reason) => report.rejected.push(RowError {
                            line,
                            name: None,
                            reason,
                        }),
                        Ok(valid) => {
                            let lower = valid.name.to_lowercase();
                            if !seen.insert(lower) {
                                report.rejected.push(RowError {
                                    line,
                                    name: Some(valid.name.clone()),
                                    reason: format!(
                                        "the name '{}' appears more than once in the file",
                                        valid.name
                                    ),
                                });
                            } else if projects::get_by_name(&tx, &valid.name)?.is_some() {
                                report.rejected.push(RowError {
                                    line,
                                    name: Some(valid.name.clone()),
                                    reason: format!(
                                        "a project named '{}' already exists",
                                        valid.name
                                    ),
                                });
                            } else {
                                report.valid.push(valid.name.clone());
                                good.push(valid);
                            }
                        }
                    }
                }
                let write = !opts.dry_run
                    && !good.is_empty()
                    && (report.rejected.is_empty() || opts.accept_partial);
                if write {
                    for valid in &good {
                        let secrets = Engine::secrets_of(valid);
                        insert_project(&tx, &actor, valid, key.as_ref(), &secrets)?;
                    }
                    audit::append(
                        &tx,
                        &actor,
                        "project.import",
                        Some(&file),
                        &json!({"imported": good.len(), "rejected": report.rejected.len()}),
                    )?;
                    tx.commit()?;
                    report.applied = true;
                }
                Ok(report)
            })
            .await
    }
}
