//! Values sealed with an export passphrase, self-contained so a file can
//! carry them to another machine: `enc:v1:m,t,p:salt:nonce:ciphertext`
//! (Argon2id parameters and salt, AES-256-GCM nonce and ciphertext, all
//! base64), each bound to what it is (a label in the associated data), so
//! a value moved to another field does not open. Used by the project and
//! the whole-configuration exports.

use std::collections::HashMap;

use crate::engine::crypto::{self, KdfParams, Key, Secret};
use crate::engine::error::{Error, Result};
use crate::engine::vault::{self, SecretKind};

const ENC_PREFIX: &str = "enc:v1:";

pub(crate) struct Sealer {
    params: KdfParams,
    salt: [u8; crypto::SALT_LEN],
    key: Key,
}

fn aad(label: &str) -> Vec<u8> {
    format!("supabackup-export:{label}").into_bytes()
}

impl Sealer {
    pub(crate) fn new(passphrase: &Secret, params: KdfParams) -> Result<Self> {
        let salt = crypto::random::<{ crypto::SALT_LEN }>()?;
        let key = crypto::derive_key(passphrase.expose().as_bytes(), &salt, params)?;
        Ok(Sealer { params, salt, key })
    }
    pub(crate) fn seal(&self, kind: SecretKind, value: &Secret) -> Result<String> {
        self.seal_labeled(kind.as_str(), value)
    }

    /// Seals a value bound to `label` (what it is): it opens only as such.
    pub(crate) fn seal_labeled(&self, label: &str, value: &Secret) -> Result<String> {
        let (nonce, ct) = crypto::seal(&self.key, &aad(label), value.expose().as_bytes())?;
        Ok(format!(
            "{ENC_PREFIX}{},{},{}:{}:{}:{}",
            self.params.m_cost,
            self.params.t_cost,
            self.params.p_cost,
            crypto::b64(&self.salt),
            crypto::b64(&nonce),
            crypto::b64(&ct)
        ))
    }
}

/// Opens `enc:v1:` values, deriving each distinct (params, salt) key once.
pub(crate) struct Opener<'a> {
    passphrase: Option<&'a Secret>,
    keys: HashMap<String, Key>,
}

impl<'a> Opener<'a> {
    pub(crate) fn new(passphrase: Option<&'a Secret>) -> Self {
        Opener {
            passphrase,
            keys: HashMap::new(),
        }
    }

    /// Whether a stored value is sealed (`enc:v1:`) rather than plain.
    pub(crate) fn is_sealed(value: &str) -> bool {
        value.starts_with(ENC_PREFIX)
    }

    pub(crate) fn open(
        &mut self,
        kind: SecretKind,
        value: &str,
    ) -> std::result::Result<Secret, String> {
        self.open_labeled(kind.as_str(), value)
    }

    /// Opens a value sealed with [`Sealer::seal_labeled`]; a plain value
    /// is taken as it is.
    pub(crate) fn open_labeled(
        &mut self,
        label: &str,
        value: &str,
    ) -> std::result::Result<Secret, String> {
        let Some(rest) = value.strip_prefix(ENC_PREFIX) else {
            return Ok(Secret::new(value));
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let [params, salt, nonce, ct] = parts.as_slice() else {
            return Err(format!("the encrypted {} is malformed", label));
        };
        let nums: Vec<u32> = params.split(',').filter_map(|n| n.parse().ok()).collect();
        let [m_cost, t_cost, p_cost] = nums.as_slice() else {
            return Err(format!("the encrypted {} has malformed parameters", label));
        };
        let passphrase = self
            .passphrase
            .ok_or_else(|| "this row holds encrypted credentials: give the passphrase the file was exported with".to_owned())?;
        let cache_key = format!("{params}:{salt}");
        if !self.keys.contains_key(&cache_key) {
            let salt = crypto::unb64(salt, "the salt").map_err(|e| e.message)?;
            let params = KdfParams {
                m_cost: *m_cost,
                t_cost: *t_cost,
                p_cost: *p_cost,
            };
            let key = crypto::derive_key(passphrase.expose().as_bytes(), &salt, params)
                .map_err(|e| e.message)?;
            self.keys.insert(cache_key.clone(), key);
        }
        let key = self.keys.get(&cache_key).ok_or("key cache miss")?;
        let nonce = crypto::unb64(nonce, "the nonce").map_err(|e| e.message)?;
        let ct = crypto::unb64(ct, "the value").map_err(|e| e.message)?;
        let plain = crypto::open(key, &nonce, &aad(label), &ct).map_err(|_| {
            format!(
                "the {} could not be decrypted: wrong passphrase, or the value was altered",
                label
            )
        })?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| format!("the decrypted {} is not text", label))
    }
}

/// The export passphrase is long enough; its key derived off the runtime.
pub(crate) async fn sealer_for(passphrase: &Secret, kdf: KdfParams) -> Result<Sealer> {
    if passphrase.expose().chars().count() < vault::MIN_PASSPHRASE_LEN {
        return Err(Error::invalid(format!(
            "the export passphrase must have at least {} characters",
            vault::MIN_PASSPHRASE_LEN
        )));
    }
    let p = passphrase.clone();
    tokio::task::spawn_blocking(move || Sealer::new(&p, kdf))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}
