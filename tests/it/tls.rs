//! Verified TLS: a project's CA certificate makes connections verify the
//! server (in-process and for libpq tools), `~/.postgresql/root.crt` turns
//! `require` into `verify-ca` as in libpq, and a password is never sent in
//! clear text to a server whose certificate was not verified.
//!
//! The harness's pg_hba.conf asks the role `sb_cleartext` for its password
//! in clear text (method `password`).

use supabackup::engine::ProjectPatch;
use supabackup::engine::backup::BackupOptions;
use supabackup::engine::conninfo::ConnInfo;
use supabackup::engine::project::{self, ProjectInput};

use crate::backup::backup;
use crate::support::engine::{cli, input, stderr, stdout, unlocked_engine};
use crate::support::pg::{TestDb, cluster, roles_lock};

const CLEAR_USER: &str = "sb_cleartext";
const CLEAR_PASS: &str = "clear text pw";

/// A database the cleartext role owns.
fn cleartext_db(prefix: &str) -> TestDb {
    let c = cluster();
    {
        let _roles = roles_lock();
        c.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{CLEAR_USER}') THEN
                     CREATE ROLE {CLEAR_USER} LOGIN PASSWORD '{CLEAR_PASS}';
                   END IF;
                 END $$;"
            ),
        );
    }
    let db = c.create_db(prefix);
    c.psql(
        &db.name,
        &format!(
            "ALTER DATABASE \"{}\" OWNER TO {CLEAR_USER};
             ALTER SCHEMA public OWNER TO {CLEAR_USER};
             SET ROLE {CLEAR_USER};
             CREATE TABLE public.t (id int PRIMARY KEY, v text);
             INSERT INTO public.t VALUES (1, 'one'), (2, 'two');",
            db.name
        ),
    );
    db
}

fn cleartext_url(db: &TestDb) -> String {
    cluster().url_for(CLEAR_USER, CLEAR_PASS, &db.name)
}

fn other_ca() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let crt = dir.path().join("other.crt");
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
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&crt)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (dir, crt)
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_passwords_go_only_to_verified_servers() {
    let c = cluster();
    let db = cleartext_db("tls_clear");
    let t = unlocked_engine().await;

    // sslmode=require: encrypted, not verified — the password is withheld.
    let err = t
        .engine
        .test_url(&cleartext_url(&db), None)
        .await
        .expect_err("cleartext over unverified TLS");
    assert!(err.message.contains("clear text"), "{err}");
    assert!(
        err.hint.as_deref().is_some_and(|h| h.contains("--ca-file")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(CLEAR_PASS));

    // The same server with the project's CA: verified, so the password goes.
    let pem = project::read_ca_file(&c.ca_cert()).expect("harness CA reads");
    let p = t
        .engine
        .add_project(ProjectInput {
            ca_cert: Some(pem.clone()),
            ..input("Verified", &cleartext_url(&db))
        })
        .await
        .expect("add with CA");
    assert!(p.tls_verification().0);
    let report = t.engine.test_project("Verified").await.expect("test");
    assert!(report.ok, "{report:?}");
    assert!(report.tls && report.tls_verified, "{report:?}");
    assert_eq!(
        report.verification,
        "TLS verified (certificate and host name)"
    );
    assert!(
        !report.warnings.iter().any(|w| w.contains("NOT verified")),
        "{:?}",
        report.warnings
    );
    // pg_dump and psql (libpq) verify too and send the password: a backup
    // through the real tools completes.
    let b = backup(
        &t.engine,
        "Verified",
        BackupOptions {
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(b.status, "completed");

    // Without the CA the project is unverified again, and refused.
    let p = t
        .engine
        .edit_project(
            "Verified",
            ProjectPatch {
                ca_cert: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .expect("remove CA");
    assert!(p.ca_cert.is_none() && !p.tls_verification().0);
    let err = t
        .engine
        .test_project("Verified")
        .await
        .expect_err("refused without the CA");
    assert!(err.message.contains("clear text"), "{err}");

    // A certificate of another CA fails verification before any password.
    let (_keep, other) = other_ca();
    let pem = project::read_ca_file(&other).expect("other CA reads");
    t.engine
        .edit_project(
            "Verified",
            ProjectPatch {
                ca_cert: Some(pem),
                ..Default::default()
            },
        )
        .await
        .expect("set the wrong CA");
    let err = t
        .engine
        .test_project("Verified")
        .await
        .expect_err("wrong CA");
    assert!(err.message.contains("TLS"), "{err}");
}

#[test]
fn libpq_tools_refuse_cleartext_to_an_unverified_server() {
    let c = cluster();
    let db = cleartext_db("tls_libpq");
    let info = ConnInfo::parse(&cleartext_url(&db)).expect("url");
    let env = info.libpq_env();
    assert!(
        env.contains(&("PGREQUIREAUTH", "!password".to_owned())),
        "{env:?}"
    );
    let run = |env: &[(&str, String)]| {
        let mut cmd = std::process::Command::new(c.bin("psql"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PGPASSWORD", CLEAR_PASS)
            .args(["-X", "-At", "-c", "SELECT count(*) FROM public.t"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("psql")
    };
    let out = run(&env);
    if supabackup::engine::pg::tools::libpq_can_refuse_cleartext(&c.bin("psql")) {
        assert!(!out.status.success(), "psql sent a cleartext password");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("password"), "{err}");
    } else {
        // libpq before 16 cannot refuse: it connects, and the connection
        // test says so (see `old_libpq_is_reported`).
        assert!(out.status.success());
    }
    // Verified (the harness CA, verify-full): the same tool connects.
    let mut info = info;
    supabackup::engine::pg::tls::use_project_ca(&mut info, c.ca_cert().display().to_string());
    let env = info.libpq_env();
    assert!(!env.iter().any(|(k, _)| *k == "PGREQUIREAUTH"), "{env:?}");
    assert!(env.contains(&("PGSSLMODE", "verify-full".to_owned())));
    let out = run(&env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn old_libpq_is_reported() {
    let c = cluster();
    let db = c.create_db("tls_old_libpq");
    let t = unlocked_engine().await;
    let report = t.engine.test_url(&db.url(), None).await.expect("test");
    let tool = report.pg_dump.as_ref().expect("a pg_dump");
    let warned = report
        .warnings
        .iter()
        .any(|w| w.contains("libpq is older than 16"));
    let new_libpq =
        supabackup::engine::pg::tools::libpq_can_refuse_cleartext(std::path::Path::new(&tool.path));
    assert_eq!(warned, !new_libpq, "{:?}", report.warnings);
    assert!(
        report.warnings.iter().any(|w| w.contains("NOT verified")),
        "{:?}",
        report.warnings
    );
    // A verified connection has nothing to warn about.
    let verified = db.url().replace(
        "sslmode=require",
        &format!("sslmode=verify-full&sslrootcert={}", c.ca_cert().display()),
    );
    let report = t.engine.test_url(&verified, None).await.expect("test");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn cli_ca_file_and_the_home_root_certificate() {
    let c = cluster();
    let db = c.create_db("tls_cli");
    let data = tempfile::tempdir().expect("data");
    let pass = ("SUPABACKUP_PASSPHRASE", "cli master passphrase");
    let home = tempfile::tempdir().expect("home");
    let home_s = home.path().display().to_string();
    let env = [pass, ("HOME", home_s.as_str())];
    let ca = c.ca_cert().display().to_string();

    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "Plain",
            "--ref",
            "plain",
            "--db-url",
            &db.url(),
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "WithCa",
            "--ref",
            "withca",
            "--db-url",
            &db.url(),
            "--ca-file",
            &ca,
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = cli(data.path(), &["project", "test", "Plain"], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("encrypted, server NOT verified"),
        "{}",
        stdout(&out)
    );
    let out = cli(data.path(), &["project", "test", "WithCa"], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("TLS verified (certificate and host name)"),
        "{}",
        stdout(&out)
    );
    let out = cli(data.path(), &["project", "list"], &env, None);
    let listed = stdout(&out);
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{listed}"))
            .to_owned()
    };
    assert!(line("Plain").contains("NOT verified"), "{listed}");
    assert!(!line("WithCa").contains("NOT verified"), "{listed}");

    // libpq's rule: a ~/.postgresql/root.crt makes `require` verify the chain.
    std::fs::create_dir_all(home.path().join(".postgresql")).expect("mkdir");
    std::fs::copy(c.ca_cert(), home.path().join(".postgresql/root.crt")).expect("copy");
    let out = cli(data.path(), &["project", "test", "Plain"], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("TLS verified (certificate chain"),
        "{}",
        stdout(&out)
    );
    // ... and a root.crt of another CA fails, as it does in psql.
    let (_keep, other) = other_ca();
    std::fs::copy(&other, home.path().join(".postgresql/root.crt")).expect("copy");
    let out = cli(data.path(), &["project", "test", "Plain"], &env, None);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));

    // A file that is no certificate is refused with a clear error.
    let junk = home.path().join("junk.crt");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let out = cli(
        data.path(),
        &[
            "project",
            "edit",
            "Plain",
            "--ca-file",
            &junk.display().to_string(),
        ],
        &env,
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no certificate found"),
        "{}",
        stderr(&out)
    );
    // --no-ca removes a stored one.
    let out = cli(
        data.path(),
        &["project", "edit", "WithCa", "--no-ca", "--json"],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["ca_cert"].is_null(), "{v}");
}
