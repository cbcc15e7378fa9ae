//! `supabackup destination ...`

use clap::{Args, Subcommand};

use super::{output, prompt};
use crate::engine::destination::DestinationInput;
use crate::engine::{Engine, Error, Result};

#[derive(Debug, Subcommand)]
pub enum DestinationCmd {
    /// Add a place backups are copied to: a folder (file:///mnt/nas/backups),
    /// S3 or an S3-compatible service (s3://bucket/prefix with --endpoint for
    /// R2, B2, MinIO, Wasabi, Supabase Storage), Google Cloud Storage
    /// (gs://bucket/prefix) or Azure Blob (az://container/prefix).
    Add(AddArgs),
    /// List destinations.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write, read back, list and delete a small test object.
    Test {
        /// The destination's name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Give a destination its secret (S3 secret key, Azure account key, GCS
    /// service-account JSON), e.g. after `config import` without secrets.
    SetSecret {
        /// The destination's name.
        name: String,
        /// Read the secret from standard input; else SUPABACKUP_DEST_SECRET.
        #[arg(long)]
        secret_stdin: bool,
    },
    /// Remove a destination (refused while it holds copies, unless
    /// --forget-copies).
    Remove {
        /// The destination's name.
        name: String,
        /// Forget the copies it holds (their objects stay there).
        #[arg(long)]
        forget_copies: bool,
        /// Confirm the removal.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name for it (used by --destination, --from and --to).
    name: String,
    /// file:///absolute/path, s3://bucket[/prefix], gs://bucket[/prefix] or
    /// az://container[/prefix].
    #[arg(long)]
    url: String,
    /// The service's endpoint, for S3-compatible services (https://…) and Azurite.
    #[arg(long)]
    endpoint: Option<String>,
    /// The S3 region (default us-east-1; R2 wants `auto`).
    #[arg(long)]
    region: Option<String>,
    /// Path-style S3 requests (endpoint/bucket/key), as MinIO and many
    /// S3-compatible services need.
    #[arg(long)]
    path_style: bool,
    /// Allow a plain-HTTP endpoint that is not on this machine (backups are
    /// encrypted, but requests and credentials then cross the network in clear).
    #[arg(long)]
    allow_http: bool,
    /// The S3 access key id, or the Azure storage account name.
    #[arg(long)]
    access_key_id: Option<String>,
    /// Read the secret (S3 secret key, Azure account key, GCS service-account
    /// JSON) from standard input; else SUPABACKUP_DEST_SECRET.
    #[arg(long)]
    secret_stdin: bool,
    /// Print the new destination as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(engine: &Engine, cmd: DestinationCmd) -> Result<i32> {
    match cmd {
        DestinationCmd::Add(a) => {
            let secret = super::password_for_url(a.secret_stdin, "SUPABACKUP_DEST_SECRET")?;
            let input = DestinationInput {
                name: a.name,
                url: a.url,
                endpoint: a.endpoint,
                region: a.region,
                path_style: a.path_style,
                allow_http: a.allow_http,
                access_key_id: a.access_key_id,
                secret,
            };
            crate::engine::destination::validate(&input)?;
            if input.secret.is_some() {
                prompt::unlock(engine).await?;
            }
            let d = engine.add_destination(input).await?;
            if a.json {
                output::json(&d)?;
            } else {
                println!("Added destination '{}' ({}).", d.name, d.url);
                println!("Test it with `supabackup destination test '{}'`.", d.name);
            }
            Ok(0)
        }
        DestinationCmd::List { json } => {
            let list = engine.list_destinations().await?;
            if json {
                return output::json(&list).map(|_| 0);
            }
            if list.is_empty() {
                println!(
                    "No destinations. Add one with `supabackup destination add NAME --url s3://bucket/prefix`."
                );
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.name.clone(),
                        d.kind.as_str().to_owned(),
                        d.url.clone(),
                        d.endpoint.clone().unwrap_or_else(|| "-".into()),
                        if d.has_secret { "sealed" } else { "-" }.to_owned(),
                    ]
                })
                .collect();
            output::table(&["NAME", "KIND", "URL", "ENDPOINT", "SECRET"], &rows);
            Ok(0)
        }
        DestinationCmd::Test { name, json } => {
            if engine.destination(&name).await?.has_secret {
                prompt::unlock(engine).await?;
            }
            let r = engine.test_destination(&name).await?;
            if json {
                output::json(&r)?;
            } else {
                println!("Destination '{}': OK ({} ms)", r.name, r.latency_ms);
                for s in &r.steps {
                    println!("  {s}");
                }
            }
            Ok(0)
        }
        DestinationCmd::SetSecret { name, secret_stdin } => {
            let secret = super::password_for_url(secret_stdin, "SUPABACKUP_DEST_SECRET")?
                .ok_or_else(|| {
                    Error::invalid("no secret given")
                        .with_hint("pipe it to --secret-stdin or set SUPABACKUP_DEST_SECRET")
                })?;
            prompt::unlock(engine).await?;
            let d = engine.set_destination_secret(&name, secret).await?;
            println!("The secret of destination '{}' is sealed.", d.name);
            Ok(0)
        }
        DestinationCmd::Remove {
            name,
            forget_copies,
            yes,
        } => {
            if !yes && !prompt::confirm(&format!("Remove destination '{name}'?")) {
                return Err(
                    Error::invalid("not removing without confirmation").with_hint("pass --yes")
                );
            }
            let d = engine.remove_destination(&name, forget_copies).await?;
            println!("Removed destination '{}'.", d.name);
            Ok(0)
        }
    }
}
