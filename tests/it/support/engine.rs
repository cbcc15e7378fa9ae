//! An engine on a temporary data directory, with no OS keychain and cheap
//! key-derivation parameters (the product's defaults are tested elsewhere).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use supabackup::engine::crypto::{KdfParams, Secret};
use supabackup::engine::paths::DataDir;
use supabackup::engine::project::ProjectInput;
use supabackup::engine::vault::NoKeychain;
use supabackup::engine::{Engine, EngineOptions};

pub const PASSPHRASE: &str = "test master passphrase";

pub struct TestEngine {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
}

pub async fn engine() -> TestEngine {
    engine_with(|_| {}).await
}

/// An engine with test defaults, then `adjust`'s changes to its options.
pub async fn engine_with(adjust: impl FnOnce(&mut EngineOptions)) -> TestEngine {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = EngineOptions::new(DataDir::at(dir.path()), "test");
    opts.keystore = std::sync::Arc::new(NoKeychain);
    opts.kdf = KdfParams::insecure_for_tests();
    // Desktop alerts are recorded, never sent to the session's D-Bus (the
    // real notifier has its own test in notify.rs).
    opts.delivery = supabackup::engine::notify::Delivery::with_desktop(std::sync::Arc::new(
        supabackup::engine::notify::RecordingNotifier::new(),
    ));
    adjust(&mut opts);
    let engine = Engine::open(opts).await.expect("engine opens");
    TestEngine { engine, dir }
}

/// An engine whose vault is set up and unlocked.
pub async fn unlocked_engine() -> TestEngine {
    unlocked_engine_with(|_| {}).await
}

/// [`unlocked_engine`] with `adjust`'s changes to the engine's options.
pub async fn unlocked_engine_with(adjust: impl FnOnce(&mut EngineOptions)) -> TestEngine {
    let t = engine_with(adjust).await;
    t.engine
        .setup_vault(Some(Secret::new(PASSPHRASE)))
        .await
        .expect("vault setup");
    t
}

pub fn input(name: &str, url: &str) -> ProjectInput {
    ProjectInput {
        name: name.into(),
        project_ref: "abcdefghijklmnopqrst".into(),
        db_url: url.into(),
        environment: "staging".into(),
        ..Default::default()
    }
}

/// Every byte of every file under `dir`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// Runs the real `supabackup` binary with a data dir and env, stdin from `input`.
pub fn cli(data_dir: &Path, args: &[&str], env: &[(&str, &str)], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supabackup"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("SUPABACKUP_NO_KEYCHAIN", "1")
        .env_remove("SUPABACKUP_PASSPHRASE")
        .env_remove("SUPABACKUP_DATA_DIR")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn supabackup");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait supabackup")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
