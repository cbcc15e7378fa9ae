//! The password file, read in-process as libpq reads it: `PGPASSFILE`, else
//! `~/.pgpass`; lines `host:port:database:user:password` with `*`
//! wildcards, `\:` and `\\` escapes and `#` comments; the first matching
//! line wins; a file readable by group or others is ignored (with a
//! warning), as libpq does. A local socket connection also matches the
//! host `localhost`.

use std::path::{Path, PathBuf};

use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::Secret;

/// The password file libpq would read.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    directories::BaseDirs::new().map(|d| d.home_dir().join(".pgpass"))
}

/// Splits a line on unescaped ':' and removes the escapes.
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = out.last_mut()
                {
                    last.push(n);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern == value
}

/// The password for `info` in the file's text, if a line matches.
pub fn find_in(text: &str, info: &ConnInfo) -> Option<Secret> {
    let port = info.port.to_string();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f = fields(line);
        let [host, p, db, user, password] = f.as_slice() else {
            continue;
        };
        let host_ok = matches(host, &info.host) || (info.is_unix_socket() && host == "localhost");
        if host_ok && matches(p, &port) && matches(db, &info.dbname) && matches(user, &info.user) {
            return Some(Secret::new(password.clone()));
        }
    }
    None
}

/// Looks `info` up in `path`; `None` when absent, unreadable or unsafe.
pub fn lookup_in(path: &Path, info: &ConnInfo) -> Option<Secret> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} has group or world access and is ignored (as libpq does); chmod 600 it",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    find_in(&text, info)
}

/// Fills in a missing password from the password file, as libpq would.
pub fn fill(info: &mut ConnInfo) {
    if info.password.is_some() {
        return;
    }
    if let Some(path) = default_path() {
        info.password = lookup_in(&path, info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(url: &str) -> ConnInfo {
        ConnInfo::parse_with(url, &|_| None).expect("url")
    }

    #[test]
    fn first_matching_line_with_wildcards_and_escapes() {
        let text = "\
# comment line
db.example.com:5432:app:alice:first
*:5432:*:bob:pa\\:ss\\\\word
localhost:*:*:carol:socket-or-tcp
*:*:*:*:fallback
";
        let get = |url: &str| find_in(text, &info(url)).map(|s| s.expose().to_owned());
        assert_eq!(
            get("postgresql://alice@db.example.com/app").as_deref(),
            Some("first")
        );
        assert_eq!(
            get("postgresql://alice@db.example.com/other").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            get("postgresql://bob@h:5432/x").as_deref(),
            Some("pa:ss\\word")
        );
        assert_eq!(
            get("postgresql://bob@h:5433/x").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            get("postgresql://carol@localhost:6000/x").as_deref(),
            Some("socket-or-tcp")
        );
        assert_eq!(
            get("postgresql://carol@%2Fvar%2Frun%2Fpostgresql/x").as_deref(),
            Some("socket-or-tcp")
        );
        assert_eq!(find_in("short:line\n", &info("postgresql://u@h/d")), None);
    }

    #[test]
    fn unsafe_permissions_are_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").expect("write");
        let i = info("postgresql://u@h/d");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(lookup_in(&path, &i).is_none());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        assert_eq!(
            lookup_in(&path, &i)
                .map(|s| s.expose().to_owned())
                .as_deref(),
            Some("pw")
        );
        assert!(lookup_in(&dir.path().join("missing"), &i).is_none());
    }
}
