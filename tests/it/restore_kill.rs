//! `kill -9` at ten moments of a replace restore and of a restore test: the
//! target is exactly as before or exactly as after, the next start marks
//! the row interrupted (knowing whether it committed), and no passfile,
//! decoded file or scratch database stays. A kill after COMMIT can still
//! be rolled back.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::compare::{CompareOptions, Snapshot, diff_snapshots, snapshot};
use crate::support::engine::{PASSPHRASE, cli, stderr, stdout};
use crate::support::pg::{TestDb, cluster, roles_lock};
use crate::support::platform::new_project;

pub const ENV: [(&str, &str); 2] = [
    ("SUPABACKUP_PASSPHRASE", PASSPHRASE),
    (
        "SUPABACKUP_BACKUP_PASSPHRASE",
        "kill test backup passphrase",
    ),
];

/// Runs the CLI until it reaches `failpoint`, then kills it with SIGKILL.
pub fn kill_at(data: &Path, args: &[&str], failpoint: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supabackup"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .env("SUPABACKUP_NO_KEYCHAIN", "1")
        .env("SUPABACKUP_FAILPOINT", failpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    let wanted = format!("failpoint {failpoint} reached");
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains(&wanted) => break,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{failpoint} was never reached; the run said:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    // The tools it started see their input end and stop.
    std::thread::sleep(Duration::from_millis(300));
}

/// No passfile, decoded archive or restore folder under the data dir.
fn assert_no_leftovers(data: &Path, when: &str) {
    let mut stack = vec![data.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".pgpass") && name != ".pgpass",
                "{when}: passfile left: {}",
                p.display()
            );
            if p.starts_with(data.join("temp")) {
                assert!(
                    !name.starts_with("restore-")
                        && !name.starts_with("rtest-")
                        && !name.ends_with(".dump"),
                    "{when}: temporary file left: {}",
                    p.display()
                );
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
}

fn restores(data: &Path) -> Vec<serde_json::Value> {
    let out = cli(data, &["restore", "list", "--json"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The restores once the server can tell whether the newest committed
/// (a killed session's psql may still be rolling back for a moment).
fn settled_restores(data: &Path) -> Vec<serde_json::Value> {
    for _ in 0..50 {
        let list = restores(data);
        let unknown = list
            .first()
            .is_some_and(|r| r["status"] == "interrupted" && r["committed"].is_null());
        if !unknown {
            return list;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    restores(data)
}

fn same(a: &Snapshot, b: &Snapshot) -> bool {
    diff_snapshots(a, b).is_empty()
}

fn add_project(data: &Path, name: &str, db: &TestDb) {
    let out = cli(
        data,
        &[
            "project",
            "add",
            "--name",
            name,
            "--ref",
            &name.to_lowercase(),
            "--db-url",
            &db.url(),
        ],
        &ENV,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A full backup of `project` by the CLI; its id.
fn backup_id(data: &Path, project: &str) -> String {
    let out = cli(data, &["backup", "run", project, "--json"], &ENV, None);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The comparison of targets (roles are cluster-wide, shared by the tests).
fn without_roles() -> CompareOptions {
    CompareOptions {
        include_roles: false,
        ..Default::default()
    }
}

#[test]
fn a_killed_replace_restore_leaves_the_target_before_or_after_and_can_be_rolled_back() {
    let src = new_project("kill_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL);
         INSERT INTO public.notes SELECT g, 'new ' || g FROM generate_series(1, 3000) g;
         CREATE SCHEMA shop;
         CREATE TABLE shop.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
         INSERT INTO shop.items (name) SELECT 'item ' || g FROM generate_series(1, 2000) g;",
    );
    let dst = new_project("kill_dst");
    dst.run_sql_file_locked(
        "CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL, extra int);
         INSERT INTO public.notes SELECT g, 'old ' || g, g FROM generate_series(1, 100) g;
         CREATE TABLE public.only_in_target (id int);",
    );
    let data = tempfile::tempdir().expect("tmp");
    add_project(data.path(), "Source", &src);
    add_project(data.path(), "Target", &dst);
    let id = backup_id(data.path(), "Source");
    let opts = without_roles();
    let before = snapshot(&dst, &opts);
    let after = snapshot(&src, &opts);
    assert!(!same(&before, &after));
    let args = [
        "restore", "run", &id, "--to", "Target", "--mode", "replace", "--yes",
    ];
    let moments = [
        "restore.prepared",
        "restore.recorded",
        "restore.snapshot_taken",
        "restore.began",
        "restore.emptied",
        "restore.pre_data",
        "restore.data",
        "restore.post_data",
        "restore.before_commit",
        "restore.committed",
    ];
    let _roles = roles_lock();
    for m in moments {
        kill_at(data.path(), &args, m);
        let list = settled_restores(data.path());
        assert!(
            list.iter().all(|r| r["status"] != "running"),
            "{m}: a restore is still running: {list:?}"
        );
        assert_no_leftovers(data.path(), m);
        let now = snapshot(&dst, &opts);
        if m == "restore.committed" {
            assert!(
                same(&now, &after),
                "{m}: the target is not the backup: {:?}",
                diff_snapshots(&after, &now)
            );
            let newest = &list[0];
            assert_eq!(newest["status"], "interrupted", "{m}: {newest}");
            assert_eq!(
                newest["committed"], true,
                "{m}: the server told it committed: {newest}"
            );
            let rid = newest["id"].as_str().expect("id");
            let out = cli(
                data.path(),
                &["restore", "rollback", rid, "--yes"],
                &ENV,
                None,
            );
            assert!(
                out.status.success(),
                "{m}: rollback: {}{}",
                stdout(&out),
                stderr(&out)
            );
            let back = snapshot(&dst, &opts);
            assert!(
                same(&back, &before),
                "{m}: rollback differs: {:?}",
                diff_snapshots(&before, &back)
            );
        } else {
            assert!(
                same(&now, &before),
                "{m}: the target changed: {:?}",
                diff_snapshots(&before, &now)
            );
            if let Some(newest) = list.first().filter(|r| r["status"] == "interrupted") {
                assert_eq!(newest["committed"], false, "{m}: {newest}");
            }
        }
    }
    // Nothing running in the backups either (the safety snapshots).
    let out = cli(data.path(), &["backup", "list", "--json"], &ENV, None);
    let backups: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        backups.iter().all(|b| b["status"] != "running"),
        "{backups:?}"
    );
}

/// A parallel load commits its schema before the rows: killed before that
/// commit the target is as before; killed after it, the restore is
/// recorded as having changed the target, and rollback brings it back.
#[test]
fn a_killed_parallel_restore_says_it_changed_the_target_and_rolls_back() {
    let src = new_project("kill_par_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL);
         INSERT INTO public.notes SELECT g, 'new ' || g FROM generate_series(1, 3000) g;
         CREATE INDEX notes_body ON public.notes (body);
         CREATE SCHEMA shop;
         CREATE TABLE shop.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text,
           note_id int REFERENCES public.notes);
         INSERT INTO shop.items (name, note_id) SELECT 'item ' || g, g FROM generate_series(1, 2000) g;",
    );
    let dst = new_project("kill_par_dst");
    dst.run_sql_file_locked(
        "CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL, extra int);
         INSERT INTO public.notes SELECT g, 'old ' || g, g FROM generate_series(1, 100) g;",
    );
    let data = tempfile::tempdir().expect("tmp");
    add_project(data.path(), "Source", &src);
    add_project(data.path(), "Target", &dst);
    let id = backup_id(data.path(), "Source");
    let opts = without_roles();
    let before = snapshot(&dst, &opts);
    let after = snapshot(&src, &opts);
    let args = [
        "restore", "run", &id, "--to", "Target", "--mode", "replace", "--jobs", "3", "--yes",
    ];
    let _roles = roles_lock();
    for (m, changes) in [
        ("restore.began", false),
        ("restore.pre_data", false),
        ("restore.data", true),
        ("restore.before_commit", true),
    ] {
        kill_at(data.path(), &args, m);
        let list = settled_restores(data.path());
        let newest = &list[0];
        assert_eq!(newest["status"], "interrupted", "{m}: {newest}");
        assert_eq!(newest["jobs"], 3, "{m}: {newest}");
        assert_no_leftovers(data.path(), m);
        let now = snapshot(&dst, &opts);
        if !changes {
            assert_eq!(newest["committed"], false, "{m}: {newest}");
            assert!(
                same(&now, &before),
                "{m}: the target changed: {:?}",
                diff_snapshots(&before, &now)
            );
            continue;
        }
        assert_eq!(
            newest["committed"], true,
            "{m}: its schema committed: {newest}"
        );
        assert!(
            !same(&now, &before) && !same(&now, &after),
            "{m}: partly restored"
        );
        let list_text = stdout(&cli(data.path(), &["restore", "list"], &ENV, None));
        assert!(
            list_text.contains("interrupted (partly applied)"),
            "{m}: {list_text}"
        );
        let rid = newest["id"].as_str().expect("id");
        let out = cli(
            data.path(),
            &["restore", "rollback", rid, "--yes"],
            &ENV,
            None,
        );
        assert!(
            out.status.success(),
            "{m}: rollback: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let back = snapshot(&dst, &opts);
        assert!(
            same(&back, &before),
            "{m}: rollback differs: {:?}",
            diff_snapshots(&before, &back)
        );
    }
    // Not killed, it restores the backup exactly.
    let out = cli(data.path(), &args, &ENV, None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let now = snapshot(&dst, &opts);
    assert!(same(&now, &after), "{:?}", diff_snapshots(&after, &now));
}

#[test]
fn a_killed_restore_test_leaves_no_scratch_database() {
    let src = new_project("kill_rt_src");
    src.run_sql_file_locked(
        "CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL);
         INSERT INTO public.notes SELECT g, 'n ' || g FROM generate_series(1, 3000) g;",
    );
    let data = tempfile::tempdir().expect("tmp");
    add_project(data.path(), "Source", &src);
    let id = backup_id(data.path(), "Source");
    let scratch = cluster().url("postgres");
    let args = ["verify", &id, "--restore-test", "--scratch-url", &scratch];
    let count_scratch = || {
        cluster().psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'supabackup\\_rt\\_%'",
        )
    };
    let _roles = roles_lock();
    let existing = count_scratch();
    for m in [
        "rtest.created_db",
        "rtest.roles",
        "rtest.provisioned",
        "restore.began",
        "restore.emptied",
        "restore.pre_data",
        "restore.data",
        "restore.post_data",
        "restore.before_commit",
        "rtest.compared",
    ] {
        kill_at(data.path(), &args, m);
        // The next start (unlocked) drops what the killed test left.
        restores(data.path());
        assert_eq!(
            count_scratch(),
            existing,
            "{m}: a scratch database was left"
        );
        assert_no_leftovers(data.path(), m);
        let conn = rusqlite::Connection::open(data.path().join("catalog.sqlite")).expect("catalog");
        let running: i64 = conn
            .query_row(
                "SELECT count(*) FROM restore_tests WHERE status = 'running' OR (status = 'interrupted' AND cleaned = 0)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(
            running, 0,
            "{m}: a restore test row was left running or unclean"
        );
    }
    // And a test that is not killed passes.
    let out = cli(data.path(), &args, &ENV, None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
