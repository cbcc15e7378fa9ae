//! Passphrases and confirmations for the CLI: from the environment for
//! headless use, otherwise asked on the terminal (never echoed).

use std::io::IsTerminal;

use crate::engine::crypto::Secret;
use crate::engine::vault::PASSPHRASE_ENV;
use crate::engine::{Engine, Error, ErrorKind, Result};

/// The environment variable for export-file passphrases.
pub const EXPORT_PASSPHRASE_ENV: &str = "SUPABACKUP_EXPORT_PASSPHRASE";
/// The environment variable for a new master passphrase.
pub const NEW_PASSPHRASE_ENV: &str = "SUPABACKUP_NEW_PASSPHRASE";

pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn from_env(var: &str) -> Option<Secret> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
}

fn ask(prompt: &str) -> Result<Secret> {
    rpassword::prompt_password(prompt)
        .map(Secret::new)
        .map_err(|e| {
            Error::invalid(format!(
                "could not read the passphrase from the terminal: {e}"
            ))
        })
}

/// A passphrase from `var`, else asked on the terminal (twice when
/// `confirm`), else `None`.
pub fn passphrase(var: &str, prompt: &str, confirm: bool) -> Result<Option<Secret>> {
    if let Some(p) = from_env(var) {
        return Ok(Some(p));
    }
    if !interactive() {
        return Ok(None);
    }
    let first = ask(prompt)?;
    if confirm {
        let again = ask("Repeat it: ")?;
        if again != first {
            return Err(Error::invalid(
                "the two passphrases differ; nothing was changed",
            ));
        }
    }
    Ok(Some(first))
}

/// Unlocks the vault, creating it on first use.
pub async fn unlock(engine: &Engine) -> Result<()> {
    if engine.is_unlocked() {
        return Ok(());
    }
    let status = engine.vault_status().await?;
    if !status.initialized {
        if interactive() && from_env(PASSPHRASE_ENV).is_none() {
            eprintln!("Choose a master passphrase: it protects the stored database passwords.");
        }
        let p = passphrase(PASSPHRASE_ENV, "New master passphrase: ", true)?;
        return engine.setup_vault(p).await;
    }
    if status.keychain {
        match engine.unlock(None).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrorKind::Auth => {}
            Err(e) => return Err(e),
        }
    }
    let p = passphrase(PASSPHRASE_ENV, "Master passphrase: ", false)?;
    engine.unlock(p).await
}

/// Asks "yes/no" on the terminal; without a terminal the answer is no.
/// Unlocks when that needs no question (the passphrase in the environment,
/// or the keychain); otherwise leaves the vault locked.
pub async fn try_unlock(engine: &Engine) {
    if engine.is_unlocked() {
        return;
    }
    let Ok(status) = engine.vault_status().await else {
        return;
    };
    if !status.initialized {
        return;
    }
    if status.keychain && engine.unlock(None).await.is_ok() {
        return;
    }
    if let Some(p) = from_env(PASSPHRASE_ENV) {
        let _ = engine.unlock(Some(p)).await;
    }
}

/// A line typed on the terminal (`None` when there is no terminal).
pub fn line(question: &str) -> Option<String> {
    if !interactive() {
        return None;
    }
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    Some(line.trim().to_owned())
}

pub fn confirm(question: &str) -> bool {
    if !interactive() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// With `include`, the vault unlocked (secrets are read from it) and the
/// passphrase an export seals them with (SUPABACKUP_EXPORT_PASSPHRASE or a
/// prompt, asked twice); without, none.
pub async fn export_passphrase(
    engine: &crate::engine::Engine,
    include: bool,
) -> Result<Option<Secret>> {
    if !include {
        return Ok(None);
    }
    unlock(engine).await?;
    passphrase(
        EXPORT_PASSPHRASE_ENV,
        "Passphrase for the exported secrets: ",
        true,
    )?
    .map(Some)
    .ok_or_else(|| {
        crate::engine::Error::invalid("--include-secrets needs a passphrase to encrypt them")
            .with_hint("set SUPABACKUP_EXPORT_PASSPHRASE or run in a terminal")
    })
}

/// The passphrase of an export file whose secrets are `sealed`
/// (SUPABACKUP_EXPORT_PASSPHRASE or a prompt); none for a file without.
pub fn import_passphrase(sealed: bool) -> Result<Option<Secret>> {
    if !sealed {
        return Ok(None);
    }
    passphrase(
        EXPORT_PASSPHRASE_ENV,
        "Passphrase of the export file: ",
        false,
    )
}

/// Runs `call`; when it needs the vault and the vault is locked, unlocks
/// it (prompt or SUPABACKUP_PASSPHRASE) and runs it once more.
pub async fn retry_unlocked<T, F, Fut>(engine: &crate::engine::Engine, call: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    match call().await {
        Err(e) if e.kind == crate::engine::ErrorKind::Auth && !engine.is_unlocked() => {
            unlock(engine).await?;
            call().await
        }
        other => other,
    }
}
