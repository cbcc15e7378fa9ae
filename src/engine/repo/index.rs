//! The repository's index (`index.sqlite`): which pack holds each chunk.
//! It is a cache of the packs' trailers: losing it loses nothing
//! ([`super::gc::reindex`] reads it back from the packs).

use rusqlite::{Connection, OptionalExtension, params};

use super::Repo;
use super::pack::PackEntry;
use crate::engine::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packs (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id BLOB PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    plain_len INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    base BLOB,
    base2 BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_pack ON chunks(pack);
";

/// Where a chunk is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub pack: String,
    pub offset: u64,
    pub len: u32,
    pub plain_len: u32,
    pub depth: u8,
    pub bases: Vec<[u8; 32]>,
}

fn id32(v: Option<Vec<u8>>) -> Option<[u8; 32]> {
    v.filter(|b| b.len() == 32).map(|b| {
        let mut a = [0u8; 32];
        a.copy_from_slice(&b);
        a
    })
}

pub(crate) fn bases(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Vec<[u8; 32]> {
    [id32(a), id32(b)].into_iter().flatten().collect()
}

pub struct Index {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::internal(format!("the repository index failed: {e}"))
}

impl Index {
    pub fn open(repo: &Repo) -> Result<Index> {
        let conn = Connection::open(repo.index_path()).map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(db_err)?;
        // Switching a new file to WAL takes an exclusive lock that the busy
        // timeout does not cover: only when it is not WAL yet (the
        // repository switches it once, when it opens, before any writer).
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_err)?;
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Index { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn contains(&self, id: &[u8; 32]) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM chunks WHERE id = ?1")
            .and_then(|mut s| s.exists([&id[..]]))
            .map_err(db_err)
    }

    pub fn locate(&self, id: &[u8; 32]) -> Result<Option<Location>> {
        self.conn
            .prepare_cached(
                "SELECT pack, offset, len, plain_len, depth, base, base2 FROM chunks WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([&id[..]], |r| {
                    Ok(Location {
                        pack: r.get(0)?,
                        offset: r.get::<_, i64>(1)? as u64,
                        len: r.get::<_, i64>(2)? as u32,
                        plain_len: r.get::<_, i64>(3)? as u32,
                        depth: r.get::<_, i64>(4)? as u8,
                        bases: bases(r.get(5)?, r.get(6)?),
                    })
                })
                .optional()
            })
            .map_err(db_err)
    }

    pub fn has_pack(&self, pack: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM packs WHERE id = ?1")
            .and_then(|mut s| s.exists([pack]))
            .map_err(db_err)
    }

    /// Records a sealed pack and its chunks in one transaction; a chunk
    /// already indexed elsewhere keeps its place.
    pub fn add_pack(&mut self, pack: &str, size: u64, entries: &[PackEntry]) -> Result<()> {
        self.record(pack, size, entries, "INSERT OR IGNORE")
    }

    /// Points chunks at a new pack (after a repack) and records the pack,
    /// in one transaction.
    pub fn move_to_pack(&mut self, pack: &str, size: u64, entries: &[PackEntry]) -> Result<()> {
        self.record(pack, size, entries, "INSERT OR REPLACE")
    }

    fn record(&mut self, pack: &str, size: u64, entries: &[PackEntry], verb: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        tx.execute(
            "INSERT OR IGNORE INTO packs (id, size, created_at) VALUES (?1, ?2, ?3)",
            params![pack, size as i64, chrono::Utc::now().to_rfc3339()],
        )
        .map_err(db_err)?;
        {
            let mut s = tx
                .prepare_cached(&format!(
                    "{verb} INTO chunks (id, pack, offset, len, plain_len, depth, base, base2)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))
                .map_err(db_err)?;
            for e in entries {
                s.execute(params![
                    &e.id[..],
                    pack,
                    e.offset as i64,
                    i64::from(e.len),
                    i64::from(e.plain_len),
                    i64::from(e.depth),
                    e.bases.first().map(|b| &b[..]),
                    e.bases.get(1).map(|b| &b[..])
                ])
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Forgets a pack and every chunk still pointing at it.
    pub fn remove_pack(&mut self, pack: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        tx.execute("DELETE FROM chunks WHERE pack = ?1", [pack])
            .map_err(db_err)?;
        tx.execute("DELETE FROM packs WHERE id = ?1", [pack])
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Every indexed pack with its size.
    pub fn packs(&self) -> Result<Vec<(String, u64)>> {
        let mut s = self
            .conn
            .prepare("SELECT id, size FROM packs ORDER BY id")
            .map_err(db_err)?;
        let rows = s
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(db_err)?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(db_err)
    }

    /// The chunks a pack holds according to the index.
    pub fn chunks_in(&self, pack: &str) -> Result<Vec<PackEntry>> {
        let mut s = self
            .conn
            .prepare_cached(
                "SELECT id, offset, len, plain_len, depth, base, base2 FROM chunks WHERE pack = ?1",
            )
            .map_err(db_err)?;
        let rows = s
            .query_map([pack], |r| {
                let id: Vec<u8> = r.get(0)?;
                let mut a = [0u8; 32];
                if id.len() == 32 {
                    a.copy_from_slice(&id);
                }
                Ok(PackEntry {
                    id: a,
                    offset: r.get::<_, i64>(1)? as u64,
                    len: r.get::<_, i64>(2)? as u32,
                    plain_len: r.get::<_, i64>(3)? as u32,
                    depth: r.get::<_, i64>(4)? as u8,
                    bases: bases(r.get(5)?, r.get(6)?),
                })
            })
            .map_err(db_err)?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(db_err)
    }
}
