//! `supabackup vault ...`

use clap::Subcommand;

use super::{output, prompt};
use crate::engine::{Engine, Error, Result};

#[derive(Debug, Subcommand)]
pub enum VaultCmd {
    /// Whether the vault exists and how its key is kept.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set a new master passphrase (stored credentials are kept as they are).
    ///
    /// The current passphrase comes from SUPABACKUP_PASSPHRASE (or the
    /// keychain, or a prompt); the new one from SUPABACKUP_NEW_PASSPHRASE or
    /// a prompt.
    ChangePassphrase,
    /// Set the passphrase backup files are encrypted with (from
    /// SUPABACKUP_BACKUP_PASSPHRASE or a prompt). Keep a copy somewhere safe:
    /// restoring on another machine needs it.
    SetBackupPassphrase,
}

pub async fn run(engine: &Engine, cmd: VaultCmd) -> Result<i32> {
    match cmd {
        VaultCmd::Status { json } => {
            let st = engine.vault_status().await?;
            if json {
                output::json(&st)?;
            } else if !st.initialized {
                println!(
                    "The vault is not set up yet (it is created when the first credential is stored)."
                );
            } else {
                println!(
                    "Vault set up; master key kept {}.",
                    match (st.has_passphrase, st.keychain) {
                        (true, true) => "under the master passphrase and in the OS keychain",
                        (true, false) => "under the master passphrase",
                        (false, true) => "in the OS keychain only",
                        (false, false) => "nowhere (unusable)",
                    }
                );
            }
            Ok(0)
        }
        VaultCmd::ChangePassphrase => {
            prompt::unlock(engine).await?;
            let new =
                prompt::passphrase(prompt::NEW_PASSPHRASE_ENV, "New master passphrase: ", true)?
                    .ok_or_else(|| {
                        Error::invalid("no new passphrase given")
                            .with_hint("set SUPABACKUP_NEW_PASSPHRASE or run in a terminal")
                    })?;
            engine.change_passphrase(new).await?;
            eprintln!("The master passphrase was changed.");
            Ok(0)
        }
        VaultCmd::SetBackupPassphrase => {
            prompt::unlock(engine).await?;
            let p = prompt::passphrase(
                super::backup::BACKUP_PASSPHRASE_ENV,
                "New backup passphrase: ",
                true,
            )?
            .ok_or_else(|| {
                Error::invalid("no backup passphrase given")
                    .with_hint("set SUPABACKUP_BACKUP_PASSPHRASE or run in a terminal")
            })?;
            engine.set_backup_passphrase(p).await?;
            eprintln!("The backup passphrase was set. Backups made from now on use it.");
            Ok(0)
        }
    }
}
