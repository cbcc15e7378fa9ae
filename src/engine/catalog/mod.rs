//! The catalog: a SQLite database in the data directory indexing projects,
//! sealed secrets, backups, jobs, analytics events, the audit log and
//! settings. Schema lives in `migrations/*.sql`, applied by
//! rusqlite_migration. rusqlite is synchronous: async callers go through
//! [`Catalog::call`], which runs the closure on a blocking thread so no UI or
//! reactor thread ever waits on SQLite.

pub mod analytics;
pub mod audit;
pub mod backups;
pub mod projects;
pub mod secrets;
pub mod settings;

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::engine::error::{Error, Result};

/// The catalog's schema steps, in order; each file is applied once.
const MIGRATION_FILES: [&str; 8] = [
    include_str!("../../../migrations/0001_initial.sql"),
    include_str!("../../../migrations/0002_restores.sql"),
    include_str!("../../../migrations/0003_restore_recovery.sql"),
    include_str!("../../../migrations/0004_job_time_zones.sql"),
    include_str!("../../../migrations/0005_project_ca.sql"),
    include_str!("../../../migrations/0006_destinations.sql"),
    include_str!("../../../migrations/0007_parallel_restores.sql"),
    include_str!("../../../migrations/0008_chat_alert_secrets.sql"),
];

static MIGRATIONS: LazyLock<Migrations<'static>> =
    LazyLock::new(|| Migrations::new(MIGRATION_FILES.iter().map(|sql| M::up(sql)).collect()));

/// How many schema versions this build knows.
pub fn known_version() -> usize {
    MIGRATION_FILES.len()
}

/// A handle on the catalog; cheap to clone, shared by all front-ends.
#[derive(Clone)]
pub struct Catalog {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalog")
    }
}

impl Catalog {
    /// Opens (creating when missing) and migrates the catalog at `path`.
    /// Blocking: call it from a blocking context.
    pub fn open(path: &Path) -> Result<Self> {
        // Processes opening one catalog at once (the GUI, the daemon, a
        // CLI) take turns to set it up and migrate it: without this, two
        // both read "version 0" and the second fails creating its tables.
        let lock_path = path.with_extension("sqlite.open-lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
        let conn = Connection::open(path).map_err(|e| {
            Error::new(
                crate::engine::error::ErrorKind::Io,
                format!("could not open the catalog {}: {e}", path.display()),
            )
        })?;
        let catalog = Self::prepare(conn, true);
        let _ = lock.unlock();
        catalog
    }

    /// An in-memory catalog, for tests and previews.
    pub fn open_in_memory() -> Result<Self> {
        Self::prepare(Connection::open_in_memory()?, false)
    }

    fn prepare(mut conn: Connection, wal: bool) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(10))?;
        if wal {
            // journal_mode returns the resulting mode as a row.
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!("catalog journal mode is {mode}, not WAL");
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let current = usize::try_from(current).unwrap_or(0);
        if current > known_version() {
            return Err(Error::invalid(format!(
                "the catalog has schema version {current}, newer than this supabackup knows ({})",
                known_version()
            ))
            .with_hint("upgrade supabackup, or use another --data-dir"));
        }
        // Foreign keys are off while migrating: a table rebuilt to change a
        // constraint must not fire ON DELETE actions of the tables that
        // point at it. They are checked afterwards, then enforced.
        conn.pragma_update(None, "foreign_keys", false)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|e| Error::internal(format!("could not migrate the catalog: {e}")))?;
        let broken: i64 =
            conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(Error::internal(format!(
                "the catalog has {broken} broken reference(s) after migrating"
            )));
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(Catalog {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the current thread (blocking).
    pub fn with<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R>) -> Result<R> {
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            // A panic while holding the lock cannot leave SQLite inconsistent
            // (transactions roll back), so the connection is still usable.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with(f))
            .await
            .map_err(|e| Error::internal(format!("catalog task failed: {e}")))?
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<usize> {
        self.with(|c| {
            let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok(usize::try_from(v).unwrap_or(0))
        })
    }
}

/// Now, as stored in the catalog: UTC RFC 3339 with milliseconds.
/// Starts a catalog transaction with `BEGIN IMMEDIATE`: the write lock is
/// taken at the start, so a transaction that reads then writes cannot fail
/// half-way with SQLITE_BUSY when another process (GUI, daemon, CLI) wrote
/// in between; it waits (busy timeout) instead.
pub fn immediate(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new time-ordered unique id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().expect("migrations validate");
    }

    #[test]
    fn migrates_an_empty_catalog_and_reopens_an_existing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.sqlite");
        let cat = Catalog::open(&path).expect("open new");
        assert_eq!(cat.schema_version().expect("version"), known_version());
        cat.with(|c| {
            c.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES ('k', 'v', 'now')",
                [],
            )?;
            Ok(())
        })
        .expect("insert");
        drop(cat);
        let again = Catalog::open(&path).expect("reopen existing");
        let v: String = again
            .with(
                |c| Ok(c.query_row("SELECT value FROM settings WHERE key='k'", [], |r| r.get(0))?),
            )
            .expect("select");
        assert_eq!(v, "v");
        let mode: String = again
            .with(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .expect("mode");
        assert_eq!(mode, "wal");
        let fk: i64 = again
            .with(|c| Ok(c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?))
            .expect("fk");
        assert_eq!(fk, 1);
    }

    #[test]
    fn every_migration_file_is_applied_and_old_jobs_keep_their_text() {
        let files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .expect("migrations folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
            .collect();
        assert_eq!(
            files.len(),
            known_version(),
            "a migration file is not listed"
        );

        // A catalog of version 3 with a job, then opened by this build.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.sqlite");
        {
            let mut conn = Connection::open(&path).expect("raw open");
            Migrations::new(MIGRATION_FILES[..3].iter().map(|sql| M::up(sql)).collect())
                .to_latest(&mut conn)
                .expect("version 3");
            conn.execute_batch(
                "INSERT INTO projects (id, name, slug, project_ref, db_url, created_at, updated_at)
                 VALUES ('p', 'P', 'p', 'r', 'postgresql://u@h/d', 'x', 'x');
                 INSERT INTO backup_jobs (id, project_id, name, cron_expression, timezone,
                                          created_at, updated_at)
                 VALUES ('j', 'p', 'nightly', '0 3 * * 1-5', 'utc', 'x', 'x');
                 INSERT INTO backups (id, project_id, project_name, project_ref, job_id,
                                      backup_type, status, started_at, created_at)
                 VALUES ('b', 'p', 'P', 'r', 'j', 'full', 'completed', 'x', 'x');
                 INSERT INTO secrets (id, project_id, kind, nonce, ciphertext, created_at, updated_at)
                 VALUES ('s', 'p', 'db_password', x'01', x'02', 'x', 'x');",
            )
            .expect("old rows");
        }
        let cat = Catalog::open(&path).expect("migrate");
        let (cron, tz, job_of_backup): (String, String, Option<String>) = cat
            .with(|c| {
                Ok(c.query_row(
                    "SELECT j.cron_expression, j.timezone, b.job_id
                     FROM backup_jobs j, backups b WHERE j.id = 'j' AND b.id = 'b'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?)
            })
            .expect("job kept");
        assert_eq!((cron.as_str(), tz.as_str()), ("0 3 * * 1-5", "utc"));
        assert_eq!(
            job_of_backup.as_deref(),
            Some("j"),
            "rebuilding jobs kept the link"
        );
        cat.with(|c| {
            c.execute(
                "UPDATE backup_jobs SET timezone = 'Europe/Berlin' WHERE id = 'j'",
                [],
            )?;
            c.execute("UPDATE projects SET ca_cert = 'pem' WHERE id = 'p'", [])?;
            // Rebuilding the secrets table (0008) kept the sealed rows, their
            // project link, and admits the chat kinds.
            let kept: (String, Vec<u8>) = c.query_row(
                "SELECT kind, ciphertext FROM secrets WHERE id = 's' AND project_id = 'p'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            assert_eq!(kept, ("db_password".to_owned(), vec![2u8]));
            c.execute(
                "INSERT INTO secrets (id, project_id, kind, nonce, ciphertext, created_at, updated_at)
                 VALUES ('t', NULL, 'slack_webhook', x'01', x'02', 'x', 'x')",
                [],
            )?;
            c.execute("DELETE FROM projects WHERE id = 'p'", [])?;
            let left: i64 =
                c.query_row("SELECT count(*) FROM secrets WHERE id = 's'", [], |r| r.get(0))?;
            assert_eq!(left, 0, "a project's secrets still go with it");
            Ok(())
        })
        .expect("new columns and values");
    }

    #[test]
    fn concurrent_opens_of_a_fresh_catalog_all_succeed() {
        for round in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("catalog.sqlite");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        Catalog::open(&path).map(|c| c.schema_version())
                    })
                })
                .collect();
            for h in handles {
                let v = h.join().expect("thread");
                assert!(
                    matches!(v, Ok(Ok(n)) if n == known_version()),
                    "round {round}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn refuses_a_catalog_from_a_newer_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.sqlite");
        drop(Catalog::open(&path).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        let err = Catalog::open(&path).expect_err("newer catalog refused");
        assert!(err.message.contains("newer"), "{err}");
    }
}
