//! Pre/post backup hooks: user commands run with `sh -c`, a documented
//! environment (never a secret), a timeout, and their output kept for the
//! error message.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jobs::{Hook, HookPolicy};
use crate::engine::Engine;
use crate::engine::catalog::{audit, settings};
use crate::engine::error::{Error, Result};

/// A project's own hooks, run around the backups started by hand (a job's
/// backups run the job's hooks instead).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectHooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<Hook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<Hook>,
}

pub(crate) fn hooks_key(project_id: &str) -> String {
    format!("project.hooks.{project_id}")
}

/// A hook a person typed is usable: a command and a sane timeout.
pub(crate) fn check_hook(h: &Hook) -> Result<()> {
    if h.command.trim().is_empty() {
        return Err(Error::invalid("a hook needs a command"));
    }
    if h.timeout_secs == 0 || h.timeout_secs > 24 * 3600 {
        return Err(Error::invalid(
            "a hook's timeout must be between 1 second and 24 hours",
        ));
    }
    Ok(())
}

impl Engine {
    /// The hooks a project's manual backups run.
    pub async fn project_hooks(&self, key: &str) -> Result<ProjectHooks> {
        let pid = self.project(key).await?.id;
        Ok(self
            .catalog()
            .call(move |c| settings::get(c, &hooks_key(&pid)))
            .await?
            .unwrap_or_default())
    }

    /// Sets (or, with both empty, removes) a project's hooks.
    pub async fn set_project_hooks(&self, key: &str, hooks: ProjectHooks) -> Result<()> {
        for h in [&hooks.pre, &hooks.post].into_iter().flatten() {
            check_hook(h)?;
        }
        let p = self.project(key).await?;
        let actor = self.actor().to_owned();
        self.catalog()
            .call(move |c| {
                let key = hooks_key(&p.id);
                if hooks == ProjectHooks::default() {
                    settings::remove(c, &key)?;
                } else {
                    settings::set(c, &key, &hooks)?;
                }
                audit::append(
                    c,
                    &actor,
                    "project.hooks",
                    Some(&p.name),
                    &json!({"pre": hooks.pre.as_ref().map(|h| &h.command), "post": hooks.post.as_ref().map(|h| &h.command)}),
                )
            })
            .await
    }
}

/// Runs a pre-hook: `Err` when it failed and its policy stops the backup
/// (the message says so); a failure that only warns is logged.
pub async fn run_pre_hook(hook: &Hook, env: &HookEnv) -> Result<()> {
    match run_hook(hook, env).await {
        Ok(_) => Ok(()),
        Err(e) if hook.on_failure == HookPolicy::Abort => Err(Error::new(
            e.kind,
            format!("the backup did not run: {}", e.message),
        )),
        Err(e) => {
            tracing::warn!("{} (the hook only warns; the backup goes on)", e.message);
            Ok(())
        }
    }
}

/// The variables a hook sees (documented in docs/SCHEDULING.md).
#[derive(Debug, Clone, Default)]
pub struct HookEnv {
    pub phase: &'static str,
    pub project: String,
    pub project_ref: String,
    pub job_id: String,
    pub backup_id: String,
    pub backup_type: String,
    pub status: String,
    pub backup_dir: String,
    /// Artifact paths, one per line.
    pub artifacts: Vec<String>,
}

const OUTPUT_KEEP: usize = 4000;

/// Runs the hook; `Ok(output)` when it exits 0 in time, otherwise an
/// error carrying its output.
pub async fn run_hook(hook: &Hook, env: &HookEnv) -> Result<String> {
    let mut cmd = tokio::process::Command::new("sh");
    // Only the documented variables (docs/SCHEDULING.md) and what a program
    // needs to run: never the engine's secrets or PG* settings.
    crate::engine::childenv::apply_tokio(&mut cmd);
    cmd.arg("-c")
        .arg(&hook.command)
        .env("SUPABACKUP_HOOK", env.phase)
        .env("SUPABACKUP_PROJECT", &env.project)
        .env("SUPABACKUP_PROJECT_REF", &env.project_ref)
        .env("SUPABACKUP_JOB_ID", &env.job_id)
        .env("SUPABACKUP_BACKUP_ID", &env.backup_id)
        .env("SUPABACKUP_BACKUP_TYPE", &env.backup_type)
        .env("SUPABACKUP_STATUS", &env.status)
        .env("SUPABACKUP_BACKUP_DIR", &env.backup_dir)
        .env("SUPABACKUP_ARTIFACTS", env.artifacts.join("\n"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::tool(format!("could not start the {} hook: {e}", env.phase)))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let collect = async {
        let mut text = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut text).await;
        }
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut text).await;
        }
        let status = child.wait().await;
        (text, status)
    };
    let (text, status) =
        match tokio::time::timeout(Duration::from_secs(hook.timeout_secs), collect).await {
            Ok(r) => r,
            Err(_) => {
                return Err(Error::tool(format!(
                    "the {} hook `{}` did not finish within {} s and was stopped",
                    env.phase, hook.command, hook.timeout_secs
                )));
            }
        };
    let text = String::from_utf8_lossy(&text).into_owned();
    let tail: String = text
        .chars()
        .rev()
        .take(OUTPUT_KEEP)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let status =
        status.map_err(|e| Error::tool(format!("the {} hook failed to run: {e}", env.phase)))?;
    if status.success() {
        Ok(tail)
    } else {
        Err(Error::tool(format!(
            "the {} hook `{}` failed ({status}): {}",
            env.phase,
            hook.command,
            tail.trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schedule::jobs::HookPolicy;

    fn hook(cmd: &str, timeout: u64) -> Hook {
        Hook {
            command: cmd.into(),
            timeout_secs: timeout,
            on_failure: HookPolicy::Abort,
        }
    }

    #[tokio::test]
    async fn environment_output_failure_and_timeout() {
        let env = HookEnv {
            phase: "pre",
            project: "Shop".into(),
            backup_type: "full".into(),
            ..Default::default()
        };
        let out = run_hook(
            &hook(
                "echo \"$SUPABACKUP_HOOK $SUPABACKUP_PROJECT $SUPABACKUP_BACKUP_TYPE\"",
                5,
            ),
            &env,
        )
        .await
        .expect("runs");
        assert_eq!(out.trim(), "pre Shop full");
        let err = run_hook(&hook("echo disk is full >&2; exit 3", 5), &env)
            .await
            .expect_err("fails");
        assert!(
            err.message.contains("disk is full") && err.message.contains("pre hook"),
            "{err}"
        );
        let err = run_hook(&hook("sleep 5", 1), &env)
            .await
            .expect_err("times out");
        assert!(err.message.contains("within 1 s"), "{err}");
    }
}
