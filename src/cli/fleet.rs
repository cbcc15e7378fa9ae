//! `supabackup fleet ...`: the Supabase account (Management API) — list its
//! projects, add them in one step, keep adding new ones.

use clap::{Args, Subcommand};

use super::{output, prompt};
use crate::engine::fleet::{FleetAddReport, JobTemplate};
use crate::engine::schedule::Retention;
use crate::engine::{Engine, Error, Result};

#[derive(Debug, Subcommand)]
pub enum FleetCmd {
    /// Store the account's personal access token (checked with the API,
    /// sealed in the vault) from standard input or SUPABACKUP_ACCESS_TOKEN.
    Token {
        /// Read the token from standard input.
        #[arg(long)]
        stdin: bool,
        /// Forget the stored token instead.
        #[arg(long, conflicts_with = "stdin")]
        remove: bool,
    },
    /// Show or change how the account is used.
    Config(ConfigArgs),
    /// The account's organizations.
    Orgs {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The account's projects and branches, and which are here.
    List {
        /// Only this organization (id, slug or name).
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add projects (or branches) from the account by ref, or --all that
    /// are not here yet; each gets the schedule given (or configured).
    Add {
        /// Project refs.
        refs: Vec<String>,
        /// Every project of the account (or of --org) not here yet.
        #[arg(long, conflicts_with = "refs")]
        all: bool,
        /// Only this organization (with --all).
        #[arg(long, requires = "all")]
        org: Option<String>,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sync now: record every project's platform status, and add new
    /// projects when auto-add is on (the scheduler does this on its own).
    Sync {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// A cron schedule for each project added (five fields).
    #[arg(long, value_name = "CRON")]
    schedule: Option<String>,
    /// The schedule's time zone (IANA name, UTC or local).
    #[arg(long, requires = "schedule", default_value = "")]
    timezone: String,
    /// Keep the last N backups.
    #[arg(long, requires = "schedule")]
    keep_last: Option<u32>,
    /// Keep backups for N days.
    #[arg(long, requires = "schedule")]
    keep_days: Option<u32>,
}

impl ScheduleArgs {
    fn template(&self) -> Option<JobTemplate> {
        self.schedule.as_ref().map(|cron| JobTemplate {
            cron: cron.clone(),
            timezone: self.timezone.clone(),
            retention: Retention {
                keep_last: self.keep_last,
                keep_days: self.keep_days,
                ..Default::default()
            },
            backup: Default::default(),
        })
    }
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The Management API (default https://api.supabase.com).
    #[arg(long)]
    api_url: Option<String>,
    /// Only this organization (id, slug or name); `all` for every one.
    #[arg(long)]
    org: Option<String>,
    /// Add every new project on the scheduler's tick: on or off.
    #[arg(long, value_parser = ["on", "off"])]
    auto_add: Option<String>,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Add projects without a schedule.
    #[arg(long, conflicts_with = "schedule")]
    no_schedule: bool,
    /// Minutes between syncs.
    #[arg(long)]
    interval: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn print_added(r: &FleetAddReport) {
    for (name, r) in &r.added {
        println!("Added '{name}' ({r}).");
    }
    for j in &r.jobs {
        println!("Scheduled: {j}.");
    }
    for p in &r.present {
        println!("{p} is here already.");
    }
    for (r, why) in &r.failed {
        eprintln!("{r}: {why}");
    }
    if !r.added.is_empty() {
        eprintln!(
            "note: the API does not give database passwords: add each with `supabackup project edit NAME --db-password-stdin`"
        );
    }
}

pub async fn run(engine: &Engine, cmd: FleetCmd) -> Result<i32> {
    match cmd {
        FleetCmd::Token { stdin, remove } => {
            prompt::unlock(engine).await?;
            if remove {
                engine.remove_fleet_token().await?;
                println!("The access token is forgotten.");
                return Ok(0);
            }
            let token =
                super::password_for_url(stdin, "SUPABACKUP_ACCESS_TOKEN")?.ok_or_else(|| {
                    Error::invalid("no access token given")
                        .with_hint("pipe it to --stdin or set SUPABACKUP_ACCESS_TOKEN")
                })?;
            let n = engine.set_fleet_token(token).await?;
            println!("The access token is sealed; it sees {n} organization(s).");
            Ok(0)
        }
        FleetCmd::Config(a) => {
            let mut c = engine.fleet_config().await?;
            let changed = a.api_url.is_some()
                || a.org.is_some()
                || a.auto_add.is_some()
                || a.schedule.schedule.is_some()
                || a.no_schedule
                || a.interval.is_some();
            if let Some(u) = a.api_url {
                c.api_url = u;
            }
            if let Some(o) = a.org {
                c.organization = (o != "all").then_some(o);
            }
            if let Some(v) = a.auto_add {
                c.auto_add = v == "on";
            }
            if let Some(t) = a.schedule.template() {
                c.template = Some(t);
            }
            if a.no_schedule {
                c.template = None;
            }
            if let Some(i) = a.interval {
                c.interval_minutes = i;
            }
            if changed {
                c = engine.set_fleet_config(c).await?;
            }
            if a.json {
                return output::json(&c).map(|_| 0);
            }
            println!("API:           {}", c.api_url);
            println!(
                "Organization:  {}",
                c.organization.as_deref().unwrap_or("every one")
            );
            println!("Auto-add:      {}", if c.auto_add { "on" } else { "off" });
            println!(
                "Schedule:      {}",
                c.template
                    .as_ref()
                    .map(|t| t.cron.as_str())
                    .unwrap_or("none")
            );
            println!("Sync every:    {} min", c.interval_minutes);
            println!(
                "Token:         {}",
                if engine.has_fleet_token().await? {
                    "sealed"
                } else {
                    "none (`supabackup fleet token --stdin`)"
                }
            );
            Ok(0)
        }
        FleetCmd::Orgs { json } => {
            prompt::unlock(engine).await?;
            let orgs = engine.fleet_organizations().await?;
            if json {
                return output::json(&orgs).map(|_| 0);
            }
            let rows: Vec<Vec<String>> = orgs
                .iter()
                .map(|o| {
                    vec![
                        o.id.clone(),
                        o.slug.clone().unwrap_or_else(|| "-".into()),
                        o.name.clone(),
                    ]
                })
                .collect();
            output::table(&["ID", "SLUG", "NAME"], &rows);
            Ok(0)
        }
        FleetCmd::List { org, json } => {
            prompt::unlock(engine).await?;
            let list = engine.fleet_projects(org.as_deref()).await?;
            if json {
                return output::json(&list).map(|_| 0);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|e| {
                    vec![
                        e.project_ref.clone(),
                        e.name.clone(),
                        e.region.clone(),
                        crate::engine::fleet::api::status_label(&e.status).to_owned(),
                        e.environment.as_str().to_owned(),
                        e.added_as.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            output::table(
                &["REF", "NAME", "REGION", "STATUS", "ENV", "HERE AS"],
                &rows,
            );
            Ok(0)
        }
        FleetCmd::Add {
            refs,
            all,
            org,
            schedule,
            json,
        } => {
            prompt::unlock(engine).await?;
            let refs = if all {
                engine
                    .fleet_projects(org.as_deref())
                    .await?
                    .into_iter()
                    .filter(|e| e.added_as.is_none())
                    .map(|e| e.project_ref)
                    .collect()
            } else {
                refs
            };
            if refs.is_empty() {
                return Err(Error::invalid("no project to add")
                    .with_hint("name refs (`supabackup fleet list`), or --all"));
            }
            let r = engine.fleet_add(&refs, schedule.template()).await?;
            if json {
                output::json(&r)?;
            } else {
                print_added(&r);
            }
            Ok(if r.failed.is_empty() { 0 } else { 7 })
        }
        FleetCmd::Sync { json } => {
            prompt::unlock(engine).await?;
            let r = engine.fleet_sync().await?;
            if json {
                return output::json(&r).map(|_| 0);
            }
            println!("Recorded the platform status of {} project(s).", r.statuses);
            print_added(&r.added);
            Ok(if r.added.failed.is_empty() { 0 } else { 7 })
        }
    }
}
