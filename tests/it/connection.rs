//! The connection test against the TLS + SCRAM harness cluster.

use supabackup::engine::ErrorKind;

use crate::support::engine::{input, unlocked_engine};
use crate::support::pg::cluster;

#[tokio::test(flavor = "multi_thread")]
async fn passes_against_the_tls_cluster_with_a_full_report() {
    let c = cluster();
    let db = c.create_db("conn_ok");
    db.load_fixture();
    let t = unlocked_engine().await;
    let p = t
        .engine
        .add_project(input("Fixture", &db.url()))
        .await
        .expect("add");
    let r = t.engine.test_project(&p.name).await.expect("report");
    assert!(r.ok, "problems: {:?}", r.problems);
    assert!(r.tls, "the harness only accepts TLS");
    assert_eq!(r.server_major, c.server_major());
    assert!(r.database_size_bytes > 1_000_000);
    assert!(r.latency_ms >= 0.0 && r.connect_ms > 0.0);
    assert!(r.preflight.schemas.iter().any(|s| s == "public"));
    assert!(
        r.preflight.schemas.iter().any(|s| s == "auth"),
        "auth data is backed up"
    );
    assert!(
        !r.preflight.schemas.iter().any(|s| s == "vault"),
        "vault is platform-managed"
    );
    assert!(r.preflight.tables_checked > 5, "{:?}", r.preflight);
    assert!(r.preflight.sequences_checked > 0);
    assert!(r.preflight.roles_readable);
    let tool = r.pg_dump.as_ref().expect("a pg_dump matches");
    assert!(tool.version.starts_with(&c.server_major().to_string()));
    assert!(r.url.contains(":****@") && !r.url.contains(&c.password));
    // The outcome is kept as health history.
    let history = t.engine.health_history(&p.id, 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event_data["ok"], serde_json::json!(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_privileges_fails_the_preflight() {
    let c = cluster();
    let db = c.create_db("conn_priv");
    let role = format!("limited_{}", db.name);
    let roles = crate::support::pg::roles_lock();
    db.psql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'limited-pw';
         CREATE SCHEMA app; CREATE TABLE app.secret_stuff (id int); CREATE TABLE public.open_stuff (id int);
         GRANT USAGE ON SCHEMA app TO {role}; GRANT SELECT ON public.open_stuff TO {role};"
    ));
    drop(roles);
    let t = unlocked_engine().await;
    let url = c.url_for(&role, "limited-pw", &db.name);
    let p = t
        .engine
        .add_project(input("Limited", &url))
        .await
        .expect("add");
    let r = t.engine.test_project(&p.name).await.expect("report");
    assert!(!r.ok);
    assert!(
        r.preflight
            .denied
            .iter()
            .any(|d| d == "SELECT on table app.secret_stuff"),
        "{:?}",
        r.preflight.denied
    );
    assert!(!r.preflight.denied.iter().any(|d| d.contains("open_stuff")));
    assert!(
        r.problems[0].contains("lacks 1 privilege"),
        "{:?}",
        r.problems
    );
    let history = t.engine.health_history(&p.id, 10).await.expect("history");
    assert_eq!(history[0].event_data["ok"], serde_json::json!(false));
}

async fn failure(url: String, needle: &str) -> supabackup::engine::Error {
    let t = unlocked_engine().await;
    let p = t
        .engine
        .add_project(input("Broken", &url))
        .await
        .expect("add");
    let err = t.engine.test_project(&p.name).await.expect_err("must fail");
    assert_eq!(err.kind, ErrorKind::Connection, "{err}");
    assert!(
        err.message.contains(needle),
        "expected '{needle}' in: {err}"
    );
    let history = t.engine.health_history(&p.id, 10).await.expect("history");
    assert_eq!(
        history[0].event_data["ok"],
        serde_json::json!(false),
        "failures are recorded too"
    );
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_a_clear_error_without_the_password() {
    let c = cluster();
    let db = c.create_db("conn_pw");
    let err = failure(
        c.url_for("postgres", "Wr0ngPassw0rd", &db.name),
        "password authentication failed",
    )
    .await;
    assert!(!err.to_string().contains("Wr0ngPassw0rd"));
    assert!(err.hint.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_tls_is_refused() {
    let c = cluster();
    let db = c.create_db("conn_notls");
    let url = c
        .url(&db.name)
        .replace("sslmode=require", "sslmode=disable");
    let err = failure(url, "refused a connection without TLS").await;
    assert!(
        err.hint
            .as_deref()
            .unwrap_or("")
            .contains("sslmode=require")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_port_is_refused_quickly() {
    let c = cluster();
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let url = c
        .url("postgres")
        .replace(&format!(":{}/", c.port), &format!(":{port}/"));
    failure(url, "connection refused").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_database_is_named() {
    let c = cluster();
    failure(
        c.url("no_such_database_here"),
        "database 'no_such_database_here' does not exist",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_checks_the_certificate_name() {
    let c = cluster();
    let db = c.create_db("conn_verify");
    let t = unlocked_engine().await;
    let ca = c.ca_cert();
    // The harness certificate is issued for localhost and 127.0.0.1.
    let good = c.url(&db.name).replace(
        "sslmode=require",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let report = t
        .engine
        .test_url(&good, None)
        .await
        .expect("verify-full against the harness CA");
    assert!(report.tls);
    // A root store that does not hold the harness CA must fail verification.
    let other = tempfile::NamedTempFile::new().expect("tmp");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(other.path().with_extension("key"))
        .arg("-out")
        .arg(other.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let bad = c.url(&db.name).replace(
        "sslmode=require",
        &format!("sslmode=verify-full&sslrootcert={}", other.path().display()),
    );
    let err = t.engine.test_url(&bad, None).await.expect_err("unknown CA");
    assert!(err.message.contains("TLS"), "{err}");
    let _ = std::fs::remove_file(other.path().with_extension("key"));
}

/// ~/.pgpass is read in-process as libpq reads it (connection tests,
/// backups, the scratch server of restore tests), and PGHOST/PGPORT/PGUSER
/// fill what a URL leaves out.
#[test]
fn pgpass_and_libpq_environment_defaults() {
    use crate::support::engine::{cli, stderr, stdout};
    let c = cluster();
    let db = c.create_db("conn_pgpass");
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);");
    let data = tempfile::tempdir().expect("data");
    let home = tempfile::tempdir().expect("home");
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# the harness\nother.host:*:*:*:wrong\n127.0.0.1:{}:*:postgres:{}\n",
            c.port,
            c.password.replace('\\', "\\\\").replace(':', "\\:")
        ),
    )
    .expect("write pgpass");
    let chmod = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(0o600);
    let home_s = home.path().display().to_string();
    let pass = ("SUPABACKUP_PASSPHRASE", "cli master passphrase");
    let env = [pass, ("HOME", home_s.as_str())];
    let bare = format!(
        "postgresql://postgres@127.0.0.1:{}/{}?sslmode=require",
        c.port, db.name
    );
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "FromPgpass",
            "--ref",
            "pgpass",
            "--db-url",
            &bare,
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(data.path(), &["project", "test", "FromPgpass"], &env, None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("PASSED"));
    // pg_dump gets it too (through the engine's own passfile).
    let out = cli(
        data.path(),
        &["backup", "run", "FromPgpass", "--no-encrypt"],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    // The scratch server of a restore test, no password given.
    let scratch = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=require",
        c.port
    );
    let out = cli(
        data.path(),
        &["verify", &id, "--restore-test", "--scratch-url", &scratch],
        &env,
        None,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // A password file others can read is ignored, as libpq ignores it.
    chmod(0o644);
    let out = cli(data.path(), &["project", "test", "FromPgpass"], &env, None);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("group or world access"),
        "{}",
        stderr(&out)
    );
    chmod(0o600);

    // PGHOST, PGPORT and PGUSER fill a URL that names only the database.
    let port = c.port.to_string();
    let env_defaults = [
        pass,
        ("HOME", home_s.as_str()),
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
    ];
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "FromEnv",
            "--ref",
            "fromenv",
            "--db-url",
            &format!("postgresql:///{}?sslmode=require", db.name),
        ],
        &env_defaults,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(data.path(), &["project", "show", "FromEnv"], &env, None);
    assert!(
        stdout(&out).contains(&format!(
            "postgresql://postgres@127.0.0.1:{}/{}",
            c.port, db.name
        )),
        "{}",
        stdout(&out)
    );
    let out = cli(data.path(), &["project", "test", "FromEnv"], &env, None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// A local server's socket folder as the host (libpq's `host=/path`).
#[tokio::test(flavor = "multi_thread")]
async fn local_socket_connections() {
    let c = cluster();
    {
        let _roles = crate::support::pg::roles_lock();
        c.psql(
            "postgres",
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sb_socket') THEN
                 CREATE ROLE sb_socket LOGIN PASSWORD 'socket pw';
               END IF;
             END $$;",
        );
    }
    let t = unlocked_engine().await;
    let url = format!(
        "postgresql://sb_socket:socket%20pw@/postgres?host={}&port={}",
        c.dir.display(),
        c.port
    );
    let report = t
        .engine
        .test_url(&url, None)
        .await
        .expect("socket connection");
    assert!(!report.tls);
    assert_eq!(report.verification, "local socket (no network)");
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains("encrypted") || w.contains("verified")),
        "{:?}",
        report.warnings
    );
    assert!(report.url.contains("%2F"), "{}", report.url);
    // The same socket with a wrong password: the server's own answer.
    let bad = url.replace("socket%20pw", "nope");
    let err = t
        .engine
        .test_url(&bad, None)
        .await
        .expect_err("wrong password");
    assert!(err.message.to_lowercase().contains("password"), "{err}");
}
