//! The connection test: reach the server, measure it, and check that the
//! role can read everything a backup needs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, Result};
use crate::engine::pg::{connect, tools};
use crate::engine::supabase;

/// Objects a backup reads, checked for privileges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    /// Schemas whose data a full backup reads.
    pub schemas: Vec<String>,
    pub tables_checked: usize,
    pub sequences_checked: usize,
    /// What the role cannot read, e.g. `SELECT on table app.audit`.
    pub denied: Vec<String>,
    /// Roles can be listed (`pg_dumpall --roles-only --no-role-passwords`).
    pub roles_readable: bool,
    /// Role password hashes are readable (superuser); informational.
    pub role_passwords_readable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolMatch {
    pub path: String,
    pub version: String,
}

/// The full report of a connection test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionReport {
    /// True when the connection, the pre-flight and the tool match all pass.
    pub ok: bool,
    pub url: String,
    pub server_version: String,
    pub server_major: u32,
    pub database_size_bytes: i64,
    pub connect_ms: f64,
    pub latency_ms: f64,
    pub tls: bool,
    pub tls_version: Option<String>,
    /// Whether the server's certificate was verified (verify-ca/-full).
    #[serde(default)]
    pub tls_verified: bool,
    /// "TLS verified …" or "encrypted, server NOT verified", for people.
    #[serde(default)]
    pub verification: String,
    pub current_user: String,
    pub superuser: bool,
    pub preflight: Preflight,
    pub pg_dump: Option<ToolMatch>,
    /// Why the report is not ok, one sentence each.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

fn query_error(what: &str, e: tokio_postgres::Error) -> Error {
    let detail = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string());
    Error::connection(format!("the connection test could not {what}: {detail}"))
}

/// Runs the connection test against `info` (which carries the password).
pub async fn test_connection(
    info: &ConnInfo,
    pg_bin_dir: Option<&Path>,
) -> Result<ConnectionReport> {
    let started = Instant::now();
    let client = connect::connect(info, None).await?;
    let connect_ms = ms(started.elapsed());

    let mut samples = Vec::with_capacity(5);
    for _ in 0..5 {
        let t = Instant::now();
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| query_error("run a query", e))?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let latency_ms = ms(samples[samples.len() / 2]);

    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    pg_database_size(current_database()), current_user::text,
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                    COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                    (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
            &[],
        )
        .await
        .map_err(|e| query_error("read the server's version and size", e))?;
    let server_version: String = row.get(0);
    let version_num: i32 = row.get(1);
    let server_major = (version_num / 10000) as u32;

    let preflight = preflight(&client).await?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if !preflight.denied.is_empty() {
        let shown: Vec<&str> = preflight
            .denied
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        let more = preflight.denied.len().saturating_sub(shown.len());
        problems.push(format!(
            "the role '{}' lacks {} privilege(s) a backup needs: {}{}",
            info.user,
            preflight.denied.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if !preflight.roles_readable {
        problems.push(
            "roles cannot be listed, so a roles dump (pg_dumpall --roles-only) would fail".into(),
        );
    }
    let pg_dump = match tokio::task::spawn_blocking({
        let dir = pg_bin_dir.map(Path::to_path_buf);
        move || tools::find_for_server("pg_dump", server_major, dir.as_deref())
    })
    .await
    .map_err(|e| Error::internal(format!("tool lookup failed: {e}")))?
    {
        Ok(t) => Some(ToolMatch {
            path: t.path.display().to_string(),
            version: t.version,
        }),
        Err(e) => {
            problems.push(match e.hint {
                Some(h) => format!("{} — {h}", e.message),
                None => e.message,
            });
            None
        }
    };
    if info.is_transaction_pooler() {
        warnings.push(
            "port 6543 is Supavisor's transaction mode, which breaks pg_dump; use the direct connection or the session pooler on port 5432".into(),
        );
    }
    let tls: bool = row.get(5);
    let local = info.is_unix_socket();
    let tls_verified = tls && super::tls::is_verified(info);
    let old_libpq = match (&pg_dump, tls_verified || local) {
        (Some(t), false) => {
            let path = std::path::PathBuf::from(&t.path);
            !tokio::task::spawn_blocking(move || tools::libpq_can_refuse_cleartext(&path))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    if old_libpq {
        warnings.push(
            "this machine's libpq is older than 16, so pg_dump and psql cannot refuse to send the password in clear text to an unverified server (supabackup's own connections do refuse): add the CA certificate, or install libpq 16 or later".into(),
        );
    }
    if local {
        // A local socket never leaves the machine.
    } else if !tls {
        warnings.push("the connection is not encrypted (sslmode allows plain TCP)".into());
    } else if !tls_verified {
        warnings.push(
            "encrypted, but the server's certificate is NOT verified: add the project's CA certificate (Supabase: Database Settings → SSL Configuration) so a man in the middle cannot pose as the server".into(),
        );
    }
    if latency_ms > 200.0 {
        warnings.push(format!(
            "high latency ({latency_ms} ms): backups of many small tables will be slow"
        ));
    }
    Ok(ConnectionReport {
        ok: problems.is_empty(),
        url: info.redacted(),
        server_version,
        server_major,
        database_size_bytes: row.get(2),
        connect_ms,
        latency_ms,
        tls,
        tls_version: row.get(6),
        tls_verified,
        verification: if tls || local {
            super::tls::describe_verification(info).to_owned()
        } else {
            "not encrypted".to_owned()
        },
        current_user: row.get(3),
        superuser: row.get::<_, Option<bool>>(4).unwrap_or(false),
        preflight,
        pg_dump,
        problems,
        warnings,
    })
}

async fn preflight(client: &Client) -> Result<Preflight> {
    let schemas: Vec<(String, bool)> = client
        .query(
            "SELECT nspname::text, has_schema_privilege(oid, 'USAGE') FROM pg_namespace ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_error("list schemas", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(n, _): &(String, bool)| supabase::data_dump_covers(n))
        .collect();
    let mut out = Preflight::default();
    for (name, usage) in &schemas {
        out.schemas.push(name.clone());
        if !usage {
            out.denied.push(format!("USAGE on schema {name}"));
        }
    }
    let names: Vec<String> = schemas.iter().map(|(n, _)| n.clone()).collect();
    let rels = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text, has_table_privilege(c.oid, 'SELECT')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm', 'S') AND n.nspname = ANY($1)
             ORDER BY 1, 2",
            &[&names],
        )
        .await
        .map_err(|e| query_error("list tables", e))?;
    for r in rels {
        let (schema, rel, kind, ok): (String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let what = match kind.as_str() {
            "S" => {
                out.sequences_checked += 1;
                "sequence"
            }
            "m" => {
                out.tables_checked += 1;
                "materialized view"
            }
            _ => {
                out.tables_checked += 1;
                "table"
            }
        };
        if !ok {
            out.denied.push(format!("SELECT on {what} {schema}.{rel}"));
        }
    }
    let roles = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_roles) >= 0,
                    has_table_privilege('pg_catalog.pg_authid', 'SELECT')",
            &[],
        )
        .await;
    match roles {
        Ok(r) => {
            out.roles_readable = r.get(0);
            out.role_passwords_readable = r.get(1);
        }
        Err(_) => out.roles_readable = false,
    }
    Ok(out)
}
