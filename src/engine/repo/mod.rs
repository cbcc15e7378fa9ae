//! The content-addressed repository incremental backups live in
//! (`<data dir>/repo/`). It owns chunking, chunk storage and its index,
//! reading a snapshot's files back, checking and garbage collection.
//!
//! A backup's plain streams (roles.sql, schema.sql, schema.dump, data.sql,
//! history.sql) are cut into content-defined chunks (FastCDC, gear table
//! seeded from the repository key so boundaries leak nothing). Each chunk
//! is named by a keyed BLAKE3 hash of its plaintext, compressed with zstd,
//! sealed with AES-256-GCM (the name is the associated data) and appended to
//! a pack file; a chunk the repository already holds is not written again.
//! A snapshot is an ordinary backup folder whose manifest lists, per file,
//! a `.chunks` file of chunk names: it restores on its own, and deleting
//! another snapshot never touches it (chunks are shared, never chained).
//!
//! Crash safety: a pack is written under `packs/tmp/`, fsynced, renamed into
//! place and only then indexed; its sealed trailer lists its chunks, so an
//! index that lost a pack recovers it ([`gc`]). Garbage collection holds the
//! repository lock exclusively (backups hold it shared), unindexes before it
//! deletes, and rewrites a pack's live chunks into a new, indexed pack before
//! the old one goes. Docs: docs/REPOSITORY.md.

pub mod chunks;
pub mod gc;
pub mod index;
pub mod ops;
pub mod pack;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::engine::crypto::{self, KdfParams, Secret};
use crate::engine::error::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const FORMAT_NAME: &str = "supabackup.repository";
const KEYS_AAD: &[u8] = b"supabackup repository keys v1";

/// Chunk sizes. A changed chunk is stored as a delta against the old one
/// (about the size of the edit), so what a change costs is mostly per-chunk
/// bookkeeping — name, nonce, tag, list, trailer and index entries, ~300
/// bytes — and larger chunks mean fewer of them; 64 KiB also compresses
/// new data nearly as well as one zstd stream.
pub const MIN_CHUNK: usize = 16 * 1024;
pub const AVG_CHUNK: usize = 64 * 1024;
pub const MAX_CHUNK: usize = 256 * 1024;
/// A pack is sealed once it holds this many bytes.
pub const PACK_TARGET: u64 = 16 * 1024 * 1024;

/// `config.json`: the repository's identity and its keys, sealed with a key
/// derived from the backup passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub created_at: String,
    pub kdf: KdfParams,
    pub salt: String,
    pub nonce: String,
    /// AES-256-GCM of `data key ‖ name key ‖ chunker seed` (72 bytes).
    pub sealed_keys: String,
}

/// The unlocked keys of a repository.
pub struct RepoKeys {
    /// Seals chunks and pack trailers.
    pub data: Zeroizing<[u8; 32]>,
    /// Keys the BLAKE3 hash that names chunks.
    pub name: Zeroizing<[u8; 32]>,
    /// Seeds the chunker's gear table.
    pub seed: u64,
}

impl RepoKeys {
    /// A chunk's name: keyed BLAKE3 of its plaintext.
    pub fn chunk_id(&self, plain: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.name, plain).as_bytes()
    }
}

/// An open repository.
pub struct Repo {
    root: PathBuf,
    pub config: RepoConfig,
    pub keys: RepoKeys,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({}, {})", self.root.display(), self.config.id)
    }
}

/// How a lock on the repository is held.
pub struct RepoLock {
    _file: std::fs::File,
}

impl Repo {
    pub fn exists(root: &Path) -> bool {
        root.join(CONFIG_FILE).is_file()
    }

    /// Opens the repository at `root`, creating it (with keys sealed under
    /// `passphrase`) when there is none.
    pub fn open_or_create(root: &Path, passphrase: &Secret, kdf: KdfParams) -> Result<Repo> {
        if !Self::exists(root) {
            Self::create(root, passphrase, kdf)?;
        }
        Self::open(root, passphrase)
    }

    fn create(root: &Path, passphrase: &Secret, kdf: KdfParams) -> Result<()> {
        crate::engine::paths::create_dirs_synced(&root.join("packs").join("tmp"))?;
        let salt = crypto::random::<16>()?;
        let wrap = crypto::derive_key(passphrase.expose().as_bytes(), &salt, kdf)?;
        let mut keys = Zeroizing::new([0u8; 72]);
        keys.copy_from_slice(&crypto::random::<72>()?);
        let (nonce, sealed) = crypto::seal(&wrap, KEYS_AAD, keys.as_ref())?;
        let config = RepoConfig {
            format: FORMAT_NAME.into(),
            version: 1,
            id: uuid::Uuid::new_v4().to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            kdf,
            salt: crypto::b64(&salt),
            nonce: crypto::b64(&nonce),
            sealed_keys: crypto::b64(&sealed),
        };
        let mut bytes = serde_json::to_vec_pretty(&config)?;
        bytes.push(b'\n');
        let path = root.join(CONFIG_FILE);
        // Two first backups at once: the first config wins, the other is
        // dropped and both open the winner.
        let tmp = root.join(format!(".{CONFIG_FILE}.{}.new", config.id));
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io("write", &tmp, e))?;
        if let Ok(f) = std::fs::File::open(&tmp) {
            let _ = f.sync_all();
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", &path, e)),
        }
        crate::engine::paths::fsync_dir(root);
        Ok(())
    }

    pub fn read_config(root: &Path) -> Result<RepoConfig> {
        let path = root.join(CONFIG_FILE);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(format!(
                "there is no repository at {} (incremental backups create it)",
                root.display()
            )),
            _ => Error::io("read", &path, e),
        })?;
        let config: RepoConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(format!("{} is unreadable: {e}", path.display())))?;
        if config.format != FORMAT_NAME || config.version != 1 {
            return Err(Error::corrupt(format!(
                "{} is not a version-1 supabackup repository configuration",
                path.display()
            )));
        }
        Ok(config)
    }

    /// Opens an existing repository; a wrong passphrase is an `Auth` error.
    pub fn open(root: &Path, passphrase: &Secret) -> Result<Repo> {
        let config = Self::read_config(root)?;
        let salt = crypto::unb64(&config.salt, "the repository salt")?;
        let nonce = crypto::unb64(&config.nonce, "the repository nonce")?;
        let sealed = crypto::unb64(&config.sealed_keys, "the repository keys")?;
        let wrap = crypto::derive_key(passphrase.expose().as_bytes(), &salt, config.kdf)?;
        let keys = crypto::open(&wrap, &nonce, KEYS_AAD, &sealed).map_err(|_| {
            Error::auth(format!(
                "the backup passphrase does not open the repository at {}",
                root.display()
            ))
            .with_hint(
                "it was created under an earlier backup passphrase: set that one again to read it",
            )
        })?;
        if keys.len() != 72 {
            return Err(Error::corrupt("the repository keys have the wrong length"));
        }
        let mut data = Zeroizing::new([0u8; 32]);
        data.copy_from_slice(&keys[..32]);
        let mut name = Zeroizing::new([0u8; 32]);
        name.copy_from_slice(&keys[32..64]);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&keys[64..72]);
        let repo = Repo {
            root: root.to_path_buf(),
            config,
            keys: RepoKeys {
                data,
                name,
                seed: u64::from_le_bytes(seed),
            },
        };
        crate::engine::paths::create_dirs_synced(&repo.root.join("packs").join("tmp"))?;
        // The index file, its WAL mode and tables exist before concurrent
        // writers open it.
        index::Index::open(&repo)?;
        Ok(repo)
    }

    /// Seals the keys again under a new passphrase (after the backup
    /// passphrase changed); the chunks stay as they are.
    pub fn rewrap(&self, passphrase: &Secret, kdf: KdfParams) -> Result<()> {
        let salt = crypto::random::<16>()?;
        let wrap = crypto::derive_key(passphrase.expose().as_bytes(), &salt, kdf)?;
        let mut keys = Zeroizing::new(Vec::with_capacity(72));
        keys.extend_from_slice(self.keys.data.as_ref());
        keys.extend_from_slice(self.keys.name.as_ref());
        keys.extend_from_slice(&self.keys.seed.to_le_bytes());
        let (nonce, sealed) = crypto::seal(&wrap, KEYS_AAD, &keys)?;
        let config = RepoConfig {
            kdf,
            salt: crypto::b64(&salt),
            nonce: crypto::b64(&nonce),
            sealed_keys: crypto::b64(&sealed),
            ..self.config.clone()
        };
        let mut bytes = serde_json::to_vec_pretty(&config)?;
        bytes.push(b'\n');
        crate::engine::paths::write_atomic(&self.root.join(CONFIG_FILE), &bytes)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    pub fn pack_path(&self, pack: &str) -> PathBuf {
        let prefix = pack.get(..2).unwrap_or("00");
        self.root
            .join("packs")
            .join(prefix)
            .join(format!("{pack}.pack"))
    }

    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }

    /// Held by every backup writing chunks (shared) and by garbage
    /// collection (exclusive).
    pub fn lock_shared(&self) -> Result<RepoLock> {
        let f = self.lock_file()?;
        f.lock_shared()
            .map_err(|e| Error::internal(format!("could not lock the repository: {e}")))?;
        Ok(RepoLock { _file: f })
    }

    /// The exclusive lock, or `None` when a backup holds the repository.
    pub fn try_lock_exclusive(&self) -> Result<Option<RepoLock>> {
        let f = self.lock_file()?;
        match f.try_lock() {
            Ok(()) => Ok(Some(RepoLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::internal(format!(
                "could not lock the repository: {e}"
            ))),
        }
    }

    fn lock_file(&self) -> Result<std::fs::File> {
        let path = self.root.join("lock");
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))
    }
}

/// Lower-case hex of a chunk name.
pub fn id_hex(id: &[u8; 32]) -> String {
    crypto::hex(id)
}

#[cfg(test)]
mod tests;
