//! The engine's error type: one clear sentence, an optional hint, and a kind
//! that front-ends map to exit codes or banners. It is `Clone` so it can travel
//! inside GUI messages, and it never carries a secret (messages are built from
//! redacted values only).

use std::fmt;

/// What went wrong, coarsely; front-ends map it to exit codes and icons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The user's input is malformed (bad name, URL, cron, file...).
    Invalid,
    /// A named thing (project, backup, file) does not exist.
    NotFound,
    /// The action conflicts with existing state (duplicate name...).
    Conflict,
    /// The vault is locked, the passphrase is wrong or missing.
    Auth,
    /// The database could not be reached or refused the connection.
    Connection,
    /// A required external tool (pg_dump, psql...) is missing or unsuitable.
    Tool,
    /// Stored data failed an integrity check (checksum, authentication tag).
    Corrupt,
    /// A file-system operation failed (disk full, permission denied...).
    Io,
    /// The user cancelled the job.
    Cancelled,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// The process exit code the CLI uses for this kind (documented in `--help`).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Internal => 1,
            ErrorKind::Invalid => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Conflict => 5,
            ErrorKind::Auth => 6,
            ErrorKind::Connection => 7,
            ErrorKind::Tool => 8,
            ErrorKind::Corrupt => 9,
            ErrorKind::Io => 10,
            ErrorKind::Cancelled => 130,
        }
    }
}

/// An engine error: a kind, one readable sentence and an optional hint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    pub fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connection, message)
    }
    pub fn tool(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Tool, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "the job was cancelled")
    }

    /// An I/O error with the action and path it concerns.
    pub fn io(action: &str, path: &std::path::Path, err: std::io::Error) -> Self {
        let hint = match err.kind() {
            std::io::ErrorKind::StorageFull => Some("free some disk space and try again"),
            std::io::ErrorKind::PermissionDenied => Some("check the folder's permissions"),
            _ => None,
        };
        let e = Self::new(
            ErrorKind::Io,
            format!("could not {action} {}: {err}", path.display()),
        );
        match hint {
            Some(h) => e.with_hint(h),
            None => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, _) = &err {
            match code.code {
                rusqlite::ErrorCode::DiskFull => {
                    return Error::new(
                        ErrorKind::Io,
                        "the catalog could not be written: disk full",
                    )
                    .with_hint("free some disk space and try again");
                }
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    return Error::new(
                        ErrorKind::Io,
                        "the catalog is busy (another supabackup process holds it)",
                    )
                    .with_hint("try again in a moment");
                }
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen => {
                    return Error::new(
                        ErrorKind::Io,
                        format!("the catalog could not be opened for writing: {err}"),
                    )
                    .with_hint("check the data directory's permissions");
                }
                _ => {}
            }
        }
        Error::internal(format!("catalog error: {err}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::internal(format!("JSON error: {err}"))
    }
}
