//! Moving bytes to and from a destination, streaming and bounded: uploads
//! go in 8 MiB multipart parts with at most two in flight (a few tens of MB
//! whatever the backup's size), each file hashed on the way; reads come
//! back as a plain `Read` fed by a small channel, so the sync verify and
//! restore code reads a remote copy as it reads a local one.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStoreExt, WriteMultipart};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::{Destination, Place};
use crate::engine::backup::files::{BackupFiles, FileStat};
use crate::engine::error::{Error, ErrorKind, Result};

/// Part size of multipart uploads (S3 wants ≥ 5 MiB but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A store error as a sentence naming the destination and the step.
pub fn describe(d: &Destination, step: &str, e: object_store::Error) -> Error {
    describe_named(&d.name, step, e)
}

pub fn describe_named(name: &str, step: &str, e: object_store::Error) -> Error {
    let text = compact(&e.to_string());
    match e {
        object_store::Error::NotFound { .. }
            if step.starts_with("write") || step.starts_with("upload") =>
        {
            Error::not_found(format!(
                "destination '{name}': could not {step}: the bucket or container does not exist"
            ))
            .with_hint("create it first, or check the URL, the endpoint and --path-style")
        }
        object_store::Error::NotFound { .. } => {
            Error::not_found(format!("destination '{name}': could not {step}: not found"))
        }
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. } => {
            Error::auth(format!("destination '{name}': could not {step}: access denied ({text})"))
                .with_hint("check the access key and secret, and that they may read and write this bucket")
        }
        object_store::Error::Precondition { .. } => Error::corrupt(format!(
            "destination '{name}': the object changed while it was read ({step})"
        )),
        _ => Error::connection(format!("destination '{name}': could not {step}: {text}"))
            .with_hint("check the URL, endpoint and network; `supabackup destination test NAME` tries a small write and read"),
    }
}

/// A service's error text without the XML/JSON body it may carry, on one
/// line and short enough to read.
fn compact(text: &str) -> String {
    let head = text
        .find("<?xml")
        .or_else(|| text.find("<Error>"))
        .map_or(text, |i| &text[..i]);
    let mut one: String = head.split_whitespace().collect::<Vec<_>>().join(" ");
    let one_trimmed = one.trim_end_matches([':', ' ']).len();
    one.truncate(one_trimmed);
    if one.chars().count() > 300 {
        one = one.chars().take(300).collect::<String>() + "…";
    }
    one
}

/// Uploads a local file to `to`, streaming; returns its SHA-256 and size.
pub async fn upload_file(
    place: &Place,
    from: &Path,
    to: &ObjectPath,
    cancel: &CancellationToken,
    sent: &(dyn Fn(u64) + Sync),
) -> Result<(String, u64)> {
    use tokio::io::AsyncReadExt;
    let step = format!("upload {to}");
    let mut file = tokio::fs::File::open(from)
        .await
        .map_err(|e| Error::io("open", from, e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| Error::io("read", from, e))?
        .len();
    let mut hasher = sha2::Sha256::new();
    if len <= PART_SIZE as u64 {
        let mut buf = Vec::with_capacity(len as usize);
        file.read_to_end(&mut buf)
            .await
            .map_err(|e| Error::io("read", from, e))?;
        hasher.update(&buf);
        let n = buf.len() as u64;
        place
            .store
            .put(to, buf.into())
            .await
            .map_err(|e| describe_named(&place.name, &step, e))?;
        sent(n);
        return Ok((crate::engine::crypto::hex(&hasher.finalize()), n));
    }
    let upload = place
        .store
        .put_multipart(to)
        .await
        .map_err(|e| describe_named(&place.name, &step, e))?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    loop {
        if cancel.is_cancelled() {
            let _ = w.abort().await;
            return Err(Error::cancelled());
        }
        let n = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = w.abort().await;
                return Err(Error::io("read", from, e));
            }
        };
        hasher.update(&buf[..n]);
        if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
            return Err(describe_named(&place.name, &step, e));
        }
        w.write(&buf[..n]);
        total += n as u64;
        sent(total);
    }
    w.finish()
        .await
        .map_err(|e| describe_named(&place.name, &step, e))?;
    Ok((crate::engine::crypto::hex(&hasher.finalize()), total))
}

/// Reads an object back and returns its SHA-256 and size.
pub async fn read_back(place: &Place, path: &ObjectPath) -> Result<(String, u64)> {
    let step = format!("read back {path}");
    let got = place
        .store
        .get(path)
        .await
        .map_err(|e| describe_named(&place.name, &step, e))?;
    let mut stream = got.into_stream();
    let mut hasher = sha2::Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe_named(&place.name, &step, e))?;
        hasher.update(&chunk);
        n += chunk.len() as u64;
    }
    Ok((crate::engine::crypto::hex(&hasher.finalize()), n))
}

/// Every object under `prefix`, deleted; the manifest (`first`) goes first
/// so a half-deleted copy is never taken for a complete one.
pub async fn delete_prefix(
    place: &Place,
    prefix: &ObjectPath,
    first: &ObjectPath,
) -> Result<usize> {
    match place.store.delete(first).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(describe_named(&place.name, &format!("delete {first}"), e)),
    }
    let mut listed = place.store.list(Some(prefix));
    let mut paths = Vec::new();
    while let Some(meta) = listed.next().await {
        match meta {
            Ok(m) => paths.push(m.location),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(describe_named(&place.name, &format!("list {prefix}"), e)),
        }
    }
    let n = paths.len();
    for p in paths {
        match place.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(describe_named(&place.name, &format!("delete {p}"), e)),
        }
    }
    Ok(n + 1)
}

/// A backup copy at a destination, read through [`BackupFiles`] from
/// blocking code (verify, restore): each call runs on the engine's runtime.
pub struct RemoteFiles {
    place: Place,
    /// The copy's folder inside the destination (`slug/date/folder`).
    rel: String,
    handle: tokio::runtime::Handle,
}

impl RemoteFiles {
    pub fn new(place: Place, rel: String, handle: tokio::runtime::Handle) -> Self {
        RemoteFiles { place, rel, handle }
    }

    fn path(&self, name: &str) -> ObjectPath {
        self.place.path(&format!("{}/{name}", self.rel))
    }
}

impl BackupFiles for RemoteFiles {
    fn label(&self) -> String {
        format!("{}:{}", self.place.name, self.rel)
    }

    fn stat(&self, name: &str) -> Result<Option<FileStat>> {
        let path = self.path(name);
        match self.handle.block_on(self.place.store.head(&path)) {
            Ok(m) => Ok(Some(FileStat {
                len: m.size,
                tag: m.e_tag.clone().unwrap_or_else(|| {
                    format!("{}:{}", m.last_modified.timestamp_micros(), m.size)
                }),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(describe_named(
                &self.place.name,
                &format!("look up {path}"),
                e,
            )),
        }
    }

    fn open(&self, name: &str, expect: Option<&FileStat>) -> Result<Box<dyn Read + Send>> {
        let path = self.path(name);
        let step = format!("read {path}");
        let opts = GetOptions {
            // The bytes checked are the bytes used: the service refuses
            // when the object was replaced since it was looked up.
            if_match: expect
                .filter(|s| !s.tag.contains(':'))
                .map(|s| s.tag.clone()),
            ..Default::default()
        };
        let got = self
            .handle
            .block_on(self.place.store.get_opts(&path, opts))
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    Error::not_found(format!("{} is missing", self.label() + "/" + name))
                }
                other => describe_named(&self.place.name, &step, other),
            })?;
        if let Some(want) = expect
            && got.meta.size != want.len
        {
            return Err(Error::corrupt(format!(
                "{}/{name} was replaced after it was checked",
                self.label()
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let name = self.place.name.clone();
        let mut stream = got.into_stream();
        self.handle.spawn(async move {
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(|e| {
                    let err = describe_named(&name, &step, e);
                    std::io::Error::other(err.message)
                });
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            current: Bytes::new(),
        }))
    }
}

/// A `Read` over chunks arriving from an async task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// The relative folders under `prefix` that hold a manifest.
pub async fn manifest_folders(place: &Place) -> Result<Vec<String>> {
    let manifest = crate::engine::backup::manifest::MANIFEST_FILE;
    let mut listed = place.store.list(Some(&place.prefix));
    let mut out = Vec::new();
    let base: Vec<String> = place
        .prefix
        .parts()
        .map(|p| p.as_ref().to_owned())
        .collect();
    while let Some(meta) = listed.next().await {
        let m = meta.map_err(|e| describe_named(&place.name, "list the backups", e))?;
        let parts: Vec<String> = m.location.parts().map(|p| p.as_ref().to_owned()).collect();
        if parts.last().is_some_and(|l| l == manifest) && parts.len() > base.len() + 1 {
            out.push(parts[base.len()..parts.len() - 1].join("/"));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an error means the destination could not be reached at all
/// (as opposed to a refusal or a bad object).
pub fn is_unreachable(e: &Error) -> bool {
    e.kind == ErrorKind::Connection
}

#[cfg(test)]
mod tests {
    #[test]
    fn service_bodies_are_cut_and_text_shortened() {
        let t = super::compact(
            "Error performing PUT http://h/c in 11ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>AuthorizationFailure</Code></Error>",
        );
        assert_eq!(
            t,
            "Error performing PUT http://h/c in 11ms - Server returned non-2xx status code: 403 Forbidden"
        );
        assert!(super::compact(&"x ".repeat(400)).chars().count() <= 301);
    }
}
