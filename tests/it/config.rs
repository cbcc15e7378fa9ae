//! `config export` / `config import`: the whole configuration moved from one
//! data folder to an empty one through the real binary — the same job,
//! alert and destination lists after, the secrets sealed in the file and
//! working after (a webhook signed with the moved secret) — and an import
//! that is all or nothing: conflicts, a wrong passphrase, dangling names
//! and malformed files write nothing.

use std::path::Path;

use serde_json::Value;
use supabackup::engine::config::{ConfigImportOptions, ConfigImportReport};
use supabackup::engine::crypto::Secret;
use supabackup::engine::destination::DestinationInput;
use supabackup::engine::fleet::FleetConfig;
use supabackup::engine::notify::{AlertRule, Channel, EmailChannel, RuleSecrets, SmtpSecurity};
use supabackup::engine::schedule::hooks::ProjectHooks;
use supabackup::engine::schedule::{
    Condition, Hook, HookPolicy, JobConfig, JobInput, JobTz, RestoreTestPlan, Retention,
};
use supabackup::engine::{Engine, ErrorKind};

use crate::notify::{HttpServer, WEBHOOK_SECRET, one_signed_event, webhook_rule};
use crate::support::engine::{
    PASSPHRASE, TestEngine, cli, files_containing, input, stderr, stdout, unlocked_engine,
};

const DB_PASSWORD: &str = "Db-Passw0rd-moved-along";
const S3_SECRET: &str = "S3-Secret-Key-0123456789";
const SMTP_PASSWORD: &str = "Smtp-Passw0rd-moved";
const BACKUP_PASSPHRASE: &str = "backup passphrase moved along";
pub(crate) const EXPORT_PASSPHRASE: &str = "export passphrase for the move";

/// A data folder with two projects, two destinations, a job using all of a
/// job's options, webhook, e-mail and desktop rules, and every setting.
pub(crate) async fn configured(webhook_url: &str) -> TestEngine {
    let t = unlocked_engine().await;
    let e = &t.engine;
    let mut shop = input(
        "Shop",
        "postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres",
    );
    shop.db_password = Some(Secret::new(DB_PASSWORD));
    shop.environment = "production".into();
    e.add_project(shop).await.expect("add Shop");
    e.add_project(input(
        "Blog",
        "postgresql://postgres@db.bbbbbbbbbbbbbbbbbbbb.supabase.co:5432/postgres",
    ))
    .await
    .expect("add Blog");
    let folder = t.dir.path().join("nas");
    e.add_destination(DestinationInput {
        name: "nas".into(),
        url: format!("file://{}", folder.display()),
        ..Default::default()
    })
    .await
    .expect("folder destination");
    e.add_destination(DestinationInput {
        name: "offsite".into(),
        url: "s3://bucket/prefix".into(),
        endpoint: Some("http://127.0.0.1:9".into()),
        region: Some("eu-west-1".into()),
        path_style: true,
        access_key_id: Some("AKIAEXAMPLE".into()),
        secret: Some(Secret::new(S3_SECRET)),
        ..Default::default()
    })
    .await
    .expect("s3 destination");
    let mut config = JobConfig {
        chain: vec!["Blog".into()],
        when: vec![Condition::Changed, Condition::Schema],
        pre_hook: Some(Hook {
            command: "echo before".into(),
            timeout_secs: 60,
            on_failure: HookPolicy::Warn,
        }),
        restore_test: RestoreTestPlan {
            every: Some(3),
            cron: Some("0 4 * * 0".into()),
        },
        ..Default::default()
    };
    config.store.destinations = vec!["offsite".into()];
    config.store.failover = Some("nas".into());
    config.destination_retention.insert(
        "offsite".into(),
        Retention {
            keep_days: Some(30),
            ..Default::default()
        },
    );
    e.add_job(JobInput {
        project: "Shop".into(),
        name: Some("nightly".into()),
        cron: "0 3 * * *".into(),
        timezone: JobTz::parse("Europe/Berlin").expect("tz"),
        config,
        retention: Retention {
            keep_last: Some(14),
            ..Default::default()
        },
        enabled: true,
    })
    .await
    .expect("job");
    e.add_job(JobInput {
        project: "Blog".into(),
        name: Some("hourly".into()),
        cron: "15 * * * *".into(),
        timezone: JobTz::default(),
        config: JobConfig::default(),
        retention: Retention::default(),
        enabled: false,
    })
    .await
    .expect("second job");
    e.save_alert_rule(
        webhook_rule(None, webhook_url),
        Some(Secret::new(WEBHOOK_SECRET)),
        None,
    )
    .await
    .expect("webhook rule");
    let email = AlertRule {
        project_id: Some("Shop".into()),
        on_restore_failure: true,
        stale_after_hours: Some(30),
        channels: vec![Channel::Email(EmailChannel {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 587,
            security: SmtpSecurity::StartTls,
            username: Some("alerts".into()),
            from: "backups@example.com".into(),
            to: vec!["ops@example.com".into()],
        })],
        ..AlertRule::default()
    };
    e.save_alert_rule_with(
        email,
        RuleSecrets {
            smtp: Some(Secret::new(SMTP_PASSWORD)),
            ..Default::default()
        },
    )
    .await
    .expect("e-mail rule");
    e.ensure_default_alert_rule().await.expect("desktop rule");
    e.set_scratch_url("postgresql://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("scratch");
    e.set_probe_interval("Shop", Some(5)).await.expect("probe");
    e.set_project_hooks(
        "Blog",
        ProjectHooks {
            post: Some(Hook {
                command: "echo after".into(),
                timeout_secs: 30,
                on_failure: HookPolicy::Abort,
            }),
            pre: None,
        },
    )
    .await
    .expect("project hooks");
    e.set_backup_passphrase(Secret::new(BACKUP_PASSPHRASE))
        .await
        .expect("backup passphrase");
    // The Supabase account, checked against a local Management API.
    let api = crate::fleet::ManagementApi::start();
    api.route(
        "/v1/organizations",
        serde_json::json!([{"id": "acme", "name": "Acme"}]),
    );
    e.set_fleet_config(FleetConfig {
        api_url: api.url(),
        organization: Some("acme".into()),
        interval_minutes: 30,
        ..Default::default()
    })
    .await
    .expect("fleet config");
    e.set_fleet_token(Secret::new(crate::fleet::TOKEN))
        .await
        .expect("fleet token");
    t
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SUPABACKUP_PASSPHRASE", PASSPHRASE),
        ("SUPABACKUP_EXPORT_PASSPHRASE", EXPORT_PASSPHRASE),
    ]
}

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args, &env(), None);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A list as JSON, without what differs between machines by nature (ids,
/// times, run state), projects named instead of referenced by id.
fn normalized(dir: &Path, what: &str, names: &[(String, String)]) -> Value {
    let text = run_ok(dir, &[what, "list", "--json"]);
    let mut v: Value = serde_json::from_str(&text).expect("list JSON");
    fn walk(v: &mut Value, names: &[(String, String)]) {
        match v {
            Value::Object(map) => {
                for k in [
                    "id",
                    "created_at",
                    "updated_at",
                    "next_run_at",
                    "last_run_at",
                    "last_status",
                ] {
                    map.remove(k);
                }
                for (_, child) in map.iter_mut() {
                    walk(child, names);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, names)),
            Value::String(s) => {
                if let Some((_, name)) = names.iter().find(|(id, _)| id == s) {
                    *s = format!("project:{name}");
                }
            }
            _ => {}
        }
    }
    walk(&mut v, names);
    // The order of equal lists may differ (the rule here first, say).
    if let Value::Array(items) = &mut v {
        items.sort_by_key(|i| i.to_string());
    }
    v
}

async fn project_names(e: &Engine) -> Vec<(String, String)> {
    e.list_projects()
        .await
        .expect("projects")
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_configuration_moves_to_an_empty_data_dir() {
    let server = HttpServer::start(&[]);
    let a = configured(&server.url("/hooks")).await;
    let out_dir = tempfile::tempdir().expect("tempdir");
    let file = out_dir.path().join("conf.json");
    let file_s = file.display().to_string();
    // The desktop app's preferences travel too.
    let prefs = supabackup::ui::prefs::Prefs {
        theme: supabackup::ui::prefs::ThemeChoice::Light,
        ..Default::default()
    };
    supabackup::ui::prefs::save(&a.engine.data_dir().app_prefs(), &prefs).expect("prefs");
    let said = run_ok(
        a.dir.path(),
        &["config", "export", &file_s, "--include-secrets"],
    );
    assert!(
        said.contains("2 project(s), 2 destination(s), 2 job(s), 3 alert rule(s)"),
        "{said}"
    );
    // No secret is in the file in clear.
    for secret in [
        DB_PASSWORD,
        S3_SECRET,
        SMTP_PASSWORD,
        WEBHOOK_SECRET,
        BACKUP_PASSPHRASE,
        PASSPHRASE,
        EXPORT_PASSPHRASE,
        crate::fleet::TOKEN,
    ] {
        assert!(
            files_containing(out_dir.path(), secret.as_bytes()).is_empty(),
            "{secret} is in the export"
        );
    }

    let b = unlocked_engine().await;
    // The desktop app's own default rule is there before the import: the
    // file's equal rule is skipped, not doubled.
    b.engine
        .ensure_default_alert_rule()
        .await
        .expect("default rule");
    let dry = run_ok(b.dir.path(), &["config", "import", &file_s, "--dry-run"]);
    assert!(
        dry.starts_with("Dry run: would import 2 project(s)"),
        "{dry}"
    );
    assert!(
        b.engine.list_jobs().await.expect("jobs").is_empty(),
        "a dry run writes nothing"
    );
    let done = run_ok(b.dir.path(), &["config", "import", &file_s]);
    assert!(done.starts_with("Imported 2 project(s), 2 destination(s), 2 job(s), 2 alert rule(s) (1 already here, kept)"), "{done}");

    let (na, nb) = (
        project_names(&a.engine).await,
        project_names(&b.engine).await,
    );
    for what in ["job", "alert", "destination", "project"] {
        assert_eq!(
            normalized(a.dir.path(), what, &na),
            normalized(b.dir.path(), what, &nb),
            "`{what} list` differs after the move"
        );
    }
    assert_eq!(
        run_ok(a.dir.path(), &["destination", "list"]),
        run_ok(b.dir.path(), &["destination", "list"])
    );
    // What the lists do not show moved too.
    let eb = &b.engine;
    assert_eq!(
        eb.backup_passphrase().await.expect("read"),
        Some(Secret::new(BACKUP_PASSPHRASE))
    );
    assert_eq!(
        eb.scratch_server_url().await.expect("scratch"),
        a.engine.scratch_server_url().await.expect("scratch")
    );
    assert!(
        eb.scratch_server_url()
            .await
            .expect("scratch")
            .is_some_and(|u| u.starts_with("postgresql://postgres@127.0.0.1:5432/postgres"))
    );
    assert_eq!(eb.probe_interval("Shop").await.expect("probe"), 5);
    assert_eq!(
        eb.project_hooks("Blog")
            .await
            .expect("hooks")
            .post
            .map(|h| h.command),
        Some("echo after".into())
    );
    assert!(eb.project("Shop").await.expect("Shop").has_db_password);
    assert_eq!(
        eb.fleet_config().await.expect("fleet"),
        a.engine.fleet_config().await.expect("fleet")
    );
    assert!(eb.has_fleet_token().await.expect("token"));
    assert_eq!(
        supabackup::ui::prefs::load(&eb.data_dir().app_prefs()).expect("prefs here"),
        prefs
    );
    assert!(eb.destination("offsite").await.expect("offsite").has_secret);
    // The webhook rule signs with the moved secret.
    let rules = eb.alert_rules().await.expect("rules");
    let hook = rules
        .iter()
        .find(|r| r.channels.iter().any(|c| c.kind() == "webhook"))
        .expect("webhook rule");
    assert!(hook.enabled);
    let out = eb
        .send_test_alert(&hook.id, &eb.delivery())
        .await
        .expect("test alert");
    assert!(out.iter().all(|o| o.error.is_none()), "{out:?}");
    one_signed_event(&server, "test");
    // The audit log says who imported what.
    let audit = run_ok(b.dir.path(), &["audit", "--action", "config.", "--json"]);
    assert!(audit.contains("config.import"), "{audit}");

    // Importing again: everything exists here, so nothing is written.
    let again = cli(b.dir.path(), &["config", "import", &file_s], &env(), None);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("projects 'Shop': a project named 'Shop' exists here"),
        "{}",
        stderr(&again)
    );
    assert_eq!(eb.list_jobs().await.expect("jobs").len(), 2);
    // Keeping what exists imports nothing new and says so.
    let kept = run_ok(
        b.dir.path(),
        &["config", "import", &file_s, "--skip-existing"],
    );
    assert!(
        kept.starts_with("Imported 0 project(s) (2 already here, kept), 0 destination(s) (2 already here, kept), 0 job(s) (2 already here, kept), 0 alert rule(s) (3 already here, kept)"),
        "{kept}"
    );
    assert_eq!(eb.list_jobs().await.expect("jobs").len(), 2);
    assert_eq!(eb.alert_rules().await.expect("rules").len(), 3);
}

async fn import(e: &Engine, file: &Path, opts: ConfigImportOptions) -> ConfigImportReport {
    e.import_config(file, opts).await.expect("import report")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_is_all_or_nothing() {
    let a = configured("https://hooks.example.com/x").await;
    let sealed = a.dir.path().join("sealed.json");
    let plain = a.dir.path().join("plain.json");
    run_ok(
        a.dir.path(),
        &[
            "config",
            "export",
            &sealed.display().to_string(),
            "--include-secrets",
        ],
    );
    run_ok(
        a.dir.path(),
        &["config", "export", &plain.display().to_string()],
    );

    // A wrong passphrase: every value it cannot open is named; nothing in.
    let b = unlocked_engine().await;
    let wrong = import(
        &b.engine,
        &sealed,
        ConfigImportOptions {
            secrets_passphrase: Some(Secret::new("not the export passphrase")),
            ..Default::default()
        },
    )
    .await;
    assert!(!wrong.applied);
    assert!(
        wrong
            .problems
            .iter()
            .any(|p| p.section == "projects" && p.reason.contains("wrong passphrase")),
        "{:?}",
        wrong.problems
    );
    assert!(
        wrong
            .problems
            .iter()
            .any(|p| p.section == "destinations" && p.item == "offsite")
    );
    assert!(b.engine.list_projects().await.expect("list").is_empty());
    assert!(b.engine.list_destinations().await.expect("list").is_empty());
    // Sealed secrets and no passphrase: refused before anything is read.
    let none = b
        .engine
        .import_config(&sealed, ConfigImportOptions::default())
        .await
        .expect_err("needs the passphrase");
    assert!(none.message.contains("encrypted secrets"), "{none}");

    // Without secrets: imported, the rules that need one disabled, noted.
    let bare = import(&b.engine, &plain, ConfigImportOptions::default()).await;
    assert!(bare.applied, "{:?}", bare.problems);
    assert!(
        bare.warnings
            .iter()
            .any(|w| w.contains("imported disabled") && w.contains("webhook signing secret")),
        "{:?}",
        bare.warnings
    );
    let rules = b.engine.alert_rules().await.expect("rules");
    assert_eq!(rules.len(), 3);
    assert_eq!(rules.iter().filter(|r| !r.enabled).count(), 2, "{rules:?}");
    assert!(
        !b.engine
            .project("Shop")
            .await
            .expect("Shop")
            .has_db_password
    );
    assert!(
        !b.engine
            .destination("offsite")
            .await
            .expect("offsite")
            .has_secret
    );
    // The destination says what it lacks, and takes its secret later.
    let Err(lacks) = b.engine.open_destination("offsite").await else {
        panic!("a destination without its secret opened");
    };
    assert!(
        lacks
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("destination set-secret offsite")),
        "{lacks:?}"
    );
    let set = cli(
        b.dir.path(),
        &["destination", "set-secret", "offsite", "--secret-stdin"],
        &env(),
        Some(S3_SECRET),
    );
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(
        b.engine
            .destination("offsite")
            .await
            .expect("offsite")
            .has_secret
    );
    assert!(b.engine.open_destination("offsite").await.is_ok());
    assert_eq!(b.engine.backup_passphrase().await.expect("read"), None);
    assert!(!b.engine.has_fleet_token().await.expect("token"));

    // A dangling name and a bad cron in an otherwise good file: both are
    // named, nothing is written.
    let c = unlocked_engine().await;
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(&plain).expect("read")).expect("json");
    v["jobs"][0]["project"] = "Nowhere".into();
    v["jobs"][1]["cron"] = "61 * * * *".into();
    let broken = c.dir.path().join("broken.json");
    std::fs::write(&broken, serde_json::to_vec(&v).expect("json")).expect("write");
    let r = import(&c.engine, &broken, ConfigImportOptions::default()).await;
    assert!(!r.applied);
    let reasons: Vec<String> = r
        .problems
        .iter()
        .map(|p| format!("{} {}: {}", p.section, p.item, p.reason))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("'Nowhere' is neither in the file nor here"),
        "{reasons:?}"
    );
    assert!(reasons[1].starts_with("jobs hourly:"), "{reasons:?}");
    assert!(c.engine.list_projects().await.expect("list").is_empty());

    // Files that are not a configuration get one clear error.
    let cases: [(&str, &str, &str); 5] = [
        ("garbage.json", "{ not json", "is not valid JSON"),
        (
            "projects.json",
            r#"{"format": "supabackup.projects", "version": 1, "projects": []}"#,
            "is a project export",
        ),
        (
            "future.json",
            r#"{"format": "supabackup.config", "version": 9}"#,
            "has configuration version 9",
        ),
        (
            "typo.json",
            r#"{"format": "supabackup.config", "version": 1, "prjects": []}"#,
            "unknown field `prjects`",
        ),
        ("missing.json", "", "does not exist"),
    ];
    for (name, body, says) in cases {
        let path = c.dir.path().join(name);
        if !body.is_empty() {
            std::fs::write(&path, body).expect("write");
        }
        let err = c
            .engine
            .import_config(&path, ConfigImportOptions::default())
            .await
            .expect_err(name);
        assert!(err.message.contains(says), "{name}: {err}");
        assert!(
            matches!(err.kind, ErrorKind::Invalid | ErrorKind::NotFound),
            "{name}: {err:?}"
        );
    }
    assert!(c.engine.list_jobs().await.expect("jobs").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_keeps_the_channel_secrets_already_here() {
    let a = configured("https://hooks.example.com/x").await;
    let sealed = a.dir.path().join("sealed.json");
    run_ok(
        a.dir.path(),
        &[
            "config",
            "export",
            &sealed.display().to_string(),
            "--include-secrets",
        ],
    );
    // This machine already signs its global webhooks with its own secret.
    let server = HttpServer::start(&[]);
    let own = "whsec-Here-0123456789abcdef";
    let d = unlocked_engine().await;
    let mine = d
        .engine
        .save_alert_rule(
            AlertRule {
                on_success: true,
                ..webhook_rule(None, &server.url("/mine"))
            },
            Some(Secret::new(own)),
            None,
        )
        .await
        .expect("own rule");
    let r = import(
        &d.engine,
        &sealed,
        ConfigImportOptions {
            secrets_passphrase: Some(Secret::new(EXPORT_PASSPHRASE)),
            ..Default::default()
        },
    )
    .await;
    assert!(r.applied, "{:?}", r.problems);
    let out = d
        .engine
        .send_test_alert(&mine.id, &d.engine.delivery())
        .await
        .expect("test alert");
    assert!(out.iter().all(|o| o.error.is_none()), "{out:?}");
    let reqs = server.requests();
    let hit = reqs.iter().find(|q| q.path == "/mine").expect("sent");
    let ts = &hit.headers["x-supabackup-timestamp"];
    assert_eq!(
        hit.headers["x-supabackup-signature"],
        format!("sha256={}", crate::notify::hmac_hex(own, ts, &hit.body)),
        "the secret here was replaced by the file's"
    );
}
