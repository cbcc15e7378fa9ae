//! Catalogs with many projects and a history of backups, analytics events
//! and schedules — for screenshots, the smoke run and frame timing. Rows are
//! written straight into the catalog (the backups have no files).

use chrono::{Duration, Utc};
use rusqlite::params;
use serde_json::json;
use supabackup::engine::Engine;
use supabackup::engine::project::ProjectInput;

const NAMES: [&str; 10] = [
    "Acme Shop",
    "Billing",
    "Customer Portal",
    "Analytics",
    "Inventory",
    "Mobile API",
    "Marketing Site",
    "Support Desk",
    "Payments",
    "Identity",
];

/// A tiny deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Adds `projects` projects and `backups` backups spread over 60 days.
pub async fn populate(engine: &Engine, projects: usize, backups: usize) {
    let mut ids = Vec::new();
    for i in 0..projects {
        let base = NAMES[i % NAMES.len()];
        let name = if i < NAMES.len() {
            base.to_owned()
        } else {
            format!("{base} {}", i / NAMES.len() + 1)
        };
        let env = ["production", "staging", "development"][i % 3];
        let r: String = format!("{:0<20}", format!("proj{i}"))
            .chars()
            .take(20)
            .collect();
        let p = engine
            .add_project(ProjectInput {
                name,
                project_ref: r.clone(),
                db_url: format!(
                    "postgresql://postgres.{r}@aws-0-eu-west-1.pooler.supabase.com:5432/postgres"
                ),
                environment: env.into(),
                ..Default::default()
            })
            .await
            .expect("add project");
        ids.push((p.id, p.name, p.project_ref));
    }
    let now = Utc::now();
    engine
        .catalog()
        .call(move |c| {
            let tx = supabackup::engine::catalog::immediate(c)?;
            let mut rng = Lcg(42);
            for n in 0..backups {
                let (pid, name, pref) = &ids[n % ids.len()];
                let age_min = (backups - n) as i64 * 60 * 24 * 60 / backups.max(1) as i64;
                let mut created = now - Duration::minutes(age_min) - Duration::minutes(rng.below(30) as i64);
                // Marketing has had no backup for ten days: stale.
                if name.starts_with("Marketing") && age_min < 60 * 24 * 10 {
                    created -= Duration::days(10);
                }
                let roll = rng.below(100);
                // The Payments project keeps failing lately; Marketing is stale.
                let recent = age_min < 60 * 24 * 3;
                let status = if (name.starts_with("Payments") && recent) || roll < 6 {
                    "failed"
                } else if roll < 8 {
                    "cancelled"
                } else {
                    "completed"
                };
                let plain = 20_000_000 + rng.below(400_000_000) as i64;
                let stored = plain / (3 + rng.below(3) as i64);
                let duration_ms = 4_000 + (plain / 25_000) + rng.below(20_000) as i64;
                let completed = created + Duration::milliseconds(duration_ms);
                let id = format!("{:08x}-{:04x}-7000-8000-{:012x}", created.timestamp(), n % 65536, n);
                let kind = if rng.below(10) == 0 { "schema" } else { "full" };
                let ok = status == "completed";
                tx.execute(
                    "INSERT INTO backups (id, project_id, project_name, project_ref, backup_type, status, file_path,
                        file_size, checksum, error_message, created_at, started_at, completed_at, verified_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13)",
                    params![
                        id,
                        pid,
                        name,
                        pref,
                        kind,
                        status,
                        format!("/nonexistent/backups/{id}"),
                        ok.then_some(stored),
                        ok.then(|| format!("{:064x}", n)),
                        (status == "failed").then_some("could not connect to the server: connection timed out"),
                        ts(created),
                        ts(completed),
                        (ok && rng.below(3) == 0).then(|| ts(completed + Duration::minutes(5))),
                    ],
                )?;
                let event = if ok {
                    json!({"backup_id": id, "status": status, "type": kind, "duration_ms": duration_ms,
                           "stored_bytes": stored, "plain_bytes": plain,
                           "throughput_bps": plain as f64 * 1000.0 / duration_ms as f64})
                } else {
                    json!({"backup_id": id, "status": status, "type": kind, "duration_ms": duration_ms / 3,
                           "error": "connection timed out"})
                };
                tx.execute(
                    "INSERT INTO analytics (project_id, event_type, event_data, created_at) VALUES (?1, 'backup', ?2, ?3)",
                    params![pid, event.to_string(), ts(completed)],
                )?;
            }
            for (i, (pid, name, _)) in ids.iter().enumerate() {
                let ok = !name.starts_with("Identity");
                let data = if ok {
                    json!({"ok": true, "server_version": "17.4", "latency_ms": 8.0 + (i % 7) as f64 * 3.1})
                } else {
                    json!({"ok": false, "error": "password authentication failed for user \"postgres\""})
                };
                tx.execute(
                    "INSERT INTO analytics (project_id, event_type, event_data, created_at) VALUES (?1, 'connection_test', ?2, ?3)",
                    params![pid, data.to_string(), ts(now - Duration::hours(2))],
                )?;
                if i % 2 == 0 {
                    tx.execute(
                        "INSERT INTO backup_jobs (id, project_id, name, cron_expression, next_run_at, created_at, updated_at)
                         VALUES (?1, ?2, 'nightly', '0 3 * * *', ?3, ?4, ?4)",
                        params![format!("job-{i}"), pid, ts(now + Duration::hours(3 + i as i64 % 20)), ts(now)],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .expect("seed catalog");
}
