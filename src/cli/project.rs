//! `supabackup project ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{output, prompt};
use crate::engine::crypto::Secret;
use crate::engine::pg::probe::ConnectionReport;
use crate::engine::project::{Environment, Project, ProjectInput};
use crate::engine::transfer::{ExportOptions, ImportOptions};
use crate::engine::{Engine, Error, ErrorKind, ProjectPatch, Result};

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Add a project. The password comes from the URL or, with
    /// --db-password-stdin, from standard input; it is sealed in the vault.
    Add(AddArgs),
    /// Change a project's settings.
    Edit(EditArgs),
    /// List projects, grouped by environment.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one project (by name, id or ref).
    Show {
        /// The project: name, id or ref.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a project and its stored credentials (its backups are kept).
    Remove {
        /// The project: name, id or ref.
        name: String,
        /// Confirm the removal.
        #[arg(long)]
        yes: bool,
    },
    /// Test the connection and the permissions a backup needs.
    Test {
        /// The project: name, id or ref.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Live health: probe the project now, show its probe history, or set
    /// how often the scheduler (desktop app or daemon) probes it.
    ///
    /// A probe measures reachability, latency, server version, database
    /// size, connections in use against max_connections, cache hit ratio,
    /// the longest running transaction and the pg_dump a backup would use;
    /// every probe is kept. Without flags: probe now.
    Health {
        /// The project: name, id or ref.
        name: String,
        /// Show the probes kept (newest first) instead of probing.
        #[arg(long)]
        history: bool,
        /// With --history: at most this many probes.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Set the minutes between probes (0: no probes; `default` goes
        /// back to the default of 15).
        #[arg(long, value_name = "MINUTES|default")]
        interval: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show or set the hooks run around the project's backups started by
    /// hand (GUI "Back up now", `backup run`; a schedule runs its own).
    ///
    /// Without options: show them. `backup run --no-hooks` skips them once.
    Hooks {
        /// The project: name, id or ref.
        name: String,
        /// Command run before each manual backup (sh -c); "" removes it.
        #[arg(long)]
        pre: Option<String>,
        /// Command run after each manual backup (sh -c); "" removes it.
        #[arg(long)]
        post: Option<String>,
        /// Timeout of each hook, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// A failing pre-hook only warns (default: the backup does not run).
        #[arg(long)]
        warn_only: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Import projects from a .json or .csv file.
    ///
    /// Every bad row is reported with its line; nothing is imported unless
    /// all rows are good or --accept-partial is given. Encrypted credentials
    /// need the export passphrase (SUPABACKUP_EXPORT_PASSPHRASE or a prompt).
    Import {
        /// The .json or .csv file (as written by `project export`).
        file: PathBuf,
        /// Import the good rows even when some rows are bad.
        #[arg(long)]
        accept_partial: bool,
        /// Check the file, import nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Export all projects to a .json or .csv file.
    ///
    /// Credentials are left out unless --include-secrets is given; they are
    /// then encrypted with a passphrase (SUPABACKUP_EXPORT_PASSPHRASE or a prompt).
    Export {
        /// Where to write: .json or .csv by the file's extension.
        file: PathBuf,
        /// Include the credentials, encrypted with an export passphrase
        /// (SUPABACKUP_EXPORT_PASSPHRASE or a prompt).
        #[arg(long)]
        include_secrets: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Display name (1–100 characters, unique).
    #[arg(long)]
    name: String,
    /// Supabase project ref (lower-case letters, digits, '-').
    #[arg(long = "ref")]
    project_ref: String,
    /// The database, postgresql://USER@HOST:PORT/DB[?sslmode=…] (the
    /// password from --db-password-stdin or SUPABACKUP_DB_PASSWORD).
    #[arg(long)]
    db_url: String,
    /// development, staging or production.
    #[arg(long, default_value = "development")]
    environment: String,
    /// Supabase organization id (its slug, or an older UUID).
    #[arg(long)]
    org_id: Option<String>,
    /// Free text shown with the project (up to 1000 characters).
    #[arg(long)]
    description: Option<String>,
    /// Read the database password from standard input.
    #[arg(long)]
    db_password_stdin: bool,
    /// The server's CA certificate (PEM; Supabase: Database Settings → SSL
    /// Configuration → Download certificate): connections then verify the
    /// server (verify-full).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Print the new project as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The project to change (name, id or ref).
    project: String,
    /// A new display name (1–100 characters, unique).
    #[arg(long)]
    name: Option<String>,
    /// A new Supabase project ref.
    #[arg(long = "ref")]
    project_ref: Option<String>,
    /// A new database URL, postgresql://USER@HOST:PORT/DB[?sslmode=…].
    #[arg(long)]
    db_url: Option<String>,
    /// development, staging or production.
    #[arg(long)]
    environment: Option<String>,
    /// Its slug (or an older UUID), or "" to clear.
    #[arg(long)]
    org_id: Option<String>,
    /// Text, or "" to clear.
    #[arg(long)]
    description: Option<String>,
    /// Read a new database password from standard input.
    #[arg(long)]
    db_password_stdin: bool,
    /// A CA certificate (PEM) to verify the server with (verify-full).
    #[arg(long, value_name = "PATH", conflicts_with = "no_ca")]
    ca_file: Option<PathBuf>,
    /// Remove the stored CA certificate (the server is then not verified).
    #[arg(long)]
    no_ca: bool,
    /// Print the changed project as JSON.
    #[arg(long)]
    json: bool,
}

/// The database password: standard input, else `SUPABACKUP_DB_PASSWORD`.
fn db_password(from_stdin: bool) -> Result<Option<Secret>> {
    super::password_for_url(from_stdin, "SUPABACKUP_DB_PASSWORD")
}

fn url_has_password(url: &str) -> bool {
    crate::engine::conninfo::ConnInfo::parse(url).is_ok_and(|i| i.password.is_some())
}

pub async fn run(engine: &Engine, cmd: ProjectCmd) -> Result<i32> {
    match cmd {
        ProjectCmd::Add(a) => {
            super::warn_password_in_argv(
                &a.db_url,
                "--db-password-stdin",
                "SUPABACKUP_DB_PASSWORD",
            );
            let db_password = db_password(a.db_password_stdin)?;
            let ca_cert = a
                .ca_file
                .as_deref()
                .map(crate::engine::project::read_ca_file)
                .transpose()?;
            let input = ProjectInput {
                name: a.name,
                project_ref: a.project_ref,
                db_url: a.db_url,
                db_password,
                environment: a.environment,
                organization_id: a.org_id,
                description: a.description,
                ca_cert,
                ..Default::default()
            };
            // Validate before asking for a passphrase.
            crate::engine::project::validate(&input)
                .map_err(|e| crate::engine::project::field_errors_to_error(&e))?;
            if input.db_password.is_some() || url_has_password(&input.db_url) {
                prompt::unlock(engine).await?;
            }
            let p = engine.add_project(input).await?;
            if a.json {
                output::json(&p)?;
            } else {
                println!(
                    "Added project '{}' ({}, {}).",
                    p.name, p.project_ref, p.environment
                );
                if !p.has_db_password {
                    eprintln!(
                        "note: no database password is stored; add one with `supabackup project edit '{}' --db-password-stdin`",
                        p.name
                    );
                }
            }
            Ok(0)
        }
        ProjectCmd::Edit(a) => {
            if let Some(u) = &a.db_url {
                super::warn_password_in_argv(u, "--db-password-stdin", "SUPABACKUP_DB_PASSWORD");
            }
            let db_password = db_password(a.db_password_stdin)?;
            let ca_cert = match (&a.ca_file, a.no_ca) {
                (Some(path), _) => Some(crate::engine::project::read_ca_file(path)?),
                (None, true) => Some(String::new()),
                (None, false) => None,
            };
            if db_password.is_some() || a.db_url.as_deref().is_some_and(url_has_password) {
                prompt::unlock(engine).await?;
            }
            let p = engine
                .edit_project(
                    &a.project,
                    ProjectPatch {
                        name: a.name,
                        project_ref: a.project_ref,
                        db_url: a.db_url,
                        db_password,
                        environment: a.environment,
                        organization_id: a.org_id,
                        description: a.description,
                        ca_cert,
                        ..Default::default()
                    },
                )
                .await?;
            if a.json {
                output::json(&p)?;
            } else {
                println!("Updated project '{}'.", p.name);
            }
            Ok(0)
        }
        ProjectCmd::List { json } => {
            let list = engine.list_projects().await?;
            if json {
                return output::json(&list).map(|_| 0);
            }
            if list.is_empty() {
                println!(
                    "No projects yet. Add one with `supabackup project add --name NAME --ref REF --db-url URL`."
                );
                return Ok(0);
            }
            for env in Environment::ALL {
                let group: Vec<&Project> = list.iter().filter(|p| p.environment == env).collect();
                if group.is_empty() {
                    continue;
                }
                println!("{} ({})", env.as_str().to_uppercase(), group.len());
                let rows: Vec<Vec<String>> = group
                    .iter()
                    .map(|p| {
                        vec![
                            format!("  {}", p.name),
                            p.project_ref.clone(),
                            if p.tls_verification().0 {
                                "verified".into()
                            } else {
                                "NOT verified".into()
                            },
                            p.display_url(),
                        ]
                    })
                    .collect();
                output::table(&["  NAME", "REF", "SERVER", "URL"], &rows);
                println!();
            }
            Ok(0)
        }
        ProjectCmd::Show { name, json } => {
            let p = engine.project(&name).await?;
            let kinds = engine.project_secret_kinds(&p.id).await?;
            let health = engine.health_history(&p.id, 1).await?;
            if json {
                let mut v = serde_json::to_value(&p).map_err(|e| Error::internal(e.to_string()))?;
                v["credentials"] = serde_json::json!(kinds);
                v["last_connection_test"] =
                    serde_json::to_value(health.first()).unwrap_or_default();
                return output::json(&v).map(|_| 0);
            }
            println!("Name:          {}", p.name);
            println!("Id:            {}", p.id);
            println!("Ref:           {}", p.project_ref);
            println!("Environment:   {}", p.environment);
            println!("URL:           {}", p.display_url());
            println!(
                "TLS:           {}{}",
                p.tls_verification().1,
                if p.ca_cert.is_some() {
                    " — with the project's CA certificate"
                } else if !p.tls_verification().0 {
                    " (add the CA with `project edit --ca-file`)"
                } else {
                    ""
                }
            );
            println!(
                "Organization:  {}",
                p.organization_id.as_deref().unwrap_or("-")
            );
            println!("Description:   {}", p.description.as_deref().unwrap_or("-"));
            println!(
                "Credentials:   {}",
                if kinds.is_empty() {
                    "none".into()
                } else {
                    kinds.join(", ")
                }
            );
            println!(
                "Backup folder: {}",
                engine.data_dir().backups().join(&p.slug).display()
            );
            match health.first() {
                Some(ev) => println!(
                    "Last test:     {} at {}",
                    if ev.event_data["ok"].as_bool() == Some(true) {
                        "passed"
                    } else {
                        "failed"
                    },
                    ev.created_at
                ),
                None => println!(
                    "Last test:     never (run `supabackup project test '{}'`)",
                    p.name
                ),
            }
            println!("Added:         {}", p.created_at);
            Ok(0)
        }
        ProjectCmd::Remove { name, yes } => {
            let p = engine.project(&name).await?;
            if !yes
                && !prompt::confirm(&format!(
                    "Remove project '{}'? Its backups are kept.",
                    p.name
                ))
            {
                return Err(Error::invalid(format!(
                    "not removing '{}' without confirmation",
                    p.name
                ))
                .with_hint("pass --yes to confirm"));
            }
            engine.remove_project(&p.id).await?;
            println!("Removed project '{}'. Its backups were kept.", p.name);
            Ok(0)
        }
        ProjectCmd::Hooks {
            name,
            pre,
            post,
            timeout,
            warn_only,
            json,
        } => {
            use crate::engine::schedule::{Hook, HookPolicy, hooks::ProjectHooks};
            let p = engine.project(&name).await?;
            let mut hooks = engine.project_hooks(&p.id).await?;
            if pre.is_some() || post.is_some() {
                let make = |c: String| {
                    (!c.trim().is_empty()).then_some(Hook {
                        command: c,
                        timeout_secs: timeout,
                        on_failure: if warn_only {
                            HookPolicy::Warn
                        } else {
                            HookPolicy::Abort
                        },
                    })
                };
                hooks = ProjectHooks {
                    pre: pre.map(make).unwrap_or(hooks.pre),
                    post: post.map(make).unwrap_or(hooks.post),
                };
                engine.set_project_hooks(&p.id, hooks.clone()).await?;
            }
            if json {
                return output::json(&hooks).map(|_| 0);
            }
            let show = |h: &Option<Hook>| match h {
                Some(h) => format!(
                    "{} (timeout {} s{})",
                    h.command,
                    h.timeout_secs,
                    if h.on_failure == HookPolicy::Warn {
                        ", only warns"
                    } else {
                        ""
                    }
                ),
                None => "none".into(),
            };
            println!("{}: before {}", p.name, show(&hooks.pre));
            println!("{}: after  {}", p.name, show(&hooks.post));
            Ok(0)
        }
        ProjectCmd::Health {
            name,
            history,
            limit,
            interval,
            json,
        } => health(engine, &name, history, limit, interval, json).await,
        ProjectCmd::Test { name, json } => {
            let p = engine.project(&name).await?;
            if p.has_db_password {
                prompt::unlock(engine).await?;
            }
            let report = engine.test_project(&p.id).await?;
            if json {
                output::json(&report)?;
            } else {
                print_report(&p.name, &report);
            }
            if report.ok {
                Ok(0)
            } else {
                let kind = if report.pg_dump.is_none() {
                    ErrorKind::Tool
                } else {
                    ErrorKind::Connection
                };
                let first = report
                    .problems
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "the pre-flight failed".into());
                Err(Error::new(
                    kind,
                    format!("the connection test of '{}' failed: {first}", p.name),
                ))
            }
        }
        ProjectCmd::Import {
            file,
            accept_partial,
            dry_run,
            json,
        } => {
            let encrypted = std::fs::read_to_string(&file).is_ok_and(|t| t.contains("enc:v1:"));
            let secrets_passphrase = prompt::import_passphrase(encrypted)?;
            let opts = ImportOptions {
                accept_partial,
                secrets_passphrase,
                dry_run,
            };
            // Credentials in the file need the vault.
            let report =
                prompt::retry_unlocked(engine, || engine.import_projects(&file, opts.clone()))
                    .await?;
            if json {
                output::json(&report)?;
            } else {
                for r in &report.rejected {
                    eprintln!(
                        "line {}{}: {}",
                        r.line,
                        r.name
                            .as_ref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default(),
                        r.reason
                    );
                }
                if report.applied {
                    println!(
                        "Imported {} of {} project(s).",
                        report.valid.len(),
                        report.total
                    );
                } else if dry_run {
                    println!(
                        "Dry run: {} of {} project(s) would be imported.",
                        report.valid.len(),
                        report.total
                    );
                }
            }
            if report.rejected.is_empty() || report.applied {
                if !report.rejected.is_empty() {
                    eprintln!("{} row(s) were skipped.", report.rejected.len());
                }
                Ok(0)
            } else {
                Err(Error::invalid(format!(
                    "{} of {} row(s) are invalid; nothing was imported",
                    report.rejected.len(),
                    report.total
                ))
                .with_hint(format!(
                    "fix the rows above, or pass --accept-partial to import the {} valid row(s)",
                    report.valid.len()
                )))
            }
        }
        ProjectCmd::Export {
            file,
            include_secrets,
        } => {
            let secrets_passphrase = prompt::export_passphrase(engine, include_secrets).await?;
            let s = engine
                .export_projects(&file, ExportOptions { secrets_passphrase })
                .await?;
            println!(
                "Exported {} project(s) to {}{}.",
                s.projects,
                s.path.display(),
                if s.secrets_included {
                    " with encrypted credentials"
                } else {
                    " without credentials"
                }
            );
            Ok(0)
        }
    }
}

fn print_report(name: &str, r: &ConnectionReport) {
    println!(
        "Connection test of '{name}': {}",
        if r.ok { "PASSED" } else { "FAILED" }
    );
    println!("  URL:            {}", r.url);
    println!(
        "  Server:         PostgreSQL {} (major {})",
        r.server_version, r.server_major
    );
    println!("  Database size:  {}", output::bytes(r.database_size_bytes));
    println!(
        "  Connect time:   {} ms; round trip {} ms",
        r.connect_ms, r.latency_ms
    );
    println!(
        "  TLS:            {}",
        if r.tls {
            format!(
                "{} — {}",
                r.tls_version.clone().unwrap_or_else(|| "yes".into()),
                r.verification
            )
        } else {
            "no".into()
        }
    );
    println!(
        "  Role:           {}{}",
        r.current_user,
        if r.superuser { " (superuser)" } else { "" }
    );
    println!(
        "  Pre-flight:     {} schema(s), {} table(s), {} sequence(s) checked; {} denied; roles {}",
        r.preflight.schemas.len(),
        r.preflight.tables_checked,
        r.preflight.sequences_checked,
        r.preflight.denied.len(),
        if r.preflight.roles_readable {
            "readable"
        } else {
            "NOT readable"
        }
    );
    match &r.pg_dump {
        Some(t) => println!("  pg_dump:        {} ({})", t.version, t.path),
        None => println!("  pg_dump:        none suitable"),
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    for p in &r.problems {
        println!("  problem: {p}");
    }
}

/// `supabackup project health NAME [--history] [--interval M] [--json]`
async fn health(
    engine: &Engine,
    name: &str,
    history: bool,
    limit: usize,
    interval: Option<String>,
    json: bool,
) -> Result<i32> {
    let p = engine.project(name).await?;
    if let Some(text) = interval {
        let minutes = match text.trim() {
            "default" => None,
            t => Some(t.parse::<u32>().map_err(|_| {
                Error::invalid(format!("--interval '{t}' is not a number of minutes"))
                    .with_hint("e.g. --interval 15, --interval 0 (off) or --interval default")
            })?),
        };
        engine.set_probe_interval(&p.id, minutes).await?;
        let now = engine.probe_interval(&p.id).await?;
        match now {
            0 => println!("{} is no longer probed.", p.name),
            m => println!("{} is probed every {m} min.", p.name),
        }
        return Ok(0);
    }
    if history {
        let list = engine.probe_history(&p.id, None, limit).await?;
        if json {
            return output::json(&list).map(|_| 0);
        }
        if list.is_empty() {
            println!(
                "No probes of {} yet: the scheduler probes every {} min, or run `supabackup project health {}`.",
                p.name,
                engine.probe_interval(&p.id).await?,
                p.name
            );
            return Ok(0);
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|r| {
                let x = &r.probe;
                vec![
                    r.at.clone(),
                    if x.ok { "ok".into() } else { "DOWN".into() },
                    x.latency_ms
                        .map(|l| format!("{l:.0} ms"))
                        .unwrap_or_else(|| "-".into()),
                    x.database_size_bytes
                        .map(output::bytes)
                        .unwrap_or_else(|| "-".into()),
                    match (x.connections, x.max_connections) {
                        (Some(c), Some(m)) => format!("{c}/{m}"),
                        _ => "-".into(),
                    },
                    x.error
                        .clone()
                        .or_else(|| x.pg_dump_problem.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &["AT", "STATUS", "LATENCY", "SIZE", "CONNECTIONS", "PROBLEM"],
            &rows,
        );
        return Ok(0);
    }
    if p.has_db_password {
        prompt::unlock(engine).await?;
    }
    let probe = engine.probe_project(&p.id, &engine.delivery()).await?;
    if json {
        output::json(&probe)?;
    } else if probe.ok {
        println!("{}: reachable", p.name);
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "  latency          {}",
            opt(probe.latency_ms.map(|l| format!("{l:.0} ms")))
        );
        println!(
            "  server           PostgreSQL {}",
            opt(probe.server_version.clone())
        );
        println!(
            "  database size    {}",
            opt(probe.database_size_bytes.map(output::bytes))
        );
        println!(
            "  connections      {} of {}",
            opt(probe.connections.map(|c| c.to_string())),
            opt(probe.max_connections.map(|c| c.to_string()))
        );
        println!(
            "  cache hit ratio  {}",
            opt(probe.cache_hit_ratio.map(|r| format!("{:.1}%", r * 100.0)))
        );
        println!(
            "  longest xact     {}",
            opt(probe
                .longest_transaction_secs
                .map(crate::engine::units::duration_secs))
        );
        match (&probe.pg_dump, &probe.pg_dump_problem) {
            (Some(t), _) => println!("  pg_dump          {t}"),
            (None, Some(why)) => println!("  pg_dump          MISSING: {why}"),
            _ => {}
        }
    }
    if !probe.ok {
        return Err(Error::connection(format!(
            "{} is not reachable: {}",
            p.name,
            probe.error.unwrap_or_default()
        )));
    }
    if let Some(why) = probe.pg_dump_problem {
        return Err(Error::tool(why));
    }
    Ok(0)
}
