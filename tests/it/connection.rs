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
