//! Writing a stream into the repository (cut, name, deduplicate, seal,
//! pack) and reading it back; a snapshot's files seen through
//! [`BackupFiles`], so verify, restore and restore tests read a snapshot the
//! way they read any backup.
//!
//! A `.chunks` file lists one stream's chunks: `"SBCHUNK1"`, then per chunk
//! its name (32 bytes) and plaintext length (u32 LE). The manifest keeps its
//! SHA-256; the reader checks it when the list ends.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::index::Index;
use super::pack::{PackWriter, open_chunk, read_blob, seal_chunk};
use super::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK, PACK_TARGET, Repo};
use crate::engine::backup::crypt::to_io;
use crate::engine::backup::files::{BackupFiles, FileStat, LocalFiles};
use crate::engine::backup::manifest::{MANIFEST_FILE, Manifest, RepoFileRef};
use crate::engine::crypto::hex;
use crate::engine::error::{Error, Result};

pub const LIST_MAGIC: &[u8; 8] = b"SBCHUNK1";
const LIST_ENTRY: usize = 36;

/// The list file's name for a stream.
pub fn list_name(file: &str) -> String {
    format!("{file}.chunks")
}

/// What writing one stream cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub list_sha256: String,
    pub chunks: u64,
    pub new_chunks: u64,
    /// Sealed bytes this stream added to the repository.
    pub new_bytes: u64,
}

struct Gear {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Gear {
    fn new(seed: u64) -> Gear {
        use fastcdc::v2020::{MASKS, get_gear_with_seed, logarithm2};
        let (gear, gear_ls) = get_gear_with_seed(seed);
        // Normalization level 1, as FastCDC's authors recommend.
        let bits = logarithm2(AVG_CHUNK as u32) as usize;
        Gear {
            gear,
            gear_ls,
            mask_s: MASKS[bits + 1],
            mask_l: MASKS[bits - 1],
        }
    }

    /// The length of the next chunk at the start of `data`.
    fn cut(&self, data: &[u8]) -> usize {
        let (_, n) = fastcdc::v2020::cut_gear(
            data,
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n.clamp(1, data.len())
    }
}

/// `Write` end of the repository: a stream goes in, chunks and a list
/// file come out. Call [`ChunkSink::finish`]; dropping it discards the
/// unsealed pack (sealed packs stay, unreferenced until a snapshot uses
/// them or garbage collection removes them).
pub struct ChunkSink {
    repo: Arc<Repo>,
    index: Index,
    gear: Gear,
    level: i32,
    pack: Option<PackWriter>,
    in_pack: HashSet<[u8; 32]>,
    buf: Vec<u8>,
    start: usize,
    list: BufWriter<File>,
    list_path: PathBuf,
    list_hash: Sha256,
    stats: SinkStats,
    stored: Arc<AtomicU64>,
}

impl ChunkSink {
    /// Writes the list to `list_path` (which must not exist).
    pub fn create(
        repo: Arc<Repo>,
        list_path: &Path,
        level: i32,
        stored: Arc<AtomicU64>,
    ) -> Result<ChunkSink> {
        let index = Index::open(&repo)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(list_path)
            .map_err(|e| Error::io("create", list_path, e))?;
        let mut list = BufWriter::with_capacity(64 * 1024, file);
        list.write_all(LIST_MAGIC)
            .map_err(|e| Error::io("write", list_path, e))?;
        let mut list_hash = Sha256::new();
        list_hash.update(LIST_MAGIC);
        Ok(ChunkSink {
            gear: Gear::new(repo.keys.seed),
            repo,
            index,
            level: level.max(1),
            pack: None,
            in_pack: HashSet::new(),
            buf: Vec::with_capacity(4 * MAX_CHUNK),
            start: 0,
            list,
            list_path: list_path.to_path_buf(),
            list_hash,
            stats: SinkStats::default(),
            stored,
        })
    }

    fn emit(&mut self, len: usize) -> Result<()> {
        let (from, to) = (self.start, self.start + len);
        self.start = to;
        let id = self.repo.keys.chunk_id(&self.buf[from..to]);
        let mut entry = [0u8; LIST_ENTRY];
        entry[..32].copy_from_slice(&id);
        entry[32..].copy_from_slice(&(len as u32).to_le_bytes());
        self.list
            .write_all(&entry)
            .map_err(|e| Error::io("write", &self.list_path, e))?;
        self.list_hash.update(entry);
        self.stats.chunks += 1;
        if self.in_pack.contains(&id) || self.index.contains(&id)? {
            return Ok(());
        }
        let blob = seal_chunk(&self.repo.keys, &id, &self.buf[from..to], self.level)?;
        if self.pack.is_none() {
            self.pack = Some(PackWriter::create(&self.repo)?);
        }
        if let Some(pack) = self.pack.as_mut() {
            pack.push(id, &blob, len as u32)?;
        }
        self.in_pack.insert(id);
        self.stats.new_chunks += 1;
        self.stats.new_bytes += blob.len() as u64;
        self.stored.fetch_add(blob.len() as u64, Ordering::Relaxed);
        if self.pack.as_ref().is_some_and(|p| p.size() >= PACK_TARGET) {
            self.seal_pack()?;
        }
        Ok(())
    }

    fn seal_pack(&mut self) -> Result<()> {
        if let Some(pack) = self.pack.take() {
            let (id, size, entries) = pack.seal(&self.repo)?;
            self.index.add_pack(&id, size, &entries)?;
            self.in_pack.clear();
        }
        Ok(())
    }

    /// Cuts every chunk whose end is certain.
    fn drain(&mut self, eof: bool) -> Result<()> {
        loop {
            let avail = self.buf.len() - self.start;
            if avail == 0 || (!eof && avail < MAX_CHUNK) {
                break;
            }
            let n = self.gear.cut(&self.buf[self.start..]);
            self.emit(n)?;
        }
        if self.start > 0 && (self.start >= self.buf.len() / 2 || eof) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(())
    }

    /// Cuts the rest, seals the last pack and the list.
    pub fn finish(mut self) -> Result<SinkStats> {
        self.drain(true)?;
        self.seal_pack()?;
        self.list
            .flush()
            .and_then(|_| self.list.get_ref().sync_all())
            .map_err(|e| Error::io("write", &self.list_path, e))?;
        let mut stats = std::mem::take(&mut self.stats);
        stats.list_sha256 = hex(&std::mem::take(&mut self.list_hash).finalize());
        Ok(stats)
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() - self.start >= 2 * MAX_CHUNK {
            self.drain(false).map_err(to_io)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChunkSink {
    fn drop(&mut self) {
        if let Some(p) = self.pack.take() {
            p.discard();
        }
    }
}

/// Streams a list's chunks back in order, checking each one and, at the
/// end, the list's own SHA-256.
pub struct ChunkReader {
    repo: Arc<Repo>,
    index: Index,
    list: BufReader<File>,
    list_path: PathBuf,
    list_hash: Sha256,
    expect_sha256: String,
    cur: Vec<u8>,
    pos: usize,
    pack: Option<(String, File, PathBuf)>,
    started: bool,
    done: bool,
}

impl ChunkReader {
    pub fn open(repo: Arc<Repo>, list_path: &Path, expect_sha256: &str) -> Result<ChunkReader> {
        let file = File::open(list_path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                Error::corrupt(format!("{} is missing", list_path.display()))
            }
            _ => Error::io("open", list_path, e),
        })?;
        Ok(ChunkReader {
            index: Index::open(&repo)?,
            repo,
            list: BufReader::with_capacity(64 * 1024, file),
            list_path: list_path.to_path_buf(),
            list_hash: Sha256::new(),
            expect_sha256: expect_sha256.to_owned(),
            cur: Vec::new(),
            pos: 0,
            pack: None,
            started: false,
            done: false,
        })
    }

    fn bad(&self, what: &str) -> Error {
        Error::corrupt(format!("{} {what}", self.list_path.display()))
    }

    /// Loads the next chunk; `false` at the end of the list.
    fn next_chunk(&mut self) -> Result<bool> {
        if !self.started {
            let mut magic = [0u8; 8];
            read_full(&mut self.list, &mut magic)
                .map_err(|e| Error::io("read", &self.list_path, e))
                .and_then(|n| {
                    if n == 8 && &magic == LIST_MAGIC {
                        Ok(())
                    } else {
                        Err(self.bad("is not a chunk list"))
                    }
                })?;
            self.list_hash.update(magic);
            self.started = true;
        }
        let mut entry = [0u8; LIST_ENTRY];
        let n = read_full(&mut self.list, &mut entry)
            .map_err(|e| Error::io("read", &self.list_path, e))?;
        if n == 0 {
            let got = hex(&self.list_hash.clone().finalize());
            if got != self.expect_sha256 {
                return Err(self.bad("differs from the manifest (altered or truncated)"));
            }
            return Ok(false);
        }
        if n < LIST_ENTRY {
            return Err(self.bad("is truncated"));
        }
        self.list_hash.update(entry);
        let mut id = [0u8; 32];
        id.copy_from_slice(&entry[..32]);
        let plain_len = u32::from_le_bytes([entry[32], entry[33], entry[34], entry[35]]);
        let loc = self.index.locate(&id)?.ok_or_else(|| {
            Error::corrupt(format!(
                "chunk {} of {} is missing from the repository",
                &hex(&id)[..12],
                self.list_path.display()
            ))
        })?;
        if self.pack.as_ref().is_none_or(|(p, ..)| *p != loc.pack) {
            let path = self.repo.pack_path(&loc.pack);
            let f = File::open(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::corrupt(format!(
                    "pack {} is missing from the repository",
                    path.display()
                )),
                _ => Error::io("open", &path, e),
            })?;
            self.pack = Some((loc.pack.clone(), f, path));
        }
        let (_, file, path) = self
            .pack
            .as_ref()
            .ok_or_else(|| Error::internal("no pack open"))?;
        let blob = read_blob(file, path, loc.offset, loc.len)?;
        if loc.plain_len != plain_len {
            return Err(self.bad("disagrees with the index about a chunk's length"));
        }
        self.cur = open_chunk(&self.repo.keys, &id, &blob, plain_len)?;
        self.pos = 0;
        Ok(true)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.done {
                return Ok(0);
            }
            if !self.next_chunk().map_err(to_io)? {
                self.done = true;
                self.cur.clear();
                return Ok(0);
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Opens the repository when a stream is first read (reading a
/// snapshot's manifest needs no passphrase).
pub type RepoOpener = Box<dyn Fn() -> Result<Arc<Repo>> + Send + Sync>;

/// A snapshot's files: the manifest and lists from its folder, the
/// streams from the repository, presented as plain files.
pub struct SnapshotFiles {
    local: LocalFiles,
    dir: PathBuf,
    repo_id: String,
    repo: std::sync::OnceLock<Arc<Repo>>,
    opener: RepoOpener,
    files: Vec<RepoFileRef>,
    sizes: std::collections::HashMap<String, u64>,
}

impl SnapshotFiles {
    pub fn with_manifest(
        dir: &Path,
        opener: RepoOpener,
        manifest: &Manifest,
    ) -> Result<SnapshotFiles> {
        let section = manifest.repo.as_ref().ok_or_else(|| {
            Error::invalid(format!("{} is not a repository snapshot", dir.display()))
        })?;
        let sizes = manifest
            .files
            .iter()
            .map(|f| (f.name.clone(), f.plain_size))
            .collect();
        Ok(SnapshotFiles {
            local: LocalFiles::new(dir),
            dir: dir.to_path_buf(),
            repo_id: section.id.clone(),
            repo: std::sync::OnceLock::new(),
            opener,
            files: section.files.clone(),
            sizes,
        })
    }

    fn repo(&self) -> Result<Arc<Repo>> {
        if let Some(r) = self.repo.get() {
            return Ok(r.clone());
        }
        let repo = (self.opener)()?;
        if repo.config.id != self.repo_id {
            return Err(Error::corrupt(format!(
                "{} belongs to repository {}, not to the one at {} ({})",
                self.dir.display(),
                self.repo_id,
                repo.root().display(),
                repo.config.id
            )));
        }
        Ok(self.repo.get_or_init(|| repo).clone())
    }

    fn entry(&self, name: &str) -> Option<&RepoFileRef> {
        self.files.iter().find(|f| f.name == name)
    }
}

impl BackupFiles for SnapshotFiles {
    fn label(&self) -> String {
        self.dir.display().to_string()
    }

    fn stat(&self, name: &str) -> Result<Option<FileStat>> {
        match self.entry(name) {
            Some(f) => {
                if self.local.stat(&f.list)?.is_none() {
                    return Ok(None);
                }
                Ok(Some(FileStat {
                    len: self.sizes.get(name).copied().unwrap_or(0),
                    tag: f.list_sha256.clone(),
                }))
            }
            None => self.local.stat(name),
        }
    }

    fn open(&self, name: &str, expect: Option<&FileStat>) -> Result<Box<dyn Read + Send>> {
        match self.entry(name) {
            Some(f) => {
                if let Some(want) = expect
                    && want.tag != f.list_sha256
                {
                    return Err(Error::corrupt(format!(
                        "{}/{name} changed after it was checked",
                        self.label()
                    )));
                }
                Ok(Box::new(ChunkReader::open(
                    self.repo()?,
                    &self.dir.join(&f.list),
                    &f.list_sha256,
                )?))
            }
            None if name == MANIFEST_FILE || name.ends_with(".chunks") => {
                self.local.open(name, expect)
            }
            None => Err(Error::not_found(format!(
                "{}/{name} is not part of this snapshot",
                self.label()
            ))),
        }
    }
}
