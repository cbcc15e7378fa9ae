//! The streaming pipeline: plain SQL → SHA-256 → compression → optional
//! encryption → SHA-256 → file, with bounded buffers, and its mirror for
//! reading a stored artifact back. Everything here is synchronous and runs on
//! a blocking thread; counters are shared atomics read by the progress loop.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::crypt::{DecryptReader, EncryptWriter, FileKey};
use super::options::Codec;
use crate::engine::crypto::{Secret, hex};
use crate::engine::error::{Error, Result};

const IO_BUF: usize = 256 * 1024;

/// Passes writes through while hashing and counting them.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
    counter: Arc<AtomicU64>,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, counter: Arc<AtomicU64>) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
            counter,
        }
    }
    pub fn into_parts(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Optional encryption layer.
enum Sealing<W: Write> {
    Plain(W),
    Sealed(EncryptWriter<W>),
}

impl<W: Write> Write for Sealing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealing::Plain(w) => w.write(buf),
            Sealing::Sealed(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealing::Plain(w) => w.flush(),
            Sealing::Sealed(w) => w.flush(),
        }
    }
}

impl<W: Write> Sealing<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Sealing::Plain(w) => Ok(w),
            Sealing::Sealed(w) => w.finish(),
        }
    }
}

type Stored = Sealing<HashingWriter<BufWriter<File>>>;

/// Compression layer.
enum Compressing {
    Zstd(zstd::stream::write::Encoder<'static, Stored>),
    Xz(liblzma::write::XzEncoder<Stored>),
    None(Stored),
}

impl Write for Compressing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressing::Zstd(w) => w.write(buf),
            Compressing::Xz(w) => w.write(buf),
            Compressing::None(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressing::Zstd(w) => w.flush(),
            Compressing::Xz(w) => w.flush(),
            Compressing::None(w) => w.flush(),
        }
    }
}

impl Compressing {
    fn finish(self) -> io::Result<Stored> {
        match self {
            Compressing::Zstd(w) => w.finish(),
            Compressing::Xz(w) => w.finish(),
            Compressing::None(w) => Ok(w),
        }
    }
}

/// The input of one zstd worker job.
const ZSTD_JOB: u32 = 4 * 1024 * 1024;

fn workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, 8)
}

/// Shared byte counters for progress.
#[derive(Debug, Default)]
pub struct Counters {
    pub plain: Arc<AtomicU64>,
    pub stored: Arc<AtomicU64>,
}

/// What one finished artifact file looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub plain_size: u64,
    pub plain_sha256: String,
    pub stored_size: u64,
    pub stored_sha256: String,
    /// For a stream written into the repository: its list and its cost.
    pub repo: Option<crate::engine::repo::chunks::SinkStats>,
}

/// Where an artifact's bytes go: a file of their own, or the repository.
enum Sink {
    File(Box<HashingWriter<Compressing>>),
    Repo(Box<HashingWriter<crate::engine::repo::chunks::ChunkSink>>),
}

/// Writes one artifact: `write` plain SQL into it, then `finish`.
pub struct ArtifactWriter {
    chain: Sink,
}

fn io_err(path: &Path, what: &str) -> impl Fn(io::Error) -> Error {
    let path = path.to_path_buf();
    let what = what.to_owned();
    move |e| Error::io(&what, &path, e)
}

impl ArtifactWriter {
    /// Creates `path` (which must not exist) and the layers above it.
    pub fn create(
        path: &Path,
        codec: Codec,
        level: u8,
        key: Option<&FileKey>,
        counters: &Counters,
    ) -> Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(io_err(path, "create"))?;
        let stored = HashingWriter::new(
            BufWriter::with_capacity(IO_BUF, file),
            counters.stored.clone(),
        );
        let sealing = match key {
            Some(k) => Sealing::Sealed(EncryptWriter::new(stored, k)?),
            None => Sealing::Plain(stored),
        };
        let compressing = match codec {
            Codec::None => Compressing::None(sealing),
            Codec::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(sealing, i32::from(level.max(1)))
                    .map_err(io_err(path, "start compressing"))?;
                enc.multithread(workers())
                    .map_err(io_err(path, "start compressing"))?;
                // zstd's default job is four windows (8 MiB at level 3) and
                // it keeps several jobs' input and output per worker — about
                // 43 MB here, which took the process tree past 100 MB. Jobs
                // of 4 MiB, each reading the whole window before it as its
                // prefix, use about 24 MB and compress as well (measured:
                // 0.9995x the size of `pg_dump | zstd -3`; 2 MiB jobs came out
                // 0.03 % larger than it).
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB))
                    .map_err(io_err(path, "start compressing"))?;
                enc.set_parameter(zstd::stream::raw::CParameter::OverlapSizeLog(9))
                    .map_err(io_err(path, "start compressing"))?;
                enc.include_checksum(true)
                    .map_err(io_err(path, "start compressing"))?;
                Compressing::Zstd(enc)
            }
            Codec::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(workers())
                    .preset(u32::from(level))
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(|e| Error::internal(format!("xz encoder set-up failed: {e}")))?;
                Compressing::Xz(liblzma::write::XzEncoder::new_stream(sealing, stream))
            }
        };
        Ok(ArtifactWriter {
            chain: Sink::File(Box::new(HashingWriter::new(
                compressing,
                counters.plain.clone(),
            ))),
        })
    }

    /// Writes the stream into the repository: chunks there, their list at
    /// `list_path`; `previous` is the same stream's list in the previous
    /// snapshot (changed chunks are stored against the ones they replace).
    pub fn create_in_repo(
        list_path: &Path,
        repo: Arc<crate::engine::repo::Repo>,
        level: u8,
        counters: &Counters,
        previous: Option<&Path>,
    ) -> Result<Self> {
        let sink = crate::engine::repo::chunks::ChunkSink::create(
            repo,
            list_path,
            i32::from(level.max(1)),
            counters.stored.clone(),
            previous,
        )?;
        Ok(ArtifactWriter {
            chain: Sink::Repo(Box::new(HashingWriter::new(sink, counters.plain.clone()))),
        })
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.chain {
            Sink::File(w) => w.write_all(buf),
            Sink::Repo(w) => w.write_all(buf),
        }
    }

    /// Flushes every layer, fsyncs the file and returns sizes and checksums.
    pub fn finish(self) -> io::Result<Written> {
        let chain = match self.chain {
            Sink::File(c) => c,
            Sink::Repo(c) => {
                let (sink, plain_sha256, plain_size) = (*c).into_parts();
                let stats = sink.finish().map_err(super::crypt::to_io)?;
                return Ok(Written {
                    plain_size,
                    stored_size: plain_size,
                    stored_sha256: plain_sha256.clone(),
                    plain_sha256,
                    repo: Some(stats),
                });
            }
        };
        let (compressing, plain_sha256, plain_size) = (*chain).into_parts();
        let sealing = compressing.finish()?;
        let stored = sealing.finish()?;
        let (buf, stored_sha256, stored_size) = stored.into_parts();
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Written {
            plain_size,
            plain_sha256,
            stored_size,
            stored_sha256,
            repo: None,
        })
    }
}

/// Passes reads through while hashing and counting them.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn digest(&self) -> (String, u64) {
        (hex(&self.hasher.clone().finalize()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A shared view of the stored-bytes hash while the reader chain owns it.
pub type StoredHash = Arc<std::sync::Mutex<HashingReader<Box<dyn Read + Send>>>>;

struct SharedReader(StoredHash);

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut g) => g.read(buf),
            Err(p) => p.into_inner().read(buf),
        }
    }
}

/// Opens a stored artifact for reading its plain SQL: decrypts (when the
/// file is encrypted) and decompresses by `codec`. The returned handle gives
/// the stored bytes' SHA-256 once everything was read.
pub fn open_artifact(
    path: &Path,
    codec: Codec,
    passphrase: Option<&Secret>,
    key: Option<&FileKey>,
) -> Result<(Box<dyn Read + Send>, StoredHash)> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::corrupt(format!("{} is missing", path.display())),
        _ => Error::io("open", path, e),
    })?;
    let encrypted = super::crypt::is_encrypted(path)?;
    open_artifact_file(file, path, codec, encrypted, passphrase, key)
}

/// Like [`open_artifact`] on an open file whose encryption is known (from
/// the manifest): a file that is not what it should be is refused.
pub fn open_artifact_file(
    file: File,
    path: &Path,
    codec: Codec,
    encrypted: bool,
    passphrase: Option<&Secret>,
    key: Option<&FileKey>,
) -> Result<(Box<dyn Read + Send>, StoredHash)> {
    open_artifact_reader(
        Box::new(BufReader::with_capacity(IO_BUF, file)),
        path,
        codec,
        encrypted,
        passphrase,
        key,
    )
}

/// [`open_artifact_file`] over any byte stream (a local file, a copy at a
/// destination); `path` names it in messages.
pub fn open_artifact_reader(
    source: Box<dyn Read + Send>,
    path: &Path,
    codec: Codec,
    encrypted: bool,
    passphrase: Option<&Secret>,
    key: Option<&FileKey>,
) -> Result<(Box<dyn Read + Send>, StoredHash)> {
    let stored: StoredHash = Arc::new(std::sync::Mutex::new(HashingReader::new(source)));
    let mut source = SharedReader(stored.clone());
    let decrypted: Box<dyn Read + Send> = if encrypted {
        let header = super::crypt::Header::read_from(&mut source).map_err(|e| {
            Error::corrupt(format!(
                "{} should be encrypted but is not a supabackup encrypted file ({})",
                path.display(),
                e.message
            ))
        })?;
        let reader = match key {
            Some(k) if k.params() == header.params && k.salt() == header.salt => {
                DecryptReader::with_key(source, header, k)?
            }
            _ => {
                let p = passphrase.ok_or_else(|| {
                    Error::auth(format!(
                        "{} is encrypted: the backup passphrase is needed",
                        path.display()
                    ))
                })?;
                let k = FileKey::derive_for_header(p, &header)?;
                DecryptReader::with_key(source, header, &k)?
            }
        };
        Box::new(reader)
    } else {
        Box::new(source)
    };
    let plain: Box<dyn Read + Send> = match codec {
        Codec::None => decrypted,
        Codec::Zstd => Box::new(
            zstd::stream::read::Decoder::new(decrypted)
                .map_err(|e| Error::io("decompress", path, e))?,
        ),
        Codec::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(decrypted)),
    };
    Ok((plain, stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::crypto::KdfParams;

    fn round_trip(codec: Codec, encrypt: bool) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a.sql");
        let key = FileKey::derive_new(&Secret::new("pass phrase"), KdfParams::insecure_for_tests())
            .expect("key");
        let counters = Counters::default();
        let mut w = ArtifactWriter::create(&path, codec, 3, encrypt.then_some(&key), &counters)
            .expect("create");
        let mut expected = Vec::new();
        for i in 0..20_000 {
            let line = format!("{i}\tsome row text {}\n", i * 7);
            expected.extend_from_slice(line.as_bytes());
            w.write_all(line.as_bytes()).expect("write");
        }
        let written = w.finish().expect("finish");
        assert_eq!(written.plain_size, expected.len() as u64);
        assert_eq!(
            written.plain_sha256,
            crate::engine::crypto::sha256_hex(&expected)
        );
        let on_disk = std::fs::read(&path).expect("read");
        assert_eq!(written.stored_size, on_disk.len() as u64);
        assert_eq!(
            written.stored_sha256,
            crate::engine::crypto::sha256_hex(&on_disk)
        );
        assert_eq!(counters.plain.load(Ordering::Relaxed), written.plain_size);
        let (mut r, stored) =
            open_artifact(&path, codec, Some(&Secret::new("pass phrase")), None).expect("open");
        let mut back = Vec::new();
        r.read_to_end(&mut back).expect("read back");
        assert_eq!(back, expected);
        let (sha, n) = stored.lock().expect("lock").digest();
        assert_eq!(
            (sha, n),
            (written.stored_sha256.clone(), written.stored_size)
        );
        if codec != Codec::None && !encrypt {
            assert!(written.stored_size < written.plain_size / 2, "compressed");
        }
    }

    #[test]
    fn round_trips_every_codec_with_and_without_encryption() {
        for codec in [Codec::None, Codec::Zstd, Codec::Xz] {
            for encrypt in [false, true] {
                round_trip(codec, encrypt);
            }
        }
    }
}
