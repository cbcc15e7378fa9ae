//! Streaming authenticated encryption for backup artifacts.
//!
//! The format (documented byte by byte in `docs/FORMAT.md`) is AES-256-GCM in
//! the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online
//! authenticated-encryption and its nonce-reuse misuse-resistance", 2015):
//! the plaintext is cut into fixed-size chunks, each sealed on its own with
//! the nonce `prefix(7) ‖ counter(u32 BE) ‖ last-flag(u8)` and the whole file
//! header as associated data. Every chunk is authenticated before any of its
//! bytes are released, and truncation, reordering, dropped or duplicated
//! chunks and header edits all fail authentication.
//!
//! The key comes from a passphrase through Argon2id; the parameters and the
//! salt sit in the header, so a file plus its passphrase is all a fresh
//! install needs to recover it.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::engine::crypto::{self, KdfParams, Key, NONCE_LEN, SALT_LEN, Secret};
use crate::engine::error::{Error, ErrorKind, Result};

/// The first eight bytes of every encrypted file; the last two are the
/// format version.
pub const MAGIC: &[u8; 8] = b"SBKENC01";
/// Plaintext bytes per chunk written by [`EncryptWriter::new`].
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Smallest chunk size a reader accepts.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk size a reader accepts (bounds the reader's memory).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 48;
/// Size of the random nonce prefix in bytes.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Size of the AES-GCM tag that ends every chunk.
pub const TAG_LEN: usize = 16;
/// Key-derivation identifier for Argon2id version 0x13.
pub const KDF_ARGON2ID: u8 = 1;
/// Largest key file accepted by [`passphrase_from_key_file`].
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// The magic without its two version digits, to tell "another version" from
/// "not our file at all".
const MAGIC_FAMILY: &[u8; 6] = b"SBKENC";

const MSG_WRONG_PASSPHRASE: &str = "wrong backup passphrase, or the file is corrupt";
const MSG_LAST_CHUNK_MISSING: &str = "the file is truncated: its last chunk is missing";

/// Key material for one or more files: derive once, reuse for all files of
/// a backup (each file still gets its own random nonce prefix).
#[derive(Clone)]
pub struct FileKey {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    key: Key,
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKey")
            .field("params", &self.params)
            .field("salt", &crypto::hex(&self.salt))
            .field("key", &"****")
            .finish()
    }
}

impl FileKey {
    /// Derives a key from a passphrase with a fresh random salt.
    pub fn derive_new(passphrase: &Secret, params: KdfParams) -> Result<FileKey> {
        if passphrase.is_empty() {
            return Err(Error::invalid("the backup passphrase must not be empty"));
        }
        let salt = crypto::random::<SALT_LEN>()?;
        let key = crypto::derive_key(passphrase.expose().as_bytes(), &salt, params)?;
        Ok(FileKey { params, salt, key })
    }

    /// Re-derives the key for reading a file whose header carries the
    /// parameters and the salt.
    pub fn derive_for_header(passphrase: &Secret, header: &Header) -> Result<FileKey> {
        if passphrase.is_empty() {
            return Err(Error::auth("no backup passphrase was given"));
        }
        let key = crypto::derive_key(passphrase.expose().as_bytes(), &header.salt, header.params)?;
        Ok(FileKey {
            params: header.params,
            salt: header.salt,
            key,
        })
    }

    pub fn params(&self) -> KdfParams {
        self.params
    }

    pub fn salt(&self) -> [u8; SALT_LEN] {
        self.salt
    }

    /// A key with chosen bytes, for known-answer tests.
    #[cfg(test)]
    fn from_raw_for_tests(
        params: KdfParams,
        salt: [u8; SALT_LEN],
        key: [u8; crypto::KEY_LEN],
    ) -> Self {
        FileKey {
            params,
            salt,
            key: Zeroizing::new(key),
        }
    }
}

/// The fixed header at the start of every encrypted file. Its serialized
/// bytes are the associated data of every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub params: KdfParams,
    pub salt: [u8; SALT_LEN],
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub chunk_size: u32,
}

impl Header {
    /// The header's exact bytes (see `docs/FORMAT.md`).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8] = KDF_ARGON2ID;
        out[9..13].copy_from_slice(&self.params.m_cost.to_be_bytes());
        out[13..17].copy_from_slice(&self.params.t_cost.to_be_bytes());
        out[17..21].copy_from_slice(&self.params.p_cost.to_be_bytes());
        out[21..37].copy_from_slice(&self.salt);
        out[37..44].copy_from_slice(&self.nonce_prefix);
        out[44..48].copy_from_slice(&self.chunk_size.to_be_bytes());
        out
    }

    /// Reads and checks the header at the start of `r`, leaving `r` at the
    /// first chunk.
    pub fn read_from<R: Read>(r: &mut R) -> Result<Header> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = read_full(r, &mut bytes[..MAGIC.len()])
            .map_err(|e| read_error("the encrypted file's header", e))?;
        if got < MAGIC.len() || !bytes.starts_with(MAGIC_FAMILY) {
            return Err(Error::invalid(
                "not a supabackup encrypted file (bad magic)",
            ));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            let version = String::from_utf8_lossy(&bytes[MAGIC_FAMILY.len()..MAGIC.len()]);
            return Err(Error::invalid(format!(
                "unsupported encrypted-file format version \"{version}\" (this supabackup reads version 01)"
            ))
            .with_hint("decrypt it with the supabackup version that made it, or a newer one"));
        }
        let got = read_full(r, &mut bytes[MAGIC.len()..])
            .map_err(|e| read_error("the encrypted file's header", e))?;
        if got < HEADER_LEN - MAGIC.len() {
            return Err(Error::corrupt(
                "the file is truncated: its encryption header is incomplete",
            ));
        }
        Header::parse(&bytes)
    }

    fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header> {
        let u32_at = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if bytes[8] != KDF_ARGON2ID {
            return Err(Error::invalid(format!(
                "unsupported key-derivation function id {} in the encryption header",
                bytes[8]
            ))
            .with_hint("decrypt it with the supabackup version that made it, or a newer one"));
        }
        let params = KdfParams {
            m_cost: u32_at(9),
            t_cost: u32_at(13),
            p_cost: u32_at(17),
        };
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[21..37]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[37..44]);
        let chunk_size = u32_at(44);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(Error::corrupt(format!(
                "the encryption header has an absurd chunk size ({chunk_size} bytes; \
                 expected {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE})"
            )));
        }
        Ok(Header {
            params,
            salt,
            nonce_prefix,
            chunk_size,
        })
    }
}

/// The 12-byte nonce of chunk `counter`.
fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&counter.to_be_bytes());
    nonce[NONCE_LEN - 1] = u8::from(last);
    nonce
}

fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(Error::invalid(format!(
            "the encryption chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, not {chunk_size}"
        )));
    }
    Ok(())
}

fn too_many_chunks() -> Error {
    Error::invalid("the file is too large for the encrypted format (more than 2^32 chunks)")
        .with_hint("use a larger chunk size")
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_error(what: &str, err: io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("could not read {what}: {err}"))
}

/// Wraps an engine error into an `io::Error` that keeps it (see
/// [`error_from_io`]).
pub(crate) fn to_io(err: Error) -> io::Error {
    let kind = match err.kind {
        ErrorKind::Auth | ErrorKind::Corrupt => io::ErrorKind::InvalidData,
        ErrorKind::Invalid => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, err)
}

/// Turns an `io::Error` returned by [`EncryptWriter`] or [`DecryptReader`]
/// back into the engine error it carries (wrong passphrase, corrupt chunk,
/// truncation...), or into an I/O error about `path` when it is a plain
/// operating-system error.
pub fn error_from_io(err: io::Error, action: &str, path: &Path) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = err.into_inner() {
            match inner.downcast::<Error>() {
                Ok(engine) => return *engine,
                Err(other) => {
                    return Error::io(action, path, io::Error::other(other));
                }
            }
        }
        return Error::internal("an I/O error lost its cause");
    }
    Error::io(action, path, err)
}

/// `std::io::Write` adapter: encrypts everything written to it into `inner`.
///
/// Buffers at most one chunk. [`finish`](Self::finish) writes the last chunk
/// and returns `inner`; dropping the writer without `finish` leaves a file
/// that readers reject as truncated. `flush` flushes `inner` only: a chunk is
/// sealed when it is full and more data follows, or at `finish`.
pub struct EncryptWriter<W: Write> {
    inner: W,
    key: Key,
    header: Header,
    header_bytes: [u8; HEADER_LEN],
    chunk_size: usize,
    buf: Zeroizing<Vec<u8>>,
    counter: u64,
    poisoned: bool,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header (with a random nonce prefix) and returns the writer,
    /// with [`DEFAULT_CHUNK_SIZE`].
    pub fn new(inner: W, key: &FileKey) -> Result<Self> {
        Self::with_chunk_size(inner, key, DEFAULT_CHUNK_SIZE)
    }

    /// Like [`new`](Self::new) with another chunk size
    /// ([`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`]).
    pub fn with_chunk_size(inner: W, key: &FileKey, chunk_size: u32) -> Result<Self> {
        let prefix = crypto::random::<NONCE_PREFIX_LEN>()?;
        Self::start(inner, key, chunk_size, prefix)
    }

    /// A writer with a chosen nonce prefix, for known-answer tests.
    #[cfg(test)]
    fn with_prefix_for_tests(
        inner: W,
        key: &FileKey,
        chunk_size: u32,
        prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        Self::start(inner, key, chunk_size, prefix)
    }

    fn start(
        mut inner: W,
        key: &FileKey,
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        let header = Header {
            params: key.params,
            salt: key.salt,
            nonce_prefix,
            chunk_size,
        };
        let header_bytes = header.to_bytes();
        inner.write_all(&header_bytes).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("could not write the encrypted file's header: {e}"),
            )
        })?;
        let chunk_size = chunk_size as usize;
        Ok(EncryptWriter {
            inner,
            key: key.key.clone(),
            header,
            header_bytes,
            chunk_size,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size)),
            counter: 0,
            poisoned: false,
        })
    }

    /// The header written at the start of the file.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Seals the buffered plaintext as the next chunk and writes it.
    fn emit_chunk(&mut self, last: bool) -> io::Result<()> {
        // The last chunk needs a counter value too: a middle chunk may not
        // take the final one.
        let counter = u32::try_from(self.counter)
            .ok()
            .filter(|&c| last || c < u32::MAX)
            .ok_or_else(|| to_io(too_many_chunks()))?;
        let nonce = chunk_nonce(&self.header.nonce_prefix, counter, last);
        let sealed = crypto::seal_with_nonce(&self.key, &nonce, &self.header_bytes, &self.buf)
            .map_err(to_io)?;
        self.inner.write_all(&sealed)?;
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    fn poisoned_error() -> io::Error {
        io::Error::other("an earlier write to the encrypted file failed; the file is incomplete")
    }

    /// Seals the last chunk (0..=chunk size bytes), flushes `inner` and
    /// returns it.
    pub fn finish(mut self) -> io::Result<W> {
        if self.poisoned {
            return Err(Self::poisoned_error());
        }
        self.emit_chunk(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(Self::poisoned_error());
        }
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only now that more data proves it is not
        // the last chunk.
        if self.buf.len() == self.chunk_size
            && let Err(e) = self.emit_chunk(false)
        {
            self.poisoned = true;
            return Err(e);
        }
        let n = data.len().min(self.chunk_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `std::io::Read` adapter: authenticates and decrypts chunk by chunk, with
/// memory bounded by one chunk.
///
/// Errors are `io::Error`s of kind `InvalidData` that carry an engine
/// [`Error`] (recover it with [`error_from_io`]): a wrong passphrase (the
/// first chunk fails), a later chunk failing authentication, truncation, or
/// data after the last chunk. Bytes returned before an error were
/// authenticated, but the stream is complete only once `read` returns 0.
/// After an authentication failure every later `read` fails too.
pub struct DecryptReader<R: Read> {
    inner: R,
    key: Key,
    header_bytes: [u8; HEADER_LEN],
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    chunk_size: usize,
    /// One sealed chunk as read from `inner`.
    sealed: Vec<u8>,
    /// The byte after a full chunk, read to learn whether that chunk is the
    /// last one.
    lookahead: Option<u8>,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    counter: u64,
    done: bool,
    failed: Option<Error>,
}

impl<R: Read> DecryptReader<R> {
    /// Reads the header and derives the key from the passphrase.
    pub fn new(mut inner: R, passphrase: &Secret) -> Result<Self> {
        let header = Header::read_from(&mut inner)?;
        let key = FileKey::derive_for_header(passphrase, &header)?;
        Self::with_key(inner, header, &key)
    }

    /// Uses an already-derived key; `inner` must be positioned just after the
    /// header (as [`Header::read_from`] leaves it). The key must have been
    /// derived for the header's parameters and salt, else use
    /// [`FileKey::derive_for_header`].
    pub fn with_key(inner: R, header: Header, key: &FileKey) -> Result<Self> {
        if key.params != header.params || key.salt != header.salt {
            return Err(Error::invalid(
                "the backup key was derived for another salt or other parameters than this file's",
            )
            .with_hint("derive the key from this file's header"));
        }
        check_chunk_size(header.chunk_size).map_err(|e| Error::corrupt(e.message))?;
        let chunk_size = header.chunk_size as usize;
        Ok(DecryptReader {
            inner,
            key: key.key.clone(),
            header_bytes: header.to_bytes(),
            nonce_prefix: header.nonce_prefix,
            chunk_size,
            sealed: vec![0u8; chunk_size + TAG_LEN],
            lookahead: None,
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            counter: 0,
            done: false,
            failed: None,
        })
    }

    /// Number of chunks authenticated so far.
    pub fn chunks_read(&self) -> u64 {
        self.counter
    }

    fn try_open(&self, counter: u32, last: bool, len: usize) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = chunk_nonce(&self.nonce_prefix, counter, last);
        crypto::open(&self.key, &nonce, &self.header_bytes, &self.sealed[..len]).ok()
    }

    /// Reads, authenticates and decrypts the next chunk into `plain`.
    /// Authentication problems come back as `Err(Ok(error))`, failures of
    /// `inner` as `Err(Err(io))`.
    fn next_chunk(&mut self) -> std::result::Result<(), std::result::Result<Error, io::Error>> {
        let full = self.chunk_size + TAG_LEN;
        let mut len = 0;
        if let Some(b) = self.lookahead.take() {
            self.sealed[0] = b;
            len = 1;
        }
        len += read_full(&mut self.inner, &mut self.sealed[len..full]).map_err(Err)?;
        let at_end = if len < full {
            true
        } else {
            let mut one = [0u8; 1];
            if read_full(&mut self.inner, &mut one).map_err(Err)? == 0 {
                true
            } else {
                self.lookahead = Some(one[0]);
                false
            }
        };
        let index = self.counter;
        let counter = u32::try_from(index).map_err(|_| {
            Ok(Error::corrupt(
                "the file has more chunks than the format allows (2^32)",
            ))
        })?;
        if len == 0 {
            return Err(Ok(Error::corrupt(MSG_LAST_CHUNK_MISSING)));
        }
        if len < TAG_LEN {
            return Err(Ok(Error::corrupt(
                "the file is truncated: its last chunk is incomplete",
            )));
        }
        let opened = if at_end {
            match self.try_open(counter, true, len) {
                Some(plain) => {
                    self.done = true;
                    plain
                }
                None if len == full && self.try_open(counter, false, len).is_some() => {
                    // A valid middle chunk with nothing after it.
                    return Err(Ok(Error::corrupt(MSG_LAST_CHUNK_MISSING)));
                }
                None if index == 0 => return Err(Ok(Error::auth(MSG_WRONG_PASSPHRASE))),
                None => {
                    return Err(Ok(Error::corrupt(format!(
                        "chunk {index} failed authentication: the file is truncated, \
                         corrupt or was tampered with"
                    ))));
                }
            }
        } else {
            match self.try_open(counter, false, len) {
                Some(plain) => plain,
                None if self.try_open(counter, true, len).is_some() => {
                    return Err(Ok(Error::corrupt(format!(
                        "the file has trailing data after its last chunk (chunk {index})"
                    ))));
                }
                None if index == 0 => return Err(Ok(Error::auth(MSG_WRONG_PASSPHRASE))),
                None => {
                    return Err(Ok(Error::corrupt(format!(
                        "chunk {index} failed authentication: the file is corrupt or was \
                         tampered with"
                    ))));
                }
            }
        };
        self.plain = opened;
        self.pos = 0;
        self.counter += 1;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.plain.len() {
                let n = out.len().min(self.plain.len() - self.pos);
                out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            if let Some(err) = &self.failed {
                return Err(to_io(err.clone()));
            }
            match self.next_chunk() {
                Ok(()) => {}
                Err(Ok(err)) => {
                    self.failed = Some(err.clone());
                    return Err(to_io(err));
                }
                Err(Err(io_err)) => {
                    // The chunk was half read: the stream cannot resume.
                    self.failed = Some(Error::new(
                        ErrorKind::Io,
                        format!("could not read the encrypted file: {io_err}"),
                    ));
                    return Err(io_err);
                }
            }
        }
    }
}

/// Decrypts `input` to `output` (streaming), for `supabackup decrypt`.
///
/// The plaintext is written to a temporary sibling of `output` with mode
/// 0600 and renamed over `output` only once the last chunk authenticated, so
/// no partial plaintext is ever left under the final name (an existing
/// `output` is replaced on success and left untouched on failure). Returns the
/// number of plaintext bytes. A wrong passphrase is an `Auth` error; a
/// corrupt, truncated or tampered file a `Corrupt` one.
pub fn decrypt_file(input: &Path, output: &Path, passphrase: &Secret) -> Result<u64> {
    let file = std::fs::File::open(input).map_err(|e| Error::io("open", input, e))?;
    let mut reader = DecryptReader::new(
        io::BufReader::with_capacity(DEFAULT_CHUNK_SIZE as usize + TAG_LEN, file),
        passphrase,
    )
    .map_err(|e| in_file(e, input))?;

    let tmp = temp_sibling(output)?;
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let out = options
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let mut out = io::BufWriter::with_capacity(256 * 1024, out);
        let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
        let mut total: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(in_file(error_from_io(e, "read", input), input)),
            };
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write", &tmp, e))?;
            total += n as u64;
        }
        let out = out
            .into_inner()
            .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        out.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        drop(out);
        std::fs::rename(&tmp, output).map_err(|e| Error::io("rename into", output, e))?;
        if let Some(dir) = output.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(total)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Names the file in an authentication or format error.
fn in_file(err: Error, path: &Path) -> Error {
    match err.kind {
        ErrorKind::Auth | ErrorKind::Corrupt | ErrorKind::Invalid => Error {
            message: format!("{} (file {})", err.message, path.display()),
            ..err
        },
        _ => err,
    }
}

/// A fresh hidden name next to `output` for the plaintext being written.
fn temp_sibling(output: &Path) -> Result<PathBuf> {
    let name = output
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} is not a file name", output.display())))?;
    let tag = crypto::hex(&crypto::random::<4>()?);
    let tmp_name = format!(
        ".{}.part-{}-{tag}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(output.with_file_name(tmp_name))
}

/// True when the file starts with [`MAGIC`].
pub fn is_encrypted(path: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut start = [0u8; 8];
    let n = read_full(&mut file, &mut start).map_err(|e| Error::io("read", path, e))?;
    Ok(n == start.len() && &start == MAGIC)
}

/// Reads a key file: a text file whose content, with leading and trailing
/// whitespace (such as the final newline) removed, is the passphrase. Empty
/// files and files over 4 KiB are refused.
pub fn passphrase_from_key_file(path: &Path) -> Result<Secret> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open the key file", path, e))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read the key file", path, e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(Error::invalid(format!(
            "the key file {} is larger than 4 KiB; a key file holds only a passphrase",
            path.display()
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::invalid(format!("the key file {} is not UTF-8 text", path.display()))
    })?;
    let passphrase = text.trim();
    if passphrase.is_empty() {
        return Err(Error::invalid(format!(
            "the key file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(passphrase))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u32 = 1024;
    const SEALED: usize = CHUNK as usize + TAG_LEN;

    fn pass() -> Secret {
        Secret::new("correct horse battery staple")
    }

    fn test_key() -> FileKey {
        FileKey::derive_new(&pass(), KdfParams::insecure_for_tests()).expect("derive")
    }

    /// Deterministic, non-repeating test data.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// Encrypts `plain` with writes of odd sizes.
    fn encrypt(plain: &[u8], key: &FileKey) -> Vec<u8> {
        let mut w = EncryptWriter::with_chunk_size(Vec::new(), key, CHUNK).expect("writer");
        let pieces = [1usize, 7, 333, 1500, 1024, 2];
        let mut at = 0;
        let mut i = 0;
        while at < plain.len() {
            let n = pieces[i % pieces.len()].min(plain.len() - at);
            w.write_all(&plain[at..at + n]).expect("write");
            at += n;
            i += 1;
        }
        w.finish().expect("finish")
    }

    fn decrypt(file: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = DecryptReader::new(file, &pass()).map_err(to_io)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn decrypt_err(file: &[u8]) -> String {
        match decrypt(file) {
            Ok(_) => panic!("a damaged file decrypted without error"),
            Err(e) => e.to_string(),
        }
    }

    fn chunk_range(index: usize) -> std::ops::Range<usize> {
        HEADER_LEN + index * SEALED..HEADER_LEN + (index + 1) * SEALED
    }

    #[test]
    fn round_trips_at_chunk_edges() {
        let key = test_key();
        let c = CHUNK as usize;
        for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 17] {
            let plain = data(len);
            let file = encrypt(&plain, &key);
            let chunks = len.div_ceil(c).max(1);
            assert_eq!(
                file.len(),
                HEADER_LEN + len + chunks * TAG_LEN,
                "size of the file for {len} bytes"
            );
            assert_eq!(&file[..8], MAGIC);

            // read_to_end
            let mut r = DecryptReader::new(file.as_slice(), &pass()).expect("reader");
            let mut out = Vec::new();
            r.read_to_end(&mut out).expect("read");
            assert_eq!(out, plain, "round trip of {len} bytes");
            assert_eq!(r.chunks_read(), chunks as u64);

            // odd-sized reads, and reads after the end keep returning 0
            let mut r = DecryptReader::new(file.as_slice(), &pass()).expect("reader");
            let mut out = Vec::new();
            let mut buf = [0u8; 77];
            loop {
                let n = r.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(r.read(&mut buf).expect("read after end"), 0);
            assert_eq!(out, plain, "odd-sized reads of {len} bytes");
        }
    }

    #[test]
    fn default_chunk_size_round_trip() {
        let key = test_key();
        let plain = data(2 * DEFAULT_CHUNK_SIZE as usize + 5);
        let mut w = EncryptWriter::new(Vec::new(), &key).expect("writer");
        assert_eq!(w.header().chunk_size, DEFAULT_CHUNK_SIZE);
        w.write_all(&plain).expect("write");
        let file = w.finish().expect("finish");
        assert_eq!(file.len(), HEADER_LEN + plain.len() + 3 * TAG_LEN);
        assert_eq!(decrypt(&file).expect("decrypt"), plain);
    }

    #[test]
    fn known_answer_single_chunk() {
        // Computed independently with Python's `cryptography` AESGCM:
        // key 00..1f, salt a0..af, prefix 01..07, chunk size 1024,
        // nonce = prefix ‖ 00000000 ‖ 01, AAD = the 48-byte header.
        let key = FileKey::from_raw_for_tests(
            KdfParams::insecure_for_tests(),
            std::array::from_fn(|i| 0xa0 + i as u8),
            std::array::from_fn(|i| i as u8),
        );
        let prefix = [1, 2, 3, 4, 5, 6, 7];
        let expected_header = "53424b454e43303101000004000000000100000001\
                               a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0102030405060700000400";
        let mut w =
            EncryptWriter::with_prefix_for_tests(Vec::new(), &key, 1024, prefix).expect("writer");
        w.write_all(b"supabackup").expect("write");
        let file = w.finish().expect("finish");
        assert_eq!(crypto::hex(&file[..HEADER_LEN]), expected_header);
        assert_eq!(
            crypto::hex(&file[HEADER_LEN..]),
            "0bbc2465a89c3cb4fd9799448857d99a3c7abcb6ea813c4bed66"
        );

        // The nonce is exactly prefix ‖ 00000000 ‖ 01 (and not the flag-0 one).
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..7].copy_from_slice(&prefix);
        nonce[11] = 1;
        assert_eq!(chunk_nonce(&prefix, 0, true), nonce);
        let opened =
            crypto::open(&key.key, &nonce, &file[..HEADER_LEN], &file[HEADER_LEN..]).expect("open");
        assert_eq!(opened.as_slice(), b"supabackup");
        nonce[11] = 0;
        assert!(crypto::open(&key.key, &nonce, &file[..HEADER_LEN], &file[HEADER_LEN..]).is_err());

        // An empty plaintext is one last chunk holding only the tag.
        let w =
            EncryptWriter::with_prefix_for_tests(Vec::new(), &key, 1024, prefix).expect("writer");
        let empty = w.finish().expect("finish");
        assert_eq!(
            crypto::hex(&empty[HEADER_LEN..]),
            "e9e09a5c559b4d52950400d3c1e30f85"
        );

        // The reader accepts the vector with the same key.
        let mut cursor = file.as_slice();
        let header = Header::read_from(&mut cursor).expect("header");
        assert_eq!(header.nonce_prefix, prefix);
        let mut r = DecryptReader::with_key(cursor, header, &key).expect("reader");
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"supabackup");
    }

    #[test]
    fn chunk_nonces_count_and_flag() {
        let p = [9u8; 7];
        assert_eq!(
            crypto::hex(&chunk_nonce(&p, 0x0102_0304, false)),
            "0909090909090901020304".to_owned() + "00"
        );
        assert_eq!(
            crypto::hex(&chunk_nonce(&p, u32::MAX, true)),
            "09090909090909ffffffff01"
        );
    }

    #[test]
    fn every_header_byte_is_authenticated() {
        let key = test_key();
        let file = encrypt(&data(3000), &key);
        for at in 0..HEADER_LEN {
            let mut bad = file.clone();
            bad[at] ^= 0x01;
            let _ = decrypt_err(&bad);
        }
    }

    #[test]
    fn flipped_chunk_bytes_fail() {
        let key = test_key();
        let file = encrypt(&data(3 * CHUNK as usize + 17), &key);

        let mut bad = file.clone();
        bad[chunk_range(0).start + 5] ^= 0x80;
        let msg = decrypt_err(&bad);
        assert_eq!(msg, MSG_WRONG_PASSPHRASE);

        let mut bad = file.clone();
        bad[chunk_range(1).start + 100] ^= 0x01;
        let msg = decrypt_err(&bad);
        assert!(msg.contains("chunk 1 failed authentication"), "{msg}");

        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        let msg = decrypt_err(&bad);
        assert!(msg.contains("chunk 3 failed authentication"), "{msg}");

        // Data of earlier chunks was released only after authentication, and
        // the reader stays failed.
        let mut r = DecryptReader::new(bad.as_slice(), &pass()).expect("reader");
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).expect_err("tampered");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(out, data(3 * CHUNK as usize));
        assert_eq!(r.chunks_read(), 3);
        let mut buf = [0u8; 10];
        assert!(r.read(&mut buf).is_err());
    }

    #[test]
    fn truncation_is_detected_everywhere() {
        let key = test_key();
        let plain = data(3 * CHUNK as usize + 17);
        let file = encrypt(&plain, &key);
        assert_eq!(decrypt(&file).expect("intact"), plain);
        // Inside the header.
        for cut in [0, 4, 8, 20, HEADER_LEN - 1] {
            let _ = decrypt_err(&file[..cut]);
        }
        // At every chunk boundary: a valid prefix of chunks without the last.
        for chunks in 0..=3 {
            let cut = HEADER_LEN + chunks * SEALED;
            let msg = decrypt_err(&file[..cut]);
            assert_eq!(msg, MSG_LAST_CHUNK_MISSING, "cut after {chunks} chunks");
        }
        // Mid-chunk, including inside tags.
        for chunk in 0..4 {
            let start = chunk_range(chunk).start;
            for offset in [1, 15, 16, 17, 500, SEALED - 1] {
                let cut = start + offset;
                if cut >= file.len() {
                    continue;
                }
                let msg = decrypt_err(&file[..cut]);
                assert!(
                    msg.contains("truncated")
                        || msg.contains("failed authentication")
                        || msg == MSG_WRONG_PASSPHRASE,
                    "cut at {cut}: {msg}"
                );
            }
        }
        // One byte short of the end.
        let msg = decrypt_err(&file[..file.len() - 1]);
        assert!(msg.contains("chunk 3 failed authentication"), "{msg}");
    }

    #[test]
    fn writer_dropped_without_finish_is_truncated() {
        let key = test_key();
        let mut sink = Vec::new();
        {
            let mut w = EncryptWriter::with_chunk_size(&mut sink, &key, CHUNK).expect("writer");
            w.write_all(&data(5000)).expect("write");
        }
        assert_eq!(decrypt_err(&sink), MSG_LAST_CHUNK_MISSING);
    }

    #[test]
    fn reordered_dropped_and_duplicated_chunks_fail() {
        let key = test_key();
        let file = encrypt(&data(4 * CHUNK as usize + 9), &key);

        let swap = |a: usize, b: usize| {
            let mut out = file[..HEADER_LEN].to_vec();
            for i in 0..5 {
                let j = if i == a {
                    b
                } else if i == b {
                    a
                } else {
                    i
                };
                let r = chunk_range(j);
                out.extend_from_slice(&file[r.start..r.end.min(file.len())]);
            }
            out
        };
        assert_eq!(decrypt_err(&swap(0, 1)), MSG_WRONG_PASSPHRASE);
        let msg = decrypt_err(&swap(1, 2));
        assert!(msg.contains("chunk 1 failed authentication"), "{msg}");
        // Moving the short last chunk into the middle.
        let msg = decrypt_err(&swap(3, 4));
        assert!(msg.contains("chunk 3"), "{msg}");

        // Duplicated middle chunk.
        let mut dup = file[..chunk_range(2).end].to_vec();
        dup.extend_from_slice(&file[chunk_range(2)]);
        dup.extend_from_slice(&file[chunk_range(2).end..]);
        let msg = decrypt_err(&dup);
        assert!(msg.contains("chunk 3 failed authentication"), "{msg}");

        // Dropped middle chunk.
        let mut dropped = file[..chunk_range(1).start].to_vec();
        dropped.extend_from_slice(&file[chunk_range(1).end..]);
        let msg = decrypt_err(&dropped);
        assert!(msg.contains("chunk 1 failed authentication"), "{msg}");

        // A chunk from another file with the same key.
        let other = encrypt(&data(4 * CHUNK as usize + 9), &key);
        let mut mixed = file.clone();
        mixed[chunk_range(1)].copy_from_slice(&other[chunk_range(1)]);
        let msg = decrypt_err(&mixed);
        assert!(msg.contains("chunk 1 failed authentication"), "{msg}");
    }

    #[test]
    fn trailing_data_is_refused() {
        let key = test_key();
        // After a full last chunk: diagnosed precisely.
        let mut file = encrypt(&data(2 * CHUNK as usize), &key);
        file.extend_from_slice(b"garbage");
        let msg = decrypt_err(&file);
        assert!(msg.contains("trailing data after its last chunk"), "{msg}");
        // A single extra byte, too.
        let mut file = encrypt(&data(CHUNK as usize), &key);
        file.push(0);
        assert!(decrypt_err(&file).contains("trailing data"));
        // After a short last chunk: the last chunk no longer authenticates.
        let mut file = encrypt(&data(CHUNK as usize + 10), &key);
        file.extend_from_slice(b"garbage");
        let msg = decrypt_err(&file);
        assert!(msg.contains("chunk 1 failed authentication"), "{msg}");
        // A whole extra copy of the last chunk.
        let mut file = encrypt(&data(2 * CHUNK as usize + 10), &key);
        let last = file[chunk_range(2).start..].to_vec();
        file.extend_from_slice(&last);
        let _ = decrypt_err(&file);
    }

    #[test]
    fn wrong_passphrase_is_reported_as_such() {
        let key = test_key();
        let file = encrypt(&data(5000), &key);
        let mut r = DecryptReader::new(file.as_slice(), &Secret::new("wrong")).expect("reader");
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).expect_err("wrong passphrase");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), MSG_WRONG_PASSPHRASE);
        assert!(out.is_empty());
        assert_eq!(r.chunks_read(), 0);
        let engine = error_from_io(err, "read", Path::new("x"));
        assert_eq!(engine.kind, ErrorKind::Auth);

        // Same for a single-chunk (and an empty) file.
        let empty = encrypt(b"", &key);
        let mut r = DecryptReader::new(empty.as_slice(), &Secret::new("wrong")).expect("reader");
        let err = r
            .read_to_end(&mut Vec::new())
            .expect_err("wrong passphrase");
        assert_eq!(err.to_string(), MSG_WRONG_PASSPHRASE);
    }

    #[test]
    fn same_key_gives_fresh_prefixes_and_ciphertexts() {
        let key = test_key();
        let plain = data(2500);
        let a = encrypt(&plain, &key);
        let b = encrypt(&plain, &key);
        assert_eq!(a.len(), b.len());
        // Same salt and parameters, different nonce prefixes.
        assert_eq!(a[..37], b[..37]);
        assert_ne!(a[37..44], b[37..44]);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_ne!(&a[HEADER_LEN..HEADER_LEN + 16], &plain[..16]);
        // One derived key reads both files.
        for file in [&a, &b] {
            let mut cursor = file.as_slice();
            let header = Header::read_from(&mut cursor).expect("header");
            let mut r = DecryptReader::with_key(cursor, header, &key).expect("reader");
            let mut out = Vec::new();
            r.read_to_end(&mut out).expect("read");
            assert_eq!(out, plain);
        }
        // Two derivations of the same passphrase use different salts.
        let other = test_key();
        assert_ne!(other.salt(), key.salt());
        assert_eq!(other.params(), KdfParams::insecure_for_tests());
    }

    #[test]
    fn with_key_refuses_a_key_for_another_salt() {
        let key = test_key();
        let file = encrypt(b"hello", &key);
        let mut cursor = file.as_slice();
        let header = Header::read_from(&mut cursor).expect("header");
        let other = test_key();
        let err = DecryptReader::with_key(cursor, header, &other)
            .err()
            .expect("mismatch");
        assert_eq!(err.kind, ErrorKind::Invalid);
        let again = FileKey::derive_for_header(&pass(), &header).expect("derive");
        assert_eq!(again.salt(), key.salt());
        assert_eq!(*again.key, *key.key);
    }

    #[test]
    fn header_errors_are_clear() {
        let key = test_key();
        let file = encrypt(b"hello", &key);

        let read = |bytes: &[u8]| Header::read_from(&mut &bytes[..]);

        let err = read(b"-- PostgreSQL database dump\n").expect_err("plain sql");
        assert_eq!(err.message, "not a supabackup encrypted file (bad magic)");
        let err = read(b"SBK").expect_err("short");
        assert!(err.message.contains("bad magic"));
        let err = read(b"").expect_err("empty");
        assert!(err.message.contains("bad magic"));

        let mut v2 = file.clone();
        v2[6..8].copy_from_slice(b"02");
        let err = read(&v2).expect_err("version");
        assert!(
            err.message
                .contains("unsupported encrypted-file format version \"02\"")
        );

        let mut kdf = file.clone();
        kdf[8] = 2;
        let err = read(&kdf).expect_err("kdf");
        assert!(
            err.message
                .contains("unsupported key-derivation function id 2")
        );

        let err = read(&file[..30]).expect_err("cut header");
        assert_eq!(err.kind, ErrorKind::Corrupt);
        assert!(err.message.contains("truncated"));

        for size in [0u32, 512, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, u32::MAX] {
            let mut bad = file.clone();
            bad[44..48].copy_from_slice(&size.to_be_bytes());
            let err = read(&bad).expect_err("chunk size");
            assert!(err.message.contains("absurd chunk size"), "{}", err.message);
        }

        let header = read(&file).expect("header");
        assert_eq!(header.params, KdfParams::insecure_for_tests());
        assert_eq!(header.salt, key.salt());
        assert_eq!(header.chunk_size, CHUNK);
        assert_eq!(header.to_bytes()[..], file[..HEADER_LEN]);

        // Absurd KDF parameters are refused before deriving.
        let mut huge = file.clone();
        huge[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = DecryptReader::new(huge.as_slice(), &pass())
            .err()
            .expect("kdf params");
        assert_eq!(err.kind, ErrorKind::Corrupt);
    }

    #[test]
    fn writer_checks_chunk_size_and_counter_overflow() {
        let key = test_key();
        for bad in [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1] {
            assert!(EncryptWriter::with_chunk_size(Vec::new(), &key, bad).is_err());
        }
        let mut w = EncryptWriter::with_chunk_size(Vec::new(), &key, CHUNK).expect("writer");
        w.counter = u64::from(u32::MAX);
        assert!(w.finish().is_ok(), "the last counter value is usable");

        let mut w = EncryptWriter::with_chunk_size(Vec::new(), &key, CHUNK).expect("writer");
        w.counter = u64::from(u32::MAX) + 1;
        let err = w.finish().expect_err("overflow");
        assert!(err.to_string().contains("more than 2^32 chunks"));

        let mut w = EncryptWriter::with_chunk_size(Vec::new(), &key, CHUNK).expect("writer");
        w.counter = u64::from(u32::MAX);
        w.write_all(&data(CHUNK as usize))
            .expect("fills the buffer");
        assert!(
            w.write_all(b"x").is_err(),
            "a middle chunk may not take the last counter value"
        );
        assert!(w.write_all(b"y").is_err(), "the writer stays failed");
        assert!(w.finish().is_err());
    }

    #[test]
    fn empty_passphrases_are_refused() {
        assert!(FileKey::derive_new(&Secret::new(""), KdfParams::insecure_for_tests()).is_err());
        let file = encrypt(b"x", &test_key());
        let err = DecryptReader::new(file.as_slice(), &Secret::new(""))
            .err()
            .expect("empty");
        assert_eq!(err.kind, ErrorKind::Auth);
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn decrypt_file_round_trip_and_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = test_key();
        let plain = data(200_000);
        let input = dir.path().join("data.sql.zst.enc");
        let mut w = EncryptWriter::new(std::fs::File::create(&input).expect("create"), &key)
            .expect("writer");
        w.write_all(&plain).expect("write");
        w.finish().expect("finish");
        assert!(is_encrypted(&input).expect("is_encrypted"));

        let output = dir.path().join("data.sql.zst");
        let n = decrypt_file(&input, &output, &pass()).expect("decrypt");
        assert_eq!(n, plain.len() as u64);
        assert_eq!(std::fs::read(&output).expect("read"), plain);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&output)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!is_encrypted(&output).expect("is_encrypted"));
        std::fs::remove_file(&output).expect("remove");

        // Wrong passphrase: Auth, nothing left behind.
        let err = decrypt_file(&input, &output, &Secret::new("nope")).expect_err("wrong");
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(
            err.message.starts_with("wrong backup passphrase"),
            "{}",
            err.message
        );
        assert_eq!(dir_names(dir.path()), vec!["data.sql.zst.enc"]);

        // Truncated (several chunks of plaintext already produced): Corrupt,
        // nothing left behind.
        let full = std::fs::read(&input).expect("read");
        let cut = dir.path().join("cut.enc");
        std::fs::write(&cut, &full[..full.len() - 100]).expect("write");
        let err = decrypt_file(&cut, &output, &pass()).expect_err("truncated");
        assert_eq!(err.kind, ErrorKind::Corrupt);
        assert!(
            err.message.contains("failed authentication"),
            "{}",
            err.message
        );
        let boundary = dir.path().join("boundary.enc");
        std::fs::write(
            &boundary,
            &full[..HEADER_LEN + 2 * (DEFAULT_CHUNK_SIZE as usize + TAG_LEN)],
        )
        .expect("write");
        let err = decrypt_file(&boundary, &output, &pass()).expect_err("truncated");
        assert_eq!(err.kind, ErrorKind::Corrupt);
        assert!(
            err.message.contains(MSG_LAST_CHUNK_MISSING),
            "{}",
            err.message
        );
        assert_eq!(
            dir_names(dir.path()),
            vec!["boundary.enc", "cut.enc", "data.sql.zst.enc"]
        );

        // Not an encrypted file.
        let sql = dir.path().join("plain.sql");
        std::fs::write(&sql, b"select 1;\n").expect("write");
        assert!(!is_encrypted(&sql).expect("is_encrypted"));
        let err = decrypt_file(&sql, &output, &pass()).expect_err("plain");
        assert!(err.message.contains("bad magic"), "{}", err.message);
        assert!(!output.exists());

        // A failure does not touch an existing output file.
        std::fs::write(&output, b"previous").expect("write");
        assert!(decrypt_file(&cut, &output, &pass()).is_err());
        assert_eq!(std::fs::read(&output).expect("read"), b"previous");
    }

    #[test]
    fn is_encrypted_on_short_and_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = dir.path().join("short");
        std::fs::write(&short, b"SBKENC0").expect("write");
        assert!(!is_encrypted(&short).expect("short"));
        assert!(is_encrypted(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("backup.key");

        std::fs::write(&path, "  s3cret words \n").expect("write");
        let p = passphrase_from_key_file(&path).expect("key file");
        assert_eq!(p.expose(), "s3cret words");

        // Same key as typing the content.
        let key = FileKey::derive_new(&p, KdfParams::insecure_for_tests()).expect("derive");
        let mut w = EncryptWriter::new(Vec::new(), &key).expect("writer");
        w.write_all(b"x").expect("write");
        let file = w.finish().expect("finish");
        let mut r = DecryptReader::new(file.as_slice(), &Secret::new("s3cret words")).expect("r");
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"x");

        for empty in ["", " \n\t\r\n"] {
            std::fs::write(&path, empty).expect("write");
            let err = passphrase_from_key_file(&path).expect_err("empty");
            assert!(err.message.contains("is empty"), "{}", err.message);
        }

        std::fs::write(&path, "k".repeat(4096)).expect("write");
        assert_eq!(
            passphrase_from_key_file(&path)
                .expect("4 KiB")
                .expose()
                .len(),
            4096
        );
        std::fs::write(&path, "k".repeat(4097)).expect("write");
        let err = passphrase_from_key_file(&path).expect_err("too long");
        assert!(err.message.contains("larger than 4 KiB"));

        std::fs::write(&path, [0xff, 0xfe, b'a']).expect("write");
        assert!(passphrase_from_key_file(&path).is_err());
        assert!(passphrase_from_key_file(&dir.path().join("missing")).is_err());
    }
}
