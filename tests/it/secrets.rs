//! What the tools supabackup starts can see: each pg_dump, pg_dumpall,
//! pg_restore and psql of a real backup and restore records its own
//! /proc/self/environ and /proc/self/cmdline (through a wrapper that then
//! runs the real tool), and none of them holds a secret or an inherited
//! PG* setting. A URL with a password on the command line works but warns.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::engine::{PASSPHRASE, cli, stderr};
use crate::support::pg::{cluster, roles_lock};
use crate::support::platform::new_project;

/// Wrappers for the PostgreSQL tools that log what they were given.
fn wrappers(dir: &Path, log: &Path) {
    let bin = &cluster().bin_dir;
    for tool in ["pg_dump", "pg_dumpall", "pg_restore", "psql"] {
        let script = format!(
            "#!/bin/sh\n\
             tr '\\0' '\\n' < /proc/$$/environ > '{log}/env.{tool}.'$$\n\
             tr '\\0' '\\n' < /proc/$$/cmdline > '{log}/cmd.{tool}.'$$\n\
             exec '{real}' \"$@\"\n",
            log = log.display(),
            real = bin.join(tool).display()
        );
        let p = dir.join(tool);
        std::fs::write(&p, script).expect("wrapper");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

#[test]
fn tools_get_a_fresh_environment_and_no_password_in_argv() {
    let src = new_project("env_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);",
    );
    let dst = new_project("env_dst");
    let data = tempfile::tempdir().expect("tmp");
    let bin = tempfile::tempdir().expect("tmp");
    let log = tempfile::tempdir().expect("tmp");
    wrappers(bin.path(), log.path());
    let password = cluster().password.clone();
    let bin_dir = bin.path().display().to_string();
    let env = [
        ("SUPABACKUP_PASSPHRASE", PASSPHRASE),
        ("SUPABACKUP_BACKUP_PASSPHRASE", "env test backup passphrase"),
        ("SUPABACKUP_PG_BIN_DIR", bin_dir.as_str()),
        // What the user's shell may hold: none of it may reach a tool.
        ("PGPASSWORD", "inherited-secret"),
        ("PGHOST", "evil.example"),
        ("PGSERVICEFILE", "/etc/evil"),
        ("AWS_SECRET_ACCESS_KEY", "cloud-secret"),
    ];
    let url_without = |db: &str| {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{db}?sslmode=require",
            cluster().port
        )
    };
    for (name, db) in [("Source", &src.name), ("Target", &dst.name)] {
        let out = cli(
            data.path(),
            &[
                "project",
                "add",
                "--name",
                name,
                "--ref",
                &name.to_lowercase(),
                "--db-url",
                &url_without(db),
                "--db-password-stdin",
            ],
            &env,
            Some(&password),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("warning"),
            "no password on the command line: {}",
            stderr(&out)
        );
    }
    let out = cli(
        data.path(),
        &["backup", "run", "Source", "--json"],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let _roles = roles_lock();
    let out = cli(
        data.path(),
        &[
            "restore", "run", &id, "--to", "Target", "--mode", "new", "--yes",
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A URL target with the password in the URL works, with a warning.
    let busy = new_project("env_url");
    let out = cli(
        data.path(),
        &[
            "restore",
            "run",
            &id,
            "--to-url",
            &busy.url(),
            "--mode",
            "new",
            "--yes",
            "--confirm",
            &busy.name,
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: the URL on the command line holds a password"),
        "{}",
        stderr(&out)
    );
    // …and without it in argv, from the environment, without one.
    let other = new_project("env_url2");
    let mut env2 = env.to_vec();
    env2.push(("SUPABACKUP_TARGET_PASSWORD", password.as_str()));
    let out = cli(
        data.path(),
        &[
            "restore",
            "run",
            &id,
            "--to-url",
            &url_without(&other.name),
            "--mode",
            "new",
            "--yes",
        ],
        &env2,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    drop(_roles);

    let mut seen = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(log.path()).expect("log").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(e.path()).expect("read");
        let tool = name.split('.').nth(1).unwrap_or("").to_owned();
        seen.insert(tool.clone());
        for secret in [
            PASSPHRASE,
            "env test backup passphrase",
            "inherited-secret",
            "cloud-secret",
            password.as_str(),
        ] {
            assert!(!text.contains(secret), "{name} holds a secret:\n{text}");
        }
        if name.starts_with("env.") {
            for line in text.lines() {
                let var = line.split('=').next().unwrap_or("");
                assert!(
                    !var.starts_with("SUPABACKUP_")
                        && var != "AWS_SECRET_ACCESS_KEY"
                        && var != "PGSERVICEFILE"
                        && var != "PGPASSWORD",
                    "{name}: {line}"
                );
                if var == "PGHOST" {
                    assert_eq!(line, "PGHOST=127.0.0.1", "{name}");
                }
            }
        }
    }
    for tool in ["pg_dump", "pg_dumpall", "pg_restore", "psql"] {
        assert!(seen.contains(tool), "{tool} never ran: {seen:?}");
    }
}
