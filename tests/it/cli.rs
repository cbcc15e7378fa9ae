//! End-to-end tests of the real `supabackup` binary.

use crate::support::engine::{cli, files_containing, stderr, stdout};
use crate::support::pg::cluster;

const PASS: (&str, &str) = ("SUPABACKUP_PASSPHRASE", "cli master passphrase");

#[test]
fn project_add_test_and_the_password_appears_nowhere_in_the_data_dir() {
    let c = cluster();
    let db = c.create_db("cli_add");
    let data = tempfile::tempdir().expect("tempdir");
    // Password in the URL.
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "Shop",
            "--ref",
            "shop-ref",
            "--db-url",
            &db.url(),
            "--environment",
            "production",
        ],
        &[PASS],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Password from stdin.
    let bare = db.url().replace(&format!(":{}@", c.password), "@");
    assert!(!bare.contains(&c.password));
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "Shop Stdin",
            "--ref",
            "shop-ref",
            "--db-url",
            &bare,
            "--db-password-stdin",
        ],
        &[PASS],
        Some(&format!("{}\n", c.password)),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    for name in ["Shop", "Shop Stdin"] {
        let out = cli(data.path(), &["project", "test", name], &[PASS], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("PASSED"));
        assert!(!stdout(&out).contains(&c.password));
    }

    let out = cli(data.path(), &["project", "list", "--json"], &[], None);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json list");
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert!(list.to_string().contains("\"has_db_password\":true"));

    let out = cli(
        data.path(),
        &["project", "show", "shop", "--json"],
        &[],
        None,
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json show");
    assert_eq!(shown["credentials"], serde_json::json!(["db_password"]));
    assert_eq!(
        shown["last_connection_test"]["event_data"]["ok"],
        serde_json::json!(true)
    );

    // The password's bytes are nowhere in the data dir: catalog, WAL, logs.
    let hits = files_containing(data.path(), c.password.as_bytes());
    assert!(hits.is_empty(), "password found in {hits:?}");
    assert!(data.path().join("catalog.sqlite").exists());
}

#[test]
fn failures_are_one_sentence_with_a_hint_and_an_exit_code() {
    let c = cluster();
    let db = c.create_db("cli_fail");
    let data = tempfile::tempdir().expect("tempdir");
    let wrong = c.url_for("postgres", "not-the-password", &db.name);
    let out = cli(
        data.path(),
        &[
            "project", "add", "--name", "Wrong", "--ref", "wrong", "--db-url", &wrong,
        ],
        &[PASS],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(data.path(), &["project", "test", "Wrong"], &[PASS], None);
    assert_eq!(out.status.code(), Some(7));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: password authentication failed"),
        "{err}"
    );
    assert!(err.contains("\nhint: "), "{err}");
    assert!(!err.contains("not-the-password"));

    // Wrong master passphrase: exit 6, nothing changed.
    let out = cli(
        data.path(),
        &["project", "test", "Wrong"],
        &[("SUPABACKUP_PASSPHRASE", "a wrong passphrase")],
        None,
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong master passphrase"));

    // Locked vault without a passphrase and without a terminal.
    let out = cli(data.path(), &["project", "test", "Wrong"], &[], None);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("SUPABACKUP_PASSPHRASE"));

    // Validation: exit 3 naming the field.
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "X",
            "--ref",
            "Not_Valid",
            "--db-url",
            "postgresql://u@h/db",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("project_ref"));

    // Not found: exit 4.
    let out = cli(data.path(), &["project", "show", "nope"], &[], None);
    assert_eq!(out.status.code(), Some(4));

    // Remove needs --yes without a terminal.
    let out = cli(data.path(), &["project", "remove", "Wrong"], &[], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("--yes"));
    let out = cli(
        data.path(),
        &["project", "remove", "Wrong", "--yes"],
        &[],
        None,
    );
    assert!(out.status.success());

    // Bad command line: clap's exit 2.
    let out = cli(data.path(), &["project", "frobnicate"], &[], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_exit_codes_and_import_export_round_trip() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = cli(data.path(), &["--help"], &[], None);
    assert!(stdout(&out).contains("Exit codes:") && stdout(&out).contains("SUPABACKUP_PASSPHRASE"));

    let csv = data.path().join("in.csv");
    std::fs::write(
        &csv,
        "name,project_ref,db_url,environment\nA,a-ref,postgresql://u:Pw-A-123@h/db,production\nB,BAD,postgresql://u@h/db,staging\n",
    )
    .expect("write");
    let out = cli(
        data.path(),
        &["project", "import", csv.to_str().expect("utf8")],
        &[PASS],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--accept-partial"));
    let out = cli(
        data.path(),
        &[
            "project",
            "import",
            csv.to_str().expect("utf8"),
            "--accept-partial",
        ],
        &[PASS],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Imported 1 of 2"));

    let export = data.path().join("out.json");
    let out = cli(
        data.path(),
        &[
            "project",
            "export",
            export.to_str().expect("utf8"),
            "--include-secrets",
        ],
        &[PASS, ("SUPABACKUP_EXPORT_PASSPHRASE", "export pass 123")],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&export).expect("export");
    assert!(text.contains("enc:v1:") && !text.contains("Pw-A-123"));

    let other = tempfile::tempdir().expect("tempdir");
    let out = cli(
        other.path(),
        &["project", "import", export.to_str().expect("utf8")],
        &[PASS, ("SUPABACKUP_EXPORT_PASSPHRASE", "export pass 123")],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(files_containing(other.path(), b"Pw-A-123").is_empty());
}

/// The GUI, the daemon and a CLI share one catalog: processes starting on a
/// fresh data folder at once all set it up, and writers that read first
/// (name checks, slugs) wait for each other instead of failing "locked".
#[test]
fn processes_share_a_fresh_catalog_without_failing() {
    let data = tempfile::tempdir().expect("tmp");
    let spawn = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_supabackup"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env("SUPABACKUP_NO_KEYCHAIN", "1")
            .env_remove("SUPABACKUP_PASSPHRASE")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let children: Vec<_> = (0..6)
        .map(|_| spawn(vec!["project".into(), "list".into(), "--json".into()]))
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Concurrent writers: every add lands, none reports a locked catalog.
    let children: Vec<_> = (0..6)
        .map(|i| {
            spawn(
                [
                    "project",
                    "add",
                    "--name",
                    &format!("P{i}"),
                    "--ref",
                    "ref",
                    "--db-url",
                    "postgresql://postgres@db.example.supabase.co:5432/postgres",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            )
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = cli(data.path(), &["project", "list", "--json"], &[], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(6));
}

/// Every CLI run leaves its lines in logs/ (tagged, secrets redacted), and
/// `supabackup logs` prints them, `--follow` as they come.
#[test]
fn logs_are_written_redacted_and_printed() {
    let c = cluster();
    let db = c.create_db("cli_logs");
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let data = tempfile::tempdir().expect("tmp");
    let debug = ("SUPABACKUP_LOG", "debug");
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "Logged",
            "--ref",
            "logged",
            "--db-url",
            &db.url(),
        ],
        &[PASS, debug],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(
        data.path(),
        &["backup", "run", "Logged", "--no-encrypt"],
        &[PASS, debug],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(data.path(), &["project", "test", "Nope"], &[PASS], None);
    assert!(!out.status.success());

    let logs = data.path().join("logs");
    assert!(
        files_containing(&logs, c.password.as_bytes()).is_empty(),
        "the database password is in the logs"
    );
    assert!(
        files_containing(&logs, b"cli master passphrase").is_empty(),
        "the master passphrase is in the logs"
    );
    let out = cli(data.path(), &["logs", "-n", "1000"], &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().all(|l| l.starts_with("[cli ")), "{text}");
    assert!(
        text.contains("backup ") && text.contains("completed"),
        "{text}"
    );
    assert!(
        text.contains("command failed: no project named 'Nope'"),
        "{text}"
    );
    assert_eq!(
        cli(data.path(), &["logs", "-n", "2"], &[], None)
            .stdout
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        2
    );
    let out = cli(data.path(), &["logs", "--path"], &[], None);
    assert_eq!(stdout(&out).trim(), logs.display().to_string());

    // --follow prints what another process writes afterwards.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_supabackup"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["logs", "--follow", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("follow");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let out = cli(data.path(), &["project", "test", "Followed"], &[PASS], None);
    assert!(!out.status.success());
    let mut stdout_pipe = follow.stdout.take().expect("pipe");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(&mut stdout_pipe).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("no project named 'Followed'");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("no project named 'Followed'") => {
                seen = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen, "--follow did not print the new line");
}

/// With --json, an error is also a JSON object on stdout (kind, message,
/// hint) and the exit code says its kind; without, stdout stays empty.
#[test]
fn errors_are_json_when_json_is_asked() {
    let dir = tempfile::tempdir().expect("tmp");
    let env = [("SUPABACKUP_PASSPHRASE", crate::support::engine::PASSPHRASE)];
    let out = cli(
        dir.path(),
        &["project", "show", "Nope", "--json"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["error"]["kind"], "not_found", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Nope")),
        "{v}"
    );
    assert!(v["error"].get("hint").is_some(), "{v}");
    assert!(stderr(&out).contains("error: "));
    let out = cli(dir.path(), &["project", "show", "Nope"], &env, None);
    assert_eq!(out.status.code(), Some(4));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
