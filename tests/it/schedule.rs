//! Automation: DST-aware next runs, catch-up, racing tickers, hooks,
//! chaining, skip-when-unchanged, and the daemon end to end.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use supabackup::engine::backup::BackupOptions;
use supabackup::engine::schedule::ticker::run_job;
use supabackup::engine::schedule::{
    ChainPolicy, Hook, HookPolicy, JobConfig, JobInput, JobTz, RestoreTestPlan, Retention,
    Scheduler, SchedulerConfig,
};
use tokio_util::sync::CancellationToken;

use crate::support::engine::{PASSPHRASE, TestEngine, cli, input, stderr, stdout, unlocked_engine};
use crate::support::pg::{TestDb, cluster};

/// Alert delivery with a fake desktop notifier (no rules match anyway).
fn quiet() -> supabackup::engine::notify::Delivery {
    supabackup::engine::notify::Delivery::with_desktop(std::sync::Arc::new(
        supabackup::engine::notify::RecordingNotifier::new(),
    ))
}

fn plain() -> BackupOptions {
    BackupOptions {
        encrypt: false,
        kind: supabackup::engine::backup::BackupKind::Schema,
        ..Default::default()
    }
}

fn job_input(project: &str, cron: &str, config: JobConfig) -> JobInput {
    JobInput {
        project: project.into(),
        name: None,
        cron: cron.into(),
        timezone: JobTz::Utc,
        config,
        retention: Retention::default(),
        enabled: true,
    }
}

async fn with_project(db: &TestDb, name: &str) -> TestEngine {
    let t = unlocked_engine().await;
    let mut i = input(name, &db.url());
    i.project_ref = name.to_lowercase();
    t.engine.add_project(i).await.expect("project");
    t
}

fn set_next(t: &TestEngine, job: &str, at: DateTime<Utc>) {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let job = job.to_owned();
    t.engine
        .catalog()
        .with(move |c| {
            Ok(c.execute(
                "UPDATE backup_jobs SET next_run_at = ?2 WHERE id = ?1",
                [job, at],
            )?)
        })
        .expect("set next");
}

#[test]
fn next_runs_follow_wall_clock_across_dst_in_a_non_utc_zone() {
    let data = tempfile::tempdir().expect("tmp");
    let runs = |tz: &str, cron: &str, after: &str| -> Vec<String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_supabackup"))
            .args(["--data-dir"])
            .arg(data.path())
            .args([
                "job",
                "next-runs",
                "--cron",
                cron,
                "--tz",
                "local",
                "-n",
                "3",
                "--after",
                after,
            ])
            .env("TZ", tz)
            .env("SUPABACKUP_NO_KEYCHAIN", "1")
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    // Spring forward in Berlin (2027-03-28, 02:00 → 03:00): 02:30 does not
    // exist that day and runs at 03:00 instead; 5-field syntax.
    assert_eq!(
        runs("Europe/Berlin", "30 2 * * *", "2027-03-26T12:00:00Z"),
        [
            "2027-03-27T02:30:00+01:00",
            "2027-03-28T03:00:00+02:00",
            "2027-03-29T02:30:00+02:00"
        ]
    );
    // Fall back (2027-10-31, 03:00 → 02:00): 02:30 happens twice, runs once;
    // 6-field syntax with seconds.
    assert_eq!(
        runs("Europe/Berlin", "15 30 2 * * *", "2027-10-29T12:00:00Z"),
        [
            "2027-10-30T02:30:15+02:00",
            "2027-10-31T02:30:15+02:00",
            "2027-11-01T02:30:15+01:00"
        ]
    );
    assert_eq!(
        runs(
            "America/New_York",
            "0 9 * * MON-FRI",
            "2027-03-12T12:00:00Z"
        ),
        [
            "2027-03-12T09:00:00-05:00",
            "2027-03-15T09:00:00-04:00",
            "2027-03-16T09:00:00-04:00"
        ]
    );
    // An invalid expression is refused with the reason.
    let out = cli(
        data.path(),
        &["job", "next-runs", "--cron", "61 * * * *"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("invalid"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn missed_runs_are_caught_up_once_within_the_grace_window() {
    let db = cluster().create_db("sch_catchup");
    let t = with_project(&db, "Catch").await;
    let job = t
        .engine
        .add_job(job_input(
            "Catch",
            "*/5 * * * *",
            JobConfig {
                backup: plain(),
                ..Default::default()
            },
        ))
        .await
        .expect("job");
    let now = Utc::now();
    // The machine slept: six slots were missed.
    set_next(&t, &job.id, now - chrono::Duration::minutes(30));
    let mut s = Scheduler::new(t.engine.clone(), SchedulerConfig::default());
    let report = s.tick(now).await.expect("tick");
    assert!(report.leader);
    assert_eq!(
        report.started,
        std::slice::from_ref(&job.id),
        "one run for all missed slots"
    );
    for h in report.handles {
        assert_eq!(h.await.expect("join").status, "completed");
    }
    assert_eq!(
        t.engine
            .list_backups(Some("Catch"), 10)
            .await
            .expect("list")
            .len(),
        1
    );
    let after = t.engine.job(&job.id).await.expect("job");
    assert!(after.next_run_at.as_deref().unwrap_or("") > now.to_rfc3339().as_str());
    let again = s.tick(now).await.expect("tick");
    assert!(again.started.is_empty(), "nothing due any more");
    let caught: i64 = t
        .engine
        .catalog()
        .with(|c| Ok(c.query_row("SELECT count(*) FROM analytics WHERE event_type = 'job_decision' AND event_data LIKE '%caught_up%'", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(caught, 1, "the decision is recorded");
    // Too late (beyond the grace window): skipped, recorded, and raised
    // as schedule.missed to the rules that want it.
    let server = crate::notify::HttpServer::start(&[]);
    t.engine
        .save_alert_rule(
            supabackup::engine::notify::AlertRule {
                on_failure: false,
                on_missed_schedule: true,
                ..crate::notify::webhook_rule(None, &server.url("/hooks"))
            },
            Some(supabackup::engine::crypto::Secret::new(
                crate::notify::WEBHOOK_SECRET,
            )),
            None,
        )
        .await
        .expect("rule");
    set_next(&t, &job.id, now - chrono::Duration::days(3));
    let report = s.tick(now).await.expect("tick");
    assert_eq!(report.missed, std::slice::from_ref(&job.id));
    let alert = crate::notify::one_signed_event(&server, "schedule.missed");
    assert_eq!(alert["details"]["job_id"], job.id.as_str());
    assert_eq!(alert["project"], "Catch");
    assert!(report.started.is_empty());
    assert_eq!(
        t.engine
            .job(&job.id)
            .await
            .expect("job")
            .last_status
            .as_deref(),
        Some("missed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tickers_racing_never_start_the_same_run_twice() {
    let db = cluster().create_db("sch_race");
    let t = with_project(&db, "Race").await;
    let job = t
        .engine
        .add_job(job_input(
            "Race",
            "* * * * *",
            JobConfig {
                backup: plain(),
                ..Default::default()
            },
        ))
        .await
        .expect("job");
    let now = Utc::now();
    set_next(&t, &job.id, now - chrono::Duration::seconds(5));
    // Two processes' worth of tickers, without the lease: the per-run claim decides.
    let cfg = SchedulerConfig {
        use_lease: false,
        ..Default::default()
    };
    let mut a = Scheduler::new(t.engine.clone(), cfg);
    let mut b = Scheduler::new(t.engine.clone(), cfg);
    let (ra, rb) = tokio::join!(a.tick(now), b.tick(now));
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(
        ra.started.len() + rb.started.len(),
        1,
        "exactly one ticker started it"
    );
    for h in ra.handles.into_iter().chain(rb.handles) {
        h.await.expect("join");
    }
    assert_eq!(
        t.engine
            .list_backups(Some("Race"), 10)
            .await
            .expect("list")
            .len(),
        1
    );
    // With the lease, a second ticker does not act at all.
    let mut c = Scheduler::new(t.engine.clone(), SchedulerConfig::default());
    let mut d = Scheduler::new(t.engine.clone(), SchedulerConfig::default());
    assert!(c.tick(now).await.expect("c").leader);
    assert!(!d.tick(now).await.expect("d").leader);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_hook_aborts_with_its_output_and_post_hooks_see_the_backup() {
    let db = cluster().create_db("sch_hooks");
    let t = with_project(&db, "Hooks").await;
    let marker = t.dir.path().join("post.txt");
    let config = JobConfig {
        backup: plain(),
        pre_hook: Some(Hook {
            command: "echo 'maintenance window closed' >&2; exit 4".into(),
            timeout_secs: 10,
            on_failure: HookPolicy::Abort,
        }),
        ..Default::default()
    };
    let job = t
        .engine
        .add_job(job_input("Hooks", "0 3 * * *", config))
        .await
        .expect("job");
    let out = run_job(&t.engine, &job, CancellationToken::new(), &quiet()).await;
    assert_eq!(out.status, "failed");
    let detail = out.steps[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("maintenance window closed"), "{detail}");
    assert!(
        t.engine
            .list_backups(Some("Hooks"), 10)
            .await
            .expect("list")
            .is_empty(),
        "no backup ran"
    );

    let config = JobConfig {
        backup: plain(),
        pre_hook: Some(Hook {
            command: "exit 1".into(),
            timeout_secs: 10,
            on_failure: HookPolicy::Warn,
        }),
        post_hook: Some(Hook {
            command: format!(
                "printf '%s %s %s' \"$SUPABACKUP_STATUS\" \"$SUPABACKUP_BACKUP_ID\" \"$SUPABACKUP_PROJECT\" > {}; env | grep -c PASSPHRASE >> {} || true",
                marker.display(),
                marker.display()
            ),
            timeout_secs: 10,
            on_failure: HookPolicy::Warn,
        }),
        ..Default::default()
    };
    let job = t
        .engine
        .add_job(job_input("Hooks", "0 4 * * *", config))
        .await
        .expect("job");
    let out = run_job(&t.engine, &job, CancellationToken::new(), &quiet()).await;
    assert_eq!(out.status, "completed", "{out:?}");
    let id = out.steps[0].backup_id.clone().expect("backup");
    let text = std::fs::read_to_string(&marker).expect("post hook ran");
    assert!(text.starts_with(&format!("completed {id} Hooks")), "{text}");
    assert!(
        text.ends_with('0') || text.ends_with("0\n"),
        "no passphrase variable reaches hooks: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_stops_or_continues_per_policy() {
    let c = cluster();
    let good = c.create_db("sch_chain");
    let t = with_project(&good, "Good").await;
    let mut broken = input("Broken", &c.url("no_such_db_for_chain"));
    broken.project_ref = "broken".into();
    t.engine.add_project(broken).await.expect("broken");
    // A failure rule with a desktop channel: the failed project alerts.
    let rule = supabackup::engine::notify::AlertRule {
        on_failure: true,
        channels: vec![supabackup::engine::notify::Channel::Desktop],
        ..Default::default()
    };
    t.engine
        .save_alert_rule(rule, None, None)
        .await
        .expect("rule");
    let notifier = std::sync::Arc::new(supabackup::engine::notify::RecordingNotifier::new());
    let delivery = supabackup::engine::notify::Delivery::with_desktop(notifier.clone());
    let config = JobConfig {
        backup: plain(),
        ..Default::default()
    };
    let job = t
        .engine
        .add_job(job_input("Broken", "0 2 * * *", config))
        .await
        .expect("job");
    assert_eq!(
        run_job(&t.engine, &job, CancellationToken::new(), &delivery)
            .await
            .status,
        "failed"
    );
    let calls = notifier.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].0.contains("Backup of Broken failed"), "{calls:?}");
    for (policy, second) in [
        (ChainPolicy::Stop, "not-run"),
        (ChainPolicy::Continue, "completed"),
    ] {
        let config = JobConfig {
            backup: plain(),
            chain: vec!["Good".into()],
            chain_policy: policy,
            ..Default::default()
        };
        let job = t
            .engine
            .add_job(job_input("Broken", "0 3 * * *", config))
            .await
            .expect("job");
        let out = run_job(&t.engine, &job, CancellationToken::new(), &quiet()).await;
        let statuses: Vec<&str> = out.steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, ["failed", second], "{policy:?}: {out:?}");
        assert_eq!(out.status, "failed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_database_is_skipped_and_a_changed_one_backed_up() {
    let db = cluster().create_db("sch_unchanged");
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let t = with_project(&db, "Quiet").await;
    let config = JobConfig {
        backup: BackupOptions {
            encrypt: false,
            ..Default::default()
        },
        skip_if_unchanged: true,
        ..Default::default()
    };
    let job = t
        .engine
        .add_job(job_input("Quiet", "0 3 * * *", config))
        .await
        .expect("job");
    // Wait for the writes above to reach pg_stat_database (backends flush
    // their counters on their own schedule; under load it takes longer).
    let writes = || {
        db.psql(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()",
        )
        .parse::<i64>()
        .unwrap_or(0)
    };
    let settled = |min: i64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = writes();
            std::thread::sleep(Duration::from_millis(1200));
            if (a >= min && a == writes()) || Instant::now() > deadline {
                return a;
            }
        }
    };
    let base = settled(1);
    assert_eq!(
        run_job(&t.engine, &job, CancellationToken::new(), &quiet())
            .await
            .status,
        "completed"
    );
    let out = run_job(&t.engine, &job, CancellationToken::new(), &quiet()).await;
    assert_eq!(out.status, "skipped", "{out:?}");
    assert!(
        out.steps[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("unchanged")
    );
    db.psql("INSERT INTO t SELECT generate_series(2, 100);");
    settled(base + 99);
    assert_eq!(
        run_job(&t.engine, &job, CancellationToken::new(), &quiet())
            .await
            .status,
        "completed"
    );
    assert_eq!(
        t.engine
            .list_backups(Some("Quiet"), 10)
            .await
            .expect("list")
            .len(),
        2
    );
    let skips: i64 = t
        .engine
        .catalog()
        .with(|c| Ok(c.query_row("SELECT count(*) FROM analytics WHERE event_type = 'job_run' AND event_data LIKE '%skipped%'", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(skips, 1, "the skip is recorded with its reason");
}

#[test]
fn the_daemon_runs_a_minutely_job_and_prunes_to_keep_last_two() {
    let db = cluster().create_db("sch_daemon");
    db.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);");
    let data = tempfile::tempdir().expect("tmp");
    let env = [("SUPABACKUP_PASSPHRASE", PASSPHRASE)];
    let out = cli(
        data.path(),
        &[
            "project",
            "add",
            "--name",
            "Daemon",
            "--ref",
            "daemon",
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
            "job",
            "add",
            "Daemon",
            "--cron",
            "* * * * *",
            "--keep-last",
            "2",
            "--no-encrypt",
            "--tz",
            "utc",
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let started = Instant::now();
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_supabackup"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["daemon", "--interval", "2"])
        .env("SUPABACKUP_NO_KEYCHAIN", "1")
        .env("SUPABACKUP_PASSPHRASE", PASSPHRASE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon");
    let completed = || -> usize {
        let out = cli(data.path(), &["backup", "list", "--json"], &[], None);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .map(|a| a.iter().filter(|b| b["status"] == "completed").count())
            .unwrap_or(0)
    };
    let runs = || -> usize {
        let out = cli(
            data.path(),
            &["audit", "--action", "backup.create", "--json"],
            &[],
            None,
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let mut first = None;
    while started.elapsed() < Duration::from_secs(215) {
        if first.is_none() && completed() >= 1 {
            first = Some(started.elapsed());
        }
        if runs() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let _ = std::process::Command::new("kill")
        .arg(daemon.id().to_string())
        .status();
    let _ = daemon.wait();
    let first = first.expect("a backup completed");
    assert!(
        first <= Duration::from_secs(70),
        "first backup after {first:?}"
    );
    assert!(runs() >= 3, "three scheduled runs happened");
    assert_eq!(
        completed(),
        2,
        "pruned to --keep-last 2: {}",
        stdout(&cli(data.path(), &["backup", "list"], &[], None))
    );
    let out = cli(
        data.path(),
        &["audit", "--action", "retention.delete", "--json"],
        &[],
        None,
    );
    let deletions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        deletions.as_array().is_some_and(|a| !a.is_empty()),
        "each deletion is audited"
    );
}

/// A job with both kinds of restore-test schedule, through `job run-due`
/// as a server runs it: every 2nd backup is tested right after it is made
/// (passing), then the job's own cron tests the newest backup, which was
/// tampered with meanwhile: a failing record, `verification.failed` at the
/// rule's webhook, and a failed restore test on the dashboard.
#[tokio::test(flavor = "multi_thread")]
async fn scheduled_restore_tests_pass_then_fail_on_a_tampered_backup_and_alert() {
    let c = cluster();
    let db = c.create_db("sch_rtest");
    db.psql(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 2000) g;",
    );
    let t = with_project(&db, "Tested").await;
    let e = &t.engine;
    // The scratch server as a user sets it: the password in a passfile.
    let (scratch, passfile) = c.scratch(t.dir.path());
    let out = cli(
        t.dir.path(),
        &["job", "scratch-server", &scratch],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let server = crate::notify::HttpServer::start(&[]);
    e.save_alert_rule(
        supabackup::engine::notify::AlertRule {
            on_failure: false,
            on_verification_failure: true,
            ..crate::notify::webhook_rule(None, &server.url("/hooks"))
        },
        Some(supabackup::engine::crypto::Secret::new(
            crate::notify::WEBHOOK_SECRET,
        )),
        None,
    )
    .await
    .expect("rule");
    let full = BackupOptions {
        encrypt: false,
        ..Default::default()
    };
    // A plan the engine refuses: nothing to restore-test in schema backups.
    let err = e
        .add_job(job_input(
            "Tested",
            "0 3 * * *",
            JobConfig {
                backup: plain(),
                restore_test: RestoreTestPlan {
                    every: Some(1),
                    cron: None,
                },
                ..Default::default()
            },
        ))
        .await
        .expect_err("schema backups cannot be restore-tested");
    assert!(err.message.contains("schema and data"), "{err}");
    let out = cli(
        t.dir.path(),
        &[
            "job",
            "add",
            "Tested",
            "--cron",
            "0 3 * * *",
            "--tz",
            "utc",
            "--no-encrypt",
            "--restore-test-every",
            "2",
            "--restore-test-cron",
            "bad cron",
        ],
        &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("restore-test schedule"),
        "{}",
        stderr(&out)
    );
    // The CLI adds a job with both plans and a condition, and lists them.
    let out = cli(
        t.dir.path(),
        &[
            "job",
            "add",
            "Tested",
            "--cron",
            "0 5 * * *",
            "--tz",
            "utc",
            "--no-encrypt",
            "--restore-test-every",
            "1",
            "--restore-test-cron",
            "0 6 * * 0",
            "--when",
            "schema",
        ],
        &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cli_job = stdout(&out).trim().to_owned();
    let out = cli(t.dir.path(), &["job", "list"], &[], None);
    let listed = stdout(&out);
    assert!(
        listed.contains("after every backup and on '0 6 * * 0'")
            && listed.contains("the schema changed"),
        "{listed}"
    );
    e.remove_job(&cli_job).await.expect("remove the CLI's job");
    let job = e
        .add_job(job_input(
            "Tested",
            "0 3 * * *",
            JobConfig {
                backup: full,
                restore_test: RestoreTestPlan {
                    every: Some(2),
                    cron: Some("0 4 * * *".into()),
                },
                ..Default::default()
            },
        ))
        .await
        .expect("job");
    // `run-due` exits 1 when something it ran failed.
    let run_due = |ok: bool| {
        let _roles = crate::support::pg::roles_lock();
        let out = cli(
            t.dir.path(),
            &["job", "run-due", "--json"],
            &[
                ("SUPABACKUP_PASSPHRASE", PASSPHRASE),
                ("PGPASSFILE", passfile.to_str().expect("utf-8")),
            ],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 1 }),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("json")
    };
    let tests_of = |backup: &str| -> Vec<String> {
        let b = backup.to_owned();
        e.catalog()
            .with(move |c| {
                let mut s = c.prepare(
                    "SELECT status FROM restore_tests WHERE backup_id = ?1 ORDER BY started_at",
                )?;
                let rows = s.query_map([b], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .expect("tests")
    };
    // Backup 1: counted, not tested. The first tick also only learns when
    // the job's own restore-test schedule fires next.
    set_next(&t, &job.id, Utc::now() - chrono::Duration::minutes(1));
    let first = run_due(true);
    assert_eq!(first["restore_tests"], serde_json::json!([]), "{first}");
    let b1 = first["outcomes"][0]["steps"][0]["backup_id"]
        .as_str()
        .expect("backup 1")
        .to_owned();
    assert!(tests_of(&b1).is_empty(), "only every 2nd backup is tested");
    // Backup 2: tested right after it is made, and passes.
    set_next(&t, &job.id, Utc::now() - chrono::Duration::minutes(1));
    let second = run_due(true);
    let step = &second["outcomes"][0]["steps"][0];
    let b2 = step["backup_id"].as_str().expect("backup 2").to_owned();
    assert_eq!(step["status"], "completed", "{second}");
    assert!(
        step["detail"]
            .as_str()
            .unwrap_or("")
            .contains("restore test passed"),
        "{second}"
    );
    assert_eq!(tests_of(&b2), ["passed"]);
    assert!(
        e.backup(&b2)
            .await
            .expect("b2")
            .verified_restorable_at
            .is_some()
    );
    let overview = e.overview(String::new()).await.expect("overview");
    let rt = overview.projects[0]
        .last_restore_test
        .clone()
        .expect("a restore test on the dashboard");
    assert!(
        rt.ok && rt.backup_id.as_deref() == Some(b2.as_str()),
        "{rt:?}"
    );
    assert!(server.requests().is_empty(), "a pass alerts nobody");

    // The newest backup is tampered with; the job's own schedule is due.
    let m = e.backup_manifest(&b2).await.expect("manifest");
    let data = m
        .files
        .iter()
        .find(|f| f.name.starts_with("data"))
        .expect("data file");
    let path = std::path::Path::new(&e.backup(&b2).await.expect("b2").file_path.expect("dir"))
        .join(&data.name);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).expect("write");
    let (id, past) = (
        job.id.clone(),
        serde_json::to_string(&Some(
            (Utc::now() - chrono::Duration::minutes(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ))
        .expect("json"),
    );
    e.catalog()
        .with(move |c| {
            Ok(c.execute(
                "UPDATE settings SET value = ?2 WHERE key = 'restore_test.next.' || ?1",
                [id, past],
            )?)
        })
        .expect("due");
    let third = run_due(false);
    assert_eq!(third["started"], serde_json::json!([]), "no backup was due");
    assert_eq!(
        third["restore_tests"],
        serde_json::json!([job.id]),
        "{third}"
    );
    let outcome = &third["outcomes"][0];
    assert_eq!(outcome["status"], "failed", "{third}");
    assert_eq!(outcome["steps"][0]["backup_id"], b2.as_str());
    assert_eq!(tests_of(&b2), ["passed", "error"]);
    let alert = crate::notify::one_signed_event(&server, "verification.failed");
    assert_eq!(alert["backup_id"], b2.as_str());
    assert!(
        alert["body"]
            .as_str()
            .unwrap_or("")
            .contains("restore test"),
        "{alert}"
    );
    let overview = e.overview(String::new()).await.expect("overview");
    let rt = overview.projects[0]
        .last_restore_test
        .clone()
        .expect("restore test");
    assert!(!rt.ok, "the dashboard shows the failure: {rt:?}");
    // Its next time moved on: the next tick starts nothing.
    let fourth = run_due(true);
    assert_eq!(fourth["restore_tests"], serde_json::json!([]), "{fourth}");
}

/// Each kind of condition against a real database: rows written, the size
/// moving by megabytes, the schema changing; the first run always runs,
/// a run with nothing new is skipped with its reason, and every decision
/// is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn each_condition_kind_skips_and_runs_as_documented() {
    use supabackup::engine::schedule::Condition;
    let db = cluster().create_db("sch_when");
    db.psql("CREATE TABLE t (id int, note text); INSERT INTO t VALUES (1, 'a');");
    let t = with_project(&db, "When").await;
    let job = |when: Vec<Condition>| JobConfig {
        backup: plain(),
        when,
        ..Default::default()
    };
    let mut jobs = Vec::new();
    for when in [
        vec![Condition::Changed],
        vec![Condition::Size {
            percent: None,
            bytes: Some(4 * 1024 * 1024),
        }],
        vec![Condition::Schema],
    ] {
        jobs.push(
            t.engine
                .add_job(job_input("When", "0 3 * * *", job(when)))
                .await
                .expect("job"),
        );
    }
    let writes = || {
        db.psql(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()",
        )
        .parse::<i64>()
        .unwrap_or(0)
    };
    // Backends report their counters on their own schedule: wait until
    // they stop moving.
    let settle = || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = writes();
            std::thread::sleep(Duration::from_millis(1200));
            if a == writes() || Instant::now() > deadline {
                return;
            }
        }
    };
    let run_all = || async {
        let mut out = Vec::new();
        for j in &jobs {
            let o = run_job(&t.engine, j, CancellationToken::new(), &quiet()).await;
            out.push((
                o.status.clone(),
                o.steps[0].detail.clone().unwrap_or_default(),
            ));
        }
        out
    };
    settle();
    let first = run_all().await;
    assert!(first.iter().all(|(s, _)| s == "completed"), "{first:?}");
    settle();
    let idle = run_all().await;
    assert!(idle.iter().all(|(s, _)| s == "skipped"), "{idle:?}");
    assert!(idle[0].1.contains("no row writes"), "{idle:?}");
    assert!(idle[2].1.contains("schema is unchanged"), "{idle:?}");

    // A few rows: only "changed" runs.
    db.psql("INSERT INTO t SELECT g, 'b' FROM generate_series(2, 50) g;");
    settle();
    let rows = run_all().await;
    assert_eq!(
        rows.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["completed", "skipped", "skipped"],
        "{rows:?}"
    );
    assert!(rows[1].1.contains("less than 4.2 MB"), "{rows:?}");

    // A schema change: "schema" runs.
    db.psql("ALTER TABLE t ADD COLUMN added_later int;");
    settle();
    let schema = run_all().await;
    assert_eq!(schema[2].0, "completed", "{schema:?}");
    assert_eq!(schema[1].0, "skipped", "{schema:?}");

    // Megabytes of new rows: "size" runs.
    db.psql(
        "INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 120000) g;",
    );
    settle();
    let grown = run_all().await;
    assert_eq!(grown[1].0, "completed", "{grown:?}");
    assert_eq!(grown[0].0, "completed", "{grown:?}");
    assert_eq!(grown[2].0, "skipped", "{grown:?}");

    let decisions: Vec<(String, String)> = t
        .engine
        .catalog()
        .with(|c| {
            let mut s = c.prepare(
                "SELECT json_extract(event_data, '$.decision'), json_extract(event_data, '$.reason')
                 FROM analytics WHERE event_type = 'job_decision' ORDER BY id",
            )?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .expect("decisions");
    assert_eq!(
        decisions.len(),
        15,
        "every decision is recorded: {decisions:?}"
    );
    assert_eq!(
        decisions.iter().filter(|(d, _)| d == "skipped").count(),
        7,
        "{decisions:?}"
    );
    assert!(
        decisions[0].1.contains("no earlier successful backup"),
        "{decisions:?}"
    );
}

/// Backups started by hand run the project's own hooks — the CLI's and
/// any caller's of `run_backup` — unless `--no-hooks`; a failing pre-hook
/// stops the backup (or only warns), a job's backup runs the job's hooks
/// and not the project's.
#[tokio::test(flavor = "multi_thread")]
async fn manual_backups_run_the_projects_hooks_unless_asked_not_to() {
    use supabackup::engine::schedule::hooks::ProjectHooks;
    let db = cluster().create_db("sch_manual_hooks");
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let t = with_project(&db, "Hooked").await;
    let log = t.dir.path().join("hooks.log");
    let out = cli(
        t.dir.path(),
        &[
            "project",
            "hooks",
            "Hooked",
            "--pre",
            &format!(
                "echo \"pre $SUPABACKUP_PROJECT $SUPABACKUP_STATUS\" >> {}",
                log.display()
            ),
            "--post",
            &format!(
                "echo \"post $SUPABACKUP_STATUS $SUPABACKUP_BACKUP_ID\" >> {}",
                log.display()
            ),
            "--timeout",
            "20",
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("timeout 20 s"), "{}", stdout(&out));
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let backup = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "run",
            "Hooked",
            "--type",
            "schema",
            "--no-encrypt",
        ];
        args.extend_from_slice(extra);
        cli(
            t.dir.path(),
            &args,
            &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
            None,
        )
    };
    let out = backup(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let l = lines();
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0], "pre Hooked running");
    assert!(!id.is_empty());
    assert_eq!(
        l[1],
        format!("post completed {id}"),
        "the post-hook sees the backup"
    );
    // Opted out for one run.
    let out = backup(&["--no-hooks"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines().len(), 2, "no hook ran");
    // A job's backup runs the job's hooks, not the project's.
    let job = t
        .engine
        .add_job(job_input(
            "Hooked",
            "0 3 * * *",
            JobConfig {
                backup: plain(),
                ..Default::default()
            },
        ))
        .await
        .expect("job");
    let o = run_job(&t.engine, &job, CancellationToken::new(), &quiet()).await;
    assert_eq!(o.status, "completed");
    assert_eq!(
        lines().len(),
        2,
        "the project's hooks are for manual backups"
    );
    // A failing pre-hook stops the backup; set to warn, it goes on.
    let failing = |warn: bool| ProjectHooks {
        pre: Some(Hook {
            command: "echo no disk >&2; exit 3".into(),
            timeout_secs: 10,
            on_failure: if warn {
                HookPolicy::Warn
            } else {
                HookPolicy::Abort
            },
        }),
        post: None,
    };
    t.engine
        .set_project_hooks("Hooked", failing(false))
        .await
        .expect("hooks");
    let before = t
        .engine
        .list_backups(Some("Hooked"), 50)
        .await
        .expect("list")
        .len();
    let out = backup(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the backup did not run") && stderr(&out).contains("no disk"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        t.engine
            .list_backups(Some("Hooked"), 50)
            .await
            .expect("list")
            .len(),
        before,
        "nothing was backed up"
    );
    t.engine
        .set_project_hooks("Hooked", failing(true))
        .await
        .expect("hooks");
    let out = backup(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Hooks are checked like a job's.
    let err = t
        .engine
        .set_project_hooks(
            "Hooked",
            ProjectHooks {
                pre: Some(Hook {
                    command: "true".into(),
                    timeout_secs: 0,
                    on_failure: HookPolicy::Abort,
                }),
                post: None,
            },
        )
        .await
        .expect_err("no timeout");
    assert!(err.message.contains("timeout"), "{err}");
}
