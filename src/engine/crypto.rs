//! Cryptographic building blocks shared by the vault, exports and backups:
//! random bytes, Argon2id key derivation, AES-256-GCM sealing, SHA-256 hex,
//! and a secret string that never prints itself.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::engine::error::{Error, Result};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const SALT_LEN: usize = 16;

/// A 256-bit key, wiped from memory when dropped.
pub type Key = Zeroizing<[u8; KEY_LEN]>;

/// A secret text (password, passphrase, token). Its `Debug` never shows the
/// value and its memory is wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The clear value; keep its use short and never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

/// Fills a fresh array with bytes from the operating system's CSPRNG.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)
        .map_err(|e| Error::internal(format!("the system random generator failed: {e}")))?;
    Ok(out)
}

pub fn random_key() -> Result<Key> {
    Ok(Zeroizing::new(random::<KEY_LEN>()?))
}

/// Argon2id parameters, stored next to whatever they protect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: above OWASP's Argon2id minimums, about a
    /// quarter of a second on a current desktop core.
    fn default() -> Self {
        KdfParams {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only (never used by the product's defaults).
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Checks parameters read from a file or a record against `limits`,
    /// before any memory is allocated for them.
    fn check(&self, limits: &KdfLimits) -> Result<()> {
        if self.m_cost < 8 || self.t_cost == 0 || self.p_cost == 0 {
            return Err(Error::corrupt(format!(
                "invalid key-derivation parameters (m={} KiB, t={}, p={})",
                self.m_cost, self.t_cost, self.p_cost
            )));
        }
        if self.m_cost > limits.max_m_cost
            || self.t_cost > limits.max_t_cost
            || self.p_cost > limits.max_p_cost
        {
            return Err(Error::corrupt(format!(
                "the key-derivation parameters ask for {} MiB of memory, {} passes and {} lanes, more than allowed ({} MiB, {} passes, {} lanes): the file is damaged or crafted",
                self.m_cost / 1024,
                self.t_cost,
                self.p_cost,
                limits.max_m_cost / 1024,
                limits.max_t_cost,
                limits.max_p_cost
            ))
            .with_hint(format!(
                "supabackup writes {} MiB, {} passes, 1 lane; if you trust this file, allow more with --kdf-limit m=MIB,t=PASSES,p=LANES (or {KDF_LIMIT_ENV})",
                KdfParams::default().m_cost / 1024,
                KdfParams::default().t_cost
            )));
        }
        Ok(())
    }
}

/// The most an untrusted header may ask Argon2 for. supabackup writes
/// 64 MiB, 3 passes, 1 lane; these caps leave room and stop a crafted file
/// from taking gigabytes or minutes before the passphrase is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimits {
    /// KiB.
    pub max_m_cost: u32,
    pub max_t_cost: u32,
    pub max_p_cost: u32,
}

/// Overrides the caps, e.g. `m=2048,t=20,p=16` (memory in MiB).
pub const KDF_LIMIT_ENV: &str = "SUPABACKUP_KDF_LIMIT";

impl KdfLimits {
    /// 1 GiB, 10 passes, 8 lanes.
    pub const DEFAULT: KdfLimits = KdfLimits {
        max_m_cost: 1024 * 1024,
        max_t_cost: 10,
        max_p_cost: 8,
    };

    /// Parses `m=MIB,t=PASSES,p=LANES` (any subset; the rest stay default).
    pub fn parse(text: &str) -> Result<KdfLimits> {
        let bad = |why: String| {
            Error::invalid(format!("--kdf-limit '{text}': {why}"))
                .with_hint("write it as m=MIB,t=PASSES,p=LANES, e.g. m=2048,t=20,p=16")
        };
        let mut out = KdfLimits::DEFAULT;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("'{part}' has no '='")))?;
            let n: u32 = v
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{v}' is not a whole number")))?;
            if n == 0 {
                return Err(bad(format!("{k} must be at least 1")));
            }
            match k.trim() {
                "m" => {
                    out.max_m_cost = n
                        .checked_mul(1024)
                        .ok_or_else(|| bad(format!("{n} MiB is too large")))?
                }
                "t" => out.max_t_cost = n,
                "p" => out.max_p_cost = n.min(0xFF_FFFF),
                other => return Err(bad(format!("unknown key '{other}' (m, t or p)"))),
            }
        }
        Ok(out)
    }
}

static LIMITS: std::sync::RwLock<KdfLimits> = std::sync::RwLock::new(KdfLimits::DEFAULT);

/// Sets the caps for this process (the CLI's `--kdf-limit`).
pub fn set_kdf_limits(limits: KdfLimits) {
    if let Ok(mut l) = LIMITS.write() {
        *l = limits;
    }
}

/// The caps in force.
pub fn kdf_limits() -> KdfLimits {
    LIMITS.read().map(|l| *l).unwrap_or(KdfLimits::DEFAULT)
}

/// Derives a 256-bit key from a passphrase with Argon2id.
/// Parameters beyond [`kdf_limits`] are refused before any work.
pub fn derive_key(passphrase: &[u8], salt: &[u8], params: KdfParams) -> Result<Key> {
    derive_key_within(passphrase, salt, params, &kdf_limits())
}

/// [`derive_key`] with explicit caps.
pub fn derive_key_within(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
    limits: &KdfLimits,
) -> Result<Key> {
    params.check(limits)?;
    let p = argon2::Params::new(params.m_cost, params.t_cost, params.p_cost, Some(KEY_LEN))
        .map_err(|e| Error::corrupt(format!("invalid key-derivation parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| Error::internal(format!("key derivation failed: {e}")))?;
    Ok(out)
}

fn cipher(key: &[u8; KEY_LEN]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(key).map_err(|_| Error::internal("invalid AES key length"))
}

/// Encrypts `plaintext` under `key` with a fresh random nonce, binding `aad`.
pub fn seal(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let nonce_bytes = random::<NONCE_LEN>()?;
    let ct = seal_with_nonce(key, &nonce_bytes, aad, plaintext)?;
    Ok((nonce_bytes, ct))
}

/// Encrypts with a caller-chosen nonce (which must never repeat for a key).
pub fn seal_with_nonce(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let nonce = aes_gcm::Nonce::from(*nonce);
    cipher(key)?
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::internal("encryption failed"))
}

/// Decrypts and authenticates. Fails when the key is wrong or the data or
/// `aad` were altered; the caller turns that into a precise message.
pub fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| Error::corrupt("a sealed record has a nonce of the wrong length"))?;
    let nonce = aes_gcm::Nonce::from(nonce);
    cipher(key)?
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::corrupt("authentication failed (wrong key, or the data was altered)"))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of bytes, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str, what: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| Error::corrupt(format!("{what} is not valid base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let key = random_key().expect("key");
        let (nonce, mut ct) = seal(&key, b"id-1", b"hunter2").expect("seal");
        assert_eq!(
            open(&key, &nonce, b"id-1", &ct).expect("open").as_slice(),
            b"hunter2"
        );
        // Another record id as associated data must fail.
        assert!(open(&key, &nonce, b"id-2", &ct).is_err());
        // Another key must fail.
        let other = random_key().expect("key");
        assert!(open(&other, &nonce, b"id-1", &ct).is_err());
        // A flipped bit must fail.
        ct[0] ^= 1;
        let err = open(&key, &nonce, b"id-1", &ct).expect_err("tampered");
        assert!(err.message.contains("authentication failed"));
    }

    #[test]
    fn nonces_are_fresh() {
        let key = random_key().expect("key");
        let (a, _) = seal(&key, b"", b"x").expect("seal");
        let (b, _) = seal(&key, b"", b"x").expect("seal");
        assert_ne!(a, b);
    }

    #[test]
    fn aes_gcm_known_vector() {
        // NIST GCM test case 13 (AES-256, zero key, zero nonce, empty text):
        // the output is the tag alone.
        let key = [0u8; 32];
        let ct = seal_with_nonce(&key, &[0u8; 12], b"", b"").expect("seal");
        assert_eq!(hex(&ct), "530f8afbc74536b9a963b4f1c4cb738b");
    }

    #[test]
    fn argon2id_is_deterministic_and_salted() {
        let p = KdfParams::insecure_for_tests();
        let a = derive_key(b"pass", b"0123456789abcdef", p).expect("derive");
        let b = derive_key(b"pass", b"0123456789abcdef", p).expect("derive");
        let c = derive_key(b"pass", b"fedcba9876543210", p).expect("derive");
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
        let bad = KdfParams {
            m_cost: u32::MAX,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(derive_key(b"pass", b"0123456789abcdef", bad).is_err());
    }

    #[test]
    fn untrusted_parameters_are_capped_unless_allowed() {
        let salt = b"0123456789abcdef";
        let d = KdfLimits::DEFAULT;
        // What supabackup writes passes; one step beyond any cap fails at once.
        assert!(KdfParams::default().check(&d).is_ok());
        for (m, t, p) in [
            (1024 * 1024 + 1, 1, 1),
            (1024, 11, 1),
            (1024, 1, 9),
            (4 << 20, 1, 1),
        ] {
            let params = KdfParams {
                m_cost: m,
                t_cost: t,
                p_cost: p,
            };
            let started = std::time::Instant::now();
            let e = derive_key_within(b"pass", salt, params, &d).expect_err("capped");
            assert!(started.elapsed() < std::time::Duration::from_millis(50));
            assert_eq!(e.kind, crate::engine::error::ErrorKind::Corrupt);
            assert!(e.message.contains("more than allowed"), "{e}");
            assert!(e.hint.as_deref().is_some_and(|h| h.contains("--kdf-limit")));
        }
        // An explicit override lets a trusted file through.
        let params = KdfParams {
            m_cost: 1024,
            t_cost: 11,
            p_cost: 1,
        };
        let allowed = KdfLimits::parse("t=12").expect("parse");
        assert_eq!(allowed.max_m_cost, d.max_m_cost);
        assert!(derive_key_within(b"pass", salt, params, &allowed).is_ok());
        assert_eq!(
            KdfLimits::parse("m=2048,t=20,p=16").expect("parse"),
            KdfLimits {
                max_m_cost: 2048 * 1024,
                max_t_cost: 20,
                max_p_cost: 16
            }
        );
        for bad in ["m", "m=x", "q=1", "t=0", "m=99999999"] {
            assert!(KdfLimits::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_known_vector_and_secret_debug() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(****)");
    }
}
