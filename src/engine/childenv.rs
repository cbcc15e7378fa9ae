//! The environment of every program supabackup starts (PostgreSQL's tools,
//! version probes, hooks): a fresh one, never the inherited one, which may
//! hold the master passphrase (`SUPABACKUP_PASSPHRASE`), the user's own
//! `PG*` settings or cloud credentials. Only what a program needs to run
//! is passed on: the search path, home folder, user name, locale, time
//! zone and temporary folder; each caller adds its own documented
//! variables (libpq's connection settings and passfile, a hook's details).

use std::ffi::OsString;

/// Inherited variables that are passed on.
const KEPT: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// Whether an inherited variable is passed on.
fn kept(name: &str) -> bool {
    KEPT.contains(&name)
        || (name.starts_with("LC_")
            && name[3..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// The inherited variables a child gets.
pub fn base() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(kept))
        .collect()
}

/// Clears `cmd`'s environment and sets [`base`].
pub fn apply(cmd: &mut std::process::Command) {
    cmd.env_clear();
    cmd.envs(base());
}

/// The same for tokio's commands.
pub fn apply_tokio(cmd: &mut tokio::process::Command) {
    cmd.env_clear();
    cmd.envs(base());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_foreign_settings_are_not_passed_on() {
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ"] {
            assert!(kept(name), "{name}");
        }
        for name in [
            "SUPABACKUP_PASSPHRASE",
            "SUPABACKUP_BACKUP_PASSPHRASE",
            "PGPASSWORD",
            "PGHOST",
            "PGSERVICEFILE",
            "AWS_SECRET_ACCESS_KEY",
            "LC_foo",
            "LD_PRELOAD",
        ] {
            assert!(!kept(name), "{name}");
        }
    }
}
