//! Pack files: many sealed chunks in one file, with a sealed trailer
//! listing them, so the index can always be rebuilt from the packs.
//!
//! ```text
//! "SBPACK01"
//! blob*            nonce(12) ‖ AES-256-GCM(zstd(chunk), aad = chunk name)
//! trailer          nonce(12) ‖ AES-256-GCM(entries, aad = "pack " ‖ pack id)
//!                  entry: name(32) ‖ offset(u64 LE) ‖ len(u32 LE) ‖ plain len(u32 LE)
//! trailer len      u32 LE
//! "SBPKEND1"
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Repo, RepoKeys};
use crate::engine::crypto;
use crate::engine::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"SBPACK01";
pub const END_MAGIC: &[u8; 8] = b"SBPKEND1";
const ENTRY_LEN: usize = 48;
const NONCE: usize = 12;

/// One chunk's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub id: [u8; 32],
    pub offset: u64,
    pub len: u32,
    pub plain_len: u32,
}

/// A pack being written under `packs/tmp/`.
pub struct PackWriter {
    pub id: String,
    tmp: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    pub entries: Vec<PackEntry>,
}

fn trailer_aad(pack: &str) -> Vec<u8> {
    format!("pack {pack}").into_bytes()
}

impl PackWriter {
    pub fn create(repo: &Repo) -> Result<PackWriter> {
        let id = crypto::hex(&crypto::random::<16>()?);
        let tmp = repo.packs_dir().join("tmp").join(format!("{id}.part"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(MAGIC)
            .map_err(|e| Error::io("write", &tmp, e))?;
        Ok(PackWriter {
            id,
            tmp,
            out,
            pos: MAGIC.len() as u64,
            entries: Vec::new(),
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.pos
    }

    /// Appends a sealed blob (as [`seal_chunk`] made it).
    pub fn push(&mut self, id: [u8; 32], blob: &[u8], plain_len: u32) -> Result<()> {
        self.out
            .write_all(blob)
            .map_err(|e| Error::io("write", &self.tmp, e))?;
        self.entries.push(PackEntry {
            id,
            offset: self.pos,
            len: blob.len() as u32,
            plain_len,
        });
        self.pos += blob.len() as u64;
        Ok(())
    }

    /// Writes the trailer, fsyncs and renames the pack into place. The
    /// caller indexes it afterwards.
    pub fn seal(mut self, repo: &Repo) -> Result<(String, u64, Vec<PackEntry>)> {
        let mut list = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            list.extend_from_slice(&e.id);
            list.extend_from_slice(&e.offset.to_le_bytes());
            list.extend_from_slice(&e.len.to_le_bytes());
            list.extend_from_slice(&e.plain_len.to_le_bytes());
        }
        let (nonce, sealed) = crypto::seal(&repo.keys.data, &trailer_aad(&self.id), &list)?;
        let trailer_len = (NONCE + sealed.len()) as u32;
        let w = |out: &mut BufWriter<File>, b: &[u8]| out.write_all(b);
        (|| -> std::io::Result<()> {
            w(&mut self.out, &nonce)?;
            w(&mut self.out, &sealed)?;
            w(&mut self.out, &trailer_len.to_le_bytes())?;
            w(&mut self.out, END_MAGIC)?;
            self.out.flush()?;
            self.out.get_ref().sync_all()
        })()
        .map_err(|e| Error::io("write", &self.tmp, e))?;
        let size = self.pos + u64::from(trailer_len) + 12;
        let dest = repo.pack_path(&self.id);
        let parent = dest
            .parent()
            .ok_or_else(|| Error::internal("pack path has no parent"))?;
        crate::engine::paths::create_dirs_synced(parent)?;
        crate::engine::failpoint::pause("repo.pack.before_rename");
        std::fs::rename(&self.tmp, &dest).map_err(|e| Error::io("move into place", &dest, e))?;
        crate::engine::paths::fsync_dir(parent);
        Ok((self.id, size, self.entries))
    }

    /// Drops an unfinished pack.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Compresses and seals one chunk; the name is bound as associated data.
pub fn seal_chunk(keys: &RepoKeys, id: &[u8; 32], plain: &[u8], level: i32) -> Result<Vec<u8>> {
    let packed = zstd::bulk::compress(plain, level)
        .map_err(|e| Error::internal(format!("zstd failed: {e}")))?;
    let (nonce, sealed) = crypto::seal(&keys.data, id, &packed)?;
    let mut blob = Vec::with_capacity(NONCE + sealed.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Opens a sealed blob: authenticates, decompresses and checks that the
/// plaintext is the one its name says.
pub fn open_chunk(keys: &RepoKeys, id: &[u8; 32], blob: &[u8], plain_len: u32) -> Result<Vec<u8>> {
    let short = &crypto::hex(id)[..12];
    if blob.len() < NONCE + 16 {
        return Err(Error::corrupt(format!("chunk {short} is truncated")));
    }
    let packed = crypto::open(&keys.data, &blob[..NONCE], id, &blob[NONCE..]).map_err(|_| {
        Error::corrupt(format!(
            "chunk {short} failed authentication (its bytes were altered)"
        ))
    })?;
    let plain = zstd::bulk::decompress(&packed, plain_len as usize)
        .map_err(|e| Error::corrupt(format!("chunk {short} does not decompress: {e}")))?;
    if plain.len() != plain_len as usize || keys.chunk_id(&plain) != *id {
        return Err(Error::corrupt(format!(
            "chunk {short} does not hold the content its name says"
        )));
    }
    Ok(plain)
}

/// Reads one blob from an open pack.
pub fn read_blob(file: &File, path: &Path, offset: u64, len: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
                    "{} is truncated (a chunk reaches past its end)",
                    path.display()
                )),
                _ => Error::io("read", path, e),
            })?;
    }
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| Error::io("read", path, e))?;
    }
    Ok(buf)
}

/// Reads and authenticates a pack's trailer: the chunks it holds.
pub fn read_trailer(repo: &Repo, pack: &str, path: &Path) -> Result<Vec<PackEntry>> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = f.metadata().map_err(|e| Error::io("read", path, e))?.len();
    let bad = |what: &str| Error::corrupt(format!("pack {} {what}", path.display()));
    if len < (MAGIC.len() + 12 + NONCE + 16) as u64 {
        return Err(bad("is truncated"));
    }
    let mut head = [0u8; 8];
    f.read_exact(&mut head)
        .map_err(|e| Error::io("read", path, e))?;
    if &head != MAGIC {
        return Err(bad("is not a supabackup pack"));
    }
    let mut end = [0u8; 12];
    f.seek(SeekFrom::End(-12))
        .and_then(|_| f.read_exact(&mut end))
        .map_err(|e| Error::io("read", path, e))?;
    if &end[4..] != END_MAGIC {
        return Err(bad("is truncated (no end marker)"));
    }
    let tlen = u64::from(u32::from_le_bytes([end[0], end[1], end[2], end[3]]));
    if tlen + 12 + 8 > len || tlen < (NONCE + 16) as u64 {
        return Err(bad("has a damaged trailer"));
    }
    let start = len - 12 - tlen;
    let blob = read_blob(&f, path, start, tlen as u32)?;
    let list = crypto::open(
        &repo.keys.data,
        &blob[..NONCE],
        &trailer_aad(pack),
        &blob[NONCE..],
    )
    .map_err(|_| bad("has a trailer that fails authentication"))?;
    if list.len() % ENTRY_LEN != 0 {
        return Err(bad("has a damaged trailer"));
    }
    let mut out = Vec::with_capacity(list.len() / ENTRY_LEN);
    for e in list.chunks_exact(ENTRY_LEN) {
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[..32]);
        let offset = u64::from_le_bytes(e[32..40].try_into().unwrap_or_default());
        let blen = u32::from_le_bytes(e[40..44].try_into().unwrap_or_default());
        let plain_len = u32::from_le_bytes(e[44..48].try_into().unwrap_or_default());
        if offset + u64::from(blen) > start {
            return Err(bad("lists a chunk past its data"));
        }
        out.push(PackEntry {
            id,
            offset,
            len: blen,
            plain_len,
        });
    }
    Ok(out)
}
