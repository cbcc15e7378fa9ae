//! Tests of the test harness itself: the throw-away cluster must behave like a
//! hosted Supabase database (TLS + SCRAM only) and the fixture must load.

use crate::support::pg::{self, cluster};

#[test]
fn cluster_requires_tls_and_scram() {
    let c = cluster();

    // Our own connections really are encrypted.
    assert_eq!(
        c.psql(
            "postgres",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ),
        "t"
    );
    // Passwords are stored as SCRAM verifiers.
    assert_eq!(
        c.psql(
            "postgres",
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'"
        ),
        "t"
    );
    assert_eq!(
        c.psql("postgres", "SHOW password_encryption"),
        "scram-sha-256"
    );
    assert_eq!(c.psql("postgres", "SHOW max_connections"), "200");
    assert_eq!(c.psql("postgres", "SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(c.psql("postgres", "SHOW server_encoding"), "UTF8");
    // pg_hba: TLS + SCRAM for everyone, plus two test roles of their own
    // (the local socket, and a server asking for a clear-text password).
    assert_eq!(
        c.psql(
            "postgres",
            "SELECT string_agg(type || ' ' || array_to_string(user_name, '+') || ' ' || auth_method, ',' ORDER BY line_number) \
             FROM pg_hba_file_rules"
        ),
        "local sb_socket scram-sha-256,hostssl sb_cleartext password,\
         hostssl all scram-sha-256,hostssl all scram-sha-256"
    );
}

#[test]
fn client_without_tls_is_refused() {
    let c = cluster();
    let out = c
        .psql_cmd("postgres")
        .env("PGSSLMODE", "disable")
        .args(["-At", "-c", "SELECT 1"])
        .output()
        .expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "non-TLS connection was accepted");
    assert!(
        stderr.contains("no encryption") || stderr.contains("pg_hba.conf"),
        "unexpected error for a non-TLS client: {stderr}"
    );
}

#[test]
fn wrong_password_is_refused() {
    let c = cluster();
    let out = c
        .psql_cmd("postgres")
        .env("PGPASSWORD", format!("{}x", c.password))
        .args(["-At", "-c", "SELECT 1"])
        .output()
        .expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wrong password was accepted");
    assert!(
        stderr.contains("password authentication failed"),
        "unexpected error for a wrong password: {stderr}"
    );

    // ... and no password at all is refused too (no trust/peer fallback).
    let out = c
        .psql_cmd("postgres")
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null")
        .args(["-w", "-At", "-c", "SELECT 1"])
        .output()
        .expect("run psql");
    assert!(
        !out.status.success(),
        "connection without password was accepted"
    );
}

#[test]
fn other_roles_can_log_in_and_urls_are_encoded() {
    let c = cluster();
    let db = c.create_db("harness_roles");
    let role = format!("{}_r", db.name);
    let password = "p@ss:/w?rd #1";
    {
        let _roles = crate::support::pg::roles_lock();
        db.psql(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'; \
             GRANT CONNECT ON DATABASE \"{}\" TO \"{role}\";",
            db.name
        ));
    }
    let out = c
        .psql_cmd(&db.name)
        .env("PGUSER", &role)
        .env("PGPASSWORD", password)
        .args(["-At", "-c", "SELECT current_user"])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "login as {role} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), role);

    let u = url::Url::parse(&c.url_for(&role, password, &db.name)).expect("valid url");
    assert_eq!(u.scheme(), "postgresql");
    assert_eq!(u.host_str(), Some("127.0.0.1"));
    assert_eq!(u.port(), Some(c.port));
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .expect("decodable")
    };
    assert_eq!(decode(u.username()), role);
    assert_eq!(decode(u.password().expect("password")), password);
    assert_eq!(u.path(), format!("/{}", db.name));
    assert_eq!(u.query(), Some("sslmode=require"));

    assert_eq!(
        db.url(),
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{}?sslmode=require",
            c.password, c.port, db.name
        )
    );
}

#[test]
fn databases_are_unique_and_server_major_matches() {
    let c = cluster();
    let a = c.create_db("Harness-Unique");
    let b = c.create_db("Harness-Unique");
    assert_ne!(a.name, b.name);
    for db in [&a, &b] {
        assert!(db.name.starts_with("harness_unique_"), "{}", db.name);
        assert!(
            db.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
            "{}",
            db.name
        );
        assert_eq!(db.psql("SELECT current_database()"), db.name);
    }
    let long = c.create_db(&"x".repeat(100));
    assert!(long.name.len() <= 63);
    assert_eq!(long.psql("SELECT current_database()"), long.name);

    let num: u32 = c
        .psql("postgres", "SHOW server_version_num")
        .parse()
        .expect("number");
    assert_eq!(c.server_major(), num / 10_000);
    assert!(c.server_major() >= 15);
    assert!(c.bin_dir.join("pg_dump").is_file());
    assert!(
        c.try_psql("postgres", "SELECT * FROM no_such_table")
            .is_err()
    );
}

#[test]
fn fixture_loads_full_application() {
    let db = cluster().create_db("harness_fixture");
    db.load_fixture();
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_namespace WHERE nspname IN ('auth', 'storage')"),
        "2"
    );
    assert_eq!(
        db.psql(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('billing', 'supabase_migrations')"
        ),
        "2"
    );
    assert_eq!(
        db.psql("SELECT to_regclass('public.profiles') IS NOT NULL"),
        "t"
    );
    assert_ne!(db.psql("SELECT count(*) FROM public.products"), "0");
    assert_ne!(
        db.psql("SELECT count(*) FROM supabase_migrations.schema_migrations"),
        "0"
    );
}

#[test]
fn fixture_platform_only_has_no_application() {
    let db = cluster().create_db("harness_platform");
    db.load_platform_only();
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_namespace WHERE nspname IN ('auth', 'storage')"),
        "2"
    );
    assert_eq!(
        db.psql(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('billing', 'supabase_migrations')"
        ),
        "0"
    );
    assert_eq!(
        db.psql("SELECT to_regclass('public.profiles') IS NULL"),
        "t"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
}

#[test]
fn fixture_loads_concurrently() {
    // Several loads at once (they race on the cluster-wide CREATE ROLE
    // statements unless the harness serializes them).
    let c = cluster();
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let db = c.create_db("harness_concurrent");
                if i % 2 == 0 {
                    db.load_fixture();
                } else {
                    db.load_platform_only();
                }
                db.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'auth'")
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("load thread panicked"), "1");
    }
    assert!(pg::fixture_path().is_file());
}

#[test]
fn server_certificate_verifies_against_ca_cert() {
    let c = cluster();
    assert!(c.ca_cert().is_file());
    for host in ["127.0.0.1", "localhost"] {
        let out = c
            .psql_cmd("postgres")
            .env("PGHOST", host)
            .env("PGSSLMODE", "verify-full")
            .args(["-At", "-c", "SELECT 1"])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "verify-full against {host} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The certificate is self-signed: a public CA bundle must not accept it.
    let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.is_file() {
        let out = c
            .psql_cmd("postgres")
            .env("PGSSLMODE", "verify-ca")
            .env("PGSSLROOTCERT", bundle)
            .args(["-At", "-c", "SELECT 1"])
            .output()
            .expect("run psql");
        assert!(
            !out.status.success(),
            "self-signed cert verified against {bundle:?}"
        );
    }
}
