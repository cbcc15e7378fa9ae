//! Opening a tokio-postgres connection from a [`ConnInfo`], with a timeout
//! and errors turned into one clear sentence (never containing a password).

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::engine::conninfo::{ConnInfo, SslMode};
use crate::engine::error::{Error, Result};
use crate::engine::pg::authguard::{AuthGuard, GuardedTls, REFUSAL};
use crate::engine::pg::tls;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn config(info: &ConnInfo, timeout: Duration) -> tokio_postgres::Config {
    use tokio_postgres::config::{ChannelBinding, SslMode as TpSsl};
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&info.host)
        .port(info.port)
        .user(&info.user)
        .dbname(&info.dbname)
        .application_name(info.application_name.as_deref().unwrap_or("supabackup"))
        .connect_timeout(timeout);
    if let Some(p) = &info.password {
        cfg.password(p.expose());
    }
    cfg.ssl_mode(match info.sslmode {
        SslMode::Disable => TpSsl::Disable,
        SslMode::Allow | SslMode::Prefer => TpSsl::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => TpSsl::Require,
    });
    match info.channel_binding.as_deref() {
        Some("disable") => {
            cfg.channel_binding(ChannelBinding::Disable);
        }
        Some("require") => {
            cfg.channel_binding(ChannelBinding::Require);
        }
        _ => {}
    }
    cfg
}

/// A connection without TLS, its start-up checked by the guard.
async fn connect_plain(
    info: &ConnInfo,
    cfg: &tokio_postgres::Config,
) -> Result<std::result::Result<Client, tokio_postgres::Error>> {
    let mut cfg = cfg.clone();
    cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let socket = tokio::net::TcpStream::connect((info.host.as_str(), info.port))
        .await
        .map_err(|e| {
            let e = Error::connection(format!(
                "could not connect to {}:{}: {e}",
                info.host, info.port
            ));
            e.with_hint("check the host and port; is the database running and reachable from here?")
        })?;
    let _ = socket.set_nodelay(true);
    Ok(
        match cfg
            .connect_raw(AuthGuard::new(socket, true), tokio_postgres::NoTls)
            .await
        {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("database connection ended: {e}");
                    }
                });
                Ok(client)
            }
            Err(e) => Err(e),
        },
    )
}

/// A connection to a local server's socket: no TLS (libpq ignores sslmode
/// there too) and nobody in the middle, so the guard stays off.
#[cfg(unix)]
async fn connect_unix(
    info: &ConnInfo,
    cfg: &tokio_postgres::Config,
) -> Result<std::result::Result<Client, tokio_postgres::Error>> {
    let path = format!("{}/.s.PGSQL.{}", info.host.trim_end_matches('/'), info.port);
    let socket = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        Error::connection(format!("could not connect to the local socket {path}: {e}"))
            .with_hint("is PostgreSQL running on this machine, with that socket folder and port?")
    })?;
    let mut cfg = cfg.clone();
    cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    Ok(
        match cfg
            .connect_raw(AuthGuard::new(socket, false), tokio_postgres::NoTls)
            .await
        {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("database connection ended: {e}");
                    }
                });
                Ok(client)
            }
            Err(e) => Err(e),
        },
    )
}

#[cfg(not(unix))]
async fn connect_unix(
    _info: &ConnInfo,
    _cfg: &tokio_postgres::Config,
) -> Result<std::result::Result<Client, tokio_postgres::Error>> {
    Err(Error::invalid(
        "local socket connections need a Unix system",
    ))
}

/// Connects over TLS (guarded when the server is not verified).
async fn connect_tls(
    info: &ConnInfo,
    cfg: &tokio_postgres::Config,
) -> Result<std::result::Result<Client, tokio_postgres::Error>> {
    let tls = GuardedTls {
        inner: tls::connector(info)?,
        armed: !tls::is_verified(info),
    };
    Ok(match cfg.connect(tls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("database connection ended: {e}");
                }
            });
            Ok(client)
        }
        Err(e) => Err(e),
    })
}

/// Connects, spawning the connection's I/O task on the current runtime.
/// A request for the password in clear text is refused unless the
/// server's certificate was verified (`authguard.rs`).
pub async fn connect(info: &ConnInfo, timeout: Option<Duration>) -> Result<Client> {
    let timeout = timeout
        .or(info.connect_timeout.map(Duration::from_secs))
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let cfg = config(info, timeout);
    let attempt = async {
        match info.sslmode {
            _ if info.is_unix_socket() => connect_unix(info, &cfg).await,
            SslMode::Disable => connect_plain(info, &cfg).await,
            SslMode::Allow | SslMode::Prefer => {
                // TLS first; a server without it gets a plain connection.
                let mut tls_cfg = cfg.clone();
                tls_cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                match connect_tls(info, &tls_cfg).await? {
                    Err(e)
                        if chain(&e)
                            .to_ascii_lowercase()
                            .contains("server does not support tls") =>
                    {
                        connect_plain(info, &cfg).await
                    }
                    other => Ok(other),
                }
            }
            _ => connect_tls(info, &cfg).await,
        }
    };
    // The outer timeout also covers TLS and authentication, not just TCP.
    match tokio::time::timeout(timeout + Duration::from_secs(1), attempt).await {
        Err(_) => Err(Error::connection(format!(
            "could not connect to {}: timed out after {} s",
            info.endpoint(),
            timeout.as_secs()
        ))
        .with_hint("check the host and port, your network, and that the database accepts connections from this machine")),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Err(e))) => Err(describe(info, &e)),
        Ok(Ok(Ok(client))) => Ok(client),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Turns a tokio-postgres error from connecting into a readable error.
/// Connections the server can still accept from ordinary roles (its
/// `max_connections` less the reserved ones and the client backends now
/// open); `None` when the role may not read it.
pub async fn free_connections(client: &Client) -> Option<i64> {
    client
        .query_one(
            "SELECT current_setting('max_connections')::int8
                    - current_setting('superuser_reserved_connections')::int8
                    - COALESCE(current_setting('reserved_connections', true), '0')::int8
                    - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
            &[],
        )
        .await
        .ok()
        .map(|r| r.get::<_, i64>(0))
}

pub fn describe(info: &ConnInfo, e: &tokio_postgres::Error) -> Error {
    let endpoint = info.endpoint();
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD {
            return Error::connection(format!(
                "password authentication failed for user '{}' at {endpoint}",
                info.user
            ))
            .with_hint("check the database password (Supabase: Project Settings → Database → Reset database password)");
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::connection(format!(
                "database '{}' does not exist on {}:{}",
                info.dbname, info.host, info.port
            ))
            .with_hint("Supabase projects use the database 'postgres'");
        }
        if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            let text = db.message();
            if text.contains("no encryption") || info.sslmode == SslMode::Disable {
                return Error::connection(format!(
                    "the server at {endpoint} refused a connection without TLS ({text})"
                ))
                .with_hint("use sslmode=require (the default) in the connection URL");
            }
            return Error::connection(format!(
                "the server at {endpoint} refused the connection: {text}"
            ));
        }
        if *code == SqlState::TOO_MANY_CONNECTIONS {
            return Error::connection(format!("the server at {endpoint} has too many connections"))
                .with_hint("try again later, or use the session pooler");
        }
        return Error::connection(format!(
            "the server at {endpoint} refused the connection: {} ({})",
            db.message(),
            code.code()
        ));
    }
    let text = chain(e);
    let lower = text.to_ascii_lowercase();
    if text.contains(REFUSAL) {
        return Error::connection(format!(
            "the server at {endpoint} asked for the password in clear text over a connection whose certificate is not verified: not sent"
        ))
        .with_hint("a man in the middle could read it: give the project its CA certificate (project edit --ca-file, Supabase: Database Settings → SSL), or use sslmode=verify-full with sslrootcert");
    }
    if lower.contains("server does not support tls") {
        return Error::connection(format!("the server at {endpoint} does not support TLS"))
            .with_hint("Supabase always does; for a local server without TLS add sslmode=disable to the URL");
    }
    if lower.contains("tls handshake") || lower.contains("certificate") {
        return Error::connection(format!("TLS with {endpoint} failed: {text}")).with_hint(
            "for verify-ca/verify-full, point sslrootcert at the server's CA certificate",
        );
    }
    if lower.contains("password missing")
        || lower.contains("authentication") && info.password.is_none()
    {
        return Error::connection(format!(
            "the server at {endpoint} asks for a password and none is stored"
        ))
        .with_hint("edit the project and set its database password");
    }
    if lower.contains("connection refused") {
        return Error::connection(format!(
            "could not connect to {}:{}: connection refused",
            info.host, info.port
        ))
        .with_hint("check the host and port; is the database running and reachable from here?");
    }
    if lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no address")
    {
        return Error::connection(format!("could not resolve the host '{}'", info.host))
            .with_hint("check the host name; direct db.<ref>.supabase.co hosts are IPv6-only unless you bought the IPv4 add-on — the session pooler host works over IPv4");
    }
    if lower.contains("timeout") || lower.contains("timed out") {
        return Error::connection(format!("could not connect to {endpoint}: timed out"));
    }
    Error::connection(format!("could not connect to {endpoint}: {text}"))
}
