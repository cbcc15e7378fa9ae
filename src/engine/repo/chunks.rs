//! Writing a stream into the repository (cut, name, deduplicate, seal,
//! pack) and reading it back; a snapshot's files seen through
//! [`BackupFiles`], so verify, restore and restore tests read a snapshot the
//! way they read any backup.
//!
//! A `.chunks` file lists one stream's chunks: `"SBCHUNK1"`, then per chunk
//! its name (32 bytes) and plaintext length (u32 LE). The manifest keeps its
//! SHA-256; the reader checks it when the list ends.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::index::Index;
use super::pack::{MAX_DEPTH, PackWriter, open_chunk, read_blob, seal_chunk};
use super::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK, PACK_TARGET, Repo};
use crate::engine::backup::crypt::{read_full, to_io};
use crate::engine::backup::files::{BackupFiles, FileStat, LocalFiles};
use crate::engine::backup::manifest::{MANIFEST_FILE, Manifest, RepoFileRef};
use crate::engine::crypto::hex;
use crate::engine::error::{Error, Result};

pub const LIST_MAGIC: &[u8; 8] = b"SBCHUNK1";
const LIST_ENTRY: usize = 36;

/// The size of a list of `chunks` chunks.
pub fn list_len(chunks: u64) -> u64 {
    LIST_MAGIC.len() as u64 + LIST_ENTRY as u64 * chunks
}

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

/// Reads chunks by name: the blob from its pack, then (for a chunk stored
/// against a base) the base first, each one checked.
pub struct Resolver {
    repo: Arc<Repo>,
    pub index: Index,
    pack: Option<(String, File, PathBuf)>,
    /// The last chunks decoded: a stream's bases are often its previous chunks.
    recent: std::collections::VecDeque<([u8; 32], Arc<Vec<u8>>)>,
}

const RECENT: usize = 64;

impl Resolver {
    pub fn new(repo: Arc<Repo>) -> Result<Resolver> {
        Ok(Resolver {
            index: Index::open(&repo)?,
            repo,
            pack: None,
            recent: std::collections::VecDeque::with_capacity(RECENT),
        })
    }

    /// The plaintext of chunk `id`.
    pub fn plain(&mut self, id: &[u8; 32]) -> Result<Arc<Vec<u8>>> {
        self.plain_at(id, 0)
    }

    fn plain_at(&mut self, id: &[u8; 32], hops: u8) -> Result<Arc<Vec<u8>>> {
        if let Some((_, p)) = self.recent.iter().find(|(k, _)| k == id) {
            return Ok(p.clone());
        }
        if hops > MAX_DEPTH {
            return Err(Error::corrupt(format!(
                "chunk {} has a chain of bases longer than {MAX_DEPTH}",
                &hex(id)[..12]
            )));
        }
        let loc = self.index.locate(id)?.ok_or_else(|| {
            Error::corrupt(format!(
                "chunk {} is missing from the repository",
                &hex(id)[..12]
            ))
        })?;
        let mut prefix = Vec::new();
        for b in &loc.bases {
            prefix.extend_from_slice(&self.plain_at(b, hops + 1)?);
        }
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
        let plain = Arc::new(open_chunk(
            &self.repo.keys,
            id,
            &blob,
            loc.plain_len,
            (!loc.bases.is_empty()).then_some((loc.bases.as_slice(), prefix.as_slice())),
        )?);
        self.remember(*id, plain.clone());
        Ok(plain)
    }

    fn remember(&mut self, id: [u8; 32], plain: Arc<Vec<u8>>) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((id, plain));
    }
}

/// The previous snapshot's list of the same stream, read alongside the new
/// stream. A chunk both have fixes how the two streams' offsets line up; a
/// new chunk is stored against the old chunks covering the same bytes (an
/// edit moves chunk boundaries, so it is not one old chunk for one new).
struct PrevCursor {
    list: BufReader<File>,
    /// (name, offset in the old stream, length)
    ahead: std::collections::VecDeque<([u8; 32], u64, u64)>,
    next_offset: u64,
    /// new offset − old offset, from the last chunk both streams have.
    shift: i64,
    done: bool,
}

const LOOKAHEAD: usize = 1024;

impl PrevCursor {
    fn open(path: &Path) -> Option<PrevCursor> {
        let mut list = BufReader::with_capacity(64 * 1024, File::open(path).ok()?);
        let mut magic = [0u8; 8];
        if read_full(&mut list, &mut magic).ok()? != 8 || &magic != LIST_MAGIC {
            return None;
        }
        Some(PrevCursor {
            list,
            ahead: std::collections::VecDeque::with_capacity(LOOKAHEAD),
            next_offset: 0,
            shift: 0,
            done: false,
        })
    }

    /// Reads old entries until one reaches past `until` (old offset) or the
    /// window is full.
    fn fill(&mut self, until: u64) {
        while !self.done
            && self.ahead.len() < LOOKAHEAD
            && self.ahead.back().is_none_or(|(_, o, l)| o + l <= until)
        {
            let mut e = [0u8; LIST_ENTRY];
            match read_full(&mut self.list, &mut e) {
                Ok(n) if n == LIST_ENTRY => {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(&e[..32]);
                    let len = u64::from(u32::from_le_bytes([e[32], e[33], e[34], e[35]]));
                    self.ahead.push_back((id, self.next_offset, len));
                    self.next_offset += len;
                }
                _ => self.done = true,
            }
        }
    }

    /// A chunk both streams have, at `new_offset` in the new one.
    fn matched(&mut self, id: &[u8; 32], new_offset: u64) {
        let old = (new_offset as i64 - self.shift).max(0) as u64;
        self.fill(old + MAX_CHUNK as u64);
        if let Some(k) = self.ahead.iter().position(|(x, ..)| x == id) {
            self.shift = new_offset as i64 - self.ahead[k].1 as i64;
            self.ahead.drain(..=k);
        }
    }

    /// The old chunks (at most two, in order) overlapping most with the new
    /// chunk at `new_offset`, `len` long.
    fn covering(&mut self, new_offset: u64, len: u64) -> Vec<[u8; 32]> {
        let s = (new_offset as i64 - self.shift).max(0) as u64;
        let e = s + len;
        self.fill(e);
        while self.ahead.front().is_some_and(|(_, o, l)| o + l <= s) {
            self.ahead.pop_front();
        }
        let mut hits: Vec<(u64, usize)> = self
            .ahead
            .iter()
            .enumerate()
            .take_while(|(_, (_, o, _))| *o < e)
            .map(|(i, (_, o, l))| ((o + l).min(e) - (*o).max(s), i))
            .collect();
        hits.sort_by_key(|h| std::cmp::Reverse(h.0));
        let mut chosen: Vec<usize> = hits
            .into_iter()
            .take(super::pack::MAX_BASES)
            .map(|(_, i)| i)
            .collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|i| self.ahead[i].0).collect()
    }
}

/// `Write` end of the repository: a stream goes in, chunks and a list
/// file come out. Call [`ChunkSink::finish`]; dropping it discards the
/// unsealed pack (sealed packs stay, unreferenced until a snapshot uses
/// them or garbage collection removes them).
pub struct ChunkSink {
    repo: Arc<Repo>,
    resolver: Resolver,
    prev: Option<PrevCursor>,
    /// The chunk just cut (name, plaintext, depth): a new chunk with no old
    /// counterpart is stored against it.
    last: Option<([u8; 32], Arc<Vec<u8>>, u8)>,
    /// Depth of each chunk in the unsealed pack.
    pending_depth: std::collections::HashMap<[u8; 32], u8>,
    /// Bytes of the stream cut so far.
    offset: u64,
    gear: Gear,
    level: i32,
    pack: Option<PackWriter>,
    buf: Vec<u8>,
    start: usize,
    list: BufWriter<File>,
    list_path: PathBuf,
    list_hash: Sha256,
    stats: SinkStats,
    stored: Arc<AtomicU64>,
}

impl ChunkSink {
    /// Writes the list to `list_path` (which must not exist); `previous` is
    /// the same stream's list in the previous snapshot, if any.
    pub fn create(
        repo: Arc<Repo>,
        list_path: &Path,
        level: i32,
        stored: Arc<AtomicU64>,
        previous: Option<&Path>,
    ) -> Result<ChunkSink> {
        let resolver = Resolver::new(repo.clone())?;
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
            resolver,
            prev: previous.and_then(PrevCursor::open),
            last: None,
            pending_depth: std::collections::HashMap::new(),
            offset: 0,
            level: level.max(1),
            pack: None,
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
        let at = self.offset;
        self.offset += len as u64;
        let plain = Arc::new(self.buf[from..to].to_vec());
        let id = self.repo.keys.chunk_id(&plain);
        let mut entry = [0u8; LIST_ENTRY];
        entry[..32].copy_from_slice(&id);
        entry[32..].copy_from_slice(&(len as u32).to_le_bytes());
        self.list
            .write_all(&entry)
            .map_err(|e| Error::io("write", &self.list_path, e))?;
        self.list_hash.update(entry);
        self.stats.chunks += 1;
        if let Some(d) = self.pending_depth.get(&id).copied() {
            self.last = Some((id, plain, d));
            return Ok(());
        }
        if let Some(loc) = self.resolver.index.locate(&id)? {
            if let Some(p) = self.prev.as_mut() {
                p.matched(&id, at);
            }
            self.last = Some((id, plain, loc.depth));
            return Ok(());
        }
        let (blob, bases, depth) = self.encode(&id, &plain, at)?;
        if self.pack.is_none() {
            self.pack = Some(PackWriter::create(&self.repo)?);
        }
        if let Some(pack) = self.pack.as_mut() {
            pack.push(id, &blob, len as u32, &bases, depth)?;
        }
        self.pending_depth.insert(id, depth);
        self.last = Some((id, plain, depth));
        self.stats.new_chunks += 1;
        self.stats.new_bytes += blob.len() as u64;
        self.stored.fetch_add(blob.len() as u64, Ordering::Relaxed);
        if self.pack.as_ref().is_some_and(|p| p.size() >= PACK_TARGET) {
            self.seal_pack()?;
        }
        Ok(())
    }

    /// Seals a new chunk: against the old chunks covering the same bytes
    /// (unless their chain is at its limit), else against the chunk before
    /// it in the stream, else whole — whichever is smallest.
    fn encode(
        &mut self,
        id: &[u8; 32],
        plain: &[u8],
        at: u64,
    ) -> Result<(Vec<u8>, Vec<[u8; 32]>, u8)> {
        // (bases, their plaintexts concatenated, depth)
        let mut candidates: Vec<(Vec<[u8; 32]>, Vec<u8>, u8)> = Vec::new();
        let old = match self.prev.as_mut() {
            Some(p) => p.covering(at, plain.len() as u64),
            None => Vec::new(),
        };
        if !old.is_empty() {
            let (mut ids, mut prefix, mut depth) = (Vec::new(), Vec::new(), 0u8);
            for o in old {
                if let Some(loc) = self.resolver.index.locate(&o)? {
                    prefix.extend_from_slice(&self.resolver.plain(&o)?);
                    ids.push(o);
                    depth = depth.max(loc.depth + 1);
                }
            }
            // A chain at its limit starts again: this chunk is stored on its
            // own (a new root), so old chains die with their snapshots.
            if !ids.is_empty() && depth <= MAX_DEPTH {
                candidates.push((ids, prefix, depth));
            }
        }
        // A chain through the stream itself is one link long, leaving room
        // for the next days' versions.
        if let Some((lid, lplain, ldepth)) = &self.last
            && *ldepth == 0
            && candidates.iter().all(|(ids, ..)| !ids.contains(lid))
        {
            candidates.push((vec![*lid], lplain.to_vec(), ldepth + 1));
        }
        let mut best = (
            seal_chunk(&self.repo.keys, id, plain, self.level, None)?,
            Vec::new(),
            0u8,
        );
        for (ids, prefix, depth) in candidates {
            let blob = seal_chunk(
                &self.repo.keys,
                id,
                plain,
                self.level,
                Some((ids.as_slice(), prefix.as_slice())),
            )?;
            if blob.len() < best.0.len() {
                best = (blob, ids, depth);
            }
        }
        Ok(best)
    }

    fn seal_pack(&mut self) -> Result<()> {
        if let Some(pack) = self.pack.take() {
            let (id, size, entries) = pack.seal(&self.repo)?;
            self.resolver.index.add_pack(&id, size, &entries)?;
            self.pending_depth.clear();
            crate::engine::failpoint::pause("repo.pack.after_index");
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
    resolver: Resolver,
    list: BufReader<File>,
    list_path: PathBuf,
    list_hash: Sha256,
    expect_sha256: String,
    cur: Arc<Vec<u8>>,
    pos: usize,
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
            resolver: Resolver::new(repo)?,
            list: BufReader::with_capacity(64 * 1024, file),
            list_path: list_path.to_path_buf(),
            list_hash: Sha256::new(),
            expect_sha256: expect_sha256.to_owned(),
            cur: Arc::new(Vec::new()),
            pos: 0,
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
        let plain = self.resolver.plain(&id).map_err(|e| {
            Error::new(
                e.kind,
                format!("{} (in {})", e.message, self.list_path.display()),
            )
        })?;
        if plain.len() != plain_len as usize {
            return Err(self.bad("disagrees with the repository about a chunk's length"));
        }
        self.cur = plain;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.done {
                return Ok(0);
            }
            if !self.next_chunk().map_err(to_io)? {
                self.done = true;
                self.cur = Arc::new(Vec::new());
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
