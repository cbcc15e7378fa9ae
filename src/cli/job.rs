//! `supabackup job ...`, `daemon`, `prune`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{output, prompt};
use crate::engine::backup::{BackupKind, BackupOptions, Codec};
use crate::engine::destination::copies::StorePlan;
use crate::engine::schedule::{
    ChainPolicy, Condition, CronExpr, Gfs, Hook, HookPolicy, JobConfig, JobInput, JobTz,
    RestoreTestPlan, Retention, Scheduler, SchedulerConfig,
};
use crate::engine::{Engine, Error, Result};

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Schedule backups of a project.
    Add(Box<AddArgs>),
    /// List jobs with their last and next runs.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a job (its backups stay).
    Remove {
        /// Job id (`job list` shows them).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Enable a job: it runs on its schedule again.
    Enable {
        /// Job id (`job list` shows them).
        id: String,
    },
    /// Disable a job: it keeps its settings but does not run.
    Disable {
        /// Job id (`job list` shows them).
        id: String,
    },
    /// Show or set the scratch server restore tests use (scheduled ones and
    /// `verify --restore-test` without --scratch-url): a PostgreSQL where a
    /// throw-away database can be created and dropped. Without it, a local
    /// server is used as libpq finds it.
    ScratchServer {
        /// postgresql://USER@HOST:PORT/DB, without a password (it comes
        /// from ~/.pgpass).
        url: Option<String>,
    },
    /// Run one scheduler tick: start the due jobs, wait for them, exit.
    RunDue {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the next run times of a cron expression.
    NextRuns {
        /// The expression, as in crontab(5) (5 fields, or 6 with seconds first).
        #[arg(long)]
        cron: String,
        /// The time zone it is read in: local, utc or an IANA name (Europe/Berlin).
        #[arg(long, default_value = "local")]
        tz: String,
        /// How many run times to show.
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
        /// Start from this instant (RFC 3339) instead of now.
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Project name, id or ref.
    project: String,
    /// Cron expression as in crontab(5): 5 fields (`0 3 * * 1-5` = 03:00
    /// Monday to Friday; weekdays 0-7 or SUN-SAT, 0 and 7 = Sunday; a day
    /// matching either day field when both are set), 6 with seconds first,
    /// or @hourly, @daily, @weekly, @monthly, @yearly.
    #[arg(long)]
    cron: String,
    /// A name for the job (default: the project and the expression).
    #[arg(long)]
    name: Option<String>,
    /// full = roles + schema + data + migration history; or schema, data, roles.
    #[arg(long = "type", default_value = "full", value_parser = ["full", "schema", "data", "roles"])]
    kind: String,
    /// Only these schemas, by exact name (case matters; comma-separated or
    /// repeated; quote a name holding a comma or dot: '"a.b"').
    #[arg(long)]
    schema: Vec<String>,
    /// Leave these tables' rows out, as schema.table (comma-separated or
    /// repeated; quote parts holding a dot: '"My.App"."Tab le"').
    #[arg(long = "exclude-table")]
    exclude_table: Vec<String>,
    /// zstd (fast, the default), xz (smaller, slower) or none.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "xz", "none"])]
    compression: String,
    /// Compression level 0–9 (default: zstd 3, xz 6).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    level: Option<u8>,
    /// pg_dump processes dumping the largest tables' rows side by side, from
    /// one snapshot (1–8; default 2; incremental backups always use 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8))]
    streams: Option<u8>,
    /// Store the files unencrypted (default: encrypted with the backup passphrase).
    #[arg(long)]
    no_encrypt: bool,
    /// Keep the newest N backups.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep backups younger than D days.
    #[arg(long)]
    keep_days: Option<u32>,
    /// Grandfather-father-son: DAILY,WEEKLY,MONTHLY counts, e.g. 7,4,12.
    #[arg(long, value_delimiter = ',', num_args = 3)]
    gfs: Vec<u32>,
    /// The time zone the expression is read in: local, utc or an IANA name
    /// such as Europe/Berlin (DST changes follow that zone).
    #[arg(long, default_value = "local")]
    tz: String,
    /// Copy each backup to these destinations (comma-separated names; see
    /// `supabackup destination list`).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    destination: Vec<String>,
    /// Used instead of a destination that cannot be reached (the run
    /// completes; failure alerts say so).
    #[arg(long, value_name = "NAME", requires = "destination")]
    failover: Option<String>,
    /// Keep no local copy: the folder is removed once every copy is
    /// stored and verified (it stays when one failed).
    #[arg(long, requires = "destination")]
    no_local: bool,
    /// Retention at a destination, e.g. `bucket:last=12` or
    /// `nas:days=30,gfs=7/4/12` (repeat per destination; --keep-* rules are
    /// the local folder's).
    #[arg(long = "retention-at", value_name = "NAME:RULES")]
    retention_at: Vec<String>,
    /// A disaster-recovery drill after each run: restore-test the new
    /// backup straight from this destination's copy (scratch server from
    /// Settings or `verify --scratch-url`); the run fails if it does not pass.
    #[arg(long, value_name = "NAME", requires = "destination")]
    drill_from: Option<String>,
    /// Restore-test every Nth successful backup (1: every one) into a
    /// throw-away database on the scratch server (Settings or
    /// `settings set-scratch-url`); a failure raises verification.failed.
    #[arg(long, value_name = "N")]
    restore_test_every: Option<u32>,
    /// Restore-test the newest backup of each project on this cron
    /// schedule of its own (same zone as --tz), e.g. '0 4 * * 0'.
    #[arg(long, value_name = "CRON")]
    restore_test_cron: Option<String>,
    /// More projects backed up after this one, in order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    chain: Vec<String>,
    /// Stop the chain at the first failed project (default: continue).
    #[arg(long)]
    chain_stop_on_failure: bool,
    /// Run only when one of these holds since the job's last successful
    /// backup of the project (comma-separated or repeated): `changed` (rows
    /// were written), `size:+10%` or `size:+50MB` (the size grew or shrank
    /// by that much), `schema` (the schema fingerprint changed). Each
    /// decision is recorded (`job_decision`).
    #[arg(long, value_name = "CONDITION", value_delimiter = ',')]
    when: Vec<String>,
    /// Skip when the database has not changed since the last successful
    /// backup (the same as --when changed,size:+1B).
    #[arg(long)]
    skip_if_unchanged: bool,
    /// Command run before each backup (sh -c).
    #[arg(long)]
    pre_hook: Option<String>,
    /// Command run after each backup (sh -c).
    #[arg(long)]
    post_hook: Option<String>,
    /// Hook timeout in seconds.
    #[arg(long, default_value_t = 300)]
    hook_timeout: u64,
    /// A failing pre-hook only warns (default: it aborts the backup).
    #[arg(long)]
    hook_warn_only: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `NAME:last=N,days=D,gfs=D/W/M` → (name, rules).
fn parse_retention_at(text: &str) -> Result<(String, Retention)> {
    let bad = |why: &str| {
        Error::invalid(format!("--retention-at '{text}': {why}"))
            .with_hint("write NAME:last=N,days=D,gfs=DAILY/WEEKLY/MONTHLY, e.g. bucket:last=12")
    };
    let (name, rules) = text
        .split_once(':')
        .ok_or_else(|| bad("no ':' after the name"))?;
    let mut r = Retention::default();
    for part in rules.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("a rule needs '='"))?;
        let num = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| bad("not a whole number"))
        };
        match k.trim() {
            "last" => r.keep_last = Some(num(v)?),
            "days" => r.keep_days = Some(num(v)?),
            "gfs" => {
                let n: Vec<u32> = v.split('/').map(num).collect::<Result<_>>()?;
                let [daily, weekly, monthly] = n.as_slice() else {
                    return Err(bad("gfs takes DAILY/WEEKLY/MONTHLY"));
                };
                r.gfs = Some(crate::engine::schedule::retention::Gfs {
                    daily: *daily,
                    weekly: *weekly,
                    monthly: *monthly,
                });
            }
            other => return Err(bad(&format!("unknown rule '{other}' (last, days, gfs)"))),
        }
    }
    if r.is_empty() {
        return Err(bad("no rule given"));
    }
    Ok((name.trim().to_owned(), r))
}

pub async fn run(engine: &Engine, cmd: JobCmd) -> Result<i32> {
    match cmd {
        JobCmd::Add(a) => {
            let hook = |c: Option<String>| {
                c.map(|command| Hook {
                    command,
                    timeout_secs: a.hook_timeout,
                    on_failure: if a.hook_warn_only {
                        HookPolicy::Warn
                    } else {
                        HookPolicy::Abort
                    },
                })
            };
            let input = JobInput {
                project: a.project.clone(),
                name: a.name.clone(),
                cron: a.cron.clone(),
                timezone: JobTz::parse(&a.tz)?,
                config: JobConfig {
                    backup: BackupOptions {
                        kind: BackupKind::parse(&a.kind)?,
                        schemas: super::names(&a.schema),
                        exclude_tables: super::names(&a.exclude_table),
                        codec: Codec::parse(&a.compression)?,
                        level: a.level,
                        encrypt: !a.no_encrypt,
                        streams: a.streams,
                    },
                    chain: a.chain.clone(),
                    chain_policy: if a.chain_stop_on_failure {
                        ChainPolicy::Stop
                    } else {
                        ChainPolicy::Continue
                    },
                    when: a
                        .when
                        .iter()
                        .map(|w| Condition::parse(w))
                        .collect::<Result<_>>()?,
                    skip_if_unchanged: a.skip_if_unchanged,
                    min_size_change: 0,
                    store: StorePlan {
                        destinations: a.destination.clone(),
                        drop_local: a.no_local,
                        failover: a.failover.clone(),
                    },
                    destination_retention: a
                        .retention_at
                        .iter()
                        .map(|r| parse_retention_at(r))
                        .collect::<Result<_>>()?,
                    drill_from: a.drill_from.clone(),
                    restore_test: RestoreTestPlan {
                        every: a.restore_test_every,
                        cron: a.restore_test_cron.clone(),
                    },
                    pre_hook: hook(a.pre_hook.clone()),
                    post_hook: hook(a.post_hook.clone()),
                },
                retention: Retention {
                    keep_last: a.keep_last,
                    keep_days: a.keep_days,
                    gfs: (a.gfs.len() == 3).then(|| Gfs {
                        daily: a.gfs[0],
                        weekly: a.gfs[1],
                        monthly: a.gfs[2],
                    }),
                },
                enabled: true,
            };
            if input.config.backup.encrypt {
                prompt::unlock(engine).await?;
                if engine.backup_passphrase().await?.is_none() {
                    return Err(Error::auth(
                        "scheduled backups are encrypted but no backup passphrase is set",
                    )
                    .with_hint(
                        "run `supabackup vault set-backup-passphrase`, or add --no-encrypt",
                    ));
                }
            }
            let job = engine.add_job(input).await?;
            if a.json {
                output::json(&job)?;
            } else {
                println!("{}", job.id);
                eprintln!(
                    "Job '{}' added; next run {}.",
                    job.name,
                    job.next_run_at.as_deref().unwrap_or("never")
                );
            }
            Ok(0)
        }
        JobCmd::List { json } => {
            let jobs = engine.list_jobs().await?;
            if json {
                return output::json(&jobs).map(|_| 0);
            }
            if jobs.is_empty() {
                println!(
                    "No jobs yet. Add one with `supabackup job add PROJECT --cron '0 3 * * *'`."
                );
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.clone(),
                        j.name.clone(),
                        format!("{} ({})", j.cron, j.timezone.as_str()),
                        if j.enabled { "yes".into() } else { "no".into() },
                        j.last_status.clone().unwrap_or_else(|| "-".into()),
                        j.next_run_at.clone().unwrap_or_else(|| "-".into()),
                        j.config.restore_test.describe(),
                        {
                            let c = j.config.conditions();
                            if c.is_empty() {
                                "always".to_owned()
                            } else {
                                c.iter()
                                    .map(Condition::describe)
                                    .collect::<Vec<_>>()
                                    .join(" or ")
                            }
                        },
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID",
                    "NAME",
                    "SCHEDULE",
                    "ENABLED",
                    "LAST",
                    "NEXT RUN",
                    "RESTORE TEST",
                    "RUNS WHEN",
                ],
                &rows,
            );
            Ok(0)
        }
        JobCmd::Remove { id, yes } => {
            let job = engine.job(&id).await?;
            if !yes && !prompt::confirm(&format!("Remove job '{}'?", job.name)) {
                return Err(
                    Error::invalid("not removing without confirmation").with_hint("pass --yes")
                );
            }
            engine.remove_job(&id).await?;
            println!("Removed job '{}'.", job.name);
            Ok(0)
        }
        JobCmd::Enable { id } => {
            let j = engine.set_job_enabled(&id, true).await?;
            println!(
                "Enabled '{}'; next run {}.",
                j.name,
                j.next_run_at.unwrap_or_default()
            );
            Ok(0)
        }
        JobCmd::Disable { id } => {
            let j = engine.set_job_enabled(&id, false).await?;
            println!("Disabled '{}'.", j.name);
            Ok(0)
        }
        JobCmd::ScratchServer { url: Some(url) } => {
            engine.set_scratch_url(&url).await?;
            println!(
                "Restore tests use {}.",
                crate::engine::conninfo::redact_url(&url)
            );
            Ok(0)
        }
        JobCmd::ScratchServer { url: None } => {
            match engine.scratch_server_url().await? {
                Some(u) => println!("{u}"),
                None => println!(
                    "No scratch server is set: restore tests use a local PostgreSQL (PGHOST/PGPORT/PGUSER, else the local socket)."
                ),
            }
            Ok(0)
        }
        JobCmd::RunDue { json } => {
            prompt::unlock(engine).await?;
            let mut s = Scheduler::new(engine.clone(), SchedulerConfig::default());
            let report = s.tick(chrono::Utc::now()).await?;
            if !report.leader {
                eprintln!(
                    "Another supabackup process is running the schedule; nothing to do here."
                );
                return Ok(0);
            }
            let mut outcomes = Vec::new();
            for h in report.handles {
                outcomes.push(h.await.map_err(|e| Error::internal(e.to_string()))?);
            }
            // The health probes of this tick finish (and alert) too.
            for h in report.probes {
                let _ = h.await;
            }
            if json {
                output::json(
                    &serde_json::json!({"started": report.started, "queued": report.queued, "missed": report.missed, "restore_tests": report.restore_tests, "probed": report.probed, "outcomes": outcomes}),
                )?;
            } else {
                if outcomes.is_empty() {
                    println!("No job was due.");
                }
                for o in &outcomes {
                    let what = if o.kind == "restore-test" {
                        " (restore test)"
                    } else {
                        ""
                    };
                    println!("job {}{what}: {}", o.job_id, o.status);
                    for s in &o.steps {
                        println!(
                            "  {}: {}{}",
                            s.project,
                            s.status,
                            s.detail
                                .as_ref()
                                .map(|d| format!(" ({d})"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            Ok(if outcomes.iter().any(|o| o.status == "failed") {
                1
            } else {
                0
            })
        }
        JobCmd::NextRuns {
            cron,
            tz,
            count,
            after,
        } => {
            let c = CronExpr::parse(&cron)?;
            let after = match after {
                Some(a) => chrono::DateTime::parse_from_rfc3339(&a)
                    .map_err(|e| Error::invalid(format!("--after must be an RFC 3339 time: {e}")))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let zone = JobTz::parse(&tz)?;
            for t in c.next_runs(zone, after, count) {
                println!("{}", zone.format(t, "%Y-%m-%dT%H:%M:%S%:z"));
            }
            Ok(0)
        }
    }
}

/// `supabackup daemon`: ticks until stopped (Ctrl-C / SIGTERM).
pub async fn daemon(engine: &Engine, interval: u64, max_concurrent: usize) -> Result<i32> {
    prompt::unlock(engine).await?;
    let cfg = SchedulerConfig {
        max_concurrent: max_concurrent.max(1),
        ..Default::default()
    };
    let mut s = Scheduler::new(engine.clone(), cfg);
    let mut term = Terminate::watch()?;
    eprintln!("supabackup daemon: checking the schedule every {interval} s (stop with Ctrl-C).");
    let mut ticker = tokio::time::interval(Duration::from_secs(interval.max(1)));
    let mut warned = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                match s.tick(chrono::Utc::now()).await {
                    Ok(r) => {
                        if !r.leader && !warned {
                            eprintln!("Another supabackup process holds the schedule; waiting.");
                            warned = true;
                        }
                        for id in &r.started {
                            eprintln!("started job {id}");
                        }
                        for id in &r.restore_tests {
                            eprintln!("started the scheduled restore test of job {id}");
                        }
                        for h in r.handles {
                            tokio::spawn(async move {
                                if let Ok(o) = h.await {
                                    if o.kind == "restore-test" {
                                        eprintln!("restore test of job {}: {}", o.job_id, o.status);
                                    } else {
                                        eprintln!("job {} {}", o.job_id, o.status);
                                    }
                                }
                            });
                        }
                    }
                    Err(e) => eprintln!("tick failed: {e}"),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    s.shutdown();
    // Give cancelled backups a moment to clean up.
    for _ in 0..100 {
        if s.running().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("supabackup daemon stopped.");
    Ok(0)
}

/// `supabackup prune [PROJECT] [--destination NAME] [--dry-run]`: applies
/// each job's retention (local, and per destination) or the given rules now.
pub async fn prune(
    engine: &Engine,
    project: Option<String>,
    destination: Option<String>,
    rules: Retention,
    dry_run: bool,
    json: bool,
) -> Result<i32> {
    // Garbage collection after pruning incremental backups opens the
    // repository, whose keys the backup passphrase in the vault seals.
    if crate::engine::repo::Repo::exists(&engine.data_dir().repo()) {
        super::prompt::unlock(engine).await?;
    }
    let jobs = engine.list_jobs().await?;
    let projects = engine.list_projects().await?;
    if let Some(d) = &destination
        && !d.eq_ignore_ascii_case("local")
    {
        engine.destination(d).await?;
    }
    let mut reports = Vec::new();
    for p in projects.iter().filter(|p| {
        project
            .as_deref()
            .is_none_or(|k| k == p.name || k == p.id || k == p.project_ref)
    }) {
        // (where: None = this machine's folder, rules)
        let mut plan: Vec<(Option<String>, Retention)> = Vec::new();
        let place = destination
            .clone()
            .filter(|d| !d.eq_ignore_ascii_case("local"));
        if !rules.is_empty() {
            plan.push((place, rules));
        } else {
            for j in jobs.iter().filter(|j| j.project_id == p.id) {
                if place.is_none() && !j.retention.is_empty() {
                    plan.push((None, j.retention));
                }
                for (name, r) in &j.config.destination_retention {
                    if !r.is_empty()
                        && place
                            .as_deref()
                            .is_none_or(|d| d.eq_ignore_ascii_case(name))
                        && destination
                            .as_deref()
                            .is_none_or(|d| !d.eq_ignore_ascii_case("local"))
                    {
                        plan.push((Some(name.clone()), *r));
                    }
                }
            }
            plan.dedup_by(|a, b| a.0 == b.0);
        }
        for (at, r) in plan {
            let report = engine
                .prune_at(&p.id, at.as_deref(), &r, dry_run, chrono::Utc::now())
                .await?;
            reports.push((p.name.clone(), at.unwrap_or_else(|| "local".into()), report));
        }
    }
    if let Some(k) = &project
        && !projects
            .iter()
            .any(|p| k == &p.name || k == &p.id || k == &p.project_ref)
    {
        return Err(Error::not_found(format!("no project named '{k}'")));
    }
    if json {
        let v: Vec<_> = reports
            .iter()
            .map(|(n, at, r)| serde_json::json!({"project": n, "at": at, "report": r}))
            .collect();
        output::json(&v)?;
    } else if reports.is_empty() {
        println!("No retention rules apply (give --keep-last/--keep-days, or add them to a job).");
    } else {
        for (name, at, r) in &reports {
            println!(
                "{name} ({at}): {} {} backup(s), {} kept",
                if dry_run { "would delete" } else { "deleted" },
                r.deleted.len(),
                r.kept
            );
            for d in &r.deleted {
                println!(
                    "  {} {} {}",
                    d.id,
                    d.created_at,
                    d.bytes.map(output::bytes).unwrap_or_default()
                );
            }
            if let Some(g) = &r.repo_gc {
                println!(
                    "  repository: {} pack(s) {}, {} repacked, {} {}",
                    g.packs_deleted,
                    if dry_run { "would go" } else { "deleted" },
                    g.packs_repacked,
                    output::bytes(g.bytes_freed as i64),
                    if dry_run { "would be freed" } else { "freed" }
                );
            }
            if let Some(e) = &r.repo_gc_error {
                eprintln!("warning: the repository's garbage collection failed: {e}");
            }
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this project.
    pub project: Option<String>,
    /// Prune only the copies at this destination (`local` for this
    /// machine's folder); by default every place a job's retention names.
    #[arg(long)]
    pub destination: Option<String>,
    /// Show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Override: keep the newest N.
    #[arg(long)]
    pub keep_last: Option<u32>,
    /// Override: keep backups younger than D days.
    #[arg(long)]
    pub keep_days: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// SIGTERM (systemd's stop) where there is one; elsewhere only Ctrl-C
/// stops the daemon.
struct Terminate {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Terminate {
    fn watch() -> Result<Terminate> {
        Ok(Terminate {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| Error::internal(format!("cannot watch SIGTERM: {e}")))?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            std::future::pending::<()>().await;
        }
    }
}
