//! Destinations: the places a backup is copied to besides (or instead of)
//! this machine — a local or NAS folder, S3 and S3-compatible services (R2,
//! B2, MinIO, Wasabi, Supabase Storage's S3 endpoint), Google Cloud Storage
//! and Azure Blob — all through the `object_store` crate. This module owns
//! the destination records (their secret sealed with the master key) and
//! building a store from one; `remote` streams files to and from a store,
//! `copies` records and manages the copies of each backup (upload and
//! read-back, copy, verify, retention, catalog rebuild from a destination).

pub mod copies;
pub mod remote;

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::Engine;
use crate::engine::catalog::{audit, new_id, now};
use crate::engine::crypto::{self, Key, Secret};
use crate::engine::error::{Error, Result};

/// What kind of place a destination URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Folder,
    S3,
    Gcs,
    Azure,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Folder => "folder",
            Kind::S3 => "s3",
            Kind::Gcs => "gcs",
            Kind::Azure => "azure",
        }
    }
}

/// A destination as stored (its secret never leaves the vault here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub id: String,
    pub name: String,
    /// `file:///path`, `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`.
    pub url: String,
    pub kind: Kind,
    /// Service endpoint for S3-compatible services and Azurite.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// S3 path-style requests (`endpoint/bucket/key`), as MinIO wants.
    pub path_style: bool,
    /// Plain HTTP to a non-loopback endpoint (never the default).
    pub allow_http: bool,
    /// S3 access key id, or the Azure storage account name.
    pub access_key_id: Option<String>,
    pub has_secret: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// What a person gives to add a destination.
#[derive(Debug, Clone, Default)]
pub struct DestinationInput {
    pub name: String,
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    /// S3 secret access key, Azure account key, or GCS service-account JSON.
    pub secret: Option<Secret>,
}

/// A parsed destination URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    /// Bucket or container; for a folder, its absolute path.
    pub bucket: String,
    /// Key prefix inside the bucket ("" for none).
    pub prefix: String,
}

/// Parses and checks a destination URL.
pub fn parse_url(text: &str) -> Result<Target> {
    let hint = "use file:///absolute/folder, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix";
    // The URL parser folds '..' away; a prefix that climbs is a mistake.
    let raw_path = text.trim().split_once("://").map(|(_, r)| r).unwrap_or("");
    if raw_path
        .split(['/', '?', '#'])
        .any(|p| p == "." || p == "..")
    {
        return Err(Error::invalid(
            "the destination prefix must not contain '.' or '..'",
        ));
    }
    let url = url::Url::parse(text.trim()).map_err(|e| {
        Error::invalid(format!("the destination URL is malformed ({e})")).with_hint(hint)
    })?;
    let kind = match url.scheme() {
        "file" => Kind::Folder,
        "s3" | "s3a" => Kind::S3,
        "gs" => Kind::Gcs,
        "az" | "azure" | "abfs" => Kind::Azure,
        other => {
            return Err(
                Error::invalid(format!("unsupported destination scheme '{other}'")).with_hint(hint),
            );
        }
    };
    if url.password().is_some() || !url.username().is_empty() {
        return Err(Error::invalid(
            "the destination URL must not hold credentials: pass --access-key-id and the secret separately",
        ));
    }
    if kind == Kind::Folder {
        let path = url.to_file_path().map_err(|_| {
            Error::invalid("a file:// destination needs an absolute local path").with_hint(hint)
        })?;
        return Ok(Target {
            kind,
            bucket: path.display().to_string(),
            prefix: String::new(),
        });
    }
    let bucket = url.host_str().unwrap_or_default().to_owned();
    if bucket.is_empty() {
        return Err(
            Error::invalid("the destination URL names no bucket or container").with_hint(hint),
        );
    }
    let prefix = url.path().trim_matches('/').to_owned();
    if prefix.split('/').any(|p| p == "." || p == "..") {
        return Err(Error::invalid(
            "the destination prefix must not contain '.' or '..'",
        ));
    }
    Ok(Target {
        kind,
        bucket,
        prefix,
    })
}

fn is_loopback(endpoint: &str) -> bool {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Checks a destination's settings, every problem with its reason.
pub fn validate(input: &DestinationInput) -> Result<Target> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "a destination needs a name of 1 to 100 printable characters",
        ));
    }
    if name.eq_ignore_ascii_case("local") {
        return Err(Error::invalid(
            "'local' names this machine's backup folder; choose another name",
        ));
    }
    let target = parse_url(&input.url)?;
    if let Some(e) = input.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
        let u = url::Url::parse(e)
            .map_err(|err| Error::invalid(format!("the endpoint '{e}' is not a URL ({err})")))?;
        match u.scheme() {
            "https" => {}
            "http" if is_loopback(e) || input.allow_http => {}
            "http" => {
                return Err(Error::invalid(format!(
                    "the endpoint {e} is plain HTTP: backups and credentials would cross the network unencrypted"
                ))
                .with_hint("use https, or pass --allow-http if this network is yours"));
            }
            other => {
                return Err(Error::invalid(format!(
                    "the endpoint must be http(s), not {other}"
                )));
            }
        }
    }
    match target.kind {
        Kind::Folder => {}
        Kind::S3 => {
            if input.access_key_id.is_some() != input.secret.is_some() {
                return Err(Error::invalid(
                    "an S3 destination needs both --access-key-id and its secret (or neither, to use the environment's AWS credentials)",
                ));
            }
        }
        Kind::Azure => {
            if input.access_key_id.is_none() || input.secret.is_none() {
                return Err(Error::invalid(
                    "an Azure destination needs the storage account (--access-key-id) and its key as the secret",
                ));
            }
        }
        Kind::Gcs => {
            if let Some(s) = &input.secret {
                serde_json::from_str::<serde_json::Value>(s.expose()).map_err(|_| {
                    Error::invalid("the GCS secret must be a service-account key (JSON)")
                })?;
            }
        }
    }
    Ok(target)
}

/// A store built from a destination, and the key prefix inside it.
#[derive(Clone)]
pub struct Place {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// The destination's name, for messages.
    pub name: String,
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Place({}: {})", self.name, self.store)
    }
}

impl Place {
    /// The object path of `rel` (a `/`-separated relative path) under the prefix.
    pub fn path(&self, rel: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }
}

fn client_options(d: &Destination) -> object_store::ClientOptions {
    let http = d
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(600))
        .with_allow_http(http && (d.allow_http || d.endpoint.as_deref().is_some_and(is_loopback)))
}

fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
        ..Default::default()
    }
}

fn store_error(d: &Destination, e: impl std::fmt::Display) -> Error {
    Error::connection(format!("destination '{}': {e}", d.name))
}

/// Builds the store of a destination (no network yet).
pub fn open_place(d: &Destination, secret: Option<&Secret>) -> Result<Place> {
    let t = parse_url(&d.url)?;
    let store: Arc<dyn ObjectStore> = match t.kind {
        Kind::Folder => {
            let dir = std::path::PathBuf::from(&t.bucket);
            crate::engine::paths::create_dirs_synced(&dir)?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| store_error(d, e))?,
            )
        }
        Kind::S3 => {
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(&t.bucket)
                .with_region(d.region.clone().unwrap_or_else(|| "us-east-1".into()))
                .with_virtual_hosted_style_request(!d.path_style)
                .with_client_options(client_options(d))
                .with_retry(retry());
            if let Some(e) = &d.endpoint {
                b = b.with_endpoint(e);
            }
            if let (Some(id), Some(s)) = (&d.access_key_id, secret) {
                b = b.with_access_key_id(id).with_secret_access_key(s.expose());
            }
            Arc::new(b.build().map_err(|e| store_error(d, e))?)
        }
        Kind::Azure => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_container_name(&t.bucket)
                .with_client_options(client_options(d))
                .with_retry(retry());
            if let Some(a) = &d.access_key_id {
                b = b.with_account(a);
            }
            if let Some(s) = secret {
                b = b.with_access_key(s.expose());
            }
            if let Some(e) = &d.endpoint {
                b = b.with_endpoint(e.clone());
            }
            Arc::new(b.build().map_err(|e| store_error(d, e))?)
        }
        Kind::Gcs => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_bucket_name(&t.bucket)
                .with_client_options(client_options(d))
                .with_retry(retry());
            if let Some(s) = secret {
                b = b.with_service_account_key(s.expose());
            }
            if let Some(e) = &d.endpoint {
                b = b.with_base_url(e);
            }
            Arc::new(b.build().map_err(|e| store_error(d, e))?)
        }
    };
    let prefix = ObjectPath::parse(&t.prefix)
        .map_err(|e| Error::invalid(format!("the destination prefix is not usable: {e}")))?;
    Ok(Place {
        store,
        prefix,
        name: d.name.clone(),
    })
}

// ----- catalog rows -------------------------------------------------------

const COLUMNS: &str = "id, name, url, endpoint, region, path_style, allow_http, access_key_id,
    secret_ciphertext IS NOT NULL, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Destination> {
    let url: String = r.get(2)?;
    let kind = parse_url(&url).map(|t| t.kind).unwrap_or(Kind::Folder);
    Ok(Destination {
        id: r.get(0)?,
        name: r.get(1)?,
        url,
        kind,
        endpoint: r.get(3)?,
        region: r.get(4)?,
        path_style: r.get(5)?,
        allow_http: r.get(6)?,
        access_key_id: r.get(7)?,
        has_secret: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn aad(id: &str) -> Vec<u8> {
    format!("supabackup-destination-secret:{id}").into_bytes()
}

pub fn list(conn: &Connection) -> Result<Vec<Destination>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM destinations ORDER BY name COLLATE NOCASE"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get_by_id(conn: &Connection, id: &str) -> Result<Option<Destination>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM destinations WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// A destination by name (case-insensitive) or id.
pub fn find(conn: &Connection, key: &str) -> Result<Destination> {
    let by_name = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM destinations WHERE name = ?1 COLLATE NOCASE"),
            [key.trim()],
            from_row,
        )
        .optional()?;
    match by_name.or(get_by_id(conn, key)?) {
        Some(d) => Ok(d),
        None => Err(Error::not_found(format!("no destination named '{key}'"))
            .with_hint("`supabackup destination list` shows them; add one with `destination add`")),
    }
}

/// A sealed secret's (nonce, ciphertext) columns.
type SealedColumns = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The secret of a destination, opened with the master key.
pub fn secret(conn: &Connection, key: &Key, id: &str) -> Result<Option<Secret>> {
    let row: Option<SealedColumns> = conn
        .query_row(
            "SELECT secret_nonce, secret_ciphertext FROM destinations WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((Some(nonce), Some(ct))) = row else {
        return Ok(None);
    };
    let plain = crypto::open(key, &nonce, &aad(id), &ct).map_err(|_| {
        Error::corrupt("a destination's stored secret could not be decrypted (the record was altered or belongs to another vault)")
    })?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| Error::corrupt("a destination's secret is not valid text"))?;
    Ok(Some(Secret::new(text)))
}

pub(crate) fn insert(
    conn: &Connection,
    input: &DestinationInput,
    key: Option<&Key>,
) -> Result<String> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM destinations WHERE name = ?1 COLLATE NOCASE)",
        [input.name.trim()],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Error::conflict(format!(
            "a destination named '{}' already exists",
            input.name.trim()
        )));
    }
    let id = new_id();
    let sealed = match (&input.secret, key) {
        (Some(s), Some(k)) => Some(crypto::seal(k, &aad(&id), s.expose().as_bytes())?),
        (Some(_), None) => return Err(Error::auth("the vault is locked")),
        (None, _) => None,
    };
    let ts = now();
    conn.execute(
        "INSERT INTO destinations (id, name, url, endpoint, region, path_style, allow_http,
                                   access_key_id, secret_nonce, secret_ciphertext, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![
            id,
            input.name.trim(),
            input.url.trim(),
            input.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()),
            input.region.as_deref().map(str::trim).filter(|e| !e.is_empty()),
            input.path_style,
            input.allow_http,
            input.access_key_id.as_deref().map(str::trim).filter(|e| !e.is_empty()),
            sealed.as_ref().map(|(n, _)| n.to_vec()),
            sealed.as_ref().map(|(_, c)| c.clone()),
            ts
        ],
    )?;
    Ok(id)
}

/// The result of `destination test`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationTest {
    pub name: String,
    pub ok: bool,
    /// Write, read back, list and delete a small object.
    pub steps: Vec<String>,
    pub latency_ms: f64,
}

impl Engine {
    pub async fn list_destinations(&self) -> Result<Vec<Destination>> {
        self.catalog().call(|c| list(c)).await
    }

    pub async fn destination(&self, key: &str) -> Result<Destination> {
        let k = key.to_owned();
        self.catalog().call(move |c| find(c, &k)).await
    }

    /// Validates and stores a destination (its secret sealed).
    pub async fn add_destination(&self, input: DestinationInput) -> Result<Destination> {
        validate(&input)?;
        let key = match input.secret {
            Some(_) => Some(self.master_key()?),
            None => None,
        };
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let id = insert(&tx, &input, key.as_ref())?;
                let d = get_by_id(&tx, &id)?
                    .ok_or_else(|| Error::internal("the new destination vanished"))?;
                audit::append(
                    &tx,
                    &actor,
                    "destination.add",
                    Some(&d.name),
                    &json!({"url": d.url, "endpoint": d.endpoint, "kind": d.kind.as_str(), "secret": d.has_secret}),
                )?;
                tx.commit()?;
                Ok(d)
            })
            .await
    }

    /// Gives a destination its secret (brought from another machine
    /// without it, or a rotated key), sealed, replacing the one stored.
    pub async fn set_destination_secret(&self, key: &str, value: Secret) -> Result<Destination> {
        if value.expose().trim().is_empty() {
            return Err(Error::invalid("the secret is empty"));
        }
        let d = self.destination(key).await?;
        let mk = self.master_key()?;
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let (nonce, ct) = crypto::seal(&mk, &aad(&d.id), value.expose().as_bytes())?;
                tx.execute(
                    "UPDATE destinations SET secret_nonce = ?2, secret_ciphertext = ?3, updated_at = ?4 WHERE id = ?1",
                    params![d.id, nonce.to_vec(), ct, now()],
                )?;
                audit::append(&tx, &actor, "destination.secret_set", Some(&d.name), &json!({}))?;
                let d = get_by_id(&tx, &d.id)?
                    .ok_or_else(|| Error::internal("the destination vanished"))?;
                tx.commit()?;
                Ok(d)
            })
            .await
    }

    /// A destination with its store, ready to use.
    pub async fn open_destination(&self, key: &str) -> Result<(Destination, Place)> {
        let d = self.destination(key).await?;
        if d.kind == Kind::S3 && d.access_key_id.is_some() && !d.has_secret {
            return Err(Error::auth(format!(
                "destination '{}' has an access key id but no secret",
                d.name
            ))
            .with_hint(format!(
                "give it in Settings → Destinations, or with `supabackup destination set-secret {}` (it was imported without secrets)",
                d.name
            )));
        }
        let secret = if d.has_secret {
            let mk = self.master_key()?;
            let id = d.id.clone();
            self.catalog().call(move |c| secret(c, &mk, &id)).await?
        } else {
            None
        };
        let place = open_place(&d, secret.as_ref())?;
        Ok((d, place))
    }

    /// Writes, reads back, lists and deletes a small object.
    pub async fn test_destination(&self, key: &str) -> Result<DestinationTest> {
        use object_store::ObjectStoreExt;
        let (d, place) = self.open_destination(key).await?;
        let started = std::time::Instant::now();
        let probe = place.path(&format!(".supabackup-test-{}", new_id()));
        let body = format!("supabackup destination test {}", now());
        let mut steps = Vec::new();
        let fail = |step: &str, e: object_store::Error| remote::describe(&d, step, e);
        place
            .store
            .put(&probe, body.clone().into_bytes().into())
            .await
            .map_err(|e| fail("write a test object", e))?;
        steps.push("wrote a test object".to_owned());
        let back = place
            .store
            .get(&probe)
            .await
            .map_err(|e| fail("read the test object", e))?
            .bytes()
            .await
            .map_err(|e| fail("read the test object", e))?;
        if back.as_ref() != body.as_bytes() {
            return Err(Error::corrupt(format!(
                "destination '{}' returned other bytes than were written",
                d.name
            )));
        }
        steps.push("read it back unchanged".to_owned());
        place
            .store
            .head(&probe)
            .await
            .map_err(|e| fail("look up the test object", e))?;
        steps.push("listed it".to_owned());
        place
            .store
            .delete(&probe)
            .await
            .map_err(|e| fail("delete the test object", e))?;
        steps.push("deleted it".to_owned());
        Ok(DestinationTest {
            name: d.name,
            ok: true,
            steps,
            latency_ms: (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        })
    }

    /// Removes a destination. Refused while it holds copies unless
    /// `forget_copies` (the remote objects stay where they are).
    pub async fn remove_destination(&self, key: &str, forget_copies: bool) -> Result<Destination> {
        let d = self.destination(key).await?;
        let actor = self.actor().to_owned();
        let d2 = d.clone();
        self.catalog()
            .call(move |c| {
                let tx = crate::engine::catalog::immediate(c)?;
                let copies: i64 = tx.query_row(
                    "SELECT count(*) FROM backup_copies WHERE destination_id = ?1 AND status <> 'failed'",
                    [&d2.id],
                    |r| r.get(0),
                )?;
                if copies > 0 && !forget_copies {
                    return Err(Error::conflict(format!(
                        "destination '{}' holds {copies} backup copies",
                        d2.name
                    ))
                    .with_hint("delete or move them first, or pass --forget-copies (the objects stay in the destination)"));
                }
                tx.execute("DELETE FROM destinations WHERE id = ?1", [&d2.id])?;
                audit::append(
                    &tx,
                    &actor,
                    "destination.remove",
                    Some(&d2.name),
                    &json!({"copies_forgotten": copies}),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_kind_bucket_and_prefix() {
        let t = parse_url("s3://my-bucket/backups/prod").expect("s3");
        assert_eq!(
            (t.kind, t.bucket.as_str(), t.prefix.as_str()),
            (Kind::S3, "my-bucket", "backups/prod")
        );
        let t = parse_url("az://container").expect("az");
        assert_eq!((t.kind, t.prefix.as_str()), (Kind::Azure, ""));
        let t = parse_url("gs://b/p/").expect("gs");
        assert_eq!((t.kind, t.prefix.as_str()), (Kind::Gcs, "p"));
        let t = parse_url("file:///mnt/nas/backups").expect("file");
        assert_eq!(
            (t.kind, t.bucket.as_str()),
            (Kind::Folder, "/mnt/nas/backups")
        );
        for (bad, why) in [
            ("ftp://x/y", "unsupported"),
            ("s3:///nobucket", "no bucket"),
            ("s3://AKIA:secret@bucket/x", "credentials"),
            ("s3://b/../x", "'..'"),
            ("not a url", "malformed"),
        ] {
            let e = parse_url(bad).expect_err(bad);
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let input = |endpoint: &str, allow_http: bool| DestinationInput {
            name: "x".into(),
            url: "s3://b".into(),
            endpoint: Some(endpoint.into()),
            allow_http,
            ..Default::default()
        };
        assert!(validate(&input("http://127.0.0.1:9000", false)).is_ok());
        assert!(validate(&input("http://[::1]:9000", false)).is_ok());
        assert!(validate(&input("https://s3.example.com", false)).is_ok());
        let e = validate(&input("http://s3.example.com", false)).expect_err("plain http");
        assert!(e.message.contains("unencrypted"), "{e}");
        assert!(validate(&input("http://s3.example.com", true)).is_ok());
        let mut named_local = input("https://x", false);
        named_local.name = "Local".into();
        assert!(validate(&named_local).is_err());
    }
}
