//! Log files. The GUI, the CLI and the daemon all write to
//! `<data>/logs/supabackup.YYYY-MM-DD.log` (rotated daily, 14 days kept,
//! written off the calling thread), each line tagged with the component
//! and process id, secrets redacted on the way out; stderr gets the same
//! lines at a quieter level. [`tail`] and [`Follower`] read them back for
//! `supabackup logs [--follow]`.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::engine::error::{Error, Result};

/// Filter for both outputs, e.g. `debug` or `supabackup=debug`.
pub const LOG_ENV: &str = "SUPABACKUP_LOG";
pub const FILE_PREFIX: &str = "supabackup";
pub const FILE_SUFFIX: &str = "log";
/// Daily files kept.
pub const KEEP_FILES: usize = 14;

/// Keeps the background writer alive; dropping it flushes the file.
#[must_use = "logs are flushed when the guard is dropped"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Sets up logging for a process. `component` ("gui", "cli", "daemon")
/// tags every file line; `stderr_default` is the stderr level when
/// `SUPABACKUP_LOG` is not set (the file gets `info`). Without a usable
/// `logs` folder only stderr is written.
pub fn init(component: &str, logs: Option<&Path>, stderr_default: &str) -> LogGuard {
    let filter = |default: &str| {
        EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(default))
    };
    let stderr_layer = fmt::layer()
        .with_writer(|| Redacting::new(io::stderr(), String::new()))
        .with_target(false)
        .without_time()
        .with_filter(filter(stderr_default));
    let mut guard = None;
    let file_layer = logs
        .and_then(|dir| {
            std::fs::create_dir_all(dir).ok()?;
            RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .filename_suffix(FILE_SUFFIX)
                .max_log_files(KEEP_FILES)
                .build(dir)
                .ok()
        })
        .map(|appender| {
            let prefix = format!("[{component} {}] ", std::process::id());
            let (writer, g) = tracing_appender::non_blocking(Redacting::new(appender, prefix));
            guard = Some(g);
            fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(true)
                .with_filter(filter("info"))
        });
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    LogGuard { _file: guard }
}

/// A writer that redacts secrets line by line (and prefixes each line).
pub struct Redacting<W: Write> {
    inner: W,
    prefix: String,
    line: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    pub fn new(inner: W, prefix: String) -> Self {
        Redacting {
            inner,
            prefix,
            line: Vec::new(),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        let text = String::from_utf8_lossy(&self.line);
        let out = format!("{}{}", self.prefix, redact(&text));
        self.line.clear();
        self.inner.write_all(out.as_bytes())
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.line.push(b);
            if b == b'\n' {
                self.emit()?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.emit()?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

const MASK: &str = "****";

/// Keys whose values are secrets in `key=value`, `key: value` and JSON.
const SECRET_KEYS: [&str; 10] = [
    "password",
    "passwd",
    "pgpassword",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "service_role_key",
    "authorization",
];

/// Masks what looks like a secret: URL passwords
/// (`scheme://user:****@host`), values of password/token/secret keys,
/// `Bearer` tokens, JWTs (Supabase keys) and `sbp_` access tokens.
pub fn redact(text: &str) -> String {
    let text = redact_url_passwords(text);
    let text = redact_keys(&text);
    redact_tokens(&text)
}

fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or blank.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(a), Some(c)) if c < a => {
                out.push_str(&authority[..=c]);
                out.push_str(MASK);
                out.push_str(&authority[a..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn redact_keys(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = SECRET_KEYS.iter().find_map(|k| {
            if !lower[i..].starts_with(k) {
                return None;
            }
            // The key ends its word ("db_password", "access_token"), so
            // "tokens_used" is no key.
            let mut j = i + k.len();
            if j < bytes.len() && is_word(bytes[j]) {
                return None;
            }
            // Optional closing quote, blanks, then '=' or ':'.
            if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
                j += 1;
            }
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            if j < bytes.len() && (bytes[j] == b'=' || bytes[j] == b':') {
                j += 1;
            } else {
                return None;
            }
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            Some(j)
        });
        match hit {
            Some(mut value_start) => {
                // "Authorization: Bearer TOKEN" keeps the scheme.
                for scheme in ["bearer ", "basic "] {
                    if lower[value_start..].starts_with(scheme) {
                        value_start += scheme.len();
                    }
                }
                out.push_str(&text[i..value_start]);
                let quote = bytes
                    .get(value_start)
                    .copied()
                    .filter(|q| *q == b'"' || *q == b'\'');
                let (open, body_start) = match quote {
                    Some(q) => (Some(q), value_start + 1),
                    None => (None, value_start),
                };
                let body_end = match open {
                    Some(q) => text[body_start..]
                        .find(q as char)
                        .map(|e| body_start + e)
                        .unwrap_or(text.len()),
                    None => text[body_start..]
                        .find(|c: char| c.is_whitespace() || c == '&' || c == ',' || c == ';')
                        .map(|e| body_start + e)
                        .unwrap_or(text.len()),
                };
                if let Some(q) = open {
                    out.push(q as char);
                }
                if body_end > body_start {
                    out.push_str(MASK);
                }
                i = body_end;
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut words = text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'');
    let mut after_bearer = false;
    for piece in words.by_ref() {
        let (word, sep) = match piece.char_indices().last() {
            Some((i, c)) if c.is_whitespace() || c == '"' || c == '\'' => piece.split_at(i),
            _ => (piece, ""),
        };
        let secret = after_bearer && !word.is_empty()
            || (word.starts_with("eyJ") && word.matches('.').count() == 2 && word.len() > 30)
            || (word.starts_with("sbp_") && word.len() > 20);
        if secret {
            out.push_str(MASK);
        } else {
            out.push_str(word);
        }
        out.push_str(sep);
        if !word.is_empty() {
            after_bearer = word.eq_ignore_ascii_case("bearer");
        }
    }
    out
}

/// The log files, oldest first.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .is_some_and(|n| {
                    n.starts_with(&format!("{FILE_PREFIX}."))
                        && n.ends_with(&format!(".{FILE_SUFFIX}"))
                })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The last `n` lines across the log files (oldest first), reading each
/// file once with bounded memory.
pub fn tail(dir: &Path, n: usize) -> Result<Vec<String>> {
    let mut keep: VecDeque<String> = VecDeque::with_capacity(n.min(10_000));
    for file in files(dir)? {
        let f = std::fs::File::open(&file).map_err(|e| Error::io("open", &file, e))?;
        for line in io::BufReader::new(f).split(b'\n') {
            let line = line.map_err(|e| Error::io("read", &file, e))?;
            if keep.len() == n {
                keep.pop_front();
            }
            if n > 0 {
                keep.push_back(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }
    Ok(keep.into())
}

/// Reads lines appended to the logs after it was made, across rotation.
pub struct Follower {
    dir: PathBuf,
    file: Option<PathBuf>,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of the newest file.
    pub fn new(dir: &Path) -> Result<Follower> {
        let file = files(dir)?.pop();
        let offset = match &file {
            Some(f) => std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
            None => 0,
        };
        Ok(Follower {
            dir: dir.to_path_buf(),
            file,
            offset,
            partial: Vec::new(),
        })
    }

    /// Complete lines written since the last call.
    pub fn poll(&mut self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        if let Some(f) = self.file.clone() {
            self.read_from(&f, &mut lines)?;
        }
        // A newer file (the next day) takes over once the current one is read.
        let newest = files(&self.dir)?.pop();
        if newest.is_some() && newest != self.file {
            self.file = newest.clone();
            self.offset = 0;
            self.partial.clear();
            if let Some(f) = newest {
                self.read_from(&f, &mut lines)?;
            }
        }
        Ok(lines)
    }

    fn read_from(&mut self, path: &Path, lines: &mut Vec<String>) -> Result<()> {
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // truncated or replaced
        }
        f.seek(io::SeekFrom::Start(self.offset))
            .map_err(|e| Error::io("read", path, e))?;
        let mut buf = Vec::new();
        let read = f
            .take(len - self.offset)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        self.offset += read as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let cases = [
            (
                "connecting to postgresql://postgres:s3cr%40t@db.x.supabase.co:5432/postgres",
                "connecting to postgresql://postgres:****@db.x.supabase.co:5432/postgres",
            ),
            (
                "url postgres://u@h/db has no password",
                "url postgres://u@h/db has no password",
            ),
            ("PGPASSWORD=hunter2 pg_dump", "PGPASSWORD=**** pg_dump"),
            ("password: 'a b c' then", "password: '****' then"),
            (
                r#"{"db_password":"x","password":"p@ss","tokens_used":3}"#,
                r#"{"db_password":"****","password":"****","tokens_used":3}"#,
            ),
            (
                "Authorization: Bearer abc.def",
                "Authorization: Bearer ****",
            ),
            ("client_secret=abc&x=1", "client_secret=****&x=1"),
            ("sent with Bearer abcdef123", "sent with Bearer ****"),
            (
                "key eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl ok",
                "key **** ok",
            ),
            (
                "token sbp_0123456789abcdef0123456789abcdef01234567 used",
                "token **** used",
            ),
            (
                "nothing secret here: 42 tables",
                "nothing secret here: 42 tables",
            ),
            ("Ünïcødé password=ÿ fine", "Ünïcødé password=**** fine"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn the_writer_redacts_whole_lines_even_when_split() {
        let mut out = Vec::new();
        {
            let mut w = Redacting::new(&mut out, "[cli 1] ".into());
            w.write_all(b"a postgresql://u:pa").expect("write");
            w.write_all(b"ss@h/db\nsecond line\nno newline")
                .expect("write");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "[cli 1] a postgresql://u:****@h/db\n[cli 1] second line\n[cli 1] no newline"
        );
    }

    #[test]
    fn tail_and_follow_read_across_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let day1 = dir.path().join("supabackup.2026-11-30.log");
        let day2 = dir.path().join("supabackup.2026-12-01.log");
        std::fs::write(&day1, "one\ntwo\n").expect("write");
        std::fs::write(dir.path().join("other.txt"), "ignored\n").expect("write");
        std::fs::write(&day2, "three\n").expect("write");
        assert_eq!(tail(dir.path(), 2).expect("tail"), ["two", "three"]);
        assert_eq!(tail(dir.path(), 10).expect("tail").len(), 3);

        let mut f = Follower::new(dir.path()).expect("follow");
        assert!(f.poll().expect("poll").is_empty());
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&day2)
            .expect("open");
        w.write_all(b"four\nfi").expect("append");
        assert_eq!(f.poll().expect("poll"), ["four"]);
        w.write_all(b"ve\n").expect("append");
        assert_eq!(f.poll().expect("poll"), ["five"]);
        // Rotation: the next day's file is picked up.
        std::fs::write(dir.path().join("supabackup.2026-12-02.log"), "six\n").expect("write");
        assert_eq!(f.poll().expect("poll"), ["six"]);
    }
}
