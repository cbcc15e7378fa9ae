//! What a backup contains and how it is stored.

use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// The seed's backup types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// Roles + schema + data + migration history.
    #[default]
    Full,
    /// Schema only.
    Schema,
    /// Data only.
    Data,
    /// Roles only.
    Roles,
    /// A safety snapshot taken before a restore.
    PreRestore,
    /// What a full backup holds, stored in the content-addressed repository:
    /// only chunks it lacks are written (src/engine/repo).
    Incremental,
}

impl BackupKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(BackupKind::Full),
            "schema" => Ok(BackupKind::Schema),
            "data" => Ok(BackupKind::Data),
            "roles" => Ok(BackupKind::Roles),
            "pre-restore" => Ok(BackupKind::PreRestore),
            "incremental" => Ok(BackupKind::Incremental),
            other => Err(Error::invalid(format!(
                "unknown backup type '{other}': use full, incremental, schema, data or roles"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Schema => "schema",
            BackupKind::Data => "data",
            BackupKind::Roles => "roles",
            BackupKind::PreRestore => "pre-restore",
            BackupKind::Incremental => "incremental",
        }
    }
}

/// Compression codec; the file extension names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// zstd (multi-threaded): the fast default.
    #[default]
    Zstd,
    /// xz (multi-threaded liblzma): smallest files, much slower.
    Xz,
    /// Plain SQL.
    None,
}

impl Codec {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "zstd" | "zst" => Ok(Codec::Zstd),
            "xz" => Ok(Codec::Xz),
            "none" => Ok(Codec::None),
            other => Err(Error::invalid(format!(
                "unknown compression '{other}': use zstd, xz or none"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
            Codec::None => "none",
        }
    }
    /// The extension after `.sql` ("" for none).
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Zstd => ".zst",
            Codec::Xz => ".xz",
            Codec::None => "",
        }
    }
    pub fn default_level(self) -> u8 {
        match self {
            Codec::Zstd => 3,
            Codec::Xz => 6,
            Codec::None => 0,
        }
    }
}

/// The artifacts a backup folder can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Artifact {
    Roles,
    Schema,
    Data,
    History,
    /// The schema as a pg_dump custom archive: lets a restore pick objects
    /// exactly (pg_restore -L) instead of rewriting SQL text.
    SchemaArchive,
    /// The platform schemas' DDL as a custom archive, written by earlier
    /// versions (the schema archive now holds every schema).
    PlatformArchive,
}

impl Artifact {
    pub fn stem(self) -> &'static str {
        match self {
            Artifact::Roles => "roles",
            Artifact::Schema | Artifact::SchemaArchive => "schema",
            Artifact::Data => "data",
            Artifact::History => "history",
            Artifact::PlatformArchive => "platform",
        }
    }

    pub fn is_archive(self) -> bool {
        matches!(self, Artifact::SchemaArchive | Artifact::PlatformArchive)
    }
    /// pg_dump's (or pg_dumpall's) completion comment, which every complete
    /// artifact contains near its end.
    pub fn completion_marker(self) -> Option<&'static str> {
        match self {
            Artifact::Roles => Some("-- PostgreSQL database cluster dump complete"),
            Artifact::Data => Some("-- supabackup data dump complete"),
            Artifact::Schema | Artifact::History => Some("-- PostgreSQL database dump complete"),
            Artifact::SchemaArchive | Artifact::PlatformArchive => None,
        }
    }
    /// The file name for a codec and encryption choice, e.g. `data.sql.zst.enc`.
    pub fn file_name(self, codec: Codec, encrypted: bool) -> String {
        format!(
            "{}.{}{}{}",
            self.stem(),
            if self.is_archive() { "dump" } else { "sql" },
            codec.extension(),
            if encrypted { ".enc" } else { "" }
        )
    }
}

/// Everything that decides what a backup contains and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOptions {
    pub kind: BackupKind,
    /// Only these schemas (empty: all user schemas).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Tables left out, as `schema.table` (patterns as pg_dump's -T).
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    pub codec: Codec,
    /// 0–9; the codec's default when `None`.
    pub level: Option<u8>,
    pub encrypt: bool,
    /// pg_dump processes dumping table data side by side (1–8; `None`:
    /// [`DEFAULT_STREAMS`]). See merge.rs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<u8>,
}

/// Parallel data streams when the options name none.
pub const DEFAULT_STREAMS: u8 = 2;
/// The most the options may ask for.
pub const MAX_STREAMS: u8 = 8;

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            kind: BackupKind::Full,
            schemas: Vec::new(),
            exclude_tables: Vec::new(),
            codec: Codec::Zstd,
            level: None,
            encrypt: true,
            streams: None,
        }
    }
}

impl BackupOptions {
    /// The same options with every name read as an identifier (see
    /// `ident.rs`): schemas as exact names, excluded tables as
    /// `schema.table` written so they read back.
    pub fn normalized(&self) -> Result<BackupOptions> {
        let mut o = self.clone();
        o.schemas = self
            .schemas
            .iter()
            .map(|s| crate::engine::ident::parse_schema(s))
            .collect::<Result<_>>()?;
        o.exclude_tables = self
            .exclude_tables
            .iter()
            .map(|t| {
                crate::engine::ident::parse_table(t)
                    .map(|(s, n)| crate::engine::ident::render_table(&s, &n))
                    .map_err(|e| Error::invalid(format!("excluded {}", e.message)))
            })
            .collect::<Result<_>>()?;
        Ok(o)
    }

    /// The excluded tables as (schema, table).
    pub fn excluded_pairs(&self) -> Vec<(String, String)> {
        self.exclude_tables
            .iter()
            .filter_map(|t| crate::engine::ident::parse_table(t).ok())
            .collect()
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(l) = self.level
            && l > 9
        {
            return Err(Error::invalid(format!(
                "compression level {l} is out of range 0–9"
            )));
        }
        self.normalized()?;
        if let Some(n) = self.streams
            && !(1..=MAX_STREAMS).contains(&n)
        {
            return Err(Error::invalid(format!(
                "{n} parallel streams is out of range 1–{MAX_STREAMS}"
            )));
        }
        if self.kind == BackupKind::Incremental {
            if self.streams.is_some_and(|n| n > 1) {
                return Err(Error::invalid(
                    "incremental backups dump their data in one stream: a stable order keeps unchanged chunks shared",
                )
                .with_hint("drop --streams, or take a full backup"));
            }
            if !self.encrypt {
                return Err(Error::invalid(
                    "incremental backups live in the encrypted repository: they cannot be taken unencrypted",
                )
                .with_hint("drop --no-encrypt (a backup passphrase is needed), or take a full backup"));
            }
            if self.codec != Codec::Zstd {
                return Err(Error::invalid(
                    "incremental backups compress each chunk with zstd: choose zstd (or leave the compression at its default)",
                ));
            }
        }
        if self.kind == BackupKind::Roles
            && (!self.schemas.is_empty() || !self.exclude_tables.is_empty())
        {
            return Err(Error::invalid(
                "a roles backup takes no schema or table filters",
            ));
        }
        Ok(())
    }

    /// How many pg_dump processes may dump table data side by side.
    pub fn effective_streams(&self) -> u8 {
        match self.kind {
            BackupKind::Incremental => 1,
            _ => self
                .streams
                .unwrap_or(DEFAULT_STREAMS)
                .clamp(1, MAX_STREAMS),
        }
    }

    pub fn effective_level(&self) -> u8 {
        self.level.unwrap_or(self.codec.default_level())
    }

    /// The artifacts this backup produces.
    pub fn artifacts(&self) -> Vec<Artifact> {
        let filtered = !self.schemas.is_empty();
        match self.kind {
            BackupKind::Full | BackupKind::Incremental if filtered => {
                vec![Artifact::Schema, Artifact::Data]
            }
            // A safety snapshot covers all a restore may change.
            BackupKind::Full | BackupKind::PreRestore | BackupKind::Incremental => vec![
                Artifact::Roles,
                Artifact::Schema,
                Artifact::Data,
                Artifact::History,
            ],
            BackupKind::Schema => vec![Artifact::Schema],
            BackupKind::Data => vec![Artifact::Data],
            BackupKind::Roles => vec![Artifact::Roles],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_per_type_and_names() {
        let mut o = BackupOptions::default();
        assert_eq!(o.artifacts().len(), 4);
        assert_eq!(
            Artifact::SchemaArchive.file_name(Codec::Zstd, true),
            "schema.dump.zst.enc"
        );
        o.schemas = vec!["public".into()];
        assert_eq!(o.artifacts(), [Artifact::Schema, Artifact::Data]);
        o.kind = BackupKind::Roles;
        assert!(o.validate().is_err(), "roles take no filters");
        assert_eq!(
            Artifact::Data.file_name(Codec::Zstd, true),
            "data.sql.zst.enc"
        );
        assert_eq!(Artifact::Roles.file_name(Codec::None, false), "roles.sql");
        assert_eq!(
            Artifact::Schema.file_name(Codec::Xz, false),
            "schema.sql.xz"
        );
    }

    #[test]
    fn validation() {
        let mut o = BackupOptions {
            level: Some(10),
            ..Default::default()
        };
        assert!(o.validate().is_err());
        o.level = Some(9);
        assert!(o.validate().is_ok());
        o.exclude_tables = vec!["nodot".into()];
        assert!(o.validate().is_err());
        assert!(BackupKind::parse("weekly").is_err());
        assert!(Codec::parse("gzip").is_err());
    }
}
