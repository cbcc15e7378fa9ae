//! PostgreSQL connection URLs: parsing, validation, the password-less form
//! stored in the catalog, the redacted form shown to people, and the libpq
//! environment handed to pg_dump/psql (never argv).

use std::fmt;
use std::path::Path;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::engine::crypto::Secret;
use crate::engine::error::{Error, Result};

/// libpq's `sslmode` values. Default: `require`, as Supabase needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    #[default]
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(
                    Error::invalid(format!("unknown sslmode '{other}'")).with_hint(
                        "use one of disable, allow, prefer, require, verify-ca, verify-full",
                    ),
                );
            }
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A parsed connection URL. The password, when present, is a [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<Secret>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    pub connect_timeout: Option<u64>,
    pub application_name: Option<String>,
    pub channel_binding: Option<String>,
}

const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'#')
    .add(b'&')
    .add(b'%')
    .add(b'+')
    .add(b'=');

/// Query parameters accepted and ignored (set by other tools' URLs).
const IGNORED_PARAMS: [&str; 4] = ["pgbouncer", "gssencmode", "target_session_attrs", "options"];

fn decode(part: &str, what: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Error::invalid(format!(
                "the {what} in the connection URL is not valid UTF-8"
            ))
        })
}

/// Stands for an empty host while parsing (`.invalid` is reserved).
const NO_HOST: &str = "no-host.supabackup.invalid";

/// Where libpq looks for a local server's socket when no host is given.
const SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

impl ConnInfo {
    /// Parses `postgresql://user[:password]@host[:port][/db][?params]`.
    /// As in libpq, a missing host, port or user comes from `PGHOST`,
    /// `PGPORT` and `PGUSER` (then a local socket, 5432, the OS user).
    pub fn parse(input: &str) -> Result<Self> {
        Self::parse_with(input, &|k| {
            std::env::var(k).ok().filter(|v| !v.trim().is_empty())
        })
    }

    /// [`ConnInfo::parse`] with the environment given (for tests).
    pub fn parse_with(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let text = input.trim();
        let hint = "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (percent-encode special characters in the password, or pass it separately)";
        if !(text.starts_with("postgresql://") || text.starts_with("postgres://")) {
            return Err(Error::invalid(
                "the connection URL must start with postgresql:// or postgres://",
            )
            .with_hint(hint));
        }
        // A raw '#', '?' or '/' in the user or password would silently cut
        // the URL short; say so instead of reporting a confusing port error.
        let rest = &text[text.find("://").map_or(0, |i| i + 3)..];
        if let Some(at) = rest.rfind('@')
            && let Some(bad) = rest[..at].chars().find(|c| matches!(c, '#' | '?' | '/'))
        {
            let code = match bad {
                '#' => "%23",
                '?' => "%3F",
                _ => "%2F",
            };
            return Err(Error::invalid(format!(
                "the user or password in the connection URL contains '{bad}', which must be percent-encoded as {code}"
            ))
            .with_hint(hint));
        }
        // libpq accepts `postgresql://user@/db` (host from PGHOST or the
        // socket); the url crate wants a host after '@', so a reserved
        // stand-in marks "none given".
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let owned;
        let text = if rest[..authority_end].ends_with('@') {
            let cut = text.len() - rest.len() + authority_end;
            owned = format!("{}{NO_HOST}{}", &text[..cut], &text[cut..]);
            owned.as_str()
        } else {
            text
        };
        let url = url::Url::parse(text).map_err(|e| {
            Error::invalid(format!("the connection URL is malformed ({e})")).with_hint(hint)
        })?;
        if url.fragment().is_some() {
            return Err(Error::invalid(
                "the connection URL contains '#' (a password with '#' must be percent-encoded as %23)",
            )
            .with_hint(hint));
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let mut host = match url.host() {
            Some(url::Host::Domain(d)) => decode(d, "host")?,
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => String::new(),
        };
        if host == NO_HOST {
            host.clear();
        }
        if let Some(h) = param("host") {
            host = h;
        }
        if host.contains(',') {
            return Err(
                Error::invalid("the connection URL must name exactly one host").with_hint(hint),
            );
        }
        let port = match (url.port(), param("port").or_else(|| env("PGPORT"))) {
            (Some(p), _) => p,
            (None, Some(p)) => p.trim().parse().map_err(|_| {
                Error::invalid(format!("the port '{p}' (URL or PGPORT) is not a number"))
            })?,
            (None, None) => 5432,
        };
        if host.is_empty() {
            host = env("PGHOST").unwrap_or_else(|| {
                SOCKET_DIRS
                    .iter()
                    .find(|d| Path::new(d).join(format!(".s.PGSQL.{port}")).exists())
                    .map(|d| (*d).to_owned())
                    .unwrap_or_else(|| "localhost".to_owned())
            });
        }
        if host.contains(',') {
            return Err(Error::invalid("PGHOST must name exactly one host").with_hint(hint));
        }
        let mut user = decode(url.username(), "user name")?;
        if let Some(u) = param("user") {
            user = u;
        }
        if user.is_empty() {
            user = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
                .ok_or_else(|| {
                    Error::invalid("the connection URL has no user name").with_hint(hint)
                })?;
        }
        let password = match url.password() {
            None => None,
            Some(p) => {
                let p = decode(p, "password")?;
                if p == "[YOUR-PASSWORD]" || p == "YOUR-PASSWORD" {
                    return Err(Error::invalid(
                        "the connection URL still contains the [YOUR-PASSWORD] placeholder",
                    )
                    .with_hint("replace it with the database password, or leave it out and pass the password separately"));
                }
                if p.is_empty() {
                    None
                } else {
                    Some(Secret::new(p))
                }
            }
        };
        let dbname = {
            let path = url.path().trim_start_matches('/');
            if path.contains('/') {
                return Err(
                    Error::invalid("the database name in the connection URL contains '/'")
                        .with_hint(hint),
                );
            }
            let db = decode(path, "database name")?;
            if db.is_empty() {
                "postgres".to_owned()
            } else {
                db
            }
        };
        let mut info = ConnInfo {
            host,
            port,
            user,
            dbname,
            password,
            sslmode: SslMode::default(),
            sslrootcert: None,
            connect_timeout: None,
            application_name: None,
            channel_binding: None,
        };
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => info.sslmode = SslMode::parse(&v)?,
                "sslrootcert" => info.sslrootcert = Some(v.into_owned()),
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| {
                        Error::invalid(format!(
                            "connect_timeout must be a number of seconds, not '{v}'"
                        ))
                    })?;
                    info.connect_timeout = Some(secs);
                }
                "application_name" => info.application_name = Some(v.into_owned()),
                "host" | "port" | "user" => {}
                "channel_binding" => match v.as_ref() {
                    "disable" | "prefer" | "require" => info.channel_binding = Some(v.into_owned()),
                    other => {
                        return Err(Error::invalid(format!("unknown channel_binding '{other}'"))
                            .with_hint("use disable, prefer or require"));
                    }
                },
                k if IGNORED_PARAMS.contains(&k) => {}
                other => {
                    return Err(Error::invalid(format!(
                        "unsupported connection parameter '{other}' in the URL"
                    ))
                    .with_hint("supported: sslmode, sslrootcert, connect_timeout, application_name, channel_binding"));
                }
            }
        }
        Ok(info)
    }

    fn render(&self, password: Option<&str>) -> String {
        let host = if self.is_unix_socket() {
            utf8_percent_encode(&self.host, USERINFO).to_string()
        } else if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut out = format!("postgresql://{}", utf8_percent_encode(&self.user, USERINFO));
        if let Some(p) = password {
            out.push(':');
            out.push_str(p);
        }
        out.push_str(&format!(
            "@{host}:{}/{}",
            self.port,
            utf8_percent_encode(&self.dbname, USERINFO)
        ));
        let mut params = vec![("sslmode", self.sslmode.as_str().to_owned())];
        if let Some(v) = &self.sslrootcert {
            params.push(("sslrootcert", v.clone()));
        }
        if let Some(v) = self.connect_timeout {
            params.push(("connect_timeout", v.to_string()));
        }
        if let Some(v) = &self.application_name {
            params.push(("application_name", v.clone()));
        }
        if let Some(v) = &self.channel_binding {
            params.push(("channel_binding", v.clone()));
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect();
        out.push('?');
        out.push_str(&query.join("&"));
        out
    }

    /// The canonical URL without any password: what the catalog stores.
    pub fn url_without_password(&self) -> String {
        self.render(None)
    }

    /// The URL for display: a password, when known, shows as `****`.
    pub fn redacted(&self) -> String {
        self.render(self.password.as_ref().map(|_| "****"))
    }

    /// The full URL including the percent-encoded password. Only for handing
    /// to a trusted API in-process; never log, print or pass it in argv.
    pub fn url_with_password(&self) -> String {
        let encoded = self
            .password
            .as_ref()
            .map(|p| utf8_percent_encode(p.expose(), USERINFO).to_string());
        self.render(encoded.as_deref())
    }

    /// A local server's socket folder (`/var/run/postgresql`) rather than a
    /// network host: no TLS, no man in the middle.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// Supavisor's transaction mode (port 6543) breaks pg_dump.
    pub fn is_transaction_pooler(&self) -> bool {
        self.port == 6543
    }

    /// libpq environment variables for pg_dump/psql (the password is NOT
    /// included: it goes through a 0600 passfile or `PGPASSWORD` separately).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGSSLMODE", self.sslmode.as_str().to_owned()),
            // Avoids a known Supavisor error with GSS encryption negotiation.
            ("PGGSSENCMODE", "disable".to_owned()),
            (
                "PGAPPNAME",
                self.application_name
                    .clone()
                    .unwrap_or_else(|| "supabackup".into()),
            ),
        ];
        if let Some(v) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT", v.clone()));
        }
        if let Some(v) = self.connect_timeout {
            env.push(("PGCONNECT_TIMEOUT", v.to_string()));
        }
        if let Some(v) = &self.channel_binding {
            env.push(("PGCHANNELBINDING", v.clone()));
        }
        if !self.is_unix_socket() && !crate::engine::pg::tls::is_verified(self) {
            // libpq 16+: never send the password in clear text to a server
            // whose certificate was not verified (older libpq ignores it).
            env.push(("PGREQUIREAUTH", "!password".to_owned()));
        }
        env
    }

    /// `host:port/db` for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Redacts the password of a URL-looking string for display; a string that
/// does not parse is shown with everything between `://` and `@` masked.
pub fn redact_url(text: &str) -> String {
    if let Ok(info) = ConnInfo::parse(text) {
        return info.redacted();
    }
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}****{}", &text[..s + 3], &text[at..]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_supabase_url_and_strips_the_password() {
        let info = ConnInfo::parse(
            "postgresql://postgres.abcdefghijklmnopqrst:p%40ss%23w0rd@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
        )
        .expect("parse");
        assert_eq!(info.user, "postgres.abcdefghijklmnopqrst");
        assert_eq!(
            info.password.as_ref().map(|p| p.expose()),
            Some("p@ss#w0rd")
        );
        assert_eq!(info.host, "aws-0-eu-west-1.pooler.supabase.com");
        assert_eq!(info.port, 5432);
        assert_eq!(info.sslmode, SslMode::Require);
        let stored = info.url_without_password();
        assert!(
            !stored.contains("p%40ss") && !stored.contains("w0rd"),
            "{stored}"
        );
        assert_eq!(
            stored,
            "postgresql://postgres.abcdefghijklmnopqrst@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require"
        );
        assert!(info.redacted().contains(":****@"));
        // The full URL round-trips to the same password.
        let again = ConnInfo::parse(&info.url_with_password()).expect("reparse");
        assert_eq!(again, info);
    }

    #[test]
    fn defaults_ipv6_and_params() {
        let info = ConnInfo::parse("postgres://me@[::1]?sslmode=verify-full&connect_timeout=5")
            .expect("parse");
        assert_eq!(info.host, "::1");
        assert_eq!(info.port, 5432);
        assert_eq!(info.dbname, "postgres");
        assert_eq!(info.sslmode, SslMode::VerifyFull);
        assert_eq!(info.connect_timeout, Some(5));
        assert!(
            info.url_without_password()
                .starts_with("postgresql://me@[::1]:5432/postgres?")
        );
        assert!(
            ConnInfo::parse("postgresql://u@db.x.supabase.co:6543/postgres")
                .expect("parse")
                .is_transaction_pooler()
        );
    }

    #[test]
    fn rejects_bad_urls_with_reasons() {
        for (url, needle) in [
            ("mysql://u@h/db", "must start with postgresql://"),
            ("postgresql://h:5432/db", "no user name"),
            ("postgresql://u:pw@h:99999/db", "malformed"),
            ("postgresql://u:p#w@h/db", "'#'"),
            ("postgresql://u@h/db?sslmode=sometimes", "unknown sslmode"),
            (
                "postgresql://u@h/db?foo=bar",
                "unsupported connection parameter 'foo'",
            ),
            (
                "postgresql://u@h/db?connect_timeout=soon",
                "connect_timeout",
            ),
            ("postgresql://u:[YOUR-PASSWORD]@h/db", "placeholder"),
            ("postgresql://u@h1,h2/db", "exactly one host"),
        ] {
            let err = ConnInfo::parse_with(url, &|_| None).expect_err(url);
            assert!(err.message.contains(needle), "{url}: {err}");
            assert!(!err.message.contains("pw@"), "no password in errors: {err}");
        }
    }

    #[test]
    fn missing_parts_come_from_the_environment_as_in_libpq() {
        let env = |k: &str| match k {
            "PGHOST" => Some("db.internal".to_owned()),
            "PGPORT" => Some("6000".to_owned()),
            "PGUSER" => Some("backup".to_owned()),
            "USER" => Some("alice".to_owned()),
            _ => None,
        };
        let i = ConnInfo::parse_with("postgresql:///app", &env).expect("parse");
        assert_eq!(
            (i.host.as_str(), i.port, i.user.as_str()),
            ("db.internal", 6000, "backup")
        );
        assert_eq!(i.dbname, "app");
        // What the URL says wins.
        let i = ConnInfo::parse_with("postgresql://me@h:7000/app", &env).expect("parse");
        assert_eq!(
            (i.host.as_str(), i.port, i.user.as_str()),
            ("h", 7000, "me")
        );
        // Without PGUSER, the OS user; host and port as query parameters.
        let os = |k: &str| (k == "USER").then(|| "alice".to_owned());
        let i =
            ConnInfo::parse_with("postgresql:///app?host=/run/pg&port=5433", &os).expect("parse");
        assert_eq!(
            (i.host.as_str(), i.port, i.user.as_str()),
            ("/run/pg", 5433, "alice")
        );
        assert!(i.is_unix_socket());
        let stored = i.url_without_password();
        assert_eq!(
            stored,
            "postgresql://alice@%2Frun%2Fpg:5433/app?sslmode=require"
        );
        assert_eq!(ConnInfo::parse_with(&stored, &|_| None).expect("again"), i);
        assert!(
            ConnInfo::parse_with("postgresql:///x", &|k| (k == "PGPORT").then(|| "x".into()))
                .is_err()
        );
        // A user without a host, as libpq allows.
        let i = ConnInfo::parse_with("postgresql://bob:pw@/app", &env).expect("parse");
        assert_eq!((i.host.as_str(), i.user.as_str()), ("db.internal", "bob"));
        assert_eq!(
            i.password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn redacts_unparseable_strings() {
        assert_eq!(
            redact_url("postgresql://u:secret@h:1/db?x=y"),
            "postgresql://****@h:1/db?x=y"
        );
        assert_eq!(redact_url("nothing here"), "nothing here");
    }

    #[test]
    fn libpq_env_has_no_password() {
        let info = ConnInfo::parse("postgresql://u:topsecret@h:6000/d").expect("parse");
        let env = info.libpq_env();
        assert!(
            env.iter()
                .all(|(k, v)| *k != "PGPASSWORD" && !v.contains("topsecret"))
        );
        assert!(env.contains(&("PGPORT", "6000".into())));
        assert!(env.contains(&("PGSSLMODE", "require".into())));
    }
}
