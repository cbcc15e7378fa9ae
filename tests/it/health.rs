//! Live health: the scheduler's probes of a server of the test's own —
//! recorded as a history, read by the dashboard, and alerting (signed
//! webhook) when the database grows past a rule's percentage and when the
//! server is stopped, once per outage.

use chrono::{Duration, Utc};
use supabackup::engine::notify::AlertRule;
use supabackup::engine::schedule::{Scheduler, SchedulerConfig};

use crate::support::engine::{PASSPHRASE, cli, input, stderr, stdout, unlocked_engine};

async fn tick(s: &mut Scheduler, at: chrono::DateTime<Utc>) -> Vec<String> {
    let report = s.tick(at).await.expect("tick");
    for h in report.probes {
        h.await.expect("probe task");
    }
    report.probed
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_keep_a_history_and_alert_on_growth_and_when_the_server_stops() {
    let c = crate::support::pg::own_cluster();
    let t = unlocked_engine().await;
    let e = &t.engine;
    let p = e
        .add_project(input("Probed", &c.url("postgres")))
        .await
        .expect("project");
    let server = crate::notify::HttpServer::start(&[]);
    e.save_alert_rule(
        AlertRule {
            on_failure: false,
            on_unreachable: true,
            size_growth_percent: Some(10),
            ..crate::notify::webhook_rule(None, &server.url("/hooks"))
        },
        Some(supabackup::engine::crypto::Secret::new(
            crate::notify::WEBHOOK_SECRET,
        )),
        None,
    )
    .await
    .expect("rule");
    let mut s = Scheduler::new(
        e.clone(),
        SchedulerConfig {
            use_lease: false,
            ..SchedulerConfig::default()
        },
    );
    let start = Utc::now();
    // The first tick probes the project (never probed: due at once).
    assert_eq!(tick(&mut s, start).await, std::slice::from_ref(&p.id));
    let history = e.probe_history("Probed", None, 10).await.expect("history");
    assert_eq!(history.len(), 1);
    let first = &history[0].probe;
    assert!(first.ok, "{first:?}");
    assert_eq!(first.server_major, Some(c.server_major()));
    assert_eq!(
        first.max_connections,
        Some(200),
        "the test cluster's setting"
    );
    assert!(first.connections.is_some_and(|n| n >= 1));
    assert!(first.database_size_bytes.is_some_and(|b| b > 0));
    assert!(first.latency_ms.is_some() && first.cache_hit_ratio.is_some());
    assert!(
        first
            .pg_dump
            .as_deref()
            .is_some_and(|d| d.contains("pg_dump")),
        "{first:?}"
    );
    // Not due again before the interval (15 min by default).
    assert!(tick(&mut s, start + Duration::minutes(5)).await.is_empty());
    assert!(
        server.requests().is_empty(),
        "a healthy probe alerts nobody"
    );

    // A day ago the database was a third of its size: growth is alerted.
    let size = first.database_size_bytes.unwrap_or(0);
    let (pid, then, data) = (
        p.id.clone(),
        (Utc::now() - Duration::hours(25)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        serde_json::json!({"ok": true, "database_size_bytes": size / 3}).to_string(),
    );
    e.catalog()
        .with(move |c| {
            Ok(c.execute(
                "INSERT INTO analytics (project_id, event_type, event_data, created_at)
                 VALUES (?1, 'health_probe', ?2, ?3)",
                [pid, data, then],
            )?)
        })
        .expect("an older probe");
    assert_eq!(
        tick(&mut s, start + Duration::minutes(16)).await,
        std::slice::from_ref(&p.id)
    );
    let grew = crate::notify::one_signed_event(&server, "health.size_grew");
    assert_eq!(grew["project"], "Probed");
    assert!(
        grew["details"]["growth_percent"]
            .as_f64()
            .is_some_and(|g| g > 150.0),
        "{grew}"
    );

    // The server stops: the next probe is down and alerts once.
    c.stop();
    assert_eq!(
        tick(&mut s, start + Duration::minutes(32)).await,
        std::slice::from_ref(&p.id)
    );
    let down = crate::notify::one_signed_event(&server, "health.unreachable");
    assert_eq!(down["project_id"], p.id.as_str());
    assert!(!down["details"]["error"].as_str().unwrap_or("").is_empty());
    tick(&mut s, start + Duration::minutes(48)).await;
    let _ = crate::notify::one_signed_event(&server, "health.unreachable");
    let history = e.probe_history("Probed", None, 10).await.expect("history");
    assert_eq!(history.len(), 5, "every probe is kept: {history:?}");
    assert!(!history[0].probe.ok && !history[1].probe.ok && history[2].probe.ok);
    // The dashboard's health column reads the newest probe.
    let overview = e.overview(String::new()).await.expect("overview");
    let health = overview.projects[0].last_test.clone().expect("health");
    assert!(!health.ok && health.error.is_some(), "{health:?}");

    // The CLI shows the history and turns the probes off.
    let out = cli(
        t.dir.path(),
        &["project", "health", "Probed", "--history", "--json"],
        &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(5));
    let out = cli(
        t.dir.path(),
        &["project", "health", "Probed", "--interval", "0"],
        &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no longer probed"),
        "{}",
        stdout(&out)
    );
    assert!(
        tick(&mut s, start + Duration::hours(3)).await.is_empty(),
        "a project with probes off is not probed"
    );
    // Probing by hand says the server is down, with the connection's kind.
    let out = cli(
        t.dir.path(),
        &["project", "health", "Probed"],
        &[("SUPABACKUP_PASSPHRASE", PASSPHRASE)],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not reachable"), "{}", stderr(&out));
}
