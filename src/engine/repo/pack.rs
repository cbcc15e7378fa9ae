//! Pack files: many sealed chunks in one file, with a sealed trailer
//! listing them, so the index can always be rebuilt from the packs.
//!
//! ```text
//! "SBPACK01"
//! blob*            nonce(12) ‖ AES-256-GCM(zstd(chunk), aad = name ‖ base names)
//! trailer          nonce(12) ‖ AES-256-GCM(zstd(entries), aad = "pack " ‖ pack id)
//!                  entry: name(32) ‖ offset(u64 LE) ‖ len(u32 LE) ‖ plain len(u32 LE)
//!                         ‖ depth(u8) ‖ 2 × base name(32, zeros when none)
//! ```
//!
//! A chunk with bases (one or two) is compressed with their plaintexts,
//! concatenated, as zstd's reference prefix: an updated chunk costs about
//! what changed in it. Its depth is its deepest base's plus one (bounded by
//! [`MAX_DEPTH`]); garbage collection keeps every base of a live chunk.
//!
//! ```text
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
const ENTRY_LEN: usize = 113;
/// Most bases a chunk is stored against.
pub const MAX_BASES: usize = 2;
/// The longest chain of bases a chunk may have: a chunk whose old version
/// is this deep is stored on its own again, so a changed chunk costs a
/// whole chunk once in `MAX_DEPTH + 1` backups and a delta otherwise.
pub const MAX_DEPTH: u8 = 6;
const NONCE: usize = 12;

/// One chunk's place in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    pub id: [u8; 32],
    pub offset: u64,
    pub len: u32,
    pub plain_len: u32,
    /// 0 for a chunk stored whole; else its deepest base's depth + 1.
    pub depth: u8,
    /// The chunks it is stored against, in order (at most [`MAX_BASES`]).
    pub bases: Vec<[u8; 32]>,
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
    pub fn push(
        &mut self,
        id: [u8; 32],
        blob: &[u8],
        plain_len: u32,
        bases: &[[u8; 32]],
        depth: u8,
    ) -> Result<()> {
        self.out
            .write_all(blob)
            .map_err(|e| Error::io("write", &self.tmp, e))?;
        self.entries.push(PackEntry {
            id,
            offset: self.pos,
            len: blob.len() as u32,
            plain_len,
            depth,
            bases: bases.to_vec(),
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
            list.push(e.depth);
            for i in 0..MAX_BASES {
                list.extend_from_slice(&e.bases.get(i).copied().unwrap_or([0u8; 32]));
            }
        }
        // Offsets ascend, depths are small and most second bases are empty.
        let list = zstd::bulk::compress(&list, 3)
            .map_err(|e| Error::internal(format!("zstd failed: {e}")))?;
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

fn chunk_aad(id: &[u8; 32], bases: &[[u8; 32]]) -> Vec<u8> {
    let mut aad = id.to_vec();
    for b in bases {
        aad.extend_from_slice(b);
    }
    aad
}

/// What a chunk is stored against: its bases' names and their plaintexts
/// concatenated.
pub type Against<'a> = Option<(&'a [[u8; 32]], &'a [u8])>;

/// Compresses and seals one chunk, against its bases when given; the
/// names are bound as associated data.
pub fn seal_chunk(
    keys: &RepoKeys,
    id: &[u8; 32],
    plain: &[u8],
    level: i32,
    base: Against<'_>,
) -> Result<Vec<u8>> {
    let packed = compress(plain, level, base.map(|(_, p)| p))
        .map_err(|e| Error::internal(format!("zstd failed: {e}")))?;
    let (nonce, sealed) = crypto::seal(
        &keys.data,
        &chunk_aad(id, base.map(|(b, _)| b).unwrap_or_default()),
        &packed,
    )?;
    let mut blob = Vec::with_capacity(NONCE + sealed.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

fn compress(
    plain: &[u8],
    level: i32,
    prefix: Option<&[u8]>,
) -> std::result::Result<Vec<u8>, String> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let mut cctx = CCtx::create();
    let code = |r: std::result::Result<usize, usize>| {
        r.map_err(|c| zstd::zstd_safe::get_error_name(c).to_owned())
    };
    code(cctx.set_parameter(CParameter::CompressionLevel(level)))?;
    code(cctx.set_parameter(CParameter::ChecksumFlag(false)))?;
    if let Some(p) = prefix {
        code(cctx.ref_prefix(p))?;
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(plain.len()));
    code(cctx.compress2(&mut out, plain))?;
    Ok(out)
}

fn decompress(
    packed: &[u8],
    capacity: usize,
    prefix: Option<&[u8]>,
) -> std::result::Result<Vec<u8>, String> {
    use zstd::zstd_safe::DCtx;
    let mut dctx = DCtx::create();
    let code = |r: std::result::Result<usize, usize>| {
        r.map_err(|c| zstd::zstd_safe::get_error_name(c).to_owned())
    };
    if let Some(p) = prefix {
        code(dctx.ref_prefix(p))?;
    }
    let mut out = Vec::with_capacity(capacity);
    code(dctx.decompress(&mut out, packed))?;
    Ok(out)
}

/// Opens a sealed blob: authenticates, decompresses (against its base's
/// plaintext when it has one) and checks that the plaintext is the one its
/// name says.
pub fn open_chunk(
    keys: &RepoKeys,
    id: &[u8; 32],
    blob: &[u8],
    plain_len: u32,
    base: Against<'_>,
) -> Result<Vec<u8>> {
    let short = &crypto::hex(id)[..12];
    if blob.len() < NONCE + 16 {
        return Err(Error::corrupt(format!("chunk {short} is truncated")));
    }
    let packed = crypto::open(
        &keys.data,
        &blob[..NONCE],
        &chunk_aad(id, base.map(|(b, _)| b).unwrap_or_default()),
        &blob[NONCE..],
    )
    .map_err(|_| {
        Error::corrupt(format!(
            "chunk {short} failed authentication (its bytes were altered)"
        ))
    })?;
    let plain = decompress(&packed, plain_len as usize, base.map(|(_, p)| p))
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
    let list = zstd::stream::decode_all(list.as_slice())
        .map_err(|e| bad(&format!("has a trailer that does not decompress ({e})")))?;
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
        let depth = e[48];
        let mut bases = Vec::new();
        for i in 0..MAX_BASES {
            let mut b = [0u8; 32];
            b.copy_from_slice(&e[49 + 32 * i..81 + 32 * i]);
            if b != [0u8; 32] {
                bases.push(b);
            }
        }
        if offset + u64::from(blen) > start || depth > MAX_DEPTH || (depth == 0) != bases.is_empty()
        {
            return Err(bad("has a damaged trailer"));
        }
        out.push(PackEntry {
            id,
            offset,
            len: blen,
            plain_len,
            depth,
            bases,
        });
    }
    Ok(out)
}
