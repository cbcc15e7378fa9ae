//! Opening a tokio-postgres connection from a [`ConnInfo`], with a timeout
//! and errors turned into one clear sentence (never containing a password).

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::engine::conninfo::{ConnInfo, SslMode};
use crate::engine::error::{Error, Result};
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

/// Connects, spawning the connection's I/O task on the current runtime.
pub async fn connect(info: &ConnInfo, timeout: Option<Duration>) -> Result<Client> {
    let timeout = timeout
        .or(info.connect_timeout.map(Duration::from_secs))
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let tls = tls::connector(info)?;
    let cfg = config(info, timeout);
    // The outer timeout also covers TLS and authentication, not just TCP.
    let attempt = tokio::time::timeout(timeout + Duration::from_secs(1), cfg.connect(tls)).await;
    let (client, connection) = match attempt {
        Err(_) => {
            return Err(Error::connection(format!(
                "could not connect to {}: timed out after {} s",
                info.endpoint(),
                timeout.as_secs()
            ))
            .with_hint("check the host and port, your network, and that the database accepts connections from this machine"));
        }
        Ok(Err(e)) => return Err(describe(info, &e)),
        Ok(Ok(pair)) => pair,
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("database connection ended: {e}");
        }
    });
    Ok(client)
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
