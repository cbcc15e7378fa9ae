//! `metadata.json`: the manifest every backup folder carries. The catalog is
//! an index; the manifests are the truth `catalog rebuild` recreates it from.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::options::{Artifact, BackupOptions, Codec};
use super::tap::{RowHash, SequenceStat, TableStat};
use crate::engine::error::{Error, Result};

pub const MANIFEST_FILE: &str = "metadata.json";
pub const FORMAT_NAME: &str = "supabackup.backup";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub id: Option<String>,
    pub name: String,
    pub project_ref: String,
    pub slug: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub artifact: Artifact,
    pub name: String,
    pub codec: Codec,
    pub encrypted: bool,
    pub plain_size: u64,
    pub stored_size: u64,
    pub plain_sha256: String,
    pub stored_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub path: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatviewInfo {
    pub schema: String,
    pub name: String,
    /// Whether it held data at backup time (then data.sql refreshes it).
    pub populated: bool,
}

/// One catalog object as the source had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    /// table, view, materialized view, sequence, foreign table, function,
    /// procedure, aggregate, type.
    pub kind: String,
    pub schema: String,
    /// For functions: `name(identity arguments)`.
    pub name: String,
    /// Columns for relations, body digest for functions, type kind for types.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub started_at: String,
    pub completed_at: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub status: String,
    pub project: ProjectInfo,
    pub options: BackupOptions,
    pub tool: String,
    pub pg_dump: ToolInfo,
    pub server_version: String,
    pub server_major: u32,
    pub database_size_bytes: i64,
    /// The exported snapshot all dumps of this backup read, if one was used.
    pub snapshot: Option<String>,
    pub files: Vec<FileEntry>,
    /// Per-table row counts and content checksums of data.sql.
    pub tables: Vec<TableStat>,
    /// The row hash of the table checksums (SHA-256 when absent: older backups).
    #[serde(default)]
    pub row_checksum: RowHash,
    pub sequences: Vec<SequenceStat>,
    pub matviews: Vec<MatviewInfo>,
    /// Roles re-created by roles.sql.
    pub roles: Vec<String>,
    /// Platform objects deliberately left out of schema.sql (the target
    /// project has its own), e.g. `PUBLICATION supabase_realtime`.
    #[serde(default)]
    pub left_out: Vec<String>,
    /// Their dump ids in `schema.dump` (for restoring it with stock tools:
    /// every other entry is what `schema.sql` holds).
    #[serde(default)]
    pub left_out_ids: Vec<i32>,
    /// Every non-built-in role of the source cluster (owners, grantees and
    /// policy roles are among them), for restores into a plain server.
    #[serde(default)]
    pub cluster_roles: Vec<String>,
    /// The source's catalog at backup time, for restore previews.
    #[serde(default)]
    pub objects: Vec<ObjectSummary>,
    pub timings: Timings,
    pub warnings: Vec<String>,
    /// Encryption parameters (informational: each file's header is authoritative).
    pub encryption: Option<EncryptionInfo>,
    /// For a repository snapshot (an incremental backup): where its files'
    /// chunks are listed. Its `files` then describe the plain streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<RepoSection>,
}

/// A snapshot's place in the content-addressed repository (src/engine/repo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSection {
    /// The repository's id (its config.json).
    pub id: String,
    pub files: Vec<RepoFileRef>,
}

/// One stream of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFileRef {
    /// The file it stands for, e.g. `data.sql`.
    pub name: String,
    /// Its chunk list in the snapshot folder, e.g. `data.sql.chunks`.
    pub list: String,
    pub list_sha256: String,
    pub chunks: u64,
    /// Chunks the repository did not hold before this backup.
    pub new_chunks: u64,
    /// What they added to the repository, sealed.
    pub new_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    pub algorithm: String,
    pub kdf: String,
}

impl EncryptionInfo {
    pub fn argon2id(algorithm: &str, p: crate::engine::crypto::KdfParams) -> Self {
        EncryptionInfo {
            algorithm: algorithm.into(),
            kdf: format!("argon2id m={} t={} p={}", p.m_cost, p.t_cost, p.p_cost),
        }
    }
}

impl Manifest {
    pub fn file(&self, artifact: Artifact) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.artifact == artifact)
    }

    /// Bytes stored for this backup: its files, or for a repository
    /// snapshot what it added to the repository.
    pub fn total_stored(&self) -> u64 {
        match &self.repo {
            Some(r) => r
                .files
                .iter()
                .map(|f| f.new_bytes + crate::engine::repo::chunks::list_len(f.chunks))
                .sum(),
            None => self.files.iter().map(|f| f.stored_size).sum(),
        }
    }

    /// A digest over the files' stored checksums: the catalog's `checksum`.
    pub fn digest(&self) -> String {
        let joined: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("{}={}", f.name, f.stored_sha256))
            .collect();
        crate::engine::crypto::sha256_hex(joined.join("\n").as_bytes())
    }

    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::corrupt(format!("{} is missing", path.display()))
            }
            _ => Error::io("read", &path, e),
        })?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Version 2 marks a repository snapshot (older readers refuse it
    /// instead of looking for files that are not there).
    pub fn version_for(repo: bool) -> u32 {
        if repo { 2 } else { 1 }
    }

    /// Parses a manifest's bytes; `label` names it in errors.
    pub fn parse(bytes: &[u8], label: &str) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("{label} is unreadable: {e}")))?;
        if m.format != FORMAT_NAME {
            return Err(Error::corrupt(format!(
                "{label} is not a supabackup manifest"
            )));
        }
        if m.version != 1 && m.version != 2 {
            return Err(Error::corrupt(format!(
                "{label} has manifest version {}; this supabackup reads versions 1 and 2",
                m.version
            )));
        }
        Ok(m)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        crate::engine::paths::write_atomic(&dir.join(MANIFEST_FILE), &bytes)
    }
}
