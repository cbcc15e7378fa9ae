//! The credential vault. A random 256-bit master key seals every stored
//! credential (AES-256-GCM, fresh nonce per record, the record's id, owner
//! and kind as associated data). The master key itself is kept
//!
//! * wrapped under a key derived from the master passphrase (Argon2id,
//!   parameters and salt stored in the catalog's `settings`), and/or
//! * in the OS keychain, where one answers.
//!
//! Changing the passphrase re-wraps the master key: sealed records stay as
//! they are. Nothing here ever writes or prints a secret in clear.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::engine::catalog::{new_id, now, settings};
use crate::engine::crypto::{self, KdfParams, Key, Secret};
use crate::engine::error::{Error, ErrorKind, Result};

const SETTINGS_KEY: &str = "vault";
const CHECK_PLAINTEXT: &[u8] = b"supabackup-vault-check-v1";
const WRAP_AAD: &[u8] = b"supabackup-master-key-v1";
/// The environment variable headless use takes the master passphrase from.
pub const PASSPHRASE_ENV: &str = "SUPABACKUP_PASSPHRASE";
pub const MIN_PASSPHRASE_LEN: usize = 8;

/// Kinds of sealed credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    DbPassword,
    AccessToken,
    ServiceRoleKey,
    SmtpPassword,
    WebhookSecret,
    /// The passphrase backup files are encrypted with (global).
    BackupPassphrase,
    /// Alert channels in chat services: the incoming-webhook URL (it is the
    /// credential), or Telegram's bot token.
    SlackWebhook,
    DiscordWebhook,
    TeamsWebhook,
    TelegramBotToken,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::DbPassword => "db_password",
            SecretKind::AccessToken => "access_token",
            SecretKind::ServiceRoleKey => "service_role_key",
            SecretKind::SmtpPassword => "smtp_password",
            SecretKind::WebhookSecret => "webhook_secret",
            SecretKind::BackupPassphrase => "backup_passphrase",
            SecretKind::SlackWebhook => "slack_webhook",
            SecretKind::DiscordWebhook => "discord_webhook",
            SecretKind::TeamsWebhook => "teams_webhook",
            SecretKind::TelegramBotToken => "telegram_bot_token",
        }
    }
    pub const PROJECT_KINDS: [SecretKind; 3] = [
        SecretKind::DbPassword,
        SecretKind::AccessToken,
        SecretKind::ServiceRoleKey,
    ];
}

/// Where the master key can be kept besides the passphrase wrap.
pub trait KeyStore: Send + Sync {
    /// `Ok(None)` when the store answers but holds no such entry; `Err` when
    /// no store answers (headless machine, no secret service).
    fn get(&self, account: &str) -> std::result::Result<Option<Vec<u8>>, String>;
    fn set(&self, account: &str, secret: &[u8]) -> std::result::Result<(), String>;
    fn delete(&self, account: &str) -> std::result::Result<(), String>;
}

/// The OS keychain (Secret Service, macOS Keychain, Windows Credential Manager).
pub struct OsKeychain;

const KEYCHAIN_SERVICE: &str = "supabackup";

impl KeyStore for OsKeychain {
    fn get(&self, account: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        let entry = keyring::Entry::new(KEYCHAIN_SERVICE, account).map_err(|e| e.to_string())?;
        match entry.get_secret() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn set(&self, account: &str, secret: &[u8]) -> std::result::Result<(), String> {
        let entry = keyring::Entry::new(KEYCHAIN_SERVICE, account).map_err(|e| e.to_string())?;
        entry.set_secret(secret).map_err(|e| e.to_string())
    }
    fn delete(&self, account: &str) -> std::result::Result<(), String> {
        let entry = keyring::Entry::new(KEYCHAIN_SERVICE, account).map_err(|e| e.to_string())?;
        match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// No keychain at all (tests, `SUPABACKUP_NO_KEYCHAIN=1`).
pub struct NoKeychain;

impl KeyStore for NoKeychain {
    fn get(&self, _: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        Err("the keychain is disabled".into())
    }
    fn set(&self, _: &str, _: &[u8]) -> std::result::Result<(), String> {
        Err("the keychain is disabled".into())
    }
    fn delete(&self, _: &str) -> std::result::Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wrapped {
    kdf: KdfParams,
    salt: String,
    nonce: String,
    key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VaultConfig {
    version: u32,
    /// Names this vault's keychain entry, so several data dirs never clash.
    instance: String,
    passphrase: Option<Wrapped>,
    keychain: bool,
    check_nonce: String,
    check: String,
}

/// What the vault looks like, without unlocking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultStatus {
    pub initialized: bool,
    pub has_passphrase: bool,
    pub keychain: bool,
}

fn load(conn: &Connection) -> Result<Option<VaultConfig>> {
    settings::get(conn, SETTINGS_KEY)
}

pub fn status(conn: &Connection) -> Result<VaultStatus> {
    Ok(match load(conn)? {
        None => VaultStatus {
            initialized: false,
            has_passphrase: false,
            keychain: false,
        },
        Some(c) => VaultStatus {
            initialized: true,
            has_passphrase: c.passphrase.is_some(),
            keychain: c.keychain,
        },
    })
}

fn check_passphrase_strength(p: &Secret) -> Result<()> {
    if p.expose().chars().count() < MIN_PASSPHRASE_LEN {
        return Err(Error::invalid(format!(
            "the master passphrase must have at least {MIN_PASSPHRASE_LEN} characters"
        )));
    }
    Ok(())
}

fn wrap(master: &Key, passphrase: &Secret, kdf: KdfParams) -> Result<Wrapped> {
    let salt = crypto::random::<{ crypto::SALT_LEN }>()?;
    let kek = crypto::derive_key(passphrase.expose().as_bytes(), &salt, kdf)?;
    let (nonce, ct) = crypto::seal(&kek, WRAP_AAD, master.as_ref())?;
    Ok(Wrapped {
        kdf,
        salt: crypto::b64(&salt),
        nonce: crypto::b64(&nonce),
        key: crypto::b64(&ct),
    })
}

fn unwrap(w: &Wrapped, passphrase: &Secret) -> Result<Key> {
    let salt = crypto::unb64(&w.salt, "the vault salt")?;
    let nonce = crypto::unb64(&w.nonce, "the vault nonce")?;
    let ct = crypto::unb64(&w.key, "the wrapped master key")?;
    let kek = crypto::derive_key(passphrase.expose().as_bytes(), &salt, w.kdf)?;
    let plain = crypto::open(&kek, &nonce, WRAP_AAD, &ct).map_err(|_| {
        Error::auth("wrong master passphrase").with_hint(
            "type the passphrase you chose when the vault was created (SUPABACKUP_PASSPHRASE for headless use)",
        )
    })?;
    to_key(&plain)
}

fn to_key(bytes: &[u8]) -> Result<Key> {
    let arr: [u8; crypto::KEY_LEN] = bytes
        .try_into()
        .map_err(|_| Error::corrupt("the stored master key has the wrong length"))?;
    Ok(zeroize::Zeroizing::new(arr))
}

fn verify(cfg: &VaultConfig, key: &Key) -> Result<()> {
    let nonce = crypto::unb64(&cfg.check_nonce, "the vault check nonce")?;
    let ct = crypto::unb64(&cfg.check, "the vault check value")?;
    let plain = crypto::open(key, &nonce, b"vault-check", &ct)?;
    if plain.as_slice() != CHECK_PLAINTEXT {
        return Err(Error::corrupt("the vault check value does not match"));
    }
    Ok(())
}

/// Creates the vault with a fresh master key. With a passphrase the key is
/// wrapped under it; the key is also put in the keychain when `keystore`
/// answers. Without a passphrase the keychain must answer.
pub fn initialize(
    conn: &Connection,
    passphrase: Option<&Secret>,
    keystore: &dyn KeyStore,
    kdf: KdfParams,
) -> Result<Key> {
    if load(conn)?.is_some() {
        return Err(Error::conflict("the vault is already initialized"));
    }
    if let Some(p) = passphrase {
        check_passphrase_strength(p)?;
    }
    let master = crypto::random_key()?;
    let instance = new_id();
    let keychain = keystore.set(&instance, master.as_ref()).is_ok();
    if passphrase.is_none() && !keychain {
        return Err(Error::auth("a master passphrase is needed to protect stored credentials")
            .with_hint("no OS keychain answered; set SUPABACKUP_PASSPHRASE or run in a terminal to be asked"));
    }
    let (check_nonce, check) = crypto::seal(&master, b"vault-check", CHECK_PLAINTEXT)?;
    let cfg = VaultConfig {
        version: 1,
        instance,
        passphrase: passphrase.map(|p| wrap(&master, p, kdf)).transpose()?,
        keychain,
        check_nonce: crypto::b64(&check_nonce),
        check: crypto::b64(&check),
    };
    settings::set(conn, SETTINGS_KEY, &cfg)?;
    Ok(master)
}

/// Unlocks the vault: from the keychain when it holds the key, otherwise
/// from the passphrase.
pub fn unlock(
    conn: &Connection,
    passphrase: Option<&Secret>,
    keystore: &dyn KeyStore,
) -> Result<Key> {
    let cfg = load(conn)?.ok_or_else(|| {
        Error::new(ErrorKind::Auth, "the vault has not been set up yet")
            .with_hint("add a project first; you will be asked for a master passphrase")
    })?;
    if cfg.keychain
        && let Ok(Some(bytes)) = keystore.get(&cfg.instance)
        && let Ok(key) = to_key(&bytes)
        && verify(&cfg, &key).is_ok()
    {
        return Ok(key);
    }
    let wrapped = cfg.passphrase.as_ref().ok_or_else(|| {
        Error::auth("the vault key is kept only in the OS keychain, which did not answer")
            .with_hint("unlock your desktop keyring, then try again")
    })?;
    let p = passphrase.ok_or_else(|| {
        Error::auth("the vault is locked: the master passphrase is needed")
            .with_hint("set SUPABACKUP_PASSPHRASE, or run in a terminal to be asked")
    })?;
    let key = unwrap(wrapped, p)?;
    verify(&cfg, &key)?;
    Ok(key)
}

/// Sets or changes the master passphrase: the master key is re-wrapped;
/// sealed credentials are untouched.
pub fn change_passphrase(conn: &Connection, key: &Key, new: &Secret, kdf: KdfParams) -> Result<()> {
    check_passphrase_strength(new)?;
    let mut cfg = load(conn)?.ok_or_else(|| Error::auth("the vault has not been set up yet"))?;
    verify(&cfg, key)?;
    cfg.passphrase = Some(wrap(key, new, kdf)?);
    settings::set(conn, SETTINGS_KEY, &cfg)
}

fn aad(id: &str, owner: Option<&str>, kind: SecretKind) -> Vec<u8> {
    format!(
        "supabackup-secret:{id}:{}:{}",
        owner.unwrap_or("-"),
        kind.as_str()
    )
    .into_bytes()
}

/// Seals `value` as the `kind` credential of `owner` (a project id, or none
/// for global credentials), replacing any previous one.
pub fn put_secret(
    conn: &Connection,
    key: &Key,
    owner: Option<&str>,
    kind: SecretKind,
    value: &Secret,
) -> Result<()> {
    let existing: Option<String> = conn
        .query_row(
            "SELECT id FROM secrets WHERE project_id IS ?1 AND kind = ?2",
            params![owner, kind.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let id = existing.clone().unwrap_or_else(new_id);
    let (nonce, ct) = crypto::seal(key, &aad(&id, owner, kind), value.expose().as_bytes())?;
    let ts = now();
    if existing.is_some() {
        conn.execute(
            "UPDATE secrets SET nonce = ?2, ciphertext = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, nonce.as_slice(), ct, ts],
        )?;
    } else {
        conn.execute(
            "INSERT INTO secrets (id, project_id, kind, nonce, ciphertext, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![id, owner, kind.as_str(), nonce.as_slice(), ct, ts],
        )?;
    }
    Ok(())
}

/// Opens the `kind` credential of `owner`, if one is stored.
pub fn get_secret(
    conn: &Connection,
    key: &Key,
    owner: Option<&str>,
    kind: SecretKind,
) -> Result<Option<Secret>> {
    let row: Option<(String, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT id, nonce, ciphertext FROM secrets WHERE project_id IS ?1 AND kind = ?2",
            params![owner, kind.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((id, nonce, ct)) = row else {
        return Ok(None);
    };
    let plain = crypto::open(key, &nonce, &aad(&id, owner, kind), &ct).map_err(|_| {
        Error::corrupt(format!(
            "the stored {} could not be decrypted (the record was altered or belongs to another vault)",
            kind.as_str().replace('_', " ")
        ))
    })?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| Error::corrupt("a stored credential is not valid text"))?;
    Ok(Some(Secret::new(text)))
}

/// Whether a secret of `kind` is stored for `owner` (no key needed).
pub fn has_secret(conn: &Connection, owner: Option<&str>, kind: SecretKind) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM secrets WHERE project_id IS ?1 AND kind = ?2",
            rusqlite::params![owner, kind.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn delete_secret(conn: &Connection, owner: Option<&str>, kind: SecretKind) -> Result<()> {
    conn.execute(
        "DELETE FROM secrets WHERE project_id IS ?1 AND kind = ?2",
        params![owner, kind.as_str()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::catalog::Catalog;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemoryKeychain(Mutex<HashMap<String, Vec<u8>>>);
    impl KeyStore for MemoryKeychain {
        fn get(&self, a: &str) -> std::result::Result<Option<Vec<u8>>, String> {
            Ok(self.0.lock().map_err(|e| e.to_string())?.get(a).cloned())
        }
        fn set(&self, a: &str, s: &[u8]) -> std::result::Result<(), String> {
            self.0
                .lock()
                .map_err(|e| e.to_string())?
                .insert(a.into(), s.to_vec());
            Ok(())
        }
        fn delete(&self, a: &str) -> std::result::Result<(), String> {
            self.0.lock().map_err(|e| e.to_string())?.remove(a);
            Ok(())
        }
    }

    fn kdf() -> KdfParams {
        KdfParams::insecure_for_tests()
    }

    #[test]
    fn passphrase_round_trip_wrong_passphrase_and_rewrap() {
        let cat = Catalog::open_in_memory().expect("catalog");
        cat.with(|c| {
            let pass = Secret::new("correct horse");
            let key = initialize(c, Some(&pass), &NoKeychain, kdf())?;
            put_secret(
                c,
                &key,
                None,
                SecretKind::SmtpPassword,
                &Secret::new("s3cret"),
            )?;

            let again = unlock(c, Some(&pass), &NoKeychain)?;
            assert_eq!(*again, *key);
            let got = get_secret(c, &again, None, SecretKind::SmtpPassword)?.expect("stored");
            assert_eq!(got.expose(), "s3cret");

            let before: String =
                c.query_row("SELECT value FROM settings WHERE key='vault'", [], |r| {
                    r.get(0)
                })?;
            let err = unlock(c, Some(&Secret::new("wrong horse")), &NoKeychain).expect_err("wrong");
            assert_eq!(err.kind, ErrorKind::Auth);
            assert!(err.message.contains("wrong master passphrase"), "{err}");
            let after: String =
                c.query_row("SELECT value FROM settings WHERE key='vault'", [], |r| {
                    r.get(0)
                })?;
            assert_eq!(before, after, "a failed unlock changes nothing");

            let locked = unlock(c, None, &NoKeychain).expect_err("no passphrase");
            assert!(locked.message.contains("locked"), "{locked}");

            change_passphrase(c, &key, &Secret::new("battery staple"), kdf())?;
            assert!(unlock(c, Some(&pass), &NoKeychain).is_err());
            let k2 = unlock(c, Some(&Secret::new("battery staple")), &NoKeychain)?;
            // Records sealed before the change still open.
            let got = get_secret(c, &k2, None, SecretKind::SmtpPassword)?.expect("stored");
            assert_eq!(got.expose(), "s3cret");
            Ok(())
        })
        .expect("vault flow");
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let cat = Catalog::open_in_memory().expect("catalog");
        cat.with(|c| {
            let key = initialize(c, Some(&Secret::new("passphrase!")), &NoKeychain, kdf())?;
            put_secret(
                c,
                &key,
                None,
                SecretKind::WebhookSecret,
                &Secret::new("whsec"),
            )?;
            let mut ct: Vec<u8> =
                c.query_row("SELECT ciphertext FROM secrets", [], |r| r.get(0))?;
            ct[0] ^= 0x01;
            c.execute("UPDATE secrets SET ciphertext = ?1", [ct])?;
            let err = get_secret(c, &key, None, SecretKind::WebhookSecret).expect_err("tampered");
            assert_eq!(err.kind, ErrorKind::Corrupt);
            Ok(())
        })
        .expect("flow");
    }

    #[test]
    fn short_passphrase_refused_and_keychain_mode() {
        let cat = Catalog::open_in_memory().expect("catalog");
        cat.with(|c| {
            let err =
                initialize(c, Some(&Secret::new("short")), &NoKeychain, kdf()).expect_err("short");
            assert_eq!(err.kind, ErrorKind::Invalid);
            let err = initialize(c, None, &NoKeychain, kdf()).expect_err("no way to protect");
            assert_eq!(err.kind, ErrorKind::Auth);

            let kc = MemoryKeychain::default();
            let key = initialize(c, None, &kc, kdf())?;
            assert!(status(c)?.keychain);
            assert!(!status(c)?.has_passphrase);
            let again = unlock(c, None, &kc)?;
            assert_eq!(*again, *key);
            // Without the keychain and without a passphrase wrap: clear error.
            let err = unlock(c, None, &NoKeychain).expect_err("keychain gone");
            assert!(err.message.contains("keychain"), "{err}");
            Ok(())
        })
        .expect("flow");
    }
}
